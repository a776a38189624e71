-- Caches: TTL policies, LRU backend, snapshot, single-flight get_or_set.
local E = require("support.errors")
local cache = require("async.app.cache")
local loop = require("async.loop")
local abort = require("async.kernel.abort")

describe("cache", function()
  local l, prev

  before_each(function()
    prev = loop.get_loop()
    l = loop.set_loop(loop.manual_loop())
  end)

  after_each(function()
    loop.set_loop(prev)
  end)

  local function now() return l:now() end

  describe("define", function()
    it("makes a recognisable descriptor", function()
      assert.are.same({ __async_cache = true, ttl = 500 }, cache.define({ ttl = 500 }))
      assert.are.same({ __async_cache = true }, cache.define({}))
      assert.is_true(cache.is_policy(cache.define({ ttl = 1 })))
      assert.is_false(cache.is_policy({ ttl = 1 }))
      assert.is_false(cache.is_policy("x"))
    end)

    local bad = {
      { { ttl = -1 }, "cache.define: ttl must be a number of milliseconds >= 0, got -1" },
      { { ttl = "5" }, "cache.define: ttl must be a number of milliseconds >= 0, got 5" },
      { 5, "cache.define: expected an options table, got number" },
    }
    for _, case in ipairs(bad) do
      it("rejects " .. case[2], function()
        local ok, err = pcall(cache.define, case[1])
        assert.is_false(ok)
        assert.are.equal(case[2], E.message(err))
      end)
    end
  end)

  describe("TTL lookup", function()
    local policies = {
      product = cache.define({ ttl = 100 }),
      ["product:special"] = cache.define({ ttl = 1000 }),
      short = cache.define({ ttl = 10 }),
      zero = cache.define({ ttl = 0 }),
      forever = cache.define({}),
    }
    -- { name, key, set opts, ms after set, expect alive }
    local cases = {
      { "no policy: no expiry", "other:1", nil, 1e9, true },
      { "no colon, no policy", "plain", nil, 1e9, true },
      { "prefix policy, alive", "product:1", nil, 99, true },
      { "prefix policy, expired at ttl", "product:1", nil, 100, false },
      { "exact key beats prefix", "product:special", nil, 999, true },
      { "exact key expires", "product:special", nil, 1000, false },
      { "prefix is before the first colon", "product:special:x", nil, 100, false },
      { "exact key without colon", "short", nil, 10, false },
      { "explicit policy", "product:1", { cache = "short" }, 10, false },
      { "explicit policy overrides exact key", "product:special", { cache = "short" }, 10, false },
      { "explicit policy without expiry", "product:1", { cache = "forever" }, 1e9, true },
      { "ttl 0 is gone at once", "zero:1", nil, 0, false },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local c = cache.new({ policies = policies, now = now })
        c:set(case[2], "v", case[3])
        l:advance(case[4])
        assert.are.equal(case[5] and "v" or nil, c:get(case[2]))
        assert.are.equal(case[5], c:has(case[2]))
      end)
    end

    it("rejects an unknown explicit policy", function()
      local c = cache.new({ policies = policies, now = now })
      local ok, err = pcall(c.set, c, "a", 1, { cache = "nope" })
      assert.is_false(ok)
      assert.are.equal('cache: policy "nope" is not defined', E.message(err))
    end)

    it("registers policies later", function()
      local c = cache.new({ now = now })
      c:register("p", cache.define({ ttl = 5 }))
      assert.are.equal(5, c:ttl_for("p:1"))
      assert.are.same({ "p" }, c:policies())
      local ok, err = pcall(c.register, c, "q", { ttl = 5 })
      assert.is_false(ok)
      assert.are.equal('cache: policy "q" must be made by define_cache({ ttl = ms })', E.message(err))
    end)

    it("uses async.loop's clock by default", function()
      local c = cache.new({ policies = policies })
      c:set("product:1", "v")
      l:advance(99)
      assert.are.equal("v", c:get("product:1"))
      l:advance(1)
      assert.is_nil(c:get("product:1"))
    end)
  end)

  describe("entries", function()
    it("get, set, delete, nil values", function()
      local c = cache.new({ now = now })
      assert.is_nil(c:get("a"))
      assert.are.equal(1, c:set("a", 1))
      assert.are.equal(1, c:get("a"))
      c:set("n", nil)
      assert.is_true(c:has("n"))
      assert.is_nil(c:get("n"))
      c:delete("a")
      assert.is_nil(c:get("a"))
      assert.is_false(c:has("a"))
      c:set("f", false)
      assert.are.equal(false, c:get("f"))
    end)

    it("clear(prefix) and clear()", function()
      local c = cache.new({ now = now })
      for _, k in ipairs({ "product:1", "product:2", "productx", "user:1" }) do c:set(k, k) end
      c:clear("product:")
      assert.are.same({ productx = "productx", ["user:1"] = "user:1" }, c:snapshot())
      c:clear()
      assert.are.same({}, c:snapshot())
      c:set("a", 1)
      c:clear("")
      assert.are.same({}, c:snapshot())
    end)

    it("snapshot leaves out expired and nil entries", function()
      local c = cache.new({ now = now, policies = { s = cache.define({ ttl = 10 }) } })
      c:set("s:1", "short")
      c:set("keep", { 1 })
      c:set("none", nil)
      c:set("f", false)
      l:advance(10)
      assert.are.same({ keep = { 1 }, f = false }, c:snapshot())
      local keys = c:keys()
      table.sort(keys)
      assert.are.same({ "f", "keep", "none" }, keys)
    end)

    local bad = {
      { "get", function(c) c:get(1) end, "cache: key must be a string, got number" },
      { "set", function(c) c:set(nil, 1) end, "cache: key must be a string, got nil" },
      { "delete", function(c) c:delete({}) end, "cache: key must be a string, got table" },
      { "clear", function(c) c:clear(1) end, "cache: prefix must be a string or nil, got number" },
      { "get_or_set fn", function(c) c:get_or_set("k", 1) end, "cache:get_or_set: expected a function, got number" },
    }
    for _, case in ipairs(bad) do
      it("rejects a bad argument to " .. case[1], function()
        local c = cache.new({ now = now })
        local ok, err = pcall(case[2], c)
        assert.is_false(ok)
        assert.are.equal(case[3], E.message(err))
      end)
    end
  end)

  describe("memory backend", function()
    it("evicts the least recently used entry", function()
      local c = cache.new({ now = now, max_entries = 3 })
      c:set("a", 1); c:set("b", 2); c:set("c", 3)
      assert.are.equal(1, c:get("a"))   -- a is now the most recent
      c:set("d", 4)                      -- evicts b
      assert.are.same({ a = 1, c = 3, d = 4 }, c:snapshot())
      c:set("c", 30)                     -- update moves c to the front
      c:set("e", 5)                      -- evicts a
      assert.are.same({ c = 30, d = 4, e = 5 }, c:snapshot())
      assert.are.same({ "e", "c", "d" }, c:keys())
    end)

    it("keeps count right through delete and clear", function()
      local b = cache.memory({ max_entries = 2 })
      b:set("x:1", 1); b:set("x:2", 2); b:delete("x:1"); b:delete("nope")
      assert.are.equal(1, b.count)
      b:set("y", 3); b:set("z", 4)
      assert.are.same({ "z", "y" }, b:keys())
      b:clear("z")
      assert.are.same({ "y" }, b:keys())
      assert.are.equal(1, b.count)
      b:clear()
      assert.are.same({}, b:keys())
      assert.are.equal(0, b.count)
    end)

    it("defaults to 10,000 entries", function()
      local c = cache.new({ now = now })
      for i = 1, 10001 do c:set("k" .. i, i) end
      assert.is_nil(c:get("k1"))
      assert.are.equal(2, c:get("k2"))
      assert.are.equal(10000, #c:keys())
    end)

    it("rejects a bad max_entries", function()
      local ok, err = pcall(cache.memory, { max_entries = 0 })
      assert.is_false(ok)
      assert.are.equal("cache.memory: max_entries must be a number >= 1, got 0", E.message(err))
    end)

    it("takes another backend through the interface", function()
      local calls = {}
      local store = {}
      local backend = {
        get = function(_, k) calls[#calls + 1] = "get " .. k; local e = store[k]; if e then return e[1], e[2] end end,
        set = function(_, k, v, exp) calls[#calls + 1] = "set " .. k; store[k] = { v, exp } end,
        delete = function(_, k) calls[#calls + 1] = "delete " .. k; store[k] = nil end,
        clear = function(_, p) calls[#calls + 1] = "clear " .. tostring(p); store = {} end,
        keys = function() local ks = {}; for k in pairs(store) do ks[#ks + 1] = k end; return ks end,
      }
      local c = cache.new({ now = now, backend = backend, policies = { p = cache.define({ ttl = 5 }) } })
      c:set("p:1", "v")
      assert.are.same({ "v", 5 }, store["p:1"])
      c:set("n", nil)
      assert.are.equal(cache.NIL, store.n[1])
      assert.are.equal("v", c:get("p:1"))
      l:advance(5)
      assert.is_nil(c:get("p:1"))
      c:clear("x")
      assert.are.same({ "set p:1", "set n", "get p:1", "get p:1", "delete p:1", "clear x" }, calls)
    end)
  end)

  describe("get_or_set", function()
    it("fills once synchronously when fn does not yield", function()
      local c = cache.new({ now = now })
      local calls = 0
      local function fill(key) calls = calls + 1; return key .. "!" end
      assert.are.equal("k!", c:get_or_set("k", fill))
      assert.are.equal("k!", c:get_or_set("k", fill))
      assert.are.equal(1, calls)
    end)

    it("caches a nil result until it expires", function()
      local c = cache.new({ now = now, policies = { k = cache.define({ ttl = 10 }) } })
      local calls = 0
      local function fill() calls = calls + 1 end
      assert.is_nil(c:get_or_set("k", fill))
      assert.is_nil(c:get_or_set("k", fill))
      assert.are.equal(1, calls)
      l:advance(10)
      c:get_or_set("k", fill)
      assert.are.equal(2, calls)
    end)

    it("stores with the explicit policy", function()
      local c = cache.new({ now = now, policies = { s = cache.define({ ttl = 10 }) } })
      c:get_or_set("k", function() return 1 end, { cache = "s" })
      l:advance(10)
      assert.is_nil(c:get("k"))
      local ok, err = pcall(c.get_or_set, c, "j", function() error("ran") end, { cache = "nope" })
      assert.is_false(ok)
      assert.are.equal('cache: policy "nope" is not defined', E.message(err))
    end)

    it("propagates errors and stores nothing", function()
      local c = cache.new({ now = now })
      local ok, err = pcall(c.get_or_set, c, "k", function() error({ code = "boom" }) end)
      assert.is_false(ok)
      assert.are.same({ code = "boom" }, err)
      assert.is_false(c:has("k"))
      assert.is_false(c:filling("k"))
    end)

    it("rejects a fill that asks for its own key", function()
      local c = cache.new({ now = now })
      local ok, err = pcall(c.get_or_set, c, "k", function() return c:get_or_set("k", function() end) end)
      assert.is_false(ok)
      assert.are.equal('cache:get_or_set("k"): the fill of this key asked for the same key',
        E.message(err))
    end)

    -- Starts n coroutines calling get_or_set(key, fn); returns their results
    -- table (filled as they finish: { ok, value }).
    local function spawn(c, n, key, fn, opts)
      local results = {}
      for i = 1, n do
        local co = coroutine.create(function()
          results[i] = { pcall(c.get_or_set, c, key, fn, opts) }
        end)
        assert(coroutine.resume(co))
      end
      return results
    end

    local function slow(value, ms, counter)
      return function()
        counter.n = counter.n + 1
        loop.delay(ms)
        return value
      end
    end

    it("shares one fill between concurrent coroutines", function()
      local c = cache.new({ now = now })
      local counter = { n = 0 }
      local results = spawn(c, 5, "k", slow("v", 100, counter))
      assert.are.equal(1, counter.n)
      assert.are.same({}, results)
      assert.is_true(c:filling("k"))
      l:advance(99)
      assert.are.same({}, results)
      l:advance(1)
      for i = 1, 5 do assert.are.same({ true, "v" }, results[i]) end
      assert.are.equal("v", c:get("k"))
      assert.is_false(c:filling("k"))
      assert.are.equal(1, counter.n)
    end)

    it("keeps fills of different keys apart", function()
      local c = cache.new({ now = now })
      local counter = { n = 0 }
      local a = spawn(c, 2, "a", slow("A", 10, counter))
      local b = spawn(c, 2, "b", slow("B", 20, counter))
      assert.are.equal(2, counter.n)
      l:advance(10)
      assert.are.same({ { true, "A" }, { true, "A" } }, a)
      assert.are.same({}, b)
      l:advance(10)
      assert.are.same({ { true, "B" }, { true, "B" } }, b)
    end)

    it("gives the fill's error to every waiter and stores nothing", function()
      local c = cache.new({ now = now })
      local results = spawn(c, 3, "k", function()
        loop.delay(5)
        error("db down", 0)
      end)
      l:advance(5)
      for i = 1, 3 do assert.are.same({ false, "db down" }, results[i]) end
      assert.is_false(c:has("k"))
      assert.is_false(c:filling("k"))
    end)

    -- { name, what to do during the fill, expect the fill's result stored }
    local interrupt = {
      { "delete", function(c) c:delete("p:1") end, false, nil },
      { "clear(prefix)", function(c) c:clear("p:") end, false, nil },
      { "clear()", function(c) c:clear() end, false, nil },
      { "clear(other prefix)", function(c) c:clear("q:") end, true, "v" },
      { "delete(other key)", function(c) c:delete("p:2") end, true, "v" },
      { "set", function(c) c:set("p:1", "newer") end, false, "newer" },
    }
    for _, case in ipairs(interrupt) do
      it(case[1] .. " during a fill", function()
        local c = cache.new({ now = now })
        local counter = { n = 0 }
        local results = spawn(c, 3, "p:1", slow("v", 10, counter))
        case[2](c)
        l:advance(10)
        for i = 1, 3 do assert.are.same({ true, "v" }, results[i]) end
        assert.are.equal(case[3], c:get("p:1") == "v")
        assert.are.equal(case[4], c:get("p:1"))
      end)
    end

    it("starts a new fill after a delete during a fill", function()
      local c = cache.new({ now = now })
      local counter = { n = 0 }
      local first = spawn(c, 2, "k", slow("old", 10, counter))
      c:delete("k")
      local second = spawn(c, 2, "k", slow("new", 10, counter))
      assert.are.equal(2, counter.n)
      l:advance(10)
      assert.are.same({ { true, "old" }, { true, "old" } }, first)
      assert.are.same({ { true, "new" }, { true, "new" } }, second)
      assert.are.equal("new", c:get("k"))
    end)

    it("an aborted waiter stops waiting; the others get the result", function()
      local c = cache.new({ now = now })
      local counter = { n = 0 }
      local token = abort.new()
      local results = spawn(c, 1, "k", slow("v", 10, counter))
      local aborted = spawn(c, 1, "k", slow("x", 10, counter), { abort = token })
      local others = spawn(c, 1, "k", slow("x", 10, counter))
      token:cancel("gone")
      l:advance(10)
      assert.are.same({ { true, "v" } }, results)
      assert.are.same({ { true, "v" } }, others)
      assert.are.same({}, aborted)  -- never resumed again
      assert.are.equal(1, counter.n)
    end)
  end)
end)
