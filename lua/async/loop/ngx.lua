--- A loop on nginx's timers (OpenResty's ngx.timer.at, ngx.sleep, ngx.now).
local setmetatable, error, tostring = setmetatable, error, tostring
local check = require("async.loop.check")
local check_ms, check_fn = check.ms, check.fn
local rawget = rawget

local _M = {}

local Ngx = {}
Ngx.__index = Ngx

local NgxTimer = {}
NgxTimer.__index = NgxTimer
function NgxTimer:close() self.closed = true end  -- ngx timers cannot be cancelled

--- A loop on nginx's timers. ngx.timer.at callbacks run in their own light
-- thread, so delay() uses ngx.sleep (the waiting coroutine stays in its
-- request) and abort is checked when the sleep ends.
function _M.new(ngx_)
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

return _M
