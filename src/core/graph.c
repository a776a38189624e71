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
#include "core.h"
#include "core_int.h"

#include <stdlib.h>
#include <string.h>

/* ===== allocation ===== */

/* Grows an array to hold at least `need` elements of `size` bytes. */
int ac_grow(void **arr, int32_t *cap, int32_t need, size_t size) {
  if (need <= *cap) return 1;
  int64_t ncap = *cap ? *cap : 16;
  while (ncap < need) ncap *= 2;
  if (ncap > INT32_MAX / 2) return 0;
  void *p = realloc(*arr, (size_t)ncap * size);
  if (!p) return 0;
  memset((char *)p + (size_t)*cap * size, 0, (size_t)(ncap - *cap) * size);
  *arr = p;
  *cap = (int32_t)ncap;
  return 1;
}

/* Pushes a link id on the shared stack. */
static int stack_push(ac_graph *g, ac_id v) {
  if (g->stack_len == g->stack_cap &&
      !ac_grow((void **)&g->stack, &g->stack_cap, g->stack_len + 1, sizeof(ac_id))) {
    g->oom = 1;
    return 0;
  }
  g->stack[g->stack_len++] = v;
  return 1;
}

/* Appends an id to the output buffer. */
static int out_push(ac_graph *g, ac_id v) {
  if (g->out_len == g->out_cap &&
      !ac_grow((void **)&g->out, &g->out_cap, g->out_len + 1, sizeof(ac_id))) {
    g->oom = 1;
    return 0;
  }
  g->out[g->out_len++] = v;
  return 1;
}

/* ===== graph lifetime ===== */

/* Creates an empty graph. */
ac_graph *ac_new(void) {
  ac_graph *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->node_top = 1;
  g->link_top = 1;
  if (!ac_grow((void **)&g->nodes, &g->node_cap, 64, sizeof(ac_node)) ||
      !ac_grow((void **)&g->links, &g->link_cap, 64, sizeof(ac_edge))) {
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
  free(g->pulls);
  free(g->async_notified);
  free(g->out);
  free(g->scheds);
  free(g->sched_list);
  free(g);
}

const char *ac_version(void) { return AC_VERSION; }
int32_t ac_node_size(void) { return (int32_t)sizeof(ac_node); }
int32_t ac_link_size(void) { return (int32_t)sizeof(ac_edge); }

int32_t ac_sizeof(const char *type) {
  static const struct { const char *name; size_t size; } sizes[] = {
    { "ac_node", sizeof(ac_node) },   { "ac_edge", sizeof(ac_edge) },
    { "ac_job", sizeof(ac_job) },     { "ac_queue", sizeof(ac_queue) },
    { "ac_set", sizeof(ac_set) },     { "ac_sched", sizeof(ac_sched) },
    { "ac_pull_frame", sizeof(ac_pull_frame) }, { "ac_graph", sizeof(ac_graph) },
  };
  if (!type) return -1;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (strcmp(sizes[i].name, type) == 0) return (int32_t)sizes[i].size;
  return -1;
}

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

/* Creates a node; see core.h. */
ac_id ac_node_new(ac_graph *g, int kind, ac_id owner, int32_t sched) {
  ac_id id = g->free_node;
  if (id) {
    g->free_node = g->nodes[id].deps;
  } else {
    if (g->node_top == g->node_cap &&
        !ac_grow((void **)&g->nodes, &g->node_cap, g->node_top + 1, sizeof(ac_node))) {
      g->oom = 1;
      return 0;
    }
    id = g->node_top++;
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

/* ===== links ===== */

/* Takes a link slot. */
static ac_id link_alloc(ac_graph *g) {
  ac_id l = g->free_link;
  if (l) {
    g->free_link = g->links[l].next_dep;
  } else {
    if (g->link_top == g->link_cap &&
        !ac_grow((void **)&g->links, &g->link_cap, g->link_top + 1, sizeof(ac_edge))) {
      g->oom = 1;
      return 0;
    }
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
  L[l].next_dep = g->free_link;
  g->free_link = l;
  g->live_links--;
  if (!N[dep].subs && AC_KIND(N[dep].flags) == AC_COMPUTED) return dep;
  return 0;
}

/* Drops links from `l` on along a dependency list, and detaches every computed
   left without subscribers (it becomes lazy again), iteratively. */
static void unlink_from(ac_graph *g, ac_id l) {
  int32_t base = g->stack_len;
  for (;;) {
    while (l) {
      ac_id next = g->links[l].next_dep;
      ac_id lonely = unlink_one(g, l);
      if (lonely && !stack_push(g, lonely)) break;
      l = next;
    }
    if (g->stack_len == base) return;
    ac_id c = g->stack[--g->stack_len];
    ac_node *n = &g->nodes[c];
    n->flags = (n->flags & ~AC_PENDING) | AC_DIRTY;
    n->deps_tail = 0;
    l = n->deps;
  }
}

/* Records a read of `dep` by the running `sub`, reusing links in order. */
void ac_link(ac_graph *g, ac_id dep, ac_id sub) {
  ac_node *N = g->nodes;
  ac_edge *L = g->links;
  ac_id prev_dep = N[sub].deps_tail;
  if (prev_dep && L[prev_dep].dep == dep) return;
  ac_id next_dep = prev_dep ? L[prev_dep].next_dep : N[sub].deps;
  if (next_dep && L[next_dep].dep == dep) {
    L[next_dep].version = g->cycle;
    N[sub].deps_tail = next_dep;
    return;
  }
  ac_id prev_sub = N[dep].subs_tail;
  if (prev_sub && L[prev_sub].version == g->cycle && L[prev_sub].sub == sub) return;
  ac_id l = link_alloc(g);
  if (!l) return;
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
}

/* ===== tracking ===== */

/* Starts a tracked run of `sub`. */
void ac_begin(ac_graph *g, ac_id sub) {
  ac_node *n = &g->nodes[sub];
  g->cycle++;
  n->deps_tail = 0;
  n->flags = (n->flags & ~(AC_DIRTY | AC_PENDING | AC_RECURSED)) | AC_RECURSED_CHECK;
}

/* Ends the run of `sub`; see core.h. */
int ac_end(ac_graph *g, ac_id sub) {
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
  if (again && (f & AC_WATCHING)) ac_notify(g, sub);
  return again;
}

/* ===== propagation ===== */

/* Queues a watching node: effects into their scheduler's effect phase, async
   nodes into g->async_notified. */
void ac_notify(ac_graph *g, ac_id id) {
  ac_node *n = &g->nodes[id];
  if (n->flags & (AC_QUEUED | AC_DISPOSED)) return;
  n->flags |= AC_QUEUED;
  if (AC_KIND(n->flags) == AC_ASYNC) {
    if (g->async_len == g->async_cap &&
        !ac_grow((void **)&g->async_notified, &g->async_cap, g->async_len + 1, sizeof(ac_id))) {
      g->oom = 1;
      return;
    }
    g->async_notified[g->async_len++] = id;
  } else {
    ac_sched_push(g, n->sched, AC_PHASE_EFFECT, -id, 0, 0);
  }
}

/* Is `l` among the links `sub` has confirmed in its current run? */
static int valid_link(ac_graph *g, ac_id l, ac_id sub) {
  for (ac_id x = g->nodes[sub].deps_tail; x; x = g->links[x].prev_dep)
    if (x == l) return 1;
  return 0;
}

/* Marks everything reachable from the subscriber list starting at `l`. */
static void propagate(ac_graph *g, ac_id l) {
  int32_t base = g->stack_len;
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
    if (f & AC_WATCHING) ac_notify(g, sub);
    N = g->nodes;
    L = g->links;
    if ((f & (AC_MUTABLE | AC_WATCHING)) == AC_MUTABLE && N[sub].subs) {
      l = N[sub].subs;
      if (L[l].next_sub) {
        if (!stack_push(g, next)) break;
        next = L[l].next_sub;
      }
      continue;
    }
    if (next) {
      l = next;
      next = g->links[l].next_sub;
      continue;
    }
    while (g->stack_len > base) {
      l = g->stack[--g->stack_len];
      if (l) {
        next = g->links[l].next_sub;
        goto resume;
      }
    }
    break;
  resume:;
  }
  g->stack_len = base;
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
        ac_notify(g, sub);
        L = g->links;
        N = g->nodes;
      }
    }
  }
}

/* A source was written with a new value. */
void ac_write(ac_graph *g, ac_id id) {
  ac_node *n = &g->nodes[id];
  n->flags |= AC_DIRTY;
  if (n->subs) propagate(g, n->subs);
}

/* An async node committed: readers dirty, the rest pending. */
void ac_touch(ac_graph *g, ac_id id) {
  ac_id subs = g->nodes[id].subs;
  if (!subs) return;
  propagate(g, subs);
  shallow_propagate(g, g->nodes[id].subs);
}

/* `id` was updated and its value changed. */
void ac_changed(ac_graph *g, ac_id id) {
  ac_id subs = g->nodes[id].subs;
  if (subs) shallow_propagate(g, subs);
}

/* Marks `id` up to date. */
void ac_updated(ac_graph *g, ac_id id, int changed) {
  ac_node *n = &g->nodes[id];
  n->flags &= ~(AC_DIRTY | AC_PENDING);
  if (changed && n->subs) shallow_propagate(g, n->subs);
}

/* ===== pull ===== */

enum { P_RUN, P_DEP, P_SUB };

/* Runs the check of the innermost pull until it needs an update from the
   embedder or finishes. `changed` is the answer to the previous request. */
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
      link = N[dep].deps;
      sub = dep;
      p->depth++;
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
      link = p->multi ? g->stack[--g->stack_len] : first;
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
  ac_node *n = &g->nodes[id];
  if (n->flags & AC_DIRTY) return AC_STALE;
  if (!n->deps) {
    n->flags &= ~AC_PENDING;
    return AC_CLEAN;
  }
  if (g->pull_len == g->pull_cap &&
      !ac_grow((void **)&g->pulls, &g->pull_cap, g->pull_len + 1, sizeof(ac_pull_frame))) {
    g->oom = 1;
    return AC_STALE;
  }
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
  return pull_finish(g, pull_step(g, changed));
}

/* Drops the innermost pull. */
void ac_pull_abort(ac_graph *g) {
  if (g->pull_len == 0) return;
  g->stack_len = g->pulls[g->pull_len - 1].base;
  g->pull_len--;
}

/* ===== disposal ===== */

/* Unlinks everything of `id` and puts its slot on the free list. */
static void node_release(ac_graph *g, ac_id id) {
  if (g->nodes[id].flags & AC_RECURSED_CHECK) {
    /* disposed while its own run is on the embedder's stack: leave the
       slot alone until ac_end, which reports it (returns 2) */
    owner_detach(g->nodes, id);
    g->nodes[id].flags |= AC_DISPOSED;
    return;
  }
  if (g->nodes[id].deps) unlink_from(g, g->nodes[id].deps);
  while (g->nodes[id].subs) {
    ac_id l = g->nodes[id].subs;
    ac_id lonely = unlink_one(g, l);
    (void)lonely; /* id itself: it is going away */
  }
  ac_node *n = &g->nodes[id];
  owner_detach(g->nodes, id);
  memset(n, 0, sizeof *n);
  n->flags = AC_FREE | AC_DISPOSED;
  n->deps = g->free_node;
  g->free_node = id;
  g->live_nodes--;
}

/* Frees one node; owned children are released with it (no cleanup order). */
void ac_node_free(ac_graph *g, ac_id id) {
  if (id <= 0 || id >= g->node_top || (g->nodes[id].flags & AC_FREE)) return;
  g->nodes[id].flags &= ~AC_RECURSED_CHECK;   /* an explicit free is final */
  if (g->nodes[id].last_child) ac_dispose(g, id, 1);
  node_release(g, id);
}

/* Disposes a subtree; see core.h. */
int32_t ac_dispose(ac_graph *g, ac_id id, int children_only) {
  g->out_len = 0;
  if (id <= 0 || id >= g->node_top || (g->nodes[id].flags & AC_FREE)) return 0;
  if ((g->nodes[id].flags & (AC_DISPOSED | AC_RECURSED_CHECK)) == AC_DISPOSED && !children_only) {
    /* the release of a node disposed during its run (see ac_end) */
    ac_dispose(g, id, 1);
    int32_t n = g->out_len;
    node_release(g, id);
    g->out_len = n;
    return n;
  }
  ac_id cur = id;
  for (;;) {
    while (g->nodes[cur].last_child) cur = g->nodes[cur].last_child;
    if (cur == id && children_only) break;
    ac_id parent = g->nodes[cur].owner;
    if (!out_push(g, cur)) break;
    node_release(g, cur);
    if (cur == id) break;
    cur = parent;
  }
  return g->out_len;
}

/* ===== async nodes ===== */

/* Moves the notified async nodes to g->out, clearing their QUEUED flag. */
int32_t ac_async_drain(ac_graph *g) {
  g->out_len = 0;
  for (int32_t i = 0; i < g->async_len; i++) {
    ac_id id = g->async_notified[i];
    ac_node *n = &g->nodes[id];
    if ((n->flags & (AC_QUEUED | AC_FREE)) != AC_QUEUED || AC_KIND(n->flags) != AC_ASYNC) continue;
    n->flags &= ~AC_QUEUED;
    if (!out_push(g, id)) break;
  }
  g->async_len = 0;
  return g->out_len;
}

uint32_t ac_task_start(ac_graph *g, ac_id id) {
  ac_node *n = &g->nodes[id];
  n->running = ++n->version;
  return n->version;
}

int ac_task_abort(ac_graph *g, ac_id id) {
  ac_node *n = &g->nodes[id];
  int was = n->running != 0;
  n->running = 0;
  return was;
}

int ac_task_current(ac_graph *g, ac_id id, uint32_t version) {
  return version != 0 && g->nodes[id].running == version;
}

int ac_task_commit(ac_graph *g, ac_id id, uint32_t version) {
  ac_node *n = &g->nodes[id];
  if (version == 0 || n->running != version) return 0;
  n->running = 0;
  return 1;
}
