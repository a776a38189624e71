--- A loop on libuv through luv (the loop `asyncrt` runs).
local setmetatable, tostring = setmetatable, tostring
local ceil = math.ceil
local check = require("async.loop.check")
local errors = require("async.kernel.errors")
local check_ms, check_fn = check.ms, check.fn
local require = require
-- a callback from libuv is an entry from the event loop (docs/kernel.md,
-- "Coroutines"); it runs on the main thread's stack, whose context stays
local from_loop = require("async.kernel.graph").from_loop

local _M = {}

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
function _M.new(uv, opts)
  uv = uv or require("luv")
  local mode = opts and opts.defer or "idle"
  if mode ~= "idle" and mode ~= "timer" then
    errors.argument("luv_loop: opts.defer must be \"idle\" or \"timer\", got " .. tostring(mode))
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
    from_loop(true)
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
  from_loop(true)
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

return _M
