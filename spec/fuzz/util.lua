-- Shared pieces of the parser fuzz drivers (spec/fuzz/*.lua): a tiny seeded
-- PRNG, byte mutation, hostile strings and the run loop.
--
-- Each input i of a run gets its own generator seeded from (seed, i), so a
-- failure replays alone: FUZZ_SEED=s FUZZ_START=i FUZZ_N=1 luajit spec/fuzz/NAME.lua
--
-- A driver is a table { name =, one = function(rng) -> failure or nil, input }
-- (input: a printable description of what was tried); util.run(driver, o)
-- runs it, util.main(driver) is the script entry (FUZZ_SEED, FUZZ_START,
-- FUZZ_N, FUZZ_LONG).

local bit = require("bit")
local bxor, lshift, rshift, tobit = bit.bxor, bit.lshift, bit.rshift, bit.tobit
local floor, min = math.floor, math.min
local schar, ssub, sformat = string.char, string.sub, string.format
local concat = table.concat

local _M = {}

-- ===== PRNG (xorshift32, seeded per input) =====

local Rng = {}
Rng.__index = Rng

-- A generator for input i of a run with seed `seed`.
function _M.rng(seed, i)
  local s = tobit(seed * 2654435761 + (i or 0) * 40503 + 0x9E3779B9)
  if s == 0 then s = 0x1234567 end
  local r = setmetatable({ s = s }, Rng)
  for _ = 1, 4 do r:next() end
  return r
end

-- The next 32-bit state as a non-negative number in [0, 2^32).
function Rng:next()
  local s = self.s
  s = bxor(s, lshift(s, 13))
  s = bxor(s, rshift(s, 17))
  s = bxor(s, lshift(s, 5))
  self.s = s
  return s % 4294967296
end

-- An integer in [a, b] (or [1, a] with one argument).
function Rng:int(a, b)
  if not b then a, b = 1, a end
  return a + floor(self:next() / 4294967296 * (b - a + 1))
end

-- True with probability 1/n.
function Rng:one_in(n) return self:int(n) == 1 end

function Rng:pick(t) return t[self:int(#t)] end

-- n random bytes (0..255).
function Rng:bytes(n)
  local b = {}
  for k = 1, n do b[k] = schar(self:int(0, 255)) end
  return concat(b)
end

-- ===== HOSTILE STRINGS AND MUTATION =====

-- Strings that must never come out of an escaper unchanged.
_M.HOSTILE = {
  "<img src=x onerror=alert(1)>",
  '"><script>alert(2)</script>',
  "</script><script>alert(3)</script>",
  "'><svg onload=alert(4)>",
  "<!--x--><b onclick=alert(5)>",
}

-- Odd strings for any parser: empty, whitespace, NUL, high bytes, huge.
_M.ODD = { "", " ", "\t", "\n", "\r\n", "\0", "\255", "\194\160", "\226\128\168", "%", "%%", "%zz", "%C3%28",
  "%00", "\\", '"', "'", "..", ".", "$", "()", "(", ")", ";", ",", "{{", "}}", "<", ">", "&", "*", ":", "/",
  "//", string.rep("a", 300), string.rep("(", 50), string.rep(".", 40) }

-- Mutates s 1-4 times: delete, duplicate, insert a piece (from `pieces` or
-- ODD), truncate, flip a byte, move a range.
function _M.mutate(r, s, pieces)
  pieces = pieces or _M.ODD
  for _ = 1, r:int(1, 4) do
    local len = #s
    local op = r:int(6)
    if len == 0 then op = 3 end
    local a = r:int(1, len + 1)
    local b = min(len, a + r:int(0, 12))
    if op == 1 then
      s = ssub(s, 1, a - 1) .. ssub(s, b + 1)
    elseif op == 2 then
      s = ssub(s, 1, b) .. ssub(s, a, b) .. ssub(s, b + 1)
    elseif op == 3 then
      s = ssub(s, 1, a - 1) .. (r:one_in(3) and r:pick(_M.ODD) or r:pick(pieces)) .. ssub(s, a)
    elseif op == 4 then
      s = ssub(s, 1, a)
    elseif op == 5 then
      s = ssub(s, 1, a - 1) .. schar(r:int(0, 255)) .. ssub(s, a + 1)
    else
      local piece = ssub(s, a, b)
      s = ssub(s, 1, a - 1) .. ssub(s, b + 1)
      local c = r:int(1, #s + 1)
      s = ssub(s, 1, c - 1) .. piece .. ssub(s, c)
    end
  end
  return s
end

-- ===== COMPARISON AND PRINTING =====

-- Deep equality of plain values (metatables ignored unless `mt` is set;
-- NaN equals NaN).
function _M.deep_equal(a, b, mt)
  if a == b then return true end
  if a ~= a and b ~= b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if mt and getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do
    if not _M.deep_equal(v, b[k], mt) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- A short printable form of a value (for failure reports).
function _M.show(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then return sformat("%q", v) end
  if t ~= "table" then return tostring(v) end
  if depth > 6 then return "{...}" end
  local parts = {}
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = "[" .. _M.show(k, depth + 1) .. "]=" .. _M.show(v[k], depth + 1)
  end
  return "{" .. concat(parts, ", ") .. "}"
end

-- ===== RUN LOOP =====

-- Runs n inputs of driver from `start` with `seed`; returns stats or nil,
-- failure message, stats. stats.counts holds the driver's own counters
-- (driver.one may return a third value: a counter name to bump).
function _M.run(driver, o)
  o = o or {}
  local seed = o.seed or floor(os.time() % 1e6)
  local start = o.start or 1
  local n = o.n or 2000
  local name = driver.name
  if not o.quiet then print(sformat("fuzz %s: FUZZ_SEED=%d, inputs %d..%d", name, seed, start, start + n - 1)) end
  local t0 = os.clock()
  local stats = { inputs = 0, seed = seed, counts = {} }
  for i = start, start + n - 1 do
    local r = _M.rng(seed, i)
    local ok, failure, input, tag = pcall(driver.one, r)
    if not ok then
      failure, input = "the driver raised: " .. tostring(failure), "(see the error)"
    end
    stats.inputs = stats.inputs + 1
    if tag then stats.counts[tag] = (stats.counts[tag] or 0) + 1 end
    if failure then
      local msg = sformat("fuzz %s failure at input %d: %s\n--- input ---\n%s\n"
        .. "replay: FUZZ_SEED=%d FUZZ_START=%d FUZZ_N=1 luajit spec/fuzz/%s.lua",
        name, i, failure, tostring(input), seed, i, name)
      return nil, msg, stats
    end
  end
  stats.seconds = os.clock() - t0
  if not o.quiet then
    local c = {}
    for k, v in pairs(stats.counts) do c[#c + 1] = k .. " " .. v end
    table.sort(c)
    print(sformat("fuzz %s: %d inputs (%s), no failures, %.1fs", name, stats.inputs, concat(c, ", "),
      stats.seconds))
  end
  return stats
end

-- Script entry: reads FUZZ_SEED, FUZZ_START, FUZZ_N, FUZZ_LONG; exits 1 on a failure.
function _M.main(driver)
  local env = os.getenv
  local n = tonumber(env("FUZZ_N") or "") or (env("FUZZ_LONG") and 100000 or 2000)
  local stats, failure = _M.run(driver, { seed = tonumber(env("FUZZ_SEED") or ""),
    start = tonumber(env("FUZZ_START") or ""), n = n })
  if not stats then
    io.stderr:write(failure, "\n")
    os.exit(1)
  end
end

-- Sets package paths when a driver runs as a script from the repo root.
function _M.script_paths()
  package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
  package.cpath = "./build/?.so;" .. package.cpath
end

return _M
