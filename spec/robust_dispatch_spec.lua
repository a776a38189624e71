-- Robustness: rt:dispatch treats the client's signals as untrusted input
-- (protocol.md "Lua handlers"): it writes only ids the app registers, never
-- `_x` or `router.*`, never a computed, an async signal only whole and only
-- while the runtime's own has not settled, never creates an id, takes at
-- most 1,000 paths, and warns in development (one line per call) about the
-- rest, except what the client sends with every call (router.*, async
-- snapshots, its components' signals). The envelope reports an async signal
-- whose status or version changed, but not the first runs a fresh runtime
-- starts on its own.
local Async = require("async")
local loop_mod = require("async.loop")
local runtime = require("async.app.runtime")

local RESULT = "__async_server_result__"

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

local function app()
  return Async.define_app({
    signal = {
      count = 0, form = { name = "" }, _secret = "server only",
      product = Async.define_async(function(ctx) Async.delay(10, ctx.abort); return { title = "Keyboard" } end),
      doubled = Async.computed(function(s) return s and s:get("count") * 2 end),
    },
    handler = {
      nothing = function() end,
      read = function(self) return { secret = self.signals:get("_secret"), count = self.signals:get("count") } end,
      reload = function(self) self.signals:ref("product"):refresh() end,
    },
  })
end

local function new_rt(warnings)
  return Async.create_app(app(), { env = "development",
    on_error = function(msg, _, what) warnings[#warnings + 1] = what .. ": " .. tostring(msg) end })
end

describe("rt:dispatch: the client's signals are untrusted", function()
  it("writes registered ids and paths into them", function()
    local w = {}
    local rt = new_rt(w)
    rt:dispatch("nothing", {}, { signals = { count = 3, ["form.name"] = "Ada" } })
    assert.equal(3, rt.signals:get("count"))
    assert.equal("Ada", rt.signals:get("form.name"))
    assert.same({}, w)
  end)

  it("never creates an id", function()
    local w = {}
    local rt = new_rt(w)
    local before = #rt.signals:keys()
    rt:dispatch("nothing", {}, { signals = { invented = 1, ["a.b.c"] = 2, ["__proto__"] = 3 } })
    assert.equal(before, #rt.signals:keys())
    assert.is_false(rt.signals:has("invented"))
    -- one warning line for the call, naming each path (sorted)
    assert.same({ 'dispatch signals: handler nothing: client signals 3 ignored: ' ..
      '"__proto__ (a private id (_x))", "a.b.c (an id the app does not register)", ' ..
      '"invented (an id the app does not register)"' }, w)
  end)

  it("never writes an id starting with _", function()
    local rt = new_rt({})
    local env = rt:dispatch("read", {}, { signals = { _secret = "from the client", ["_secret.x"] = 1 } })
    assert.equal("server only", env.value.secret)
  end)

  it("never writes router state", function()
    local rt = new_rt({})
    rt:render("/")
    local url = rt.signals:get("router.url")
    rt:dispatch("nothing", {}, { signals = { ["router.url"] = "/evil", ["router.params.id"] = "x" } })
    assert.equal(url, rt.signals:get("router.url"))
  end)

  it("never writes a computed (and does not fail the call)", function()
    local rt = new_rt({})
    local env = rt:dispatch("nothing", {}, { signals = { doubled = 100 } })
    assert.is_nil(env.error)
    assert.equal(0, rt.signals:get("doubled"))
  end)

  it("an async signal sent back in snapshot form stays an async signal with its own state", function()
    local rt = new_rt({})
    rt.scheduler:flush()   -- starts the first run
    loop:advance(10)
    rt.scheduler:flush()
    local product = rt.signals:ref("product")
    assert.equal("ready", product:status())
    rt:dispatch("nothing", {}, { signals = {
      product = { value = { title = "Forged" }, status = "ready", loading = false, version = 99 },
      ["product.title"] = "Forged too",
    } })
    assert.equal("Keyboard", rt.signals:get("product.title"))
    assert.equal("ready", product:status())
    assert.is_true(Async.is_async(rt.signals:ref("product")))
  end)

  it("a settled snapshot stands in for an async signal that has not settled yet (a fresh runtime)", function()
    local w = {}
    local rt = new_rt(w)
    local env = rt:dispatch("nothing", {}, { signals = {
      product = { value = { title = "Shown" }, status = "ready", loading = false, error = Async.null, version = 3 },
    } })
    local product = rt.signals:ref("product")
    assert.equal("Shown", rt.signals:get("product.title"))
    assert.same({ "ready", 3 }, { product:status(), product:version() })
    assert.same({}, env.signals)   -- restored before the handler ran: not the handler's change
    assert.same({}, w)
  end)

  it("a pending snapshot leaves the runtime's own run going", function()
    local rt = new_rt({})
    rt:dispatch("nothing", {}, { signals = { product = { value = Async.null, status = "loading", loading = true,
                                                          error = Async.null, version = 1 } } })
    assert.equal("loading", rt.signals:ref("product"):status())
    loop:advance(10)
    rt.scheduler:flush()
    assert.equal("Keyboard", rt.signals:get("product.title"))
  end)

  it("router.* and async snapshots come with every call: ignored without a warning", function()
    local w = {}
    local rt = new_rt(w)
    rt:render("/")
    rt:dispatch("nothing", {}, { signals = {
      ["router.url"] = "/", ["router.path"] = "/", ["router.params"] = {}, ["router.pending"] = false,
      product = { value = Async.null, status = "loading", loading = true, error = Async.null, version = 1 },
    } })
    assert.same({}, w)
    rt:dispatch("nothing", {}, { signals = { ["router.url"] = "/", ghost = 1 } })
    assert.same({ 'dispatch signals: handler nothing: client signals 1 ignored: ' ..
      '"ghost (an id the app does not register)"' }, w)
  end)

  it("the signals of the page's components (scope ids parent.Name.N) are ignored without a warning", function()
    local w = {}
    local a = app()
    a:use({ component = { Toggle = Async.define_component(function(self) self:signal("label", "") return "" end) } })
    local rt = Async.create_app(a, { env = "development",
      on_error = function(msg, _, what) w[#w + 1] = what .. ": " .. tostring(msg) end })
    rt:dispatch("nothing", {}, { signals = { ["home.Toggle.1.label"] = "Wi-Fi", ["Toggle.2.label"] = "x",
                                             ["home.Ghost.1.label"] = "y" } })
    assert.same({ 'dispatch signals: handler nothing: client signals 1 ignored: ' ..
      '"home.Ghost.1.label (an id the app does not register)"' }, w)
    assert.is_false(rt.signals:has("home.Toggle.1.label"))
  end)

  it("takes at most 1,000 paths", function()
    local w = {}
    local rt = new_rt(w)
    local sent = {}
    for i = 1, 5000 do sent["form.f" .. i] = i end
    rt:dispatch("nothing", {}, { signals = sent })
    local form, n = rt.signals:get("form"), 0
    for k in pairs(form) do if k ~= "name" then n = n + 1 end end
    assert.equal(runtime.MAX_CLIENT_PATHS, n)
    assert.truthy(w[1]:find("more than 1000 signal paths; 4000 ignored", 1, true), w[1])
  end)

  it("ignores a malformed path instead of failing the call", function()
    local rt = new_rt({})
    local env = rt:dispatch("nothing", {}, { signals = { ["count.."] = 1, [5] = 2, count = 4 } })
    assert.is_nil(env.error)
    assert.equal(4, rt.signals:get("count"))
  end)

  it("warns only in development", function()
    local w = {}
    local rt = Async.create_app(app(), { env = "production", on_error = function(m) w[#w + 1] = m end })
    rt:dispatch("nothing", {}, { signals = { invented = 1 } })
    assert.same({}, w)
  end)
end)

describe("rt:dispatch: the envelope reports async state changes", function()
  it("not the first runs a fresh runtime starts on its own (they are not the handler's doing)", function()
    local rt = new_rt({})
    local env = rt:dispatch("nothing", {}, { signals = { count = 2 } })
    assert.same({ [RESULT] = 1, signals = {} }, env)
    assert.equal("loading", rt.signals:ref("product"):status())
  end)


  it("an async signal whose status changed is in signals, in snapshot form", function()
    local rt = new_rt({})
    rt.scheduler:flush()   -- starts the first run
    loop:advance(10)
    rt.scheduler:flush()
    assert.equal("ready", rt.signals:ref("product"):status())
    local env = rt:dispatch("reload")   -- same value, status back to loading, new version
    assert.equal(1, env[RESULT])
    local p = env.signals.product
    assert.is_table(p)
    assert.equal("loading", p.status)
    assert.is_true(p.loading)
  end)
end)
