--- A manual loop: time moves only through loop:advance(ms). For tests, and
-- for code that wants to drive time itself (lua-api.md "Loops and time").
local setmetatable = setmetatable
local floor = math.floor
local check = require("async.loop.check")
local errors = require("async.kernel.errors")
local check_ms, check_fn = check.ms, check.fn

local _M = {}

local Manual = {}
Manual.__index = Manual

local ManualTimer = {}
ManualTimer.__index = ManualTimer

--- A loop whose clock moves only through :advance(ms); starts at `start`
-- (default 0).
function _M.new(start)
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
      errors.raise("defer-loop", "manual loop: deferred functions kept deferring for " .. MAX_DEFER_ROUNDS .. " rounds")
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

return _M
