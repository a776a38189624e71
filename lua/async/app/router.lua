-- async.router: route patterns, ranking and matching (protocol.md, "Route
-- partials").
--
-- Patterns:
--   "*"             matches every path (rank -1: the fallback)
--   "/"             matches "/" only (rank 3)
--   "/a/:p"         static segments (4 each) and ":name" params (2 each)
--   "/files/*rest"  a splat ("*name", or bare "*" captured as params["*"]) as
--                   the last segment only (1); it matches one or more
--                   characters, "/" included, so "/files" does not match.
-- The best match has the highest rank; ties go to the longer pattern, then to
-- the route defined first. Matching is anchored, with no trailing-slash
-- tolerance; the query string and fragment are ignored. Params are
-- percent-decoded; a param with a malformed encoding (bad "%XX" or bytes that
-- are not UTF-8) stays raw.
--
-- Patterns are compiled once into Lua patterns. Routes whose first segment is
-- static are indexed by it, so a lookup only tries the routes of the path's
-- first segment plus the routes that start with a param or splat.

local errors = require("async.kernel.errors")
local type, tostring, tonumber = type, tostring, tonumber
local setmetatable, getmetatable, ipairs, pairs = setmetatable, getmetatable, ipairs, pairs
local sub, find, match, gsub, byte, char, format =
  string.sub, string.find, string.match, string.gsub, string.byte, string.char, string.format
local sort, concat, tremove = table.sort, table.concat, table.remove

local _M = {}

local ROUTE_NOT_MATCHED = "route-not-matched"
_M.ROUTE_NOT_MATCHED = ROUTE_NOT_MATCHED

local RANK_STATIC, RANK_PARAM, RANK_SPLAT, RANK_ROOT, RANK_ANY = 4, 2, 1, 3, -1

-- ===== PERCENT DECODING =====

-- True when s is well-formed UTF-8 (what JavaScript's decodeURIComponent
-- accepts after decoding).
local function valid_utf8(s)
  if not find(s, "[\128-\255]") then return true end
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local len
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4
    else return false end
    if i + len - 1 > n then return false end
    for j = i + 1, i + len - 1 do
      local cc = byte(s, j)
      if cc < 0x80 or cc > 0xBF then return false end
    end
    if len == 3 then
      local c2 = byte(s, i + 1)
      if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F) then return false end
    elseif len == 4 then
      local c2 = byte(s, i + 1)
      if (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then return false end
    end
    i = i + len
  end
  return true
end

local function hex_to_char(h)
  return char(tonumber(h, 16))
end

-- Percent-decodes s like decodeURIComponent; returns s unchanged when the
-- encoding is malformed.
local function decode(s)
  if not find(s, "%", 1, true) then return s end
  -- every "%" must start a "%XX" escape
  if find(gsub(s, "%%%x%x", ""), "%", 1, true) then return s end
  local out = gsub(s, "%%(%x%x)", hex_to_char)
  if not valid_utf8(out) then return s end
  return out
end
_M.decode = decode

-- ===== URLS =====

-- Splits a path or URL into its path and raw query string (nil if none).
-- "http://host/a/b?x=1#f" -> "/a/b", "x=1".
local function split_url(url)
  local hash = find(url, "#", 1, true)
  if hash then url = sub(url, 1, hash - 1) end
  local query
  local q = find(url, "?", 1, true)
  if q then
    query = sub(url, q + 1)
    url = sub(url, 1, q - 1)
  end
  -- an absolute URL's scheme and host are dropped; a path ("/...", the
  -- common case) skips the pattern (string.match is not compiled: it ends
  -- the trace)
  if byte(url, 1) ~= 47 then
    local rest = match(url, "^%a[%w+.-]*://[^/]*(.*)$")
    if rest then url = rest end
  end
  if url == "" then url = "/" end
  return url, query
end
_M.split_url = split_url

-- The error a failed match reports (router.error, status 404).
function _M.not_matched_error(path)
  return { code = ROUTE_NOT_MATCHED, message = "No route matched " .. tostring(path) }
end

-- ===== PATTERNS =====

local function bad_pattern(pattern, why)
  errors.raise("invalid-route", format("Invalid route pattern %q: %s", tostring(pattern), why))
end

-- A Lua pattern ends at a NUL byte (LuaJIT), so "\0" is written "%z".
local function escape_lua_pattern(s)
  return (gsub(gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"), "%z", "%%z"))
end

-- Compiles a pattern into { pattern, rank, len, lua, names, nseg, splat,
-- first } or raises naming the pattern.
local function compile(pattern)
  if type(pattern) ~= "string" then
    errors.raise("invalid-route", format("Invalid route pattern: expected a string, got %s", type(pattern)))
  end
  local c = { pattern = pattern, len = #pattern, names = {}, splat = false }
  if pattern == "*" then
    c.rank, c.any = RANK_ANY, true
    return c
  end
  if sub(pattern, 1, 1) ~= "/" then
    bad_pattern(pattern, 'a pattern starts with "/" or is "*"')
  end
  if find(pattern, "[?#%s]") then
    bad_pattern(pattern, "whitespace, \"?\" and \"#\" are not allowed")
  end
  if pattern == "/" then
    c.rank, c.lua, c.nseg = RANK_ROOT, "^/$", 0
    return c
  end
  local segs = {}
  for seg in (sub(pattern, 2) .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = seg end
  local parts, rank, seen = {}, 0, {}
  for i, seg in ipairs(segs) do
    local head = sub(seg, 1, 1)
    if seg == "" then
      bad_pattern(pattern, format("segment %d is empty", i))
    elseif head == "*" then
      if i ~= #segs then
        bad_pattern(pattern, 'a splat ("*" or "*name") is only allowed as the last segment')
      end
      local name = sub(seg, 2)
      if name == "" then
        name = "*"
      elseif not match(name, "^[%a_][%w_]*$") then
        bad_pattern(pattern, format("bad splat name %q", name))
      end
      if seen[name] then bad_pattern(pattern, format("param %q appears twice", name)) end
      seen[name] = true
      c.names[#c.names + 1] = name
      c.splat = true
      parts[i] = "(.+)"
      rank = rank + RANK_SPLAT
    elseif head == ":" then
      local name = sub(seg, 2)
      if not match(name, "^[%a_][%w_]*$") then
        bad_pattern(pattern, format("bad param name %q in segment %d", name, i))
      end
      if seen[name] then bad_pattern(pattern, format("param %q appears twice", name)) end
      seen[name] = true
      c.names[#c.names + 1] = name
      parts[i] = "([^/]+)"
      rank = rank + RANK_PARAM
    else
      if find(seg, "*", 1, true) then
        bad_pattern(pattern, 'a splat ("*" or "*name") must be a whole segment')
      end
      if i == 1 then c.first = seg end
      parts[i] = escape_lua_pattern(seg)
      rank = rank + RANK_STATIC
    end
  end
  c.rank = rank
  c.nseg = #segs
  c.lua = "^/" .. concat(parts, "/") .. "$"
  return c
end
_M.compile = function(pattern) return compile(pattern) end

-- Orders compiled routes best first: rank, then length, then definition.
local function better(a, b)
  if a.rank ~= b.rank then return a.rank > b.rank end
  if a.len ~= b.len then return a.len > b.len end
  return a.order < b.order
end

-- ===== ROUTER =====

local Router = {}
Router.__index = Router

-- Creates an empty router.
function _M.new()
  return setmetatable({
    _routes = {},     -- pattern -> compiled
    _static = {},     -- first segment -> sorted array of compiled
    _dynamic = {},    -- sorted array of compiled starting with a param/splat
    _root = nil,      -- compiled "/"
    _any = nil,       -- compiled "*"
    _order = 0,
  }, Router)
end

local function insert_sorted(list, c)
  list[#list + 1] = c
  sort(list, better)
end

local function remove_from(list, c)
  for i = 1, #list do
    if list[i] == c then
      tremove(list, i)
      return
    end
  end
end

local function unindex(self, c)
  if c.any then
    self._any = nil
  elseif c.nseg == 0 then
    self._root = nil
  elseif c.first then
    local list = self._static[c.first]
    remove_from(list, c)
    if #list == 0 then self._static[c.first] = nil end
  else
    remove_from(self._dynamic, c)
  end
end

-- Adds (or replaces, keeping its place in definition order) a route.
-- Raises on a malformed pattern. Returns the router.
--- A copy that can be changed without touching this router (a runtime that
-- adds routes of its own copies the app's shared router first).
function Router:clone()
  local c = setmetatable({ _routes = {}, _static = {}, _dynamic = {}, _root = self._root, _any = self._any,
                           _order = self._order }, getmetatable(self))
  for p, r in pairs(self._routes) do c._routes[p] = r end
  for first, list in pairs(self._static) do
    local copy = {}
    for i = 1, #list do copy[i] = list[i] end
    c._static[first] = copy
  end
  for i = 1, #self._dynamic do c._dynamic[i] = self._dynamic[i] end
  return c
end

function Router:add(pattern, route)
  local c = compile(pattern)
  local old = self._routes[pattern]
  if old then
    unindex(self, old)
    c.order = old.order
  else
    self._order = self._order + 1
    c.order = self._order
  end
  c.route = route
  self._routes[pattern] = c
  if c.any then
    self._any = c
  elseif c.nseg == 0 then
    self._root = c
  elseif c.first then
    local list = self._static[c.first]
    if not list then
      list = {}
      self._static[c.first] = list
    end
    insert_sorted(list, c)
  else
    insert_sorted(self._dynamic, c)
  end
  return self
end

-- Removes a route; returns true if it was there.
function Router:remove(pattern)
  local c = self._routes[pattern]
  if not c then return false end
  self._routes[pattern] = nil
  unindex(self, c)
  return true
end

-- The route defined for a pattern, or nil.
function Router:get(pattern)
  local c = self._routes[pattern]
  return c and c.route
end

-- The defined patterns, in definition order.
function Router:patterns()
  local list = {}
  for p, c in pairs(self._routes) do list[#list + 1] = { p, c.order } end
  sort(list, function(a, b) return a[2] < b[2] end)
  for i = 1, #list do list[i] = list[i][1] end
  return list
end

-- The first route of a best-first list that matches path, with its captures.
local function first_match(list, path, nseg)
  for i = 1, #list do
    local c = list[i]
    if nseg == c.nseg or (c.splat and nseg >= c.nseg) then
      local m = { match(path, c.lua) }
      if m[1] ~= nil then return c, m end
    end
  end
end

local function count_segments(path)
  local _, n = gsub(path, "/", "")
  return n
end

-- Matches a path or URL; returns { pattern=, route=, params=, path=, query= }
-- or nil (see not_matched_error).
function Router:match(url)
  if type(url) ~= "string" then
    errors.argument("router:match: expected a path string, got " .. type(url))
  end
  local path, query = split_url(url)
  local best, caps
  if path == "/" then
    best = self._root
    caps = {}
  end
  if not best then
    local nseg = count_segments(path)
    local first = match(path, "^/([^/]+)")
    local list = first and self._static[first]
    local c1, m1, c2, m2
    if list then c1, m1 = first_match(list, path, nseg) end
    c2, m2 = first_match(self._dynamic, path, nseg)
    if c1 and (not c2 or better(c1, c2)) then
      best, caps = c1, m1
    elseif c2 then
      best, caps = c2, m2
    end
  end
  if not best then
    best = self._any
    caps = {}
  end
  if not best then return nil end
  local params = {}
  for i, name in ipairs(best.names) do params[name] = decode(caps[i]) end
  return { pattern = best.pattern, route = best.route, params = params, path = path, query = query }
end

_M.Router = Router

return _M
