--- Async signals: sources whose value comes from a coroutine (kernel.md,
-- "Async signals").
--
-- A run is a coroutine. Its dependencies are the reads it makes before its
-- first yield. When one of them changes, the run is aborted at once (its
-- abort token fires, the coroutine is never resumed) and a new run is queued
-- in the scheduler's async phase. A run commits only if it is still the
-- current version: its value, status "ready" and the signal writes it made are
-- published in one batch. Versions and the in-flight run live in the C core.
local ffi = require("ffi")
local bit = require("bit")
local core = require("async.kernel.core")
local errors = require("async.kernel.errors")
local kernel = require("async.kernel.graph")
local Abort = require("async.kernel.abort")

local C, G = core.C, core.G
local fail = core.fail
local I = kernel._internal
local vals = I.vals()
local run_of = I.run_of()
local band = bit.band
local DIRTY, PENDING = core.DIRTY, core.PENDING
local type, setmetatable, tostring, pcall, co_create, co_running =
  type, setmetatable, tostring, pcall, coroutine.create, coroutine.running
local resume = kernel.resume

local _M = {}

local WEAK_V = { __mode = "v" }
local asyncs = setmetatable({}, WEAK_V)   -- node id -> async signal

-- the kernel rebuilt its id-indexed tables after a peak (entries at or above
-- `top` belong to freed nodes): take its new value table, rebuild this one
I.on_compact(function(top)
  vals = I.vals()
  asyncs = I.copy_ids(asyncs, top, WEAK_V)
end)

local AsyncSignal = {}
AsyncSignal.__index = AsyncSignal

local Ctx = {}
Ctx.__index = Ctx
function Ctx:refresh() return self.async:refresh() end

--- Turns a raised value into the error state table.
local function normalize_error(e)
  if type(e) == "table" then
    local code = e.code
    if type(code) ~= "string" and type(code) ~= "number" then code = nil end
    return { name = e.name ~= nil and tostring(e.name) or "Error",
             message = e.message ~= nil and tostring(e.message) or tostring(e), code = code }
  end
  return { name = "Error", message = tostring(e) }
end
_M.normalize_error = normalize_error

local function publish(a)
  local r = C.ac_touch(G, a.id)
  if r ~= 0 then fail(r, "publishing an async signal") end
end

--- Aborts the run in flight, if any. The coroutine is never resumed again.
local function abort_run(a, reason)
  local run = a.run
  if run == nil then return end
  a.run = nil
  C.ac_task_abort(G, a.id)
  run.done = true
  -- kernel.resume must keep refusing this coroutine, instead of treating it
  -- as a plain one and resuming it
  if run.co then I.mark_dead(run.co) end
  run.abort:cancel(reason)
end

local start_run

--- Queues a new run in the async phase (once).
local function queue_run(a)
  if a.queued then return end
  a.queued = true
  local gen = a.gen
  a.sched:enqueue("async", function()
    if a.gen ~= gen then return end
    a.queued = false
    start_run(a)
  end)
end

-- publishes the writes a run buffered (signal, value pairs)
local function apply_writes(w)
  for i = 1, #w, 2 do w[i]:set(w[i + 1]) end
end

--- Ends a run whose coroutine returned or raised.
local function finish(run, ok, v)
  run.done = true
  run_of[run.co] = nil
  local a = run.a
  local committed = C.ac_task_commit(G, a.id, run.version)
  if committed ~= 1 then                                            -- stale or aborted
    if committed < 0 then fail(committed, "committing an async run") end
    return
  end
  a.run = nil
  -- resumed without its context meanwhile: its writes after that wait were
  -- not buffered, so it cannot commit as one (graph.CONTEXT_LOST)
  if run.lost then ok, v = false, kernel.CONTEXT_LOST end
  local prev_run = I.set_current_run(nil)
  -- one commit: the run's writes (a transaction: a write that raises, in a
  -- custom equals say, rolls every one of them back and the run ends in the
  -- error state), the value and the status; effects run once, after
  I.enter_batch()
  if ok then
    local okw, werr = pcall(kernel.transaction, apply_writes, run.writes)
    if okw then
      vals[a.id] = v
      a._status, a._error, a.has_value = "ready", nil, true
    else
      a._status, a._error = "error", normalize_error(werr)
    end
  else
    a._status, a._error = "error", normalize_error(v)
  end
  publish(a)
  I.set_current_run(prev_run)
  I.leave_batch()
end

local function on_step(run, ok, v)
  if not I.dead(run.co) then return end
  if run.tracking then
    run.result_ok, run.result = ok, v     -- finished inside its first segment
  else
    finish(run, ok, v)
  end
end

-- ===== hook: runs as threads of the event loop (async.loop.ngx) =====
-- By default a run is a coroutine the kernel creates and resumes itself
-- (kernel.resume). Under nginx a run must be a light thread (ngx.thread) so
-- that its waits suspend only the run, not whoever started it. The loop
-- layer installs `spawner(body, abort, ...)`: it runs body(...) as a new
-- thread now, returns once body first waits or has ended, and kills the
-- thread when `abort` fires (an aborted run is never resumed); it returns
-- false when it cannot spawn here (nginx's init phase, say), and the run is
-- then a plain coroutine. The thread has the run's context (current_run
-- set, its first segment tracked) while it runs: run_thread enters it, the
-- ngx loop brackets its waits (kernel._internal.waiting/waited), and
-- start_run takes its own back when the spawn returns (thread_return).
local spawner = nil

--- Sets (or with nil, removes) the spawner; async.loop calls it when the
-- active loop changes.
function _M.set_spawner(fn)
  spawner = fn
  I.set_threaded_runs(fn ~= nil)
end

-- The body of a run's thread: registers the coroutine as the run's, runs
-- the async function, then commits (or, when it ended inside its first
-- segment, leaves the commit to start_run, as on_step does).
local function run_thread(run, ctx)
  local co = co_running()
  run.co = co
  run_of[co] = run
  I.thread_enter(co, run)
  local ok, v = pcall(run.a.fn, ctx)
  -- an aborted run's thread is killed while it waits, so it never gets here
  I.waiting(co, true)   -- back to the spawner's context, or a clean one
  if run.tracking then
    run.result_ok, run.result = ok, v
  elseif not run.done then
    finish(run, ok, v)
  end
end

--- Starts a run now.
function start_run(a)
  if a.disposed then return end
  local id = a.id
  abort_run(a, "superseded")
  local version = C.ac_task_start(G, id)
  if version == 0 then fail(core.BAD_ID, "starting an async run") end
  local abort = Abort.new()
  local run = { a = a, version = version, abort = abort, writes = {}, on_step = on_step, tracking = id }
  a.run = run
  a._version = version
  a._status = "loading"
  publish(a)
  local ctx = setmetatable({
    id = a.name, version = version, abort = abort, scheduler = a.sched, async = a,
    signals = a.context and a.context.signals, server = a.context and a.context.server,
    cache = a.context and a.context.cache,
  }, Ctx)
  I.begin_tracking(id)
  if spawner and spawner(run_thread, abort, run, ctx) then
    if run.co then I.thread_return(run.co) end
  else
    local co = co_create(a.fn)
    run.co = co
    run_of[co] = run
    resume(co, ctx)
  end
  run.tracking = nil
  I.end_tracking(id)
  if run.result_ok ~= nil then finish(run, run.result_ok, run.result) end
end

-- a dependency of async node `id` may have changed (called while settling)
I.set_async_hook(function(id)
  local a = asyncs[id]
  if a == nil or a.disposed then return end
  if a.run and a.run.tracking then return end
  local f = G.nodes[id].flags
  if band(f, DIRTY) ~= 0 or (band(f, PENDING) ~= 0 and I.pull(id)) then
    abort_run(a, "dependency changed")
    queue_run(a)
  end
end)

-- Shared by every async signal, and closing over none: LuaJIT keeps
-- finalizers in a weak-keyed table whose values are strong, so a finalizer
-- that referenced its async signal would keep it (and its runtime) alive
-- forever. When an async signal is collected no run of it can be waiting to
-- be resumed (a waiting run's coroutine references it), so only the node is
-- freed.
local function finalize_async(p)
  I.finalize(p[0])
end

local function check_fn(fn)
  if type(fn) ~= "function" then
    errors.argument("async_signal expects a function, got " .. type(fn))
  end
end

--- Creates an async signal. opts: initial, scheduler, name, context
-- ({signals=, server=, cache=} exposed on ctx), snapshot (restore form).
function _M.async_signal(fn, opts)
  check_fn(fn)
  if opts ~= nil and type(opts) ~= "table" then
    errors.argument("async_signal options must be a table, got " .. type(opts))
  end
  opts = opts or {}
  local sched = opts.scheduler or kernel.default_scheduler()
  local id = C.ac_node_new(G, core.ASYNC, 0, sched.index)
  if id <= 0 then fail(id, "creating an async signal") end
  local a = setmetatable({
    id = id, fn = fn, sched = sched, name = opts.name, context = opts.context, opts_decl = opts,
    _status = "idle", _error = nil, _version = 0, has_value = false, queued = false, gen = 0,
  }, AsyncSignal)
  vals[id] = opts.initial
  a._gc = ffi.gc(ffi.new("int32_t[1]", id), finalize_async)
  asyncs[id] = a
  if opts.snapshot ~= nil then
    a:restore(opts.snapshot)
  else
    queue_run(a)
  end
  I.settle()
  return a
end

--- Is `co` the coroutine of an async run (current or ended)?
function _M.is_run(co)
  return run_of[co] ~= nil or I.is_dead(co)
end

function _M.is_async(v)
  return type(v) == "table" and getmetatable(v) == AsyncSignal
end

-- ===== reads =====
function AsyncSignal:get()
  I.track(self.id)
  return vals[self.id]
end
AsyncSignal.__call = AsyncSignal.get

function AsyncSignal:peek() return vals[self.id] end

function AsyncSignal:status() I.track(self.id); return self._status end
function AsyncSignal:error() I.track(self.id); return self._error end
function AsyncSignal:version() I.track(self.id); return self._version end
function AsyncSignal:loading() I.track(self.id); return self._status == "loading" end

--- { value=, status=, error=, version=, loading= } (tracked).
function AsyncSignal:state()
  I.track(self.id)
  return { value = vals[self.id], status = self._status, error = self._error,
           version = self._version, loading = self._status == "loading" }
end

--- The snapshot form: { value=, loading=, error=, status=, version= } (untracked).
function AsyncSignal:snapshot()
  return { value = vals[self.id], loading = self._status == "loading", error = self._error,
           status = self._status, version = self._version }
end

local STATUSES = { idle = true, loading = true, ready = true, error = true }

--- Restores a snapshot. "ready" and "error" need no run; "idle" and
-- "loading" queue one (the value is kept meanwhile).
function AsyncSignal:restore(snap)
  if type(snap) ~= "table" then
    errors.argument("async snapshot must be a table, got " .. type(snap))
  end
  local status = snap.status or (snap.loading and "loading") or (snap.error and "error") or "ready"
  if not STATUSES[status] then
    errors.argument("async snapshot has an unknown status '" .. tostring(status) .. "'")
  end
  abort_run(self, "restored")
  self.gen = self.gen + 1
  self.queued = false
  vals[self.id] = snap.value
  self._error = snap.error and normalize_error(snap.error) or nil
  self._version = tonumber(snap.version) or 0
  local r = C.ac_task_abort(G, self.id)      -- checks the id before the FFI write below
  if r < 0 then fail(r, "restoring an async signal") end
  G.nodes[self.id].version = self._version   -- the next run is version + 1
  self.has_value = status == "ready" or snap.value ~= nil
  if status == "ready" or status == "error" then
    self._status = status
  else
    self._status = "idle"
    queue_run(self)
  end
  publish(self)
  I.settle()
end

-- ===== control =====
--- Starts a new run (the current one is aborted).
function AsyncSignal:refresh()
  abort_run(self, "refresh")
  self.gen = self.gen + 1
  self.queued = false
  queue_run(self)
  I.settle()
end

--- Aborts the current run; status back to "ready" (a value exists) or "idle".
function AsyncSignal:cancel()
  abort_run(self, "cancelled")
  self.gen = self.gen + 1
  self.queued = false
  self._status = self.has_value and "ready" or "idle"
  publish(self)
  I.settle()
end

--- Sets the value with status "ready", aborting any run.
function AsyncSignal:set(v)
  local run = I.current_run()
  if run ~= nil then return I.buffer_write(run, self, v) end
  abort_run(self, "set")
  self.gen = self.gen + 1
  self.queued = false
  vals[self.id] = v
  self._status, self._error, self.has_value = "ready", nil, true
  publish(self)
  I.settle()
end

--- Stops the signal for good: aborts its run and drops its dependencies.
function AsyncSignal:dispose()
  if self.disposed then return end
  abort_run(self, "disposed")
  self.disposed = true
  self.gen = self.gen + 1
end

function AsyncSignal.__tostring(a) return "async_signal: " .. a.id end

return _M
