/*
 * asyncrt reactive core: the struct layouts the embedder reads.
 *
 * The Lua side reads these through the FFI without a call (flags and links
 * on the hot paths, g->out after ac_dispose / ac_async_drain, the last job of
 * a scheduler), so they are part of the boundary: the FFI declarations are
 * generated from this file and core.h (lua/async/kernel/cdef.lua, `make`),
 * and `make test` checks that every struct has the same size on both sides.
 *
 * Read-only for the embedder, except the node flag bits core.h leaves to it.
 * Arrays may move when they grow: never keep a pointer into them across a
 * call that can allocate.
 */
#ifndef ASYNC_CORE_LAYOUT_H
#define ASYNC_CORE_LAYOUT_H

#include "core.h"

typedef struct ac_node {
  ac_id deps, deps_tail;        /* links to what this node reads */
  ac_id subs, subs_tail;        /* links to who reads this node */
  uint32_t flags;
  ac_id owner;                  /* owning effect/scope (effects and scopes only) */
  ac_id last_child;             /* owned effects/scopes, newest last */
  ac_id prev_sibling, next_sibling;  /* computed: next_sibling links the detach walk */
  int32_t sched;                /* scheduler handle (effects and async) */
  uint32_t version;             /* async: last started run */
  uint32_t running;             /* async: version of the run in flight, 0 if none */
} ac_node;

typedef struct ac_edge {
  ac_id dep, sub;
  ac_id prev_sub, next_sub;     /* in dep's subscriber list */
  ac_id prev_dep, next_dep;     /* in sub's dependency list */
  uint32_t version;             /* tracking cycle that last confirmed it */
} ac_edge;

typedef struct ac_job {
  int32_t handle;               /* > 0: embedder job slot; < 0: -(effect node id) */
  int32_t scope;                /* 0: none; < 0: -(destroyed scope) */
  int32_t key;                  /* 0: no dedupe */
  int32_t phase;
} ac_job;

typedef struct ac_queue {
  ac_job *jobs;
  int32_t head, len, cap;
} ac_queue;

typedef struct ac_set {         /* open addressing set of nonzero uint64 keys */
  uint64_t *slots;
  int32_t count, cap;           /* cap: power of two or 0 */
} ac_set;

typedef struct ac_sched {
  ac_queue q[AC_NPHASES];
  ac_set pending[AC_NPHASES];   /* per phase: (scope, key) of keyed jobs waiting */
  ac_set dead_scopes;           /* destroyed scopes */
  int32_t max_depth;
  int32_t flushing;             /* a flush is in progress */
  int32_t phase;                /* phase being run */
  int32_t phase_end;            /* jobs of this phase that belong to this pass */
  int32_t passes;
  int32_t in_use;
  int32_t listed;               /* in g->sched_list */
  ac_job last;                  /* the job ac_sched_step handed out last */
  uint32_t gen;                 /* generation of this slot (part of the handle) */
  int32_t next_free;            /* free list of released slots (slot + 1) */
} ac_sched;

enum { AC_IDSET_LEVELS = 6 };   /* 64^6 > 2^31 slots */
typedef struct ac_idset {       /* free slots, handed out lowest first (idset.c) */
  uint64_t *bits;               /* all levels, level 0 (one bit per slot) first */
  int32_t cap, size0, levels;   /* slots covered, words in level 0, levels in use */
  int32_t base[AC_IDSET_LEVELS]; /* where each level starts in bits */
} ac_idset;

typedef struct ac_pull_frame {  /* one resumable dependency check */
  ac_id node;                   /* the node being checked */
  ac_id link, sub;
  int32_t depth, base, dirty, state, multi;
} ac_pull_frame;

struct ac_graph {
  ac_node *nodes;               /* nodes[0] is unused */
  ac_edge *links;               /* links[0] is unused */
  int32_t node_cap, link_cap;
  int32_t node_top, link_top;   /* one past the highest slot in use (comes down as the top is freed) */
  int32_t node_peak;            /* highest node_top since the embedder last reset it */
  ac_idset free_nodes, free_links; /* free slots below the tops */
  int32_t live_nodes, live_links;
  uint32_t cycle;               /* tracking cycle counter */

  ac_id *stack;                 /* link stack of the pulls */
  int32_t stack_len, stack_cap;
  ac_id *marks;                 /* propagation stack; marks_cap >= node_cap, so it never grows mid-walk */
  int32_t marks_cap;
  ac_pull_frame *pulls;         /* nested pulls, innermost last */
  int32_t pull_len, pull_cap;

  ac_id *async_notified;        /* async nodes notified since the embedder last drained */
  int32_t async_len, async_cap;

  ac_id *out;                   /* output of ac_dispose and ac_async_drain; out_cap >= node_top */
  int32_t out_len, out_cap;

  ac_sched *scheds;
  int32_t sched_len, sched_cap;
  int32_t *sched_list;          /* schedulers that received jobs since the last take */
  int32_t sched_list_len, sched_list_cap;  /* cap >= sched_len: listing never allocates */
  int32_t sched_free;           /* first released scheduler slot + 1, 0 if none */

  int32_t retry;                /* nodes flagged AC_RETRY (ac_retry queues them) */
  int32_t oom;                  /* allocations that failed so far (diagnostics) */
};

#endif
