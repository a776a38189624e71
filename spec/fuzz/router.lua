-- Fuzz driver for async.router (route patterns, matching, percent-decoding;
-- protocol.md "Route partials").
--
--   luajit spec/fuzz/router.lua               -- short run (2,000 inputs)
--   FUZZ_LONG=1 luajit spec/fuzz/router.lua   -- long run (100,000 inputs)
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...     -- replay one input
--
-- One input is a random route set (valid and invalid patterns, some removed
-- or redefined) and a batch of random paths and URLs.
-- Checks: add either succeeds or raises "Invalid route pattern "P": why"
-- naming the pattern, exactly when a reference validator (written from
-- protocol.md) says the pattern is bad, and a refused add leaves the router
-- unchanged; match never raises; params are strings; the indexed matcher
-- agrees with a naive reference that tries every route linearly and ranks
-- them by protocol.md (static 4, :param 2, splat 1, "/" 3, "*" -1, ties to
-- the longer pattern, then the first defined); decode never raises and
-- leaves malformed encodings raw.

local modname = ...
local is_script = type(modname) ~= "string" or not modname:find("fuzz%.router$")
if is_script then package.path = "./spec/?.lua;" .. package.path end
local util = require("fuzz.util")
if is_script then util.script_paths() end

local router = require("async.app.router")

local concat = table.concat
local find, sub, match, format, byte, char = string.find, string.sub, string.match, string.format, string.byte,
  string.char
local tonumber = tonumber
local deep_equal, show = util.deep_equal, util.show

-- ===== REFERENCE (from protocol.md, independent of router.lua) =====

-- Is s well-formed UTF-8 (Unicode table 3-7)?
local function ref_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local need, lo, hi
    lo, hi = 0x80, 0xBF
    if c <= 0x7F then need = 0
    elseif c >= 0xC2 and c <= 0xDF then need = 1
    elseif c == 0xE0 then need, lo = 2, 0xA0
    elseif c >= 0xE1 and c <= 0xEC then need = 2
    elseif c == 0xED then need, hi = 2, 0x9F
    elseif c >= 0xEE and c <= 0xEF then need = 2
    elseif c == 0xF0 then need, lo = 3, 0x90
    elseif c >= 0xF1 and c <= 0xF3 then need = 3
    elseif c == 0xF4 then need, hi = 3, 0x8F
    else return false end
    for j = 1, need do
      local b = byte(s, i + j)
      if not b then return false end
      if j == 1 then
        if b < lo or b > hi then return false end
      elseif b < 0x80 or b > 0xBF then
        return false
      end
    end
    i = i + need + 1
  end
  return true
end

-- decodeURIComponent, or s itself when it would throw.
local function ref_decode(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = sub(s, i, i)
    if c == "%" then
      local h = sub(s, i + 1, i + 2)
      if not match(h, "^[0-9a-fA-F][0-9a-fA-F]$") then return s end
      out[#out + 1] = char(tonumber(h, 16))
      i = i + 3
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  local d = concat(out)
  if not ref_utf8(d) then return s end
  return d
end

local function split_segments(s)
  local segs = {}
  for seg in (s .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = seg end
  return segs
end

-- nil when the pattern is valid, else why not.
local function ref_invalid(p)
  if type(p) ~= "string" then return "not a string" end
  if p == "*" or p == "/" then return nil end
  if sub(p, 1, 1) ~= "/" then return "no leading /" end
  if find(p, "[?#%s]") then return "? # or whitespace" end
  local segs = split_segments(sub(p, 2))
  local seen = {}
  for i, seg in ipairs(segs) do
    if seg == "" then return "empty segment" end
    local head = sub(seg, 1, 1)
    if head == "*" or head == ":" then
      local name = sub(seg, 2)
      if head == "*" then
        if i ~= #segs then return "splat not last" end
        if name == "" then name = "*" elseif not match(name, "^[%a_][%w_]*$") then return "bad splat name" end
      elseif not match(name, "^[%a_][%w_]*$") then
        return "bad param name"
      end
      if seen[name] then return "duplicate name" end
      seen[name] = true
    elseif find(seg, "*", 1, true) then
      return "* inside a static segment"
    end
  end
  return nil
end

-- rank and captures of pattern p on path, or nil when it does not match.
local function ref_match_one(p, path)
  if p == "*" then return -1, {} end
  if p == "/" then
    if path == "/" then return 3, {} end
    return nil
  end
  if sub(path, 1, 1) ~= "/" then return nil end
  local psegs = split_segments(sub(p, 2))
  local rest = sub(path, 2)
  local rank, params = 0, {}
  for i, ps in ipairs(psegs) do
    local head = sub(ps, 1, 1)
    if head == "*" and i == #psegs then
      if rest == nil or rest == "" then return nil end
      local name = sub(ps, 2)
      params[name == "" and "*" or name] = ref_decode(rest)
      return rank + 1, params
    end
    if rest == nil then return nil end
    local slash = find(rest, "/", 1, true)
    local part = slash and sub(rest, 1, slash - 1) or rest
    rest = slash and sub(rest, slash + 1) or nil
    if head == ":" then
      if part == "" then return nil end
      params[sub(ps, 2)] = ref_decode(part)
      rank = rank + 2
    else
      if part ~= ps then return nil end
      rank = rank + 4
    end
  end
  if rest ~= nil then return nil end
  return rank, params
end

-- path part of a URL (query, fragment, scheme://host dropped; "" -> "/")
local function ref_path(url)
  local p = url
  local h = find(p, "#", 1, true)
  if h then p = sub(p, 1, h - 1) end
  local q = find(p, "?", 1, true)
  local query
  if q then query = sub(p, q + 1); p = sub(p, 1, q - 1) end
  local after = match(p, "^%a[%w+.-]*://[^/]*(.*)$")
  if after then p = after end
  if p == "" then p = "/" end
  return p, query
end

-- the best route of routes (array of { pattern, route, order }) for url
local function ref_match(routes, url)
  local path, query = ref_path(url)
  local best, best_rank, best_params
  for _, r in ipairs(routes) do
    local rank, params = ref_match_one(r.pattern, path)
    if rank then
      local better = not best or rank > best_rank
        or (rank == best_rank and (#r.pattern > #best.pattern
          or (#r.pattern == #best.pattern and r.order < best.order)))
      if better then best, best_rank, best_params = r, rank, params end
    end
  end
  if not best then return nil end
  return { pattern = best.pattern, route = best.route, params = best_params, path = path, query = query }
end

-- ===== GENERATION =====

local STATIC = { "a", "b", "products", "new", "x.y", "(c)", "%20", "a%b", "caf\195\169", "[x]", "a+b", "1", "-",
  "a:b", "^$", "%%", "a\0b" }
local NAMES = { "id", "p", "q", "x", "_", "rest", "id2", "ID" }
local BAD = { "", ":", ":1x", ":a-b", "*x*", "a*", "*1", "?", "#", " ", "x y", "\t", ":id", "*", "*rest" }

local function gen_pattern(r)
  local k = r:int(20)
  if k == 1 then return "*" end
  if k == 2 then return "/" end
  local segs, used = {}, {}
  local n = r:int(1, 4)
  for i = 1, n do
    local t = r:int(10)
    if t <= 5 then
      segs[i] = r:pick(STATIC)
    elseif t <= 8 or i < n then
      local name = r:pick(NAMES)
      if used[name] then name = name .. i end
      used[name] = true
      segs[i] = ":" .. name
    else
      segs[i] = r:one_in(2) and "*" or "*" .. r:pick(NAMES)
    end
  end
  local p = "/" .. concat(segs, "/")
  if k <= 5 then
    -- an invalid or odd pattern
    local m = r:int(4)
    if m == 1 then
      local at = r:int(1, #segs)
      segs[at] = r:pick(BAD)
      p = "/" .. concat(segs, "/")
    elseif m == 2 then
      p = util.mutate(r, p, { "/", ":", "*", "//", "?", "%", " ", ":id", "*x" })
    elseif m == 3 then
      p = r:pick({ "", "a", "**", "/*/a", "/a/", "//", "/a//b", "/:id/:id", "/*a/*b", "/:a:b", "/x*", "*/a", "/ ",
        "/\0", "/a\0b" })
    else
      p = r:pick({ 1, true, {}, false })
    end
  end
  return p
end

local PATH_SEGS = { "a", "b", "products", "new", "x.y", "(c)", "%20", "a%b", "caf\195\169", "caf%C3%A9", "%C3%28",
  "%zz", "%", "%2F", "%00", "[x]", "a+b", "1", "", "%FF", "%E0%80%80", "%F0%9F%98%80", "%ED%A0%80", "a:b", "^$",
  "%%", "%25", "a\0b", "a\0" }

-- a path that fills pattern p (when it is a valid non-"*" pattern)
local function fill(r, p)
  if type(p) ~= "string" or sub(p, 1, 1) ~= "/" then return "/" end
  local out = {}
  for i, seg in ipairs(split_segments(sub(p, 2))) do
    local head = sub(seg, 1, 1)
    if head == ":" then out[i] = r:pick(PATH_SEGS)
    elseif head == "*" then out[i] = r:pick(PATH_SEGS) .. (r:one_in(2) and "/" .. r:pick(PATH_SEGS) or "")
    else out[i] = seg end
  end
  return "/" .. concat(out, "/")
end

local function gen_path(r, patterns)
  local k = r:int(10)
  local p
  if k <= 4 and #patterns > 0 then
    p = fill(r, r:pick(patterns))
  elseif k <= 8 then
    local segs = {}
    for i = 1, r:int(0, 4) do segs[i] = r:pick(PATH_SEGS) end
    p = "/" .. concat(segs, "/")
  elseif k == 9 then
    p = util.mutate(r, fill(r, r:pick(patterns) or "/a"), { "/", "%", "?", "#", "%2", "//", "://" })
  else
    p = r:bytes(r:int(0, 16))
  end
  local d = r:int(12)
  if d == 1 then p = p .. "?q=1&r=%zz" elseif d == 2 then p = p .. "#frag/x" elseif d == 3 then
    p = "https://example.com:8080" .. p
  elseif d == 4 then p = p .. "/" end
  return p
end

-- ===== DRIVER =====

local function one(r)
  local rt = router.new()
  local routes, patterns = {}, {}
  local order = 0
  local log = {}
  for _ = 1, r:int(1, 10) do
    local p = gen_pattern(r)
    local before = rt:patterns()
    local ok, err = pcall(rt.add, rt, p, "R" .. show(p))
    local why = ref_invalid(p)
    log[#log + 1] = "add " .. show(p) .. (ok and "" or " (refused)")
    if ok and why then return "accepted a bad pattern (" .. why .. "): " .. show(p), concat(log, "\n") end
    if not ok then
      if not why then return "refused a valid pattern: " .. tostring(err), concat(log, "\n") end
      err = tostring(err)
      local named = type(p) == "string" and find(err, format("Invalid route pattern %q: ", p), 1, true)
        or type(p) ~= "string" and find(err, "Invalid route pattern: expected a string, got " .. type(p), 1, true)
      if not named then return "error does not name the pattern: " .. err, concat(log, "\n") end
      if not deep_equal(before, rt:patterns()) then return "a refused add changed the router", concat(log, "\n") end
    else
      local found = false
      for _, x in ipairs(routes) do
        if x.pattern == p then x.route = "R" .. show(p); found = true end
      end
      if not found then
        order = order + 1
        routes[#routes + 1] = { pattern = p, route = "R" .. show(p), order = order }
        patterns[#patterns + 1] = p
      end
    end
    if r:one_in(6) and #routes > 0 then
      local victim = r:int(#routes)
      local vp = routes[victim].pattern
      log[#log + 1] = "remove " .. show(vp)
      if not rt:remove(vp) then return "remove of a defined pattern returned false", concat(log, "\n") end
      table.remove(routes, victim)
    end
  end
  local matched = 0
  for _ = 1, 8 do
    local url = gen_path(r, patterns)
    local ok, m = pcall(rt.match, rt, url)
    local input = concat(log, "\n") .. "\nmatch " .. show(url)
    if not ok then return "match raised: " .. tostring(m), input end
    if m then
      matched = matched + 1
      for k, v in pairs(m.params) do
        if type(k) ~= "string" or type(v) ~= "string" then return "a param that is not a string", input end
      end
    end
    local want = ref_match(routes, url)
    if not deep_equal(m, want) then
      return "indexed match differs from the reference:\n  got  " .. show(m) .. "\n  want " .. show(want), input
    end
  end
  -- decoding on its own
  local s = r:one_in(2) and r:bytes(r:int(0, 12)) or util.mutate(r, r:pick(PATH_SEGS), { "%", "%2", "%C3", "%A9" })
  local ok, d = pcall(router.decode, s)
  if not ok then return "decode raised: " .. tostring(d), show(s) end
  if d ~= ref_decode(s) then return "decode " .. show(d) .. " differs from the reference " .. show(ref_decode(s)),
    show(s) end
  return nil, concat(log, "\n"), matched > 0 and "matched" or "unmatched"
end

if is_script then util.main({ name = "router", one = one }) end

return { name = "router", one = one }
