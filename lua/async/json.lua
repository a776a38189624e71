--- JSON for asyncrt: decoding through lua-cjson, encoding in Lua.
--
-- Debian's lua-cjson 2.1.0 cannot encode an empty array (it has no
-- array_mt), so encoding is done here: a table marked with `json.array(t)`
-- (or `json.array_mt`) encodes as an array even when empty; other empty
-- tables encode as `{}`; a table whose keys are exactly 1..n encodes as an
-- array. `json.null` (= cjson.null) is JSON null. `encode(v, { script = true })`
-- writes every `<` as `\u003c` so the result is safe inside <script>.
local cjson = require("cjson.safe")

local type, pairs, tostring, error, setmetatable, getmetatable, next =
  type, pairs, tostring, error, setmetatable, getmetatable, next
local concat, sort = table.concat, table.sort
local gsub, format, byte = string.gsub, string.format, string.byte
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

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

local function encode_string(s, script)
  s = gsub(s, '[%c"\\]', escape_char)
  if script then
    s = gsub(s, "<", "\\u003c")
    -- U+2028/2029 are line terminators in JavaScript source
    s = gsub(s, "\226\128\168", "\\u2028")
    s = gsub(s, "\226\128\169", "\\u2029")
  end
  return '"' .. s .. '"'
end

local encode_value

local function is_array(t)
  if getmetatable(t) == array_mt then return true, #t end
  local n = #t
  if n == 0 then return false, 0 end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n, n
end

function encode_value(v, buf, depth, script)
  local tv = type(v)
  if tv == "string" then
    buf[#buf + 1] = encode_string(v, script)
  elseif tv == "number" then
    if v ~= v or v == huge or v == -huge then
      error("json: cannot encode " .. tostring(v), 0)
    end
    if floor(v) == v and v > -1e15 and v < 1e15 then
      buf[#buf + 1] = format("%d", v)
    else
      buf[#buf + 1] = format("%.17g", v)
    end
  elseif tv == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif v == nil or v == null then
    buf[#buf + 1] = "null"
  elseif tv == "table" then
    if depth > 100 then error("json: nesting deeper than 100 (a cycle?)", 0) end
    local arr, n = is_array(v)
    if arr then
      buf[#buf + 1] = "["
      for i = 1, n do
        if i > 1 then buf[#buf + 1] = "," end
        encode_value(v[i], buf, depth + 1, script)
      end
      buf[#buf + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        local tk = type(k)
        if tk ~= "string" and tk ~= "number" then
          error("json: cannot encode a table key of type " .. tk, 0)
        end
        keys[#keys + 1] = k
      end
      if #keys > 1 then sort(keys, function(a, b) return tostring(a) < tostring(b) end) end
      buf[#buf + 1] = "{"
      for i = 1, #keys do
        local k = keys[i]
        if i > 1 then buf[#buf + 1] = "," end
        buf[#buf + 1] = encode_string(tostring(k), script)
        buf[#buf + 1] = ":"
        encode_value(v[k], buf, depth + 1, script)
      end
      buf[#buf + 1] = "}"
    end
  else
    error("json: cannot encode a value of type " .. tv, 0)
  end
end

--- Encodes v; opts.script escapes `<` for embedding in <script>.
-- Raises on values JSON cannot hold (functions, NaN, cycles).
function _M.encode(v, opts)
  local buf = {}
  encode_value(v, buf, 0, opts and opts.script)
  return concat(buf)
end

local decoders = {}

--- Decodes s; returns value or nil, message. opts.max_depth (default 64).
function _M.decode(s, opts)
  if type(s) ~= "string" then return nil, "expected a JSON string, got " .. type(s) end
  local max_depth = opts and opts.max_depth or 64
  local dec = decoders[max_depth]
  if dec == nil then
    dec = cjson.new()
    dec.decode_max_depth(max_depth)
    decoders[max_depth] = dec
  end
  local v, err = dec.decode(s)
  if v == nil and err then return nil, err end
  return v
end

--- Is t empty?
function _M.empty(t) return next(t) == nil end

return _M
