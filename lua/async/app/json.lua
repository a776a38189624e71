--- JSON for asyncrt: encoding and decoding in Lua (json.null is cjson's null).
--
-- Debian's lua-cjson 2.1.0 cannot encode an empty array (it has no
-- array_mt), so encoding is done here: a table marked with `json.array(t)`
-- (or `json.array_mt`) encodes as an array even when empty; other empty
-- tables encode as `{}`; a table whose keys are exactly 1..n encodes as an
-- array. `json.null` (= cjson.null) is JSON null. `encode(v, { script = true })`
-- writes every `<` as `\u003c` so the result is safe inside <script>.
local errors = require("async.kernel.errors")
local cjson = require("cjson.safe")

local type, pairs, tostring, error, setmetatable, getmetatable, next, tonumber, pcall =
  type, pairs, tostring, error, setmetatable, getmetatable, next, tonumber, pcall
local concat, sort = table.concat, table.sort
local gsub, format, byte, char, find, sub, match = string.gsub, string.format, string.byte, string.char,
  string.find, string.sub, string.match
local huge, floor = math.huge, math.floor

local _M = {}

_M.null = cjson.null
local null = cjson.null

local array_mt = { __name = "json.array" }
_M.array_mt = array_mt

--- Marks t (or a new table) as a JSON array.
function _M.array(t)
  return setmetatable(t or {}, array_mt)
end

-- ===== ENCODING =====
-- One string.buffer per encode (a table + concat where string.buffer is
-- missing). Strings with nothing to escape, the common case, cost one byte
-- scan; the rest go through one gsub with a table. Object keys are sorted
-- (the output is deterministic) and their encoded form `"key":` is cached.

local has_sbuf, sbuf = pcall(require, "string.buffer")
local new_buffer
if has_sbuf then
  new_buffer = sbuf.new
else
  local Buf = {}
  Buf.__index = Buf
  function Buf:put(a, b, c) -- one or three strings
    local n = self.n + 1
    self[n] = a
    if b then self[n + 1], self[n + 2], n = b, c, n + 2 end
    self.n = n
    return self
  end
  function Buf:tostring() return concat(self, "", 1, self.n) end
  new_buffer = function() return setmetatable({ n = 0 }, Buf) end
end

-- escapes[c] for every byte `[%c"\\]` matches; script_escapes adds `<`
local escapes, script_escapes = {}, {}
for b = 0, 255 do
  local c = char(b)
  if find(c, '[%c"\\]') then escapes[c] = format("\\u%04x", b) end
end
escapes['"'], escapes["\\"], escapes["\b"], escapes["\f"] = '\\"', "\\\\", "\\b", "\\f"
escapes["\n"], escapes["\r"], escapes["\t"] = "\\n", "\\r", "\\t"
for c, e in pairs(escapes) do script_escapes[c] = e end
script_escapes["<"] = "\\u003c"

-- does s hold a byte that must be escaped? (`[%c"\\]`, plus `<` and the lead
-- byte of U+2028/2029 in script mode). A byte loop: LuaJIT compiles it, and
-- it beats a pattern find on the short strings snapshots are made of.
local function needs_escape(s, script)
  for i = 1, #s do
    local b = byte(s, i)
    if b < 32 or b == 34 or b == 92 or b == 127 or (script and (b == 60 or b == 226)) then return true end
  end
  return false
end

local function escape_string(s, script)
  if script then
    s = gsub(s, '[%c"\\<]', script_escapes)
    if find(s, "\226\128[\168\169]") then
      -- U+2028/2029 are line terminators in JavaScript source
      s = gsub(s, "\226\128\168", "\\u2028")
      s = gsub(s, "\226\128\169", "\\u2029")
    end
    return s
  end
  return (gsub(s, '[%c"\\]', escapes))
end

local function put_string(buf, s, script)
  if needs_escape(s, script) then s = escape_string(s, script) end
  buf:put('"', s, '"')
end

-- `"key":` per key string, for plain and script mode; bounded (keys may be data)
local KEY_CACHE_MAX = 2048
local key_cache, script_key_cache, key_count = {}, {}, 0

local function encoded_key(k, script)
  local cache = script and script_key_cache or key_cache
  local e = cache[k]
  if e == nil then
    e = needs_escape(k, script) and '"' .. escape_string(k, script) .. '":' or '"' .. k .. '":'
    key_count = key_count + 1
    if key_count > KEY_CACHE_MAX then
      key_cache, script_key_cache, key_count = {}, {}, 1
      cache = script and script_key_cache or key_cache
    end
    cache[k] = e
  end
  return e
end

local function by_tostring(a, b) return tostring(a) < tostring(b) end

-- sorts keys[1..n] (strings unless mixed); insertion sort for the small
-- objects snapshots are made of, table.sort beyond
local function sort_keys(keys, n, mixed)
  if mixed then
    sort(keys, by_tostring)
  elseif n > 12 then
    sort(keys)
  else
    for i = 2, n do
      local k = keys[i]
      local j = i - 1
      while j > 0 and k < keys[j] do
        keys[j + 1] = keys[j]
        j = j - 1
      end
      keys[j + 1] = k
    end
  end
end

local encode_value

local function put_number(buf, v)
  if v ~= v or v == huge or v == -huge then
    errors.raise("json-encode", "json: cannot encode " .. tostring(v))
  end
  if floor(v) == v and v > -1e15 and v < 1e15 then
    buf:put(format("%d", v))
  else
    -- the shortest of %.14g / %.17g that reads back as v
    local s = format("%.14g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
    buf:put(s)
  end
end

local function encode_table(t, buf, depth, script)
  if depth > 100 then errors.raise("json-encode", "json: nesting deeper than 100 (a cycle?)") end
  local n = #t
  local arr = getmetatable(t) == array_mt
  if not arr and n > 0 then
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    arr = count == n
  end
  if arr then
    buf:put("[")
    for i = 1, n do
      if i > 1 then buf:put(",") end
      encode_value(t[i], buf, depth + 1, script)
    end
    buf:put("]")
    return
  end
  local keys, nk, mixed = {}, 0, false
  for k in pairs(t) do
    local tk = type(k)
    if tk ~= "string" then
      if tk ~= "number" then errors.raise("json-encode", "json: cannot encode a table key of type " .. tk) end
      mixed = true
    end
    nk = nk + 1
    keys[nk] = k
  end
  if nk > 1 then sort_keys(keys, nk, mixed) end
  buf:put("{")
  for i = 1, nk do
    local k = keys[i]
    if i > 1 then buf:put(",") end
    if mixed then
      put_string(buf, tostring(k), script)
      buf:put(":")
    else
      buf:put(encoded_key(k, script))
    end
    encode_value(t[k], buf, depth + 1, script)
  end
  buf:put("}")
end

function encode_value(v, buf, depth, script)
  local tv = type(v)
  if tv == "string" then
    put_string(buf, v, script)
  elseif tv == "number" then
    put_number(buf, v)
  elseif tv == "boolean" then
    buf:put(v and "true" or "false")
  elseif v == nil or v == null then
    buf:put("null")
  elseif tv == "table" then
    encode_table(v, buf, depth, script)
  else
    errors.raise("json-encode", "json: cannot encode a value of type " .. tv)
  end
end

--- Encodes v; opts.script escapes `<` for embedding in <script>.
-- Raises on values JSON cannot hold (functions, NaN, cycles).
function _M.encode(v, opts)
  local buf = new_buffer()
  encode_value(v, buf, 0, opts and opts.script and true or false)
  return buf:tostring()
end

-- ===== DECODING =====
-- One decoder, in Lua, for every document: one behaviour whatever the text
-- holds. (Until 2025 a document holding an empty array went through this
-- decoder and every other one through cjson, and the two disagreed: cjson
-- took a raw tab or newline inside a string, this one refused it.)
--   * strict RFC 8259: a byte below 0x20 raw inside a string is refused (tab,
--     CR and LF too); numbers follow the JSON grammar (no "1.", ".5", "01",
--     "+1", NaN, Infinity or hex);
--   * arrays carry array_mt, so `[]` re-encodes as `[]`, never `{}`;
--   * JSON null is json.null; duplicate keys: the last one wins;
--   * nesting deeper than max_depth (64) is refused;
--   * the messages are cjson's ("Expected value but found T_END at
--     character 1"), which clients and logs already know.
-- It costs about 3x cjson on large documents (bench: 20 KB in 1.5 ms); bodies
-- are capped at 1 MiB by the server.

local ESC = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n", [114] = "\r",
              [116] = "\t" }

local function utf8(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function fail(msg, i) error(format("%s at character %d", msg, i), 0) end

-- cjson's name for what stands at i: T_END or an invalid token
local function found(s, i)
  if i > #s then return "T_END" end
  return "invalid token"
end

local function skip(s, i)
  local b = byte(s, i)
  if b ~= 32 and b ~= 9 and b ~= 10 and b ~= 13 then return i end
  return find(s, "[^ \t\r\n]", i + 1) or #s + 1
end

-- a string starting at the quote at i; returns the string and the index after it
local function decode_string(s, i)
  local j = i + 1
  local k = find(s, '["\\%z\1-\31]', j)
  if k and byte(s, k) == 34 then return sub(s, j, k - 1), k + 1 end   -- nothing escaped: the common case
  local buf, n = {}, 0
  while true do
    if not k then fail("Expected string end but found T_END", #s + 1) end
    local c = byte(s, k)
    n = n + 1
    buf[n] = sub(s, j, k - 1)
    if c == 34 then return concat(buf, "", 1, n), k + 1 end
    if c ~= 92 then fail("Invalid control character in string", k) end
    local e = byte(s, k + 1)
    if e == 117 then -- \u
      local hex = match(s, "^%x%x%x%x", k + 2)
      if not hex then fail("Invalid unicode escape code", k) end
      local cp = tonumber(hex, 16)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = match(s, "^\\u(%x%x%x%x)", j)
        local lcp = lo and tonumber(lo, 16)
        if not lcp or lcp < 0xDC00 or lcp > 0xDFFF then fail("Invalid unicode surrogate pair", k) end
        cp = 0x10000 + (cp - 0xD800) * 1024 + (lcp - 0xDC00)
        j = j + 6
      end
      n = n + 1
      buf[n] = utf8(cp)
    else
      local r = e and ESC[e]
      if not r then fail("Invalid escape code", k) end
      n = n + 1
      buf[n] = r
      j = k + 2
    end
    k = find(s, '["\\%z\1-\31]', j)
  end
end

-- a number at i (JSON grammar); returns it and the index after it
local function decode_number(s, i)
  local int = match(s, "^-?%d+", i)
  if not int or match(int, "^-?0%d") then fail("Expected value but found invalid token", i) end
  local e = i + #int
  local frac = match(s, "^%.%d+", e)
  if frac then e = e + #frac elseif byte(s, e) == 46 then fail("Expected value but found invalid number", i) end
  local exp = match(s, "^[eE][-+]?%d+", e)
  if exp then e = e + #exp elseif byte(s, e) == 101 or byte(s, e) == 69 then
    fail("Expected value but found invalid number", i)
  end
  local text = sub(s, i, e - 1)
  local v = tonumber(text)
  if v == nil then
    -- LuaJIT's tonumber gives up on exponents of many digits: the value is
    -- then 0 (a zero mantissa or a negative exponent) or out of range, as
    -- strtod would read it
    local neg, mant, x = match(text, "^(-?)([%d.]+)[eE]([-+]?)")
    if not find(mant, "[1-9]") or x == "-" then v = 0 else v = huge end
    if neg == "-" then v = -v end
  end
  return v, e
end

local decode_at

-- an array or object whose bracket is at i
local function decode_container(s, i, b, depth, max_depth)
  if depth >= max_depth then fail("Found too many nested data structures (" .. (depth + 1) .. ")", i) end
  i = skip(s, i + 1)
  if b == 91 then -- [
    local out = setmetatable({}, array_mt)
    if byte(s, i) == 93 then return out, i + 1 end
    local n = 0
    while true do
      local v
      v, i = decode_at(s, i, depth + 1, max_depth)
      n = n + 1
      out[n] = v
      i = skip(s, i)
      local d = byte(s, i)
      if d == 93 then return out, i + 1 end
      if d ~= 44 then fail("Expected comma or array end but found " .. found(s, i), i) end
      i = skip(s, i + 1)
    end
  end
  local out = {}
  if byte(s, i) == 125 then return out, i + 1 end
  while true do
    if byte(s, i) ~= 34 then fail("Expected object key string but found " .. found(s, i), i) end
    local k
    k, i = decode_string(s, i)
    i = skip(s, i)
    if byte(s, i) ~= 58 then fail("Expected colon but found " .. found(s, i), i) end
    local v
    v, i = decode_at(s, skip(s, i + 1), depth + 1, max_depth)
    out[k] = v
    i = skip(s, i)
    local d = byte(s, i)
    if d == 125 then return out, i + 1 end
    if d ~= 44 then fail("Expected comma or object end but found " .. found(s, i), i) end
    i = skip(s, i + 1)
  end
end

-- the value at i (no whitespace before it); returns it and the index after it
function decode_at(s, i, depth, max_depth)
  local b = byte(s, i)
  if b == 34 then return decode_string(s, i) end
  if b == 123 or b == 91 then return decode_container(s, i, b, depth, max_depth) end
  if b == 45 or (b and b >= 48 and b <= 57) then return decode_number(s, i) end
  if b == 116 and sub(s, i, i + 3) == "true" then return true, i + 4 end
  if b == 102 and sub(s, i, i + 4) == "false" then return false, i + 5 end
  if b == 110 and sub(s, i, i + 3) == "null" then return null, i + 4 end
  fail("Expected value but found " .. found(s, i), i)
end

--- Decodes s; returns value or nil, message. opts.max_depth (default 64).
-- JSON null is json.null; every array carries array_mt (so an empty one
-- encodes back as `[]`).
function _M.decode(s, opts)
  if type(s) ~= "string" then return nil, "expected a JSON string, got " .. type(s) end
  local max_depth = opts and opts.max_depth or 64
  -- control bytes other than tab, CR and LF are never valid raw JSON
  local bad = find(s, "[%z\1-\8\11\12\14-\31]")
  if bad then return nil, "Invalid control character at character " .. bad end
  local ok, v, i = pcall(decode_at, s, skip(s, 1), 0, max_depth)
  if not ok then return nil, v end
  i = skip(s, i)
  if i <= #s then return nil, format("Expected the end but found invalid token at character %d", i) end
  return v
end

--- Is t empty?
function _M.empty(t) return next(t) == nil end

return _M
