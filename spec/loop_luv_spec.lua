-- async.loop on real libuv timers. Tagged #loop: runs under build/asyncrt
-- (busted --lua=build/asyncrt --tags=loop), where the loop is the
-- interpreter's own and uv.run() inside a test drives it.
local uv = require("luv")
local E = require("support.errors")
local loop = require("async.loop")
local abort_mod = require("async.kernel.abort")
local default_on_error = loop.on_error

-- asyncrt's own handles (signal watchers) are unref'd: count the others
local function is_internal(h)
  local rt = package.loaded.asyncrt
  return rt ~= nil and rt.is_internal(h)
end

local function active_handles()
  local n, kinds = 0, {}
  uv.walk(function(h)
    if h:is_active() and not h:is_closing() and not is_internal(h) then
      n = n + 1
      kinds[#kinds + 1] = tostring(h)
    end
  end)
  return n, kinds
end

local function spawn(fn)
  local co = coroutine.create(fn)
  assert(coroutine.resume(co))
  return co
end

local function run() uv.run("default") end

describe("async.loop luv loop #loop", function()
  local l
  before_each(function()
    l = loop.set_loop(loop.luv_loop())
    loop.set_resume_hook(nil)
  end)
  after_each(function()
    loop.on_error = default_on_error
    assert.equal(0, (active_handles()))
  end)

  it("runs under asyncrt, whose loop luv shares", function()
    assert.is_table(package.loaded.asyncrt)
    assert.equal(package.loaded.luv, package.loaded.uv)
  end)

  it("is the default loop when luv is loadable", function()
    package.loaded["async.loop"] = nil
    local fresh = require("async.loop")
    package.loaded["async.loop"] = loop
    assert.is_table(fresh.get_loop().uv)
  end)

  it("now() is monotonic milliseconds and a timer fires after ms", function()
    local t0, fired_at = l:now(), nil
    l:timer(30, function() fired_at = l:now() end)
    assert.equal(1, (active_handles()))
    run()
    assert.is_true(fired_at - t0 >= 30, "fired after " .. (fired_at - t0) .. " ms")
  end)

  it("a closed timer never fires and its handle is closed", function()
    local fired = false
    local t = l:timer(10, function() fired = true end)
    t:close()
    t:close()
    run()
    assert.is_false(fired)
  end)

  it("delay sleeps on real time; concurrent delays wake in due order", function()
    local order, t0 = {}, l:now()
    for _, ms in ipairs({ 40, 10, 25 }) do
      spawn(function() loop.delay(ms); order[#order + 1] = ms end)
    end
    assert.equal(3, (active_handles()))
    run()
    assert.same({ 10, 25, 40 }, order)
    assert.is_true(l:now() - t0 >= 40)
  end)

  it("an aborted delay closes its timer at once and is never resumed", function()
    local a = abort_mod.new()
    local after = false
    local co = spawn(function() loop.delay(60000, a); after = true end)
    assert.equal(1, (active_handles()))
    a:cancel("dependency changed")
    assert.equal(0, (active_handles()))
    local t0 = l:now()
    run()                                   -- returns at once: nothing left
    assert.is_true(l:now() - t0 < 1000)
    assert.is_false(after)
    assert.equal("suspended", coroutine.status(co))
  end)

  it("await resumes with the values of a real timer callback; later resumes do nothing", function()
    local got
    spawn(function()
      got = { loop.await(function(resume)
        l:timer(5, function() resume("ok", 2); resume("again") end)
      end) }
    end)
    run()
    assert.same({ "ok", 2 }, got)
  end)

  it("an abort during await: the I/O is closed by on_abort, the coroutine is not resumed", function()
    local a, after = abort_mod.new(), false
    spawn(function()
      loop.await(function(resume)
        local t = l:timer(20, function() resume() end)
        a:on_abort(function() t:close() end)
      end, a)
      after = true
    end)
    l:timer(5, function() a:cancel() end)
    run()
    assert.is_false(after)
  end)

  it("an error inside a delayed coroutine reaches loop.on_error", function()
    local got
    loop.on_error = function(err) got = err end
    spawn(function() loop.delay(1); error("boom", 0) end)
    run()
    assert.equal("boom", got)
  end)

  for _, mode in ipairs({ "idle", "timer" }) do
    it("defer (" .. mode .. "): 1,000 defers in one tick run together in the next tick", function()
      local dl = loop.luv_loop(uv, { defer = mode })
      local tick, ticks_seen, ran = 0, {}, 0
      local check = uv.new_check()
      check:start(function() tick = tick + 1 end)
      l:timer(1, function()
        for _ = 1, 1000 do
          dl:defer(function() ran = ran + 1; ticks_seen[tick] = true end)
        end
        assert.equal(1000, dl:pending())
      end)
      l:timer(30, function() check:close() end)
      run()
      assert.equal(1000, ran)
      local n = 0
      for _ in pairs(ticks_seen) do n = n + 1 end
      assert.equal(1, n)
      assert.equal(0, dl:pending())
    end)
  end

  it("a defer made while deferred functions run waits for the next tick", function()
    local tick, seen = 0, {}
    local check = uv.new_check()
    check:start(function() tick = tick + 1 end)
    l:defer(function()
      seen[1] = tick
      l:defer(function() seen[2] = tick; check:close() end)
    end)
    run()
    assert.is_true(seen[2] > seen[1])
  end)

  it("luv_loop rejects an unknown defer mechanism", function()
    E.has_error(function() loop.luv_loop(uv, { defer = "check" }) end,
      'luv_loop: opts.defer must be "idle" or "timer", got check')
  end)
end)
