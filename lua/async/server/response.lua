--- Building responses (docs/endpoints.md): the header list every answer
-- carries, JSON envelopes and error envelopes, plain-text and HTML error
-- documents. A response is the transport contract's table:
-- `{ status =, headers = { {name, value}, ... }, body = }` (or `stream =`).
local json = require("async.app.json")
local html_mod = require("async.html.template")

local tostring, pcall, ipairs = tostring, pcall, ipairs

local _M = {}

local RESULT = "__async_server_result__"
_M.RESULT = RESULT

_M.REASONS = {
  [200] = "OK", [204] = "No Content", [304] = "Not Modified", [400] = "Bad Request", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [413] = "Content Too Large",
  [431] = "Request Header Fields Too Large", [499] = "Client Closed Request", [500] = "Internal Server Error",
}

local JSON_TYPE = "application/json; charset=utf-8"
local HTML_TYPE = "text/html; charset=utf-8"
local TEXT_TYPE = "text/plain; charset=utf-8"
_M.JSON_TYPE, _M.HTML_TYPE, _M.TEXT_TYPE = JSON_TYPE, HTML_TYPE, TEXT_TYPE

--- A response with `body` (nil: none): Content-Type (when there is a body),
-- Content-Length, then `extra` pairs, then X-Content-Type-Options.
function _M.new(status, content_type, body, extra)
  local h = {}
  if body ~= nil and content_type then h[#h + 1] = { "Content-Type", content_type } end
  if body ~= nil then h[#h + 1] = { "Content-Length", tostring(#body) } end
  for _, pair in ipairs(extra or {}) do h[#h + 1] = pair end
  h[#h + 1] = { "X-Content-Type-Options", "nosniff" }
  return { status = status, headers = h, body = body }
end

--- The value of header `name` in a response (case-insensitive), or nil.
function _M.header(res, name)
  name = name:lower()
  for _, pair in ipairs(res.headers) do
    if pair[1]:lower() == name then return pair[2] end
  end
  return nil
end

-- ===== envelopes =====

--- An error value `{ name = "AsyncError", code =, message = }`.
function _M.error_value(code, message)
  return { name = "AsyncError", code = code, message = message }
end

--- A JSON envelope answer (Cache-Control: no-store); `extra` pairs go
-- before it. Raises when the envelope cannot be encoded (the caller turns
-- that into a 500).
function _M.envelope(status, env, extra)
  local body = json.encode(env)
  local h = {}
  for _, pair in ipairs(extra or {}) do h[#h + 1] = pair end
  h[#h + 1] = { "Cache-Control", "no-store" }
  return _M.new(status, JSON_TYPE, body, h)
end

--- An error envelope answer `{"__async_server_result__":1,"error":{...}}`.
function _M.error_envelope(status, code, message, extra)
  return _M.envelope(status, { [RESULT] = 1, error = _M.error_value(code, message) }, extra)
end

--- 204: no body, no Content-Type (an envelope for a nil result).
function _M.no_content()
  return _M.new(204, nil, nil, { { "Cache-Control", "no-store" } })
end

--- JSON-encodes `v`, or nil and the reason.
function _M.encode(v)
  local ok, s = pcall(json.encode, v)
  if not ok then return nil, tostring(s) end
  return s
end

-- ===== documents =====

local escape = html_mod.escape

--- A small HTML document for an error status: the reason phrase, and in
-- development `detail` (message and traceback) in a <pre>. No script, so it
-- is fine under any Content-Security-Policy.
function _M.error_document(status, detail, csp, extra)
  local reason = _M.REASONS[status] or "Error"
  local body = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" .. status .. " " ..
    reason .. "</title></head><body><h1>" .. status .. " " .. reason .. "</h1>" ..
    (detail and ("<pre>" .. tostring(escape(detail)) .. "</pre>") or "") .. "</body></html>\n"
  local h = {}
  for _, pair in ipairs(extra or {}) do h[#h + 1] = pair end
  if csp then h[#h + 1] = { "Content-Security-Policy", csp } end
  return _M.new(status, HTML_TYPE, body, h)
end

--- A plain-text answer: the reason phrase and a newline.
function _M.text(status, extra)
  return _M.new(status, TEXT_TYPE, (_M.REASONS[status] or "Error") .. "\n", extra)
end

return _M
