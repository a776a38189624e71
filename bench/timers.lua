-- Timer throughput under asyncrt: N (default 100,000) coroutines wait in
-- loop.delay at once; prints the time to create them, the time until all
-- completed, and memory per waiting coroutine (Lua heap and process RSS,
-- which includes libuv's malloc'd timers). Goal (issue 3): < 1 KiB each.
-- Then the defer mechanisms of the luv loop (idle handle vs 0 ms timer):
-- cost per tick of a chain of one-defer ticks, and of 1,000 defers per tick.
-- Run: build/asyncrt bench/timers.lua [N]
local uv = require("luv")
local loop = require("async.loop")

local N = tonumber(arg and arg[1]) or 100000

local function rss_kib()
  local f = io.open("/proc/self/statm", "r")
  if not f then return 0 / 0 end
  local pages = f:read("*n") and f:read("*n")
  f:close()
  return pages * 4
end

local function ms_since(t0) return (uv.hrtime() - t0) / 1e6 end

-- ===== 100k concurrent delays =====
loop.set_loop(loop.luv_loop(uv))
collectgarbage("collect")
collectgarbage("collect")
local heap0, rss0 = collectgarbage("count"), rss_kib()
local done = 0
local t0 = uv.hrtime()
local body = function(ms) loop.delay(ms); done = done + 1 end
for i = 1, N do
  local co = coroutine.create(body)
  assert(coroutine.resume(co, 50 + i % 50))
end
local created = ms_since(t0)
collectgarbage("collect")
local heap1, rss1 = collectgarbage("count"), rss_kib()
uv.run()
local total = ms_since(t0)
assert(done == N, "only " .. done .. " of " .. N .. " delays completed")

print(("delay: %d concurrent coroutines (50..99 ms each)"):format(N))
print(("  created in %.1f ms (%.2f us each); all completed after %.1f ms"):format(created, created * 1000 / N, total))
local per_heap = (heap1 - heap0) * 1024 / N
local per_rss = (rss1 - rss0) * 1024 / N
print(("  memory per waiting coroutine: %.0f B Lua heap, %.0f B RSS (goal < 1024 B): %s"):format(
  per_heap, per_rss, math.max(per_heap, per_rss) < 1024 and "ok" or "MISSED"))

-- ===== defer mechanisms =====
local function chain(mode, ticks)
  local dl = loop.luv_loop(uv, { defer = mode })
  local n = 0
  local function step()
    n = n + 1
    if n < ticks then dl:defer(step) end
  end
  local t = uv.hrtime()
  dl:defer(step)
  uv.run()
  return (uv.hrtime() - t) / ticks
end

local function fan(mode, ticks, per_tick)
  local dl = loop.luv_loop(uv, { defer = mode })
  local n, ran = 0, 0
  local noop = function() ran = ran + 1 end
  local function step()
    n = n + 1
    if n < ticks then
      for _ = 1, per_tick - 1 do dl:defer(noop) end
      dl:defer(step)
    end
  end
  local t = uv.hrtime()
  dl:defer(step)
  uv.run()
  return (uv.hrtime() - t) / ticks
end

local TICKS = 200000
print(("defer: ns per loop tick (%d ticks; lower is better)"):format(TICKS))
local best, best_ns
for _, mode in ipairs({ "idle", "timer" }) do
  chain(mode, 1000)  -- warm up
  local a = chain(mode, TICKS)
  local b = fan(mode, TICKS / 100, 1000)
  print(("  %-5s one defer per tick: %6.0f ns   1,000 defers per tick: %8.0f ns"):format(mode, a, b))
  if not best_ns or a < best_ns then best, best_ns = mode, a end
end
print("  cheaper per tick: " .. best .. ". But a 0 ms timer re-armed from its own callback runs again")
print("  in the same timers phase (libuv's uv__run_timers), with no I/O poll in between: not a")
print("  next tick, and a defer chain would starve I/O. async.loop's luv_loop uses idle.")
