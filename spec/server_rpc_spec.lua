-- The POST endpoints of async.server.core (protocol.md "Server functions",
-- "Lua handlers", "Safety rules"; docs/endpoints.md): exact status, headers
-- and body for each row { name, request, status, body } (every answer here
-- is an envelope or a 204, so the headers follow from the body).
local Async = require("async")
local core = require("async.server.core")
local cc = require("support.core_client")
local apps = require("support.core_apps")

local RESULT = '{"__async_server_result__":1,'

local function err(code, message)
  return RESULT .. '"error":{"code":"' .. code .. '","message":"' .. message .. '","name":"AsyncError"}}'
end

local POST = { ["content-type"] = "application/json", ["x-async-request"] = "1" }

local function post(target, body, headers)
  local h = {}
  for k, v in pairs(POST) do h[k] = v end
  for k, v in pairs(headers or {}) do h[k] = v end
  return { method = "POST", target = target, body = body, headers = h }
end

local function envelope_headers(body)
  if body == nil then return { "Cache-Control: no-store", "X-Content-Type-Options: nosniff" } end
  return { "Content-Type: application/json; charset=utf-8", "Content-Length: " .. #body, "Cache-Control: no-store",
           "X-Content-Type-Options: nosniff" }
end

local loop, prev
setup(function()
  prev = Async.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
teardown(function() Async.set_loop(prev) end)

-- the handler and the log entries of the last requests
local function server(env)
  local entries = {}
  local h = core.new({ app = apps.shop(), env = env or "development", log = function(e) entries[#entries + 1] = e end })
  return h, entries
end

local function run(h, t) return cc.run(h, loop, cc.req(t)) end

local function rows(env, cases)
  for _, c in ipairs(cases) do
    local name, t, status, body = c[1], c[2], c[3], c[4]
    it(name, function()
      local h = server(env)
      local res = run(h, t)
      assert.are.equal(status, res.status)
      if type(body) == "function" then body(res.body) else assert.are.equal(body, res.body) end
      assert.are.same(envelope_headers(res.body), cc.headers(res))
    end)
  end
end

local function nested(depth)
  return ("["):rep(depth) .. ("]"):rep(depth)
end

-- ===== safety =====

describe("POST endpoints: CSRF headers and origins (403)", function()
  local MISSING = err("missing-request-header", "the X-Async-Request: 1 header is required")
  local CTYPE = err("invalid-content-type", "the Content-Type must be application/json")
  rows("development", {
    { "no X-Async-Request", post("/__async/server/add", "{}", { ["x-async-request"] = false }), 403, MISSING },
    { "X-Async-Request: 0", post("/__async/server/add", "{}", { ["x-async-request"] = "0" }), 403, MISSING },
    { "X-Async-Request twice", post("/__async/server/add", "{}", { ["x-async-request"] = "1, 1" }), 403, MISSING },
    { "no Content-Type", post("/__async/handler/inc", "{}", { ["content-type"] = false }), 403, CTYPE },
    { "a form Content-Type (what a cross-site form can send)",
      post("/__async/handler/inc", "{}", { ["content-type"] = "application/x-www-form-urlencoded" }), 403, CTYPE },
    { "text/plain", post("/__async/handler/inc", "{}", { ["content-type"] = "text/plain" }), 403, CTYPE },
    { "a cross-origin Origin",
      post("/__async/server/add", '{"args":[1,2]}', { origin = "https://evil.test" }), 403,
      err("cross-origin", "cross-origin request from https://evil.test") },
    { "same host, another port", post("/__async/server/add", '{"args":[1,2]}',
      { origin = "http://example.test:8080" }), 403,
      err("cross-origin", "cross-origin request from http://example.test:8080") },
    { "Origin: null (a sandboxed frame, a file: page)", post("/__async/server/add", '{"args":[1,2]}',
      { origin = "null" }), 403, err("cross-origin", "Origin: null") },
    { "an Origin but no Host to compare it with", post("/__async/server/add", '{"args":[1,2]}',
      { origin = "http://example.test", host = false }), 403,
      err("cross-origin", "no Host header to compare the Origin with") },
    { "X-Forwarded-Host is not trusted by default", post("/__async/server/add", '{"args":[1,2]}',
      { origin = "https://public.test", ["x-forwarded-host"] = "public.test" }), 403,
      err("cross-origin", "cross-origin request from https://public.test") },
    { "a same-origin Origin passes", post("/__async/server/add", '{"args":[1,2]}', { origin = "http://example.test" }),
      200, RESULT .. '"value":3}' },
    { "the default port of the Origin's scheme", post("/__async/server/add", '{"args":[1,2]}',
      { origin = "https://Example.TEST:443" }), 200, RESULT .. '"value":3}' },
    { "no Origin at all passes (the custom header already needs a preflight cross-origin)",
      post("/__async/server/add", '{"args":[1,2]}'), 200, RESULT .. '"value":3}' },
    { "application/json with a charset", post("/__async/server/add", '{"args":[1,2]}',
      { ["content-type"] = "application/json; charset=utf-8" }), 200, RESULT .. '"value":3}' },
    { "a +json type", post("/__async/server/add", '{"args":[1,2]}',
      { ["content-type"] = "application/vnd.api+json" }), 200, RESULT .. '"value":3}' },
  })

  it("trust_proxy: X-Forwarded-Host and X-Forwarded-Proto are what the Origin is compared with", function()
    local h = core.new({ app = apps.shop(), trust_proxy = true, log = function() end })
    local fwd = { origin = "https://public.test", ["x-forwarded-host"] = "public.test",
                  ["x-forwarded-proto"] = "https" }
    assert.are.equal(200, run(h, post("/__async/server/add", '{"args":[1,2]}', fwd)).status)
    fwd["x-forwarded-proto"] = "http"
    local res = run(h, post("/__async/server/add", '{"args":[1,2]}', fwd))
    assert.are.equal(403, res.status)
    assert.are.equal(err("cross-origin", "the Origin's scheme is not X-Forwarded-Proto"), res.body)
  end)

  it("origins: an explicit list of allowed origins", function()
    local h = core.new({ app = apps.shop(), origins = { "https://app.test" }, log = function() end })
    assert.are.equal(200, run(h, post("/__async/server/add", '{"args":[1,2]}', { origin = "https://app.test" })).status)
    assert.are.equal(403, run(h, post("/__async/server/add", '{"args":[1,2]}', { origin = "https://b.test" })).status)
  end)
end)

describe("POST endpoints: limits, JSON and ids (413, 400, 404)", function()
  local TWO_MIB = '{"args":["' .. ("x"):rep(2 * 1048576) .. '"]}'
  local JUST_OVER = '{"args":["' .. ("x"):rep(1048576 - 12) .. '"]}'
  local AT_LIMIT = '{"args":["' .. ("x"):rep(1048576 - 13) .. '"]}'
  rows("development", {
    { "a 2 MiB body: 413", post("/__async/server/args", TWO_MIB), 413,
      err("body-too-large", "the body is larger than 1048576 bytes") },
    { "one byte over 1 MiB: 413", post("/__async/server/args", JUST_OVER), 413,
      err("body-too-large", "the body is larger than 1048576 bytes") },
    { "exactly 1 MiB: accepted", post("/__async/server/args", AT_LIMIT), 200, function(body)
        assert.are.equal(1048576 - 13, #Async.json.decode(body).value.first)
      end },
    { "not JSON", post("/__async/server/add", "{args:[1]}"), 400, function(body)
        local e = Async.json.decode(body).error
        assert.are.same({ "invalid-json", "AsyncError" }, { e.code, e.name })
        assert.truthy(e.message:find("^the body is not JSON: "))
      end },
    { "an empty body", post("/__async/server/add", ""), 400, function(body)
        assert.are.equal("invalid-json", Async.json.decode(body).error.code)
      end },
    { "JSON nested 100 deep", post("/__async/server/args", '{"args":' .. nested(99) .. "}"), 400,
      err("json-too-deep", "the JSON body is nested deeper than 64") },
    { "objects nested 100 deep (the cjson path)", post("/__async/server/args",
      ('{"a":'):rep(99) .. "1" .. ("}"):rep(99)), 400,
      err("json-too-deep", "the JSON body is nested deeper than 64") },
    { "JSON nested 65 deep", post("/__async/server/args", '{"args":' .. nested(64) .. "}"), 400,
      err("json-too-deep", "the JSON body is nested deeper than 64") },
    { "JSON nested 64 deep is fine", post("/__async/server/args", '{"args":' .. nested(63) .. "}"), 200,
      function(body) assert.are.equal(1, Async.json.decode(body).value.n) end },
    { "a body that is an array", post("/__async/server/add", "[1,2]"), 400,
      err("invalid-request", "the body must be a JSON object") },
    { "a body that is a string", post("/__async/server/add", '"x"'), 400,
      err("invalid-request", "the body must be a JSON object") },
    { "args that are an object", post("/__async/server/add", '{"args":{"a":1}}'), 400,
      err("invalid-request", '\\"args\\" must be an array') },
    { "signals that are an array", post("/__async/handler/inc", '{"signals":[1]}'), 400,
      err("invalid-request", '\\"signals\\" must be an object') },
    { "an unknown server function: 404", post("/__async/server/nope", "{}"), 404,
      err("server-function-not-registered", 'Server function \\"nope\\" is not registered.') },
    { "an unknown handler: 404", post("/__async/handler/nope", "{}"), 404,
      err("handler-not-registered", 'Handler \\"nope\\" is not registered.') },
    { "_G is not a server function", post("/__async/server/_G", "{}"), 404,
      err("server-function-not-registered", 'Server function \\"_G\\" is not registered.') },
    { "package.loaded is not one", post("/__async/server/package.loaded", "{}"), 404,
      err("server-function-not-registered", 'Server function \\"package.loaded\\" is not registered.') },
    { "nor string.format", post("/__async/server/string.format", "{}"), 404,
      err("server-function-not-registered", 'Server function \\"string.format\\" is not registered.') },
    { "nor __index", post("/__async/handler/__index", "{}"), 404,
      err("handler-not-registered", 'Handler \\"__index\\" is not registered.') },
    { "nor print", post("/__async/handler/print", "{}"), 404,
      err("handler-not-registered", 'Handler \\"print\\" is not registered.') },
    { "an encoded NUL in an id: 400", post("/__async/server/add%00x", "{}"), 400,
      err("invalid-id", "the id holds a control byte") },
    { "a malformed escape: 400", post("/__async/server/a%zz", "{}"), 400,
      err("invalid-id", "the id is not percent-encoded cleanly") },
    { "an id over 256 bytes: 400", post("/__async/server/" .. ("a"):rep(257), "{}"), 400,
      err("invalid-id", "the id is longer than 256 bytes") },
    { "an empty id: 400", post("/__async/server/", "{}"), 400, err("invalid-id", "the id is empty") },
    { "a..b: 400", post("/__async/server/a..b", "{}"), 400,
      err("invalid-id", "the id does not match the protocol's grammar") },
    { "a trailing dot: 400", post("/__async/server/add.", "{}"), 400,
      err("invalid-id", "the id does not match the protocol's grammar") },
    { "parentheses: 400", post("/__async/server/add()", "{}"), 400,
      err("invalid-id", "the id does not match the protocol's grammar") },
    { "a space: 400", post("/__async/server/a%20b", "{}"), 400,
      err("invalid-id", "the id does not match the protocol's grammar") },
    { "a handler named $value: 400", post("/__async/handler/$value", "{}"), 400,
      err("invalid-id", "the id does not match the protocol's grammar") },
    { "a handler name with a comma: 400", post("/__async/handler/a,b", "{}"), 400,
      err("invalid-id", "the id does not match the protocol's grammar") },
    { "a percent-encoded dotted id is decoded", post("/__async/server/cart%2Eput", '{"args":["sku",2]}'), 200,
      RESULT .. '"signals":{"count":2},"value":{"id":"sku","qty":2}}' },
  })
end)

-- ===== server functions =====

describe("POST /__async/server/<id>: rt:call's envelope", function()
  rows("development", {
    { "a value", post("/__async/server/add", '{"args":[2,3]}'), 200, RESULT .. '"value":5}' },
    { "nil: 204, no body", post("/__async/server/nothing", "{}"), 204, nil },
    { "an envelope built with Async.result", post("/__async/server/cart.put", '{"args":["sku",2],"input":{}}'), 200,
      RESULT .. '"signals":{"count":2},"value":{"id":"sku","qty":2}}' },
    { "an error envelope the function returned on purpose: 200", post("/__async/server/refuse", "{}"), 200,
      RESULT .. '"error":{"code":"nope","message":"Not allowed","name":"Error"}}' },
    { "JSON null arguments are nil, and counted", post("/__async/server/args", '{"args":[null,2]}'), 200,
      RESULT .. '"value":{"first":"nil","n":2}}' },
    { "no args at all", post("/__async/server/args", "{}"), 200, RESULT .. '"value":{"first":"nil","n":0}}' },
    { "the request: headers, cookies, path, and the signals the call sent (read-only)",
      post("/__async/server/who", '{"signals":{"count":41}}', { ["x-test"] = "t", cookie = "a=1; sid=\"abc\"" }),
      200, RESULT .. '"value":{"cookie":"abc","header":"t","path":"/__async/server/who","prefix":"","sent":41}}' },
    { "a raised error: 500 with message and stack (development)", post("/__async/server/fail", "{}"), 500,
      function(body)
        local e = Async.json.decode(body).error
        assert.are.equal("runtime-error", e.code)
        assert.truthy(e.message:find("db down", 1, true))
        assert.truthy(e.stack:find("stack traceback:", 1, true))
      end },
    { "an error raised with a code keeps it: 500", post("/__async/server/sold_out", "{}"), 500,
      RESULT .. '"error":{"code":"out-of-stock","message":"Sold out","name":"Error"}}' },
    { "a value that is not JSON: 500", post("/__async/server/bad_value", "{}"), 500,
      err("invalid-result", "the answer cannot be encoded as JSON") },
  })

  rows("production", {
    { "production: a raised error is 500 without message or stack", post("/__async/server/fail", "{}"), 500,
      RESULT .. '"error":{"code":"runtime-error","message":"Internal server error","name":"Error"}}' },
    { "production: an error raised with a code is the app's to show", post("/__async/server/sold_out", "{}"), 500,
      RESULT .. '"error":{"code":"out-of-stock","message":"Sold out","name":"Error"}}' },
  })

  it("the log always gets the message and the traceback", function()
    for _, env in ipairs({ "development", "production" }) do
      local h, entries = server(env)
      run(h, post("/__async/server/fail", "{}"))
      assert.are.equal("server", entries[1].kind)
      assert.are.equal("fail", entries[1].id)
      assert.truthy(entries[1].error:find("db down", 1, true))
      assert.truthy(entries[1].traceback:find("stack traceback:", 1, true))
    end
  end)

  it("a server function waits on the loop and sees the client's abort token", function()
    local h, entries = server()
    local res = run(h, post("/__async/server/wait", "{}"))
    assert.are.equal(RESULT .. '"value":"waited"}', res.body)
    -- the client goes away 10 ms in: its wait is aborted (never resumed),
    -- the request answers at once (nobody reads it) and is logged
    local req = cc.req(post("/__async/server/wait", "{}"))
    loop:timer(10, function() req.abort:cancel("client disconnected") end)
    local t0 = loop:now()
    res = cc.run(h, loop, req)
    assert.are.equal(499, res.status)
    assert.are.equal(err("client-closed", "the client went away"), res.body)
    assert.is_true(loop:now() - t0 < 50)
    assert.are.same({ 499, "closed: client disconnected" }, { entries[2].status, entries[2].error })
  end)

  it("the server keeps serving after errors", function()
    local h = server()
    for _ = 1, 3 do run(h, post("/__async/server/fail", "{}")) end
    assert.are.equal(RESULT .. '"value":5}', run(h, post("/__async/server/add", '{"args":[2,3]}')).body)
  end)
end)

-- ===== handlers =====

describe("POST /__async/handler/<name>: rt:dispatch with the client's signals", function()
  rows("development", {
    { "the signals the handler changed", post("/__async/handler/inc", '{"args":[],"signals":{"count":4}}'), 200,
      RESULT .. '"signals":{"count":5}}' },
    { "input reaches the handler", post("/__async/handler/rename", '{"input":{"name":"bob"}}'), 200,
      RESULT .. '"signals":{"name":"bob"}}' },
    { "a path into a registered signal is applied",
      post("/__async/handler/read_theme", '{"signals":{"prefs.theme":"dark"}}'), 200,
      RESULT .. '"signals":{},"value":"dark"}' },
    { "_ ids are never written from the client",
      post("/__async/handler/peek_secret", '{"signals":{"_secret":"stolen"}}'), 200,
      RESULT .. '"signals":{},"value":"hunter2"}' },
    { "router.*, computeds, meta paths and unregistered ids are ignored", post("/__async/handler/inc",
      '{"signals":{"count":1,"router.path":"/x","doubled":99,"count.$x":1,"ghost":1}}'), 200,
      RESULT .. '"signals":{"count":2}}' },
    { "an async signal takes a settled snapshot form",
      post("/__async/handler/stock_left", '{"signals":{"stock":{"value":{"left":1},"status":"ready",' ..
        '"loading":false,"error":null,"version":1}}}'), 200,
      RESULT .. '"signals":{},"value":{"left":1,"status":"ready"}}' },
    { "a pending async snapshot is ignored (the server's own state stays)",
      post("/__async/handler/stock_left", '{"signals":{"stock":{"value":{"left":1},"status":"loading",' ..
        '"loading":true,"error":null,"version":1}}}'), 200, function(body)
        assert.are_not.equal(1, Async.json.decode(body).value.left)
      end },
    { "stop() ends the client's chain", post("/__async/handler/stop_here", "{}"), 200,
      RESULT .. '"signals":{},"stop":true}' },
    { "a redirect", post("/__async/handler/go", "{}"), 200, RESULT .. '"redirect":"/items/2","signals":{}}' },
    { "a nested server call that raised and was caught is not a failure",
      post("/__async/handler/call_fail", "{}"), 200, RESULT .. '"signals":{},"value":"caught"}' },
    { "a handler that raises: 500 with message and stack (development)", post("/__async/handler/boom", "{}"), 500,
      function(body)
        local e = Async.json.decode(body).error
        assert.are.equal("handler-failed", e.code)
        assert.truthy(e.message:find("kaboom", 1, true))
        assert.truthy(e.stack:find("stack traceback:", 1, true))
      end },
  })

  rows("production", {
    { "production: a handler that raises is 500 without message or stack", post("/__async/handler/boom", "{}"), 500,
      RESULT .. '"error":{"code":"handler-failed","message":"Internal server error","name":"Error"}}' },
  })

  -- 1,000 unregistered paths that sort before "prefs.theme", and maybe one more
  local function many(n)
    local t = {}
    for i = 1, n do t[#t + 1] = ('"a%04d":1'):format(i) end
    return '{"signals":{' .. table.concat(t, ",") .. ',"prefs.theme":"dark"}}'
  end

  it("at most 1,000 paths: the 1,000th is applied", function()
    local h = server()
    assert.are.equal(RESULT .. '"signals":{},"value":"dark"}',
      run(h, post("/__async/handler/read_theme", many(999))).body)
  end)

  it("at most 1,000 paths: the 1,001st is ignored, with a warning", function()
    local h, entries = server()
    assert.are.equal(RESULT .. '"signals":{},"value":"light"}',
      run(h, post("/__async/handler/read_theme", many(1000))).body)
    local nr = " (an id the app does not register)"
    assert.are.same({ 'handler read_theme: client signals 1000 ignored: "a0001' .. nr .. '", "a0002' .. nr ..
      '", "a0003' .. nr .. '", "a0004' .. nr .. '", "a0005' .. nr .. '" and 995 more; ' ..
      "more than 1000 signal paths; 1 ignored" }, entries[1].warnings)
  end)

  -- router.* comes with every call the client makes (it sends its whole
  -- store), so it is ignored without a word; the rest is worth a warning
  it("ignored signals are one warning line in development, none in production", function()
    local body = '{"signals":{"count":1,"_secret":"x","router.path":"/x","doubled":9,"ghost":1,"count.$x":2}}'
    local h, entries = server("development")
    run(h, post("/__async/handler/inc", body))
    assert.are.same({ 'handler inc: client signals 4 ignored: "_secret (a private id (_x))", ' ..
      '"count.$x (a $ meta path)", "doubled (a computed)", "ghost (an id the app does not register)"' },
      entries[1].warnings)
    h, entries = server("production")
    run(h, post("/__async/handler/inc", body))
    assert.is_nil(entries[1].warnings)
  end)
end)
