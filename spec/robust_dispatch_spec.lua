-- Robustness: rt:dispatch treats the client's signals as untrusted input
-- (protocol.md "Lua handlers"): it writes only ids the app registers, never
-- `_x` or `router.*`, never an async signal or a computed, never creates an
-- id, takes at most 1,000 paths, and warns in development about the rest.
-- The envelope reports an async signal whose status or version changed.
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
    assert.equal(3, #w)
    assert.truthy(w[1]:find("an id the app does not register", 1, true), w[1])
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
