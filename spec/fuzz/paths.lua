-- Fuzz driver for signal paths (async.signals registry get/set/update).
--
--   luajit spec/fuzz/paths.lua               -- short run (2,000 inputs)
--   FUZZ_LONG=1 luajit spec/fuzz/paths.lua   -- long run (100,000 inputs)
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...    -- replay one input
--
-- One input is a registry of random signals (nested ids such as "a" and
-- "a.b", values that share sub-tables, arrays, json arrays, tables with
-- __index/__newindex metatables, a computed) and a run of random get, set
-- and update calls on random dotted paths ("$" segments, numbers, "01",
-- "inf", empty segments, leading/trailing dots, non-strings).
-- Checks: every call either works or raises a clear error (a string naming
-- the path, or an error table with a code); a path with an empty segment is
-- refused; a refused call changes nothing; a set writes only the signal
-- that owns the path (the longest registered prefix, computed here
-- independently) and reads back the value written; values read before are
-- never mutated (copy-on-write), and no other signal's value changes, even
-- when they shared tables.

local modname = ...
local is_script = type(modname) ~= "string" or not modname:find("fuzz%.paths$")
if is_script then package.path = "./spec/?.lua;" .. package.path end
local util = require("fuzz.util")
if is_script then util.script_paths() end

local signals_mod = require("async.app.registry")
local kernel = require("async.kernel.graph")
local json = require("async.app.json")

local concat = table.concat
local find, sub, format = string.find, string.sub, string.format
local show = util.show

-- A deep copy (metatables kept by reference) to compare against later.
local function copy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in next, v do rawset(c, copy(k, seen), copy(x, seen)) end
  return setmetatable(c, getmetatable(v))
end

-- Deep equality with raw access (metatables must match).
local function same(a, b)
  if rawequal(a, b) then return true end
  if a ~= a and b ~= b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in next, a do
    if not same(v, rawget(b, k)) then return false end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local SEGS = { "a", "b", "c", "x", "1", "2", "3", "0", "01", "-1", "1.5", "inf", "nan", "$status", "$value",
  "$loading", "$", "$x", "list", "map", "deep", "title", "k", "", "" }
local IDS = { "a", "b", "a.b", "a.b.c", "list", "map", "c.1", "$s", "x", "deep.deep" }

local function gen_path(r, ids)
  local k = r:int(12)
  if k == 1 then return r:pick({ "", 1, true, {}, "." }) end
  local segs = {}
  if r:int(4) > 1 then segs[1] = r:pick(ids) else segs[1] = r:pick(SEGS) end
  for i = 2, r:int(1, 5) do segs[i] = r:pick(SEGS) end
  local p = concat(segs, ".")
  if k == 2 then p = "." .. p elseif k == 3 then p = p .. "." end
  return p
end

-- Values for sets: plain, nested, shared with another signal, odd metatables.
local function gen_value(r, pool)
  local k = r:int(10)
  if k == 1 then return nil end
  if k == 2 then return r:int(-5, 5) end
  if k == 3 then return "s" .. r:int(9) end
  if k == 4 then return { title = "t", list = { 1, 2, { x = 1 } } } end
  if k == 5 then return json.array({}) end
  if k == 6 and #pool > 0 then return r:pick(pool) end -- shared with another signal
  if k == 7 then return setmetatable({ y = 1 }, { __index = function() return "from __index" end }) end
  if k == 8 then return { 1, 2, 3 } end
  return r:one_in(2)
end

-- the id that owns path (longest registered prefix on segment boundaries)
local function owner(map, path)
  if map[path] ~= nil then return path end
  for i = #path, 1, -1 do
    if sub(path, i, i) == "." and map[sub(path, 1, i - 1)] ~= nil then return sub(path, 1, i - 1) end
  end
  return nil
end

local function has_empty_segment(p)
  return p == "" or sub(p, 1, 1) == "." or sub(p, -1) == "." or find(p, "..", 1, true) ~= nil
end

local function one(r)
  local reg = signals_mod.new()
  local pool = { { shared = { n = 1 } }, { 1, 2, 3 } }
  pool[3] = pool[1].shared
  local trap = {}
  -- a table whose __newindex writes elsewhere: a set through it must not
  -- leak into `trap`
  pool[4] = setmetatable({ z = 1 }, { __newindex = function(_, k2, v) rawset(trap, k2, v) end })
  local ids = {}
  for _ = 1, r:int(1, 6) do
    local id = r:pick(IDS)
    if not reg:has(id) then
      local v = r:one_in(2) and r:pick(pool) or gen_value(r, pool)
      reg:register(id, v)
      ids[#ids + 1] = id
    end
  end
  if r:one_in(3) and not reg:has("comp") then
    reg:computed("comp", function(s) return { n = s:peek(ids[1]) } end)
  end
  local map = {}
  for _, id in ipairs(reg:keys()) do map[id] = true end

  -- snapshots: every value seen so far, with a deep copy of it
  local seen = {}
  local function remember(v)
    if type(v) == "table" then seen[#seen + 1] = { v, copy(v) } end
  end
  local current = {}
  for _, id in ipairs(ids) do
    current[id] = reg:peek(id)
    remember(current[id])
  end
  for _, p in ipairs(pool) do remember(p) end

  local log = {}
  for _ = 1, r:int(1, 12) do
    local path = gen_path(r, ids)
    local op = r:int(10)
    local value = gen_value(r, pool)
    local ok, res
    if op <= 4 then
      log[#log + 1] = "get " .. show(path)
      ok, res = pcall(reg.get, reg, path)
    elseif op <= 9 then
      log[#log + 1] = "set " .. show(path) .. " = " .. show(value)
      ok, res = pcall(reg.set, reg, path, value)
    else
      log[#log + 1] = "update " .. show(path)
      ok, res = pcall(reg.update, reg, path, function() return value end)
    end
    local input = concat(log, "\n")
    local target = type(path) == "string" and path ~= "" and owner(map, path)
    if not ok then
      -- a clear error: an error table with a code and message, or a string naming the path
      local e = res
      if type(e) == "table" then
        if type(e.code) ~= "string" or type(e.message) ~= "string" then return "an error table without code", input end
      elseif type(e) == "string" then
        local named = type(path) == "string" and path ~= "" and find(e, path, 1, true)
          or find(e, "non-empty string", 1, true)
        if not named then return "error does not name the path: " .. e, input end
      else
        return "raised a " .. type(e), input
      end
    else
      if type(path) == "string" and has_empty_segment(path) then
        return "a path with an empty segment was accepted", input
      end
      if not target then return "an unregistered path was accepted", input end
      if op > 4 then
        if target == "comp" then return "a computed was written", input end
        local back = reg:peek(path)
        if not rawequal(back, value) then
          return "read after write gives " .. show(back) .. ", wrote " .. show(value), input
        end
        if next(trap) ~= nil then return "a set wrote through a __newindex metatable", input end
      end
    end
    -- no signal but the target changed; the values seen before are intact
    for _, id in ipairs(ids) do
      local now = reg:peek(id)
      if id ~= target or op <= 4 or not ok then
        if not rawequal(now, current[id]) then
          return format("signal %q changed (%s -> %s)", id, show(current[id]), show(now)), input
        end
      elseif not rawequal(now, current[id]) then
        current[id] = now
        remember(now)
      end
    end
    for _, s in ipairs(seen) do
      if not same(s[1], s[2]) then return "a value read before was mutated: " .. show(s[2]) .. " -> "
        .. show(s[1]), input end
    end
  end
  kernel.batch(function() end)
  return nil, concat(log, "\n"), "ok"
end

if is_script then util.main({ name = "paths", one = one }) end

return { name = "paths", one = one }
