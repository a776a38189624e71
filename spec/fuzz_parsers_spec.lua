-- Short fuzz runs of the parsers (2,000 inputs each); the long runs
-- (100,000 each) are `make fuzz`. A failure message carries the replay line
-- (FUZZ_SEED=.. FUZZ_START=.. FUZZ_N=1 luajit spec/fuzz/NAME.lua).
local util = require("fuzz.util")

local SEED = tonumber(os.getenv("FUZZ_SEED") or "") or 20240601

-- driver module, what it checks, and a counter that must not stay empty
local DRIVERS = {
  { "fuzz.chain", "command chains parse or refuse clearly, round trip, keep $event/$el off the server",
    "generated" },
  { "fuzz.router", "route patterns and paths agree with a naive protocol.md reference", "matched" },
  { "fuzz.html", "templates compile or fail with template:LINE:, hostile values never come out raw",
    "generated" },
  { "fuzz.json", "JSON decode never raises, agrees with an RFC 8259 reference, round trips", "accepted" },
  { "fuzz.paths", "signal paths: clear errors, copy-on-write, no other signal touched", "ok" },
}

describe("parser fuzz (short runs)", function()
  for _, d in ipairs(DRIVERS) do
    it(d[1] .. ": " .. d[2], function()
      local driver = require(d[1])
      local stats, failure = util.run(driver, { seed = SEED, n = 2000, quiet = true })
      assert(stats, failure)
      assert.equal(2000, stats.inputs)
      assert.is_true((stats.counts[d[3]] or 0) > 200, "too few " .. d[3] .. " inputs: the generator drifted")
    end)
  end

  it("replays: the same seed and input give the same bytes", function()
    local a, b = util.rng(7, 42), util.rng(7, 42)
    for _ = 1, 100 do assert.equal(a:next(), b:next()) end
    assert.are_not.equal(util.rng(7, 42):next(), util.rng(7, 43):next())
  end)
end)
