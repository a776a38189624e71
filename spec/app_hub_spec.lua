-- lua-api.md "App hub and registries": Async.use (a whole table, one kind at
-- a time, before and after a runtime exists), define_app isolation,
-- create_app options and errors, runtimes that never share signal values,
-- and registry inspection (keys/entries/get/has/snapshot) over every kind,
-- shaped as the seed's tests/unit/registry-store.test.js.
local Async = require("async")
local loop_mod = require("async.loop")

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

local function msg(err) return (tostring(err):gsub("^[^:]*:%d+: ", "")) end

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function noop() end

-- a declaration table with one of each kind
local function decls()
  return {
    signal = { count = Async.signal(1), product = { title = "Keyboard", tags = { "a" } } },
    handler = { increment = function(self) self.signals:update("count", function(c) return c + 1 end) end },
    server = { ["products.get"] = function(self, id) return self.cache:get_or_set("products:" .. id,
      function() return { id = id } end) end },
    partial = { home = function() return "<h1>Home</h1>" end },
    route = { ["/"] = Async.define_route("home"), ["/products/:id"] = Async.define_route("product.page") },
    component = { Toggle = Async.define_component(function() return "<button>t</button>" end) },
    cache = { browser = { product = Async.define_cache({ ttl = 60000 }) },
              server = { products = Async.define_cache({ ttl = 30000 }) } },
  }
end

describe("define_app and use", function()
  it("takes a whole declaration table", function()
    local app = Async.define_app()
    assert.equal(app, app:use(decls()))
    local rt = Async.create_app(app)
    assert.are.same({ "count", "product" }, rt.registry:keys("signal"))
    assert.are.same({ "increment" }, rt.registry:keys("handler"))
    assert.are.same({ "products.get" }, rt.registry:keys("server"))
    assert.are.same({ "home" }, rt.registry:keys("partial"))
    assert.are.same({ "/", "/products/:id" }, rt.registry:keys("route"))
    assert.are.same({ "Toggle" }, rt.registry:keys("component"))
    assert.are.same({ "product" }, rt.registry:keys("cache.browser"))
    assert.are.same({ "products" }, rt.registry:keys("cache.server"))
  end)

  it("takes one kind at a time", function()
    local app = Async.define_app()
    for kind, map in pairs(decls()) do app:use(kind, map) end
    local rt = Async.create_app(app)
    assert.equal(1, rt.signals:get("count"))
    assert.is_function(rt.handlers.increment)
    assert.are.same({ "product" }, rt.registry:keys("cache.browser"))
  end)

  it("define_app(decls) declares at once", function()
    local rt = Async.create_app(Async.define_app(decls()))
    assert.equal("Keyboard", rt.signals:get("product.title"))
  end)

  it("reaches runtimes that already exist, one kind or a whole table", function()
    local app = Async.define_app()
    local rt = Async.create_app(app)
    app:use("signal", { late = "yes" })
    app:use({ handler = { ping = function(self) self.signals:set("late", "pong") end },
              cache = { browser = { ui = Async.define_cache({ ttl = 10 }) } } })
    assert.equal("yes", rt.signals:get("late"))
    assert.is_true(rt.registry:has("handler", "ping"))
    assert.are.same({ ui = Async.define_cache({ ttl = 10 }) }, { ui = rt.registry:get("cache.browser", "ui") })
    rt:dispatch("ping")
    assert.equal("pong", rt.signals:get("late"))
  end)

  it("hubs are isolated from each other and from the default hub", function()
    local a, b = Async.define_app(), Async.define_app()
    a:use("signal", { only_a = 1 })
    b:use("handler", { only_b = noop })
    local ra, rb = Async.create_app(a), Async.create_app(b)
    assert.are.same({ "only_a" }, ra.registry:keys("signal"))
    assert.are.same({}, rb.registry:keys("signal"))
    assert.are.same({}, ra.registry:keys("handler"))
    assert.is_nil(Async.registry:get("signal", "only_a"))
  end)

  it("rt:use registers runtime-only declarations and leaves the hub alone", function()
    local app = Async.define_app()
    local rt = Async.create_app(app)
    local sig = Async.signal(5)
    rt:use("signal", { mine = sig })
    rt:use({ handler = { h = noop } })
    assert.equal(sig, rt.signals:ref("mine"))        -- a runtime registers the object as given
    assert.is_true(rt.registry:has("handler", "h"))
    assert.is_nil(app.decl.handler.h)
    assert.are.same({}, Async.create_app(app).registry:keys("signal"))
  end)

  -- { name, kind or table, map, message }
  local bad = {
    { "an unknown kind", "widget", {},
      "Async.use: unknown kind 'widget' (expected signal, handler, server, partial, route, component or cache)" },
    { "a non-table map", "handler", 5, "Async.use: the handler declarations must be a table, got number" },
    { "a handler that is not a function", "handler", { h = 1 },
      'Async.use: handler "h" must be a function, got number' },
    { "a server function that is not a function", "server", { ["a.b"] = "x" },
      'Async.use: server "a.b" must be a function, got string' },
    { "a route not made by define_route", "route", { ["/"] = "home" },
      'Async.use: route "/" must be Async.define_route(partial_id), got string' },
    { "a bad route pattern", "route", { ["/a/*/b"] = Async.define_route("x") },
      'Invalid route pattern "/a/*/b": a splat ("*" or "*name") is only allowed as the last segment' },
    { "a component not made by define_component", "component", { C = function() end },
      'Async.use: component "C" must be Async.define_component(fn)' },
    { "a cache side other than browser/server", "cache", { client = {} },
      "Async.use: cache declarations are split into browser and server, got 'client'" },
    { "a cache policy not made by define_cache", "cache", { browser = { p = { ttl = 1 } } },
      'Async.use: cache "p" must be Async.define_cache({ ttl = ms })' },
    { "a non-string id", "handler", { noop },
      "Async.use: handler ids must be non-empty strings, got 1" },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1] .. " and declares nothing", function()
      local app = Async.define_app()
      assert.equal(c[4], msg(raised(app.use, app, c[2], c[3])))
      local rt = Async.create_app(app)
      for _, kind in ipairs({ "handler", "server", "route", "component", "cache.browser" }) do
        assert.are.same({}, rt.registry:keys(kind))
      end
    end)
  end

  it("checks a whole table before declaring any of it", function()
    local app = Async.define_app()
    raised(app.use, app, { handler = { ok = noop }, server = { bad = 1 } })
    assert.is_nil(app.decl.handler.ok)
  end)

  it("Async.use refuses a signal passed as a kind map", function()
    assert.equal("Async.use: pass { signal = { id = value } }, got a signal under 'count'",
      msg(raised(Async.use, { count = Async.signal(0) })))
  end)
end)

describe("the default hub", function()
  it("Async.use before and after Async.start, seen through Async.registry", function()
    local id = "hub_spec_" .. tostring(os.time()) .. tostring(math.random(1e6))
    assert.equal(Async, Async.use({ signal = { [id] = Async.signal("ready") },
                                    server = { [id .. ".server"] = function() return "server" end } }))
    assert.is_true(Async.registry:has("signal", id))
    assert.equal("ready", Async.registry:get("signal", id):peek())
    assert.are.same({ id = id .. ".server", kind = "server" }, Async.registry:get("server", id .. ".server"))
    local rt = Async.start({ env = "development" })
    Async.use("handler", { [id] = function(self) self.signals:set(id, "done") end })
    assert.equal("ready", rt.signals:get(id))
    rt:dispatch(id)
    assert.equal("done", rt.signals:get(id))
    assert.equal("ready", Async.registry:get("signal", id):peek())   -- the hub's value is untouched
    assert.equal("server", rt:call(id .. ".server").value)
    rt:destroy()
  end)

  it("create_app accepts the Async module itself for its default hub", function()
    local rt = Async.create_app(Async)
    assert.equal(Async.hub, rt.app)
  end)
end)

describe("create_app", function()
  local saved_env
  before_each(function() saved_env = os.getenv("ASYNC_ENV") end)

  it("defaults: server target, manual scheduler, development (unless ASYNC_ENV)", function()
    local rt = Async.create_app(Async.define_app())
    assert.equal("server", rt.target)
    assert.equal("manual", rt.scheduler.strategy)
    assert.equal(saved_env or "development", rt.env)
    assert.equal(rt, rt:start())
  end)

  it("a browser target defaults to a sync scheduler", function()
    assert.equal("sync", Async.create_app(Async.define_app(), { target = "browser" }).scheduler.strategy)
  end)

  it("takes scheduler, request, env", function()
    local s = Async.create_scheduler({ strategy = "manual" })
    local req = { headers = { a = "1" } }
    local rt = Async.create_app(Async.define_app(), { scheduler = s, request = req, env = "production" })
    assert.equal(s, rt.scheduler)
    assert.equal(req, rt.request)
    assert.equal("production", rt.env)
  end)

  it("has every field lua-api.md names", function()
    local rt = Async.create_app(Async.define_app(decls()))
    for _, f in ipairs({ "signals", "handlers", "server", "partials", "routes", "router", "registry", "scheduler" }) do
      assert.is_not_nil(rt[f], f)
    end
    assert.is_not_nil(rt.cache.browser)
    assert.is_not_nil(rt.cache.server)
    assert.equal(rt.registry, rt.signals.registry)
    assert.equal("/products/:id", rt.router:match("/products/7").pattern)
    assert.equal("7", rt.router:match("/products/7").params.id)
  end)

  -- { name, app, opts, message }
  local bad = {
    { "no app", nil, nil, "create_app expects an app from Async.define_app(), got nil" },
    { "a plain table", {}, nil, "create_app expects an app from Async.define_app(), got table" },
    { "options that are not a table", "APP", 5, "create_app options must be a table, got number" },
    { "an unknown env", "APP", { env = "staging" },
      'create_app: env must be "development" or "production", got staging' },
    { "an unknown target", "APP", { target = "edge" }, 'create_app: target must be "server" or "browser", got edge' },
    { "a scheduler that is not one", "APP", { scheduler = {} },
      "create_app: scheduler must be made by Async.create_scheduler, got table" },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1], function()
      local app = c[2] == "APP" and Async.define_app() or c[2]
      assert.equal(c[4], msg(raised(Async.create_app, app, c[3])))
    end)
  end
end)

describe("runtimes never share state", function()
  it("signal values, including tables declared on the hub", function()
    local app = Async.define_app(decls())
    local a, b = Async.create_app(app), Async.create_app(app)
    a.signals:set("count", 10)
    a:dispatch("increment")
    a.signals:set("product.title", "A's")
    assert.equal(11, a.signals:get("count"))
    assert.equal(1, b.signals:get("count"))
    assert.equal("Keyboard", b.signals:get("product.title"))
    -- even a direct mutation of one runtime's table does not reach another
    a.signals:get("product").tags[1] = "mutated"
    assert.equal("a", b.signals:get("product.tags.1"))
    assert.equal("a", Async.create_app(app).signals:get("product.tags.1"))
  end)

  it("browser caches (the server cache is the app's, shared by its runtimes)", function()
    local app = Async.define_app(decls())
    local a, b = Async.create_app(app), Async.create_app(app)
    a.cache.browser:set("product:1", "x")
    a:call("products.get", { "1" })
    assert.is_nil(b.cache.browser:get("product:1"))
    assert.are.same({ ["products:1"] = { id = "1" } }, a.cache.server:snapshot())
    assert.are.same({ ["products:1"] = { id = "1" } }, b.cache.server:snapshot())
    assert.are.equal(app:server_cache(), b.cache.server)
    -- another app has its own
    assert.are.same({}, Async.create_app(Async.define_app(decls())).cache.server:snapshot())
  end)

  it("async signals declared with define_async run once per runtime", function()
    local runs = 0
    local app = Async.define_app({ signal = { id = 1, item = Async.define_async(function(ctx)
      runs = runs + 1
      local id = ctx.signals:get("id")
      Async.delay(5, ctx.abort)
      return "item " .. id
    end) } })
    assert.equal(0, runs)
    local a = Async.create_app(app, { target = "browser" })
    local b = Async.create_app(app, { target = "browser" })
    a.signals:set("id", 2)
    loop:advance(5)
    assert.equal("item 2", a.signals:get("item"))
    assert.equal("item 1", b.signals:get("item"))
    assert.equal(3, runs)   -- a: first run aborted by the write, rerun; b: one run
  end)
end)

describe("registry inspection", function()
  local app, rt
  before_each(function()
    app = Async.define_app(decls())
    rt = Async.create_app(app, { target = "server" })
    rt.cache.browser:set("product:1", { title = "K" })
    rt.cache.server:set("products:1", { secret = true })
  end)

  -- { kind, keys }
  local keys = {
    { "signal", { "count", "product" } },
    { "handler", { "increment" } },
    { "server", { "products.get" } },
    { "partial", { "home" } },
    { "route", { "/", "/products/:id" } },
    { "component", { "Toggle" } },
    { "cache.browser", { "product" } },
    { "cache.server", { "products" } },
    { "cache.browser.entries", { "product:1" } },
    { "cache.server.entries", { "products:1" } },
  }
  for _, c in ipairs(keys) do
    it("keys(" .. c[1] .. ")", function()
      assert.are.same(c[2], rt.registry:keys(c[1]))
    end)
  end

  it("get, has and entries for every kind", function()
    local d = decls()
    assert.equal(1, rt.registry:get("signal", "count"):peek())
    assert.equal(rt.handlers.increment, rt.registry:get("handler", "increment"))
    assert.is_function(rt.registry:get("server", "products.get"))    -- server target: the function
    assert.equal(rt.partials.home, rt.registry:get("partial", "home"))
    assert.are.same(d.route["/"], rt.registry:get("route", "/"))
    assert.equal(app.decl.component.Toggle, rt.registry:get("component", "Toggle"))
    assert.are.same(Async.define_cache({ ttl = 60000 }), rt.registry:get("cache.browser", "product"))
    assert.are.same(Async.define_cache({ ttl = 30000 }), rt.registry:get("cache.server", "products"))
    assert.are.same({ title = "K" }, rt.registry:get("cache.browser.entries", "product:1"))
    assert.are.same({ secret = true }, rt.registry:get("cache.server.entries", "products:1"))
    assert.is_nil(rt.registry:get("handler", "nope"))
    assert.is_false(rt.registry:has("signal", "nope"))
    assert.is_true(rt.registry:has("route", "/"))
    assert.are.same({ { "product:1", { title = "K" } } }, rt.registry:entries("cache.browser.entries"))
    local e = rt.registry:entries("signal")
    assert.equal(2, #e)
    assert.equal("count", e[1][1])
    assert.equal(1, e[1][2]:peek())
  end)

  it("snapshot: the seed's shape, descriptors instead of functions", function()
    assert.are.same({
      signal = { count = 1, product = { title = "Keyboard", tags = { "a" } } },
      handler = { increment = { id = "increment", kind = "handler" } },
      server = { ["products.get"] = { id = "products.get", kind = "server" } },
      partial = { home = { id = "home", kind = "partial" } },
      route = { ["/"] = Async.define_route("home"), ["/products/:id"] = Async.define_route("product.page") },
      component = { Toggle = { id = "Toggle", kind = "component" } },
      cache = { browser = { product = Async.define_cache({ ttl = 60000 }) },
                server = { products = Async.define_cache({ ttl = 30000 }) } },
      entries = { browser = { ["product:1"] = { title = "K" } }, server = { ["products:1"] = { secret = true } } },
    }, rt.registry:snapshot())
    -- and it encodes
    assert.is_string(Async.json.encode(rt.registry:snapshot()))
  end)

  it("expired cache entries are not listed", function()
    rt.cache.browser:set("product:2", "soon gone")
    loop:advance(60000)
    assert.are.same({}, rt.registry:keys("cache.browser.entries"))
    assert.is_nil(rt.registry:get("cache.browser.entries", "product:2"))
  end)

  it("a hub's inspection lists declarations and no cache contents", function()
    assert.are.same({ "count", "product" }, app.decl and Async.create_app(app).registry:keys("signal"))
    local hub = require("async.app.hub").inspector(app)
    assert.are.same({ "/", "/products/:id" }, hub:keys("route"))
    assert.are.same({}, hub:keys("cache.server.entries"))
    assert.are.same({ id = "products.get", kind = "server" }, hub:get("server", "products.get"))
    assert.are.same({ browser = {}, server = {} }, hub:snapshot().entries)
    assert.are.same({ count = 1, product = { title = "Keyboard", tags = { "a" } } }, hub:snapshot().signal)
  end)

  it("an unknown kind raises", function()
    assert.equal("registry: unknown kind 'cache' (expected signal, handler, server, partial, route, component, " ..
      "cache.browser, cache.server, cache.browser.entries, cache.server.entries)", msg(raised(rt.registry.keys,
      rt.registry, "cache")))
  end)
end)

describe("a browser-target runtime", function()
  local rt
  before_each(function()
    rt = Async.create_app(Async.define_app(decls()), { target = "browser" })
    rt.cache.server:set("products:1", { title = "Secret" })
    rt.cache.browser:set("product:1", { title = "Public" })
  end)

  it("shows server functions as descriptors, never functions", function()
    assert.are.same({ "products.get" }, rt.registry:keys("server"))
    assert.are.same({ id = "products.get", kind = "server" }, rt.registry:get("server", "products.get"))
    assert.are.same({ { "products.get", { id = "products.get", kind = "server" } } }, rt.registry:entries("server"))
    for _, entry in pairs(rt.registry:snapshot().server) do assert.is_table(entry) end
  end)

  it("never shows server cache contents", function()
    assert.are.same({}, rt.registry:keys("cache.server.entries"))
    assert.are.same({}, rt.registry:entries("cache.server.entries"))
    assert.is_nil(rt.registry:get("cache.server.entries", "products:1"))
    assert.is_false(rt.registry:has("cache.server.entries", "products:1"))
    assert.are.same({}, rt.registry:snapshot().entries.server)
    assert.are.same({ ["product:1"] = { title = "Public" } }, rt.registry:snapshot().entries.browser)
    assert.is_nil(Async.json.encode(rt.registry:snapshot()):find("Secret", 1, true))
  end)
end)

describe("hub.deep_copy (signal declarations are copied per runtime)", function()
  it("copies plain tables and shares signal and computed handles", function()
    local deep_copy = require("async.app.hub").deep_copy
    local s = Async.signal(2)
    local c = Async.computed(function() return s() * 3 end)
    local v = { list = { 1, 2 }, s = s, c = c }
    local copy = deep_copy(v)
    assert.are_not.equal(v, copy)
    assert.are_not.equal(v.list, copy.list)
    assert.same({ 1, 2 }, copy.list)
    assert.equal(s, copy.s)
    assert.equal(c, copy.c)   -- the same handle, not a second one naming the same node
    assert.equal(6, copy.c())
  end)
end)
