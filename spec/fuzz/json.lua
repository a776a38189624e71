-- Fuzz driver for async.json (decode, and encode for round trips).
--
--   luajit spec/fuzz/json.lua               -- short run (2,000 inputs)
--   FUZZ_LONG=1 luajit spec/fuzz/json.lua   -- long run (100,000 inputs)
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...   -- replay one input
--   FUZZ_STRICT=1 ...                       -- known bugs fail too
--
-- Inputs: random Lua values (strings with control chars, "<", "</script>",
-- U+2028 and other UTF-8; integers and floats; booleans; arrays, empty ones
-- marked with json.array; objects) encoded, written out again with random
-- whitespace and escapes, mutated byte-wise, nested around depth 64, and
-- random bytes. Documents with an empty array go through json.lua's Lua
-- decoder, the others through cjson: both are exercised.
-- Checks: decode never raises (value, or nil + a message); it accepts
-- exactly what a reference RFC 8259 parser (below) accepts, with the same
-- value; nesting deeper than 64 is refused; decode(encode(v)) equals v and
-- encodes back to the same text (empty arrays stay arrays);
-- encode(v, { script = true }) holds no "<" and decodes to v.
-- Known bugs of json.lua (see docs/fuzzing.md) are counted as "known:NAME"
-- instead of failing, so the suite stays green while they are open.

local modname = ...
local is_script = type(modname) ~= "string" or not modname:find("fuzz%.json$")
if is_script then package.path = "./spec/?.lua;" .. package.path end
local util = require("fuzz.util")
if is_script then util.script_paths() end

local json = require("async.app.json")

local concat = table.concat
local find, sub, match, byte, char, format = string.find, string.sub, string.match, string.byte, string.char,
  string.format
local floor, huge = math.floor, math.huge
local deep_equal, show = util.deep_equal, util.show
local null = json.null
local STRICT = os.getenv("FUZZ_STRICT") ~= nil

-- ===== REFERENCE PARSER (RFC 8259) =====

local function utf8(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64) end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

-- Returns { ok =, value =, why =, depth =, surrogate =, huge = }.
local function ref_parse(s)
  local st = { depth = 0 }
  local i = 1
  local function fail(why) error({ why = why, at = i }, 0) end
  local function ws() i = find(s, "[^ \t\r\n]", i) or #s + 1 end
  local function str()
    i = i + 1
    local buf = {}
    while true do
      local c = byte(s, i)
      if not c then fail("unterminated string") end
      if c == 34 then i = i + 1; return concat(buf) end
      if c < 32 then fail("control character in a string") end
      if c == 92 then
        local e = sub(s, i + 1, i + 1)
        if e == "u" then
          local h = match(s, "^%x%x%x%x", i + 2)
          if not h then fail("bad \\u escape") end
          local cp = tonumber(h, 16)
          i = i + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local h2 = match(s, "^\\u(%x%x%x%x)", i)
            local lo = h2 and tonumber(h2, 16)
            if lo and lo >= 0xDC00 and lo <= 0xDFFF then
              cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
              i = i + 6
            else
              st.surrogate = true
            end
          elseif cp >= 0xDC00 and cp <= 0xDFFF then
            st.surrogate = true
          end
          buf[#buf + 1] = utf8(cp)
        elseif ESC[e] then
          buf[#buf + 1] = ESC[e]
          i = i + 2
        else
          fail("bad escape")
        end
      else
        buf[#buf + 1] = char(c)
        i = i + 1
      end
    end
  end
  local value
  local function number()
    local start = i
    if sub(s, i, i) == "-" then i = i + 1 end
    local int = match(s, "^%d+", i)
    if not int then fail("number") end
    if #int > 1 and sub(int, 1, 1) == "0" then fail("number") end
    i = i + #int
    local frac = match(s, "^%.%d*", i)
    if frac then
      if #frac == 1 then fail("number") end
      i = i + #frac
    end
    local exp = match(s, "^[eE][-+]?%d*", i)
    if exp then
      if not match(exp, "%d$") then fail("number") end
      i = i + #exp
    end
    local text = sub(s, start, i - 1)
    local v = tonumber(text)
    if v == nil then
      -- LuaJIT's tonumber gives up on exponents of many digits
      local neg, mant, e = match(text, "^(-?)([%d.]+)[eE]([-+]?%d+)$")
      local zero = not find(mant, "[1-9]")
      if zero or sub(e, 1, 1) == "-" then v = 0 else v = huge end
      if neg == "-" then v = -v end
      st.long_exponent = true
    end
    if v == huge or v == -huge then st.huge = true end
    return v
  end
  function value(depth)
    ws()
    local c = sub(s, i, i)
    if c == "{" or c == "[" then
      if depth + 1 > st.depth then st.depth = depth + 1 end
      local close = c == "{" and "}" or "]"
      local out = {}
      i = i + 1
      ws()
      if sub(s, i, i) == close then i = i + 1; return out end
      local n = 0
      while true do
        if c == "{" then
          ws()
          if sub(s, i, i) ~= '"' then fail("object key") end
          local k = str()
          ws()
          if sub(s, i, i) ~= ":" then fail("colon") end
          i = i + 1
          out[k] = value(depth + 1)
        else
          n = n + 1
          out[n] = value(depth + 1)
        end
        ws()
        local d = sub(s, i, i)
        i = i + 1
        if d == close then return out end
        if d ~= "," then fail("comma") end
      end
    elseif c == '"' then
      return str()
    elseif sub(s, i, i + 3) == "true" then i = i + 4; return true
    elseif sub(s, i, i + 4) == "false" then i = i + 5; return false
    elseif sub(s, i, i + 3) == "null" then i = i + 4; return null
    elseif find(c, "^[-%d]") then
      return number()
    elseif find(c, "^[+.iInNx]") then
      fail("number")
    end
    fail("value")
  end
  local ok, v = pcall(function()
    local r = value(0)
    ws()
    if i <= #s then fail("trailing text") end
    return r
  end)
  st.ok = ok
  if ok then st.value = v else
    st.why = type(v) == "table" and v.why or tostring(v)
    st.at = type(v) == "table" and v.at or 0
  end
  return st
end

-- ===== GENERATION =====

local STRS = { "", "a", "plain text", "<", "</script>", "</script><script>alert(1)</script>", "<!--", "\0", "\1",
  "\b", "\f", "\n", "\r", "\t", "\31", "\127", '"', "\\", "/", "\\u0000", "caf\195\169", "\226\130\172",
  "\240\159\152\128", "\226\128\168", "\226\128\169", "[]", "{}", "[ ]", "null", "1" }

local function gen_string(r)
  local b = {}
  for k = 1, r:int(0, 4) do b[k] = r:pick(STRS) end
  return concat(b)
end

local function gen_number(r)
  local k = r:int(8)
  if k == 1 then return r:int(-1000, 1000) end
  if k == 2 then return r:int(-2 ^ 31, 2 ^ 31) * r:int(1, 2 ^ 21) end
  if k == 3 then return (r:next() - 2 ^ 31) / r:int(1, 1e6) end
  if k == 4 then return r:pick({ 0.1, -0.5, 1e-300, 1e300, 2 ^ 53, -2 ^ 53, 1e15, 1e15 + 1, 123456789.123, -0 }) end
  if k == 5 then return r:next() * 2 ^ r:int(-60, 60) end
  return r:int(0, 100)
end

-- A random value: strings, numbers, booleans, arrays (marked when empty, or
-- sometimes), objects (string keys; json.null values allowed in objects).
local function gen_value(r, depth)
  local k = r:int(depth > 3 and 6 or 10)
  if k <= 2 then return gen_string(r) end
  if k <= 4 then return gen_number(r) end
  if k == 5 then return r:one_in(2) end
  if k == 6 then return r:pick({ "x", 0, true }) end
  if k <= 8 then
    local t = {}
    for i = 1, r:int(0, 4) do t[i] = gen_value(r, depth + 1) end
    if #t == 0 or r:one_in(3) then json.array(t) end
    return t
  end
  local t = {}
  for _ = 1, r:int(0, 4) do
    t[gen_string(r) .. r:pick({ "", "k", "1" })] = r:one_in(8) and null or gen_value(r, depth + 1)
  end
  return t
end

local function ws(r)
  if r:int(3) > 1 then return "" end
  return r:pick({ " ", "\n", "\t", "\r\n", "  " })
end

-- Serializes v with random whitespace and escape spellings (a different
-- writer than json.encode, to feed the decoders what browsers may send).
local function write(r, v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = '"'
    local i = 1
    while i <= #v do
      local c = byte(v, i)
      if c == 34 or c == 92 then out[#out + 1] = "\\" .. char(c)
      elseif c < 32 or (r:one_in(6) and c < 128) then out[#out + 1] = format(r:pick({ "\\u%04x", "\\u%04X" }), c)
      elseif c == 47 and r:one_in(2) then out[#out + 1] = "\\/"
      elseif c == 0xF0 and i + 3 <= #v and r:one_in(2) then
        -- an astral char as a surrogate pair
        local b2, b3, b4 = byte(v, i + 1, i + 3)
        local cp = (c - 0xF0) * 262144 + (b2 - 0x80) * 4096 + (b3 - 0x80) * 64 + (b4 - 0x80) - 0x10000
        out[#out + 1] = format("\\u%04x\\u%04x", 0xD800 + floor(cp / 1024), 0xDC00 + cp % 1024)
        i = i + 3
      else out[#out + 1] = char(c) end
      i = i + 1
    end
    out[#out + 1] = '"'
  elseif t == "table" then
    local arr = getmetatable(v) == json.array_mt or #v > 0
    out[#out + 1] = (arr and "[" or "{") .. ws(r)
    local first = true
    if arr then
      for i = 1, #v do
        if not first then out[#out + 1] = ws(r) .. "," .. ws(r) end
        first = false
        write(r, v[i], out)
      end
    else
      for k, x in pairs(v) do
        if not first then out[#out + 1] = ws(r) .. "," .. ws(r) end
        first = false
        write(r, k, out)
        out[#out + 1] = ws(r) .. ":" .. ws(r)
        write(r, x, out)
      end
    end
    out[#out + 1] = ws(r) .. (arr and "]" or "}")
  elseif v == null then
    out[#out + 1] = "null"
  else
    out[#out + 1] = json.encode(v)
  end
end

local PIECES = { "[]", "[ ]", "{}", "NaN", "Infinity", "-Infinity", "0x1F", "01", "1.", ".5", "+1", "1e", "1e999",
  "-", "\\u", "\\ud800", "\\udc00", "\\ud800\\udc00", "\127", "\0", ",", ":", "]", "}", '"', "\\", "true", "nul",
  "[[[[", "]]]]", "\\x41", "'a'", "\255", "\t", "/*c*/", "-0", "1E+2" }

local function nest(r, depth)
  local open, close = {}, {}
  for d = 1, depth do
    if r:one_in(3) then open[d], close[depth - d + 1] = '{"k":', "}"
    else open[d], close[depth - d + 1] = "[", "]" end
  end
  return concat(open) .. r:pick({ "1", "[]", '"x"', "{}", "null" }) .. concat(close)
end

-- ===== DRIVER =====

local function decode(s)
  local ok, v, err = pcall(json.decode, s)
  if not ok then return nil, "decode raised: " .. tostring(v) end
  if v == nil and type(err) ~= "string" then return nil, "a refusal without a message" end
  return true, v, err
end

-- Known bugs of json.lua (not to be edited by this driver's author): the
-- name of the one this discrepancy is, or nil.
local function known(s, ref, v)
  if v ~= nil and not ref.ok and (ref.why == "number"
      or (ref.why == "trailing text" or ref.why == "comma") and find(s, "^[%w.+-]", ref.at - 1)) then
    return "lenient-numbers"
  end
  if v ~= nil and ref.huge then return "huge-number-is-inf" end
  if v ~= nil and ref.why == "control character in a string" then return "raw-control-chars" end
  if v ~= nil and not ref.ok and find(s, "\0", 1, true) then
    local ok, w = pcall(json.decode, sub(s, 1, find(s, "\0", 1, true) - 1))
    if ok and deep_equal(w, v) then return "nul-ends-document" end
  end
  if v == nil and ref.ok and find(s, "\127", 1, true) then return "del-refused" end
  if v == nil and ref.ok and ref.long_exponent then return "long-exponent-refused" end
  return nil
end

local function check_text(s)
  local ok, v, err = decode(s)
  if not ok then return v end
  local ref = ref_parse(s)
  if ref.depth > 64 then
    if v ~= nil then return "nesting of " .. ref.depth .. " accepted" end
    return nil, "deep"
  end
  if ref.surrogate then return nil, "surrogate" end
  local agree
  if ref.ok then
    agree = v ~= nil and deep_equal(v, ref.value) and not ref.huge
  else
    agree = v == nil
  end
  if agree then return nil, ref.ok and "accepted" or "refused" end
  local k = known(s, ref, v)
  if k and not STRICT then return nil, "known:" .. k end
  if ref.ok then
    return "valid JSON " .. (v == nil and ("refused: " .. tostring(err)) or ("decoded to " .. show(v)
      .. ", reference " .. show(ref.value))) .. (k and " [known: " .. k .. "]" or "")
  end
  return "invalid JSON (" .. ref.why .. ") accepted as " .. show(v) .. (k and " [known: " .. k .. "]" or "")
end

local function one(r)
  local k = r:int(20)
  local s
  if k <= 6 then
    -- round trip of a random value
    local v = gen_value(r, 0)
    local text = json.encode(v)
    local ok, back, err = decode(text)
    if not ok then return back, show(v) end
    if back == nil then return "decode(encode(v)) refused: " .. tostring(err), show(text) end
    if not deep_equal(back, v) then return "decode(encode(v)) differs: " .. show(back), show(v) end
    if json.encode(back) ~= text then return "encode(decode(s)) ~= s: " .. json.encode(back), show(text) end
    local script = json.encode(v, { script = true })
    if find(script, "<", 1, true) then return "script encoding holds <: " .. script, show(v) end
    local ok2, back2 = decode(script)
    if not ok2 or not deep_equal(back2, v) then return "script encoding does not decode back", show(script) end
    s = r:one_in(2) and text or script
  elseif k <= 10 then
    local out = {}
    write(r, gen_value(r, 0), out)
    s = ws(r) .. concat(out) .. ws(r)
  elseif k <= 16 then
    local out = {}
    write(r, gen_value(r, 0), out)
    s = util.mutate(r, concat(out), PIECES)
  elseif k <= 18 then
    s = nest(r, r:int(60, 70))
    if r:one_in(3) then s = s .. " " end
  elseif k == 19 then
    local b = {}
    for i = 1, r:int(0, 16) do b[i] = r:pick(PIECES) end
    s = concat(b)
  else
    s = r:bytes(r:int(0, 24))
    if r:one_in(2) then s = "[" .. s .. "]" end
  end
  local failure, tag = check_text(s)
  if failure then return failure, show(s) end
  return nil, s, tag
end

if is_script then util.main({ name = "json", one = one }) end

return { name = "json", one = one, ref_parse = ref_parse }
