-- protocol.md "Lua handlers" and lua-api.md rt:dispatch: the client's
-- signals are applied first, the handler runs, and the envelope's `signals`
-- holds exactly the signals the handler changed.
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

local seen

local function app()
  return Async.define_app({
    signal = { count = 0, product = { title = "Keyboard", price = 10 }, cart = { items = {} }, untouched = "u",
               doubled = Async.computed(function(s) return s and s:get("count") * 2 end) },
    handler = {
      increment = function(self) self.signals:update("count", function(c) return c + 1 end) end,
      add = function(self, n, m) self.signals:set("count", self.signals:get("count") + n + (m or 0)) end,
      rename = function(self) self.signals:set("product.title", "Mouse") end,
      same = function(self) self.signals:set("count", self.signals:get("count")) end,
      nothing = function() end,
      create = function(self) self.signals:ensure("fresh", "new") end,
      from_input = function(self) self.signals:set("product.title", self.input.title) end,
      from_event = function(self) self.signals:set("count", self.event.value) end,
      stopper = function(self) self.signals:set("count", 1); self:stop() end,
      go = function(self) self:redirect("/done") end,
      swap = function(self) self:swap("cart", Async.html[[<p>{{ n }}</p>]] { n = 3 }) end,
      returns = function() return Async.result({ signals = { extra = 1 }, title = "T" }) end,
      value = function() return 42 end,
      fail = function(self) self.signals:set("count", 5); error("handler broke") end,
      fail_coded = function() error({ code = "not-allowed", message = "Sign in first" }) end,
      cart_add = function(self, id)
        local r = self.server.cart.add(id)
        self.signals:set("cart.items", r.items)
      end,
      inspect = function(self)
        seen = { signals = self.signals, server = self.server, cache = self.cache, input = self.input,
                 event = self.event, stop = self.stop }
      end,
    },
    server = {
      ["cart.add"] = function(_, id) return { items = { id } } end,
    },
  })
end

describe("rt:dispatch envelopes", function()
  local rt
  before_each(function() rt = Async.create_app(app(), { env = "development" }) end)

  -- { name, handler, args, opts, expected envelope }
  local cases = {
    { "one changed signal", "increment", nil, nil, { [RESULT] = 1, signals = { count = 1 } } },
    { "args", "add", { 2, 3 }, nil, { [RESULT] = 1, signals = { count = 5 } } },
    { "a path write reports the root signal", "rename", nil, nil,
      { [RESULT] = 1, signals = { product = { title = "Mouse", price = 10 } } } },
    { "writing the same value changes nothing", "same", nil, nil, { [RESULT] = 1, signals = {} } },
    { "no write: empty signals", "nothing", nil, nil, { [RESULT] = 1, signals = {} } },
    { "a signal the handler created", "create", nil, nil, { [RESULT] = 1, signals = { fresh = "new" } } },
    { "input", "from_input", nil, { input = { title = "From form" } },
      { [RESULT] = 1, signals = { product = { title = "From form", price = 10 } } } },
    { "event locals", "from_event", nil, { event = { value = 8 } }, { [RESULT] = 1, signals = { count = 8 } } },
    { "self:stop() ends the chain", "stopper", nil, nil, { [RESULT] = 1, signals = { count = 1 }, stop = true } },
    { "self:redirect", "go", nil, nil, { [RESULT] = 1, signals = {}, redirect = "/done" } },
    { "self:swap", "swap", nil, nil, { [RESULT] = 1, signals = {}, boundary = "cart", html = "<p>3</p>" } },
    { "a returned envelope merges in", "returns", nil, nil, { [RESULT] = 1, signals = { extra = 1 }, title = "T" } },
    { "a returned value", "value", nil, nil, { [RESULT] = 1, signals = {}, value = 42 } },
    { "a server call inside a handler", "cart_add", { "sku-1" }, nil,
      { [RESULT] = 1, signals = { cart = { items = { "sku-1" } } } } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.are.same(c[5], rt:dispatch(c[2], c[3], c[4]))
    end)
  end

  it("computeds are never in the envelope, even when they changed", function()
    assert.equal(0, rt.signals:get("doubled"))
    local env = rt:dispatch("increment")
    assert.are.same({ count = 1 }, env.signals)
    assert.equal(2, rt.signals:get("doubled"))
  end)

  it("the client's signals are applied first, and are not reported unless the handler changes them", function()
    local env = rt:dispatch("increment", {}, { signals = { count = 10, product = { title = "Client" } } })
    assert.are.same({ [RESULT] = 1, signals = { count = 11 } }, env)
    assert.equal("Client", rt.signals:get("product.title"))
  end)

  -- protocol.md: the client's signals are untrusted, ids the app does not
  -- register are ignored (this row asserted they were registered: the bug
  -- spec/robust_dispatch_spec.lua pins)
  it("client signals may be paths into registered ids; unknown ids are ignored", function()
    rt:dispatch("nothing", {}, { signals = { ["product.price"] = 12, ui_open = true } })
    assert.equal(12, rt.signals:get("product.price"))
    assert.is_false(rt.signals:has("ui_open"))
  end)

  it("consecutive dispatches see the state the previous one left", function()
    rt:dispatch("increment")
    assert.are.same({ count = 2 }, rt:dispatch("increment").signals)
  end)

  it("the handler's self", function()
    rt:dispatch("inspect", {}, { input = { a = 1 }, event = { value = "v" } })
    assert.equal(rt.signals, seen.signals)
    assert.equal(rt.cache.browser, seen.cache)
    assert.are.same({ a = 1 }, seen.input)
    assert.are.same({ value = "v" }, seen.event)
    assert.is_function(seen.stop)
    rt:dispatch("inspect")
    assert.are.same({}, seen.event)
  end)
end)

describe("rt:dispatch errors", function()
  it("an unknown handler: handler-not-registered with the seed's hint", function()
    local rt = Async.create_app(app())
    assert.are.same({ [RESULT] = 1, error = { name = "AsyncError", code = "handler-not-registered",
      message = 'Handler "nope" is not registered.', hint = "Register via Async.use({ handler })" } },
      rt:dispatch("nope"))
  end)

  it("a raised error: an error envelope with no signals (development shows the message)", function()
    local rt = Async.create_app(app(), { env = "development" })
    local env = rt:dispatch("fail")
    assert.is_nil(env.signals)
    assert.equal("handler-failed", env.error.code)
    assert.equal("handler broke", msg(env.error.message))
    assert.is_string(env.error.stack)
  end)

  it("production hides the message of an unexpected error, keeps a coded one", function()
    local rt = Async.create_app(app(), { env = "production" })
    assert.are.same({ [RESULT] = 1, error = { name = "Error", message = "Internal server error",
                                             code = "handler-failed" } }, rt:dispatch("fail"))
    assert.are.same({ [RESULT] = 1, error = { name = "Error", message = "Sign in first", code = "not-allowed" } },
      rt:dispatch("fail_coded"))
  end)
end)

describe("rt:dispatch with a handler that waits", function()
  it("runs inside a coroutine and answers when the wait is over; other runtimes are not held", function()
    local a = Async.create_app(Async.define_app({
      signal = { n = 0 },
      handler = { slow = function(self) Async.delay(10); self.signals:set("n", 1) end },
    }))
    -- b runs effects at once (sync scheduler): a batch held open across a's
    -- wait would defer them until a resumes
    local b = Async.create_app(Async.define_app({ signal = { m = 0 } }), { target = "browser" })
    local seen_by_b = {}
    b.signals:subscribe("m", function(v) seen_by_b[#seen_by_b + 1] = v end)
    local env
    coroutine.wrap(function() env = a:dispatch("slow") end)()
    assert.is_nil(env)
    -- while a's handler waits, b's writes commit and its subscribers run
    b.signals:set("m", 1)
    assert.are.same({ 1 }, seen_by_b)
    loop:advance(10)
    assert.are.same({ [RESULT] = 1, signals = { n = 1 } }, env)
  end)
end)
