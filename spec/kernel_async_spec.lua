-- kernel.md "Async signals". Timers run on a manual loop (time moves only
-- through loop:advance); I/O is simulated with Async.await and resume
-- functions the test calls by hand.
local Async = require("async")
local E = require("support.errors")
local loop_mod = require("async.loop")

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

local function manual() return Async.create_scheduler({ strategy = "manual" }) end

describe("Async: state before the first run", function()
  it("is idle with version 0 until the first run starts; the run is queued in the async phase", function()
    local s = manual()
    local order = {}
    s:enqueue("post", function() order[#order + 1] = "post" end)
    local a = Async.async_signal(function()
      order[#order + 1] = "run"
      return 1
    end, { scheduler = s, initial = "init" })
    s:enqueue("effect", function() order[#order + 1] = "effect" end)
    assert.equal("idle", a:status())
    assert.equal(0, a:version())
    assert.equal("init", a())
    assert.is_false(a:loading())
    assert.same({ value = "init", status = "idle", version = 0, loading = false }, a:state())
    s:flush()
    assert.same({ "effect", "run", "post" }, order)
    assert.equal("ready", a:status())
    assert.equal(1, a:version())
    assert.equal(1, a())
  end)

  it("with the sync default, creating outside a batch starts the run at once", function()
    local a = Async.async_signal(function(ctx) Async.delay(10, ctx.abort); return "v" end)
    assert.equal("loading", a:status())
    assert.is_true(a:loading())
    assert.equal(1, a:version())
    loop:advance(10)
    assert.equal("ready", a:status())
    assert.equal("v", a())
  end)

  it("inside a batch the first run starts when the batch ends", function()
    local a
    Async.batch(function()
      a = Async.async_signal(function() return 1 end)
      assert.equal("idle", a:status())
      assert.equal(0, a:version())
    end)
    assert.equal("ready", a:status())
  end)

  it("ctx carries version, abort, scheduler and refresh", function()
    local s = manual()
    local got
    local a = Async.async_signal(function(ctx) got = ctx; return 1 end, { scheduler = s })
    s:flush()
    assert.equal(1, got.version)
    assert.is_false(got.abort.aborted)
    assert.equal(s, got.scheduler)
    assert.equal("function", type(got.refresh))
    got:refresh()
    s:flush()
    assert.equal(2, a:version())
  end)
end)

describe("Async: frozen dependencies", function()
  it("reads before the first yield are dependencies; reads after it are not", function()
    local dep, late = Async.signal(1), Async.signal(1)
    local runs = 0
    local a = Async.async_signal(function(ctx)
      runs = runs + 1
      local v = dep()
      Async.delay(10, ctx.abort)
      return v + late()
    end)
    loop:advance(10)
    assert.equal(2, a())
    late:set(5)
    assert.equal(1, runs)
    assert.equal("ready", a:status())
    dep:set(2)
    assert.equal(2, runs)
    loop:advance(10)
    assert.equal(7, a())
  end)

  it("a run that never yields tracks everything it read", function()
    local dep = Async.signal(1)
    local a = Async.async_signal(function() return dep() * 2 end)
    assert.equal(2, a())
    dep:set(3)
    assert.equal(6, a())
    assert.equal(2, a:version())
  end)

  it("a computed dependency that keeps its value does not restart the run", function()
    local dep = Async.signal(1)
    local parity = Async.computed(function() return dep() % 2 end)
    local a = Async.async_signal(function(ctx) local p = parity(); Async.delay(5, ctx.abort); return p end)
    dep:set(3)
    assert.equal(1, a:version())
    loop:advance(5)
    assert.equal(1, a())
  end)
end)

describe("Async: a dependency change aborts the run at once", function()
  it("abort fires, on_abort runs, the coroutine is never resumed, a new version runs", function()
    local dep = Async.signal(1)
    local resumed_after_yield = {}
    local abort_reasons = {}
    local tokens = {}
    local a = Async.async_signal(function(ctx)
      local v = dep()
      tokens[v] = ctx.abort
      ctx.abort:on_abort(function(reason) abort_reasons[#abort_reasons + 1] = { v, reason } end)
      Async.delay(100, ctx.abort)
      resumed_after_yield[#resumed_after_yield + 1] = v
      return v
    end)
    loop:advance(50)
    dep:set(2)
    -- at once: before any time passes
    assert.is_true(tokens[1].aborted)
    assert.equal(1, #abort_reasons)
    assert.equal(1, abort_reasons[1][1])
    assert.equal(2, a:version())
    assert.equal("loading", a:status())
    assert.is_false(tokens[2].aborted)
    loop:advance(1000)
    assert.same({ 2 }, resumed_after_yield)
    assert.equal(2, a())
    assert.equal("ready", a:status())
  end)

  it("an aborted run's coroutine refuses a direct Async.resume", function()
    local dep = Async.signal(1)
    local cos, after = {}, 0
    Async.async_signal(function()
      cos[#cos + 1] = coroutine.running()
      dep()
      coroutine.yield()
      after = after + 1
    end)
    dep:set(2)
    local ok, err = Async.resume(cos[1])
    assert.is_false(ok)
    assert.matches("aborted", err, 1, true)
    assert.equal(0, after)
  end)
end)

describe("Async: races", function()
  local function fetcher()
    local dep, side = Async.signal(1), Async.signal("none")
    local resolvers = {}
    local a = Async.async_signal(function(ctx)
      local v = dep()
      local r = Async.await(function(resolve) resolvers[v] = resolve end, ctx.abort)
      side:set("from " .. v)
      return r
    end)
    return a, dep, side, resolvers
  end

  it("run v1 resolving after v2 commits nothing: not its value, status or writes", function()
    local a, dep, side, resolvers = fetcher()
    dep:set(2)
    resolvers[2]("two")
    assert.equal("two", a())
    assert.equal("ready", a:status())
    assert.equal("from 2", side:peek())
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = { a(), a:status(), a:version(), side() } end)
    resolvers[1]("one")
    assert.equal("two", a())
    assert.equal(2, a:version())
    assert.equal("from 2", side:peek())
    assert.equal(1, #log)
    dispose()
  end)

  it("run v1 resolving before v2 (but after v2 started) commits nothing either", function()
    local a, dep, side, resolvers = fetcher()
    dep:set(2)
    resolvers[1]("one")
    assert.is_nil(a())
    assert.equal("loading", a:status())
    assert.equal("none", side:peek())
    resolvers[2]("two")
    assert.equal("two", a())
    assert.equal("from 2", side:peek())
  end)

  it("a second resume of the current run does nothing", function()
    local a, _, _, resolvers = fetcher()
    resolvers[1]("first")
    resolvers[1]("second")
    assert.equal("first", a())
    assert.equal(1, a:version())
  end)
end)

describe("Async: commit is a transaction with the run's writes", function()
  it("an effect sees the value and the writes together, once", function()
    local x, y = Async.signal(0), Async.signal(0)
    local resolve
    local a = Async.async_signal(function(ctx)
      x:set(1)                                   -- before the first yield: buffered too
      Async.await(function(r) resolve = r end, ctx.abort)
      y:set(2)
      return "done"
    end)
    assert.equal(0, x:peek())
    local log = {}
    local dispose = Async.effect(function()
      log[#log + 1] = table.concat({ tostring(a()), a:status(), x(), y() }, ",")
    end)
    assert.same({ "nil,loading,0,0" }, log)
    resolve()
    assert.same({ "nil,loading,0,0", "done,ready,1,2" }, log)
    dispose()
  end)

  it("reads inside the run do not see its own buffered writes", function()
    local x = Async.signal("old")
    local seen
    Async.async_signal(function() x:set("new"); seen = x:peek(); return 1 end)
    assert.equal("old", seen)
    assert.equal("new", x:peek())
  end)

  it("an aborted run's writes are discarded", function()
    local dep, x = Async.signal(1), Async.signal(0)
    Async.async_signal(function(ctx)
      local v = dep()
      x:set(v * 100)
      Async.delay(10, ctx.abort)
      return v
    end)
    dep:set(2)
    assert.equal(0, x:peek())
    loop:advance(10)
    assert.equal(200, x:peek())
  end)
end)

describe("Async: errors", function()
  it("status error keeps the previous value; a string error becomes {name='Error', message=s}", function()
    local dep, x = Async.signal(1), Async.signal(0)
    local a = Async.async_signal(function(ctx)
      local v = dep()
      Async.delay(1, ctx.abort)
      x:set(v)
      if v == 2 then error("boom", 0) end
      return v
    end)
    loop:advance(1)
    assert.equal(1, a())
    assert.equal(1, x:peek())
    dep:set(2)
    loop:advance(1)
    assert.equal("error", a:status())
    assert.equal(1, a())
    assert.same({ name = "Error", message = "boom" }, a:error())
    assert.equal(1, x:peek())            -- the failed run's writes are discarded
    dep:set(3)
    loop:advance(1)
    assert.equal("ready", a:status())
    assert.is_nil(a:error())
    assert.equal(3, a())
  end)

  local cases = {
    { "table with name, message, code", { name = "NotFound", message = "no product", code = "E404" },
      { name = "NotFound", message = "no product", code = "E404" } },
    { "numeric code", { message = "teapot", code = 418 }, { name = "Error", message = "teapot", code = 418 } },
    { "code that is neither string nor number is dropped", { name = "X", message = "m", code = {} },
      { name = "X", message = "m" } },
    { "string", "plain", { name = "Error", message = "plain" } },
  }
  for _, c in ipairs(cases) do
    it("error value: " .. c[1], function()
      local a = Async.async_signal(function() error(c[2], 0) end, { initial = "keep" })
      assert.equal("error", a:status())
      assert.same(c[3], a:error())
      assert.equal("keep", a())
    end)
  end

  it("an error raised at the first resume (no yield) is caught as state too", function()
    local a = Async.async_signal(function() error({ name = "Bad", message = "at once" }) end)
    assert.equal("error", a:status())
    assert.equal("Bad", a:error().name)
  end)
end)

describe("Async: refresh / cancel / set", function()
  it("refresh() aborts the current run and starts a new version", function()
    local tokens = {}
    local a = Async.async_signal(function(ctx)
      tokens[#tokens + 1] = ctx.abort
      Async.delay(10, ctx.abort)
      return #tokens
    end)
    a:refresh()
    assert.is_true(tokens[1].aborted)
    assert.equal(2, a:version())
    loop:advance(10)
    assert.equal(2, a())
  end)

  it("cancel() aborts; status back to ready when a value exists, idle when none", function()
    local a = Async.async_signal(function(ctx) Async.delay(10, ctx.abort); return "v" end)
    local tok
    a:cancel()
    assert.equal("idle", a:status())
    loop:advance(10)
    assert.equal("idle", a:status())
    assert.is_nil(a())
    a:refresh()
    loop:advance(10)
    assert.equal("v", a())
    local b = Async.async_signal(function(ctx) tok = ctx.abort; Async.delay(10, ctx.abort); return "w" end,
      { initial = nil })
    loop:advance(10)
    b:refresh()
    b:cancel()
    assert.is_true(tok.aborted)
    assert.equal("ready", b:status())
    assert.equal("w", b())
  end)

  it("set(v) sets the value with status ready and aborts any run", function()
    local tok
    local a = Async.async_signal(function(ctx) tok = ctx.abort; Async.delay(10, ctx.abort); return "late" end)
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = tostring(a()) .. "/" .. a:status() end)
    a:set("manual")
    assert.is_true(tok.aborted)
    assert.equal("manual", a())
    assert.equal("ready", a:status())
    loop:advance(10)
    assert.equal("manual", a())
    assert.same({ "nil/loading", "manual/ready" }, log)
    dispose()
  end)

  it("effects and computeds read async state reactively", function()
    local a = Async.async_signal(function(ctx) Async.delay(5, ctx.abort); return 21 end)
    local doubled = Async.computed(function() return (a() or 0) * 2 end)
    local statuses = {}
    local dispose = Async.effect(function() statuses[#statuses + 1] = a:status() end)
    assert.equal(0, doubled())
    loop:advance(5)
    assert.equal(42, doubled())
    assert.same({ "loading", "ready" }, statuses)
    dispose()
  end)
end)

describe("Async: snapshot / restore", function()
  it("snapshot has value, loading, error, status, version", function()
    local a = Async.async_signal(function() return 5 end)
    assert.same({ value = 5, loading = false, status = "ready", version = 1 }, a:snapshot())
  end)

  it("restoring a ready snapshot needs no run", function()
    local runs = 0
    local a = Async.async_signal(function() runs = runs + 1; return "fresh" end,
      { snapshot = { value = "restored", status = "ready", version = 3 } })
    assert.equal(0, runs)
    assert.equal("restored", a())
    assert.equal("ready", a:status())
    assert.equal(3, a:version())
    a:refresh()
    assert.equal(1, runs)
    assert.equal("fresh", a())
    assert.equal(4, a:version())
  end)

  it("restoring a loading snapshot keeps the value and queues a run", function()
    local s = manual()
    local a = Async.async_signal(function() return "fresh" end,
      { scheduler = s, snapshot = { value = "stale", loading = true, version = 1 } })
    assert.equal("stale", a())
    s:flush()
    assert.equal("fresh", a())
    assert.equal("ready", a:status())
  end)

  it("restoring an error snapshot keeps the error, no run", function()
    local runs = 0
    local a = Async.async_signal(function() runs = runs + 1 end,
      { snapshot = { status = "error", error = { name = "E", message = "m", code = 1 }, version = 2 } })
    assert.equal(0, runs)
    assert.equal("error", a:status())
    assert.same({ name = "E", message = "m", code = 1 }, a:error())
  end)

  it("restore() over a running signal aborts the run", function()
    local tok
    local a = Async.async_signal(function(ctx) tok = ctx.abort; Async.delay(5, ctx.abort); return "run" end)
    a:restore({ value = "snap", status = "ready", version = 7 })
    assert.is_true(tok.aborted)
    loop:advance(5)
    assert.equal("snap", a())
    assert.equal(7, a:version())
  end)
end)

describe("Async: bad use", function()
  it("rejects a non-function and bad options", function()
    E.has_error(function() Async.async_signal(5) end, "async_signal expects a function, got number")
    E.has_error(function() Async.async_signal(function() end, 1) end,
      "async_signal options must be a table, got number")
    E.has_error(function() Async.async_signal(function() end, { snapshot = { status = "weird" } }) end,
      "async snapshot has an unknown status 'weird'")
  end)
end)
