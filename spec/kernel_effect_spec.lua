-- kernel.md "Effects and ownership": one describe per rule. Cases from the
-- spec and ported from the peers (preact effect tests, alien-signals
-- effect/effectScope tests, reactive-framework-test-suite).
local Async = require("async")
local E = require("support.errors")

local function quiet_scheduler(errors)
  return Async.create_scheduler({ on_error = function(err, job)
    errors[#errors + 1] = { err = err, phase = job.phase, key = job.key }
  end })
end

describe("Effects rule 1: runs once at creation, then once per changing commit", function()
  it("runs once when created", function()
    local runs = 0
    local dispose = Async.effect(function() runs = runs + 1 end)
    assert.equal(1, runs)
    dispose()
  end)

  it("inside a batch it runs when the outermost batch ends", function()
    local runs = 0
    local dispose
    Async.batch(function()
      Async.batch(function()
        dispose = Async.effect(function() runs = runs + 1 end)
      end)
      assert.equal(0, runs)
    end)
    assert.equal(1, runs)
    dispose()
  end)

  it("one commit of many writes reruns once", function()
    local a, b = Async.signal(1), Async.signal(2)
    local runs = 0
    local dispose = Async.effect(function() a(); b(); runs = runs + 1 end)
    Async.batch(function() a:set(10); b:set(20); a:set(11) end)
    assert.equal(2, runs)
    dispose()
  end)

  it("does not rerun for a commit that changed nothing it read", function()
    local a, other = Async.signal(1), Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end)
    other:set(2)
    assert.equal(1, runs)
    dispose()
  end)

  it("does not rerun when a computed it reads keeps its value", function()
    local a = Async.signal(1)
    local c = Async.computed(function() return a() > 0 end)
    local runs = 0
    local dispose = Async.effect(function() c(); runs = runs + 1 end)
    a:set(2)
    assert.equal(1, runs)
    dispose()
  end)
end)

describe("Effects rule 2: cleanup", function()
  it("runs before the next run and on disposal, exactly once per run", function()
    local a = Async.signal(1)
    local log = {}
    local dispose = Async.effect(function()
      local v = a()
      log[#log + 1] = "run" .. v
      return function() log[#log + 1] = "clean" .. v end
    end)
    a:set(2)
    a:set(3)
    dispose()
    dispose()
    assert.same({ "run1", "clean1", "run2", "clean2", "run3", "clean3" }, log)
  end)

  it("reads inside a cleanup are untracked", function()
    local a, t = Async.signal(1), Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function()
      a(); runs = runs + 1
      return function() t() end
    end)
    a:set(2)           -- cleanup reads t
    t:set(2)
    assert.equal(2, runs)
    dispose()
  end)

  it("writes inside a cleanup are batched", function()
    local a = Async.signal(1)
    local x, y = Async.signal(0), Async.signal(0)
    local seen = {}
    local d1 = Async.effect(function() seen[#seen + 1] = x() .. "," .. y() end)
    local d2 = Async.effect(function()
      a()
      return function() x:set(x:peek() + 1); y:set(y:peek() + 1) end
    end)
    a:set(2)
    assert.same({ "0,0", "1,1" }, seen)
    d1(); d2()
  end)

  it("on_cleanup registers more cleanups for the running effect", function()
    local a = Async.signal(1)
    local log = {}
    local dispose = Async.effect(function()
      local v = a()
      Async.on_cleanup(function() log[#log + 1] = "A" .. v end)
      Async.on_cleanup(function() log[#log + 1] = "B" .. v end)
    end)
    a:set(2)
    dispose()
    assert.same({ "B1", "A1", "B2", "A2" }, log)
  end)

  it("a raising cleanup does not stop the next run; its error is reported", function()
    local errors = {}
    local s = quiet_scheduler(errors)
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      a()
      return function() error("cleanup failed", 0) end
    end, { scheduler = s })
    a:set(2)
    assert.equal(2, runs)
    assert.equal(1, #errors)
    assert.equal("cleanup failed", errors[1].err)
    assert.has_error(function() dispose() end, "cleanup failed")
  end)
end)

describe("Effects rule 3: ownership and disposal order", function()
  it("inner effects are disposed before the owner reruns", function()
    local a, b = Async.signal(1), Async.signal(1)
    local log = {}
    local dispose = Async.effect(function()
      local v = a()
      Async.effect(function()
        log[#log + 1] = "inner" .. v .. ":" .. b()
        return function() log[#log + 1] = "inner-clean" .. v end
      end)
    end)
    b:set(2)
    a:set(2)
    b:set(3)
    assert.same({ "inner1:1", "inner-clean1", "inner1:2",   -- b: the inner reruns alone
                  "inner-clean1", "inner2:2",                  -- a: disposed, recreated
                  "inner-clean2", "inner2:3" }, log)
    dispose()
    assert.equal("inner-clean2", log[#log])
  end)

  it("disposal order: children before parents, last-created first", function()
    local log = {}
    local function fx(name, body)
      return Async.effect(function()
        if body then body() end
        return function() log[#log + 1] = name end
      end)
    end
    local dispose = Async.scope(function()
      fx("A", function() fx("A1"); fx("A2") end)
      fx("B", function() fx("B1", function() fx("B1a") end) end)
    end)
    assert.same({}, log)
    dispose()
    assert.same({ "B1a", "B1", "B", "A2", "A1", "A" }, log)
  end)

  it("an effect owning effects: its own cleanup runs after its children's", function()
    local log = {}
    local a = Async.signal(1)
    local dispose = Async.effect(function()
      a()
      Async.effect(function() return function() log[#log + 1] = "child" end end)
      return function() log[#log + 1] = "parent" end
    end)
    a:set(2)
    assert.same({ "child", "parent" }, log)
    dispose()
    assert.same({ "child", "parent", "child", "parent" }, log)
  end)

  it("a scope returns a dispose function; disposing a child early is fine", function()
    local log = {}
    local inner
    local dispose = Async.scope(function()
      inner = Async.effect(function() return function() log[#log + 1] = "i" end end)
      Async.effect(function() return function() log[#log + 1] = "j" end end)
    end)
    inner()
    assert.same({ "i" }, log)
    dispose()
    assert.same({ "i", "j" }, log)
  end)

  -- alien-signals: "should not run untracked inner effect"
  it("inner effects do not run again after the owner is disposed", function()
    local a = Async.signal(3)
    local b = Async.computed(function() return a() > 0 end)
    local inner_runs = 0
    local dispose = Async.effect(function()
      if b() then
        Async.effect(function()
          inner_runs = inner_runs + 1
          if a() == 0 then error("bad", 0) end
        end)
      end
    end)
    a:set(2); a:set(1); a:set(0)
    assert.equal(3, inner_runs)
    dispose()
  end)

  it("a raising scope body disposes what it created and rethrows", function()
    local log = {}
    assert.has_error(function()
      Async.scope(function()
        Async.effect(function() return function() log[#log + 1] = "x" end end)
        error("scope body", 0)
      end)
    end, "scope body")
    assert.same({ "x" }, log)
  end)
end)

describe("Effects rule 4: disposal is idempotent; disposed in a batch does not run", function()
  it("dispose twice runs the cleanup once", function()
    local n = 0
    local dispose = Async.effect(function() return function() n = n + 1 end end)
    dispose(); dispose(); dispose()
    assert.equal(1, n)
  end)

  it("a stale dispose does not touch the effect that reuses its node", function()
    local a = Async.signal(1)
    -- dispose many effects, then make as many again: the new ones take the
    -- freed slots (ids), and every stale dispose must leave them alone
    local stale, runs = {}, 0
    for i = 1, 50 do stale[i] = Async.effect(function() a() end) end
    for i = 1, 50 do stale[i]() end
    local before = Async.core_stats().node_capacity
    local live = {}
    for i = 1, 50 do live[i] = Async.effect(function() a(); runs = runs + 1 end) end
    assert.equal(before, Async.core_stats().node_capacity)   -- slots were reused
    for i = 1, 50 do stale[i]() end
    runs = 0
    a:set(2)
    assert.equal(50, runs)
    for i = 1, 50 do live[i]() end
    a:set(3)
    assert.equal(50, runs)
  end)

  it("its dispose function is a C function bound to the effect (async_bind), idempotent", function()
    -- src/bind/bind.c: a Lua closure would keep Async.effect from compiling
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end)
    assert.equal("function", type(dispose))
    assert.equal("C", debug.getinfo(dispose, "S").what)
    assert.same({}, { dispose() })
    dispose()
    a:set(2)
    assert.equal(1, runs)
  end)

  it("a cleanup that yields under the dispose function raises in the yielding coroutine; the effect is gone", function()
    -- the dispose function is a C function: a yield cannot cross it
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function()
      a()
      runs = runs + 1
      return function() coroutine.yield("from a cleanup") end
    end)
    local co = coroutine.create(function() return pcall(dispose) end)
    local ok, pok, err = coroutine.resume(co)
    assert.is_true(ok)
    assert.is_false(pok)
    assert.matches("attempt to yield across C%-call boundary", tostring(err))
    assert.equal("dead", coroutine.status(co))
    a:set(2)
    assert.equal(1, runs)
  end)

  it("without the async_bind module, dispose functions are Lua closures and work the same", function()
    -- a fresh process whose require("async_bind") fails
    local code = [[
      package.preload.async_bind = function() error("no async_bind here") end
      local Async = require("async")
      local a, runs = Async.signal(1), 0
      local d = Async.effect(function() a(); runs = runs + 1 end)
      assert(debug.getinfo(d, "S").what == "Lua")
      local stale = {}
      for i = 1, 20 do stale[i] = Async.effect(function() a() end) end
      for i = 1, 20 do stale[i]() end
      local live = Async.effect(function() a(); runs = runs + 1 end)
      for i = 1, 20 do stale[i]() end
      d(); d()
      a:set(2)
      assert(runs == 3, runs)
      live()
      io.write("fallback ok")
    ]]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    -- the child finds the tree as this process does (busted sets the paths)
    f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath), code)
    f:close()
    local p = assert(io.popen("luajit " .. path .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    assert.equal("fallback ok", out)
  end)

  it("an effect disposed during a batch does not run", function()
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end)
    Async.batch(function()
      a:set(2)
      dispose()
    end)
    assert.equal(1, runs)
  end)

  it("an effect created and disposed in one batch never runs", function()
    local runs = 0
    Async.batch(function()
      local d = Async.effect(function() runs = runs + 1 end)
      d()
    end)
    assert.equal(0, runs)
  end)

  it("an effect disposed by an earlier effect in the same flush does not run", function()
    local a = Async.signal(1)
    local runs = 0
    local d2
    local d1 = Async.effect(function() if a() == 2 then d2() end end)
    d2 = Async.effect(function() a(); runs = runs + 1 end)
    a:set(2)
    assert.equal(1, runs)
    d1()
  end)

  it("disposing a scope twice is fine; disposed effects stop reacting", function()
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.scope(function() Async.effect(function() a(); runs = runs + 1 end) end)
    dispose(); dispose()
    a:set(2)
    assert.equal(1, runs)
  end)

  it("scope_enter / scope_leave / dispose_handle (components' scopes) own what the body makes", function()
    local kernel = require("async.kernel.graph")
    local a = Async.signal(1)
    local runs, inner, cleaned = 0, 0, 0
    local outer_dispose = Async.scope(function()
      local h, prev = kernel.scope_enter(nil)
      Async.effect(function() a(); runs = runs + 1 end)
      Async.on_cleanup(function() cleaned = cleaned + 1 end)
      kernel.scope_leave(prev, h)
      -- the owner is back: this effect belongs to the outer scope
      Async.effect(function() a(); inner = inner + 1 end)
      a:set(2)
      assert.equal(2, runs)
      kernel.dispose_handle(h); kernel.dispose_handle(h)
      assert.equal(1, cleaned)
      a:set(3)
      assert.equal(2, runs)
      assert.equal(3, inner)
    end)
    outer_dispose()
    a:set(4)
    assert.equal(3, inner)
  end)
end)

describe("Effects rule 5: self-writing effects settle or stop at max_depth", function()
  it("an effect that writes a signal it reads reruns until stable", function()
    local a = Async.signal(0)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      if a() < 5 then a:set(a() + 1) end
    end)
    assert.equal(5, a:peek())
    assert.equal(6, runs)
    dispose()
  end)

  it("a loop that never settles stops with 'exceeded max_depth'", function()
    local a = Async.signal(0)
    local runs = 0
    local ok, err = pcall(Async.effect, function()
      runs = runs + 1
      a:set(a() + 1)
    end)
    assert.is_false(ok)
    assert.matches("exceeded max_depth", tostring(err), 1, true)
    assert.is_true(runs >= 100 and runs <= 102)
    -- the scheduler is usable afterwards
    local b = Async.signal(1)
    local got
    local dispose = Async.effect(function() got = b() end)
    b:set(2)
    assert.equal(2, got)
    dispose()
  end)

  it("two effects feeding each other forever stop too (custom max_depth)", function()
    local errors = {}
    local s = Async.create_scheduler({ max_depth = 10, on_error = function(e) errors[#errors + 1] = e end })
    local a, b = Async.signal(0), Async.signal(0)
    local d1 = Async.effect(function() b:set(a() + 1) end, { scheduler = s })
    local d2 = Async.effect(function() a:set(b() + 1) end, { scheduler = s })
    assert.equal(1, #errors)
    assert.matches("exceeded max_depth", errors[1], 1, true)
    d1(); d2()
  end)
end)

describe("Effects rule 6: order", function()
  it("effects run in the order they were first notified (subscription order)", function()
    local a = Async.signal(0)
    local log = {}
    local ds = {}
    for i = 1, 5 do
      ds[i] = Async.effect(function() a(); log[#log + 1] = i end)
    end
    log = {}
    a:set(1)
    assert.same({ 1, 2, 3, 4, 5 }, log)
    for i = 1, 5 do ds[i]() end
  end)

  it("across sources: first notified first", function()
    local a, b = Async.signal(0), Async.signal(0)
    local log = {}
    local d1 = Async.effect(function() b(); log[#log + 1] = "B" end)
    local d2 = Async.effect(function() a(); log[#log + 1] = "A" end)
    log = {}
    Async.batch(function() a:set(1); b:set(1) end)
    assert.same({ "A", "B" }, log)
    d1(); d2()
  end)

  it("an outer effect runs before the effects it owns", function()
    local a = Async.signal(0)
    local log = {}
    local dispose = Async.effect(function()
      Async.effect(function() log[#log + 1] = "inner" .. a() end)
      log[#log + 1] = "outer" .. a()
    end)
    log = {}
    a:set(1)
    -- the outer reruns first: it disposes the old inner and creates a new one
    assert.same({ "outer1", "inner1" }, log)
    dispose()
  end)

  it("inner effect notified first still runs after its queued owner (alien: should run outer effect first)", function()
    local a, b = Async.signal(1), Async.signal(0)
    local log = {}
    local dispose = Async.effect(function()
      if a() > 0 then
        Async.effect(function()
          log[#log + 1] = "inner"
          b()
          if a() == 0 then error("inner ran after outer dropped it", 0) end
        end)
      end
    end)
    log = {}
    Async.batch(function() b:set(1); a:set(0) end)
    assert.same({}, log)
    dispose()
  end)

  it("a duplicate read does not change the notify order (alien)", function()
    local a = Async.signal(0)
    local log = {}
    local d1 = Async.effect(function() a(); a(); log[#log + 1] = 1 end)
    local d2 = Async.effect(function() a(); log[#log + 1] = 2 end)
    log = {}
    a:set(1)
    assert.same({ 1, 2 }, log)
    d1(); d2()
  end)
end)

describe("Effects rule 7: writes in an effect body are batched", function()
  it("commit once, when the body returns", function()
    local trigger = Async.signal(0)
    local x, y = Async.signal(0), Async.signal(0)
    local seen = {}
    local d1 = Async.effect(function() seen[#seen + 1] = x() + y() end)
    local d2 = Async.effect(function()
      if trigger() > 0 then
        x:set(1)
        assert.equal(1, #seen)      -- nothing ran yet
        y:set(1)
      end
    end)
    trigger:set(1)
    assert.same({ 0, 2 }, seen)
    d1(); d2()
  end)

  it("reads after a write in the body see the new value", function()
    local x = Async.signal(0)
    local got
    local dispose = Async.effect(function() x:set(5); got = x:peek() end)
    assert.equal(5, got)
    dispose()
  end)
end)

describe("Effects rule 8: a raising effect stays subscribed", function()
  it("reruns on the next change; the error goes to on_error with the job's phase", function()
    local errors = {}
    local s = quiet_scheduler(errors)
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      if a() % 2 == 1 then error("odd " .. a(), 0) end
    end, { scheduler = s })
    assert.equal(1, runs)
    assert.equal("odd 1", errors[1].err)
    assert.equal("effect", errors[1].phase)
    a:set(2)
    assert.equal(2, runs)
    a:set(3)
    assert.equal(3, runs)
    assert.equal(2, #errors)
    assert.equal("odd 3", errors[2].err)
    dispose()
  end)

  it("without on_error the error is rethrown once the flush has finished", function()
    local a = Async.signal(0)
    local other_runs = 0
    local d1 = Async.effect(function() if a() == 1 then error("first", 0) end end)
    local d2 = Async.effect(function() a(); other_runs = other_runs + 1 end)
    local ok, err = pcall(a.set, a, 1)
    assert.is_false(ok)
    assert.equal("first", err)
    assert.equal(2, other_runs)   -- the flush went on
    assert.equal(1, a:peek())     -- the write committed
    a:set(2)
    assert.equal(3, other_runs)
    d1(); d2()
  end)

  it("a raising effect keeps the dependencies it read before raising", function()
    local errors = {}
    local s = quiet_scheduler(errors)
    local a, b = Async.signal(0), Async.signal(0)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      a()
      error("always", 0)
    end, { scheduler = s })
    a:set(1)
    assert.equal(2, runs)
    b:set(1)
    assert.equal(2, runs)
    dispose()
  end)

  it("a raising effect's cleanup from its previous run still runs", function()
    local errors = {}
    local s = quiet_scheduler(errors)
    local a = Async.signal(0)
    local cleans = 0
    local dispose = Async.effect(function()
      if a() == 1 then error("x", 0) end
      return function() cleans = cleans + 1 end
    end, { scheduler = s })
    a:set(1)
    assert.equal(1, cleans)
    a:set(2)
    assert.equal(1, cleans)
    dispose()
    assert.equal(2, cleans)
  end)
end)

describe("effect arguments", function()
  it("rejects a non-function and bad options", function()
    E.has_error(function() Async.effect(nil) end, "effect expects a function, got nil")
    E.has_error(function() Async.effect(function() end, 5) end,
      "effect options must be a table, got number")
  end)
end)
