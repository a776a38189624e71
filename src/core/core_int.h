/* Internal helpers shared by the core's C files. */
#ifndef ASYNC_CORE_INT_H
#define ASYNC_CORE_INT_H

#include <stddef.h>
#include <stdint.h>

int ac_grow(void **arr, int32_t *cap, int32_t need, size_t size);

#endif
