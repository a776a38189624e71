--- Event loops and waiting inside coroutines.
--
-- A loop object has `l:now()` (monotonic milliseconds), `l:timer(ms, fn)`
-- (runs fn once after ms; returns a handle with an idempotent `:close()`) and
-- `l:defer(fn)` (runs fn once on the next loop tick; many defers in one tick
-- are served by one wake-up). Three kinds:
--   manual_loop()  time moves only through :advance(ms); for tests
--   luv_loop()     libuv through luv (the loop asyncrt runs)
--   ngx_loop()     ngx.timer.at / ngx.sleep / ngx.now under OpenResty
--                  (written against the ngx_lua docs; not tested here)
-- delay/await suspend the running coroutine on the active loop; an abort
-- token cancels the wait: its timer is closed and the coroutine is never
-- resumed again. See docs/asyncrt.md.
-- One instance per Lua state, even when a test runner reloads modules
-- (busted insulates files by clearing package.loaded): the graph and its
-- values must not be duplicated.
local REGISTRY_KEY = "asyncrt:async.loop"
do
  local loaded = debug.getregistry()[REGISTRY_KEY]
  if loaded then return loaded end
end

local setmetatable, error, type, tostring, pcall, require, rawget, select =
      setmetatable, error, type, tostring, pcall, require, rawget, select
local co_running, co_resume, co_yield, co_status =
      coroutine.running, coroutine.resume, coroutine.yield, coroutine.status
local traceback = debug.traceback
local ceil, floor = math.ceil, math.floor
local unpack = unpack

local _M = {}

-- ===== abort errors =====

local AbortError = {}
AbortError.__index = AbortError
AbortError.__tostring = function(e) return e.message end

-- The error raised by delay/await when called with an aborted token; the
-- same shape as abort.lua's `check()` error.
local function abort_error(abort)
  return setmetatable({ name = "AbortError", code = "aborted",
                        message = "aborted: " .. tostring(abort.reason) }, AbortError)
end

--- Is `e` the error delay/await raise for an aborted token?
function _M.is_abort_error(e)
  return type(e) == "table" and e.name == "AbortError"
end

-- ===== manual loop =====

local Manual = {}
Manual.__index = Manual

local ManualTimer = {}
ManualTimer.__index = ManualTimer

--- A loop whose clock moves only through :advance(ms); starts at `start`
-- (default 0).
function _M.manual_loop(start)
  return setmetatable({ _now = start or 0, _heap = {}, _n = 0, _seq = 0,
                        _active = 0, _deferred = {} }, Manual)
end

-- binary min-heap on (due, seq): equal due times run in creation order
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

-- the earliest timer that is still active (closed ones are dropped lazily)
local function heap_peek(self)
  local h = self._heap
  while self._n > 0 and not h[1].active do heap_pop(self) end
  return h[1]
end

function ManualTimer:close()
  if self.active then
    self.active = false
    self.loop._active = self.loop._active - 1
  end
end

local function check_ms(ms, what)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    error(what .. ": ms must be a number >= 0, got " .. tostring(ms), 3)
  end
end

local function check_fn(fn, what)
  if type(fn) ~= "function" then
    error(what .. ": expected a function, got " .. type(fn), 3)
  end
end

function Manual:now() return self._now end

function Manual:timer(ms, fn)
  check_ms(ms, "timer")
  check_fn(fn, "timer")
  self._seq = self._seq + 1
  local t = setmetatable({ loop = self, due = self._now + ms, seq = self._seq,
                           fn = fn, active = true }, ManualTimer)
  self._active = self._active + 1
  heap_push(self, t)
  return t
end

function Manual:defer(fn)
  check_fn(fn, "defer")
  local q = self._deferred
  q[#q + 1] = fn
end

local MAX_DEFER_ROUNDS = 10000

--- Runs deferred functions until none is left (those deferred while running
-- run in a later round); returns how many ran.
function Manual:run_pending()
  local ran, rounds = 0, 0
  while #self._deferred > 0 do
    rounds = rounds + 1
    if rounds > MAX_DEFER_ROUNDS then
      error("manual loop: deferred functions kept deferring for " .. MAX_DEFER_ROUNDS .. " rounds", 2)
    end
    local q = self._deferred
    self._deferred = {}
    for i = 1, #q do
      ran = ran + 1
      q[i]()
    end
  end
  return ran
end

--- Moves the clock forward by ms: runs deferred functions, then every timer
-- falling due, in due order, each with now() equal to its due time (and the
-- functions it deferred right after it); the clock ends at now + ms.
function Manual:advance(ms)
  check_ms(ms, "advance")
  local target = self._now + ms
  self:run_pending()
  while true do
    local t = heap_peek(self)
    if t == nil or t.due > target then break end
    heap_pop(self)
    t.active = false
    self._active = self._active - 1
    if t.due > self._now then self._now = t.due end
    t.fn()
    self:run_pending()
  end
  self._now = target
end

--- Number of active timers plus deferred functions.
function Manual:pending()
  return self._active + #self._deferred
end

-- ===== luv loop =====

local Luv = {}
Luv.__index = Luv

local LuvTimer = {}
LuvTimer.__index = LuvTimer

function LuvTimer:close()
  local h = self.h
  if h then
    self.h = nil
    if not h:is_closing() then h:close() end
  end
end

--- A loop on luv (default: require("luv"), which under asyncrt is the
-- interpreter's loop). opts.defer = "idle" (default, see docs/asyncrt.md
-- for the measurement) or "timer" (a 0 ms timer).
function _M.luv_loop(uv, opts)
  uv = uv or require("luv")
  local mode = opts and opts.defer or "idle"
  if mode ~= "idle" and mode ~= "timer" then
    error("luv_loop: opts.defer must be \"idle\" or \"timer\", got " .. tostring(mode), 2)
  end
  return setmetatable({ uv = uv, _luv = uv, _q = {}, _armed = false, _mode = mode, _waker = nil }, Luv)
end

function Luv:now()
  local uv = self.uv
  uv.update_time()
  return uv.now()
end

function Luv:timer(ms, fn)
  check_ms(ms, "timer")
  check_fn(fn, "timer")
  local h = self.uv.new_timer()
  local t = setmetatable({ h = h }, LuvTimer)
  h:start(ceil(ms), 0, function()
    t:close()
    fn()
  end)
  return t
end

-- Runs this tick's deferred functions; ones deferred meanwhile wait for the
-- next tick.
local function luv_run_deferred(self)
  local q = self._q
  self._q = {}
  self._armed = false
  if self._mode == "idle" then self._waker:stop() end
  for i = 1, #q do q[i]() end
end

function Luv:defer(fn)
  check_fn(fn, "defer")
  local q = self._q
  q[#q + 1] = fn
  if self._armed then return end
  self._armed = true
  local w = self._waker
  if w == nil then
    w = self._mode == "idle" and self.uv.new_idle() or self.uv.new_timer()
    self._waker = w
    self._wake = function() luv_run_deferred(self) end
  end
  if self._mode == "idle" then w:start(self._wake) else w:start(0, 0, self._wake) end
end

--- Functions deferred and not yet run.
function Luv:pending()
  return #self._q
end

-- ===== ngx loop (OpenResty; untested here) =====

local Ngx = {}
Ngx.__index = Ngx

local NgxTimer = {}
NgxTimer.__index = NgxTimer
function NgxTimer:close() self.closed = true end  -- ngx timers cannot be cancelled

--- A loop on nginx's timers. ngx.timer.at callbacks run in their own light
-- thread, so delay() uses ngx.sleep (the waiting coroutine stays in its
-- request) and abort is checked when the sleep ends.
function _M.ngx_loop(ngx_)
  local ngx = ngx_ or rawget(_G, "ngx")
  if ngx == nil then error("ngx_loop: no ngx global (not running under OpenResty)", 2) end
  return setmetatable({ ngx = ngx, _q = {}, _armed = false }, Ngx)
end

function Ngx:now()
  local ngx = self.ngx
  ngx.update_time()
  return ngx.now() * 1000
end

function Ngx:timer(ms, fn)
  check_ms(ms, "timer")
  check_fn(fn, "timer")
  local t = setmetatable({ closed = false }, NgxTimer)
  local ok, err = self.ngx.timer.at(ms / 1000, function(premature)
    if premature or t.closed then return end
    t.closed = true
    fn()
  end)
  if not ok then error("ngx.timer.at failed: " .. tostring(err), 2) end
  return t
end

function Ngx:defer(fn)
  check_fn(fn, "defer")
  local q = self._q
  q[#q + 1] = fn
  if self._armed then return end
  self._armed = true
  local ok, err = self.ngx.timer.at(0, function()
    local run = self._q
    self._q = {}
    self._armed = false
    for i = 1, #run do run[i]() end
  end)
  if not ok then
    self._armed = false
    error("ngx.timer.at failed: " .. tostring(err), 2)
  end
end

function Ngx:sleep(ms)
  self.ngx.sleep(ms / 1000)
end

-- ===== the active loop =====

local active_loop

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
  end
  return l
end

--- Makes `l` the active loop; returns it.
function _M.set_loop(l)
  if type(l) ~= "table" or type(l.now) ~= "function" or type(l.timer) ~= "function"
     or type(l.defer) ~= "function" then
    error("set_loop: expected a loop (with now, timer and defer), got " .. tostring(l), 2)
  end
  active_loop = l
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

local resume_hook  -- nil: coroutine.resume + on_error

--- fn(co, ...) resumes for delay/await instead of coroutine.resume (the
-- kernel tracks the active run); it owns error handling (the default hook
-- passes errors to loop.on_error). nil restores the default.
function _M.set_resume_hook(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("set_resume_hook: expected a function or nil, got " .. type(fn), 2)
  end
  resume_hook = fn
end

local function resume(co, ...)
  if resume_hook then return resume_hook(co, ...) end
  local ok, err = co_resume(co, ...)
  if not ok then _M.on_error(err, co) end
end

local function current(what)
  local co, main = co_running()
  if co == nil or main then
    error(what .. ": must be called inside a coroutine", 3)
  end
  return co
end

local function check_abort(abort, what)
  if abort == nil then return end
  if type(abort) ~= "table" or type(abort.on_abort) ~= "function" then
    error(what .. ": abort must be an abort token, got " .. tostring(abort), 3)
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
  check_ms(ms, "delay")
  check_abort(abort, "delay")
  local l = _M.get_loop()
  if l.sleep then  -- ngx: sleep in place
    l:sleep(ms)
    if abort and abort.aborted then error(abort_error(abort), 2) end
    return
  end
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
  check_fn(start, "await")
  check_abort(abort, "await")
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
    state = "waiting"
    repeat co_yield() until state == "done"
  elseif state == "aborted" then
    error(abort_error(abort), 2)
  end
  return unpack(results, 1, results.n)
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

debug.getregistry()[REGISTRY_KEY] = _M
return _M
