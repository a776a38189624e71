-- Startup time: `asyncrt -e ''` against `luajit -e ''` and `node -e ''`,
-- each spawned directly (no shell) through luv, N runs interleaved, median
-- and mean printed with ratios to luajit. Goal (issue 3): asyncrt within
-- 1.5x of luajit and faster than node.
-- Run: luajit bench/startup.lua [N]   (or build/asyncrt bench/startup.lua)
local uv = require("luv")

local N = tonumber(arg and arg[1]) or 50
local exe = "build/asyncrt"
do
  local f = io.open(exe, "rb")
  if not f then error("bench/startup.lua: " .. exe .. " is missing; run make first (from the repo root)") end
  f:close()
end

local function which(name)
  local p = io.popen("command -v " .. name .. " 2>/dev/null")
  local path = p:read("*l")
  p:close()
  return path
end

local subjects = {
  { name = "asyncrt", file = exe, args = { "-e", "" } },
  { name = "luajit", file = which("luajit"), args = { "-e", "" } },
  { name = "node", file = which("node"), args = { "-e", "" } },
}

-- one run: spawn, wait for exit, return wall ms
local function once(s)
  local t0 = uv.hrtime()
  local code
  local handle = uv.spawn(s.file, { args = s.args, stdio = { nil, nil, 2 } }, function(c)
    code = c
  end)
  if not handle then error("cannot spawn " .. s.file) end
  uv.run()
  handle:close()
  uv.run()
  if code ~= 0 then error(s.name .. " exited " .. tostring(code)) end
  return (uv.hrtime() - t0) / 1e6
end

local present = {}
for _, s in ipairs(subjects) do
  if s.file then
    once(s)  -- warm the page cache
    s.times = {}
    present[#present + 1] = s
  else
    print(("%-8s not installed, skipped"):format(s.name))
  end
end

for _ = 1, N do
  for _, s in ipairs(present) do s.times[#s.times + 1] = once(s) end
end

local function stats(t)
  table.sort(t)
  local sum = 0
  for i = 1, #t do sum = sum + t[i] end
  return t[math.floor((#t + 1) / 2)], sum / #t
end

local base
for _, s in ipairs(present) do
  s.median, s.mean = stats(s.times)
  if s.name == "luajit" then base = s.median end
end

print(("startup, %d runs each (median / mean wall ms, ratio of medians to luajit)"):format(N))
for _, s in ipairs(present) do
  print(("%-8s %7.2f ms  %7.2f ms  %5.2fx"):format(s.name, s.median, s.mean, base and s.median / base or 0 / 0))
end
local a = present[1]
if base then
  local r = a.median / base
  print(("asyncrt/luajit = %.2fx (goal <= 1.5x): %s"):format(r, r <= 1.5 and "ok" or "MISSED"))
end
for _, s in ipairs(present) do
  if s.name == "node" then
    local r = a.median / s.median
    print(("asyncrt/node   = %.2fx (goal < 1x): %s"):format(r, r < 1 and "ok" or "MISSED"))
  end
end
