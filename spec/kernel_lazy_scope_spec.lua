-- kernel.md "Effects, ownership, cleanups": a scope made by scope_enter (a
-- component instance's) makes its core node only when something needs an
-- owner (an effect, a nested scope, on_cleanup); one that owns nothing makes
-- no node, and disposing it does nothing. Everything else is as if the node
-- had been made at scope_enter: ownership, disposal order, the context per
-- coroutine.
local Async = require("async")
local graph = require("async.kernel.graph")
local core = require("async.kernel.core")
local co_create, co_resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local function live() return core.G.live_nodes end

describe("lazy scopes (scope_enter)", function()
  it("a scope that creates nothing makes no node; disposing it is a no-op", function()
    local n0 = live()
    local h, prev = graph.scope_enter(nil)
    graph.scope_leave(prev, h)
    assert.are.equal(n0, live())
    graph.dispose_handle(h); graph.dispose_handle(h)
    assert.are.equal(n0, live())
  end)

  it("a computed made inside needs no node (only the home); it works and is freed as usual", function()
    local a = Async.signal(2)
    local n0 = live()
    local h, prev = graph.scope_enter(nil)
    local c = Async.computed(function() return a() * 10 end)
    graph.scope_leave(prev, h)
    assert.are.equal(n0 + 1, live())   -- the computed alone
    assert.are.equal(20, c())
    a:set(3)
    assert.are.equal(30, c())
    graph.dispose_handle(h)
  end)

  it("nested pending scopes make no nodes either", function()
    local n0 = live()
    local h1, p1 = graph.scope_enter(nil)
    local h2, p2 = graph.scope_enter(nil)
    local h3, p3 = graph.scope_enter(nil)
    graph.scope_leave(p3, h3)
    graph.scope_leave(p2, h2)
    graph.scope_leave(p1, h1)
    assert.are.equal(n0, live())
    graph.dispose_handle(h3); graph.dispose_handle(h2); graph.dispose_handle(h1)
    assert.are.equal(n0, live())
    assert.is_false(Async.on_cleanup(function() end))   -- the owner is back to none
  end)

  it("an effect made later in the body is owned: dispose_handle disposes it and runs its cleanups", function()
    local a = Async.signal(1)
    local n0 = live()
    local runs, cleaned = 0, 0
    local h, prev = graph.scope_enter(nil)
    local _ = Async.computed(function() return a() end)   -- nothing that needs an owner yet
    Async.effect(function() a(); runs = runs + 1; return function() cleaned = cleaned + 1 end end)
    graph.scope_leave(prev, h)
    assert.are.equal(n0 + 3, live())   -- computed, scope, effect
    a:set(2)
    assert.are.equal(2, runs)
    graph.dispose_handle(h)
    assert.are.equal(2, cleaned)
    a:set(3)
    assert.are.equal(2, runs)
    graph.dispose_handle(h)
    assert.are.equal(2, cleaned)
  end)

  it("on_cleanup alone makes the node; the cleanup runs when it is disposed", function()
    local n0 = live()
    local cleaned = 0
    local h, prev = graph.scope_enter(nil)
    assert.is_true(Async.on_cleanup(function() cleaned = cleaned + 1 end))
    graph.scope_leave(prev, h)
    assert.are.equal(n0 + 1, live())
    graph.dispose_handle(h)
    assert.are.equal(1, cleaned)
    assert.are.equal(n0, live())
  end)

  it("disposal runs in nesting order, as if every node had been made at scope_enter", function()
    local order = {}
    local function note(name) return function() order[#order + 1] = name end end
    local n0 = live()
    local outer, po = graph.scope_enter(nil)
    do   -- a child that owns nothing
      local c, pc = graph.scope_enter(nil)
      graph.scope_leave(pc, c)
    end
    local a, pa = graph.scope_enter(nil)
    local a1, pa1 = graph.scope_enter(nil)
    Async.on_cleanup(note("a1"))   -- makes outer, a, a1 (outermost first)
    graph.scope_leave(pa1, a1)
    Async.on_cleanup(note("a"))
    graph.scope_leave(pa, a)
    Async.effect(function() return note("effect") end)
    local b, pb = graph.scope_enter(nil)
    Async.on_cleanup(note("b"))
    graph.scope_leave(pb, b)
    Async.on_cleanup(note("outer"))
    graph.scope_leave(po, outer)
    assert.are.equal(n0 + 5, live())   -- outer, a, a1, the effect, b
    graph.dispose_handle(outer)
    -- newest child first, children before their owner
    assert.are.same({ "b", "effect", "a1", "a", "outer" }, order)
    assert.are.equal(n0, live())
    -- the children were disposed with it
    graph.dispose_handle(b); graph.dispose_handle(a1)
    assert.are.same({ "b", "effect", "a1", "a", "outer" }, order)
  end)

  it("a scope made by a nested one is owned by its owner's node: disposing the inner first is fine", function()
    local cleaned = {}
    local outer, po = graph.scope_enter(nil)
    local inner, pi = graph.scope_enter(nil)
    Async.on_cleanup(function() cleaned[#cleaned + 1] = "inner" end)
    graph.scope_leave(pi, inner)
    graph.scope_leave(po, outer)
    graph.dispose_handle(inner)
    assert.are.same({ "inner" }, cleaned)
    graph.dispose_handle(outer)
    assert.are.same({ "inner" }, cleaned)
  end)

  it("a node made after the owner's own scope_leave of a nested scope goes to the right owner", function()
    local a = Async.signal(1)
    local runs = 0
    local outer, po = graph.scope_enter(nil)
    local inner, pi = graph.scope_enter(nil)
    Async.effect(function() a() end)   -- makes outer and inner
    graph.scope_leave(pi, inner)
    -- back in outer, whose node exists now: the owner is that node
    Async.effect(function() a(); runs = runs + 1 end)
    graph.scope_leave(po, outer)
    graph.dispose_handle(inner)
    a:set(2)
    assert.are.equal(2, runs)
    graph.dispose_handle(outer)
    a:set(3)
    assert.are.equal(2, runs)
  end)

  it("disposed before its node was made: a later effect in it raises (as in a disposed scope)", function()
    local h, prev = graph.scope_enter(nil)
    graph.dispose_handle(h)
    local ok, err = pcall(Async.effect, function() end)
    graph.scope_leave(prev, h)
    assert.is_false(ok)
    assert.matches("bad id", tostring(err and err.message or err))
  end)

  it("disposed after its node was made: what it owns stops", function()
    local a = Async.signal(1)
    local runs = 0
    local h, prev = graph.scope_enter(nil)
    Async.effect(function() a(); runs = runs + 1 end)
    graph.dispose_handle(h)
    graph.scope_leave(prev, h)
    a:set(2)
    assert.are.equal(1, runs)
  end)

  it("a scope owned by a root: the root's dispose disposes what the scope made", function()
    local r = graph.root()
    local a = Async.signal(1)
    local runs = 0
    local h, prev = graph.scope_enter(r)
    Async.effect(function() a(); runs = runs + 1 end)
    graph.scope_leave(prev, h)
    local h2, prev2 = graph.scope_enter(r)   -- owns nothing
    graph.scope_leave(prev2, h2)
    r:dispose()
    a:set(2)
    assert.are.equal(1, runs)
    graph.dispose_handle(h); graph.dispose_handle(h2)
  end)

  it("a dropped root whose scopes made nodes (and some that did not) is still collected and disposed", function()
    local a = Async.signal(1)
    local runs = 0
    graph.collect_garbage()
    local n0 = live()
    do
      local r = graph.root()
      local outer, po = graph.scope_enter(r)
      local empty, pe = graph.scope_enter(r)
      graph.scope_leave(pe, empty)
      local inner, pi = graph.scope_enter(r)
      -- a closure over the root (as a runtime's closures hold the runtime)
      Async.effect(function() a(); runs = runs + (r and 1 or 0) end, { root = r })
      Async.on_cleanup(function() return r end)
      graph.scope_leave(pi, inner)
      graph.scope_leave(po, outer)
      r.keep = { outer, empty, inner }   -- as a runtime keeps its instances
    end
    assert.are.equal(1, runs)
    -- a compiled trace may hold the effect's closure (a trace specialises on
    -- a closure its prototype made only once), and the closure holds the root
    jit.flush()
    graph.collect_garbage()
    graph.collect_garbage()
    a:set(2)
    assert.are.equal(1, runs)          -- the root was collected: its scopes were disposed
    assert.is_true(live() < n0 + 4)    -- root, outer, inner, effect: gone (other garbage may go too)
  end)

  it("an effect that runs during a pending scope's body, and enters a scope of its own, leaves the owner intact",
    function()
      local a = Async.signal(0)
      local inner_runs, outer_runs = 0, 0
      local ih
      local dispose_watcher = Async.effect(function()
        if a() == 0 then return end
        local h, prev = graph.scope_enter(nil)
        Async.effect(function() inner_runs = inner_runs + 1 end)   -- made under the watcher
        graph.scope_leave(prev, h)
        ih = h
      end)
      local outer, po = graph.scope_enter(nil)
      a:set(1)   -- runs the watcher now, inside outer's body
      assert.are.equal(1, inner_runs)
      Async.effect(function() a(); outer_runs = outer_runs + 1 end)   -- still outer's
      graph.scope_leave(po, outer)
      assert.is_false(Async.on_cleanup(function() end))
      graph.dispose_handle(outer)
      a:set(2)
      assert.are.equal(1, outer_runs)
      dispose_watcher()
      graph.dispose_handle(ih)
    end)

  it("random nestings behave as kernel.scope (eager nodes): same effects alive, same cleanup order", function()
    -- a program: a tree of scopes whose bodies make effects, cleanups,
    -- computeds and child scopes; run once with scope_enter (lazy) and once
    -- with kernel.scope (a node each at once), then dispose some scopes
    local seed = 12345
    local function rnd(n)   -- a small LCG: the same programs on every run
      seed = (seed * 1103515245 + 12345) % 2147483648
      return math.floor(seed / 65536) % n + 1
    end
    local function gen(depth)
      local body = {}
      for _ = 1, rnd(4) - (depth == 1 and 0 or 1) do
        local k = rnd(depth < 4 and 5 or 3)
        if k == 1 then body[#body + 1] = { "effect" }
        elseif k == 2 then body[#body + 1] = { "cleanup" }
        elseif k == 3 then body[#body + 1] = { "computed" }
        else body[#body + 1] = { "scope", gen(depth + 1) } end
      end
      return body
    end
    for _ = 1, 200 do
      local prog = gen(1)
      local nscopes = 0
      local function count(b) for _, op in ipairs(b) do
        if op[1] == "scope" then nscopes = nscopes + 1; count(op[2]) end end end
      count(prog)
      local disposals = {}
      for i = 1, rnd(3) do disposals[i] = rnd(nscopes + 1) - 1 end   -- 0: the top scope
      local results = {}
      for _, mode in ipairs({ "lazy", "eager" }) do
        local sig = Async.signal(0)
        local log, handles, serial, sn = {}, {}, 0, 0
        local function run(b)
          for _, op in ipairs(b) do
            serial = serial + 1
            local name = serial
            if op[1] == "effect" then
              Async.effect(function()
                log[#log + 1] = "run" .. name .. ":" .. sig()
                return function() log[#log + 1] = "clean" .. name end
              end)
            elseif op[1] == "cleanup" then
              Async.on_cleanup(function() log[#log + 1] = "cleanup" .. name end)
            elseif op[1] == "computed" then
              local c = Async.computed(function() return sig() + 1 end)
              log[#log + 1] = "computed" .. name .. ":" .. c()
            else
              sn = sn + 1
              local idx = sn
              if mode == "lazy" then
                local h, prev = graph.scope_enter(nil)
                handles[idx] = function() graph.dispose_handle(h) end
                run(op[2])
                graph.scope_leave(prev, h)
              else
                handles[idx] = Async.scope(function() run(op[2]) end)
              end
            end
          end
        end
        if mode == "lazy" then
          local h, prev = graph.scope_enter(nil)
          handles[0] = function() graph.dispose_handle(h) end
          run(prog)
          graph.scope_leave(prev, h)
        else
          handles[0] = Async.scope(function() run(prog) end)
        end
        for _, d in ipairs(disposals) do
          log[#log + 1] = "dispose" .. d
          handles[d]()
          sig:set(sig:peek() + 1)
        end
        handles[0]()
        sig:set(sig:peek() + 1)
        results[mode] = log
      end
      assert.are.same(results.eager, results.lazy)
    end
  end)

  describe("the pending owner is part of the coroutine's context", function()
    it("a coroutine that yields inside a pending scope keeps it; another coroutine does not see it", function()
      local a = Async.signal(1)
      local runs = 0
      local h
      local co = co_create(function()
        local prev
        h, prev = graph.scope_enter(nil)
        yield()
        Async.effect(function() a(); runs = runs + 1 end)   -- makes the node now: still this scope's
        graph.scope_leave(prev, h)
      end)
      assert(co_resume(co))
      -- meanwhile the main thread: no owner, and its own scopes come and go
      local other_owned = Async.on_cleanup(function() end)
      local h2, p2 = graph.scope_enter(nil)
      local d2 = Async.effect(function() a() end)
      graph.scope_leave(p2, h2)
      assert(co_resume(co))
      assert.is_false(other_owned)
      a:set(2)
      assert.are.equal(2, runs)
      graph.dispose_handle(h)
      a:set(3)
      assert.are.equal(2, runs)
      graph.dispose_handle(h2)
      d2()
    end)

    it("a coroutine started inside a pending scope starts with no owner", function()
      local h, prev = graph.scope_enter(nil)
      local n0 = live()
      local inside
      local co = co_create(function() inside = Async.on_cleanup(function() end) end)
      assert(co_resume(co))
      assert.is_false(inside)
      assert.are.equal(n0, live())   -- and the scope's node was not made for it
      graph.scope_leave(prev, h)
      graph.dispose_handle(h)
    end)

    it("a pending scope nested in a coroutine, its parent made after a switch, keeps nesting order", function()
      local order = {}
      local outer, inner
      local co = co_create(function()
        local po, pi
        outer, po = graph.scope_enter(nil)
        inner, pi = graph.scope_enter(nil)
        yield()
        Async.on_cleanup(function() order[#order + 1] = "inner" end)
        graph.scope_leave(pi, inner)
        Async.on_cleanup(function() order[#order + 1] = "outer" end)
        graph.scope_leave(po, outer)
      end)
      assert(co_resume(co))
      local h, p = graph.scope_enter(nil)   -- the main thread's, made and left meanwhile
      Async.on_cleanup(function() order[#order + 1] = "main" end)
      graph.scope_leave(p, h)
      assert(co_resume(co))
      graph.dispose_handle(outer)
      assert.are.same({ "inner", "outer" }, order)
      graph.dispose_handle(h)
      assert.are.same({ "inner", "outer", "main" }, order)
    end)
  end)
end)
