--- Event loops and waiting inside coroutines.
--
-- A loop object has `l:now()` (monotonic milliseconds), `l:timer(ms, fn)`
-- (runs fn once after ms; returns a handle with an idempotent `:close()`) and
-- `l:defer(fn)` (runs fn once on the next loop tick; many defers in one tick
-- are served by one wake-up). Three kinds:
--   manual_loop()  time moves only through :advance(ms); for tests
--   luv_loop()     libuv through luv (the loop asyncrt runs)
--   ngx_loop()     nginx's own primitives under OpenResty: async runs are
--                  ngx.thread light threads, delay is ngx.sleep, await a
--                  semaphore (loop/ngx.lua; docs/openresty.md)
-- delay/await suspend the running coroutine on the active loop; an abort
-- token cancels the wait: its timer is closed and the coroutine is never
-- resumed again. spawn(fn, ...) runs fn in a task of its own that may wait
-- beside its starter (a coroutine, or an nginx light thread). See
-- docs/asyncrt.md.
local error, type, tostring, pcall, require, rawget, select =
      error, type, tostring, pcall, require, rawget, select
local check = require("async.loop.check")
local errors = require("async.kernel.errors")
local check_ms, check_fn = check.ms, check.fn
local manual = require("async.loop.manual")
local luv_loop = require("async.loop.luv")
local ngx_loop = require("async.loop.ngx")
local kernel = require("async.kernel.graph")
local task = require("async.kernel.task")
local scheduler = require("async.kernel.scheduler")
local co_running, co_yield, co_status, co_create =
      coroutine.running, coroutine.yield, coroutine.status, coroutine.create
local traceback = debug.traceback
local ceil = math.ceil
local unpack = unpack

local _M = {}

-- ===== abort errors =====

-- The error raised by delay/await when called with an aborted token: the
-- one abort:check() raises (the library's error type, at the caller's line).
local abort_error = require("async.kernel.abort").error

--- Is `e` the error delay/await raise for an aborted token?
_M.is_abort_error = require("async.kernel.abort").is_error

--- The loop kinds (each module's `new`).
_M.manual_loop = manual.new
_M.luv_loop = luv_loop.new
_M.ngx_loop = ngx_loop.new

-- ===== the active loop =====

local active_loop

-- Async runs are threads of loops that have them (ngx): the kernel is given
-- the active loop's spawner, or none.
local function install(l)
  if type(l.spawn_run) == "function" then
    task.set_spawner(function(body, abort, ...) return l:spawn_run(body, abort, ...) end)
  else
    task.set_spawner(nil)
  end
end

local function default_loop()
  if rawget(_G, "ngx") ~= nil then return _M.ngx_loop() end
  local ok, uv = pcall(require, "luv")
  if ok then return _M.luv_loop(uv) end
  return _M.manual_loop()
end

--- The active loop; chosen on first use: ngx under OpenResty, else luv when
-- loadable, else a manual loop.
function _M.get_loop()
  local l = active_loop
  if l == nil then
    l = default_loop()
    active_loop = l
    install(l)
  end
  return l
end

-- a `loop` scheduler defers its flushes to the active loop
scheduler.set_loop_provider(_M.get_loop)

--- Makes `l` the active loop; returns it.
function _M.set_loop(l)
  if type(l) ~= "table" or type(l.now) ~= "function" or type(l.timer) ~= "function"
     or type(l.defer) ~= "function" then
    errors.argument("set_loop: expected a loop (with now, timer and defer), got " .. tostring(l))
  end
  active_loop = l
  install(l)
  return l
end

--- The active loop's clock in milliseconds.
function _M.now()
  return _M.get_loop():now()
end

-- ===== resuming =====

--- Default handler for an error raised inside a coroutine resumed by
-- delay/await through the default hook: raise it (with the coroutine's
-- traceback) into the loop callback, which asyncrt reports and exits 1 on.
-- Assign loop.on_error = fn(err, co) to change it.
function _M.on_error(err, co)
  if type(err) == "string" or type(err) == "number" then
    error(traceback(co, tostring(err)), 0)
  end
  error(err, 0)
end

local resume_hook  -- nil: the kernel's resume + on_error

--- fn(co, ...) resumes for delay/await instead of the default; it owns error
-- handling. nil restores the default, which resumes through the kernel (an
-- async run is marked current, so its writes stay buffered until commit,
-- and handles its own end) and passes any other coroutine's error to
-- loop.on_error.
function _M.set_resume_hook(fn)
  if fn ~= nil and type(fn) ~= "function" then
    errors.argument("set_resume_hook: expected a function or nil, got " .. type(fn))
  end
  resume_hook = fn
end

local is_run, kernel_resume = task.is_run, kernel.resume

local function resume(co, ...)
  if resume_hook then return resume_hook(co, ...) end
  local run = is_run(co)
  local ok, err = kernel_resume(co, ...)
  if not ok and not run then _M.on_error(err, co) end
end

-- Inside nginx a coroutine.yield from a request's thread returns at once:
-- waiting there on any loop but the ngx loop would spin.
local function check_served(l, what)
  local g = rawget(_G, "ngx")
  if l.await == nil and type(g) == "table" and type(g.get_phase) == "function" then
    errors.raise("wait-not-served", what .. ": inside nginx only the ngx loop can wait (the active loop would " ..
      "yield to nginx, which resumes at once: a busy loop); use Async.set_loop(Async.ngx_loop()) or leave the default")
  end
end

-- Waiting inside a batch would hold the batch open for every coroutine (the
-- batch depth is one per Lua state), so it is refused.
local batch_depth = kernel._internal.batch_depth
local function check_not_batched(what)
  if batch_depth() > 0 then
    errors.raise("wait-in-batch",
      what .. " cannot wait inside a batch, transaction or effect body: the commit would wait for it")
  end
end

local function current(what)
  local co, main = co_running()
  if co == nil or main then
    errors.raise("not-in-coroutine", what .. ": must be called inside a coroutine")
  end
  return co
end

local function check_abort(abort, what)
  if abort == nil then return end
  if type(abort) ~= "table" or type(abort.on_abort) ~= "function" then
    errors.argument(what .. ": abort must be an abort token, got " .. tostring(abort))
  end
  if abort.aborted then error(abort_error(abort), 3) end
end

-- delay on a luv loop: the luv timer and one small closure per wait (this
-- is what bench/timers.lua measures per waiting coroutine). A fired timer is
-- closed, so is_closing() doubles as the "fired" flag.
local function luv_delay(uv, co, ms, abort)
  local timer = uv.new_timer()
  if abort == nil then
    timer:start(ceil(ms), 0, function()
      timer:close()
      if co_status(co) == "suspended" then resume(co) end
    end)
  else
    local unregister
    timer:start(ceil(ms), 0, function()
      timer:close()
      unregister()
      if co_status(co) == "suspended" then resume(co) end
    end)
    unregister = abort:on_abort(function()
      if not timer:is_closing() then timer:close() end
    end)
  end
  repeat co_yield() until timer:is_closing()  -- a stray resume does not end the wait
  if abort and abort.aborted then error(abort_error(abort), 2) end
end

--- Sleeps ms on the active loop inside a coroutine. Raises at once if
-- `abort` is already aborted; if it is aborted during the sleep, the timer
-- is closed and the coroutine is never resumed again.
function _M.delay(ms, abort)
  local co = current("delay")
  check_not_batched("Async.delay")
  check_ms(ms, "delay")
  check_abort(abort, "delay")
  local l = _M.get_loop()
  if l.delay then return l:delay(ms, abort) end   -- ngx: in the running thread
  check_served(l, "Async.delay")
  local uv = l._luv
  if uv then return luv_delay(uv, co, ms, abort) end
  local fired, unregister = false, nil
  local timer = l:timer(ms, function()
    fired = true
    if unregister then unregister() end
    if co_status(co) == "suspended" then resume(co) end
  end)
  if abort then
    unregister = abort:on_abort(function() timer:close() end)
  end
  repeat co_yield() until fired or (abort and abort.aborted)  -- a stray resume does not end the wait
  if not fired then error(abort_error(abort), 2) end
end

local function pack(...) return { n = select("#", ...), ... } end

--- Suspends the running coroutine until the function given to start is
-- called; returns its arguments. The first call wins (later ones, and calls
-- after an abort, do nothing); a call made synchronously inside start
-- returns without suspending. Raises if `abort` is already aborted; if it is
-- aborted during the wait, the coroutine is never resumed again.
function _M.await(start, abort)
  local co = current("await")
  check_not_batched("Async.await")
  check_fn(start, "await")
  check_abort(abort, "await")
  local l = _M.get_loop()
  if l.await then return l:await(start, abort, abort_error) end   -- ngx: a semaphore
  local state = "starting"   -- starting | waiting | done | aborted
  local results, unregister
  local function done(...)
    if state ~= "starting" and state ~= "waiting" then return end
    local was = state
    state = "done"
    results = pack(...)
    if unregister then unregister() end
    if was == "waiting" and co_status(co) == "suspended" then resume(co) end
  end
  if abort then
    unregister = abort:on_abort(function()
      if state == "starting" or state == "waiting" then state = "aborted" end
    end)
  end
  local ok, err = pcall(start, done)
  if not ok then
    if state == "starting" then state = "aborted" end
    if unregister then unregister() end
    error(err, 0)
  end
  if state == "starting" then
    check_served(l, "Async.await")
    state = "waiting"
    repeat co_yield() until state == "done"
  elseif state == "aborted" then
    error(abort_error(abort), 2)
  end
  return unpack(results, 1, results.n)
end

-- ===== tasks =====

--- Runs fn(...) in a task of its own now, until it first waits or ends, so
-- that it can wait beside the caller (the server's renderer and app-code
-- workers): a coroutine resumed here, or under nginx a light thread.
-- Returns the task (a coroutine) and what the first resume returned
-- (true, or false and the error fn raised before its first wait).
function _M.spawn(fn, ...)
  check_fn(fn, "spawn")
  local l = _M.get_loop()
  if l.spawn then return l:spawn(fn, ...) end
  local co = co_create(fn)
  return co, kernel.resume(co, ...)
end

-- ===== shutdown =====

local shutdown_hooks = {}

--- Registers fn(reason) to run on shutdown (asyncrt: SIGINT/SIGTERM);
-- returns a function that unregisters it.
function _M.on_shutdown(fn)
  check_fn(fn, "on_shutdown")
  shutdown_hooks[#shutdown_hooks + 1] = fn
  return function()
    for i = 1, #shutdown_hooks do
      if shutdown_hooks[i] == fn then table.remove(shutdown_hooks, i) return end
    end
  end
end

--- Runs the shutdown hooks once each (all of them even if one raises; the
-- first error is raised after); returns how many ran.
function _M.shutdown(reason)
  local hooks = shutdown_hooks
  shutdown_hooks = {}
  local first
  for i = 1, #hooks do
    local ok, err = pcall(hooks[i], reason)
    if not ok and first == nil then first = err end
  end
  if first ~= nil then error(first, 0) end
  return #hooks
end

return _M
