--- Answers requests for the e2e runner's mock server (mock.mjs) from the
-- real Lua runtime, one JSON line in, one JSON line out, until stdin ends.
--
--   { "op": "stream",  "app": "streaming", "url": "/products/sku-1" }
--       -> { "status": 200, "chunks": [ { "at": ms, "html": "..." } ] }
--   { "op": "partial", "app": "partials",  "url": "/products/sku-1" }
--       -> { "status": 200, "response": envelope }
--   { "op": "handler" | "server", "app": "ssr", "name": "increment",
--     "body": { "args": [], "input": {}, "signals": {} } }
--       -> { "status": 200, "response": envelope }
--
-- A failure is { "status": 500, "response": error envelope } and the
-- bridge goes on. Not a server: the HTTP server is asyncrt's own
-- (Async.serve); this stands in for it until it exists.
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/?.lua;" .. package.path

local json = require("async").json
local serve = require("apps.serve")

-- Answers one decoded request.
local function answer(req)
  if req.op == "stream" then return serve.stream(req.app, req.url) end
  if req.op == "partial" then
    local status, env = serve.partial(req.app, req.url)
    return { status = status, response = env }
  end
  if req.op == "handler" or req.op == "server" then
    local body = type(req.body) == "table" and req.body or {}
    local status, env = serve.endpoint(req.app, req.op, req.name,
      { args = json.array(type(body.args) == "table" and body.args or {}), input = body.input,
        signals = type(body.signals) == "table" and body.signals or nil })
    return { status = status, response = env }
  end
  error("unknown op " .. tostring(req.op), 0)
end

for line in io.lines() do
  local ok, res = pcall(function() return answer(json.decode(line)) end)
  if not ok then
    res = { status = 500, response = { __async_server_result__ = 1,
      error = { name = "Error", code = "bridge-error", message = tostring(res) } } }
  end
  io.write(json.encode(res), "\n")
  io.flush()
end
