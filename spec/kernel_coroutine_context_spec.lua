-- kernel.md "Robustness rules": the tracking context (the running computed or
-- effect, the owner, the open batch or transaction, the async run) belongs
-- to the coroutine that opened it. A coroutine that yields inside one (here
-- with a plain coroutine.yield, as ngx.sleep or a socket read would from C)
-- never makes another coroutine's reads, writes or effects land in it; where
-- the kernel cannot keep them apart it raises in the yielding coroutine.
local Async = require("async")
local graph = require("async.kernel.graph")
local co_create, co_resume, co_status, yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield

local CONTEXT_LOST = "async: this coroutine yielded inside a batch, transaction, scope, computed, effect "
  .. "body or async run and was resumed without its kernel context (a raw ngx.sleep or cosocket, or a "
  .. "coroutine.resume taken before async was loaded) after another coroutine needed the kernel: what it "
  .. "did after the yield was not tracked in its context (do not wait there; use an async signal)"

-- runs fn in a new coroutine up to its first yield; returns the coroutine
local function start(fn)
  local co = co_create(fn)
  local ok, err = co_resume(co)
  assert(ok, err)
  return co
end

-- B: another coroutine (or, with main = true, the main thread) doing fn at once
local function in_other(fn)
  local co = co_create(fn)
  local ok, err = co_resume(co)
  assert(ok, err)
  assert.are.equal("dead", co_status(co))
end

describe("the context belongs to the coroutine that opened it", function()
  it("exports the exact message raised where contexts cannot be kept apart", function()
    assert.are.equal(CONTEXT_LOST, graph.CONTEXT_LOST.message)
    assert.are.equal("context-lost", graph.CONTEXT_LOST.code)
  end)

  describe("a coroutine yielding inside Async.batch", function()
    for _, who in ipairs({ "coroutine", "main thread" }) do
      it("does not hold another " .. who .. "'s writes; its own batch still commits as one", function()
        local a1, a2, b = Async.signal(0), Async.signal(0), Async.signal(0)
        local seen_a, seen_b = {}, {}
        local da = Async.effect(function() seen_a[#seen_a + 1] = a1() .. "/" .. a2() end)
        local db = Async.effect(function() seen_b[#seen_b + 1] = b() end)
        local A = start(function()
          Async.batch(function()
            a1:set(1)
            yield()
            a2:set(1)
          end)
        end)
        local write_b = function() b:set(5) end
        if who == "coroutine" then in_other(write_b) else write_b() end
        assert.are.same({ 0, 5 }, seen_b)        -- B's effect ran at once
        assert.are.same({ "0/0" }, seen_a)       -- A's writes are not committed yet
        assert.is_true((co_resume(A)))
        assert.are.equal("dead", co_status(A))
        assert.are.same({ "0/0", "1/1" }, seen_a) -- once, with both writes
        assert.are.same({ 0, 5 }, seen_b)
        b:set(6)
        assert.are.same({ 0, 5, 6 }, seen_b)
        da(); db()
      end)
    end

    it("lets another coroutine wait with Async.delay (only the batch's own coroutine is refused)", function()
      local loop = Async.manual_loop()
      local prev = Async.get_loop()
      Async.set_loop(loop)
      local A = start(function()
        Async.batch(function()
          yield()
          local ok, err = pcall(Async.delay, 1)
          assert(not ok and tostring(err):find("cannot wait inside a batch", 1, true), tostring(err))
        end)
      end)
      local woke = false
      local B = co_create(function() Async.delay(5); woke = true end)
      assert(co_resume(B))
      loop:advance(5)
      assert.is_true(woke)
      assert.is_true((co_resume(A)))
      assert.are.equal("dead", co_status(A))
      Async.set_loop(prev)
    end)

    it("nested: two coroutines each suspended in their own nested batches commit separately", function()
      local a, b = Async.signal(0), Async.signal(0)
      local seen = {}
      local da = Async.effect(function() seen[#seen + 1] = "a" .. a() end)
      local db = Async.effect(function() seen[#seen + 1] = "b" .. b() end)
      local A = start(function()
        Async.batch(function()
          a:set(1)
          Async.batch(function() a:set(2); yield() end)
          a:set(3)
        end)
      end)
      local B = start(function()
        Async.batch(function()
          b:set(1)
          yield()
          b:set(2)
        end)
      end)
      assert.are.same({ "a0", "b0" }, seen)
      assert.is_true((co_resume(A)))           -- A commits: only A's writes run effects
      assert.are.same({ "a0", "b0", "a3" }, seen)
      assert.is_true((co_resume(B)))
      assert.are.same({ "a0", "b0", "a3", "b2" }, seen)
      a:set(4)                                 -- and the kernel is back to plain writes
      assert.are.same({ "a0", "b0", "a3", "b2", "a4" }, seen)
      da(); db()
    end)
  end)

  describe("a coroutine yielding inside a transaction", function()
    it("another coroutine's writes are not rolled back by its failure", function()
      local a, b = Async.signal(0), Async.signal(0)
      local seen, seen_b = {}, {}
      local d = Async.effect(function() seen[#seen + 1] = a() .. ":" .. b() end)
      local db = Async.effect(function() seen_b[#seen_b + 1] = b() end)
      local A = start(function()
        return pcall(Async.transaction, function()
          a:set(1)
          yield()
          a:set(2)
          error("boom", 0)
        end)
      end)
      in_other(function() b:set(5) end)
      assert.are.same({ 0, 5 }, seen_b)          -- B's write committed at once
      -- an effect A's open transaction made dirty waits for it: running now
      -- would show it a = 1, which is rolled back below
      assert.are.same({ "0:0" }, seen)
      local ok, tok, err = co_resume(A)
      assert.is_true(ok)
      assert.is_false(tok)
      assert.are.equal("boom", err)
      assert.are.equal(0, a:peek())              -- A's writes rolled back
      assert.are.equal(5, b:peek())              -- B's kept
      assert.are.same({ "0:0", "0:5" }, seen)    -- it never saw a = 1 or 2
      d(); db()
    end)

    it("a transaction of B opened while A is suspended in its own rolls back only B's writes", function()
      local a, b = Async.signal(0), Async.signal(0)
      local A = start(function()
        Async.transaction(function() a:set(1); yield(); a:set(2) end)
      end)
      in_other(function()
        local ok = pcall(Async.transaction, function() b:set(1); error("no") end)
        assert(not ok)
      end)
      assert.are.equal(0, b:peek())
      assert.is_true((co_resume(A)))
      assert.are.equal(2, a:peek())
    end)
  end)

  describe("an effect whose body yields", function()
    -- (kernel9 before the boundary design: the resume ended with CONTEXT_LOST;
    -- now coroutine.resume gives A its context back, so its run ends normally)
    it("does not adopt an effect another coroutine creates meanwhile; its run ends in its own context", function()
      local t, s = Async.signal(0), Async.signal(0)
      local first = true
      local runs_a = 0
      local A = start(function()
        Async.effect(function()
          runs_a = runs_a + 1
          t()
          if first then first = false; yield() end
        end)
      end)
      local runs_b = 0
      local dispose_b
      in_other(function()
        dispose_b = Async.effect(function() runs_b = runs_b + 1; s() end)
      end)
      assert.are.equal(1, runs_b)
      assert.is_true((co_resume(A)))
      assert.are.equal("dead", co_status(A))
      assert.are.equal(1, runs_a)
      t:set(1)                                   -- A's effect reruns: it disposes what it owns
      assert.are.equal(2, runs_a)
      s:set(1)
      assert.are.equal(2, runs_b)                -- B's effect was never A's
      dispose_b()
    end)

    it("a coroutine it resumes (nested, not a yield) still works inside it", function()
      local s, other = Async.signal(0), Async.signal(0)
      local seen = {}
      local d2 = Async.effect(function() seen[#seen + 1] = other() end)
      local inner = co_create(function()
        other:set(1)                             -- its own write: committed at once
        Async.effect(function() end)()           -- created and disposed in its own context
      end)
      local d = Async.effect(function()
        if s() == 1 then assert(co_resume(inner)) end
      end)
      s:set(1)
      assert.are.same({ 0, 1 }, seen)
      s:set(2)                                   -- no error left behind
      d(); d2()
    end)
  end)

  describe("a computed whose getter yields", function()
    it("another coroutine's reads do not link to it and its writes do not raise", function()
      local x, y = Async.signal(1), Async.signal(10)
      local evals = 0
      local c = Async.computed(function()
        evals = evals + 1
        local v = x()
        if evals == 1 then yield() end
        return v * 2
      end)
      local A = start(function() return c() end)
      local got
      in_other(function()
        got = y()                                -- read while A is suspended in c's getter
        y:set(11)                                -- no "Cannot write to a signal inside a computed"
        got = got + y()
      end)
      assert.are.equal(21, got)
      assert.are.equal(2, c())                   -- reading c itself: no "Cycle detected", its value
      -- (kernel9 before the boundary design: CONTEXT_LOST here; now A gets its
      -- context back with the resume and its evaluation ends normally)
      local ok, v = co_resume(A)
      assert.is_true(ok)
      assert.are.equal(2, v)
      local runs = 0
      local d = Async.effect(function() runs = runs + 1; c() end)
      assert.are.equal(1, runs)
      local before = evals
      y:set(12)                                  -- c does not depend on what B read
      assert.are.equal(1, runs)
      assert.are.equal(before, evals)
      x:set(2)                                   -- and does depend on its own reads
      assert.are.equal(2, runs)
      assert.are.equal(4, c())
      d()
    end)

    it("a write inside the computed by its own coroutine still raises", function()
      local s = Async.signal(0)
      local c = Async.computed(function() s:set(1) end)
      local co = co_create(function() return pcall(c) end)
      local _, ok, err = co_resume(co)
      assert.is_false(ok)
      assert.matches("Cannot write to a signal inside a computed", err, 1, true)
    end)
  end)

  describe("scopes and cleanups", function()
    it("a scope suspended in its function does not own another coroutine's effects", function()
      local s = Async.signal(0)
      local dispose_scope
      local A = start(function()
        dispose_scope = Async.scope(function() yield() end)
      end)
      local runs = 0
      local d
      in_other(function() d = Async.effect(function() runs = runs + 1; s() end) end)
      assert.is_true((co_resume(A)))
      dispose_scope()
      s:set(1)
      assert.are.equal(2, runs)
      d()
    end)

    it("on_cleanup from another coroutine does not register on the suspended effect", function()
      local cleaned = 0
      local A = start(function()
        Async.scope(function() yield() end)
      end)
      local registered
      in_other(function() registered = Async.on_cleanup(function() cleaned = cleaned + 1 end) end)
      assert.is_false(registered)
      co_resume(A)
      assert.are.equal(0, cleaned)
    end)
  end)
  describe("the boundaries that switch contexts", function()
    it("coroutine.wrap: a wrapped coroutine yielding inside a batch keeps it, another's writes commit", function()
      local a, b = Async.signal(0), Async.signal(0)
      local seen = {}
      local d = Async.effect(function() seen[#seen + 1] = a() .. "/" .. b() end)
      local step = coroutine.wrap(function()
        Async.batch(function() a:set(1); yield(); a:set(2) end)
        return "done"
      end)
      local seen_b = {}
      local db = Async.effect(function() seen_b[#seen_b + 1] = b() end)
      step()
      b:set(1)                                   -- commits at once
      assert.are.same({ 0, 1 }, seen_b)
      assert.are.same({ "0/0" }, seen)           -- an effect the open batch queued waits for it
      assert.are.equal("done", step())
      assert.are.same({ "0/0", "2/1" }, seen)
      d(); db()
    end)

    it("coroutine.wrap raises the coroutine's error with the caller's position, as LuaJIT's does", function()
      local f = coroutine.wrap(function() error("bad", 0) end)
      local ok, err = pcall(function() f(); end)
      assert.is_false(ok)
      assert.matches("^.-kernel_coroutine_context_spec%.lua:%d+: bad$", err)
      local t = {}
      local g = coroutine.wrap(function() error(t) end)
      local ok2, err2 = pcall(g)
      assert.is_false(ok2)
      assert.are.equal(t, err2)
      local ok3, err3 = pcall(f)
      assert.is_false(ok3)
      assert.matches("cannot resume dead coroutine", err3, 1, true)
    end)

    it("an effect that yields in its body and whose dependency changes meanwhile reruns after", function()
      local t = Async.signal(0)
      local seen, first = {}, true
      local A = start(function()
        Async.effect(function()
          seen[#seen + 1] = t()
          if first then first = false; yield() end
        end)
      end)
      t:set(1)
      assert.are.same({ 0 }, seen)
      assert.is_true((co_resume(A)))
      assert.are.same({ 0, 1 }, seen)
    end)

    it("an entry from the event loop keeps the context of the main thread below it (luv)", function()
      local a = Async.signal(0)
      local seen = {}
      local d = Async.effect(function() seen[#seen + 1] = a() end)
      Async.batch(function()
        a:set(1)
        graph.from_loop(true)                    -- a luv callback nested in this batch
        a:set(2)
      end)
      assert.are.same({ 0, 2 }, seen)
      d()
    end)
  end)

  -- kernel.md: "where the kernel cannot keep the contexts apart it raises a
  -- clear error in the yielding coroutine". A coroutine resumed by something
  -- that does not restore its context (nginx after a raw ngx.sleep or a
  -- cosocket read; here the resume of before this module loaded) after an
  -- entry from the event loop put its context aside.
  describe("a coroutine resumed without its context", function()
    local raw_resume = graph._internal.raw_resume

    local function raw_start(fn)
      local co = co_create(fn)
      local ok, err = raw_resume(co)
      assert(ok, err)
      return co
    end

    it("inside a batch: the entry starts clean, the batch raises CONTEXT_LOST in its coroutine", function()
      local a, b = Async.signal(0), Async.signal(0)
      local seen_a, seen_b = {}, {}
      local da = Async.effect(function() seen_a[#seen_a + 1] = a() end)
      local db = Async.effect(function() seen_b[#seen_b + 1] = b() end)
      local A = raw_start(function()
        Async.batch(function() a:set(1); yield(); a:set(2) end)
      end)
      graph.from_loop()                          -- a request, an ngx timer...
      b:set(5)
      assert.are.same({ 0, 5 }, seen_b)          -- committed at once, not held by A's batch
      assert.are.same({ 0 }, seen_a)             -- A's batch is not committed
      local ok, err = raw_resume(A)
      assert.is_false(ok)
      assert.are.equal(graph.CONTEXT_LOST, err)
      assert.are.equal(2, a:peek())
      assert.are.equal(2, seen_a[#seen_a])       -- what A's batch held was committed
      b:set(6)
      assert.are.same({ 0, 5, 6 }, seen_b)       -- and the kernel is back to plain writes
      local _, orphans = graph._internal.contexts_parked()
      assert.are.equal(0, orphans)               -- the one put aside was taken back
      da(); db()
    end)

    it("inside a component's scope (scope_enter/scope_leave): scope_leave returns CONTEXT_LOST", function()
      local a = Async.signal(0)
      local runs = 0
      local h, got
      local A = raw_start(function()
        local prev
        h, prev = graph.scope_enter(nil)
        Async.effect(function() a(); runs = runs + 1 end)
        yield()
        got = graph.scope_leave(prev, h)
      end)
      graph.from_loop()
      a:set(1)
      assert.are.equal(2, runs)
      local ok, err = raw_resume(A)
      assert(ok, err)
      assert.are.equal(graph.CONTEXT_LOST, got)
      graph.dispose_handle(h)                    -- the caller disposes it, as component.render does
      a:set(2)
      assert.are.equal(2, runs)
      local _, orphans = graph._internal.contexts_parked()
      assert.are.equal(0, orphans)
    end)

    it("inside a transaction: it is rolled back and raises CONTEXT_LOST", function()
      local a = Async.signal(0)
      local A = raw_start(function()
        Async.transaction(function() a:set(1); yield() end)
      end)
      graph.from_loop()
      local ok, err = raw_resume(A)
      assert.is_false(ok)
      assert.are.equal(graph.CONTEXT_LOST, err)
      assert.are.equal(0, a:peek())
    end)

    it("inside a computed: raises CONTEXT_LOST to its reader and caches no value", function()
      local x = Async.signal(1)
      local evals = 0
      local c = Async.computed(function()
        evals = evals + 1
        local v = x()
        if evals == 1 then yield() end
        return v
      end)
      local A = raw_start(function() return c() end)
      graph.from_loop()
      local ok, err = raw_resume(A)
      assert.is_false(ok)
      assert.are.equal(graph.CONTEXT_LOST, err)
      assert.are.equal(1, c())                   -- evaluated again
      assert.are.equal(2, evals)
    end)

    it("inside an effect body: reports CONTEXT_LOST in its coroutine, and runs again on a change", function()
      local t = Async.signal(0)
      local runs, first = 0, true
      local A = raw_start(function()
        Async.effect(function()
          runs = runs + 1
          t()
          if first then first = false; yield() end
        end)
      end)
      graph.from_loop()
      local ok, err = raw_resume(A)
      assert.is_false(ok)
      assert.are.equal(graph.CONTEXT_LOST, err)
      t:set(1)
      assert.are.equal(2, runs)
    end)

    it("an untrack that yields with nothing open is not an error", function()
      local co = co_create(function()
        return Async.untrack(function() yield(); return "ok" end)
      end)
      assert(co_resume(co))
      Async.signal(0):set(1)
      local ok, v = co_resume(co)
      assert.is_true(ok)
      assert.are.equal("ok", v)
    end)
  end)
end)
