--- HTTP/1.1 request parsing for the transports: a Lua object over the C shim
-- (src/http/parser.c, libhttp-parser underneath).
--
--   local http_parser = require("async.transport.http_parser")
--   local p = http_parser.new({ headers = 16384, body = 1048576 })  -- limits in bytes
--   local n, event = p:feed(s [, init])
--       parses s from byte init (default 1); n = bytes consumed; event:
--       "need_more"  all consumed, the message goes on
--       "headers"    the header block is complete (p:head() is valid); feed
--                    the rest (s from init + n) for the body
--       "request"    a request is complete (p:request()); p:next(), then
--                    feed the bytes not consumed (pipelining)
--       "error"      refused (p:error()); nothing more is consumed
--   p:head()    --> { method, target, path, query, version = "1.1",
--                     headers = { lowercase-name = value, repeats joined with ", " },
--                     keep_alive, chunked, content_length (nil if absent), header_bytes }
--   p:request() --> p:head() plus body (string, "" if none, de-chunked)
--   p:error()   --> { code = "body_too_large", status = 413, detail = "...",
--                     method =, target = (when the request line was read) }
--   p:body()    --> the body received so far
--   p:started() --> true once a byte of the current message was consumed
--   p:next()    readies the parser for the next message
--   p:free()    frees the C parser now (the garbage collector does otherwise)
--   http_parser.parse(s, limits) --> requests (a list), error or nil, bytes consumed
--
-- Limits, answers and framing rules: src/http/http.h and docs/http.md.
local ffi = require("ffi")
local errors = require("async.kernel.errors")
local native = require("async.server.native")

local C = native.C
local ffi_string, ffi_cast, ffi_gc = ffi.string, ffi.cast, ffi.gc
local type, setmetatable, tonumber, tostring = type, setmetatable, tonumber, tostring
local floor = math.floor

local _M = {}

local EVENTS = { [0] = "need_more", "headers", "request", "error" }
local NEED_MORE, HEADERS, COMPLETE, ERROR = 0, 1, 2, 3

--- Default limits in bytes.
_M.DEFAULT_HEADERS = C.AHTTP_DEFAULT_MAX_HEADER
_M.DEFAULT_BODY = C.AHTTP_DEFAULT_MAX_BODY

local Parser = {}
Parser.__index = Parser

local function check_limit(v, name)
  if v == nil then return 0 end
  if type(v) ~= "number" or v ~= floor(v) or v < 1 or v > 4294967295 then
    errors.argument("http_parser.new: limits." .. name .. " must be an integer 1..2^32-1, got " .. tostring(v))
  end
  return v
end

--- A parser with limits { headers =, body = } (bytes; defaults 16 KiB, 1 MiB).
function _M.new(limits)
  if limits ~= nil and type(limits) ~= "table" then
    errors.argument("http_parser.new: limits must be a table, got " .. type(limits))
  end
  limits = limits or {}
  local h, b = check_limit(limits.headers, "headers"), check_limit(limits.body, "body")
  local p = C.ahttp_new(h, b)
  if p == nil then errors.raise("out-of-memory", "http_parser.new: out of memory") end
  return setmetatable({ p = ffi_gc(p, C.ahttp_free), m = C.ahttp_message(p) }, Parser)
end

--- Feeds s from byte init; returns the bytes consumed and the event.
function Parser:feed(s, init)
  local p = self.p
  if p == nil then errors.argument("http_parser: feed after free") end
  init = init or 1
  local len = #s - init + 1
  if len < 0 then errors.argument("http_parser: init past the end of the string") end
  local n = C.ahttp_feed(p, ffi_cast("const char *", s) + (init - 1), len)
  return tonumber(n), EVENTS[self.m.state]
end

local function text(m, off, len)
  return ffi_string(m.text + off, len)
end

-- path and query of a request target; the path of an absolute-form target
-- ("http://host/p?q") is its path part.
local function split_target(target)
  local path, query = target:match("^([^?]*)%??(.*)$")
  local rest = path:match("^%a[%w+.-]*://[^/]*(.*)$")
  if rest then path = rest ~= "" and rest or "/" end
  return path, query
end
_M.split_target = split_target

--- The request line and header fields (valid after "headers" or "request").
function Parser:head()
  local m = self.m
  if m.headers_done == 0 then errors.argument("http_parser: head() before the header block was complete") end
  local target = text(m, m.target_off, m.target_len)
  local path, query = split_target(target)
  local headers = {}
  local hs = m.headers
  for i = 0, m.nheaders - 1 do
    local h = hs[i]
    local name, value = text(m, h.name_off, h.name_len), text(m, h.value_off, h.value_len)
    local prev = headers[name]
    headers[name] = prev and (prev .. ", " .. value) or value
  end
  local cl = m.content_length
  return {
    method = ffi_string(C.ahttp_method_name(m.method)),
    target = target, path = path, query = query,
    version = m.http_major .. "." .. m.http_minor,
    headers = headers,
    keep_alive = m.keep_alive == 1,
    chunked = m.chunked == 1,
    content_length = cl >= 0 and tonumber(cl) or nil,
    header_bytes = m.header_bytes,
  }
end

--- The complete request (valid after "request").
function Parser:request()
  local m = self.m
  if m.state ~= COMPLETE then errors.argument("http_parser: request() before a request was complete") end
  local r = self:head()
  r.body = self:body()
  return r
end

--- The body received so far ("" if none; complete after "request").
function Parser:body()
  local m = self.m
  return m.body_len > 0 and ffi_string(m.body, m.body_len) or ""
end

--- Why the request was refused (valid after "error").
function Parser:error()
  local m = self.m
  if m.state ~= ERROR then return nil end
  local e = {
    code = ffi_string(C.ahttp_error_name(m.error)),
    status = C.ahttp_error_status(m.error),
    detail = m.detail ~= nil and ffi_string(m.detail) or "",
  }
  if m.request_line == 1 then
    e.method = ffi_string(C.ahttp_method_name(m.method))
    e.target = text(m, m.target_off, m.target_len)
    e.version = m.http_major .. "." .. m.http_minor
  end
  return e
end

--- Has a byte of the current message been consumed?
function Parser:started()
  return self.m.started == 1
end

--- Is the header block of the current message complete?
function Parser:headers_done()
  return self.m.headers_done == 1
end

--- Readies the parser for the next message.
function Parser:next()
  if self.p == nil then errors.argument("http_parser: next after free") end
  C.ahttp_next(self.p)
end

--- Frees the C parser (idempotent).
function Parser:free()
  local p = self.p
  if p == nil then return end
  self.p, self.m = nil, nil
  C.ahttp_free(ffi_gc(p, nil))
end

--- Parses every request in s: returns the list of requests, the refusal
-- (p:error()) or nil, and the number of bytes consumed.
function _M.parse(s, limits)
  local p = _M.new(limits)
  local list, pos = {}, 1
  local err
  while true do
    local n, ev = p:feed(s, pos)
    pos = pos + n
    if ev == "request" then
      list[#list + 1] = p:request()
      p:next()
    elseif ev == "error" then
      err = p:error()
      break
    elseif ev == "need_more" then
      break
    end
  end
  p:free()
  return list, err, pos - 1
end

_M.EVENTS = EVENTS
_M.NEED_MORE, _M.HEADERS, _M.COMPLETE, _M.ERROR = NEED_MORE, HEADERS, COMPLETE, ERROR

return _M
