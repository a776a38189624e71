/*
 * asyncrt reactive core: public C API.
 *
 * Plain C11, no Lua. The core keeps the *structure* of a reactive graph
 * (nodes, dependency links, owner trees, flags), the phased scheduler queues
 * and async task versions. Values live with the embedder (Lua keeps them in
 * arrays indexed by node id). The core never calls back into the embedder:
 * when a pull needs a node brought up to date it returns that node's id, and
 * the embedder resumes the pull with whether the value changed.
 *
 * Ids are int32 indices into arrays that may move when they grow: never keep
 * a pointer into g->nodes or g->links across a call that can allocate.
 * Id 0 is "none" everywhere.
 *
 * Caveats:
 *  - One graph per embedder state; not thread-safe.
 *  - Scheduler keys and scopes are small integers; the embedder interns its
 *    strings.
 */
#ifndef ASYNC_CORE_H
#define ASYNC_CORE_H

#include <stdint.h>

#define AC_VERSION "0.1.0"

/* Flag bits from 1u << 9 up to (not including) the kind bits belong to the
   embedder; the core never reads or changes them. */

/* ===== node flags ===== */
enum {
  AC_MUTABLE        = 1u << 0,  /* has a value that can change (signal, computed, async) */
  AC_WATCHING       = 1u << 1,  /* effect or async: notified on change */
  AC_RECURSED_CHECK = 1u << 2,  /* currently being evaluated (tracking) */
  AC_RECURSED       = 1u << 3,  /* notified while being evaluated */
  AC_DIRTY          = 1u << 4,  /* must be updated */
  AC_PENDING        = 1u << 5,  /* a dependency may have changed: check */
  AC_QUEUED         = 1u << 6,  /* effect job waiting in its scheduler */
  AC_DISPOSED       = 1u << 7,
  AC_FREE           = 1u << 8,  /* slot on the free list */
  AC_KIND_SHIFT     = 12,
  AC_KIND_MASK      = 7u << 12
};

/* node kinds (stored in flags, read with AC_KIND(flags)) */
enum {
  AC_SIGNAL   = 0,
  AC_COMPUTED = 1,
  AC_EFFECT   = 2,
  AC_ASYNC    = 3,
  AC_SCOPE    = 4
};
#define AC_KIND(flags) (((flags) & AC_KIND_MASK) >> AC_KIND_SHIFT)

/* scheduler phases, run in this order by a flush */
enum {
  AC_PHASE_BINDING   = 0,
  AC_PHASE_LIFECYCLE = 1,
  AC_PHASE_EFFECT    = 2,
  AC_PHASE_ASYNC     = 3,
  AC_PHASE_POST      = 4,
  AC_NPHASES         = 5
};

/* results of a pull */
enum { AC_CLEAN = 0, AC_STALE = -1 };

/* results of ac_sched_next */
/* AC_SCHED_DROPPED: `out` is a job of a destroyed scope; the embedder frees it
   and asks again. */
enum { AC_SCHED_DONE = 0, AC_SCHED_JOB = 1, AC_SCHED_DROPPED = 2, AC_SCHED_DEPTH = -1 };

typedef int32_t ac_id;

typedef struct ac_node {
  ac_id deps, deps_tail;        /* links to what this node reads */
  ac_id subs, subs_tail;        /* links to who reads this node */
  uint32_t flags;
  ac_id owner;                  /* owning effect/scope (effects and scopes only) */
  ac_id last_child;             /* owned effects/scopes, newest last */
  ac_id prev_sibling, next_sibling;
  int32_t sched;                /* scheduler index (effects and async) */
  uint32_t version;             /* async: last started run */
  uint32_t running;             /* async: version of the run in flight, 0 if none */
} ac_node;

typedef struct ac_link {
  ac_id dep, sub;
  ac_id prev_sub, next_sub;     /* in dep's subscriber list */
  ac_id prev_dep, next_dep;     /* in sub's dependency list */
  uint32_t version;             /* tracking cycle that last confirmed it */
} ac_edge;

typedef struct ac_job {
  int32_t handle;               /* > 0: embedder job slot; < 0: -(effect or async node id) */
  int32_t scope;                /* 0: none */
  int32_t key;                  /* 0: no dedupe */
  int32_t phase;
} ac_job;

typedef struct ac_queue {
  ac_job *jobs;
  int32_t head, len, cap;
} ac_queue;

typedef struct ac_set {         /* open addressing set of uint64 keys */
  uint64_t *slots;
  int32_t count, cap;           /* cap: power of two or 0 */
} ac_set;

typedef struct ac_sched {
  ac_queue q[AC_NPHASES];
  ac_set pending;               /* (phase, scope, key) of keyed jobs waiting */
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

typedef struct ac_pull {        /* one resumable dependency check */
  ac_id node;                   /* the node being checked */
  ac_id link, sub;
  int32_t depth, base, dirty, state, multi;
} ac_pull_frame;

typedef struct ac_graph {
  ac_node *nodes;               /* nodes[0] is unused */
  ac_edge *links;               /* links[0] is unused */
  int32_t node_cap, link_cap;
  int32_t node_top, link_top;   /* next never-used slot */
  ac_id free_node, free_link;   /* free lists (through deps / next_dep) */
  int32_t live_nodes, live_links;
  uint32_t cycle;               /* tracking cycle counter */

  ac_id *stack;                 /* link stack shared by pulls and propagation */
  int32_t stack_len, stack_cap;
  ac_pull_frame *pulls;               /* nested pulls, innermost last */
  int32_t pull_len, pull_cap;

  ac_id *async_notified;        /* async nodes notified since the embedder last drained */
  int32_t async_len, async_cap;

  ac_id *out;                   /* output buffer of ac_dispose */
  int32_t out_len, out_cap;

  ac_sched *scheds;
  int32_t sched_len, sched_cap;
  int32_t *sched_list;          /* schedulers that received jobs since the last take */
  int32_t sched_list_len, sched_list_cap;
  int32_t sched_free;           /* first released scheduler slot + 1, 0 if none */

  int32_t oom;                  /* an allocation failed; the graph must not be used further */
} ac_graph;

/* ===== graph lifetime ===== */
ac_graph *ac_new(void);
void ac_free(ac_graph *g);
const char *ac_version(void);
int32_t ac_node_size(void);
int32_t ac_link_size(void);
/* sizeof of a shared struct by its C name ("ac_node", "ac_edge", "ac_job",
   "ac_queue", "ac_set", "ac_sched", "ac_pull_frame", "ac_graph"), -1 if
   unknown: the embedder's declarations are checked against it. */
int32_t ac_sizeof(const char *type);

/* ===== nodes ===== */
/* Creates a node of `kind` owned by `owner` (0: none; only effects/scopes are owned).
   Returns its id, or 0 when out of memory. */
ac_id ac_node_new(ac_graph *g, int kind, ac_id owner, int32_t sched);
/* Unlinks a node from everything and returns its slot to the free list.
   Owned children must have been disposed first (ac_dispose does that). */
void ac_node_free(ac_graph *g, ac_id id);
/* Disposes `id` and everything it owns: children first, newest child first.
   Writes the disposed ids in that order to g->out and returns their count.
   With children_only, `id` itself stays. Disposed nodes are unlinked, marked
   AC_DISPOSED and freed (their ids are reusable after the call). */
int32_t ac_dispose(ac_graph *g, ac_id id, int children_only);

/* ===== tracking ===== */
/* Starts a tracked run of `sub`: its dependency list will be rebuilt from the
   following ac_link calls, reusing existing links in order. */
void ac_begin(ac_graph *g, ac_id sub);
/* Records that the running `sub` read `dep`. */
void ac_link(ac_graph *g, ac_id dep, ac_id sub);
/* Ends the run of `sub`: drops dependencies not read this time. Returns 1 if
   `sub` was notified during its own run (it is re-queued), 2 if `sub` was
   disposed during its run: its dependencies are dropped and the embedder
   finishes the release with ac_dispose(g, sub, 0), which then frees it and
   anything it created meanwhile (reported in g->out, not including sub). */
int ac_end(ac_graph *g, ac_id sub);

/* ===== propagation ===== */
/* `id` (a signal or async) was written with a new value: marks it dirty and its
   subscribers pending, queues effects into their schedulers and async nodes
   into g->async_notified. */
void ac_write(ac_graph *g, ac_id id);
/* After `id` was updated and changed: marks its direct subscribers dirty. */
void ac_changed(ac_graph *g, ac_id id);
/* An async node committed a new value: its readers are dirty, everything below
   them pending. */
void ac_touch(ac_graph *g, ac_id id);
/* Queues a watching node (effect: into its scheduler's effect phase; async:
   into g->async_notified) unless it is queued already. */
void ac_notify(ac_graph *g, ac_id id);

/* ===== pull (the resumable dependency check) ===== */
/* Checks whether the pending node `id` must be updated. Returns AC_CLEAN (the
   node's PENDING flag is cleared), AC_STALE (the node must be updated), or a
   node id > 0 that the embedder must update first and then report with
   ac_pull_resume(changed). Pulls nest. */
ac_id ac_pull(ac_graph *g, ac_id id);
ac_id ac_pull_resume(ac_graph *g, int changed);
/* Drops the innermost pull (the embedder failed while updating). */
void ac_pull_abort(ac_graph *g);
/* Marks `id` updated: clears DIRTY/PENDING; if changed, marks subscribers dirty. */
void ac_updated(ac_graph *g, ac_id id, int changed);

/* ===== async nodes ===== */
int32_t ac_async_drain(ac_graph *g);          /* copies g->async_notified to g->out; returns count */
uint32_t ac_task_start(ac_graph *g, ac_id id);   /* new run: version+1, returns it */
int ac_task_abort(ac_graph *g, ac_id id);        /* 1 if a run was in flight */
int ac_task_current(ac_graph *g, ac_id id, uint32_t version);
int ac_task_commit(ac_graph *g, ac_id id, uint32_t version); /* 1 and ends the run if current */

/* ===== scheduler ===== */
/* Schedulers are named by handles ((generation << 20) | slot): a released
   handle never reaches the scheduler that later reuses its slot. */
int32_t ac_sched_new(ac_graph *g, int32_t max_depth);   /* returns a handle >= 0, -1 on OOM */
void ac_sched_release(ac_graph *g, int32_t s);
void ac_sched_free_all(ac_graph *g);
/* Queues a job. Returns 1 if queued, 0 if dropped (dead scope or duplicate key), -1 on OOM. */
int ac_sched_push(ac_graph *g, int32_t s, int32_t phase, int32_t handle, int32_t scope, int32_t key);
/* Next job of the flush in progress (starting one if needed). */
int ac_sched_next(ac_graph *g, int32_t s, ac_job *out);
/* The same as one scalar, for the embedder's hot loop: the job's handle
   (the whole job is in g->scheds[s].last), 0 when the flush is done,
   AC_STEP_DROPPED for a job of a destroyed scope (free last.handle), or
   AC_STEP_DEPTH past max_depth (the queues were cleared). */
int32_t ac_sched_step(ac_graph *g, int32_t s);
#define AC_STEP_DEPTH INT32_MIN
#define AC_STEP_DROPPED (INT32_MIN + 1)
/* Takes one scheduler off the list of those that received jobs; -1 if none. */
int32_t ac_sched_take_one(ac_graph *g);
int32_t ac_sched_size(ac_graph *g, int32_t s);    /* jobs waiting */
void ac_sched_clear(ac_graph *g, int32_t s);
void ac_sched_end(ac_graph *g, int32_t s);        /* abandon the flush in progress */
void ac_sched_destroy_scope(ac_graph *g, int32_t s, int32_t scope);
void ac_sched_revive_scope(ac_graph *g, int32_t s, int32_t scope);
/* Copies to g->out the schedulers that received jobs since the last call and
   returns their count. */
int32_t ac_sched_take_dirty(ac_graph *g);

#endif
