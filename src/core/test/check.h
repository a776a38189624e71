/* check.h: the graph invariant checker and the failing allocator of the
   C tests and the fuzz driver (white-box: reads layout.h). */
#ifndef ASYNC_CORE_TEST_CHECK_H
#define ASYNC_CORE_TEST_CHECK_H

#include "layout.h"

#include <stddef.h>

/* Checks every structural invariant of `g`. Returns 0 if all hold, else
   writes the first violation to msg (len bytes) and returns 1. */
int ac_check(const ac_graph *g, char *msg, size_t len);

/* The test allocator (the core is built with -DAC_TEST_ALLOC): allocation
   number `ac_fail_at` (1-based, counted from the last ac_alloc_reset) and,
   if ac_fail_after is set, every later one fail. 0 disables. */
extern long ac_fail_at;
extern int ac_fail_after;
extern long ac_alloc_count;   /* allocations attempted since the reset */
extern long ac_alloc_failed;  /* allocations made to fail since the reset */
void ac_alloc_reset(long fail_at, int fail_after);

#endif
