/* Internal helpers shared by the core's C files. */
#ifndef ASYNC_CORE_INT_H
#define ASYNC_CORE_INT_H

#include "layout.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Allocation goes through these, so the test build (-DAC_TEST_ALLOC) can make
   the Nth allocation fail; the test program defines the two functions. */
#ifdef AC_TEST_ALLOC
void *ac_test_realloc(void *p, size_t size);
void *ac_test_calloc(size_t n, size_t size);
#define AC_REALLOC(p, size) ac_test_realloc((p), (size))
#define AC_CALLOC(n, size) ac_test_calloc((n), (size))
#else
#define AC_REALLOC(p, size) realloc((p), (size))
#define AC_CALLOC(n, size) calloc((n), (size))
#endif

/* Is `id` not a live node slot? One unsigned compare (1 <= id < node_top)
   and one flag test; the boundary check of every entry point. */
static inline int ac_bad_id(const ac_graph *g, ac_id id) {
  return (uint32_t)id - 1u >= (uint32_t)g->node_top - 1u || (g->nodes[id].flags & AC_FREE) != 0;
}

int ac_idset_reserve(ac_graph *g, ac_idset *s, int32_t cap);
int ac_idset_resize(ac_graph *g, ac_idset *s, int32_t cap);
void ac_idset_free(ac_idset *s);
void ac_idset_put(ac_idset *s, int32_t i);
void ac_idset_take(ac_idset *s, int32_t i);
void ac_idset_release(ac_idset *s, int32_t i, int32_t *top);
int32_t ac_idset_lowest(const ac_idset *s);
int ac_idset_has(const ac_idset *s, int32_t i);
int ac_grow(ac_graph *g, void **arr, int32_t *cap, int32_t need, size_t size);
void ac_sched_free_all(ac_graph *g);
int ac_sched_queue_node(ac_graph *g, int32_t s, ac_id id);

#endif
