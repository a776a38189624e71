/*
 * check.c: white-box helpers of the C tests and the fuzz driver.
 *
 * ac_check walks the whole graph and verifies the invariants the core
 * relies on: both link lists of every node doubly linked and consistent,
 * every live link in exactly one deps list and one subs list, counts equal
 * to the lists, free lists sane, the owner tree consistent, queued and
 * retry flags matching the queues, scheduler sets matching their jobs.
 * The failing allocator lets a test make the Nth allocation fail.
 */
#include "check.h"
#include "core_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ===== the failing allocator ===== */

long ac_fail_at;
int ac_fail_after;
long ac_alloc_count;
long ac_alloc_failed;

/* Starts counting allocations again; see check.h. */
void ac_alloc_reset(long fail_at, int fail_after) {
  ac_fail_at = fail_at;
  ac_fail_after = fail_after;
  ac_alloc_count = 0;
  ac_alloc_failed = 0;
}

/* Should the allocation being attempted fail? */
static int alloc_fails(void) {
  ac_alloc_count++;
  if (ac_fail_at <= 0) return 0;
  if (ac_alloc_count == ac_fail_at || (ac_fail_after && ac_alloc_count > ac_fail_at)) {
    ac_alloc_failed++;
    return 1;
  }
  return 0;
}

/* realloc, failing on schedule. */
void *ac_test_realloc(void *p, size_t size) {
  return alloc_fails() ? NULL : realloc(p, size);
}

/* calloc, failing on schedule. */
void *ac_test_calloc(size_t n, size_t size) {
  return alloc_fails() ? NULL : calloc(n, size);
}

/* ===== the invariant checker ===== */

/* Writes a violation message; returns 1. */
static int fail(char *msg, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, len, fmt, ap);
  va_end(ap);
  return 1;
}

/* Is id a valid index of a slot ever used? */
static int in_range(ac_id id, int32_t top) { return id >= 1 && id < top; }

/* The scheduler of a handle, or NULL (the core's sched_of, read-only). */
static const ac_sched *sched_at(const ac_graph *g, int32_t h) {
  if (h < 0) return NULL;
  int32_t i = h & AC_SCHED_SLOT_MASK;
  if (i >= g->sched_len) return NULL;
  const ac_sched *s = &g->scheds[i];
  if (!s->in_use || s->gen != ((uint32_t)h >> AC_SCHED_SLOT_BITS)) return NULL;
  return s;
}

/* Is k in the set? */
static int set_contains(const ac_set *s, uint64_t k) {
  for (int32_t i = 0; i < s->cap; i++)
    if (s->slots[i] == k) return 1;
  return 0;
}

/* Counts the nonzero slots of a set. */
static int32_t set_slots(const ac_set *s) {
  int32_t n = 0;
  for (int32_t i = 0; i < s->cap; i++) n += s->slots[i] != 0;
  return n;
}

/* The levels of a free-slot bitmap: no slot at or above `top` is free, and
   each summary bit says whether the word below it has a set bit. */
static const char *check_idset(const ac_idset *s, int32_t top) {
  for (int32_t i = top; i < s->cap; i++)
    if (ac_idset_has(s, i)) return "a free slot at or above the top";
  if (ac_idset_has(s, 0)) return "slot 0 is free";
  for (int32_t k = 0; k + 1 < s->levels; k++) {
    int32_t words = k == 0 ? s->size0 : s->base[k + 1] - s->base[k];
    for (int32_t w = 0; w < words; w++) {
      int set = s->bits[s->base[k] + w] != 0;
      int summary = (int)((s->bits[s->base[k + 1] + w / 64] >> (w % 64)) & 1);
      if (set != summary) return "a summary bit disagrees with its word";
    }
  }
  return NULL;
}

/* The node and link part of ac_check. `seen` has link_top bytes. */
static int check_nodes(const ac_graph *g, unsigned char *seen, char *msg, size_t len) {
  const ac_node *N = g->nodes;
  const ac_edge *L = g->links;
  int32_t live = 0, in_deps = 0, in_subs = 0, retry = 0;
  for (ac_id id = 1; id < g->node_top; id++) {
    const ac_node *n = &N[id];
    if (n->flags & AC_FREE) continue;
    live++;
    if (AC_KIND(n->flags) > AC_SCOPE) return fail(msg, len, "node %d: bad kind", id);
    if (n->flags & AC_RETRY) {
      retry++;
      if (n->flags & AC_QUEUED) return fail(msg, len, "node %d: RETRY and QUEUED", id);
    }
    /* deps list */
    ac_id prev = 0, tail_found = n->deps_tail == 0;
    int32_t steps = 0;
    for (ac_id l = n->deps; l; prev = l, l = L[l].next_dep) {
      if (!in_range(l, g->link_top)) return fail(msg, len, "node %d: dep link %d out of range", id, l);
      if (++steps > g->live_links) return fail(msg, len, "node %d: deps list loops", id);
      if (L[l].sub != id) return fail(msg, len, "link %d in deps of %d has sub %d", l, id, L[l].sub);
      if (L[l].prev_dep != prev) return fail(msg, len, "link %d: prev_dep %d, want %d", l, L[l].prev_dep, prev);
      if (!in_range(L[l].dep, g->node_top) || (N[L[l].dep].flags & AC_FREE))
        return fail(msg, len, "link %d: dep %d not live", l, L[l].dep);
      if (seen[l] & 1) return fail(msg, len, "link %d in two deps lists", l);
      seen[l] |= 1;
      in_deps++;
      if (l == n->deps_tail) tail_found = 1;
    }
    if (!tail_found) return fail(msg, len, "node %d: deps_tail %d not in its list", id, n->deps_tail);
    if (!(n->flags & AC_RECURSED_CHECK) && n->deps_tail != prev)
      return fail(msg, len, "node %d: deps_tail %d is not the last dep %d", id, n->deps_tail, prev);
    /* subs list */
    prev = 0;
    steps = 0;
    for (ac_id l = n->subs; l; prev = l, l = L[l].next_sub) {
      if (!in_range(l, g->link_top)) return fail(msg, len, "node %d: sub link %d out of range", id, l);
      if (++steps > g->live_links) return fail(msg, len, "node %d: subs list loops", id);
      if (L[l].dep != id) return fail(msg, len, "link %d in subs of %d has dep %d", l, id, L[l].dep);
      if (L[l].prev_sub != prev) return fail(msg, len, "link %d: prev_sub %d, want %d", l, L[l].prev_sub, prev);
      if (seen[l] & 2) return fail(msg, len, "link %d in two subs lists", l);
      seen[l] |= 2;
      in_subs++;
    }
    if (n->subs_tail != prev) return fail(msg, len, "node %d: subs_tail %d, last sub %d", id, n->subs_tail, prev);
    /* owner tree */
    if (n->owner) {
      if (!in_range(n->owner, g->node_top) || (N[n->owner].flags & AC_FREE))
        return fail(msg, len, "node %d: owner %d not live", id, n->owner);
      if (n->prev_sibling && N[n->prev_sibling].next_sibling != id)
        return fail(msg, len, "node %d: prev sibling %d does not point back", id, n->prev_sibling);
      if (n->next_sibling && N[n->next_sibling].prev_sibling != id)
        return fail(msg, len, "node %d: next sibling %d does not point back", id, n->next_sibling);
      if (!n->next_sibling && N[n->owner].last_child != id)
        return fail(msg, len, "node %d: last sibling but not last_child of %d", id, n->owner);
      int32_t up = 0;
      for (ac_id o = n->owner; o; o = N[o].owner)
        if (++up > g->node_top) return fail(msg, len, "node %d: owner chain loops", id);
    } else if (n->prev_sibling || n->next_sibling) {
      return fail(msg, len, "node %d: siblings without an owner", id);
    }
    if (n->last_child && N[n->last_child].owner != id)
      return fail(msg, len, "node %d: last_child %d has owner %d", id, n->last_child, N[n->last_child].owner);
    if (AC_KIND(n->flags) == AC_COMPUTED && n->owner)
      return fail(msg, len, "computed %d is owned", id);
  }
  if (live != g->live_nodes) return fail(msg, len, "live_nodes %d, counted %d", g->live_nodes, live);
  if (in_deps != g->live_links || in_subs != g->live_links)
    return fail(msg, len, "live_links %d, in deps lists %d, in subs lists %d", g->live_links, in_deps, in_subs);
  for (ac_id l = 1; l < g->link_top; l++)
    if (seen[l] == 1 || seen[l] == 2) return fail(msg, len, "link %d in only one list", l);
  if (retry != g->retry) return fail(msg, len, "retry %d, flagged %d", g->retry, retry);
  /* free slots: exactly the FREE nodes and cleared links below the tops,
     the tops themselves in use, and the bitmaps' levels consistent */
  int32_t free_nodes = 0;
  for (ac_id id = 1; id < g->node_top; id++) {
    int is_free = (N[id].flags & AC_FREE) != 0;
    if (is_free != ac_idset_has(&g->free_nodes, id))
      return fail(msg, len, "node %d: FREE %d but in the free set %d", id, is_free, !is_free);
    free_nodes += is_free;
  }
  if (g->node_top > 1 && (N[g->node_top - 1].flags & AC_FREE))
    return fail(msg, len, "top node %d is free", g->node_top - 1);
  if (free_nodes + live != g->node_top - 1)
    return fail(msg, len, "%d free + %d live nodes != %d slots", free_nodes, live, g->node_top - 1);
  if (g->node_peak < g->node_top) return fail(msg, len, "node_peak %d < node_top %d", g->node_peak, g->node_top);
  int32_t free_links = 0;
  for (ac_id l = 1; l < g->link_top; l++) {
    int is_free = !seen[l];
    if (is_free && (L[l].dep || L[l].sub)) return fail(msg, len, "free link %d not cleared", l);
    if (is_free != ac_idset_has(&g->free_links, l))
      return fail(msg, len, "link %d: free %d but in the free set %d", l, is_free, !is_free);
    free_links += is_free;
  }
  if (g->link_top > 1 && !seen[g->link_top - 1]) return fail(msg, len, "top link %d is free", g->link_top - 1);
  if (free_links + g->live_links != g->link_top - 1)
    return fail(msg, len, "%d free + %d live links != %d slots", free_links, g->live_links, g->link_top - 1);
  const char *e = check_idset(&g->free_nodes, g->node_top);
  if (!e) e = check_idset(&g->free_links, g->link_top);
  if (e) return fail(msg, len, "%s", e);
  return 0;
}

/* The scheduler part of ac_check. `mark` has node_top entries. */
static int check_scheds(const ac_graph *g, unsigned char *mark, char *msg, size_t len) {
  const ac_node *N = g->nodes;
  if (g->sched_list_cap < g->sched_len) return fail(msg, len, "sched_list_cap < sched_len");
  for (int32_t k = 0; k < g->sched_list_len; k++) {
    const ac_sched *s = sched_at(g, g->sched_list[k]);
    if (!s) return fail(msg, len, "listed scheduler %d is released", g->sched_list[k]);
    if (!s->listed) return fail(msg, len, "listed scheduler %d not marked listed", g->sched_list[k]);
    for (int32_t m = 0; m < k; m++)
      if (g->sched_list[m] == g->sched_list[k]) return fail(msg, len, "scheduler listed twice");
  }
  int32_t listed = 0, free_slots = 0;
  for (int32_t i = g->sched_free; i; i = g->scheds[i - 1].next_free) {
    if (i - 1 >= g->sched_len || g->scheds[i - 1].in_use) return fail(msg, len, "bad free scheduler slot %d", i - 1);
    if (++free_slots > g->sched_len) return fail(msg, len, "scheduler free list loops");
  }
  memset(mark, 0, (size_t)g->node_top);
  for (int32_t i = 0; i < g->sched_len; i++) {
    const ac_sched *s = &g->scheds[i];
    if (!s->in_use) continue;
    listed += s->listed;
    for (int p = 0; p < AC_NPHASES; p++) {
      const ac_queue *q = &s->q[p];
      if (q->head < 0 || q->head > q->len || q->len > q->cap)
        return fail(msg, len, "scheduler %d phase %d: head %d len %d cap %d", i, p, q->head, q->len, q->cap);
      int32_t keyed = 0;
      for (int32_t j = q->head; j < q->len; j++) {
        const ac_job *job = &q->jobs[j];
        if (job->phase != p) return fail(msg, len, "job in phase %d queue says phase %d", p, job->phase);
        if (job->handle < 0 && -job->handle < g->node_top) mark[-job->handle] = 1;
        if (job->key) {
          keyed++;
          uint64_t k = ((uint64_t)(uint32_t)job->scope << 32) | (uint32_t)job->key;
          if (!set_contains(&s->pending[p], k)) return fail(msg, len, "keyed job not in the pending set");
        }
      }
      if (set_slots(&s->pending[p]) != s->pending[p].count)
        return fail(msg, len, "pending set count %d, slots %d", s->pending[p].count, set_slots(&s->pending[p]));
      if (s->pending[p].count != keyed)
        return fail(msg, len, "scheduler %d phase %d: %d pending keys, %d keyed jobs", i, p, s->pending[p].count, keyed);
    }
    if (set_slots(&s->dead_scopes) != s->dead_scopes.count) return fail(msg, len, "dead scope count");
  }
  if (listed != g->sched_list_len) return fail(msg, len, "%d schedulers marked listed, %d in the list", listed, g->sched_list_len);
  /* a queued effect whose scheduler lives is in that scheduler's queue */
  for (ac_id id = 1; id < g->node_top; id++) {
    uint32_t f = N[id].flags;
    if ((f & (AC_QUEUED | AC_FREE | AC_DISPOSED)) != AC_QUEUED || AC_KIND(f) == AC_ASYNC) continue;
    if (sched_at(g, N[id].sched) && !mark[id]) return fail(msg, len, "effect %d QUEUED but in no queue", id);
  }
  memset(mark, 0, (size_t)g->node_top);
  for (int32_t i = 0; i < g->async_len; i++) {
    ac_id id = g->async_notified[i];
    if (!in_range(id, g->node_top)) return fail(msg, len, "async_notified[%d] = %d out of range", i, id);
    mark[id] = 1;
  }
  for (ac_id id = 1; id < g->node_top; id++) {
    uint32_t f = N[id].flags;
    if ((f & (AC_QUEUED | AC_FREE | AC_DISPOSED)) == AC_QUEUED && AC_KIND(f) == AC_ASYNC && !mark[id])
      return fail(msg, len, "async %d QUEUED but not in async_notified", id);
  }
  return 0;
}

/* Checks every invariant; see check.h. */
int ac_check(const ac_graph *g, char *msg, size_t len) {
  if (g->node_top < 1 || g->node_top > g->node_cap) return fail(msg, len, "node_top %d cap %d", g->node_top, g->node_cap);
  if (g->link_top < 1 || g->link_top > g->link_cap) return fail(msg, len, "link_top %d cap %d", g->link_top, g->link_cap);
  if (g->marks_cap < g->node_top) return fail(msg, len, "marks_cap %d < node_top %d", g->marks_cap, g->node_top);
  if (g->out_cap < g->node_top) return fail(msg, len, "out_cap %d < node_top %d", g->out_cap, g->node_top);
  if (g->stack_len < 0 || g->stack_len > g->stack_cap) return fail(msg, len, "stack_len %d", g->stack_len);
  if (g->pull_len < 0 || g->pull_len > g->pull_cap) return fail(msg, len, "pull_len %d", g->pull_len);
  for (int32_t i = 0; i < g->pull_len; i++)
    if (g->pulls[i].base > g->stack_len || (i && g->pulls[i].base < g->pulls[i - 1].base))
      return fail(msg, len, "pull frame %d: base %d", i, g->pulls[i].base);
  if (g->out_len < 0 || g->out_len > g->out_cap) return fail(msg, len, "out_len %d", g->out_len);
  if (g->async_len < 0 || g->async_len > g->async_cap) return fail(msg, len, "async_len %d", g->async_len);
  unsigned char *seen = calloc((size_t)g->link_top, 1);
  unsigned char *mark = calloc((size_t)g->node_top, 1);
  int r = !seen || !mark ? fail(msg, len, "checker out of memory")
                         : check_nodes(g, seen, msg, len) || check_scheds(g, mark, msg, len);
  free(seen);
  free(mark);
  return r;
}
