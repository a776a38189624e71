-- Short fuzz run of async.scanner under busted (the long run is `make fuzz`).
local fuzz = require("fuzz.run")

describe("scanner fuzz (short run)", function()
  it("finds no crash and no unescaped hostile value in 2,000 inputs", function()
    local seed = tonumber(os.getenv("FUZZ_SEED") or "") or 20240601
    local stats, failure = fuzz.run({ seed = seed, n = 2000, quiet = true })
    assert(stats, failure)
    assert.equal(2000, stats.inputs)
    assert.is_true(stats.compiled > 500, "the generator should produce mostly compilable HTML")
  end)
end)
