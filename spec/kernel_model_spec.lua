-- The kernel model checker (spec/fuzz/kernel_model.lua), short run: 100
-- random programs of 60 steps (6,000 steps) against the naive reference
-- model. `make fuzz` runs 10 million steps (FUZZ_LONG=1). A failure message
-- carries the replay line (FUZZ_SEED=.. FUZZ_START=.. FUZZ_N=1 luajit
-- spec/fuzz/kernel_model.lua).
local util = require("fuzz.util")

local SEED = tonumber(os.getenv("FUZZ_SEED") or "") or 20240601

describe("kernel model checker (short run)", function()
  it("every effect observes what the reference model says, step by step", function()
    local driver = require("fuzz.kernel_model")
    local compacted0 = driver.compacted()
    local stats, failure = util.run(driver, { seed = SEED, n = 100, quiet = true })
    assert(stats, failure)
    assert.equal(100, stats.inputs)
    -- the generator still reaches the coroutine steps
    assert.is_true((stats.counts.coroutine or 0) > 20, "too few programs with a coroutine step")
    -- and the peak steps, which rebuild the kernel's tables under the graph
    assert.is_true(driver.compacted() - compacted0 > 10, "too few programs rebuilt the kernel's tables")
  end)
end)
