--- A loop on nginx's own primitives (OpenResty's lua-nginx-module).
--
-- Inside nginx a plain `coroutine.yield` from a request's entry thread
-- returns at once (nginx resumes it without running its event loop), and a
-- coroutine that waits on nginx (ngx.sleep, a semaphore, a cosocket) holds
-- up whoever resumed it until it yields back. So this loop never yields a
-- coroutine itself; everything that waits is a light thread nginx schedules:
--
--   runs     every async run is an ngx.thread (kernel hook task.set_spawner):
--            spawned where the run starts, it runs until its first wait, then
--            its starter goes on. A small supervisor thread, the run's
--            parent, waits beside it and kills it when the run's abort token
--            fires (ngx.thread.kill works only from the parent): an aborted
--            run is never resumed, whatever it waits on.
--   delay    ngx.sleep in the waiting thread (a semaphore wait with a
--            timeout when an abort token other than the run's must be able
--            to end it early)
--   await    a semaphore wait; the resume function posts it (from anywhere
--            in the worker: a timer, another request, another thread)
--   context  the kernel's tracking context belongs to the coroutine that
--            opened it (docs/kernel.md, "Coroutines"): a thread spawned here
--            enters a context of its own (thread_enter/thread_return), every
--            wait is bracketed (waiting/waited), and the timer and deferred
--            callbacks are entries from the event loop (from_loop), so a
--            run's writes stay buffered until its commit and a batch or an
--            effect stays its coroutine's however nginx interleaves threads
--   defer    one ngx.timer.at(0) per tick for everything deferred in it; a
--            resume function of `await` is called at once instead (it only
--            posts a semaphore: the waiter runs later anyway)
--   timer    one heap of timers per worker, driven by as few ngx timers as
--            the earliest due time needs (nginx timers cannot be cancelled,
--            and lua_max_pending_timers is 1024 by default)
--   spawn    any other task that must wait beside its starter (the server's
--            renderer and app-code workers) is an ngx.thread too
--
-- A thread still waiting when its request ends (an aborted wait that nobody
-- kills) is counted in ngx.ctx; the ngx transport ends the request with
-- ngx.exit, which kills it, and logs how many there were.
local setmetatable, error, tostring, pcall, xpcall, type, select, unpack, rawget, require =
      setmetatable, error, tostring, pcall, xpcall, type, select, unpack, rawget, require
local floor = math.floor
local traceback = debug.traceback
local co_running = coroutine.running
local check = require("async.loop.check")
local errors = require("async.kernel.errors")
local check_ms, check_fn = check.ms, check.fn
local graph = require("async.kernel.graph")
local task = require("async.kernel.task")

local I = graph._internal
local waiting, waited, thread_enter, thread_return = I.waiting, I.waited, I.thread_enter, I.thread_return
local from_loop = graph.from_loop
local is_run = task.is_run

local _M = {}

local Ngx = {}
Ngx.__index = Ngx

local NgxTimer = {}
NgxTimer.__index = NgxTimer

local DAY = 86400   -- seconds a semaphore wait lasts before it is renewed

-- phases in which a Lua thread may wait and spawn (lua-nginx-module:
-- "yieldable" contexts)
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
                    ssl_session_fetch = true, ssl_client_hello = true, preread = true }

local function pack(...) return { n = select("#", ...), ... } end

--- A loop on nginx (default: the `ngx` global; a table with the same
-- fields, for tests of the timer heap and defer).
function _M.new(ngx_)
  local ngx = ngx_ or rawget(_G, "ngx")
  if ngx == nil then errors.raise("not-in-nginx", "ngx_loop: no ngx global (not running under OpenResty)") end
  local self = setmetatable({
    ngx = ngx, _q = {}, _armed = false,
    _heap = {}, _n = 0, _seq = 0, _armed_at = nil,
    _direct = setmetatable({}, { __mode = "k" }),   -- resume functions defer may call at once
    live = 0, runs = 0, killed = 0,                 -- threads alive now, runs alive, runs killed
  }, Ngx)
  self._drive = function(premature, due) self:_fire(premature, due) end
  self._run_deferred = function(premature) self:_deferred(premature) end
  return self
end

-- monotonic milliseconds (resty.core's monotonic_msec when present)
local monotonic
do
  local ok, t = pcall(require, "resty.core.time")
  if ok and type(t) == "table" and t.monotonic_msec then monotonic = t.monotonic_msec end
end

function Ngx:now()
  if monotonic and self.ngx == rawget(_G, "ngx") then return monotonic() end
  local ngx = self.ngx
  ngx.update_time()
  return ngx.now() * 1000
end

-- the current phase, or nil when the ngx API does not tell
local function phase(ngx)
  local get = ngx.get_phase
  return get and get() or nil
end

-- raises a clear error when nginx cannot suspend the running code here
local function check_yieldable(self, what)
  local p = phase(self.ngx)
  if p ~= nil and not YIELDABLE[p] then
    errors.argument(what .. ": cannot wait in nginx's " .. p .. " phase (only in rewrite, access, content and " ..
      "timer handlers: load apps in init_by_lua, serve them in content_by_lua)")
  end
end

-- ===== timers: one heap, few nginx timers =====

local function earlier(a, b)
  return a.due < b.due or (a.due == b.due and a.seq < b.seq)
end

local function heap_push(self, t)
  local h, i = self._heap, self._n + 1
  self._n = i
  h[i] = t
  while i > 1 do
    local p = floor(i / 2)
    if not earlier(h[i], h[p]) then break end
    h[i], h[p] = h[p], h[i]
    i = p
  end
end

local function heap_pop(self)
  local h, n = self._heap, self._n
  local top = h[1]
  h[1] = h[n]
  h[n] = nil
  n = n - 1
  self._n = n
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and earlier(h[l], h[m]) then m = l end
    if r <= n and earlier(h[r], h[m]) then m = r end
    if m == i then break end
    h[i], h[m] = h[m], h[i]
    i = m
  end
  return top
end

-- the earliest timer still open (closed ones are dropped lazily)
local function heap_peek(self)
  local h = self._heap
  while self._n > 0 and h[1].closed do heap_pop(self) end
  return h[1]
end

function NgxTimer:close() self.closed = true end

-- makes sure an nginx timer fires by `due` (ms on self:now())
local function arm_timer(self, due)
  local at = self._armed_at
  if at ~= nil and at <= due then return end
  local delay = due - self:now()
  if delay < 0 then delay = 0 end
  local ok, err = self.ngx.timer.at(delay / 1000, self._drive, due)
  if not ok then errors.raise("ngx-timer", "ngx.timer.at failed: " .. tostring(err)) end
  self._armed_at = due
end

local function report(self, what, err)
  local ngx = self.ngx
  if ngx.log then
    ngx.log(ngx.ERR, "async: ", what, ": ", tostring(err))
  end
end

local function on_timer_error(e)
  return traceback(tostring(e), 2)
end

-- an nginx timer armed for `due` fired: runs every timer due by now, in
-- due order, then arms one for the next
function Ngx:_fire(premature, due)
  if self._armed_at == due then self._armed_at = nil end
  if premature then return end   -- the worker is exiting
  from_loop()
  local now = self:now()
  while true do
    local t = heap_peek(self)
    if t == nil or t.due > now then break end
    heap_pop(self)
    t.closed = true
    local ok, err = xpcall(t.fn, on_timer_error)
    if not ok then report(self, "timer callback failed", err) end
  end
  local nxt = heap_peek(self)
  if nxt then
    local ok, err = pcall(arm_timer, self, nxt.due)
    if not ok then report(self, "cannot arm a timer", err) end
  end
end

function Ngx:timer(ms, fn)
  check_ms(ms, "timer")
  check_fn(fn, "timer")
  self._seq = self._seq + 1
  local t = setmetatable({ due = self:now() + ms, seq = self._seq, fn = fn, closed = false }, NgxTimer)
  heap_push(self, t)
  arm_timer(self, t.due)
  return t
end

--- Timers not yet fired or closed (closed ones still in the heap count
-- until they reach its top).
function Ngx:pending()
  return self._n + #self._q
end

-- ===== defer =====

function Ngx:_deferred(premature)
  local run = self._q
  self._q = {}
  self._armed = false
  if premature then return end
  from_loop()
  for i = 1, #run do
    local ok, err = xpcall(run[i], on_timer_error)
    if not ok then report(self, "deferred function failed", err) end
  end
end

function Ngx:defer(fn)
  check_fn(fn, "defer")
  if self._direct[fn] then return fn() end
  local q = self._q
  q[#q + 1] = fn
  if self._armed then return end
  self._armed = true
  local ok, err = self.ngx.timer.at(0, self._run_deferred)
  if not ok then
    self._armed = false
    errors.raise("ngx-timer", "ngx.timer.at failed: " .. tostring(err))
  end
end

-- ===== semaphores =====

local semaphore
local function new_sema()
  semaphore = semaphore or require("ngx.semaphore")
  return semaphore.new(0)
end

-- waits on `s` until `cond()` is false (a wait is renewed every DAY)
local function sema_wait(s, cond)
  while cond() do
    local ok, err = s:wait(DAY)
    if not ok and err ~= "timeout" then errors.raise("ngx-semaphore", "semaphore wait failed: " .. tostring(err)) end
  end
end

-- Never returns: the thread waits until it is killed (by its supervisor, or
-- by ngx.exit at the end of its request). What "never resumed again" is
-- for a thread nginx owns.
local function park()
  local s = new_sema()
  while true do s:wait(DAY) end
end
_M.park = park

-- ===== threads =====

local function get_ctx(ngx) return ngx.ctx end

-- the current request's counts of live threads and runs (ngx.ctx), when
-- there is a request
local function ctx_add(self, n, runs)
  local ok, c = pcall(get_ctx, self.ngx)
  if ok and type(c) == "table" then
    c.async_threads = (c.async_threads or 0) + n
    if runs then c.async_runs = (c.async_runs or 0) + runs end
  end
end

--- Live threads this loop spawned in the current request (0 outside one).
function Ngx:request_threads()
  local ok, c = pcall(get_ctx, self.ngx)
  return ok and type(c) == "table" and c.async_threads or 0
end

--- Forgets the current request's threads (the transport calls it before
-- ngx.exit kills them); returns how many there were.
function Ngx:forget_request_threads()
  local ok, c = pcall(get_ctx, self.ngx)
  if not ok or type(c) ~= "table" then return 0 end
  local n, runs = c.async_threads or 0, c.async_runs or 0
  self.live = self.live - n
  self.runs = self.runs - runs
  c.async_threads, c.async_runs = 0, 0
  return n
end

--- Can a thread be spawned here?
function Ngx:can_spawn()
  local p = phase(self.ngx)
  return p == nil or YIELDABLE[p] == true
end

--- Runs fn(...) in a new light thread now, until it first waits or ends;
-- returns the thread (a coroutine), true; or thread, false, err when fn
-- raised before its first wait (later errors are logged). Outside the
-- phases that have threads it falls back to a coroutine resumed here.
function Ngx:spawn(fn, ...)
  check_fn(fn, "spawn")
  local ngx = self.ngx
  if not self:can_spawn() then
    local co = coroutine.create(fn)
    return co, coroutine.resume(co, ...)
  end
  local st = { first = true }
  local args = pack(...)
  local function main()
    local me = co_running()
    thread_enter(me)
    local ok, err = xpcall(fn, on_timer_error, unpack(args, 1, args.n))
    waiting(me, true)
    self.live = self.live - 1
    ctx_add(self, -1)
    if not ok then
      if st.first then st.err = err else report(self, "a spawned thread failed", err) end
    end
  end
  self.live = self.live + 1
  ctx_add(self, 1)
  local t = ngx.thread.spawn(main)
  thread_return(t)
  st.first = false
  if st.err ~= nil then return t, false, st.err end
  return t, true
end

--- The kernel's spawner (task.set_spawner): body(...) runs as the run's
-- thread T; its supervisor S (T's parent) kills T when `abort` fires while
-- T waits. Returns false where threads cannot be spawned.
function Ngx:spawn_run(body, abort, ...)
  if not self:can_spawn() then return false end
  local ngx = self.ngx
  local args = pack(...)
  local sup = { done = false, sema = nil }
  local function run_main()
    local ok, err = xpcall(body, on_timer_error, unpack(args, 1, args.n))
    sup.done = true
    self.live = self.live - 1
    self.runs = self.runs - 1
    ctx_add(self, -1, -1)
    if not ok then report(self, "an async run's thread failed", err) end
    if sup.sema then sup.sema:post(1) end
  end
  local function supervise()
    self.live = self.live + 1
    self.runs = self.runs + 1
    ctx_add(self, 1, 1)
    local t = ngx.thread.spawn(run_main)
    if not sup.done then
      local s = new_sema()
      sup.sema = s
      local unregister = abort:on_abort(function() s:post(1) end)
      sema_wait(s, function() return not sup.done and not abort.aborted end)
      unregister()
      if not sup.done then
        local ok, err = ngx.thread.kill(t)
        if ok then
          self.live = self.live - 1
          self.runs = self.runs - 1
          self.killed = self.killed + 1
          ctx_add(self, -1, -1)
        else
          report(self, "cannot kill an aborted run's thread", err)
        end
      end
    end
    self.live = self.live - 1
    ctx_add(self, -1)
  end
  self.live = self.live + 1
  ctx_add(self, 1)
  ngx.thread.spawn(supervise)
  return true
end

--- { threads =, runs =, killed = } of this worker: threads alive now (the
-- supervisors included), async runs alive now, runs killed so far.
function Ngx:stats()
  return { threads = self.live, runs = self.runs, killed = self.killed }
end

-- ===== waiting =====

-- before the first wait of a request: the transport's hook (ngx.ctx.async_arm,
-- async.transport.ngx) registers what a wait needs, ngx.on_abort
local function arm(ngx)
  local ok, c = pcall(get_ctx, ngx)
  if not ok or type(c) ~= "table" then return end
  local f = c.async_arm
  if f then
    c.async_arm = nil
    f()
  end
end

-- after a wait: back in the thread's own context, or parked for good when
-- it is a run that was aborted meanwhile
local function resumed(co)
  if not waited(co) then park() end
end

--- Sleeps ms in the running thread (async.loop.delay). abort: raised at
-- once if aborted (checked by the caller); aborted during the sleep, the
-- thread is never resumed again.
function Ngx:delay(ms, abort)
  check_yieldable(self, "Async.delay")
  local co = co_running()
  local ngx = self.ngx
  arm(ngx)
  if abort == nil or is_run(co) then
    -- a run's abort kills its thread (its supervisor); any other token is
    -- checked when the sleep ends
    waiting(co)
    ngx.sleep(ms / 1000)
    resumed(co)
    if abort and abort.aborted then park() end
    return
  end
  -- a token that must end the sleep early: a semaphore wait with a timeout
  local s = new_sema()
  local state = "waiting"
  local unregister = abort:on_abort(function()
    if state == "waiting" then state = "aborted"; s:post(1) end
  end)
  local deadline = self:now() + ms
  waiting(co)
  while state == "waiting" do
    local left = deadline - self:now()
    if left <= 0 then break end
    local ok, err = s:wait(left / 1000)
    if not ok and err ~= "timeout" then
      waited(co)
      errors.raise("ngx-semaphore", "semaphore wait failed: " .. tostring(err))
    end
  end
  waited(co)
  unregister()
  if state == "aborted" then park() end
  state = "done"
end

--- Suspends the running thread until the function given to start is
-- called; returns its arguments (async.loop.await has the contract).
function Ngx:await(start, abort, abort_error)
  local co = co_running()
  local state = "starting"   -- starting | waiting | done | aborted
  local results, s
  local function done(...)
    if state ~= "starting" and state ~= "waiting" then return end
    local was = state
    state = "done"
    results = pack(...)
    if was == "waiting" then s:post(1) end
  end
  self._direct[done] = true
  local unregister
  if abort then
    unregister = abort:on_abort(function()
      if state == "starting" or state == "waiting" then
        local was = state
        state = "aborted"
        if was == "waiting" then s:post(1) end
      end
    end)
  end
  local ok, err = pcall(start, done)
  if not ok then
    if state == "starting" then state = "aborted" end
    if unregister then unregister() end
    error(err, 0)
  end
  if state == "starting" then
    check_yieldable(self, "Async.await")
    arm(self.ngx)
    state = "waiting"
    s = new_sema()
    waiting(co)
    sema_wait(s, function() return state == "waiting" end)
    if unregister then unregister() end
    resumed(co)
    if state == "aborted" then park() end
  elseif state == "aborted" then
    if unregister then unregister() end
    if abort_error then error(abort_error(abort), 2) end
    errors.argument("aborted")
  elseif unregister then
    unregister()
  end
  return unpack(results, 1, results.n)
end

return _M
