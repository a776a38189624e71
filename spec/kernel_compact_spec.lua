-- The kernel after a peak (docs/kernel.md, "Ids and the tables after a
-- peak"): the core hands out the lowest free id, node_top comes down as a
-- peak's nodes are freed, and once it is at most a quarter of the peak the
-- kernel rebuilds its id-indexed tables over the live ids and trims the
-- core's link array. Everything that lived through the peak must work as before.
local Async = require("async")
local graph = require("async.kernel.graph")
local kernel_core = require("async.kernel.core")
local G = kernel_core.G

local compactions = 0
graph._internal.on_compact(function() compactions = compactions + 1 end)

local function settle()
  jit.flush()   -- traces hold the closures and objects they specialised on
  Async.collect_garbage()
  Async.collect_garbage()
end

local peak = require("support.peak")   -- a peak of n nodes, dropped

describe("the kernel after a peak of nodes", function()
  it("rebuilds its tables and trims the core; what lived through the peak works as before", function()
    settle()
    local sched = Async.create_scheduler({ strategy = "manual" })
    local log = {}
    local function note(x) log[#log + 1] = x end

    -- the survivors, made before the peak: every kind of table entry
    local s = Async.signal(1, { equals = function(a, b) return a % 10 == b % 10 end })
    local c = Async.computed(function() return s() * 2 end)
    local lazy = Async.computed(function() return s() + 100 end)
    Async.effect(function()
      local v = c()
      note("global " .. v)
      Async.on_cleanup(function() note("cleanup " .. v) end)
    end)
    local scoped_dispose = Async.scope(function()
      Async.effect(function()
        local v = s()
        return function() note("scoped cleanup " .. v) end
      end)
    end)
    Async.effect(function() note("sched " .. s()) end, { scheduler = sched })
    local r = graph.root()
    Async.effect(function() note("root " .. c()) end, { root = r })
    local a = Async.async_signal(function() return s() * 3 end, { scheduler = sched })
    sched:flush()
    assert.equal(3, a())
    log = {}

    -- the peak: at least 3x the slots in use, so node_top falls to a quarter
    local top0 = G.node_top
    local before = compactions
    peak(math.max(90000, 4 * top0))
    local peak_top, peak_link_cap = G.node_peak, G.link_cap
    assert.is_true(peak_top >= 4 * top0)
    settle()
    collectgarbage()
    assert.is_true(compactions > before, "no compaction after the peak")
    assert.is_true(G.node_top <= top0 + 8, "node_top " .. G.node_top .. " after a peak; was " .. top0)
    -- the link array is trimmed; the node array keeps its capacity (ids the
    -- kernel holds after their node is freed stay in bounds)
    assert.is_true(G.link_cap * 4 <= peak_link_cap, "link_cap " .. G.link_cap .. " not trimmed (was " ..
      peak_link_cap .. ")")
    assert.is_true(G.node_cap >= peak_top and G.marks_cap >= G.node_cap and G.out_cap >= G.node_top)

    -- the survivors: values, custom equals, cleanups, scopes, schedulers,
    -- roots and async signals
    assert.equal(2, c())
    assert.equal(101, lazy())
    s:set(11)                     -- equal under the custom equals: nothing runs
    sched:flush()
    assert.same({}, log)
    assert.equal(2, c())
    s:set(2)
    sched:flush()
    table.sort(log)
    assert.same({ "cleanup 2", "global 4", "root 4", "sched 2", "scoped cleanup 1" }, log)
    assert.equal(6, a())
    assert.equal(102, lazy())
    log = {}
    scoped_dispose()
    assert.same({ "scoped cleanup 2" }, log)
    log = {}
    r:dispose()
    s:set(3)
    sched:flush()
    table.sort(log)
    assert.same({ "cleanup 4", "global 6", "sched 3" }, log)
    assert.equal(9, a())

    -- new nodes take the lowest free ids, and a dropped handle is still freed
    local fresh = Async.signal(0)
    assert.is_true(fresh.id < G.node_top and fresh.id <= top0 + 8)
    local id = fresh.id
    fresh = nil   -- luacheck: ignore 311
    settle()
    assert.is_true(bit.band(G.nodes[id].flags, kernel_core.FREE) ~= 0 or id >= G.node_top)
  end)

  it("does not rebuild for a peak under 65536 slots", function()
    settle()
    local before = compactions
    local top0 = G.node_top
    -- a peak that ends just under the threshold, whatever other spec files
    -- left in use in this process
    assert.is_true(top0 < 50000, "node_top " .. top0 .. " leaves no room for the case")
    peak(63000 - top0)
    assert.is_true(G.node_peak < 65536)
    settle()
    assert.equal(before, compactions)
    assert.is_true(G.node_top <= top0 + 8)
  end)
end)
