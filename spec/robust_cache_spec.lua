-- Robustness: a single-flight fill never outlives its filler (lua-api.md
-- "Caches", kernel.md "Robustness rules": cancelling by never resuming).
-- When the run filling a key is aborted, its coroutine is never resumed:
-- the fill is released through abort:on_abort and no waiter stays blocked.
local Async = require("async")
local cache = require("async.app.cache")
local loop = require("async.loop")
local abort_mod = require("async.kernel.abort")

describe("cache:get_or_set releases the fill of an aborted filler", function()
  local l, prev
  before_each(function()
    prev = loop.get_loop()
    l = loop.set_loop(loop.manual_loop())
  end)
  after_each(function() loop.set_loop(prev) end)

  local function now() return l:now() end

  -- a coroutine calling c:get_or_set(key, fn, opts); its { ok, value } lands in out
  local function spawn(c, key, fn, opts)
    local out = {}
    local co = coroutine.create(function() out[1] = { pcall(c.get_or_set, c, key, fn, opts) } end)
    assert(coroutine.resume(co))
    return out
  end

  local function slow(value, ms, counter)
    return function()
      counter.n = counter.n + 1
      loop.delay(ms)
      return value
    end
  end

  it("an async run aborted while filling: a waiter fills again and gets its value", function()
    local c = cache.new({ now = now })
    local counter = { n = 0 }
    local s = Async.create_scheduler({ strategy = "sync" })
    local a = Async.async_signal(function()
      return c:get_or_set("k", slow("from the run", 100, counter))
    end, { scheduler = s })
    assert.equal(1, counter.n)
    assert.is_true(c:filling("k"))
    local waiter = spawn(c, "k", slow("from the waiter", 10, counter))
    a:cancel()                 -- the run's coroutine is never resumed again
    assert.is_false(c:filling("k"))
    l:advance(0)               -- the waiter is woken on the next tick and fills
    assert.equal(2, counter.n)
    l:advance(10)
    assert.same({ { true, "from the waiter" } }, waiter)
    assert.equal("from the waiter", c:get("k"))
    l:advance(100)             -- the aborted run's timer was closed: nothing more happens
    assert.equal("from the waiter", c:get("k"))
    assert.equal(2, counter.n)
  end)

  it("an async run aborted while filling: the next caller fills at once instead of waiting forever", function()
    local c = cache.new({ now = now })
    local counter = { n = 0 }
    local s = Async.create_scheduler({ strategy = "sync" })
    local a = Async.async_signal(function()
      return c:get_or_set("k", slow("never", 100, counter))
    end, { scheduler = s })
    a:dispose()
    local later = spawn(c, "k", slow("later", 5, counter))
    assert.equal(2, counter.n)
    l:advance(5)
    assert.same({ { true, "later" } }, later)
  end)

  it("many waiters: one fills again, the others share its fill", function()
    local c = cache.new({ now = now })
    local counter = { n = 0 }
    local token = abort_mod.new()
    spawn(c, "k", slow("first", 100, counter), { abort = token })
    local waiters = {}
    for i = 1, 4 do waiters[i] = spawn(c, "k", slow("second", 10, counter)) end
    token:cancel("client gone")
    l:advance(0)
    assert.equal(2, counter.n)
    l:advance(10)
    for i = 1, 4 do assert.same({ { true, "second" } }, waiters[i]) end
    assert.is_false(c:filling("k"))
  end)

  it("a server function's fill is released through self.abort", function()
    local app = Async.define_app({ server = { get = function(self)
      return self.cache:get_or_set("k", function() loop.delay(100); return "server" end)
    end } })
    local rt = Async.create_app(app)
    local token = abort_mod.new()
    local co = coroutine.create(function() rt:call("get", {}, { abort = token }) end)
    assert(coroutine.resume(co))
    assert.is_true(rt.cache.server:filling("k"))
    token:cancel("client gone")
    assert.is_false(rt.cache.server:filling("k"))
    local env
    co = coroutine.create(function() env = rt:call("get", {}) end)
    assert(coroutine.resume(co))
    l:advance(100)
    assert.equal("server", env.value)
  end)

  it("a server function called without a token is released when its runtime is destroyed", function()
    local app = Async.define_app({ server = { get = function(self)
      return self.cache:get_or_set("k", function() loop.delay(100); return "server" end)
    end } })
    local rt = Async.create_app(app)
    local co = coroutine.create(function() rt:call("get", {}) end)
    assert(coroutine.resume(co))
    local server_cache = rt.cache.server
    assert.is_true(server_cache:filling("k"))
    rt:destroy()
    assert.is_false(server_cache:filling("k"))
  end)

  it("a fill function that raises releases the entry and its waiters get the error", function()
    local c = cache.new({ now = now })
    local filler = spawn(c, "k", function() loop.delay(5); error("db down", 0) end)
    local waiter = spawn(c, "k", function() return "unused" end)
    l:advance(5)
    assert.same({ { false, "db down" } }, filler)
    assert.same({ { false, "db down" } }, waiter)
    assert.is_false(c:filling("k"))
    assert.equal("again", c:get_or_set("k", function() return "again" end))
  end)

  it("an aborted waiter is simply dropped; the filler's result still reaches the others", function()
    local c = cache.new({ now = now })
    local counter = { n = 0 }
    local mine = abort_mod.new()
    local filler = spawn(c, "k", slow("v", 10, counter))
    local gone = spawn(c, "k", slow("x", 10, counter), { abort = mine })
    local other = spawn(c, "k", slow("x", 10, counter))
    mine:cancel()
    l:advance(10)
    assert.same({ { true, "v" } }, filler)
    assert.same({ { true, "v" } }, other)
    assert.same({}, gone)
    assert.equal(1, counter.n)
  end)

  it("enter_abort gives a coroutine's calls a token; leave_abort restores the previous one", function()
    local c = cache.new({ now = now })
    local token = abort_mod.new()
    local counter = { n = 0 }
    local co = coroutine.create(function()
      local before = c:enter_abort(coroutine.running(), token)
      c:get_or_set("k", slow("v", 50, counter))
      c:leave_abort(coroutine.running(), before)
    end)
    assert(coroutine.resume(co))
    assert.is_true(c:filling("k"))
    token:cancel()
    assert.is_false(c:filling("k"))
  end)
end)
