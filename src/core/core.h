/*
 * asyncrt reactive core: public C API (functions and constants).
 *
 * Plain C11, no Lua. The core keeps the *structure* of a reactive graph
 * (nodes, dependency links, owner trees, flags), the phased scheduler queues
 * and async task versions. Values live with the embedder (Lua keeps them in
 * arrays indexed by node id). The core never calls back into the embedder:
 * when a pull needs a node brought up to date it returns that node's id, and
 * the embedder resumes the pull with whether the value changed.
 *
 * The struct layouts the embedder reads directly (g->nodes, g->out, ...) are
 * in layout.h, which includes this header. An embedder that only calls
 * functions needs this header alone; the FFI declarations of the Lua side
 * are generated from both (`make` writes lua/async/kernel/cdef.lua with
 * tools/cdef.lua: core.h first, then layout.h).
 *
 * Ids are int32 indices into arrays that may move when they grow: never keep
 * a pointer into g->nodes or g->links across a call that can allocate.
 * Id 0 is "none" everywhere.
 *
 * Errors: every function that takes a node id checks it (1 <= id < node_top
 * and the slot not free; one unsigned compare and one flag test) and returns
 * AC_BAD_ID without touching anything when it is not; scheduler handles are
 * checked against their slot's generation. Every function that allocates
 * either succeeds or returns AC_OOM with the graph unchanged. Out of memory
 * never loses a notification: a watcher whose queue push fails is flagged
 * AC_RETRY and counted in g->retry, and ac_retry queues it later.
 *
 * Caveats:
 *  - One graph per embedder state; not thread-safe.
 *  - Scheduler keys and scopes are integers; the embedder interns its
 *    strings.
 *  - Node ids are not generation-checked: an id kept after its node was freed
 *    names whatever node reuses the slot.
 */
#ifndef ASYNC_CORE_H
#define ASYNC_CORE_H

#include <stdint.h>

#define AC_VERSION "0.2.0"

/* ===== return codes ===== */
/* Negative, so they never collide with an id, a count, a version or the
   results of a pull (AC_CLEAN, AC_STALE) or of ac_end (0, 1, 2). */
enum {
  AC_OK     = 0,
  AC_BAD_ID = -2,   /* a node id, scheduler handle or enum argument is not valid; nothing done */
  AC_OOM    = -3    /* out of memory; nothing done (the graph is unchanged) */
};

/* ===== node flags ===== */
/* Bits 9 and 10 belong to the embedder; the core never reads or changes
   them. */
enum {
  AC_MUTABLE        = 1u << 0,  /* has a value that can change (signal, computed, async) */
  AC_WATCHING       = 1u << 1,  /* effect or async: notified on change */
  AC_RECURSED_CHECK = 1u << 2,  /* currently being evaluated (tracking) */
  AC_RECURSED       = 1u << 3,  /* notified while being evaluated */
  AC_DIRTY          = 1u << 4,  /* must be updated */
  AC_PENDING        = 1u << 5,  /* a dependency may have changed: check */
  AC_QUEUED         = 1u << 6,  /* effect job waiting in its scheduler, or async node in g->async_notified */
  AC_DISPOSED       = 1u << 7,
  AC_FREE           = 1u << 8,  /* slot on the free list */
  AC_RETRY          = 1u << 11, /* notified, but its queue push ran out of memory: ac_retry queues it */
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

/* the special results of ac_sched_step (every other nonzero result is a job
   handle); written as literals so the FFI can read them */
enum {
  AC_STEP_DEPTH   = -2147483647 - 1,  /* INT32_MIN: past max_depth, the queues were cleared */
  AC_STEP_DROPPED = -2147483647       /* a job of a destroyed scope: free last.handle */
};

/* scheduler handles are (generation << AC_SCHED_SLOT_BITS) | slot */
enum { AC_SCHED_SLOT_BITS = 20, AC_SCHED_SLOT_MASK = (1 << 20) - 1 };

typedef int32_t ac_id;
typedef struct ac_graph ac_graph;   /* layout.h */

/* ===== graph lifetime ===== */
/* Creates an empty graph; NULL when out of memory. */
ac_graph *ac_new(void);
/* Frees a graph and everything it holds (NULL is ignored). */
void ac_free(ac_graph *g);
/* The core's version string (AC_VERSION). */
const char *ac_version(void);

/* ===== nodes ===== */
/* Creates a node of `kind` owned by `owner` (0: none; only effects/scopes are
   owned). Returns its id (> 0), AC_BAD_ID (unknown kind, or owner not 0 and
   not a live node) or AC_OOM. `sched` is the scheduler handle of an effect or
   async node; it is checked when the node is queued, not here. */
ac_id ac_node_new(ac_graph *g, int kind, ac_id owner, int32_t sched);
/* Unlinks a node from everything and returns its slot to the free list; owned
   children are freed with it (no order is reported). Never allocates.
   AC_OK or AC_BAD_ID (also for an id already freed: freeing twice is safe). */
int ac_node_free(ac_graph *g, ac_id id);
/* Gives back the memory of a past peak: the link array and its free-slot
   bitmap shrink to the smallest power of two >= 64 that holds link_top, when
   that is at most a quarter of their size (free slots are handed out lowest
   first, so the tops come down as a peak's nodes and links are freed). The
   node array keeps its capacity (ids held by the embedder stay in bounds). Sets
   node_peak to node_top. Moves g->links: call it only with no pull open.
   AC_OK; AC_OOM when a smaller copy could not be allocated (the graph stays
   valid). */
int ac_trim(ac_graph *g);
/* Disposes `id` and everything it owns: children first, newest child first.
   Writes the disposed ids in that order to g->out and returns their count.
   With children_only, `id` itself stays. Disposed nodes are unlinked, marked
   AC_DISPOSED and freed (their ids are reusable after the call). Never
   allocates (g->out grows with the node array). Returns AC_BAD_ID for a free
   id (disposing twice). */
int32_t ac_dispose(ac_graph *g, ac_id id, int children_only);

/* ===== tracking ===== */
/* Starts a tracked run of `sub`: its dependency list will be rebuilt from the
   following ac_link calls, reusing existing links in order. AC_OK or
   AC_BAD_ID. */
int ac_begin(ac_graph *g, ac_id sub);
/* Records that the running `sub` read `dep`. AC_OK, AC_BAD_ID, or AC_OOM:
   the dependency was not recorded, and the run is marked incomplete so that
   ac_end leaves `sub` dirty (a watcher is queued again, a computed's readers
   are marked): the dependency is retried by the next run, never dropped. */
int ac_link(ac_graph *g, ac_id dep, ac_id sub);
/* Ends the run of `sub`: drops dependencies not read this time. Returns 1 if
   `sub` was notified during its own run or lost a link to AC_OOM (a watcher
   is re-queued; a computed stays dirty), 2 if `sub` was disposed during its
   run: its dependencies are dropped and the embedder finishes the release
   with ac_dispose(g, sub, 0), which then frees it and anything it created
   meanwhile (reported in g->out, not including sub). 0 otherwise, or
   AC_BAD_ID. Never fails for lack of memory (a re-queue that does is
   deferred to ac_retry, see below). */
int ac_end(ac_graph *g, ac_id sub);

/* ===== propagation ===== */
/* These never fail for lack of memory: the walk uses a stack reserved when
   nodes are created, and a watcher whose queue push fails is flagged
   AC_RETRY for ac_retry. Each returns AC_OK or AC_BAD_ID. */
/* `id` (a signal or async) was written with a new value: marks it dirty and its
   subscribers pending, queues effects into their schedulers and async nodes
   into g->async_notified. */
int ac_write(ac_graph *g, ac_id id);
/* After `id` was updated and changed: marks its direct subscribers dirty. */
int ac_changed(ac_graph *g, ac_id id);
/* An async node committed a new value: its readers are dirty, everything below
   them pending. */
int ac_touch(ac_graph *g, ac_id id);
/* Queues a watching node (effect: into its scheduler's effect phase; async:
   into g->async_notified) unless it is queued already. A node whose scheduler
   handle was released is not queued (nothing is marked). */
int ac_notify(ac_graph *g, ac_id id);
/* Queues the watchers flagged AC_RETRY (g->retry of them). AC_OK when none is
   left, AC_OOM when some still could not be queued. */
int ac_retry(ac_graph *g);

/* ===== pull (the resumable dependency check) ===== */
/* Checks whether the pending node `id` must be updated. Returns AC_CLEAN (the
   node's PENDING flag is cleared), AC_STALE (the node must be updated), a
   node id > 0 that the embedder must update first and then report with
   ac_pull_resume(changed), or AC_BAD_ID. Pulls nest. A pull never fails for
   lack of memory: without room for its frame or stack it answers AC_STALE,
   which is always safe (the node is recomputed, reading its deps). Nor does
   it loop on a ring of computeds (it answers AC_STALE). */
ac_id ac_pull(ac_graph *g, ac_id id);
/* Resumes the innermost pull; AC_STALE when none is open. If a node was freed
   while the pull waited, the pull is dropped and answers AC_STALE (or
   AC_CLEAN when its own node is gone). */
ac_id ac_pull_resume(ac_graph *g, int changed);
/* Drops the innermost pull (the embedder failed while updating). */
void ac_pull_abort(ac_graph *g);

/* ===== async nodes ===== */
/* Copies the notified async nodes to g->out, clearing their QUEUED flag;
   returns their count, or AC_OOM (nothing drained). */
int32_t ac_async_drain(ac_graph *g);
/* Starts a new run of async node `id`: version + 1 (never 0), which it
   returns; 0 for a bad id or a node that is not async. */
uint32_t ac_task_start(ac_graph *g, ac_id id);
/* Ends the run in flight: 1 if there was one, 0 if not, AC_BAD_ID. */
int ac_task_abort(ac_graph *g, ac_id id);
/* Commits run `version` if it is the current one: 1 (and the run ends), 0 if
   it is stale or aborted, AC_BAD_ID. */
int ac_task_commit(ac_graph *g, ac_id id, uint32_t version);

/* ===== scheduler ===== */
/* Schedulers are named by handles ((generation << 20) | slot): a released
   handle never reaches the scheduler that later reuses its slot (a slot whose
   generation would wrap is retired, not reused). Every function below checks
   its handle; a released one has nothing queued. */
/* Creates a scheduler: a handle >= 0, or AC_OOM. */
int32_t ac_sched_new(ac_graph *g, int32_t max_depth);
/* Releases a scheduler (its queued jobs are dropped): AC_OK or AC_BAD_ID
   (releasing twice). */
int ac_sched_release(ac_graph *g, int32_t s);
/* Queues the embedder's job `handle` (> 0) in `phase`. Returns 1 if queued,
   0 if dropped (dead scope or duplicate (phase, scope, key) while pending),
   AC_BAD_ID (released scheduler, handle <= 0, unknown phase) or AC_OOM
   (nothing queued). */
int ac_sched_push(ac_graph *g, int32_t s, int32_t phase, int32_t handle, int32_t scope, int32_t key);
/* The next job of the flush in progress (starting one if needed), for the
   embedder's hot loop: the job's handle (the whole job is in
   g->scheds[s & AC_SCHED_SLOT_MASK].last; < 0 is -(effect node id)), 0 when
   the flush is done (also for a released handle), AC_STEP_DROPPED for a job
   of a destroyed scope (free last.handle), or AC_STEP_DEPTH past max_depth
   (the queues were cleared). */
int32_t ac_sched_step(ac_graph *g, int32_t s);
/* Takes one scheduler off the list of those that received jobs; -1 if none. */
int32_t ac_sched_take_one(ac_graph *g);
/* Jobs waiting in all phases (0 for a released handle). */
int32_t ac_sched_size(ac_graph *g, int32_t s);
/* Drops every waiting job (effects lose their queued mark): AC_OK or AC_BAD_ID. */
int ac_sched_clear(ac_graph *g, int32_t s);
/* Marks `scope` (> 0) dead and drops its waiting jobs: AC_OK, AC_BAD_ID, or
   AC_OOM (nothing changed). */
int ac_sched_destroy_scope(ac_graph *g, int32_t s, int32_t scope);
/* Lets `scope` queue jobs again: AC_OK or AC_BAD_ID. */
int ac_sched_revive_scope(ac_graph *g, int32_t s, int32_t scope);

#endif
