/*
 * idset.c: the free slots of the node and link arrays, handed out lowest
 * first.
 *
 * A LIFO free list hands out the most recently freed slot. After a peak (a
 * million nodes made and dropped) that spreads a later, small graph over the
 * whole array: every walk misses the cache, and the embedder's id-indexed
 * tables cannot shrink. Handing out the lowest free slot keeps live ids
 * packed at the bottom, so the top can come down (node_top / link_top) as
 * the peak's slots are freed.
 *
 * The set is a bitmap in levels: bit i of level 0 is set when slot i is
 * free; bit w of level k+1 is set when word w of level k is not zero. The
 * top level is one word. Put, take and lowest are O(levels) (at most 6 for
 * 2^31 slots), with no search.
 */
#include "core_int.h"

#include <string.h>

/* Index of the lowest set bit of a non-zero word. */
static inline int lowest_bit(uint64_t w) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(w);
#else
  int n = 0;
  while (!(w & 1)) { w >>= 1; n++; }
  return n;
#endif
}

/* Words in each level for `cap` slots; returns the number of levels. */
static int32_t level_sizes(int32_t cap, int32_t size[AC_IDSET_LEVELS]) {
  int32_t n = (int32_t)(((int64_t)cap + 63) / 64), levels = 0;
  for (;;) {
    size[levels++] = n;
    if (n <= 1) return levels;
    n = (n + 63) / 64;
  }
}

/* Makes `s` cover slots [0, cap) (at least): grows it, or shrinks it when
   no slot at or above `cap` is free. The set is unchanged. 0 when out of
   memory (then `s` is unchanged too). */
int ac_idset_resize(ac_graph *g, ac_idset *s, int32_t cap) {
  int32_t size[AC_IDSET_LEVELS], base[AC_IDSET_LEVELS];
  int32_t levels = level_sizes(cap, size), total = 0;
  if (s->bits && size[0] == s->size0) return 1;
  for (int32_t k = 0; k < levels; k++) {
    base[k] = total;
    total += size[k];
  }
  uint64_t *bits = AC_CALLOC((size_t)total, sizeof *bits);
  if (!bits) {
    if (g) g->oom++;
    return 0;
  }
  if (s->bits) {
    /* level 0 is copied; the levels above are summaries of it */
    memcpy(bits, s->bits, (size_t)(size[0] < s->size0 ? size[0] : s->size0) * sizeof *bits);
    for (int32_t k = 0; k + 1 < levels; k++)
      for (int32_t w = 0; w < size[k]; w++)
        if (bits[base[k] + w]) bits[base[k + 1] + w / 64] |= (uint64_t)1 << (w % 64);
    free(s->bits);
  }
  s->bits = bits;
  s->cap = (int32_t)((int64_t)size[0] * 64 > INT32_MAX ? INT32_MAX : size[0] * 64);
  s->size0 = size[0];
  s->levels = levels;
  for (int32_t k = 0; k < AC_IDSET_LEVELS; k++) s->base[k] = k < levels ? base[k] : 0;
  return 1;
}

/* Grows `s` to cover slots [0, cap); see ac_idset_resize. */
int ac_idset_reserve(ac_graph *g, ac_idset *s, int32_t cap) {
  if (cap <= s->cap) return 1;
  return ac_idset_resize(g, s, cap);
}

/* Frees the bitmap. */
void ac_idset_free(ac_idset *s) {
  free(s->bits);
  memset(s, 0, sizeof *s);
}

/* Marks slot `i` (< cap) free. */
void ac_idset_put(ac_idset *s, int32_t i) {
  for (int32_t k = 0; k < s->levels; k++) {
    uint64_t *w = &s->bits[s->base[k] + i / 64];
    uint64_t was = *w;
    *w = was | (uint64_t)1 << (i % 64);
    if (was) return;   /* the levels above already say this word has a bit */
    i /= 64;
  }
}

/* Marks slot `i` (< cap) used. */
void ac_idset_take(ac_idset *s, int32_t i) {
  for (int32_t k = 0; k < s->levels; k++) {
    uint64_t *w = &s->bits[s->base[k] + i / 64];
    *w &= ~((uint64_t)1 << (i % 64));
    if (*w) return;    /* the word still has a free slot */
    i /= 64;
  }
}

/* Frees slot `i` of an array whose slots in use are all below `*top`: when
   `i` is the highest one, `*top` comes down past it and every free slot
   below it (which leave the set: the set holds free slots below the top
   only); otherwise `i` joins the set. Amortised O(levels). */
void ac_idset_release(ac_idset *s, int32_t i, int32_t *top) {
  if (i != *top - 1) {
    ac_idset_put(s, i);
    return;
  }
  while (i > 1 && ac_idset_has(s, i - 1)) {
    i--;
    ac_idset_take(s, i);
  }
  *top = i;
}

/* The lowest free slot, or 0 when none is free (slot 0 is never free). */
int32_t ac_idset_lowest(const ac_idset *s) {
  if (!s->levels) return 0;
  int32_t i = 0;
  for (int32_t k = s->levels - 1; k >= 0; k--) {
    uint64_t w = s->bits[s->base[k] + i];
    if (!w) return 0;  /* only the top word can be empty */
    i = i * 64 + lowest_bit(w);
  }
  return i;
}

/* Is slot `i` free? (for the checker) */
int ac_idset_has(const ac_idset *s, int32_t i) {
  if (i < 0 || i >= s->cap) return 0;
  return (s->bits[i / 64] >> (i % 64)) & 1;
}
