-- issue 4: "1,000 concurrent requests as coroutines against one app share
-- nothing". Each request is a coroutine that builds its own runtime of one
-- app, writes its own values, waits on the (manual) loop, and checks it only
-- ever sees its own values. Server calls fill the server cache with a fill
-- that waits: the server cache is the app's (App:server_cache), so single
-- flight holds across the runtimes: one fill for every caller.
local Async = require("async")
local loop_mod = require("async.loop")

local N = 1000

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

local fills
local function app()
  return Async.define_app({
    signal = { user = { name = "nobody", visits = 0 }, count = 0,
               greeting = Async.computed(function(s) return s and ("hi " .. s:get("user.name")) end) },
    handler = {
      visit = function(self, name)
        self.signals:set("user.name", name)
        Async.delay(1 + #name % 7)
        self.signals:update("user.visits", function(v) return v + 1 end)
        self.signals:set("count", self.signals:get("count") + 1)
      end,
    },
    server = {
      ["products.get"] = function(self, id)
        return self.cache:get_or_set("products:" .. id, function()
          fills = fills + 1
          Async.delay(10, self.abort)
          return { id = id, filled_by = self.request.id }
        end)
      end,
      ["whoami"] = function(self)
        Async.delay(3, self.abort)
        return self.request.id .. ":" .. self.signals:get("me")
      end,
    },
    cache = { server = { products = Async.define_cache({ ttl = 60000 }) } },
  })
end

-- runs fns as coroutines until all have finished; returns their errors
local function run_all(fns, max_ms)
  local errs, done = {}, 0
  for i, fn in ipairs(fns) do
    local co = coroutine.create(function()
      local ok, err = pcall(fn)
      if not ok then errs[#errs + 1] = "#" .. i .. ": " .. tostring(err) end
      done = done + 1
    end)
    local ok, err = coroutine.resume(co)
    if not ok then errs[#errs + 1] = "#" .. i .. " (resume): " .. tostring(err) end
  end
  local t = 0
  while done < #fns and t < max_ms do loop:advance(1); t = t + 1 end
  assert.equal(#fns, done, "requests still waiting after " .. max_ms .. " ms")
  return errs
end

describe("1,000 concurrent requests against one app", function()
  it("each runtime only ever sees its own signal values", function()
    local shared = app()
    local fns = {}
    for i = 1, N do
      fns[i] = function()
        local rt = Async.create_app(shared, { target = "server", request = { id = i } })
        local name = "user" .. i
        rt.signals:set("user.name", name)
        rt.signals:set("count", i)
        Async.delay(i % 13)
        assert.equal(name, rt.signals:get("user.name"))
        assert.equal(i, rt.signals:get("count"))
        assert.equal("hi " .. name, rt.signals:get("greeting"))
        local env = rt:dispatch("visit", { name })
        assert.are.same({ user = { name = name, visits = 1 }, count = i + 1 }, env.signals)
        Async.delay(i % 5)
        assert.equal(name, rt.signals:get("user.name"))
        assert.equal(1, rt.signals:get("user.visits"))
        rt:destroy()
      end
    end
    local errs = run_all(fns, 100)
    assert.are.same({}, errs)
    -- the hub's declarations are untouched
    assert.are.same({ "nobody", 0 }, { Async.create_app(shared).signals:get("user.name"),
                                        Async.create_app(shared).signals:get("count") })
  end)

  it("server calls see their own request and signals while others run", function()
    local shared = app()
    local fns = {}
    for i = 1, N do
      fns[i] = function()
        local rt = Async.create_app(shared, { request = { id = "r" .. i } })
        local env = rt:call("whoami", {}, { signals = { me = "m" .. i } })
        assert.are.same({ __async_server_result__ = 1, value = "r" .. i .. ":m" .. i }, env)
      end
    end
    assert.are.same({}, run_all(fns, 100))
  end)

  it("a waiting cache fill is shared across the app's runtimes: one fill for every caller", function()
    fills = 0
    local shared = app()
    local runtimes = {}
    for r = 1, 10 do runtimes[r] = Async.create_app(shared, { request = { id = r } }) end
    local fns = {}
    for i = 1, N do
      local r = (i - 1) % 10 + 1
      fns[i] = function()
        local env = runtimes[r]:call("products.get", { "sku-1" })
        -- every caller, whatever its runtime, gets the value of the one fill
        -- (the first caller's, in runtime 1)
        assert.are.same({ id = "sku-1", filled_by = 1 }, env.value)
      end
    end
    assert.are.same({}, run_all(fns, 100))
    assert.equal(1, fills)   -- one fill for all, not one per call or per runtime
    for r = 1, 10 do
      assert.are.same({ ["products:sku-1"] = { id = "sku-1", filled_by = 1 } }, runtimes[r].cache.server:snapshot())
    end
    -- a runtime made later hits the cache too
    local co = coroutine.wrap(function() return Async.create_app(shared):call("products.get", { "sku-1" }) end)
    assert.are.same({ id = "sku-1", filled_by = 1 }, co().value)
    assert.equal(1, fills)
  end)
end)
