-- Schedulers are held weakly and released when collected (a runtime per
-- request must not leak its scheduler); an effect keeps its scheduler alive.
local Async = require("async")

describe("Scheduler lifetime", function()
  it("an effect keeps a scheduler nobody else references alive", function()
    local s = Async.signal(0)
    local runs = 0
    local dispose = Async.effect(function() s(); runs = runs + 1 end,
      { scheduler = Async.create_scheduler({ strategy = "sync" }) })
    jit.flush()
    collectgarbage()
    collectgarbage()
    s:set(1)
    assert.equal(2, runs)
    dispose()
  end)

  it("a released scheduler drops its jobs and its effects never run again", function()
    local sched = Async.create_scheduler({ strategy = "manual" })
    local s = Async.signal(0)
    local runs = 0
    Async.effect(function() s(); runs = runs + 1 end, { scheduler = sched })
    sched:flush()
    assert.equal(1, runs)
    s:set(1)
    sched:release()
    sched:release()                      -- idempotent
    local other = Async.create_scheduler({ strategy = "manual" })   -- may reuse the slot
    s:set(2)
    other:flush()
    assert.equal(1, runs)
    assert.equal(0, other:size())
  end)
  -- keys and scopes built from request data must not grow the intern table
  describe("interned keys and scopes are released", function()
    it("when their jobs run, are dropped as duplicates, or are cleared", function()
      local s = Async.create_scheduler({ strategy = "manual" })
      for i = 1, 5000 do
        s:enqueue("post", function() end, { key = "req:" .. i, scope = "comp:" .. i })
        s:enqueue("post", function() end, { key = "req:" .. i, scope = "comp:" .. i })   -- duplicate: dropped
      end
      assert.equal(10000, s:interned())
      s:flush()
      assert.equal(0, s:interned())
      for i = 1, 100 do s:enqueue("post", function() end, { key = "k" .. i }) end
      s:clear()
      assert.equal(0, s:interned())
      s:release()
    end)

    it("a destroyed scope holds its name until revived; a scheduler's names go with it", function()
      local s = Async.create_scheduler({ strategy = "manual" })
      local ran = 0
      s:enqueue("post", function() ran = ran + 1 end, { scope = "gone" })
      s:destroy_scope("gone")
      s:destroy_scope("gone")
      s:flush()
      assert.equal(0, ran)
      assert.equal(1, s:interned())                        -- dead: still named
      assert.is_false(s:enqueue("post", function() ran = ran + 1 end, { scope = "gone" }))
      s:revive_scope("gone")
      assert.equal(0, s:interned())
      s:revive_scope("never destroyed")
      assert.equal(0, s:interned())
      s:destroy_scope("other")
      s:release()
      assert.equal(0, s:interned())
      local t = Async.create_scheduler({ strategy = "manual" })
      t:destroy_scope("collected")
      t:enqueue("post", function() end, { key = "pending" })
      assert.equal(2, t:interned())
      local names = setmetatable({ t.ids }, { __mode = "v" })
      t = nil -- luacheck: ignore 311
      collectgarbage(); collectgarbage()
      assert.is_nil(names[1])                              -- no global table keeps them
    end)

    it("a job's key is reported to on_error before it is released", function()
      local seen
      local s = Async.create_scheduler({ strategy = "manual", on_error = function(_, job) seen = job.key end })
      s:enqueue("post", function() error("x") end, { key = "the-key" })
      s:flush()
      assert.equal("the-key", seen)
      s:release()
    end)
  end)
end)
