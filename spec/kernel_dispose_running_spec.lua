-- Regression: an effect disposed while its own body runs (directly, through
-- its owner, or by a coroutine it resumes) finishes its run and is released
-- after it; before the fix the core freed the node under the running effect
-- and crashed in ac_end.
local Async = require("async")

describe("Effects rule 4: disposing a running effect", function()
  it("an effect that disposes itself finishes its run, then never runs again", function()
    local s = Async.signal(0)
    local runs, cleanups = 0, 0
    local dispose
    dispose = Async.effect(function()
      runs = runs + 1
      if s() == 1 then dispose() end
      return function() cleanups = cleanups + 1 end
    end)
    local start = Async.core_stats().live_nodes
    s:set(1)
    assert.equal(2, runs)
    assert.equal(2, cleanups)       -- the first run's cleanup at rerun, the second at release
    s:set(2)
    assert.equal(2, runs)
    assert.equal(start - 1, Async.core_stats().live_nodes)
  end)

  it("an effect that disposes its owner scope while running", function()
    local s = Async.signal(0)
    local inner_runs = 0
    local dispose_scope
    dispose_scope = Async.scope(function()
      Async.effect(function()
        inner_runs = inner_runs + 1
        if s() == 1 then
          dispose_scope()
          Async.effect(function() inner_runs = inner_runs + 100 end) -- created after disposal
        end
      end)
    end)
    s:set(1)
    s:set(2)
    assert.equal(2, inner_runs)     -- neither the disposed effect nor its late child runs
  end)

  it("a coroutine resumed inside an effect may dispose that effect", function()
    local s = Async.signal(0)
    local dispose
    local finished = false
    local co = coroutine.create(function()
      coroutine.yield()
      dispose()
      for _ = 1, 100 do Async.effect(function() end)() end   -- reuse freed slots
      finished = true
    end)
    coroutine.resume(co)
    dispose = Async.effect(function()
      if s() == 1 then coroutine.resume(co) end
    end)
    s:set(1)
    assert.is_true(finished)
    s:set(2)
  end)
end)
