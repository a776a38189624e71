--- The reactive kernel's Lua face: signals, computeds, effects, scopes,
-- batches and transactions (semantics: shared/spec/kernel.md).
--
-- Structure and flags live in the C core (async.core); values, user
-- functions and cleanups live here in plain arrays indexed by node id. The
-- core never calls Lua: a pull returns "update node N", this side updates N
-- and resumes the pull with whether N changed.
local ffi = require("ffi")
local bit = require("bit")
local core = require("async.kernel.core")
local scheduler = require("async.kernel.scheduler")

local C, G = core.C, core.G
local fail = core.fail
local band, bor, bnot, rshift = bit.band, bit.bor, bit.bnot, bit.rshift
local type, error, pcall, setmetatable, getmetatable = type, error, pcall, setmetatable, getmetatable
local co_resume, co_status, co_running = coroutine.resume, coroutine.status, coroutine.running

local DIRTY, PENDING, RECURSED_CHECK, ERROR = core.DIRTY, core.PENDING, core.RECURSED_CHECK, core.ERROR
local KIND_SHIFT = core.KIND_SHIFT
local K_SIGNAL, K_COMPUTED, K_EFFECT, K_SCOPE, K_ASYNC = core.SIGNAL, core.COMPUTED, core.EFFECT, core.SCOPE,
  core.ASYNC
local NOT_DIRTY = bnot(DIRTY)
local NOT_ERROR = bnot(ERROR)

local _M = {}

-- ===== state =====
local vals = {}          -- id -> latest value (signals), cached value or error (computeds)
local seen = {}          -- signal id -> the value its readers last saw (commit baseline)
local eqs = {}           -- id -> custom equals
local owned = {}         -- effect/scope id -> token table { disposed = bool }
local to_free = {}       -- ids whose Lua objects were collected, freed at a safe point
local to_dispose = {}    -- (id, serial) of roots whose root object was collected, disposed at a safe point

-- Homes: who keeps a node's functions alive. The functions of computeds and
-- effects (and effects' cleanups) are looked up in `fns` and `cleanups`,
-- which hold them weakly; the strong reference is in the node's home. A node
-- made for a root (a runtime: kernel.root()) lives in the root's home, which
-- only the root object holds: when a runtime is dropped without destroy, its
-- root, its home and every closure in it become garbage together (a global
-- table holding them would keep the runtime alive through its closures), and
-- the root's finalizer disposes its scope. Other nodes live in the global home.
local WEAK_V = { __mode = "v" }
local fns = setmetatable({}, WEAK_V)       -- computed/effect id -> function
local cleanups = setmetatable({}, WEAK_V)  -- effect/scope id -> cleanup function or list
-- node id -> its home: one table, [id] = function, [-id] = cleanup,
-- [scheduler] = true for the schedulers its effects run on
local home_of = setmetatable({}, WEAK_V)
local global_home = {}

local active = 0         -- node whose reads are tracked (0: none)
local owner = 0          -- effect or scope that owns new effects
local computing = 0      -- depth of computed evaluations (writes are errors)
local batch_depth = 0
local tx_depth = 0
-- the transaction log: signals by id with their value and commit baseline
-- before the transaction; computeds recomputed inside it by -id with their
-- cached value and state ("val", "err" or "none") before it
local tx_log_ids, tx_log_vals, tx_log_seen, tx_log_n = {}, {}, {}, 0
local tx_starts, tx_marks = {}, {}
local current_run = nil  -- async run whose coroutine is running (its writes are buffered)
-- coroutine -> async run. Weak both ways: a run references its coroutine,
-- and a weak-keyed table whose value references its key keeps both forever
-- (LuaJIT has no ephemerons); the run is held by its async signal while it
-- is current, and the async signal by the coroutine's ctx.
local run_of = setmetatable({}, { __mode = "kv" })
-- coroutines of aborted runs: never resumed again (weak keys, no values to leak)
local dead_runs = setmetatable({}, { __mode = "k" })
-- [hook for async.loop.ngx] runs are threads their loop resumes (see
-- run_suspend below). A run that waits on nginx without async.loop (a raw
-- ngx.sleep, a cosocket) leaves its context current while other threads
-- run: a write is the current run's only when it comes from the run's own
-- thread (else from whichever run's thread is writing, or none).
local threaded_runs = false
local function threaded_check(run)
  local co = co_running()
  if run.co == co then return run end
  return run_of[co]
end

-- what this kernel gives its schedulers (scheduler.new): run a due effect or
-- async node, run a batch; both filled in below
local sched_kernel = { run = nil, batch = nil }
local default_sched  -- created below, once the runner exists
local async_hook         -- set by async.async_signal: function(id) handles a notified async node

-- records what a write (or a recompute) inside a transaction changes, once
-- per transaction level
local function tx_log(id, old, old_seen)
  local marks = tx_marks[tx_depth]
  if marks[id] then return end
  marks[id] = true
  local n = tx_log_n + 1
  tx_log_n = n
  tx_log_ids[n], tx_log_vals[n], tx_log_seen[n] = id, old, old_seen
end

-- ===== equality =====
local function default_equals(a, b)
  return a == b or (a ~= a and b ~= b)
end

-- A custom equals that raises counts as "not equal"; its error is kept in
-- eq_error and raised by the caller once the graph is consistent again
-- (never from inside a pull, which would leave the core's pull open).
local eq_error = nil

local function equal(id, a, b)
  local eq = eqs[id]
  if eq == nil then return a == b or (a ~= a and b ~= b) end
  local prev = active
  active = 0
  local ok, r = pcall(eq, a, b)
  active = prev
  if not ok then
    if eq_error == nil then eq_error = r end
    return false
  end
  return r and true or false
end

local function raise_eq_error()
  local e = eq_error
  eq_error = nil
  error(e, 0)
end

-- ===== deferred frees (GC finalizers run at arbitrary points) =====
-- The list is swapped out first: a finalizer running during the loop (a GC
-- step can run on any allocation, trace exits included) appends to the new
-- list instead of punching holes into the one being walked.
local dispose_dropped  -- below: disposes the scopes of collected roots

local function collect()
  if active ~= 0 or G.pull_len ~= 0 then return end
  if to_dispose[1] ~= nil and batch_depth == 0 then dispose_dropped() end
  local list = to_free
  if list[1] == nil then return end
  -- swap before counting: allocating the new list can run a GC step whose
  -- finalizers still append to `list` (counting first lost those ids)
  to_free = {}
  local n = #list
  for i = 1, n do
    local id = list[i]
    C.ac_node_free(G, id)
    vals[id], seen[id], fns[id], eqs[id] = nil, nil, nil, nil
    local h = home_of[id]
    if h then h[id] = nil; home_of[id] = nil end
  end
end

-- the home for a node made now: the root's if one is given, else its
-- owner's, else the global one
local function home_for(root, own)
  if root ~= nil then return root.home end
  if own ~= 0 then return home_of[own] or global_home end
  return global_home
end

-- sets the cleanup (a function or a list) of effect/scope `id`
local function set_cleanup(id, cl)
  cleanups[id] = cl
  local h = home_of[id]
  if h then h[-id] = cl end
end

local function finalize(obj)
  to_free[#to_free + 1] = obj.id
end

-- ===== settling: after the outermost write, batch or transaction =====
local function drain_async()
  local n = C.ac_async_drain(G)
  if n < 0 then fail(n, "handing out async signals", 2) end
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = G.out[i] end
  for i = 1, n do async_hook(ids[i]) end
end

--- Pokes every scheduler that received jobs; all are poked even if one
-- raises, then the first error is raised.
local function poke_schedulers()
  local first
  local si = C.ac_sched_take_one(G)
  while si >= 0 do
    local s = scheduler.get(si)
    if s then
      local ok, err = pcall(s.poke, s)
      if not ok and first == nil then first = err end
    end
    si = C.ac_sched_take_one(G)
  end
  if first ~= nil then error(first, 0) end
end

local function settle()
  -- notifications the core could not queue for lack of memory (AC_RETRY)
  local lost = G.retry ~= 0 and C.ac_retry(G) ~= 0
  if G.async_len ~= 0 and async_hook then drain_async() end
  if G.sched_list_len ~= 0 then
    if G.sched_list_len == 1 then
      -- the common case, without a loop (LuaJIT compiles it straight)
      local s = scheduler.get(C.ac_sched_take_one(G))
      if s then s:poke() end
    else
      poke_schedulers()
    end
  end
  if to_free[1] ~= nil or to_dispose[1] ~= nil then collect() end
  if lost then error("async: out of memory queueing effects (they run once memory is available)", 0) end
end

-- ===== pull: bring a pending node up to date =====
local update

local function pull_more(r)
  while r > 0 do
    r = C.ac_pull_resume(G, update(r) and 1 or 0)
  end
  if eq_error ~= nil then raise_eq_error() end
  return r == -1
end

--- Checks the pending node `id`; true when it must be updated. update()
-- does not raise (user code runs under pcall in recompute; equals errors
-- are deferred), so the pull always completes. The first two updates are
-- handled without a loop: most pulls need one or two, and a loop of one
-- trip keeps LuaJIT from compiling the callers.
local function pull(id)
  local r = C.ac_pull(G, id)
  if r <= 0 then return r == -1 end
  r = C.ac_pull_resume(G, update(r) and 1 or 0)
  if r <= 0 then
    if eq_error ~= nil then raise_eq_error() end
    return r == -1
  end
  return pull_more(C.ac_pull_resume(G, update(r) and 1 or 0))
end

--- Re-runs the computed `id`; true when its value changed. A raised error
-- is cached as the value (ERROR flag) and counts as a change.
-- ac_begin runs inside the protected call: if pcall itself fails (a Lua
-- stack overflow on a very deep first evaluation), the node was never begun
-- and stays DIRTY, and the saved counters are restored, not decremented.
local function eval(id, fn, old)
  C.ac_begin(G, id)
  -- not a tail call: the getter then returns into this Lua frame, which
  -- LuaJIT can compile; returning straight into pcall's frame is "NYI:
  -- return to lower frame" and gets every getter's trace blacklisted
  local v = fn(old)
  return v
end

-- The second half of recompute, as its own function: code right after a
-- pcall returns often runs in the interpreter (the getter's trace cannot
-- return through the pcall), and a call to a hot function is where LuaJIT
-- re-enters compiled code.
local function recompute_end(id, ok, v, old, prev_active, prev_computing)
  C.ac_end(G, id)
  computing = prev_computing
  active = prev_active
  local node = G.nodes[id]
  local f = node.flags
  if ok then
    if band(f, ERROR) ~= 0 then
      node.flags = band(f, NOT_ERROR)
    elseif seen[id] and equal(id, old, v) then
      return false
    end
  else
    node.flags = bor(f, ERROR)
  end
  if tx_depth > 0 then
    tx_log(-id, old, band(f, ERROR) ~= 0 and "err" or (seen[id] and "val" or "none"))
  end
  vals[id] = v
  seen[id] = true       -- computeds: "holds a value"
  return true
end

local function recompute(id)
  local prev_active, prev_computing = active, computing
  active = id
  computing = prev_computing + 1
  local old = vals[id]
  local ok, v = pcall(eval, id, fns[id], old)
  return recompute_end(id, ok, v, old, prev_active, prev_computing)
end

--- Updates node `id` (a dirty signal or computed); true when it changed.
function update(id)
  local node = G.nodes[id]
  local f = node.flags
  if rshift(f, KIND_SHIFT) == K_SIGNAL then
    node.flags = band(f, NOT_DIRTY)
    local v = vals[id]
    local old = seen[id]
    seen[id] = v
    return not equal(id, old, v)
  end
  return recompute(id)
end

-- ===== signals =====
ffi.cdef [[
typedef struct async_signal { const int32_t id; } async_signal;
typedef struct async_computed { const int32_t id; } async_computed;
]]

local Signal = {}
local Computed = {}

local function signal_get(s)
  local id = s.id
  local node = G.nodes[id]
  local f = node.flags
  if band(f, DIRTY) ~= 0 then
    node.flags = band(f, NOT_DIRTY)
    local v, old = vals[id], seen[id]
    seen[id] = v
    -- re-read the node: a custom equals may have grown (moved) the array
    if not equal(id, old, v) and G.nodes[id].subs ~= 0 then C.ac_changed(G, id) end
    if eq_error ~= nil then raise_eq_error() end
  end
  if active ~= 0 then
    local r = C.ac_link(G, id, active)
    if r ~= 0 then fail(r, "tracking a read") end
  end
  return vals[id]
end

local function signal_peek(s)
  return vals[s.id]
end

local function signal_set(s, v)
  if computing > 0 then
    error("Cannot write to a signal inside a computed", 2)
  end
  local run = current_run
  if run ~= nil and threaded_runs then run = threaded_check(run) end
  if run ~= nil then
    local w = run.writes
    w[#w + 1] = s
    w[#w + 1] = v
    return
  end
  local id = s.id
  local old = vals[id]
  if equal(id, old, v) then return end
  if eq_error ~= nil then raise_eq_error() end
  if tx_depth > 0 then tx_log(id, old, seen[id]) end
  vals[id] = v
  local r = C.ac_write(G, id)
  if r ~= 0 then
    vals[id] = old
    fail(r, "writing a signal")
  end
  if batch_depth == 0 then settle() end
end

Signal.get = signal_get
Signal.peek = signal_peek
Signal.set = signal_set
function Signal.update(s, fn)
  if type(fn) ~= "function" then error("update expects a function, got " .. type(fn), 2) end
  return signal_set(s, fn(vals[s.id]))
end
Signal.__index = Signal
Signal.__call = signal_get
Signal.__gc = finalize
function Signal.__tostring(s) return "signal: " .. s.id end

local SignalT = ffi.metatype("async_signal", Signal)

local function check_opts(opts, what)
  if opts == nil then return nil end
  if type(opts) ~= "table" then error(what .. " options must be a table, got " .. type(opts), 3) end
  local eq = opts.equals
  if eq ~= nil and type(eq) ~= "function" then
    error(what .. " option equals must be a function, got " .. type(eq), 3)
  end
  return eq
end

--- A source value.
function _M.signal(value, opts)
  local eq = check_opts(opts, "signal")
  if #to_free > 0 or to_dispose[1] ~= nil then collect() end
  local id = C.ac_node_new(G, K_SIGNAL, 0, -1)
  if id <= 0 then fail(id, "creating a signal", 2) end
  vals[id], seen[id] = value, value
  if eq then eqs[id] = eq end
  local s = SignalT(id)   -- not a tail call: a trace cannot record it at its root
  return s
end

-- ===== computeds =====
local function computed_get(c)
  local id = c.id
  local f = G.nodes[id].flags
  if band(f, RECURSED_CHECK) ~= 0 then
    error("Cycle detected: a computed read itself", 2)
  end
  if band(f, DIRTY) ~= 0 or (band(f, PENDING) ~= 0 and pull(id)) then
    if recompute(id) then C.ac_changed(G, id) end
    if eq_error ~= nil then raise_eq_error() end
  end
  if active ~= 0 then
    local r = C.ac_link(G, id, active)
    if r ~= 0 then fail(r, "tracking a read") end
  end
  if band(G.nodes[id].flags, ERROR) ~= 0 then error(vals[id], 0) end
  return vals[id]
end

local function computed_peek(c)
  local prev = active
  active = 0
  local ok, v = pcall(computed_get, c)
  active = prev
  if not ok then error(v, 0) end
  return v
end

Computed.get = computed_get
Computed.peek = computed_peek
Computed.__index = Computed
Computed.__call = computed_get
Computed.__gc = finalize
function Computed.__tostring(c) return "computed: " .. c.id end

local ComputedT = ffi.metatype("async_computed", Computed)

--- A derived value: lazy, cached, glitch-free.
function _M.computed(fn, opts)
  if type(fn) ~= "function" then
    error("computed expects a function, got " .. type(fn), 2)
  end
  local eq = check_opts(opts, "computed")
  if #to_free > 0 or to_dispose[1] ~= nil then collect() end
  local id = C.ac_node_new(G, K_COMPUTED, 0, -1)
  if id <= 0 then fail(id, "creating a computed", 2) end
  local h = home_for(opts and opts.root, owner)
  fns[id] = fn
  h[id] = fn
  home_of[id] = h
  if eq then eqs[id] = eq end
  return ComputedT(id)
end

function _M.is_signal(v) return ffi.istype(SignalT, v) end
function _M.is_computed(v) return ffi.istype(ComputedT, v) end

-- ===== batches and transactions =====
-- settle() called from a fixed-arity frame: batch_end is vararg, and LuaJIT
-- cannot compile a return into a vararg frame below the trace's start ("NYI:
-- return to lower frame"), so settle's own traces return here instead.
local function settle_after_batch()
  settle()
end

local function batch_end(ok, ...)
  batch_depth = batch_depth - 1
  if batch_depth == 0 then
    if not ok then
      pcall(settle)
      error((...), 0)
    end
    settle_after_batch()
  elseif not ok then
    error((...), 0)
  end
  return ...
end

--- Runs fn(...) as one commit; returns its results.
function _M.batch(fn, ...)
  if type(fn) ~= "function" then error("batch expects a function, got " .. type(fn), 2) end
  batch_depth = batch_depth + 1
  return batch_end(pcall(fn, ...))
end

-- Puts back what the transaction changed: signal values and baselines
-- (readers compare against the baseline, so a reader that pulled the new
-- value inside the transaction sees no change after), and the cached values
-- of computeds recomputed inside it, marked dirty: their next evaluation
-- compares with the restored value, so nothing below them reruns.
-- An effect marked dirty by a value seen inside the transaction would run
-- without checking: it is marked pending instead, so it checks its
-- dependencies (restored) and runs only if one really differs.
local function recheck_subscribers(id)
  local l = G.nodes[id].subs
  while l ~= 0 do
    local link = G.links[l]
    local sub = G.nodes[link.sub]
    local f = sub.flags
    local kind = rshift(f, KIND_SHIFT)
    if band(f, DIRTY) ~= 0 and (kind == K_EFFECT or kind == K_ASYNC) then
      sub.flags = bor(band(f, NOT_DIRTY), PENDING)
    end
    l = link.next_sub
  end
end

local function rollback(from)
  for i = tx_log_n, from, -1 do
    recheck_subscribers(tx_log_ids[i] > 0 and tx_log_ids[i] or -tx_log_ids[i])
  end
  for i = tx_log_n, from, -1 do
    local id, old, old_seen = tx_log_ids[i], tx_log_vals[i], tx_log_seen[i]
    tx_log_ids[i], tx_log_vals[i], tx_log_seen[i] = nil, nil, nil
    -- nothing is freed inside a transaction (collect runs in settle)
    if id > 0 then
      vals[id], seen[id] = old, old_seen
      C.ac_write(G, id)
    else
      id = -id
      vals[id] = old
      seen[id] = old_seen ~= "none" or nil
      local node = G.nodes[id]
      local f = bor(node.flags, DIRTY)
      node.flags = old_seen == "err" and bor(f, ERROR) or band(f, NOT_ERROR)
    end
  end
  tx_log_n = from - 1
end

local function tx_end(ok, ...)
  local start = tx_starts[tx_depth]
  tx_starts[tx_depth], tx_marks[tx_depth] = nil, nil
  tx_depth = tx_depth - 1
  if not ok then rollback(start) end
  if tx_depth == 0 then
    for i = 1, tx_log_n do tx_log_ids[i], tx_log_vals[i], tx_log_seen[i] = nil, nil, nil end
    tx_log_n = 0
  end
  return batch_end(ok, ...)
end

sched_kernel.batch = _M.batch

--- An all-or-nothing batch: if fn raises, its writes are rolled back.
function _M.transaction(fn, ...)
  if type(fn) ~= "function" then error("transaction expects a function, got " .. type(fn), 2) end
  batch_depth = batch_depth + 1
  tx_depth = tx_depth + 1
  tx_starts[tx_depth] = tx_log_n + 1
  tx_marks[tx_depth] = {}
  return tx_end(pcall(fn, ...))
end

local function untrack_end(prev, ok, ...)
  active = prev
  if not ok then error((...), 0) end
  return ...
end

--- Runs fn(...) without tracking reads.
function _M.untrack(fn, ...)
  if type(fn) ~= "function" then error("untrack expects a function, got " .. type(fn), 2) end
  local prev = active
  active = 0
  return untrack_end(prev, pcall(fn, ...))
end

-- ===== effects, scopes and ownership =====
local function run_cleanup(fn)
  local prev_active = active
  active = 0
  batch_depth = batch_depth + 1
  local ok, err = pcall(fn)
  batch_depth = batch_depth - 1
  active = prev_active
  return ok, err
end

local function run_cleanups(id, first)
  local cl = cleanups[id]
  if cl == nil then return first end
  set_cleanup(id, nil)
  if type(cl) == "function" then
    local ok, err = run_cleanup(cl)
    if not ok and first == nil then first = err end
  else
    for i = #cl, 1, -1 do
      local ok, err = run_cleanup(cl[i])
      if not ok and first == nil then first = err end
    end
  end
  return first
end

--- Disposes the subtree of `id` (children only when children_only).
-- Returns the first error raised by a cleanup.
local function dispose_tree(id, children_only)
  local n = C.ac_dispose(G, id, children_only and 1 or 0)
  if n <= 0 then return nil end   -- nothing owned, or disposed already (AC_BAD_ID)
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = G.out[i] end
  local pending = {}
  for i = 1, n do
    local d = ids[i]
    local tok = owned[d]
    if tok then tok.disposed = true; owned[d] = nil end
    pending[i] = cleanups[d]
    cleanups[d], fns[d], vals[d] = nil, nil, nil
    local h = home_of[d]
    if h then h[d], h[-d] = nil, nil; home_of[d] = nil end
  end
  local first
  for i = 1, n do
    local cl = pending[i]
    if cl ~= nil then
      cleanups[0] = cl
      first = run_cleanups(0, first)
    end
  end
  return first
end

-- Disposes the scopes of roots that were collected (their runtimes were
-- dropped without destroy). Cleanups whose closures were collected with the
-- root do not run: nothing can observe them.
function dispose_dropped()
  local list = to_dispose
  to_dispose = {}
  for i = 1, #list, 2 do
    local id, serial = list[i], list[i + 1]
    -- a root disposed explicitly has no token any more, and its id may
    -- already name another node: the serial tells them apart
    local tok = owned[id]
    if tok and tok.serial == serial and not tok.disposed then pcall(dispose_tree, id, false) end
  end
end

--- Registers fn to run when the current effect reruns or its owner is disposed.
function _M.on_cleanup(fn)
  if type(fn) ~= "function" then error("on_cleanup expects a function, got " .. type(fn), 2) end
  if owner == 0 then return false end
  local cl = cleanups[owner]
  if cl == nil then
    set_cleanup(owner, { fn })
  elseif type(cl) == "function" then
    set_cleanup(owner, { cl, fn })
  else
    cl[#cl + 1] = fn
  end
  return true
end

-- Calls an effect body from a Lua frame (see eval: no tail call into pcall).
local function call_body(fn)
  local r = fn()
  return r
end

--- Runs the effect `id` if a dependency changed. Returns ok, err.
-- The second half of run_effect, as its own function (see recompute_end).
local function run_effect_end(id, ok, res, first, prev_active, prev_owner, prev_computing)
  local ended = C.ac_end(G, id)
  active, owner, computing = prev_active, prev_owner, prev_computing
  batch_depth = batch_depth - 1
  if ended == 2 then
    -- disposed during its own run: its cleanups already ran, except the one
    -- this run returned; release it and whatever it created meanwhile
    if ok and type(res) == "function" then
      local cok, cerr = run_cleanup(res)
      if not cok and first == nil then first = cerr end
    end
    local derr = dispose_tree(id, false)
    if first == nil then first = derr end
  elseif ok and type(res) == "function" then
    local cl = cleanups[id]
    if cl == nil then set_cleanup(id, res)
    elseif type(cl) == "function" then set_cleanup(id, { cl, res })
    else cl[#cl + 1] = res end
  end
  if batch_depth == 0 then
    local sok, serr = pcall(settle)
    if not sok and first == nil then first = serr end
  end
  if not ok then return false, res end
  if first ~= nil then return false, first end
  return true
end

local function run_effect(id)
  local f = G.nodes[id].flags
  if band(f, DIRTY) == 0 and (band(f, PENDING) == 0 or not pull(id)) then
    return true
  end
  -- the pull may have run a computed that disposed this effect; its home may
  -- have been collected (disposed at the next safe point)
  local fn, tok = fns[id], owned[id]
  if fn == nil or tok == nil then return true end
  local first = nil
  if G.nodes[id].last_child ~= 0 then first = dispose_tree(id, true) end
  if cleanups[id] ~= nil then first = run_cleanups(id, first) end
  if tok.disposed then
    -- a cleanup disposed it: it never runs again (its id may already name a
    -- node the cleanup created)
    if first ~= nil then return false, first end
    return true
  end
  local prev_active, prev_owner, prev_computing = active, owner, computing
  active, owner, computing = id, id, 0
  batch_depth = batch_depth + 1
  C.ac_begin(G, id)
  local ok, res = pcall(call_body, fn)
  return run_effect_end(id, ok, res, first, prev_active, prev_owner, prev_computing)
end

local function run_watcher(id)
  local kind = rshift(G.nodes[id].flags, KIND_SHIFT)
  if kind == K_EFFECT then return run_effect(id) end
  return true
end
sched_kernel.run = run_watcher

--- Creates a scheduler of this kernel (lua-api.md "Scheduler").
function _M.create_scheduler(opts)
  return scheduler.new(opts, sched_kernel)
end
default_sched = scheduler.new({ strategy = "sync" }, sched_kernel)

local function dispose_owned(id, tok)
  if tok.disposed then return end
  local err = dispose_tree(id, false)
  if batch_depth == 0 then settle() end
  if err ~= nil then error(err, 0) end
end

--- A side effect; returns its dispose function.
function _M.effect(fn, opts)
  if type(fn) ~= "function" then error("effect expects a function, got " .. type(fn), 2) end
  local sched, root = default_sched, nil
  if opts ~= nil then
    if type(opts) ~= "table" then error("effect options must be a table, got " .. type(opts), 2) end
    sched = opts.scheduler or sched
    root = opts.root
  end
  if #to_free > 0 or to_dispose[1] ~= nil then collect() end
  local h = home_for(root, owner)
  local id = C.ac_node_new(G, K_EFFECT, owner ~= 0 and owner or (root and root.id or 0), sched.index)
  if id <= 0 then fail(id, "creating an effect", 2) end
  fns[id] = fn
  h[id] = fn
  home_of[id] = h
  -- the effect's home keeps its scheduler alive (schedulers are held weakly
  -- and released when collected) for as long as the effect lives
  local tok = { disposed = false }
  owned[id] = tok
  if sched ~= default_sched then
    if h == global_home then tok.sched = sched else h[sched] = true end
  end
  C.ac_notify(G, id)
  if batch_depth == 0 then settle() end
  return function() return dispose_owned(id, tok) end
end

--- Runs fn with a new owner: effects created inside are disposed together.
-- opts.root: the root that owns the scope when no effect or scope is running.
function _M.scope(fn, opts)
  if type(fn) ~= "function" then error("scope expects a function, got " .. type(fn), 2) end
  local root = opts and opts.root
  local id = C.ac_node_new(G, K_SCOPE, owner ~= 0 and owner or (root and root.id or 0), -1)
  if id <= 0 then fail(id, "creating a scope", 2) end
  home_of[id] = home_for(root, owner)
  local tok = { disposed = false }
  owned[id] = tok
  local prev = owner
  owner = id
  local ok, err = pcall(fn)
  owner = prev
  local function dispose() return dispose_owned(id, tok) end
  if not ok then
    pcall(dispose)
    error(err, 0)
  end
  return dispose
end

--- kernel.scope for callers that make a scope per object (components), in
-- two calls and without a closure (LuaJIT does not compile closure
-- creation, nor a trace that runs into one made by the body):
-- `local h, prev = scope_enter(root)` makes a scope and makes it the owner,
-- the caller runs its body, then `scope_leave(prev)` (always, also when the
-- body raised). dispose_handle(h) disposes the scope. root: as opts.root of
-- scope.
function _M.scope_enter(root)
  local id = C.ac_node_new(G, K_SCOPE, owner ~= 0 and owner or (root and root.id or 0), -1)
  if id <= 0 then fail(id, "creating a scope", 2) end
  home_of[id] = home_for(root, owner)
  local tok = { disposed = false, id = id }
  owned[id] = tok
  local prev = owner
  owner = id
  return tok, prev
end

function _M.scope_leave(prev) owner = prev end

--- Disposes a scope made by scope_enter (idempotent).
function _M.dispose_handle(h) return dispose_owned(h.id, h) end

-- ===== roots: what a runtime owns =====

local Root = {}
Root.__index = Root

ffi.cdef [[ typedef struct async_root_gc { int32_t id, serial; } async_root_gc; ]]
local RootGC = ffi.typeof("async_root_gc")
local root_serial = 0

local function finalize_root(p)
  local n = #to_dispose
  to_dispose[n + 1] = p.id
  to_dispose[n + 2] = p.serial
end

--- A root: a scope that owns the effects made with `{ root = r }` (or made
-- by them), and a home that keeps the functions of its nodes alive. A
-- runtime has one. `r:dispose()` disposes them all; a root that is only
-- dropped is collected, and its scope disposed at the next safe point.
function _M.root()
  if #to_free > 0 or to_dispose[1] ~= nil then collect() end
  local id = C.ac_node_new(G, K_SCOPE, 0, -1)
  if id <= 0 then fail(id, "creating a root", 2) end
  local home = {}
  home_of[id] = home
  root_serial = root_serial + 1
  local tok = { disposed = false, serial = root_serial }
  owned[id] = tok
  -- one finalizer for every root, closing over nothing: it names the root
  -- by (id, serial), never by the root or its home
  local gc = ffi.gc(RootGC(id, root_serial), finalize_root)
  return setmetatable({ id = id, home = home, tok = tok, gc = gc }, Root)
end

--- Disposes everything the root owns (children first). Idempotent.
function Root:dispose()
  return dispose_owned(self.id, self.tok)
end

function _M.is_root(v) return getmetatable(v) == Root end

--- Flushes the default scheduler (for the manual strategy).
function _M.flush()
  default_sched:flush()
end

function _M.default_scheduler() return default_sched end

--- Replaces the default scheduler (used by runtimes and tests).
function _M.set_default_scheduler(s)
  local prev = default_sched
  default_sched = s
  return prev
end

-- ===== hooks for async signals (async/async_signal.lua) =====
local internal = {}
_M._internal = internal

function internal.set_async_hook(fn) async_hook = fn end
function internal.computed_fn(c) return fns[c.id] end
function internal.settle() if batch_depth == 0 then settle() end end
function internal.pull(id) return pull(id) end
function internal.vals() return vals end
function internal.run_of() return run_of end
function internal.begin_tracking(id)
  local prev = active
  active = id
  C.ac_begin(G, id)
  return prev
end
function internal.end_tracking(id, prev)
  C.ac_end(G, id)
  active = prev
end
function internal.owner() return owner end
function internal.finalize(id) to_free[#to_free + 1] = id end
function internal.batch_depth() return batch_depth end
function internal.enter_batch() batch_depth = batch_depth + 1 end
function internal.leave_batch()
  batch_depth = batch_depth - 1
  if batch_depth == 0 then settle() end
end
function internal.track(id)
  if active ~= 0 then
    local r = C.ac_link(G, id, active)
    if r ~= 0 then fail(r, "tracking a read", 3) end
  end
end
function internal.set_error_state(id, is_err)
  local node = G.nodes[id]
  node.flags = is_err and bor(node.flags, ERROR) or band(node.flags, NOT_ERROR)
end

--- Resumes a coroutine; for an async run, marks it current (its writes are
-- buffered until commit) and untracked. An aborted or stale run is never
-- resumed again. Returns what coroutine.resume returns.
local function resume_end(run, prev_run, prev_active, ok, ...)
  current_run, active = prev_run, prev_active
  if run.on_step then run.on_step(run, ok, ...) end
  return ok, ...
end

function _M.resume(co, ...)
  local run = run_of[co]
  if run == nil then
    if dead_runs[co] then return false, "async run was aborted" end
    return co_resume(co, ...)
  end
  if run.abort.aborted or run.done then return false, "async run was aborted" end
  local prev_run, prev_active = current_run, active
  current_run, active = run, run.tracking or 0
  return resume_end(run, prev_run, prev_active, co_resume(co, ...))
end

-- ===== hook: runs that their event loop resumes itself (async.loop.ngx) =====
-- Under nginx an async run is a light thread: nginx resumes it after a wait,
-- not _M.resume, so nothing above marks it current. The ngx loop calls
-- run_suspend(co) just before a run's thread waits and run_resumed(co) just
-- after, so the run is current (its writes buffered until commit, its reads
-- untracked) exactly while its thread runs, and the context of whatever ran
-- before is restored when it waits again or ends. A first segment is left
-- alone: task.start_run holds that context around the spawn. Both do nothing
-- for a coroutine that is not a live run. (Waits that bypass async.loop,
-- a raw ngx.sleep or cosocket inside a run, are not seen here; the
-- per-coroutine tracking context of kernel9 covers those.)

--- A run's thread is about to wait: restores the context it entered.
function internal.run_suspend(co)
  local run = run_of[co]
  if run == nil or not run.entered then return end
  run.entered = false
  current_run, active = run.saved_run, run.saved_active
end

--- A run's thread was resumed by its loop: makes the run current again.
-- Returns false when the run was aborted or has ended (its code must not
-- go on: the caller parks the thread until it is killed).
function internal.run_resumed(co)
  local run = run_of[co]
  if run == nil then return not dead_runs[co] end
  if run.abort.aborted or run.done then return false end
  if not run.entered then
    run.entered = true
    run.saved_run, run.saved_active = current_run, active
    current_run, active = run, 0
  end
  return true
end

--- Is a coroutine dead?
function internal.dead(co) return co_status(co) == "dead" end
function internal.current_run()
  local run = current_run
  if run ~= nil and threaded_runs then run = threaded_check(run) end
  return run
end
--- Runs are threads of their loop (task.set_spawner says so).
function internal.set_threaded_runs(on) threaded_runs = on and true or false end
function internal.is_dead(co) return dead_runs[co] == true end
--- The run of `co` was aborted: it is never resumed again.
function internal.mark_dead(co)
  run_of[co] = nil
  dead_runs[co] = true
end
function internal.set_current_run(r)
  local prev = current_run
  current_run = r
  return prev
end

_M.equals = default_equals

return _M
