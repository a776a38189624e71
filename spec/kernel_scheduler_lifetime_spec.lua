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
end)
