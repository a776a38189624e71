-- The seeded PRNG of milomg/js-reactivity-benchmark (an xmur3a string hash
-- seeding sfc32), with JavaScript's 32-bit integer semantics, so that the
-- reactively dynamic graphs built here are the very graphs built in JS.
local bit = require("bit")
local band, bor, bxor, tobit = bit.band, bit.bor, bit.bxor, bit.tobit
local lshift, rshift = bit.lshift, bit.rshift

local TWO32 = 4294967296

-- Math.imul: the low 32 bits of a * b, as a signed int32.
local function imul(a, b)
  local alo, ahi = band(a, 0xffff), rshift(tobit(a), 16)
  local blo, bhi = band(b, 0xffff), rshift(tobit(b), 16)
  return tobit(alo * blo + ((ahi * blo + alo * bhi) % 65536) * 65536)
end

-- x >>> 0
local function u32(x)
  return tobit(x) % TWO32
end

local M = {}
M.imul = imul

function M.pseudo_random(seed)
  seed = seed or "seed"
  local h = u32(2166136261)
  for i = 1, #seed do
    local k = imul(seed:byte(i), 3432918353)
    k = bor(lshift(k, 15), rshift(k, 17))
    h = bxor(h, imul(k, 461845907))
    h = bor(lshift(h, 13), rshift(h, 19))
    h = tobit(imul(h, 5) + 3864292196)
  end
  h = bxor(h, #seed)
  local function next_hash()
    h = bxor(h, rshift(h, 16))
    h = imul(h, 2246822507)
    h = bxor(h, rshift(h, 13))
    h = imul(h, 3266489909)
    h = bxor(h, rshift(h, 16))
    return u32(h)
  end
  local a, b, c, d = next_hash(), next_hash(), next_hash(), next_hash()
  return function()
    local t = tobit(a + b)
    a = bxor(b, rshift(b, 9))
    b = tobit(c + lshift(c, 3))
    c = bor(lshift(c, 21), rshift(c, 11))
    d = tobit(d + 1)
    t = tobit(t + d)
    c = tobit(c + t)
    return u32(t) / TWO32
  end
end

return M
