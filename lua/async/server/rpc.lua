--- The POST endpoints (protocol.md "Server functions", "Lua handlers",
-- "Safety rules"; docs/endpoints.md): `POST /__async/server/<id>` runs
-- rt:call, `POST /__async/handler/<name>` runs rt:dispatch, each in a
-- request runtime destroyed before the answer is returned.
--
-- Checks, in order (the first that fails answers, as an error envelope):
--   405 not POST (Allow: POST)
--   403 no `X-Async-Request: 1`; not a JSON Content-Type; a cross-origin Origin
--   413 body over limits.body
--   400 an id that is not percent-encoded cleanly, holds a control byte, is
--       longer than 256 bytes or does not match the protocol's grammar
--   404 an id the app does not register (looked up in the app's own
--       declarations only: an id never reaches _G or package.loaded)
--   400 a body that is not JSON, is nested deeper than 64, is not an
--       object, or whose args/signals have the wrong type
-- then the call: 200 envelope, 204 for a nil result, 500 when the function
-- or handler raised (message and traceback in development only).
local json = require("async.app.json")
local chain = require("async.app.chain")
local hub = require("async.app.hub")
local request = require("async.server.request")
local response = require("async.server.response")
local page = require("async.server.page")
local worker = require("async.server.worker")

local type, tostring, pairs, next, pcall, getmetatable =
  type, tostring, pairs, next, pcall, getmetatable
local sort, min = table.sort, math.min
local find, sub = string.find, string.sub

local _M = {}

local RESULT = response.RESULT
local null = json.null
local MAX_ID = 256
_M.MAX_ID = MAX_ID
local MAX_SIGNALS = 1000
_M.MAX_SIGNALS = MAX_SIGNALS
local MAX_DEPTH = 64

local NOT_REGISTERED = {
  server = { code = "server-function-not-registered", what = "Server function" },
  handler = { code = "handler-not-registered", what = "Handler" },
}

-- ===== ids =====

--- The decoded id of a path tail, or nil and the reason it is bad.
function _M.check_id(kind, raw)
  local id = request.decode(raw)
  if id == nil then return nil, "the id is not percent-encoded cleanly" end
  if id == "" then return nil, "the id is empty" end
  if #id > MAX_ID then return nil, "the id is longer than " .. MAX_ID .. " bytes" end
  if find(id, "[%z\1-\31\127]") then return nil, "the id holds a control byte" end
  local ok
  if kind == "server" then
    ok = chain.valid_server_id(id)
  else   -- a handler name, as a chain step names it
    ok = sub(id, 1, 1) ~= "$" and not find(id, ",", 1, true) and chain.valid_server_id(id)
  end
  if not ok then return nil, "the id does not match the protocol's grammar" end
  return id
end

-- ===== bodies =====

-- Is t a JSON object (a table that is not an array)?
local function is_object(t)
  return type(t) == "table" and (next(t) == nil or t[1] == nil) and getmetatable(t) ~= json.array_mt
end

-- Is t a JSON array?
local function is_array(t)
  if type(t) ~= "table" then return false end
  if getmetatable(t) == json.array_mt then return true end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

--- The decoded request body `{ args =, input =, signals = }`, or nil,
-- status, code, message.
function _M.parse_body(body)
  local v, err = json.decode(body, { max_depth = MAX_DEPTH })
  if v == nil then
    if err and find(tostring(err), "too many nested", 1, true) then
      return nil, 400, "json-too-deep", "the JSON body is nested deeper than " .. MAX_DEPTH
    end
    return nil, 400, "invalid-json", "the body is not JSON: " .. tostring(err)
  end
  if not is_object(v) then return nil, 400, "invalid-request", "the body must be a JSON object" end
  local args = v.args
  if args == nil or args == null then
    args = { n = 0 }
  elseif not is_array(args) then
    return nil, 400, "invalid-request", '"args" must be an array'
  else
    local n = #args
    local out = { n = n }
    for i = 1, n do
      local a = args[i]
      if a ~= null then out[i] = a end   -- a JSON null argument is nil to the function
    end
    args = out
  end
  local signals = v.signals
  if signals == null then signals = nil end
  if signals ~= nil and not is_object(signals) then
    return nil, 400, "invalid-request", '"signals" must be an object'
  end
  local input = v.input
  if input == null then input = nil end
  return { args = args, input = input, signals = signals }
end

-- the string keys of t, sorted, and how many there were in all
local function sorted_paths(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  sort(keys)
  return keys
end

--- The signals a server function sees: at most MAX_SIGNALS non-empty
-- paths (read-only to it).
local function call_signals(ctx, sent)
  if sent == nil then return nil end
  local keys = sorted_paths(sent)
  local out = {}
  for i = 1, min(#keys, MAX_SIGNALS) do
    if keys[i] ~= "" then out[keys[i]] = sent[keys[i]] end
  end
  if #keys > MAX_SIGNALS then
    ctx:warn(("server call: %d signal paths over the limit of %d ignored"):format(#keys - MAX_SIGNALS, MAX_SIGNALS))
  end
  return out
end

-- ===== the endpoint =====

local function answer_envelope(ctx, status, env)
  local ok, res = pcall(response.envelope, status, env)
  if ok then return res end
  ctx:fail(page.failure("the answer cannot be encoded as JSON: " .. tostring(res)))
  return response.error_envelope(500, "invalid-result", "the answer cannot be encoded as JSON")
end

--- Answers `POST <prefix>/__async/<kind>/<raw>` (kind "server" or "handler").
function _M.serve(m, ctx, kind, raw)
  local req = ctx.req
  ctx.entry.kind = kind
  if req.method ~= "POST" then
    return response.error_envelope(405, "method-not-allowed", "use POST", { { "Allow", "POST" } })
  end
  local h = req.headers
  if h["x-async-request"] ~= "1" then
    return response.error_envelope(403, "missing-request-header", "the X-Async-Request: 1 header is required")
  end
  if not request.is_json_type(h["content-type"]) then
    return response.error_envelope(403, "invalid-content-type", "the Content-Type must be application/json")
  end
  local same, why = request.same_origin(req, m.origin)
  if not same then return response.error_envelope(403, "cross-origin", why) end
  local body = req.body or ""
  if #body > m.limits.body then
    return response.error_envelope(413, "body-too-large", "the body is larger than " .. m.limits.body .. " bytes")
  end
  local id, bad = _M.check_id(kind, raw)
  if not id then return response.error_envelope(400, "invalid-id", bad) end
  ctx.entry.id = id
  if hub.inspector(m.app):get(kind, id) == nil then
    local nr = NOT_REGISTERED[kind]
    return response.error_envelope(404, nr.code, nr.what .. ' "' .. id .. '" is not registered.')
  end
  local b, status, code, msg = _M.parse_body(body)
  if not b then return response.error_envelope(status, code, msg) end
  local rt = m:runtime(ctx, req.abort)
  local how, ok, env = worker.run(req.abort, function()
    if kind == "server" then
      return rt:call(id, b.args, { input = b.input, signals = call_signals(ctx, b.signals), request = rt.request,
                                   abort = req.abort })
    end
    -- the client's signals are filtered by rt:dispatch itself (the app
    -- layer's one filter: registered ids only, never _x, router.* or a
    -- computed, async signals whole and settled, at most 1,000 paths); its
    -- warning line reaches this request's log through the runtime's log hook
    return rt:dispatch(id, b.args, { input = b.input, signals = b.signals, request = rt.request })
  end)
  m:destroy(rt, ctx)
  if how == "aborted" then
    ctx.entry.error = "closed: " .. tostring(req.abort.reason)
    return response.error_envelope(499, "client-closed", "the client went away")
  end
  if not ok then
    ctx:fail(env)
    local e = response.error_value(kind == "server" and "runtime-error" or "handler-failed", "Internal server error")
    if m.env == "development" then
      e.message = page.message_of(env)
      e.stack = env.trace
    end
    return answer_envelope(ctx, 500, { [RESULT] = 1, error = e })
  end
  local raised = env.error and ctx:reported((kind == "server" and "server " or "handler ") .. id)
  if raised then   -- the function or handler itself raised (not a nested call it caught)
    ctx:fail(raised)
    return answer_envelope(ctx, 500, env)
  end
  if env.error then
    local c = env.error.code
    if c == NOT_REGISTERED[kind].code then return answer_envelope(ctx, 404, env) end
    if c == "invalid-signals" or c == "invalid-arguments" then return answer_envelope(ctx, 400, env) end
    return answer_envelope(ctx, 200, env)   -- an error envelope the app returned on purpose
  end
  if next(env) == RESULT and next(env, RESULT) == nil then return response.no_content() end
  return answer_envelope(ctx, 200, env)
end

return _M
