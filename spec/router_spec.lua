-- Router: matching, ranking, decoding and errors (protocol.md, "Route partials").
local E = require("support.errors")
local router = require("async.app.router")

-- Builds a router from an array of patterns; each route is its pattern.
local function make(patterns)
  local r = router.new()
  for _, p in ipairs(patterns) do r:add(p, "route " .. p) end
  return r
end

describe("router", function()
  describe("match", function()
    -- { name, patterns, path, expected pattern (false = no match), expected params }
    local cases = {
      { "root", { "/", "*" }, "/", "/", {} },
      { "root does not match others", { "/" }, "/a", false },
      { "static", { "/about" }, "/about", "/about", {} },
      { "no trailing slash tolerance", { "/about" }, "/about/", false },
      { "no trailing slash tolerance (pattern)", { "/about" }, "/about/x", false },
      { "anchored at the start", { "/b" }, "/a/b", false },
      { "empty path is /", { "/" }, "", "/", {} },
      { "param", { "/products/:id" }, "/products/sku-1", "/products/:id", { id = "sku-1" } },
      { "param needs a char", { "/products/:id" }, "/products/", false },
      { "param is one segment", { "/products/:id" }, "/products/a/b", false },
      { "two params", { "/u/:user/p/:post" }, "/u/ann/p/7", "/u/:user/p/:post", { user = "ann", post = "7" } },
      { "named splat", { "/files/*rest" }, "/files/a/b.txt", "/files/*rest", { rest = "a/b.txt" } },
      { "bare splat", { "/files/*" }, "/files/a/b", "/files/*", { ["*"] = "a/b" } },
      { "splat needs one char", { "/files/*" }, "/files/", false },
      { "splat needs the slash", { "/files/*" }, "/files", false },
      { "star alone matches everything", { "*" }, "/x/y/z", "*", {} },
      { "star alone matches root", { "*" }, "/", "*", {} },
      { "static beats param", { "/products/:id", "/products/new" }, "/products/new", "/products/new", {} },
      { "param beats splat", { "/products/*", "/products/:id" }, "/products/1", "/products/:id", { id = "1" } },
      { "splat when param fails", { "/products/*", "/products/:id" }, "/products/1/x", "/products/*",
        { ["*"] = "1/x" } },
      { "anything beats *", { "*", "/*" }, "/a", "/*", { ["*"] = "a" } },
      { "* is the fallback", { "*", "/a" }, "/b", "*", {} },
      { "root beats splat-only", { "/*", "/" }, "/", "/", {} },
      { "tie: longer pattern wins", { "/a/:p", "/:xx/b" }, "/a/b", "/:xx/b", { xx = "a" } },
      { "tie: longer pattern wins (reversed)", { "/:xx/b", "/a/:p" }, "/a/b", "/:xx/b", { xx = "a" } },
      { "tie: same length, first defined wins", { "/a/:p", "/:x/b" }, "/a/b", "/a/:p", { p = "b" } },
      { "tie: same length, first defined wins (reversed)", { "/:x/b", "/a/:p" }, "/a/b", "/:x/b", { x = "a" } },
      { "tie: same length, first defined wins (both dynamic)", { "/:a/x", "/:b/x" }, "/q/x", "/:a/x", { a = "q" } },
      { "static first segment beats dynamic", { "/:a/:b", "/x/:b" }, "/x/y", "/x/:b", { b = "y" } },
      { "dynamic wins on rank", { "/x/*", "/:a/y" }, "/x/y", "/:a/y", { a = "x" } },
      { "query ignored", { "/p/:id" }, "/p/1?x=2&y=3", "/p/:id", { id = "1" } },
      { "fragment ignored", { "/p/:id" }, "/p/1#top", "/p/:id", { id = "1" } },
      { "full url", { "/p/:id" }, "https://example.com:8080/p/9?q", "/p/:id", { id = "9" } },
      { "full url root", { "/" }, "http://example.com", "/", {} },
      { "decoded param", { "/s/:q" }, "/s/a%20b%2Fc", "/s/:q", { q = "a b/c" } },
      { "decoded utf-8", { "/s/:q" }, "/s/caf%C3%A9", "/s/:q", { q = "caf\195\169" } },
      { "plus stays plus", { "/s/:q" }, "/s/a+b", "/s/:q", { q = "a+b" } },
      { "malformed escape stays raw", { "/s/:q" }, "/s/100%", "/s/:q", { q = "100%" } },
      { "malformed hex stays raw", { "/s/:q" }, "/s/%zz%20", "/s/:q", { q = "%zz%20" } },
      { "invalid utf-8 stays raw", { "/s/:q" }, "/s/%C3%28", "/s/:q", { q = "%C3%28" } },
      { "decoded splat", { "/f/*p" }, "/f/a%20b/c", "/f/*p", { p = "a b/c" } },
      { "static segments are literal", { "/a.b/(c)" }, "/a.b/(c)", "/a.b/(c)", {} },
      { "dot is not a wildcard", { "/a.b" }, "/axb", false },
      { "static segments compare raw", { "/a%20b" }, "/a%20b", "/a%20b", {} },
      { "static segments do not decode", { "/a%20b" }, "/a%2520b", false },
      -- found by spec/fuzz/router.lua: the Lua pattern stopped at the NUL, so
      -- "/a\0c" matched every path starting with "/a"
      { "a NUL byte in a pattern is literal", { "/a\0c" }, "/a\0b/x", false },
      { "a NUL byte in a pattern matches itself", { "/a\0c/:p" }, "/a\0c/1", "/a\0c/:p", { p = "1" } },
    }
    for _, case in ipairs(cases) do
      local name, patterns, path, want, params = case[1], case[2], case[3], case[4], case[5]
      it(name, function()
        local m = make(patterns):match(path)
        if want == false then
          assert.is_nil(m)
        else
          assert.is_table(m)
          assert.are.equal(want, m.pattern)
          assert.are.equal("route " .. want, m.route)
          assert.are.same(params, m.params)
        end
      end)
    end
  end)

  it("returns path and query", function()
    local m = make({ "/p/:id" }):match("/p/1?a=b")
    assert.are.equal("/p/1", m.path)
    assert.are.equal("a=b", m.query)
  end)

  describe("bad patterns", function()
    local cases = {
      { "abc", 'Invalid route pattern "abc": a pattern starts with "/" or is "*"' },
      { "", 'Invalid route pattern "": a pattern starts with "/" or is "*"' },
      { "/a/*/b", 'Invalid route pattern "/a/*/b": a splat ("*" or "*name") is only allowed as the last segment' },
      { "/*rest/b", 'Invalid route pattern "/*rest/b": a splat ("*" or "*name") is only allowed as the last segment' },
      { "/a*", 'Invalid route pattern "/a*": a splat ("*" or "*name") must be a whole segment' },
      { "/a//b", 'Invalid route pattern "/a//b": segment 2 is empty' },
      { "/a/", 'Invalid route pattern "/a/": segment 2 is empty' },
      { "/a/:", 'Invalid route pattern "/a/:": bad param name "" in segment 2' },
      { "/a/:1x", 'Invalid route pattern "/a/:1x": bad param name "1x" in segment 2' },
      { "/:id/:id", 'Invalid route pattern "/:id/:id": param "id" appears twice' },
      { "/:id/*id", 'Invalid route pattern "/:id/*id": param "id" appears twice' },
      { "/*a-b", 'Invalid route pattern "/*a-b": bad splat name "a-b"' },
      { "/a?x=1", 'Invalid route pattern "/a?x=1": whitespace, "?" and "#" are not allowed' },
      { 42, "Invalid route pattern: expected a string, got number" },
    }
    for _, case in ipairs(cases) do
      it(tostring(case[1]), function()
        local r = router.new()
        local ok, err = pcall(r.add, r, case[1], "x")
        assert.is_false(ok)
        assert.are.equal(case[2], E.message(err))
      end)
    end

    it("reports the caller's line", function()
      local r = router.new()
      local ok, err = pcall(function() r:add("/a/*/b", "x") end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("router_spec.lua:%d+: Invalid route pattern"))
    end)
  end)

  describe("add and remove", function()
    it("replaces a pattern in place and removes it", function()
      local r = make({ "/:a/x", "/:b/x" })
      r:add("/:a/x", "new")
      local m = r:match("/q/x")
      assert.are.equal("new", m.route)  -- still first in definition order
      assert.is_true(r:remove("/:a/x"))
      assert.is_false(r:remove("/:a/x"))
      assert.are.equal("/:b/x", r:match("/q/x").pattern)
      assert.are.same({ "/:b/x" }, r:patterns())
      assert.is_nil(r:get("/:a/x"))
      assert.are.equal("route /:b/x", r:get("/:b/x"))
    end)

    it("removes root, star and static routes", function()
      local r = make({ "/", "*", "/a", "/a/:b" })
      assert.is_true(r:remove("/"))
      assert.are.equal("*", r:match("/").pattern)
      assert.is_true(r:remove("*"))
      assert.is_nil(r:match("/"))
      assert.is_true(r:remove("/a"))
      assert.is_nil(r:match("/a"))
      assert.are.equal("/a/:b", r:match("/a/c").pattern)
      assert.is_true(r:remove("/a/:b"))
      assert.is_nil(r:match("/a/c"))
      assert.are.same({}, r:patterns())
    end)
  end)

  it("gives the no-match error", function()
    assert.are.same({ code = "route-not-matched", message = "No route matched /x" }, router.not_matched_error("/x"))
  end)

  it("rejects a non-string path", function()
    E.has_error(function() router.new():match(nil) end, "router:match: expected a path string, got nil")
  end)

  describe("decode", function()
    local cases = {
      { "abc", "abc" }, { "%41%42", "AB" }, { "%e2%82%ac", "\226\130\172" },
      { "%", "%" }, { "%4", "%4" }, { "%ff", "%ff" }, { "%C0%80", "%C0%80" }, { "%ED%A0%80", "%ED%A0%80" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function() assert.are.equal(case[2], router.decode(case[1])) end)
    end
  end)

  it("matches 1,000 routes like a linear scan would", function()
    local r = router.new()
    local patterns = {}
    for i = 1, 250 do
      patterns[#patterns + 1] = "/s" .. i
      patterns[#patterns + 1] = "/s" .. i .. "/:id"
      patterns[#patterns + 1] = "/s" .. i .. "/:id/edit"
      patterns[#patterns + 1] = "/s" .. i .. "/*rest"
    end
    patterns[#patterns + 1] = "/:section/:id/view"
    for _, p in ipairs(patterns) do r:add(p, p) end
    local cases = {
      { "/s7", "/s7" }, { "/s250/9", "/s250/:id" }, { "/s3/9/edit", "/s3/:id/edit" },
      { "/s3/9/x/y", "/s3/*rest" }, { "/s3/9/view", "/:section/:id/view" }, { "/t/9/view", "/:section/:id/view" },
    }
    for _, case in ipairs(cases) do
      assert.are.equal(case[2], r:match(case[1]).pattern)
    end
    assert.is_nil(r:match("/t/9"))
  end)
end)
