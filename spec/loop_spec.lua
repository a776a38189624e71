-- async.loop on the manual loop: timers, defer, delay/await/abort, resume
-- hook, shutdown hooks. Pure LuaJIT (the luv loop: loop_luv_spec.lua, #loop).
local loop = require("async.loop")
local E = require("support.errors")
local abort_mod = require("async.kernel.abort")
local default_on_error = loop.on_error

local function spawn(fn, ...)
  local co = coroutine.create(fn)
  local ok, err = coroutine.resume(co, ...)
  assert(ok, err)
  return co
end

describe("async.loop manual loop", function()
  local l
  before_each(function() l = loop.manual_loop() end)

  it("starts at 0 (or the given start) and moves only through advance", function()
    assert.equal(0, l:now())
    l:advance(250)
    assert.equal(250, l:now())
    assert.equal(1000, loop.manual_loop(1000):now())
  end)

  it("runs timers falling due in due order, then creation order, each at its due time", function()
    local seen = {}
    l:timer(30, function() seen[#seen + 1] = "c@" .. l:now() end)
    l:timer(10, function() seen[#seen + 1] = "a@" .. l:now() end)
    l:timer(10, function() seen[#seen + 1] = "b@" .. l:now() end)
    l:timer(31, function() seen[#seen + 1] = "late" end)
    l:advance(30)
    assert.same({ "a@10", "b@10", "c@30" }, seen)
    assert.equal(30, l:now())
    assert.equal(1, l:pending())
    l:advance(1)
    assert.same({ "a@10", "b@10", "c@30", "late" }, seen)
    assert.equal(0, l:pending())
  end)

  it("runs timers created by a timer when they fall due within the same advance", function()
    local seen = {}
    l:timer(5, function()
      l:timer(0, function() seen[#seen + 1] = "zero@" .. l:now() end)
      l:timer(10, function() seen[#seen + 1] = "ten@" .. l:now() end)
    end)
    l:advance(20)
    assert.same({ "zero@5", "ten@15" }, seen)
  end)

  it("close() stops a timer, twice is fine, and pending() drops", function()
    local fired = false
    local t = l:timer(10, function() fired = true end)
    assert.equal(1, l:pending())
    t:close()
    t:close()
    assert.equal(0, l:pending())
    l:advance(100)
    assert.is_false(fired)
  end)

  it("runs deferred functions on advance(0) and run_pending(), later defers in a later round", function()
    local seen = {}
    l:defer(function()
      seen[#seen + 1] = 1
      l:defer(function() seen[#seen + 1] = 3 end)
    end)
    l:defer(function() seen[#seen + 1] = 2 end)
    assert.equal(2, l:pending())
    l:advance(0)
    assert.same({ 1, 2, 3 }, seen)
    l:defer(function() seen[#seen + 1] = 4 end)
    assert.equal(1, l:run_pending())
    assert.same({ 1, 2, 3, 4 }, seen)
    assert.equal(0, l:pending())
  end)

  it("runs what a timer deferred right after that timer, before the next timer", function()
    local seen = {}
    l:timer(1, function() l:defer(function() seen[#seen + 1] = "deferred" end); seen[#seen + 1] = "t1" end)
    l:timer(2, function() seen[#seen + 1] = "t2" end)
    l:advance(2)
    assert.same({ "t1", "deferred", "t2" }, seen)
  end)

  it("stops a defer chain that never ends", function()
    local function again() l:defer(again) end
    l:defer(again)
    E.has_error(function() l:run_pending() end,
      "manual loop: deferred functions kept deferring for 10000 rounds")
  end)

  it("rejects bad arguments with clear messages", function()
    E.has_error(function() l:timer(-1, function() end) end, "timer: ms must be a number >= 0, got -1")
    E.has_error(function() l:timer(1) end, "timer: expected a function, got nil")
    assert.has_error(function() l:advance(0 / 0) end)
    E.has_error(function() l:defer("x") end, "defer: expected a function, got string")
  end)

  it("a timer error propagates out of advance and leaves the other timers queued", function()
    local ran = false
    l:timer(1, function() error("tick failed", 0) end)
    l:timer(2, function() ran = true end)
    assert.has_error(function() l:advance(5) end, "tick failed")
    assert.equal(1, l:pending())
    l:advance(5)
    assert.is_true(ran)
  end)
end)

describe("async.loop active loop", function()
  after_each(function() loop.set_loop(loop.manual_loop()) end)

  it("set_loop makes a loop active and loop.now reads its clock", function()
    local l = loop.manual_loop(42)
    assert.equal(l, loop.set_loop(l))
    assert.equal(l, loop.get_loop())
    assert.equal(42, loop.now())
  end)

  it("set_loop rejects what is not a loop", function()
    assert.has_error(function() loop.set_loop({}) end)
    assert.has_error(function() loop.set_loop(nil) end)
  end)

  it("ngx_loop refuses to start without ngx", function()
    E.has_error(function() loop.ngx_loop() end, "ngx_loop: no ngx global (not running under OpenResty)")
  end)

  it("ngx_loop keeps its timers in one heap driven by few nginx timers, and defers through one", function()
    local pending, now = {}, 1500
    local fake = {
      now = function() return now / 1000 end, update_time = function() end,
      timer = { at = function(s, fn, ...) pending[#pending + 1] = { s = s, fn = fn, args = { ... } }; return true end },
    }
    local function fire(i, premature) local p = pending[i]; p.fn(premature or false, unpack(p.args)) end
    local l = loop.ngx_loop(fake)
    assert.equal(1500, l:now())
    local fired = {}
    local t = l:timer(250, function() fired[#fired + 1] = "a" end)
    assert.equal(1, #pending)
    assert.equal(0.25, pending[1].s)
    l:timer(300, function() fired[#fired + 1] = "b" end)   -- later: no new nginx timer
    l:timer(400, function() fired[#fired + 1] = "c" end)
    assert.equal(1, #pending)
    l:timer(100, function() fired[#fired + 1] = "d" end)   -- earlier: one more
    assert.equal(2, #pending)
    assert.equal(0.1, pending[2].s)
    t:close()
    now = 1600
    fire(2)
    assert.same({ "d" }, fired)
    now = 1760
    fire(1)                                                -- "a" was closed
    assert.same({ "d" }, fired)
    now = 1810
    assert.equal(3, #pending)                             -- re-armed for "b" (due 1800)
    fire(3)
    assert.same({ "d", "b" }, fired)
    fire(4, true)                                          -- premature (worker exiting): nothing runs
    assert.same({ "d", "b" }, fired)
    local n = 0
    for _ = 1, 100 do l:defer(function() n = n + 1 end) end
    assert.equal(5, #pending)                              -- one nginx timer for 100 defers
    fire(5)
    assert.equal(100, n)
  end)
end)

describe("async.loop delay and await (manual loop)", function()
  local l
  before_each(function()
    l = loop.set_loop(loop.manual_loop())
    loop.set_resume_hook(nil)
  end)
  after_each(function()
    loop.set_resume_hook(nil)
    loop.on_error = default_on_error
  end)

  it("delay suspends until the loop reaches the due time", function()
    local woke
    spawn(function() loop.delay(100); woke = l:now() end)
    l:advance(99)
    assert.is_nil(woke)
    l:advance(1)
    assert.equal(100, woke)
    assert.equal(0, l:pending())
  end)

  it("delay and await refuse to run outside a coroutine", function()
    E.has_error(function() loop.delay(1) end, "delay: must be called inside a coroutine")
    E.has_error(function() loop.await(function() end) end, "await: must be called inside a coroutine")
  end)

  it("delay validates ms and the token", function()
    local errs = {}
    spawn(function()
      errs[1] = select(2, pcall(loop.delay, -5))
      errs[2] = select(2, pcall(loop.delay, 5, "token"))
    end)
    assert.matches("delay: ms must be a number >= 0, got %-5", errs[1])
    assert.matches("delay: abort must be an abort token, got token", errs[2])
  end)

  it("delay raises at once with an already aborted token", function()
    local a = abort_mod.new()
    a:cancel("stale")
    local err, line
    spawn(function()
      line = debug.getinfo(1, "l").currentline; local ok, e = pcall(loop.delay, 10, a)
      assert.is_false(ok)
      err = e
    end)
    assert.is_true(loop.is_abort_error(err))
    assert.equal("aborted: stale", err.message)
    -- the library's error type: it names the caller's line (lua-api.md "Errors";
    -- this used to assert the bare message)
    assert.equal("spec/loop_spec.lua:" .. line .. ": aborted: stale", tostring(err))
    assert.equal(0, l:pending())
  end)

  it("an abort during delay closes the timer and never resumes the coroutine", function()
    local a = abort_mod.new()
    local after = false
    local co = spawn(function() loop.delay(50, a); after = true end)
    assert.equal(1, l:pending())
    a:cancel("dependency changed")
    assert.equal(0, l:pending())
    l:advance(1000)
    assert.is_false(after)
    assert.equal("suspended", coroutine.status(co))
  end)

  it("a stray resume after an abort raises the abort error instead of continuing", function()
    local a = abort_mod.new()
    local co = coroutine.create(function() loop.delay(50, a); return "continued" end)
    assert(coroutine.resume(co))
    a:cancel("gone")
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.equal("aborted: gone", err.message)
  end)

  it("a completed delay unregisters from the token", function()
    local a = abort_mod.new()
    spawn(function() loop.delay(5, a); loop.delay(5, a) end)
    l:advance(10)
    -- unregistered: the slot is empty (a hole, false, since abort.lua keeps
    -- holes while it cancels, or compacted away)
    assert.is_falsy(a._cbs and a._cbs[1])
  end)

  it("a stray resume does not end a delay early", function()
    local done = false
    local co = spawn(function() loop.delay(10); done = true end)
    assert(coroutine.resume(co))
    assert.is_false(done)
    l:advance(10)
    assert.is_true(done)
  end)

  it("await returns the arguments of a resume made later", function()
    local resume, got
    spawn(function() got = { loop.await(function(r) resume = r end) } end)
    assert.is_nil(got)
    resume("a", nil, 3)
    assert.same({ "a", nil, 3 }, got)
  end)

  it("await returns at once when start resumes synchronously, without yielding", function()
    local got, yielded
    local co = coroutine.create(function() return loop.await(function(r) r(1, 2) end) end)
    local ok, a, b = coroutine.resume(co)
    yielded = coroutine.status(co) ~= "dead"
    got = { ok, a, b }
    assert.is_false(yielded)
    assert.same({ true, 1, 2 }, got)
  end)

  it("a second or stale resume does nothing", function()
    local resume, count = nil, 0
    spawn(function()
      loop.await(function(r) resume = r end)
      count = count + 1
      loop.delay(10)
      count = count + 1
    end)
    resume(1)
    resume(2)         -- the coroutine now waits in delay: must not be woken
    assert.equal(1, count)
    l:advance(10)
    assert.equal(2, count)
    resume(3)
    assert.equal(2, count)
  end)

  it("an abort during await means no resume, even when resume comes later", function()
    local a, resume, after = abort_mod.new(), nil, false
    local co = spawn(function() loop.await(function(r) resume = r end, a); after = true end)
    a:cancel()
    resume("late")
    assert.is_false(after)
    assert.equal("suspended", coroutine.status(co))
  end)

  it("await raises with an already aborted token and does not call start", function()
    local a = abort_mod.new()
    a:cancel("gone")
    local started, err = false, nil
    spawn(function()
      local ok, e = pcall(loop.await, function() started = true end, a)
      assert.is_false(ok)
      err = e
    end)
    assert.is_false(started)
    assert.equal("aborted: gone", err.message)
  end)

  it("await raises when the token is aborted inside start", function()
    local a = abort_mod.new()
    local err
    spawn(function()
      local ok, e = pcall(loop.await, function() a:cancel("inside") end, a)
      assert.is_false(ok)
      err = e
    end)
    assert.equal("aborted: inside", err.message)
  end)

  it("await passes errors of start through", function()
    local err
    spawn(function()
      local ok, e = pcall(loop.await, function() error("start failed", 0) end)
      assert.is_false(ok)
      err = e
    end)
    assert.equal("start failed", err)
  end)

  it("resumes through the resume hook when one is set", function()
    local seen = {}
    loop.set_resume_hook(function(co, ...)
      seen[#seen + 1] = co
      return coroutine.resume(co, ...)
    end)
    local resume
    local co = spawn(function()
      loop.delay(5)
      loop.await(function(r) resume = r end)
    end)
    l:advance(5)
    resume()
    assert.same({ co, co }, seen)
    assert.equal("dead", coroutine.status(co))
    assert.has_error(function() loop.set_resume_hook(42) end)
  end)

  it("the default hook hands an error inside the coroutine to loop.on_error", function()
    local got_err, got_co
    loop.on_error = function(err, co) got_err, got_co = err, co end
    local co = spawn(function() loop.delay(1); error("after the delay", 0) end)
    l:advance(1)
    assert.equal("after the delay", got_err)
    assert.equal(co, got_co)
  end)

  it("the default on_error raises the error with the coroutine's traceback", function()
    spawn(function() loop.delay(1); error("lost?") end)
    local ok, err = pcall(l.advance, l, 1)
    assert.is_false(ok)
    assert.matches("loop_spec.lua:%d+: lost%?", err)
    assert.matches("stack traceback", err)
  end)
end)

describe("async.loop shutdown hooks", function()
  it("runs every hook once with the reason, even if one raises, and counts them", function()
    local seen = {}
    loop.on_shutdown(function(r) seen[#seen + 1] = "a:" .. r end)
    local off = loop.on_shutdown(function() seen[#seen + 1] = "removed" end)
    loop.on_shutdown(function() error("hook failed", 0) end)
    loop.on_shutdown(function(r) seen[#seen + 1] = "c:" .. r end)
    off()
    local ok, err = pcall(loop.shutdown, "sigterm")
    assert.is_false(ok)
    assert.equal("hook failed", err)
    assert.same({ "a:sigterm", "c:sigterm" }, seen)
    assert.equal(0, loop.shutdown("again"))
    E.has_error(function() loop.on_shutdown(1) end, "on_shutdown: expected a function, got number")
  end)
end)
