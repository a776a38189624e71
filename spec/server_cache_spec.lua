-- The server cache is the app's, not the request's (lua-api.md "Caches",
-- docs/endpoints.md "The server cache"): every request runtime of an app
-- gets App:server_cache(), so what one request's server function, partial
-- or async signal caches with `self.cache` is there for the next request:
-- entries, TTLs and single-flight fills. The browser cache stays per
-- runtime (it belongs to one page's snapshot). Driven through the request
-- core in-process (a request table in, the exact answer out).
local Async = require("async")
local core = require("async.server.core")
local cache_mod = require("async.app.cache")
local cc = require("support.core_client")

local RESULT = '{"__async_server_result__":1,'
local POST = { ["content-type"] = "application/json", ["x-async-request"] = "1" }

local loop, prev
before_each(function()
  prev = Async.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev) end)

-- an app whose server functions, partial and handler use the caches;
-- `fills` counts the real computations of "report:daily"
local function shop(fills)
  local app = Async.define_app()
  app:use({
    cache = { server = { report = Async.define_cache({ ttl = 100 }) } },
    signal = { tip = "" },
    server = {
      -- a count kept in the server cache (the server-call example's greet.say)
      bump = function(self, name)
        local key = "count:" .. name
        local n = (self.cache:get(key) or 0) + 1
        self.cache:set(key, n)
        return n
      end,
      -- an expensive value, cached for 100 ms, computed in 50 ms
      report = function(self)
        return self.cache:get_or_set("report:daily", function()
          fills.n = fills.n + 1
          local fill = fills.n
          Async.delay(50, self.abort)
          return { fill = fill }
        end)
      end,
    },
    handler = {
      -- self.cache in a handler is the browser cache
      remember = function(self, v) self.cache:set("tip:today", v) end,
      recall = function(self) return self.cache:get("tip:today") or Async.null end,
    },
    partial = {
      home = function(self)
        local r = self.cache:get_or_set("report:daily", function()
          fills.n = fills.n + 1
          local fill = fills.n
          Async.delay(50)
          return { fill = fill }
        end)
        return Async.html[[<p>fill {{ fill }}</p>]] { fill = r.fill }
      end,
    },
    route = { ["/"] = Async.define_route("home") },
  })
  return app
end

local function post(handle, path, body)
  local res = cc.run(handle, loop, cc.req({ method = "POST", target = path, headers = POST, body = body or "{}" }))
  return res.status, res.body
end

-- starts handle(req) in a coroutine of its own; returns a function that
-- gives its answer once the loop has run it to the end
local function start(handle, t)
  local res
  local co = coroutine.create(function() res = handle(cc.req(t)) end)
  assert(coroutine.resume(co))
  return function() return res end
end

describe("the server cache is shared by an app's request runtimes", function()
  it("a value one request's server function cached is a hit in the next request's runtime", function()
    local app = shop({ n = 0 })
    local handle = core.new({ app = app, log = function() end })
    assert.are.same({ 200, RESULT .. '"value":1}' }, { post(handle, "/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ 200, RESULT .. '"value":2}' }, { post(handle, "/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ 200, RESULT .. '"value":1}' }, { post(handle, "/__async/server/bump", '{"args":["bob"]}') })
    -- the app's cache holds them; a runtime made in-process sees them too
    assert.are.same({ ["count:ada"] = 2, ["count:bob"] = 1 }, app:server_cache():snapshot())
    assert.are.same({ ["count:ada"] = 2, ["count:bob"] = 1 }, Async.create_app(app).cache.server:snapshot())
  end)

  it("a page's partial and a later server call share one entry", function()
    local fills = { n = 0 }
    local handle = core.new({ app = shop(fills), log = function() end })
    local res = cc.run(handle, loop, cc.req({ target = "/" }))
    assert.are.equal(200, res.status)
    assert.truthy(res.body:find("<p>fill 1</p>", 1, true))
    assert.are.same({ 200, RESULT .. '"value":{"fill":1}}' }, { post(handle, "/__async/server/report") })
    assert.are.equal(1, fills.n)
  end)

  it("TTL: a hit until the policy's 100 ms have passed, across requests; then a new fill", function()
    local fills = { n = 0 }
    local handle = core.new({ app = shop(fills), log = function() end })
    local t0 = loop:now()
    assert.are.same({ 200, RESULT .. '"value":{"fill":1}}' }, { post(handle, "/__async/server/report") })
    local stored = loop:now()          -- set when the 50 ms fill ended
    assert.are.equal(50, stored - t0)
    loop:advance(99)                   -- 99 ms after the store: still there
    assert.are.same({ 200, RESULT .. '"value":{"fill":1}}' }, { post(handle, "/__async/server/report") })
    loop:advance(stored + 100 - loop:now())   -- exactly 100 ms: expired
    assert.are.same({ 200, RESULT .. '"value":{"fill":2}}' }, { post(handle, "/__async/server/report") })
    assert.are.equal(2, fills.n)
  end)

  it("single flight across two concurrent requests: one fill, both answers", function()
    local fills = { n = 0 }
    local handle = core.new({ app = shop(fills), log = function() end })
    local t = { method = "POST", target = "/__async/server/report", headers = POST, body = "{}" }
    local a = start(handle, t)
    loop:advance(20)                   -- the first is filling (50 ms) when the second comes
    local b = start(handle, t)
    loop:advance(60)
    assert.are.same({ 200, RESULT .. '"value":{"fill":1}}' }, { a().status, a().body })
    assert.are.same({ 200, RESULT .. '"value":{"fill":1}}' }, { b().status, b().body })
    assert.are.equal(1, fills.n)
  end)

  it("a request that goes away while filling releases the fill: the other request fills again", function()
    local fills = { n = 0 }
    local app = shop(fills)
    local handle = core.new({ app = app, log = function() end })
    local gone = Async.abort_token()
    local a = start(handle, { method = "POST", target = "/__async/server/report", headers = POST, body = "{}",
                              abort = gone })
    loop:advance(10)
    local b = start(handle, { method = "POST", target = "/__async/server/report", headers = POST, body = "{}" })
    loop:advance(10)
    gone:cancel("client disconnected")
    loop:advance(100)
    assert.are.equal(499, a().status)
    assert.are.same({ 200, RESULT .. '"value":{"fill":2}}' }, { b().status, b().body })
    assert.are.same({ ["report:daily"] = { fill = 2 } }, app:server_cache():snapshot())
  end)

  it("the browser cache is not shared: each request runtime has its own", function()
    local app = shop({ n = 0 })
    local handle = core.new({ app = app, log = function() end })
    assert.are.same({ 200, RESULT .. '"signals":{}}' },
      { post(handle, "/__async/handler/remember", '{"args":["be kind"]}') })
    assert.are.same({ 200, RESULT .. '"signals":{},"value":null}' }, { post(handle, "/__async/handler/recall") })
    local a, b = Async.create_app(app), Async.create_app(app)
    a.cache.browser:set("tip:today", "x")
    assert.is_nil(b.cache.browser:get("tip:today"))
    assert.are_not.equal(a.cache.browser, b.cache.browser)
    assert.are.equal(a.cache.server, b.cache.server)
  end)

  it("two apps never share one: each app has its own server cache", function()
    local one, two = shop({ n = 0 }), shop({ n = 0 })
    local handle = core.new({ apps = { ["/"] = one, ["/two"] = two }, log = function() end })
    assert.are.same({ 200, RESULT .. '"value":1}' }, { post(handle, "/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ 200, RESULT .. '"value":1}' }, { post(handle, "/two/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ 200, RESULT .. '"value":2}' }, { post(handle, "/two/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ ["count:ada"] = 1 }, one:server_cache():snapshot())
    assert.are.same({ ["count:ada"] = 2 }, two:server_cache():snapshot())
  end)
end)

describe("App:server_cache", function()
  it("is made on first use and is then always the same cache", function()
    local app = Async.define_app({ cache = { server = { p = Async.define_cache({ ttl = 5 }) } } })
    local c = app:server_cache()
    assert.are.equal(c, app:server_cache())
    assert.are.equal(c, Async.create_app(app).cache.server)
    assert.are.same({ "p" }, c:policies())
    -- a policy the app declares later reaches it (read through, not copied)
    app:use({ cache = { server = { q = Async.define_cache({ ttl = 9 }) } } })
    assert.are.same({ "p", "q" }, c:policies())
  end)

  it("is bounded: the default backend is an LRU of cache.DEFAULT_MAX_ENTRIES (10,000) entries", function()
    assert.are.equal(10000, cache_mod.DEFAULT_MAX_ENTRIES)
    local c = Async.define_app():server_cache()
    for i = 1, 10001 do c:set("k" .. i, i) end
    assert.are.equal(10000, #c:keys())
    assert.is_nil(c:get("k1"))
    assert.are.equal(10001, c:get("k10001"))
  end)

  it("policies a runtime registers itself stay that runtime's (a view over the same entries)", function()
    local app = Async.define_app()
    local a, b = Async.create_app(app), Async.create_app(app)
    a:use({ cache = { server = { mine = Async.define_cache({ ttl = 10 }) } } })
    assert.are.same({ "mine" }, a.registry:keys("cache.server"))
    assert.are.same({}, b.registry:keys("cache.server"))
    assert.is_nil(app:server_cache():policy("mine"))
    a.cache.server:set("mine:1", "x")
    assert.are.equal("x", b.cache.server:get("mine:1"))   -- same entries
    loop:advance(10)
    assert.is_nil(b.cache.server:get("mine:1"))             -- stored with a's policy
  end)
end)

describe("core.new({ cache = { server = ... } })", function()
  -- a backend that records what it is asked, over a memory one
  local function recording()
    local mem, calls = cache_mod.memory(), {}
    local b = {}
    for _, m in ipairs({ "get", "set", "delete", "clear", "keys" }) do
      b[m] = function(_, ...)
        calls[#calls + 1] = m .. " " .. tostring((...))
        return mem[m](mem, ...)
      end
    end
    return b, calls, mem
  end

  it("plugs a backend into the app's server cache (nginx gives a lua_shared_dict one)", function()
    local b, calls = recording()
    local app = shop({ n = 0 })
    local handle = core.new({ app = app, cache = { server = b }, log = function() end })
    assert.are.same({ 200, RESULT .. '"value":1}' }, { post(handle, "/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ 200, RESULT .. '"value":2}' }, { post(handle, "/__async/server/bump", '{"args":["ada"]}') })
    assert.are.same({ "get count:ada", "set count:ada", "get count:ada", "set count:ada" }, calls)
  end)

  it("one backend for several mounts: each app's keys under its prefix", function()
    local b, _, mem = recording()
    local one, two = shop({ n = 0 }), shop({ n = 0 })
    local handle = core.new({ apps = { ["/"] = one, ["/two"] = two }, cache = { server = b }, log = function() end })
    post(handle, "/__async/server/bump", '{"args":["ada"]}')
    post(handle, "/two/__async/server/bump", '{"args":["ada"]}')
    post(handle, "/two/__async/server/bump", '{"args":["ada"]}')
    local keys = mem:keys()
    table.sort(keys)
    assert.are.same({ "/#count:ada", "/two#count:ada" }, keys)
    assert.are.same({ ["count:ada"] = 1 }, one:server_cache():snapshot())
    assert.are.same({ ["count:ada"] = 2 }, two:server_cache():snapshot())
  end)

  it("max_entries bounds the default backend", function()
    local app = shop({ n = 0 })
    local handle = core.new({ app = app, cache = { server = { max_entries = 2 } }, log = function() end })
    for _, name in ipairs({ "a", "b", "c" }) do post(handle, "/__async/server/bump", '{"args":["' .. name .. '"]}') end
    assert.are.same({ "count:c", "count:b" }, app:server_cache():keys())
  end)

  it("bad values are refused", function()
    local app = Async.define_app()
    for _, c in ipairs({ 1, { browser = {} }, { server = "shdict:x" }, { server = { get = function() end } },
                         { server = { max_entries = 0 } }, { server = { size = 3 } } }) do
      local ok, err = pcall(core.new, { app = app, cache = c })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("async.server.core.new: cache", 1, true), tostring(err))
    end
  end)
end)
