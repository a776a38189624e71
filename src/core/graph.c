/*
 * graph.c: nodes, dependency links, propagation, the resumable pull, owner
 * trees and disposal.
 *
 * The algorithm is alien-signals' push-pull (mark subscribers PENDING on a
 * write, then check PENDING nodes depth-first on read), with two changes: the
 * depth-first check is a state machine that returns to the embedder whenever a
 * node needs its value recomputed (the embedder holds values and user code),
 * and every walk uses an explicit stack so no chain length can overflow the C
 * stack.
 */
#include "core_int.h"

#include <stdlib.h>
#include <string.h>

/* ===== allocation ===== */

/* Grows an array to hold at least `need` elements of `size` bytes; 0 (and
   the array unchanged) when out of memory. */
int ac_grow(ac_graph *g, void **arr, int32_t *cap, int32_t need, size_t size) {
  if (need <= *cap) return 1;
  int64_t ncap = *cap ? *cap : 16;
  while (ncap < need) ncap *= 2;
  void *p = ncap > INT32_MAX / 2 ? NULL : AC_REALLOC(*arr, (size_t)ncap * size);
  if (!p) {
    if (g) g->oom++;
    return 0;
  }
  memset((char *)p + (size_t)*cap * size, 0, (size_t)(ncap - *cap) * size);
  *arr = p;
  *cap = (int32_t)ncap;
  return 1;
}

/* Pushes a link id on the pull stack; 0 when out of memory. */
static int stack_push(ac_graph *g, ac_id v) {
  if (g->stack_len == g->stack_cap &&
      !ac_grow(g, (void **)&g->stack, &g->stack_cap, g->stack_len + 1, sizeof(ac_id)))
    return 0;
  g->stack[g->stack_len++] = v;
  return 1;
}

/* ===== graph lifetime ===== */

/* Creates an empty graph. */
ac_graph *ac_new(void) {
  ac_graph *g = AC_CALLOC(1, sizeof *g);
  if (!g) return NULL;
  g->node_top = g->node_peak = 1;
  g->link_top = 1;
  if (!ac_grow(g, (void **)&g->nodes, &g->node_cap, 64, sizeof(ac_node)) ||
      !ac_grow(g, (void **)&g->marks, &g->marks_cap, 64, sizeof(ac_id)) ||
      !ac_grow(g, (void **)&g->out, &g->out_cap, 64, sizeof(ac_id)) ||
      !ac_grow(g, (void **)&g->links, &g->link_cap, 64, sizeof(ac_edge)) ||
      !ac_idset_reserve(g, &g->free_nodes, g->node_cap) ||
      !ac_idset_reserve(g, &g->free_links, g->link_cap)) {
    ac_free(g);
    return NULL;
  }
  return g;
}

/* Frees a graph and everything it holds. */
void ac_free(ac_graph *g) {
  if (!g) return;
  ac_sched_free_all(g);
  free(g->nodes);
  free(g->links);
  free(g->stack);
  free(g->marks);
  free(g->pulls);
  free(g->async_notified);
  free(g->out);
  free(g->scheds);
  free(g->sched_list);
  ac_idset_free(&g->free_nodes);
  ac_idset_free(&g->free_links);
  free(g);
}

/* The version string. */
const char *ac_version(void) { return AC_VERSION; }

/* ===== nodes ===== */

/* Appends `id` as the newest child of `owner`. */
static void owner_attach(ac_node *N, ac_id owner, ac_id id) {
  ac_id last = N[owner].last_child;
  N[id].owner = owner;
  N[id].prev_sibling = last;
  N[id].next_sibling = 0;
  if (last) N[last].next_sibling = id;
  N[owner].last_child = id;
}

/* Removes `id` from its owner's child list. */
static void owner_detach(ac_node *N, ac_id id) {
  ac_id owner = N[id].owner, prev = N[id].prev_sibling, next = N[id].next_sibling;
  if (!owner) return;
  if (prev) N[prev].next_sibling = next;
  if (next) N[next].prev_sibling = prev;
  else N[owner].last_child = prev;
  N[id].owner = N[id].prev_sibling = N[id].next_sibling = 0;
}

/* Creates a node; see core.h. A new top slot also grows the propagation
   stack and the output buffer to the node capacity, so that a propagation
   (at most one stack entry per node) and a dispose (at most every node)
   never allocate. All growth happens before anything changes. */
ac_id ac_node_new(ac_graph *g, int kind, ac_id owner, int32_t sched) {
  if (kind < AC_SIGNAL || kind > AC_SCOPE) return AC_BAD_ID;
  if (owner && ac_bad_id(g, owner)) return AC_BAD_ID;
  ac_id id = ac_idset_lowest(&g->free_nodes);
  if (id) {
    ac_idset_take(&g->free_nodes, id);
  } else {
    if (g->node_top == g->node_cap &&
        !ac_grow(g, (void **)&g->nodes, &g->node_cap, g->node_top + 1, sizeof(ac_node)))
      return AC_OOM;
    if (g->marks_cap <= g->node_top &&
        !ac_grow(g, (void **)&g->marks, &g->marks_cap, g->node_cap, sizeof(ac_id)))
      return AC_OOM;
    if (g->out_cap <= g->node_top &&
        !ac_grow(g, (void **)&g->out, &g->out_cap, g->node_cap, sizeof(ac_id)))
      return AC_OOM;
    if (!ac_idset_reserve(g, &g->free_nodes, g->node_cap)) return AC_OOM;
    id = g->node_top++;
    if (g->node_top > g->node_peak) g->node_peak = g->node_top;
  }
  ac_node *n = &g->nodes[id];
  memset(n, 0, sizeof *n);
  uint32_t f = ((uint32_t)kind << AC_KIND_SHIFT) & AC_KIND_MASK;
  switch (kind) {
    case AC_SIGNAL:   f |= AC_MUTABLE; break;
    case AC_COMPUTED: f |= AC_MUTABLE | AC_DIRTY; break;
    case AC_EFFECT:   f |= AC_WATCHING | AC_DIRTY; break;
    case AC_ASYNC:    f |= AC_MUTABLE | AC_WATCHING; break;
    default: break;
  }
  n->flags = f;
  n->sched = sched;
  if (owner && (kind == AC_EFFECT || kind == AC_SCOPE)) owner_attach(g->nodes, owner, id);
  g->live_nodes++;
  return id;
}

/* The smallest power of two >= 64 that holds `top` slots. */
static int32_t fit_cap(int32_t top) {
  int32_t cap = 64;
  while (cap < top) cap *= 2;
  return cap;
}

/* Shrinks an array of `cap` elements to `ncap`; 0 when realloc failed (the
   array is unchanged). */
static int shrink(ac_graph *g, void **arr, int32_t *cap, int32_t ncap, size_t size) {
  void *p = AC_REALLOC(*arr, (size_t)ncap * size);
  if (!p) {
    g->oom++;
    return 0;
  }
  *arr = p;
  *cap = ncap;
  return 1;
}

/* Gives back the memory of a past peak; see core.h. The node array (and
   its bitmap, 1 bit a slot) keeps its capacity: the embedder holds node ids
   that outlive their nodes (queued jobs, held lists, logs) and reads their
   flags without a bounds check, which stays safe only while every id it
   ever had stays inside the array. Link ids never leave the core outside a
   pull (and no pull is open here). */
int ac_trim(ac_graph *g) {
  if (g->pull_len) return AC_OK;
  int ok = 1;
  int32_t lcap = fit_cap(g->link_top);
  if (lcap * 4 <= g->link_cap) {
    ok = ac_idset_resize(g, &g->free_links, lcap) &&
         shrink(g, (void **)&g->links, &g->link_cap, lcap, sizeof(ac_edge));
  }
  g->node_peak = g->node_top;
  return ok ? AC_OK : AC_OOM;
}

/* ===== links ===== */

/* Takes a link slot; 0 when out of memory. */
static ac_id link_alloc(ac_graph *g) {
  ac_id l = ac_idset_lowest(&g->free_links);
  if (l) {
    ac_idset_take(&g->free_links, l);
  } else {
    if (g->link_top == g->link_cap &&
        !ac_grow(g, (void **)&g->links, &g->link_cap, g->link_top + 1, sizeof(ac_edge)))
      return 0;
    if (!ac_idset_reserve(g, &g->free_links, g->link_cap)) return 0;
    l = g->link_top++;
  }
  g->live_links++;
  return l;
}

/* Unlinks `l` from both lists and frees it. Returns the dep when the dep is a
   computed that just lost its last subscriber (the caller detaches it). */
static ac_id unlink_one(ac_graph *g, ac_id l) {
  ac_node *N = g->nodes;
  ac_edge *L = g->links;
  ac_id dep = L[l].dep, sub = L[l].sub;
  ac_id pd = L[l].prev_dep, nd = L[l].next_dep, ps = L[l].prev_sub, ns = L[l].next_sub;
  if (N[sub].deps_tail == l) N[sub].deps_tail = pd;
  if (nd) L[nd].prev_dep = pd;
  if (pd) L[pd].next_dep = nd; else N[sub].deps = nd;
  if (ns) L[ns].prev_sub = ps; else N[dep].subs_tail = ps;
  if (ps) L[ps].next_sub = ns; else N[dep].subs = ns;
  memset(&L[l], 0, sizeof L[l]);
  g->live_links--;
  ac_idset_release(&g->free_links, l, &g->link_top);
  if (!N[dep].subs && AC_KIND(N[dep].flags) == AC_COMPUTED) return dep;
  return 0;
}

/* Drops links from `l` on along a dependency list, and detaches every computed
   left without subscribers (it becomes lazy again), iteratively. Computeds
   are never owned, so their next_sibling field links the ones waiting to be
   detached: the walk never allocates and cannot fail. */
static void unlink_from(ac_graph *g, ac_id l) {
  ac_id waiting = 0;
  for (;;) {
    while (l) {
      ac_id next = g->links[l].next_dep;
      ac_id lonely = unlink_one(g, l);
      if (lonely) {
        g->nodes[lonely].next_sibling = waiting;
        waiting = lonely;
      }
      l = next;
    }
    if (!waiting) return;
    ac_node *n = &g->nodes[waiting];
    waiting = n->next_sibling;
    n->next_sibling = 0;
    n->flags = (n->flags & ~AC_PENDING) | AC_DIRTY;
    n->deps_tail = 0;
    l = n->deps;
  }
}

/* Records a read of `dep` by the running `sub`, reusing links in order; see
   core.h for what happens when a new link cannot be allocated. */
int ac_link(ac_graph *g, ac_id dep, ac_id sub) {
  if (ac_bad_id(g, sub)) return AC_BAD_ID;
  ac_node *N = g->nodes;
  ac_edge *L = g->links;
  if (N[sub].flags & AC_DISPOSED) return AC_OK;  /* disposed during its run: ac_end drops its deps */
  /* a link's dep is always live: the reuse paths need no check of `dep` */
  ac_id prev_dep = N[sub].deps_tail;
  if (prev_dep && L[prev_dep].dep == dep) return AC_OK;
  ac_id next_dep = prev_dep ? L[prev_dep].next_dep : N[sub].deps;
  if (next_dep && L[next_dep].dep == dep) {
    L[next_dep].version = g->cycle;
    N[sub].deps_tail = next_dep;
    return AC_OK;
  }
  if (ac_bad_id(g, dep)) return AC_BAD_ID;
  ac_id prev_sub = N[dep].subs_tail;
  if (prev_sub && L[prev_sub].version == g->cycle && L[prev_sub].sub == sub) return AC_OK;
  ac_id l = link_alloc(g);
  if (!l) {
    /* the run is incomplete: ac_end leaves sub dirty so the read is retried */
    if (N[sub].flags & AC_RECURSED_CHECK) N[sub].flags |= AC_DIRTY | AC_RECURSED;
    return AC_OOM;
  }
  N = g->nodes;
  L = g->links;
  L[l].dep = dep;
  L[l].sub = sub;
  L[l].version = g->cycle;
  L[l].prev_dep = prev_dep;
  L[l].next_dep = next_dep;
  L[l].prev_sub = prev_sub;
  L[l].next_sub = 0;
  if (next_dep) L[next_dep].prev_dep = l;
  if (prev_dep) L[prev_dep].next_dep = l; else N[sub].deps = l;
  if (prev_sub) L[prev_sub].next_sub = l; else N[dep].subs = l;
  N[dep].subs_tail = l;
  N[sub].deps_tail = l;
  return AC_OK;
}

/* ===== propagation ===== */

/* Queues a watching node: effects into their scheduler's effect phase, async
   nodes into g->async_notified. QUEUED is set only once the push succeeded;
   a push that ran out of memory flags the node AC_RETRY instead, so the
   notification waits for ac_retry rather than being lost. */
static void notify(ac_graph *g, ac_id id) {
  ac_node *n = &g->nodes[id];
  if (n->flags & (AC_QUEUED | AC_DISPOSED | AC_RETRY)) return;
  int r;
  if (AC_KIND(n->flags) == AC_ASYNC) {
    r = 1;
    if (g->async_len == g->async_cap &&
        !ac_grow(g, (void **)&g->async_notified, &g->async_cap, g->async_len + 1, sizeof(ac_id)))
      r = AC_OOM;
    else
      g->async_notified[g->async_len++] = id;
  } else {
    r = ac_sched_queue_node(g, n->sched, id);
  }
  n = &g->nodes[id];
  if (r == 1) {
    n->flags |= AC_QUEUED;
  } else if (r == AC_OOM) {
    n->flags |= AC_RETRY;
    g->retry++;
  }
}

/* Queues a watching node; see core.h. */
int ac_notify(ac_graph *g, ac_id id) {
  if (ac_bad_id(g, id) || !(g->nodes[id].flags & AC_WATCHING)) return AC_BAD_ID;
  notify(g, id);
  return AC_OK;
}

/* Queues the nodes whose notification ran out of memory; see core.h. Scans
   the node array, which only happens after an allocation failed. */
int ac_retry(ac_graph *g) {
  for (ac_id id = 1; g->retry > 0 && id < g->node_top; id++) {
    ac_node *n = &g->nodes[id];
    if (!(n->flags & AC_RETRY)) continue;
    n->flags &= ~AC_RETRY;
    g->retry--;
    notify(g, id);
  }
  return g->retry ? AC_OOM : AC_OK;
}

/* Is `l` among the links `sub` has confirmed in its current run? */
static int valid_link(ac_graph *g, ac_id l, ac_id sub) {
  for (ac_id x = g->nodes[sub].deps_tail; x; x = g->links[x].prev_dep)
    if (x == l) return 1;
  return 0;
}

/* Marks everything reachable from the subscriber list starting at `l`. A node
   is descended into at most once per walk and pushes at most one entry, so
   g->marks (at least node_top entries, grown with the nodes) is never
   exceeded; the bound check only guards memory. */
static void propagate(ac_graph *g, ac_id l) {
  ac_id *stack = g->marks;
  int32_t top = 0, cap = g->marks_cap;
  ac_id next = g->links[l].next_sub;
  for (;;) {
    ac_edge *L = g->links;
    ac_node *N = g->nodes;
    ac_id sub = L[l].sub;
    uint32_t f = N[sub].flags;
    if (!(f & (AC_RECURSED_CHECK | AC_RECURSED | AC_DIRTY | AC_PENDING))) {
      N[sub].flags = f | AC_PENDING;
    } else if (!(f & (AC_RECURSED_CHECK | AC_RECURSED))) {
      f = 0;
    } else if (!(f & AC_RECURSED_CHECK)) {
      N[sub].flags = (f & ~AC_RECURSED) | AC_PENDING;
    } else if (!(f & (AC_DIRTY | AC_PENDING)) && valid_link(g, l, sub)) {
      N[sub].flags = f | AC_RECURSED | AC_PENDING;
      f &= AC_MUTABLE;
    } else {
      f = 0;
    }
    if (f & AC_WATCHING) notify(g, sub);
    N = g->nodes;
    L = g->links;
    if ((f & (AC_MUTABLE | AC_WATCHING)) == AC_MUTABLE && N[sub].subs) {
      l = N[sub].subs;
      if (L[l].next_sub) {
        if (top == cap) break;
        stack[top++] = next;
        next = L[l].next_sub;
      }
      continue;
    }
    if (next) {
      l = next;
      next = g->links[l].next_sub;
      continue;
    }
    while (top > 0) {
      l = stack[--top];
      if (l) {
        next = g->links[l].next_sub;
        goto resume;
      }
    }
    break;
  resume:;
  }
}

/* Marks the direct subscribers of `id` dirty (it was updated and changed). */
static void shallow_propagate(ac_graph *g, ac_id l) {
  ac_edge *L = g->links;
  ac_node *N = g->nodes;
  for (; l; l = L[l].next_sub) {
    ac_id sub = L[l].sub;
    uint32_t f = N[sub].flags;
    if ((f & (AC_PENDING | AC_DIRTY)) == AC_PENDING) {
      N[sub].flags = f | AC_DIRTY;
      if ((f & (AC_WATCHING | AC_RECURSED_CHECK)) == AC_WATCHING) {
        notify(g, sub);
        L = g->links;
        N = g->nodes;
      }
    }
  }
}

/* A source was written with a new value. */
int ac_write(ac_graph *g, ac_id id) {
  if (ac_bad_id(g, id) || !(g->nodes[id].flags & AC_MUTABLE)) return AC_BAD_ID;
  ac_node *n = &g->nodes[id];
  n->flags |= AC_DIRTY;
  if (n->subs) propagate(g, n->subs);
  return AC_OK;
}

/* An async node committed: readers dirty, the rest pending. */
int ac_touch(ac_graph *g, ac_id id) {
  if (ac_bad_id(g, id) || !(g->nodes[id].flags & AC_MUTABLE)) return AC_BAD_ID;
  ac_id subs = g->nodes[id].subs;
  if (!subs) return AC_OK;
  propagate(g, subs);
  shallow_propagate(g, g->nodes[id].subs);
  return AC_OK;
}

/* `id` was updated and its value changed. */
int ac_changed(ac_graph *g, ac_id id) {
  if (ac_bad_id(g, id)) return AC_BAD_ID;
  ac_id subs = g->nodes[id].subs;
  if (subs) shallow_propagate(g, subs);
  return AC_OK;
}

/* ===== tracking ===== */

/* Starts a tracked run of `sub`. */
int ac_begin(ac_graph *g, ac_id sub) {
  if (ac_bad_id(g, sub)) return AC_BAD_ID;
  ac_node *n = &g->nodes[sub];
  g->cycle++;
  n->deps_tail = 0;
  n->flags = (n->flags & ~(AC_DIRTY | AC_PENDING | AC_RECURSED)) | AC_RECURSED_CHECK;
  return AC_OK;
}

/* Ends the run of `sub`; see core.h. */
int ac_end(ac_graph *g, ac_id sub) {
  if (ac_bad_id(g, sub)) return AC_BAD_ID;
  ac_node *n = &g->nodes[sub];
  ac_id tail = n->deps_tail;
  ac_id rest = tail ? g->links[tail].next_dep : n->deps;
  if (rest) unlink_from(g, rest);
  n = &g->nodes[sub];
  uint32_t f = n->flags & ~AC_RECURSED_CHECK;
  if (f & AC_DISPOSED) {
    /* disposed during its run: drop what it read; the embedder releases it */
    n->flags = f & ~(AC_RECURSED | AC_DIRTY | AC_PENDING | AC_QUEUED);
    if (n->deps) unlink_from(g, n->deps);
    return 2;
  }
  int again = 0;
  if (f & AC_RECURSED) {
    f &= ~AC_RECURSED;
    again = (f & (AC_DIRTY | AC_PENDING)) != 0;
  }
  n->flags = f;
  if (again) {
    if (f & AC_WATCHING) {
      notify(g, sub);
    } else if ((f & AC_DIRTY) && n->subs) {
      /* a computed left dirty (a link ran out of memory): its readers must
         pull it again */
      propagate(g, n->subs);
    }
  }
  return again;
}

/* ===== pull ===== */

enum { P_RUN, P_DEP, P_SUB, P_BROKEN };

/* Runs the check of the innermost pull until it needs an update from the
   embedder or finishes. `changed` is the answer to the previous request.
   Answers AC_STALE (always safe) when it runs out of stack, when the walk is
   deeper than there are nodes (a ring of computeds), or when the stack does
   not match the walk (links changed under a paused pull). */
static ac_id pull_step(ac_graph *g, int changed) {
  ac_pull_frame *p = &g->pulls[g->pull_len - 1];
  ac_id link = p->link, sub = p->sub, dep;
  ac_node *N = g->nodes;
  ac_edge *L = g->links;
  uint32_t df;

  if (p->state == P_DEP) goto dep_done;
  if (p->state == P_SUB) goto sub_done;

  for (;;) {
    dep = L[link].dep;
    df = N[dep].flags;
    if ((N[sub].flags & AC_DIRTY) || (df & AC_RECURSED_CHECK)) {
      /* a dep being evaluated right now: `sub` read it last time, so `sub`
         sits on a ring through it; rerun `sub` so that its read of the dep
         finds the ring (the embedder raises "Cycle detected") or, if the
         branch is gone, settles without it */
      p->dirty = 1;
    } else if ((df & (AC_MUTABLE | AC_DIRTY | AC_WATCHING)) == (AC_MUTABLE | AC_DIRTY)) {
      p->link = link;
      p->sub = sub;
      p->state = P_DEP;
      return dep;
    dep_done:
      p->state = P_RUN;
      if (changed) {
        ac_id subs = N[L[link].dep].subs;
        if (subs && L[subs].next_sub) {
          shallow_propagate(g, subs);
          N = g->nodes;
          L = g->links;
        }
        p->dirty = 1;
      }
    } else if ((df & (AC_MUTABLE | AC_PENDING | AC_WATCHING)) == (AC_MUTABLE | AC_PENDING) &&
               N[dep].deps) {
      if (L[link].next_sub || L[link].prev_sub) {
        if (!stack_push(g, link)) return AC_STALE;
      }
      if (++p->depth > g->live_nodes) return AC_STALE;   /* a ring */
      link = N[dep].deps;
      sub = dep;
      continue;
    }
    if (!p->dirty && L[link].next_dep) {
      link = L[link].next_dep;
      continue;
    }
    while (p->depth > 0) {
      p->depth--;
      ac_id first = N[sub].subs;
      p->multi = L[first].next_sub != 0;
      if (p->multi) {
        if (g->stack_len <= p->base) return AC_STALE;
        link = g->stack[--g->stack_len];
      } else {
        link = first;
      }
      if (p->dirty) {
        p->link = link;
        p->sub = sub;
        p->state = P_SUB;
        return sub;
      sub_done:
        p->state = P_RUN;
        if (changed) {
          if (p->multi) {
            shallow_propagate(g, N[sub].subs);
            N = g->nodes;
            L = g->links;
          }
          sub = L[link].sub;
          continue;
        }
        p->dirty = 0;
      } else {
        N[sub].flags &= ~AC_PENDING;
      }
      sub = L[link].sub;
      if (L[link].next_dep) {
        link = L[link].next_dep;
        goto next_dep;
      }
    }
    return p->dirty ? AC_STALE : AC_CLEAN;
  next_dep:;
  }
}

/* Finishes the innermost pull if `r` says it is done. */
static ac_id pull_finish(ac_graph *g, ac_id r) {
  if (r > 0) return r;
  ac_pull_frame *p = &g->pulls[g->pull_len - 1];
  if (r == AC_CLEAN) g->nodes[p->node].flags &= ~AC_PENDING;
  g->stack_len = p->base;
  g->pull_len--;
  return r;
}

/* Starts a pull of the pending node `id`; see core.h. */
ac_id ac_pull(ac_graph *g, ac_id id) {
  if (ac_bad_id(g, id)) return AC_BAD_ID;
  ac_node *n = &g->nodes[id];
  if (n->flags & AC_DIRTY) return AC_STALE;
  if (!n->deps) {
    n->flags &= ~AC_PENDING;
    return AC_CLEAN;
  }
  if (g->pull_len == g->pull_cap &&
      !ac_grow(g, (void **)&g->pulls, &g->pull_cap, g->pull_len + 1, sizeof(ac_pull_frame)))
    return AC_STALE;
  ac_pull_frame *p = &g->pulls[g->pull_len++];
  p->node = id;
  p->link = g->nodes[id].deps;
  p->sub = id;
  p->depth = 0;
  p->base = g->stack_len;
  p->dirty = 0;
  p->state = P_RUN;
  p->multi = 0;
  return pull_finish(g, pull_step(g, 0));
}

/* Resumes the innermost pull with the embedder's answer. */
ac_id ac_pull_resume(ac_graph *g, int changed) {
  if (g->pull_len == 0) return AC_STALE;
  ac_pull_frame *p = &g->pulls[g->pull_len - 1];
  if (p->state == P_BROKEN) {
    /* a node was freed while this pull waited: its walk may name freed
       links; drop it and let the embedder recompute (or skip a node that is
       gone) */
    ac_id node = p->node;
    g->stack_len = p->base;
    g->pull_len--;
    return (g->nodes[node].flags & (AC_FREE | AC_DISPOSED)) ? AC_CLEAN : AC_STALE;
  }
  return pull_finish(g, pull_step(g, changed));
}

/* Drops the innermost pull. */
void ac_pull_abort(ac_graph *g) {
  if (g->pull_len == 0) return;
  g->stack_len = g->pulls[g->pull_len - 1].base;
  g->pull_len--;
}

/* ===== disposal ===== */

/* Unlinks everything of `id` and puts its slot on the free list. Never
   allocates. */
static void node_release(ac_graph *g, ac_id id) {
  if (g->nodes[id].flags & AC_RECURSED_CHECK) {
    /* disposed while its own run is on the embedder's stack: leave the
       slot alone until ac_end, which reports it (returns 2) */
    owner_detach(g->nodes, id);
    g->nodes[id].flags |= AC_DISPOSED;
    return;
  }
  if (g->pull_len && (g->nodes[id].deps || g->nodes[id].subs)) {
    /* the open pulls may hold links that are about to be freed */
    for (int32_t i = 0; i < g->pull_len; i++) g->pulls[i].state = P_BROKEN;
  }
  if (g->nodes[id].deps) unlink_from(g, g->nodes[id].deps);
  while (g->nodes[id].subs) unlink_one(g, g->nodes[id].subs);  /* returns id itself at most */
  ac_node *n = &g->nodes[id];
  if (n->flags & AC_RETRY) g->retry--;
  owner_detach(g->nodes, id);
  memset(n, 0, sizeof *n);
  n->flags = AC_FREE | AC_DISPOSED;
  g->live_nodes--;
  ac_idset_release(&g->free_nodes, id, &g->node_top);
}

/* Releases the subtree of `id` children first, newest child first, appending
   each id to g->out when `report` (out_cap >= node_top: it cannot overflow). */
static void dispose_walk(ac_graph *g, ac_id id, int children_only, int report) {
  ac_id cur = id;
  for (;;) {
    while (g->nodes[cur].last_child) cur = g->nodes[cur].last_child;
    if (cur == id && children_only) break;
    ac_id parent = g->nodes[cur].owner;
    if (report) g->out[g->out_len++] = cur;
    node_release(g, cur);
    if (cur == id) break;
    cur = parent;
  }
}

/* Frees one node; owned children are released with it (no cleanup order). */
int ac_node_free(ac_graph *g, ac_id id) {
  if (ac_bad_id(g, id)) return AC_BAD_ID;
  g->nodes[id].flags &= ~AC_RECURSED_CHECK;   /* an explicit free is final */
  if (g->nodes[id].last_child) dispose_walk(g, id, 1, 0);
  node_release(g, id);
  return AC_OK;
}

/* Disposes a subtree; see core.h. g->out grows with the node array, so a
   dispose never allocates and cannot fail half way. */
int32_t ac_dispose(ac_graph *g, ac_id id, int children_only) {
  if (ac_bad_id(g, id)) return AC_BAD_ID;
  int release = 0;
  if ((g->nodes[id].flags & (AC_DISPOSED | AC_RECURSED_CHECK)) == AC_DISPOSED && !children_only) {
    /* the release of a node disposed during its run (see ac_end): its
       children are reported, the node itself was reported before */
    children_only = 1;
    release = 1;
  }
  g->out_len = 0;
  dispose_walk(g, id, children_only, 1);
  if (release) node_release(g, id);
  return g->out_len;
}

/* ===== async nodes ===== */

/* Moves the notified async nodes to g->out, clearing their QUEUED flag. */
int32_t ac_async_drain(ac_graph *g) {
  if (g->async_len > g->out_cap &&
      !ac_grow(g, (void **)&g->out, &g->out_cap, g->async_len, sizeof(ac_id)))
    return AC_OOM;
  g->out_len = 0;
  for (int32_t i = 0; i < g->async_len; i++) {
    ac_id id = g->async_notified[i];
    ac_node *n = &g->nodes[id];
    if ((n->flags & (AC_QUEUED | AC_FREE)) != AC_QUEUED || AC_KIND(n->flags) != AC_ASYNC) continue;
    n->flags &= ~AC_QUEUED;
    g->out[g->out_len++] = id;
  }
  g->async_len = 0;
  return g->out_len;
}

/* Is `id` not a live async node? */
static int bad_task(ac_graph *g, ac_id id) {
  return ac_bad_id(g, id) || AC_KIND(g->nodes[id].flags) != AC_ASYNC;
}

/* Starts a new run of an async node; returns its version (never 0). */
uint32_t ac_task_start(ac_graph *g, ac_id id) {
  if (bad_task(g, id)) return 0;
  ac_node *n = &g->nodes[id];
  uint32_t v = n->version + 1;
  if (v == 0) v = 1;   /* 0 means "no run" */
  n->version = n->running = v;
  return v;
}

/* Ends the run in flight; 1 if there was one. */
int ac_task_abort(ac_graph *g, ac_id id) {
  if (bad_task(g, id)) return AC_BAD_ID;
  ac_node *n = &g->nodes[id];
  int was = n->running != 0;
  n->running = 0;
  return was;
}

/* Commits run `version` if it is the current one. */
int ac_task_commit(ac_graph *g, ac_id id, uint32_t version) {
  if (bad_task(g, id)) return AC_BAD_ID;
  ac_node *n = &g->nodes[id];
  if (version == 0 || n->running != version) return 0;
  n->running = 0;
  return 1;
}
