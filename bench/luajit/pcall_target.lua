-- The smallest reproduction of the LuaJIT limit behind the kernel's slow
-- mode (docs/performance.md, "the LuaJIT limit behind the slow mode").
--
-- A trace that starts in the function pcall calls cannot return into
-- pcall's frame ("NYI: return to lower frame"), so that function never gets
-- a trace of its own; each time the interpreter calls it often enough,
-- LuaJIT tries one, aborts, and after about 11 aborts (some 74,000 calls
-- from the interpreter) blacklists it. From then on every trace that would
-- pass through it aborts too ("blacklisted"), and the loop around it runs
-- in the interpreter for the rest of the process.
--
--   luajit bench/luajit/pcall_target.lua        both, each in a process of its own
--   luajit bench/luajit/pcall_target.lua plain  the loop alone
--   luajit bench/luajit/pcall_target.lua warm   the same loop after the pcall
--       target was called 100,000 times from interpreted code
-- One mode prints the loop's time in ms; add -jv to see the aborts. Any
-- LuaJIT binary runs it (the patch the docs propose was measured this way).
local MODE = arg and arg[1]
if MODE == nil then
  local exe = arg[-1] or "luajit"
  local function run(mode)
    local p = assert(io.popen(string.format("%q %q %s", exe, arg[0], mode)))
    local out = p:read("*a")
    p:close()
    return assert(tonumber(out), "no time printed by mode " .. mode .. ": " .. out)
  end
  local plain, warm = run("plain"), run("warm")
  print(string.format("pcall target: the loop alone %.1f ms; after 100,000 interpreted calls of the target " ..
    "%.1f ms (%.1fx)", plain, warm, warm / plain))
  return
end

local function getter(x) return x + 1 end

-- pcall's target: calls the getter from a Lua frame (the kernel's `eval`)
local function eval(fn, x)
  local v = fn(x)
  return v
end

local function recompute(fn, x)
  local ok, v = pcall(eval, fn, x)
  if not ok then error(v) end
  return v
end

local function work(n)
  local s = 0
  for i = 1, n do s = s + recompute(getter, i) end
  return s
end

if MODE == "warm" then
  -- the target called from code LuaJIT does not compile (as the kernel's
  -- callers are, for a while, when a workload starts)
  local function cold(n)
    for i = 1, n do pcall(eval, getter, i) end
  end
  jit.off(cold)
  cold(100000)
end

local N = 20000000
local t0 = os.clock()
local s = work(N)
assert(s == N * (N + 1) / 2 + N)
print(string.format("%.1f", (os.clock() - t0) * 1000))
