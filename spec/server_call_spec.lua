-- lua-api.md "Handlers and server functions": rt:call returns the envelope
-- the server endpoint sends (protocol.md "Server functions"), never a Lua
-- error; nested calls as the seed's tests/server/server.test.js.
local Async = require("async")
local loop_mod = require("async.loop")

local RESULT = "__async_server_result__"

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

local function msg(err) return (tostring(err):gsub("^[^:]*:%d+: ", "")) end

local seen   -- what the last server function saw

local function app()
  return Async.define_app({
    signal = { count = 1, product = { title = "Keyboard" } },
    server = {
      ["echo"] = function(_, ...)
        if select("#", ...) == 1 then return (...) end
        return { ... }
      end,
      ["nothing"] = function() end,
      ["domain"] = function() return { value = 5, signals = "domain", error = "domain" } end,
      ["envelope"] = function()
        return Async.result({ value = { ok = true }, signals = { count = 4 }, boundary = "cart",
                              html = Async.html[[<aside>{{ n }}</aside>]] { n = 2 }, redirect = "/cart",
                              status = 201, title = "Cart" })
      end,
      ["fail.string"] = function() error("db down") end,
      ["fail.coded"] = function() error({ code = "out-of-stock", message = "Only 2 left" }) end,
      ["fail.envelope"] = function() return Async.result({ error = { message = "nope", code = "bad-input" } }) end,
      ["math.one"] = function(_, x) return x + 1 end,
      ["math.env"] = function(_, x) return Async.result({ value = x * 10, signals = { inner = x } }) end,
      ["math.two"] = function(self, x) return self.server.math.one(x) * 2 end,
      ["math.call"] = function(self, x) return self.server:call("math.one", x) * 3 end,
      ["math.signals"] = function(self, x)
        local v = self.server.math.env(x)
        return Async.result({ value = v, signals = { outer = true } })
      end,
      ["nested.fail"] = function(self) return self.server.fail.coded() end,
      ["nested.catch"] = function(self)
        local ok, err = pcall(self.server.fail.coded)
        return { ok = ok, code = err.code, message = err.message, text = tostring(err) }
      end,
      ["nested.unknown"] = function(self) return self.server.no.such() end,
      ["nested.ctx"] = function(self) return self.server.inspect() end,
      ["inspect"] = function(self, ...)
        seen = { id = self.id, args = self.args, input = self.input, signals = self.signals, cache = self.cache,
                 request = self.request, headers = self.headers, cookies = self.cookies, abort = self.abort,
                 n = select("#", ...) }
        return "seen"
      end,
      ["write"] = function(self) self.signals:set("count", 99) end,
      ["read"] = function(self, path) return self.signals:get(path) end,
      ["aborts"] = function(self)
        local token = self.abort
        token:cancel("client went away")
        return token.aborted
      end,
    },
  })
end

describe("rt:call envelopes", function()
  local rt
  before_each(function() rt = Async.create_app(app(), { env = "development" }) end)

  -- { name, id, args, expected envelope }
  local cases = {
    { "a plain value", "echo", { 7 }, { [RESULT] = 1, value = 7 } },
    { "a table value", "echo", { { a = 1 } }, { [RESULT] = 1, value = { a = 1 } } },
    { "several args", "echo", { 1, 2, 3 }, { [RESULT] = 1, value = { 1, 2, 3 } } },
    { "false", "echo", { false }, { [RESULT] = 1, value = false } },
    { "nil (the endpoint answers 204)", "nothing", {}, { [RESULT] = 1 } },
    { "nil args", "nothing", nil, { [RESULT] = 1 } },
    { "an unmarked table with envelope-like fields stays a value", "domain", {},
      { [RESULT] = 1, value = { value = 5, signals = "domain", error = "domain" } } },
    { "an Async.result envelope, fields as given (html as a string)", "envelope", {},
      { [RESULT] = 1, value = { ok = true }, signals = { count = 4 }, boundary = "cart", html = "<aside>2</aside>",
        redirect = "/cart", status = 201, title = "Cart" } },
    { "an error envelope returned on purpose", "fail.envelope", {},
      { [RESULT] = 1, error = { name = "Error", message = "nope", code = "bad-input" } } },
    { "a nested call", "math.two", { 4 }, { [RESULT] = 1, value = 10 } },
    { "a nested :call", "math.call", { 4 }, { [RESULT] = 1, value = 15 } },
    { "a nested envelope's signals reach the outer envelope", "math.signals", { 3 },
      { [RESULT] = 1, value = 30, signals = { inner = 3, outer = true } } },
    { "an unknown id", "nope", {},
      { [RESULT] = 1, error = { name = "AsyncError", code = "server-function-not-registered",
        message = 'Server function "nope" is not registered.', hint = "Register via Async.use({ server })" } } },
    { "a non-string id", 42, {},
      { [RESULT] = 1, error = { name = "AsyncError", code = "server-function-not-registered",
        message = 'Server function "42" is not registered.', hint = "Register via Async.use({ server })" } } },
    { "a coded error raised on purpose", "fail.coded", {},
      { [RESULT] = 1, error = { name = "Error", message = "Only 2 left", code = "out-of-stock" } } },
    { "a nested coded error raises through the outer function", "nested.fail", {},
      { [RESULT] = 1, error = { name = "Error", message = "Only 2 left", code = "out-of-stock" } } },
    { "a nested unknown id", "nested.unknown", {},
      { [RESULT] = 1, error = { name = "AsyncError", code = "server-function-not-registered",
        message = 'Server function "no.such" is not registered.', hint = "Register via Async.use({ server })" } } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local env = rt:call(c[2], c[3])
      assert.are.same(c[4], env)
    end)
  end

  it("a caught nested error envelope is an error value with code and message", function()
    -- tostring names the line that made the nested call (lua-api.md "Errors";
    -- it used to read "out-of-stock: Only 2 left", with no position)
    assert.are.same({ ok = false, code = "out-of-stock", message = "Only 2 left",
                      text = "spec/server_call_spec.lua:48: Only 2 left" }, rt:call("nested.catch").value)
  end)

  it("args that are not a table give an error envelope", function()
    local env = rt:call("echo", "x")
    assert.equal("invalid-arguments", env.error.code)
    assert.equal('Server function "echo": args must be an array, got string', env.error.message)
  end)

  it("args.n keeps trailing nils", function()
    rt:call("inspect", { 1, nil, n = 3 })
    assert.equal(3, seen.n)
  end)
end)

describe("rt:call raised errors: development and production", function()
  it("development: the message, code runtime-error and a stack", function()
    local rt = Async.create_app(app(), { env = "development" })
    local env = rt:call("fail.string")
    assert.equal(1, env[RESULT])
    assert.equal("Error", env.error.name)
    assert.equal("runtime-error", env.error.code)
    assert.equal("db down", msg(env.error.message))
    assert.truthy(env.error.stack:find("stack traceback", 1, true))
    assert.is_nil(env.value)
  end)

  it("production: the message and stack are hidden; the log hook still gets them", function()
    local logged = {}
    local rt = Async.create_app(app(), { env = "production",
      on_error = function(err, trace, what) logged[#logged + 1] = { msg(err), trace ~= nil, what } end })
    local env = rt:call("fail.string")
    assert.are.same({ [RESULT] = 1, error = { name = "Error", message = "Internal server error",
                                             code = "runtime-error" } }, env)
    assert.are.same({ { "db down", true, "server fail.string" } }, logged)
  end)

  it("production keeps errors raised on purpose (with a code)", function()
    local rt = Async.create_app(app(), { env = "production" })
    assert.are.same({ name = "Error", message = "Only 2 left", code = "out-of-stock" }, rt:call("fail.coded").error)
  end)
end)

describe("the server function's self", function()
  local rt
  before_each(function()
    rt = Async.create_app(app(), { request = { headers = { trace = "t-1" }, cookies = { session = "s-1" } } })
    seen = nil
  end)

  it("id, args, input, cache, request, headers, cookies, abort", function()
    local env = rt:call("inspect", { "a", "b" }, { input = { q = 1 } })
    assert.equal("seen", env.value)
    assert.equal("inspect", seen.id)
    assert.are.same({ "a", "b" }, seen.args)
    assert.are.same({ q = 1 }, seen.input)
    assert.equal(rt.cache.server, seen.cache)
    assert.equal(rt.request, seen.request)
    assert.are.same({ trace = "t-1" }, seen.headers)
    assert.are.same({ session = "s-1" }, seen.cookies)
    assert.is_true(Async.is_abort(seen.abort))
    assert.is_false(seen.abort.aborted)
  end)

  it("opts request/headers/cookies/abort override the runtime's", function()
    local token = Async.abort_token()
    rt:call("inspect", {}, { request = { id = 2 }, headers = { h = 1 }, cookies = { c = 1 }, abort = token })
    assert.are.same({ id = 2 }, seen.request)
    assert.are.same({ h = 1 }, seen.headers)
    assert.are.same({ c = 1 }, seen.cookies)
    assert.equal(token, seen.abort)
  end)

  it("each call has its own abort token", function()
    rt:call("inspect")
    local first = seen.abort
    rt:call("inspect")
    assert.are_not.equal(first, seen.abort)
    assert.is_true(rt:call("aborts").value)
  end)

  it("a nested call shares the caller's request, headers, cookies, signals and abort token", function()
    rt:call("nested.ctx", {}, { signals = { productId = "sku-1" }, abort = Async.abort_token() })
    assert.equal("inspect", seen.id)
    assert.are.same({ trace = "t-1" }, seen.headers)
    assert.are.same({ session = "s-1" }, seen.cookies)
    assert.equal("sku-1", seen.signals:get("productId"))
  end)

  it("self.signals: the signals the call sent, read-only, with paths", function()
    local env = rt:call("read", { "product.title" }, { signals = { product = { title = "Sent" } } })
    assert.equal("Sent", env.value)
    assert.equal("Sent", rt:call("read", { "product.title" }, { signals = { ["product.title"] = "Sent" } }).value)
    -- an id the call did not send is not registered in the view
    assert.equal("signal-not-registered", rt:call("read", { "count" }, { signals = {} }).error.code)
  end)

  it("self.signals without sent signals reads the runtime's, read-only", function()
    assert.equal("Keyboard", rt:call("read", { "product.title" }).value)
    local env = rt:call("write")
    assert.equal("signals-read-only", env.error.code)
    assert.equal("self.signals is read-only in a server function", env.error.message)
    assert.equal(1, rt.signals:get("count"))
  end)
end)

describe("rt.server from a handler or partial", function()
  it("returns the unwrapped value and applies the envelope's signals and browser cache", function()
    local rt = Async.create_app(Async.define_app({
      signal = { count = 0 },
      server = { ["cart.add"] = function() return Async.result({ value = { ok = true }, signals = { count = 3 },
        cache = { browser = { ["cart:1"] = "x" } } }) end },
    }))
    assert.are.same({ ok = true }, rt.server.cart.add())
    assert.equal(3, rt.signals:get("count"))
    assert.equal("x", rt.cache.browser:get("cart:1"))
    assert.are.same({ ok = true }, rt.server:call("cart.add"))
  end)

  it("raises the error of an error envelope, applying nothing", function()
    local rt = Async.create_app(Async.define_app({
      signal = { count = 0 },
      server = { bad = function()
        return Async.result({ error = { message = "no", code = "x" }, signals = { count = 9 } })
      end },
    }))
    local ok, err = pcall(rt.server.bad)
    assert.is_false(ok)
    assert.equal("x", err.code)
    assert.equal(0, rt.signals:get("count"))
  end)

  it("self.server itself is not callable", function()
    local rt = Async.create_app(Async.define_app())
    local ok, err = pcall(rt.server)
    assert.is_false(ok)
    assert.equal("self.server is not callable; call self.server.<id>(...)", msg(err))
  end)
end)

describe("Async.result", function()
  it("marks the envelope and normalizes error and html", function()
    assert.are.same({ [RESULT] = 1 }, Async.result())
    assert.are.same({ [RESULT] = 1, error = { name = "Error", message = "boom" } }, Async.result({ error = "boom" }))
    assert.are.same({ [RESULT] = 1, html = "<b>x</b>" }, Async.result({ html = Async.raw("<b>x</b>") }))
  end)

  it("rejects unknown fields and non-tables", function()
    local ok, err = pcall(Async.result, { valeu = 1 })
    assert.is_false(ok)
    assert.equal("Async.result: unknown field 'valeu' (expected value, signals, cache, boundary, html, redirect, " ..
      "title, status or error)", msg(err))
    ok, err = pcall(Async.result, 5)
    assert.is_false(ok)
    assert.equal("Async.result expects a table, got number", msg(err))
  end)
end)

describe("rt:call from a coroutine", function()
  it("a server function that waits yields the coroutine and answers when done", function()
    local rt = Async.create_app(Async.define_app({ server = {
      slow = function(self, x) Async.delay(20, self.abort); return x * 2 end,
    } }))
    local env
    local co = coroutine.create(function() env = rt:call("slow", { 21 }) end)
    assert.is_true(coroutine.resume(co))
    assert.is_nil(env)
    loop:advance(20)
    assert.are.same({ [RESULT] = 1, value = 42 }, env)
  end)

  it("outside a coroutine a wait becomes an error envelope, not a Lua error", function()
    local rt = Async.create_app(Async.define_app({ server = {
      slow = function(self) Async.delay(20, self.abort); return 1 end,
    } }))
    local env = rt:call("slow")
    assert.equal("runtime-error", env.error.code)
  end)
end)
