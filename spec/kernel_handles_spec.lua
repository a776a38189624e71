-- Signal and computed handles have no finalizer each (docs/kernel.md,
-- "Node handles"): a weak registry maps id -> handle, one sentinel notes
-- the end of each GC cycle, and the next safe point frees the nodes whose
-- handle was collected. These cases pin what a finalizer per handle gave.
local Async = require("async")
local kernel_core = require("async.kernel.core")

-- Collects until the node count stops moving: a node whose handle is an
-- upvalue of a dropped computed's getter is freed one cycle after that
-- computed (the getter is held until its node is freed), as it was with a
-- finalizer per handle.
local function settle()
  local n
  for _ = 1, 10 do
    collectgarbage(); collectgarbage()
    Async.batch(function() end)   -- a safe point: the sweep and the frees run
    local now = Async.core_stats().live_nodes
    if now == n then return n end
    n = now
  end
  return n
end

describe("node handles without finalizers", function()
  it("frees dropped signals and computeds at the next safe point after a collection", function()
    local base = settle()
    do
      local list = {}
      for i = 1, 1000 do
        local s = Async.signal(i)
        list[i] = Async.computed(function() return s() * 2 end)
        assert.equal(i * 2, list[i]())
      end
      assert.equal(base + 2000, Async.core_stats().live_nodes)
    end
    assert.equal(base, settle())
  end)

  it("keeps every node whose handle is alive, however many cycles pass", function()
    local base = settle()
    local kept, sums = {}, {}
    for i = 1, 50 do
      local s = Async.signal(i)
      kept[i] = s
      sums[i] = Async.computed(function() return s() + 1 end)
    end
    local runs = 0
    local dispose = Async.effect(function() runs = runs + 1; return sums[50]() end)
    for round = 1, 20 do
      for _ = 1, 2000 do Async.computed(function() return round end) end   -- dropped at once
      collectgarbage()
      Async.batch(function() end)
    end
    for i = 1, 50 do
      assert.equal(i + 1, sums[i]())
      kept[i]:set(i * 10)
      assert.equal(i * 10 + 1, sums[i]())
    end
    assert.equal(2, runs)   -- the effect still depends on sums[50]
    dispose()
    assert.equal(base + 100, settle())
  end)

  it("a handle referenced only by a live computed's getter keeps its node", function()
    local base = settle()
    local outer
    do
      local inner = Async.signal("x")
      outer = Async.computed(function() return inner() .. "!" end)
    end
    assert.equal("x!", outer())
    for _ = 1, 3 do assert.equal(base + 2, settle()) end
    assert.equal("x!", outer())
    outer = nil   -- luacheck: ignore 311
    assert.equal(base, settle())
  end)

  it("loses no frees when async signals are collected during the sweep", function()
    local base = settle()
    for _ = 1, 20 do
      for i = 1, 300 do
        Async.signal(i)
        Async.async_signal(function() return i end)
      end
      collectgarbage("step", 200)
    end
    assert.equal(base, settle())
  end)

  it("shrinks its registry after a peak (a long-running server's memory)", function()
    settle()
    jit.flush()
    settle()
    local kb0 = collectgarbage("count")
    do
      local list = {}
      for i = 1, 100000 do list[i] = Async.signal(i) end
      assert.equal(100000, #list)
    end
    settle()
    settle()
    jit.flush()
    collectgarbage(); collectgarbage()
    local grown = collectgarbage("count") - kb0
    -- the C node array keeps its capacity; the Lua side keeps what its
    -- value tables grew to (vals/seen: 16 bytes per id at the peak), not
    -- the registry's 100,000 slots
    print(("\n  handles: 100,000 signals dropped: heap %+.0f KB"):format(grown))
    assert.is_true(grown < 2500, ("heap grew by %.0f KB"):format(grown))
    assert.is_true(kernel_core.G.live_nodes >= 0)
  end)
end)
