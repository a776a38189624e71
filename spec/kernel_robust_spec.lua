-- kernel.md "Robustness rules": one regression per rule that used to fail.
local Async = require("async")

describe("kernel robustness", function()
  describe("disposal at any moment is safe", function()
    it("an effect whose cleanup disposes it: no error, never runs again", function()
      local s = Async.signal(0)
      local runs, dispose = 0, nil
      dispose = Async.effect(function()
        runs = runs + 1
        s()
        return function() dispose() end
      end)
      s:set(1)          -- cleanup runs first and disposes the effect: the run is skipped
      s:set(2)
      assert.are.equal(1, runs)
      dispose()         -- twice does nothing
    end)

    it("an effect disposed by a computed during propagation never runs again", function()
      local s = Async.signal(0)
      local runs, dispose = 0, nil
      local c = Async.computed(function()
        if s() > 0 and dispose then dispose() end
        return s()
      end)
      local first = Async.effect(function() c() end)
      dispose = Async.effect(function() runs = runs + 1; s() end)
      assert.are.equal(1, runs)
      s:set(1)
      s:set(2)
      assert.are.equal(1, runs)
      first()
    end)

    it("an effect disposed by another effect of the same flush never runs again", function()
      local s = Async.signal(0)
      local runs, dispose_b = 0, nil
      local a = Async.effect(function() if s() == 1 then dispose_b() end end)
      dispose_b = Async.effect(function() runs = runs + 1; s() end)
      s:set(1)
      assert.are.equal(1, runs)
      -- the freed id is reused by new nodes; the old job must not run them twice
      local seen = 0
      local d = Async.effect(function() seen = seen + 1; s() end)
      s:set(2)
      assert.are.equal(2, seen)
      a(); d()
    end)

    it("many self-disposing effects in one long process do not hang or raise", function()
      local s = Async.signal(0)
      for round = 1, 200 do
        local disposers = {}
        for i = 1, 20 do
          local d
          d = Async.effect(function()
            s()
            return function() d() end
          end)
          disposers[i] = d
        end
        s:set(round)
        for i = 1, 20 do disposers[i]() end
      end
      assert.are.equal(200, s:peek())
    end)
  end)

  describe("disposal at any moment is safe (more moments)", function()
    it("disposing an owner while its child is queued: neither runs, nothing raises", function()
      local s = Async.signal(0)
      local child_runs, owner_runs = 0, 0
      local dispose_owner
      local killer = Async.effect(function() if s() == 1 then dispose_owner() end end)
      dispose_owner = Async.scope(function()
        Async.effect(function() owner_runs = owner_runs + 1; s() end)
        Async.effect(function() child_runs = child_runs + 1; s() end)
      end)
      s:set(1)           -- the killer runs first (created first) and disposes the queued effects
      assert.are.equal(1, owner_runs)
      assert.are.equal(1, child_runs)
      s:set(2)
      assert.are.equal(1, child_runs)
      killer()
    end)

    it("disposing an effect during a pull (a computed it reads disposes it) then during a cleanup", function()
      local s = Async.signal(0)
      local runs = 0
      local dispose_e, dispose_other
      local c = Async.computed(function() if s() == 2 then dispose_e() end return s() end)
      dispose_other = Async.effect(function() s(); return function() if s() == 1 then dispose_other() end end end)
      dispose_e = Async.effect(function() runs = runs + 1; c() end)
      s:set(1)           -- dispose_other's cleanup disposes it
      s:set(2)           -- e's pull runs c, which disposes e
      s:set(3)
      assert.are.equal(2, runs)
      dispose_e(); dispose_other()
    end)
  end)

  describe("an error that escapes a flush leaves the kernel usable", function()
    it("the next write, batch and flush work; no job is lost or run twice", function()
      local s, t = Async.signal(0), Async.signal(0)
      local seen_t, boom_runs = {}, 0
      local boom = Async.effect(function()
        boom_runs = boom_runs + 1
        if s() == 1 then error("boom", 0) end
      end)
      local other = Async.effect(function() seen_t[#seen_t + 1] = t() .. "/" .. s() end)
      local ok, err = pcall(function() s:set(1) end)
      assert.is_false(ok)
      assert.are.equal("boom", err)
      assert.are.same({ "0/0", "0/1" }, seen_t)      -- the other effect of that flush ran, once
      t:set(1)                                       -- the next write works
      assert.are.same({ "0/0", "0/1", "1/1" }, seen_t)
      Async.batch(function() t:set(2); s:set(2) end) -- and the next batch
      assert.are.same({ "0/0", "0/1", "1/1", "2/2" }, seen_t)
      assert.are.equal(3, boom_runs)                 -- the raising effect stayed subscribed
      Async.flush()
      assert.are.same({ "0/0", "0/1", "1/1", "2/2" }, seen_t)
      boom(); other()
    end)
  end)

  describe("a rolled-back transaction reruns nothing", function()
    it("effects see neither the writes nor an extra run", function()
      local a, b = Async.signal(1), Async.signal("x")
      local doubled = Async.computed(function() return a() * 2 end)
      local runs, seen = 0, {}
      local dispose = Async.effect(function() runs = runs + 1; seen[#seen + 1] = doubled() .. b() end)
      local ok = pcall(Async.transaction, function()
        a:set(5); b:set("y")
        assert(doubled() == 10 and b() == "y")   -- reads inside see the new values
        error("boom")
      end)
      assert.is_false(ok)
      assert.are.equal(1, runs)
      assert.are.same({ "2x" }, seen)
      assert.are.equal(1, a:peek())
      a:set(2)
      assert.are.same({ "2x", "4x" }, seen)
      dispose()
    end)
  end)

  describe("a rolled-back nested transaction leaves no stale computed (found by spec/fuzz/kernel_model.lua)", function()
    it("a computed recomputed to an equal value inside it is recomputed after the rollback", function()
      local s = Async.signal(5)
      local c = Async.computed(function()
        local v = s()
        if v % 3 == 0 then error("bad " .. v, 0) end
        return v + 1
      end)
      local seen = {}
      local d = Async.effect(function() seen[#seen + 1] = select(2, pcall(c)) end)
      Async.transaction(function()
        s:set(6)
        assert(s() == 6)                       -- the read moves s's baseline to 6
        pcall(Async.transaction, function()
          Async.transaction(function()
            s:set(5)
            assert(c() == 6)                   -- c recomputed from 5: equal to its cache
          end)
          error("rollback", 0)
        end)
      end)
      assert.are.equal(6, s:peek())
      assert.are.same({ 6, "bad 6" }, seen)     -- not the value computed from the rolled-back 5
      d()
    end)
  end)

  describe("a rolled-back inner transaction keeps what the outer one committed (found by spec/fuzz/kernel_model.lua)",
    function()
    it("an effect made dirty by a change the outer level read still runs", function()
      local a, b = Async.signal(6), Async.signal(9)
      local doubled = Async.computed(function() return a() * 2 end)
      local seen = {}
      local d = Async.effect(function() seen[#seen + 1] = a() .. "," .. b() end)
      Async.transaction(function()
        a:set(5)
        assert(doubled() == 10)                 -- the outer level reads a's change
        pcall(Async.transaction, function()
          b:set(7)                               -- the effect also reads b
          error("rollback", 0)
        end)
      end)
      assert.are.same({ "6,9", "5,9" }, seen)  -- a = 5 was committed: the effect ran once
      d()
    end)
  end)

  describe("a rollback marks the readers of the computeds it restores (found by spec/fuzz/kernel_model.lua)", function()
    it("a computed above a restored one is not left with a value from the rolled-back state", function()
      local flip, x, y = Async.signal(2), Async.signal(6), Async.signal(5)
      local pick = Async.computed(function() if flip() % 2 == 0 then return y() end return x() end)
      local half = Async.computed(function() return math.floor(pick() / 2) end)
      assert.are.equal(2, half())
      Async.transaction(function()
        pcall(Async.transaction, function()
          flip:set(3)
          assert(flip() == 3)                  -- moves flip's baseline only
          flip:set(2)
          assert(half() == 2)                  -- pick recomputed to an equal value: half stays clean
          error("rollback", 0)
        end)
        y:set(7)
      end)
      assert.are.equal(3, half())              -- y = 7 committed: pick 7, half 3
    end)
  end)

  describe("a rollback puts back the baselines its reads moved (found by spec/fuzz/kernel_model.lua)", function()
    it("an outer write first read inside a rolled-back inner level still reruns its readers", function()
      local s = Async.signal(9)
      local plus = Async.computed(function() return s() + 1 end)
      local seen = {}
      local d = Async.effect(function() seen[#seen + 1] = s() end)
      Async.transaction(function()
        s:set(1)                                -- the outer level's write
        pcall(Async.transaction, function()
          assert(plus() == 2)                   -- first read of it, inside the inner level
          s:set(7)
          error("rollback", 0)
        end)
      end)
      assert.are.equal(1, s:peek())
      assert.are.same({ 9, 1 }, seen)          -- the effect saw 9 and must see 1
      d()
    end)
  end)

  describe("loop schedulers", function()
    it("run jobs enqueued with no write to poke them, on a later tick", function()
      local loop = Async.manual_loop()
      local s = Async.create_scheduler({ strategy = "loop", loop = loop })
      local ran = {}
      s:enqueue("effect", function() ran[#ran + 1] = "a" end)
      s:enqueue("post", function() ran[#ran + 1] = "b" end)
      assert.are.same({}, ran)
      loop:advance(0)
      assert.are.same({ "a", "b" }, ran)
      s:enqueue("effect", function() ran[#ran + 1] = "c" end)
      loop:advance(0)
      assert.are.same({ "a", "b", "c" }, ran)
    end)
  end)

  describe("an async run commits as a transaction", function()
    it("a write that raises while the run's writes are published rolls all of them back", function()
      local loop = Async.manual_loop()
      local prev = Async.get_loop()
      Async.set_loop(loop)
      local a = Async.signal(0)
      local picky = Async.signal(0, { equals = function(_, new)
        if new == 13 then error("unlucky") end
        return false
      end })
      local seen = {}
      local dispose = Async.effect(function() seen[#seen + 1] = a() .. ":" .. picky:peek() end)
      local task = Async.async_signal(function()
        Async.delay(10)
        a:set(1)
        picky:set(13)
        return "done"
      end)
      loop:advance(10)
      Async.set_loop(prev)
      assert.are.equal(0, a:peek())            -- not half committed
      assert.are.equal(0, picky:peek())
      assert.are.equal("error", task:status())
      assert.is_truthy(task:error().message:find("unlucky", 1, true))
      assert.is_nil(task:peek())
      assert.are.same({ "0:0" }, seen)
      dispose()
    end)
  end)
end)

describe("abort tokens", function()
  it("a callback that unregisters another during cancel: the rest still run, the unregistered one does not", function()
    local token = Async.abort_token()
    local ran = {}
    local off_b
    token:on_abort(function() ran[#ran + 1] = "a"; off_b() end)
    off_b = token:on_abort(function() ran[#ran + 1] = "b" end)
    token:on_abort(function() ran[#ran + 1] = "c" end)
    token:cancel("x")
    assert.are.same({ "a", "c" }, ran)
  end)

  it("many registrations undone on a long-lived token do not pile up", function()
    local token = Async.abort_token()
    for _ = 1, 10000 do
      local off = token:on_abort(function() end)
      off()
    end
    assert.is_true(#token._cbs < 32)
    local ran = false
    token:on_abort(function() ran = true end)
    token:cancel()
    assert.is_true(ran)
  end)
end)
