-- kernel.md "Graph rules": one describe per rule. Cases from the spec and
-- ported from the peers' suites (preactjs/signals core tests, alien-signals
-- topology tests, proposal-signals/signal-polyfill, johnsoncodehk/
-- reactive-framework-test-suite).
local Async = require("async")

local function counter(fn)
  local c = { n = 0 }
  c.fn = function(...)
    c.n = c.n + 1
    return fn(...)
  end
  return c
end

-- Collected nodes are freed by a full collection (Async.collect_garbage)
-- before each count is taken.
local function stats()
  Async.collect_garbage()
  return Async.core_stats()
end

describe("Graph rule 1: glitch-free", function()
  it("diamond: one write runs d once and d sees new b and new c", function()
    local a = Async.signal("a")
    local b = Async.computed(function() return a() end)
    local c = Async.computed(function() return a() end)
    local seen = {}
    local d = counter(function()
      local v = b() .. " " .. c()
      seen[#seen + 1] = v
      return v
    end)
    local dc = Async.computed(d.fn)
    assert.equal("a a", dc())
    assert.equal(1, d.n)
    a:set("aa")
    assert.equal("aa aa", dc())
    assert.equal(2, d.n)
    assert.same({ "a a", "aa aa" }, seen)
  end)

  it("diamond under an effect: the effect runs once per write, never sees a mix", function()
    local a = Async.signal(1)
    local b = Async.computed(function() return a() + 1 end)
    local c = Async.computed(function() return a() * 10 end)
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = { b(), c() } end)
    a:set(2)
    a:set(3)
    assert.same({ { 2, 10 }, { 3, 20 }, { 4, 30 } }, log)
    dispose()
  end)

  it("diamond + tail: every node updates once", function()
    local a = Async.signal("a")
    local b = Async.computed(function() return a() end)
    local c = Async.computed(function() return a() end)
    local d = Async.computed(function() return b() .. " " .. c() end)
    local e = counter(function() return d() end)
    local ec = Async.computed(e.fn)
    assert.equal("a a", ec())
    a:set("aa")
    assert.equal("aa aa", ec())
    assert.equal(2, e.n)
  end)

  it("drops A->B->A updates (A read directly and through B)", function()
    local a = Async.signal(2)
    local b = Async.computed(function() return a() - 1 end)
    local c = Async.computed(function() return a() + b() end)
    local d = counter(function() return "d: " .. c() end)
    local dc = Async.computed(d.fn)
    assert.equal("d: 3", dc())
    assert.equal(1, d.n)
    a:set(4)
    assert.equal("d: 7", dc())
    assert.equal(2, d.n)
  end)

  it("jagged diamond with tails: each node once, in read order", function()
    --     A
    --   /   \
    --  B     C
    --  |     |
    --  |     D
    --   \   /
    --     E
    --   /   \
    --  F     G
    local a = Async.signal("a")
    local b = Async.computed(function() return a() end)
    local c = Async.computed(function() return a() end)
    local d = Async.computed(function() return c() end)
    local order = {}
    local e_runs, f_runs, g_runs = 0, 0, 0
    local e = Async.computed(function()
      e_runs = e_runs + 1; order[#order + 1] = "e"
      return b() .. " " .. d()
    end)
    local f = Async.computed(function()
      f_runs = f_runs + 1; order[#order + 1] = "f"
      return e()
    end)
    local g = Async.computed(function()
      g_runs = g_runs + 1; order[#order + 1] = "g"
      return e()
    end)
    assert.equal("a a", f())
    assert.equal("a a", g())
    assert.same({ 1, 1, 1 }, { e_runs, f_runs, g_runs })
    order = {}
    a:set("b")
    assert.equal("b b", e())
    assert.equal("b b", f())
    assert.equal("b b", g())
    assert.same({ 2, 2, 2 }, { e_runs, f_runs, g_runs })
    assert.same({ "e", "f", "g" }, order)
    a:set("c")
    assert.equal("c c", e())
    assert.equal("c c", f())
    assert.equal("c c", g())
    assert.same({ 3, 3, 3 }, { e_runs, f_runs, g_runs })
  end)

  it("jagged diamond under effects: each effect once per write", function()
    local a = Async.signal(0)
    local b = Async.computed(function() return a() + 1 end)
    local c = Async.computed(function() return a() + 2 end)
    local d = Async.computed(function() return c() + 3 end)
    local e = Async.computed(function() return b() + d() end)
    local log = {}
    local d1 = Async.effect(function() log[#log + 1] = "f" .. e() end)
    local d2 = Async.effect(function() log[#log + 1] = "g" .. e() end)
    a:set(1)
    assert.same({ "f6", "g6", "f8", "g8" }, log)
    d1(); d2()
  end)

  it("a chain of 100,000 computeds updates through the pull without recursion", function()
    -- built one at a time (a first read of an unevaluated chain recurses in
    -- the user's own functions); the update after the write is the core's
    -- iterative pull: deepest first, each function reading fresh deps
    local s = Async.signal(0)
    local last = s
    for _ = 1, 100000 do
      local prev = last
      last = Async.computed(function() return prev() + 1 end)
      last()
    end
    s:set(1)
    assert.equal(100001, last())
    local got
    local dispose = Async.effect(function() got = last() end)
    s:set(2)
    assert.equal(100002, got)
    dispose()
  end)

  it("a first read too deep for the Lua stack fails cleanly and the graph stays usable", function()
    local s = Async.signal(0)
    local last = s
    for _ = 1, 50000 do
      local prev = last
      last = Async.computed(function() return prev() + 1 end)
    end
    local ok, err = pcall(last)
    assert.is_false(ok)
    assert.matches("stack overflow", tostring(err), 1, true)
    -- nothing is stuck in "computing": writes and reads work
    local a = Async.signal(1)
    local c = Async.computed(function() return a() + 1 end)
    a:set(2)
    assert.equal(3, c())
  end)

  it("does not recompute dependencies out of order", function()
    local a = Async.signal(1)
    local b = Async.signal(1)
    local c = Async.signal(1)
    local c_runs = 0
    local cc = Async.computed(function() c_runs = c_runs + 1; return c() end)
    local d = Async.computed(function()
      if a() > 0 then b(); cc() end
      return a()
    end)
    d()
    assert.equal(1, c_runs)
    a:set(2)
    b:set(2)
    c:set(2)
    d()
    assert.equal(2, c_runs)
    a:set(-1)
    b:set(3)
    c:set(3)
    d()
    -- d's first dep (a) changed: d reruns and no longer reads cc, so cc is not pulled
    assert.equal(2, c_runs)
  end)
end)

describe("Graph rule 2: lazy and minimal", function()
  it("a computed runs nothing until read, then caches", function()
    local a = Async.signal(1)
    local c = counter(function() return a() * 2 end)
    local cc = Async.computed(c.fn)
    assert.equal(0, c.n)
    a:set(2)
    assert.equal(0, c.n)
    assert.equal(4, cc())
    assert.equal(4, cc())
    assert.equal(1, c.n)
    a:set(3); a:set(4)
    assert.equal(1, c.n)
    assert.equal(8, cc())
    assert.equal(2, c.n)
  end)

  it("recomputes at most once per change, however many reads", function()
    local a = Async.signal(1)
    local c = counter(function() return a() end)
    local cc = Async.computed(c.fn)
    for i = 1, 5 do
      a:set(i + 1)
      for _ = 1, 3 do assert.equal(i + 1, cc()) end
    end
    assert.equal(5, c.n)
  end)

  it("writing an equal value propagates nothing", function()
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end)
    a:set(1)
    assert.equal(1, runs)
    dispose()
  end)

  it("batch{a:=5; a:=0} from 0 reruns nothing (effect and computed)", function()
    local a = Async.signal(0)
    local c = counter(function() return a() end)
    local cc = Async.computed(c.fn)
    local runs = 0
    local dispose = Async.effect(function() cc(); runs = runs + 1 end)
    assert.equal(1, runs); assert.equal(1, c.n)
    Async.batch(function() a:set(5); a:set(0) end)
    assert.equal(1, runs)
    assert.equal(1, c.n)
    assert.equal(0, cc())
    assert.equal(1, c.n)
    dispose()
  end)

  -- alien-signals: "should not update if the signal value is reverted"
  it("a signal reverted before a read is not a change", function()
    local a = Async.signal(0)
    local c = counter(function() return a() end)
    local cc = Async.computed(c.fn)
    cc()
    a:set(1); a:set(0)
    cc()
    assert.equal(1, c.n)
  end)

  it("equality cut-off: nodes below an unchanged computed do not rerun", function()
    local a = Async.signal(1)
    local parity = Async.computed(function() return a() % 2 end)
    local below = counter(function() return parity() .. "!" end)
    local bc = Async.computed(below.fn)
    local eruns = 0
    local dispose = Async.effect(function() bc(); eruns = eruns + 1 end)
    assert.equal(1, below.n)
    a:set(3)
    assert.equal(1, below.n)
    assert.equal(1, eruns)
    a:set(4)
    assert.equal(2, below.n)
    assert.equal(2, eruns)
    dispose()
  end)

  it("bails out if the result is the same (preact)", function()
    local a = Async.signal("a")
    local b = Async.computed(function() a(); return "foo" end)
    local c = counter(function() return b() end)
    local cc = Async.computed(c.fn)
    assert.equal("foo", cc())
    a:set("aa")
    assert.equal("foo", cc())
    assert.equal(1, c.n)
  end)

  it("an effect pulls only the computeds it needs", function()
    local a = Async.signal(1)
    local unused = counter(function() return a() end)
    Async.computed(unused.fn)
    local dispose = Async.effect(function() a() end)
    a:set(2)
    assert.equal(0, unused.n)
    dispose()
  end)
end)

describe("Graph rule 3: equality", function()
  it("NaN equals NaN: writing NaN over NaN propagates nothing", function()
    local a = Async.signal(0 / 0)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end)
    a:set(0 / 0)
    assert.equal(1, runs)
    a:set(1)
    assert.equal(2, runs)
    dispose()
  end)

  it("a computed returning NaN again cuts off", function()
    local a = Async.signal(1)
    local c = Async.computed(function() a(); return 0 / 0 end)
    local below = counter(function() local v = c(); return v ~= v end)
    local bc = Async.computed(below.fn)
    assert.is_true(bc())
    a:set(2)
    assert.is_true(bc())
    assert.equal(1, below.n)
  end)

  it("default equality is ==: a new table is a change, the same table is not", function()
    local t = {}
    local a = Async.signal(t)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end)
    a:set(t)
    assert.equal(1, runs)
    a:set({})
    assert.equal(2, runs)
    dispose()
  end)

  local cases = {
    { "signal", function(eq) return Async.signal({ id = 1 }, { equals = eq }) end },
  }
  for _, case in ipairs(cases) do
    it("custom equals replaces == on a " .. case[1], function()
      local calls = 0
      local s = case[2](function(x, y) calls = calls + 1; return x.id == y.id end)
      local runs = 0
      local dispose = Async.effect(function() s(); runs = runs + 1 end)
      s:set({ id = 1 })
      assert.equal(1, runs)
      assert.is_true(calls >= 1)
      s:set({ id = 2 })
      assert.equal(2, runs)
      dispose()
    end)
  end

  it("custom equals on a computed cuts off", function()
    local a = Async.signal(1)
    local c = Async.computed(function() return { v = a() % 2 } end,
      { equals = function(x, y) return x.v == y.v end })
    local below = counter(function() return c().v end)
    local bc = Async.computed(below.fn)
    assert.equal(1, bc())
    a:set(3)
    assert.equal(1, bc())
    assert.equal(1, below.n)
    a:set(2)
    assert.equal(0, bc())
    assert.equal(2, below.n)
  end)

  it("signals read inside equals are not tracked", function()
    local a = Async.signal(1)
    local other = Async.signal(0)
    local c = Async.computed(function() return a() end,
      { equals = function(x, y) other(); return x == y end })
    local runs = 0
    local dispose = Async.effect(function() c(); runs = runs + 1 end)
    a:set(2)          -- equals runs (reads other) inside the effect's pull
    assert.equal(2, runs)
    other:set(1)      -- must not rerun anything
    assert.equal(2, runs)
    local s = Async.signal(1, { equals = function(x, y) other(); return x == y end })
    local sruns = 0
    local d2 = Async.effect(function() s(); sruns = sruns + 1 end)
    Async.effect(function() s:set(2) end)()
    other:set(2)
    assert.equal(2, sruns)
    dispose(); d2()
  end)

  it("an equals that raises surfaces the error", function()
    local s = Async.signal(1, { equals = function() error("bad equals", 0) end })
    assert.has_error(function() s:set(2) end, "bad equals")
  end)
end)

describe("Graph rule 4: dynamic dependencies", function()
  it("a branch not taken is not a dependency; switching branches switches deps", function()
    local cond = Async.signal(true)
    local x = Async.signal("x")
    local y = Async.signal("y")
    local c = counter(function() if cond() then return x() end return y() end)
    local cc = Async.computed(c.fn)
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = cc() end)
    y:set("y2")                  -- not read: nothing
    assert.equal(1, c.n)
    x:set("x2")
    assert.equal(2, c.n)
    cond:set(false)
    assert.equal(3, c.n)
    x:set("x3")                  -- dropped: stops notifying
    assert.equal(3, c.n)
    y:set("y3")
    assert.equal(4, c.n)
    assert.same({ "x", "x2", "y2", "y3" }, log)
    dispose()
  end)

  it("only subscribes to / unsubscribes from signals listened to (preact)", function()
    local a = Async.signal("a")
    local b = Async.computed(function() return a() end)
    local spy = counter(function() return a() end)
    Async.computed(spy.fn)
    assert.equal("a", b())
    a:set("aa")
    assert.equal("aa", b())
    assert.equal(0, spy.n)
  end)

  it("effects subscribe to the union of reads only of the last run", function()
    local a = Async.signal(1)
    local b = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      if a() == 1 then b() end
    end)
    b:set(2)
    assert.equal(2, runs)
    a:set(2)
    assert.equal(3, runs)
    b:set(3)
    assert.equal(3, runs)
    dispose()
  end)

  it("ensures subs update even if one dep unmarks it (alien)", function()
    local a = Async.signal("a")
    local b = Async.computed(function() a(); return "b" end)
    local c = Async.computed(function() return a() end)
    local d = counter(function() return b() .. " " .. c() end)
    local dc = Async.computed(d.fn)
    assert.equal("b a", dc())
    a:set("aa")
    assert.equal("b aa", dc())
    assert.equal(2, d.n)
  end)

  it("ensures subs update even if two deps unmark it (alien)", function()
    local a = Async.signal("a")
    local b = Async.computed(function() a(); return "b" end)
    local c = Async.computed(function() return a() end)
    local d = Async.computed(function() a(); return "d" end)
    local e = counter(function() return b() .. " " .. c() .. " " .. d() end)
    local ec = Async.computed(e.fn)
    assert.equal("b a d", ec())
    a:set("aa")
    assert.equal("b aa d", ec())
    assert.equal(2, e.n)
  end)

  it("reading the same node twice in one run makes one edge", function()
    local a = Async.signal(1)
    local base = stats().live_links
    local c = Async.computed(function() return a() + a() + a() end)
    local dispose = Async.effect(function() c() end)
    assert.equal(base + 2, stats().live_links)
    a:set(2)
    assert.equal(base + 2, stats().live_links)
    dispose()
  end)

  it("a computed that loses its last subscriber detaches from its sources", function()
    local a = Async.signal(1)
    local base = stats().live_links
    local c1 = Async.computed(function() return a() + 1 end)
    local c2 = Async.computed(function() return c1() + 1 end)
    local runs = 0
    local dispose = Async.effect(function() runs = runs + 1; c2() end)
    assert.equal(base + 3, stats().live_links)   -- a->c1, c1->c2, c2->effect
    dispose()
    assert.equal(base, stats().live_links)       -- the whole chain detached
    -- lazy again: writes compute nothing, a read recomputes fresh
    local spy = 0
    local c3 = Async.computed(function() spy = spy + 1; return a() end)
    c3()
    a:set(5)
    assert.equal(1, spy)
    assert.equal(7, c2())
    assert.equal(5, c3())
  end)

  it("a dropped branch's computed detaches (no leak)", function()
    local cond = Async.signal(true)
    local a = Async.signal(1)
    local base = stats().live_links
    local inner = Async.computed(function() return a() end)
    local outer = Async.computed(function() if cond() then return inner() end return 0 end)
    local dispose = Async.effect(function() outer() end)
    assert.equal(base + 4, stats().live_links) -- cond, inner -> outer; a -> inner; outer -> effect
    cond:set(false)
    assert.equal(base + 2, stats().live_links) -- cond -> outer; outer -> effect
    dispose()
    assert.equal(base, stats().live_links)
  end)
end)

describe("Graph rule 5: untracked reads", function()
  it("untrack(fn) returns fn's results and creates no dependency", function()
    local a = Async.signal(1)
    local b = Async.signal(2)
    local runs = 0
    local got
    local dispose = Async.effect(function()
      runs = runs + 1
      got = { Async.untrack(function(x) return a() + b(), x end, "arg") }
    end)
    assert.same({ 3, "arg" }, got)
    a:set(10)
    assert.equal(1, runs)
    dispose()
  end)

  it("peek reads without tracking", function()
    local a = Async.signal(1)
    local c = Async.computed(function() return a() * 2 end)
    local runs = 0
    local dispose = Async.effect(function() runs = runs + 1; a:peek(); c:peek() end)
    a:set(2)
    assert.equal(1, runs)
    dispose()
  end)

  it("untracked reads are fresh: a stale computed is refreshed", function()
    local a = Async.signal(1)
    local c = Async.computed(function() return a() * 2 end)
    assert.equal(2, c:peek())
    a:set(5)
    assert.equal(10, c:peek())
    assert.equal(10, Async.untrack(function() return c() end))
    assert.equal(5, a:peek())
  end)

  it("peek inside a computed keeps the computed's other deps", function()
    local a = Async.signal(1)
    local b = Async.signal(10)
    local c = counter(function() return a() + b:peek() end)
    local cc = Async.computed(c.fn)
    assert.equal(11, cc())
    b:set(20)
    assert.equal(11, cc())
    a:set(2)
    assert.equal(22, cc())
    assert.equal(2, c.n)
  end)

  it("untrack restores tracking after an error", function()
    local a = Async.signal(1)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      pcall(Async.untrack, function() error("x") end)
      a()
    end)
    a:set(2)
    assert.equal(2, runs)
    dispose()
  end)
end)

describe("Graph rule 6: errors are values", function()
  it("caches the error, rethrows it on every read, does not rerun on re-read", function()
    local a = Async.signal(1)
    local c = counter(function() if a() > 0 then error("boom", 0) end return a() end)
    local cc = Async.computed(c.fn)
    for _ = 1, 3 do assert.has_error(function() cc() end, "boom") end
    assert.equal(1, c.n)
    a:set(-1)
    assert.equal(-1, cc())
    assert.equal(2, c.n)
    a:set(2)
    assert.has_error(function() cc() end, "boom")
    assert.equal(3, c.n)
  end)

  it("keeps table errors as they were raised", function()
    local e = { code = "E1" }
    local cc = Async.computed(function() error(e) end)
    local ok, err = pcall(cc)
    assert.is_false(ok)
    assert.equal(e, err)
    ok, err = pcall(cc)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("downstream computeds rethrow it", function()
    local a = Async.signal(1)
    local c = Async.computed(function() if a() > 0 then error("up", 0) end return 0 end)
    local d = counter(function() return c() + 1 end)
    local dc = Async.computed(d.fn)
    assert.has_error(function() dc() end, "up")
    assert.has_error(function() dc() end, "up")
    assert.equal(1, d.n)
    a:set(0)
    assert.equal(1, dc())
  end)

  it("peek rethrows the cached error too", function()
    local c = Async.computed(function() error("p", 0) end)
    assert.has_error(function() c:peek() end, "p")
  end)

  it("an effect reading an erroring computed recovers when it heals", function()
    local a = Async.signal(1)
    local c = Async.computed(function() if a() == 1 then error("e1", 0) end return a() end)
    local s = Async.create_scheduler({ on_error = function() end })
    local got = {}
    local dispose = Async.effect(function() got[#got + 1] = c() end, { scheduler = s })
    assert.same({}, got)
    a:set(2)
    assert.same({ 2 }, got)
    dispose()
  end)

  it("a computed recovering to the same value as before the error still propagates", function()
    local a = Async.signal(1)
    local c = Async.computed(function() if a() == 2 then error("x", 0) end return 7 end)
    local d = counter(function() return c() end)
    local dc = Async.computed(d.fn)
    assert.equal(7, dc())
    a:set(2)
    assert.has_error(function() dc() end, "x")
    a:set(3)
    assert.equal(7, dc())
  end)
end)

describe("Graph rule 7: cycles", function()
  it("a computed reading itself raises 'Cycle detected'", function()
    local c
    c = Async.computed(function() return c() end)
    local ok, err = pcall(c)
    assert.is_false(ok)
    assert.matches("Cycle detected", tostring(err), 1, true)
  end)

  it("a ring of two computeds raises 'Cycle detected', every time", function()
    local x, y
    x = Async.computed(function() return y() end)
    y = Async.computed(function() return x() end)
    for _ = 1, 2 do
      local ok, err = pcall(x)
      assert.is_false(ok)
      assert.matches("Cycle detected", tostring(err), 1, true)
      ok, err = pcall(y)
      assert.is_false(ok)
      assert.matches("Cycle detected", tostring(err), 1, true)
    end
  end)

  it("a ring of 1,000 raises, no hang, no stack overflow", function()
    local nodes = {}
    for i = 1, 1000 do
      nodes[i] = Async.computed(function() return nodes[i % 1000 + 1]() end)
    end
    local ok, err = pcall(nodes[1])
    assert.is_false(ok)
    assert.matches("Cycle detected", tostring(err), 1, true)
  end)

  it("a cycle that appears only when a signal flips", function()
    local flip = Async.signal(false)
    local x, y
    x = Async.computed(function() if flip() then return y() end return 1 end)
    y = Async.computed(function() return x() + 1 end)
    assert.equal(2, y())
    flip:set(true)
    local ok, err = pcall(y)
    assert.is_false(ok)
    assert.matches("Cycle detected", tostring(err), 1, true)
    flip:set(false)
    assert.equal(2, y())
  end)

  it("an effect in a cycle through a computed does not hang", function()
    local x
    x = Async.computed(function() return x() end)
    local s = Async.create_scheduler({ on_error = function() end })
    local got
    local dispose = Async.effect(function() got = select(2, pcall(x)) end, { scheduler = s })
    assert.matches("Cycle detected", tostring(got), 1, true)
    dispose()
  end)
end)

describe("Graph rule 8: writes inside a computed", function()
  it("raise 'Cannot write to a signal inside a computed'", function()
    local s = Async.signal(0)
    local c = Async.computed(function() s:set(1); return 1 end)
    local ok, err = pcall(c)
    assert.is_false(ok)
    assert.matches("Cannot write to a signal inside a computed", tostring(err), 1, true)
    assert.equal(0, s:peek())
  end)

  it("update() inside a computed raises too, also through a nested read", function()
    local s = Async.signal(0)
    local inner = Async.computed(function() s:update(function(v) return v + 1 end); return 1 end)
    local outer = Async.computed(function() return inner() end)
    local ok, err = pcall(outer)
    assert.is_false(ok)
    assert.matches("Cannot write to a signal inside a computed", tostring(err), 1, true)
    assert.equal(0, s:peek())
  end)

  it("writing inside an effect that reads a computed is allowed", function()
    local s = Async.signal(0)
    local t = Async.signal(0)
    local c = Async.computed(function() return s() + 1 end)
    local dispose = Async.effect(function() t:set(c()) end)
    assert.equal(1, t:peek())
    s:set(5)
    assert.equal(6, t:peek())
    dispose()
  end)

  it("an untrack inside a computed does not permit writes", function()
    local s = Async.signal(0)
    local c = Async.computed(function() Async.untrack(function() s:set(1) end); return 1 end)
    assert.has_error(function() c() end)
    assert.equal(0, s:peek())
  end)
end)
