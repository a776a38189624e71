--- The C core, loaded through the LuaJIT FFI.
-- Under the asyncrt interpreter the core is linked into the executable and
-- found through ffi.C; elsewhere async_core.so is searched on package.cpath
-- (ASYNC_CORE_LIB overrides the path). The declarations below mirror
-- src/core/core.h; spec/core_ffi_spec.lua checks the struct sizes agree.
local ffi = require("ffi")
local os_getenv, pcall, error = os.getenv, pcall, error

local _M = {}

ffi.cdef [[
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
  ac_queue q[5];
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
ac_graph *ac_new(void);
void ac_free(ac_graph *g);
const char *ac_version(void);
int32_t ac_node_size(void);
int32_t ac_link_size(void);
int32_t ac_sizeof(const char *type);
ac_id ac_node_new(ac_graph *g, int kind, ac_id owner, int32_t sched);
void ac_node_free(ac_graph *g, ac_id id);
int32_t ac_dispose(ac_graph *g, ac_id id, int children_only);
void ac_begin(ac_graph *g, ac_id sub);
void ac_link(ac_graph *g, ac_id dep, ac_id sub);
int ac_end(ac_graph *g, ac_id sub);
void ac_write(ac_graph *g, ac_id id);
void ac_changed(ac_graph *g, ac_id id);
void ac_touch(ac_graph *g, ac_id id);
void ac_notify(ac_graph *g, ac_id id);
ac_id ac_pull(ac_graph *g, ac_id id);
ac_id ac_pull_resume(ac_graph *g, int changed);
void ac_pull_abort(ac_graph *g);
void ac_updated(ac_graph *g, ac_id id, int changed);
int32_t ac_async_drain(ac_graph *g);
uint32_t ac_task_start(ac_graph *g, ac_id id);
int ac_task_abort(ac_graph *g, ac_id id);
int ac_task_current(ac_graph *g, ac_id id, uint32_t version);
int ac_task_commit(ac_graph *g, ac_id id, uint32_t version);
int32_t ac_sched_new(ac_graph *g, int32_t max_depth);
void ac_sched_release(ac_graph *g, int32_t s);
void ac_sched_free_all(ac_graph *g);
int ac_sched_push(ac_graph *g, int32_t s, int32_t phase, int32_t handle, int32_t scope, int32_t key);
int ac_sched_next(ac_graph *g, int32_t s, ac_job *out);
int32_t ac_sched_step(ac_graph *g, int32_t s);
int32_t ac_sched_take_one(ac_graph *g);
int32_t ac_sched_size(ac_graph *g, int32_t s);
void ac_sched_clear(ac_graph *g, int32_t s);
void ac_sched_end(ac_graph *g, int32_t s);
void ac_sched_destroy_scope(ac_graph *g, int32_t s, int32_t scope);
void ac_sched_revive_scope(ac_graph *g, int32_t s, int32_t scope);
int32_t ac_sched_take_dirty(ac_graph *g);
]]

local function load_core()
  local path = os_getenv("ASYNC_CORE_LIB")
  if path and path ~= "" then return ffi.load(path) end
  local linked = pcall(function() return ffi.C.ac_version end)
  if linked then return ffi.C end
  path = package.searchpath("async_core", package.cpath)
  if not path then
    error("async: cannot find the C core async_core.so on package.cpath (" .. package.cpath ..
      "); build it with `make` and use `eval \"$(make -s dev-env)\"`, or set ASYNC_CORE_LIB", 0)
  end
  return ffi.load(path)
end

local C = load_core()
local G = C.ac_new()
if G == nil then error("async: out of memory creating the reactive graph", 0) end

_M.C = C
_M.G = G

-- flags and kinds (core.h)
_M.MUTABLE, _M.WATCHING, _M.RECURSED_CHECK, _M.RECURSED = 1, 2, 4, 8
_M.DIRTY, _M.PENDING, _M.QUEUED, _M.DISPOSED, _M.FREE = 16, 32, 64, 128, 256
_M.ERROR = 512            -- embedder bit: a computed holds a cached error
_M.KIND_SHIFT = 12
_M.SIGNAL, _M.COMPUTED, _M.EFFECT, _M.ASYNC, _M.SCOPE = 0, 1, 2, 3, 4
_M.PHASES = { binding = 0, lifecycle = 1, effect = 2, async = 3, post = 4 }
_M.PHASE_NAMES = { [0] = "binding", "lifecycle", "effect", "async", "post" }

--- Memory figures of the core.
function _M.stats()
  return {
    node_bytes = C.ac_node_size(), link_bytes = C.ac_link_size(),
    live_nodes = G.live_nodes, live_links = G.live_links,
    node_capacity = G.node_cap, link_capacity = G.link_cap,
    version = ffi.string(C.ac_version()),
  }
end

return _M
