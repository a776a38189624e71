-- Robustness: caches keyed by strings a client can choose stay bounded
-- (docs/app-guide.md "Robustness"). Every request here uses a fresh string.
local Async = require("async")
local registry = require("async.app.registry")
local html = require("async.html.template")
local scanner = require("async.html.scanner")

local N = 100000

describe("bounded caches", function()
  it("the signal-path resolution cache holds at most PATH_CACHE_MAX paths", function()
    local s = registry.new()
    s:register("form", { })
    local cap = registry.PATH_CACHE_MAX
    for i = 1, N do
      assert.equal("form", (s:resolve("form.field" .. i)))
      assert.is_true(s.cache_n <= cap)
    end
    local n = 0
    for _ in pairs(s.cache) do n = n + 1 end
    assert.is_true(n <= cap, n .. " cached paths")
    assert.equal(n, s.cache_n)
    -- still right after wrapping around
    s:set("form.a.b", 1)
    assert.equal(1, s:get("form.a.b"))
  end)

  it("a runtime dispatching fresh client paths keeps its path cache bounded", function()
    local app = Async.define_app({ signal = { form = {} }, handler = { noop = function() end } })
    local rt = Async.create_app(app)
    for i = 1, 2000 do
      rt:dispatch("noop", {}, { signals = { ["form.f" .. i] = i } })
    end
    assert.is_true(rt.signals.cache_n <= registry.PATH_CACHE_MAX)
  end)

  it("compiled templates: at most 2 * cache_size are kept", function()
    html.clear_cache()
    local cap = 2 * html.cache_size
    for i = 1, N do
      local out = tostring(html.html("<p>" .. i .. " {{ x }}</p>")({ x = "y" }))
      if i % 997 == 0 then assert.equal("<p>" .. i .. " y</p>", out) end
    end
    assert.is_true(html.cache_count() <= cap, html.cache_count() .. " templates kept")
  end)

  it("a template in use stays compiled while fresh ones come and go", function()
    html.clear_cache()
    local hot = html.html("<b>{{ x }}</b>")
    for i = 1, 5 * html.cache_size do
      html.html("<i>" .. i .. "</i>")
      assert.equal(hot, html.html("<b>{{ x }}</b>"))
    end
  end)

  it("render plans: at most 2 * cache_size per prefix config", function()
    scanner.cache_clear()
    for i = 1, N / 10 do
      assert(scanner.compile('<p signal:text="x">' .. i .. "</p>"))
    end
    assert.is_true(scanner.cache_count() <= 2 * scanner.cache_size)
  end)

  it("prefix configs: at most MAX_CONFIGS are kept", function()
    for i = 1, 3 * scanner.MAX_CONFIGS do
      assert(scanner.compile('<p x' .. i .. '-text="a"></p>', { prefixes = { signal = "x" .. i .. "-" } }))
    end
    assert.is_true(scanner.config_count() <= scanner.MAX_CONFIGS)
    assert.is_true(scanner.cache_count() <= 2 * scanner.cache_size * scanner.MAX_CONFIGS)
  end)
end)
