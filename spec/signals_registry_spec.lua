-- lua-api.md "Signal registry" (async.signals), built from the seed's
-- tests/unit/signals.test.js plus our rules: paths through the longest
-- registered prefix, copy-on-write sets, exact errors with codes, ensure,
-- subscribe, ref, computed, async signals and their $ meta paths,
-- snapshot/restore.
local Async = require("async")
local signals_mod = require("async.app.registry")
local loop_mod = require("async.loop")

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

-- the error value raised by fn(...)
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- a raised string without its "file:line: " prefix
local function msg(err)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

local function registry(init)
  local s = signals_mod.new()
  for _, id in ipairs(init and init[1] or {}) do s:register(id[1], Async.signal(id[2])) end
  return s
end

describe("signal registry: path reads", function()
  local s
  before_each(function()
    s = registry({ {
      { "count", 0 },
      { "product", { title = "Keyboard", inventory = { count = 3 }, tags = { "a", "b" } } },
      { "a", { b = { c = "from a" }, x = 1 } },
      { "a.b", { c = "from a.b", d = { e = 5 } } },
      { "flag", false },
    } })
  end)

  -- { path, expected }
  local cases = {
    { "count", 0 },
    { "product.title", "Keyboard" },
    { "product.inventory.count", 3 },
    { "product.tags.1", "a" },
    { "product.tags.2", "b" },
    { "product.tags.3", nil },
    { "product.missing", nil },
    { "product.missing.deeper", nil },
    { "product.title.length", nil },          -- into a string: nil, not an error
    { "a.x", 1 },
    { "a.b.c", "from a.b" },                  -- longest registered prefix wins
    { "a.b.d.e", 5 },
    { "flag", false },
  }
  for _, c in ipairs(cases) do
    it("get(" .. c[1] .. ")", function()
      assert.are.same(c[2], s:get(c[1]))
    end)
  end

  it("a.b reads the registered a.b, not a's field b", function()
    assert.are.same({ c = "from a.b", d = { e = 5 } }, s:get("a.b"))
    assert.are.same({ b = { c = "from a" }, x = 1 }, s:get("a"))
  end)

  it("peek reads the same value untracked", function()
    assert.equal("Keyboard", s:peek("product.title"))
  end)
end)

describe("signal registry: errors", function()
  local s
  before_each(function() s = registry({ { { "count", 0 } } }) end)

  -- { name, fn, code, message }
  local cases = {
    { "get of an unknown id", function() return s:get("nope") end,
      "signal-not-registered", 'Signal "nope" is not registered.' },
    { "get of an unknown path names its first segment", function() return s:get("user.name.first") end,
      "signal-not-registered", 'Signal "user" is not registered.' },
    { "set of an unknown path", function() s:set("user.name", "x") end,
      "signal-not-registered", 'Signal "user" is not registered.' },
    { "update of an unknown path", function() s:update("ghost", function(v) return v end) end,
      "signal-not-registered", 'Signal "ghost" is not registered.' },
    { "subscribe to an unknown path", function() s:subscribe("ghost", function() end) end,
      "signal-not-registered", 'Signal "ghost" is not registered.' },
    { "ref of an unknown id", function() s:ref("ghost") end,
      "signal-not-registered", 'Signal "ghost" is not registered.' },
    { "register twice", function() s:register("count", Async.signal(1)) end,
      "signal-already-registered", 'Signal "count" is already registered.' },
    { "async_signal over a registered id", function() s:async_signal("count", function() end) end,
      "signal-already-registered", 'Signal "count" is already registered.' },
    { "computed over a registered id", function() s:computed("count", function() end) end,
      "signal-already-registered", 'Signal "count" is already registered.' },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local err = raised(c[2])
      assert.equal("table", type(err))
      assert.equal(c[3], err.code)
      assert.equal(c[4], err.message)
      assert.equal("AsyncError", err.name)
      assert.equal("string", type(err.hint))
      assert.truthy(tostring(err):find(c[4], 1, true))
    end)
  end

  -- { name, fn, message }
  local plain = {
    { "a non-string id", function() s:register(5, 1) end, "signal id must be a non-empty string, got 5" },
    { "an empty path", function() s:get("") end, 'signal path must be a non-empty string, got ""' },
    { "a nil path", function() s:get(nil) end, "signal path must be a non-empty string, got nil" },
    { "update without a function", function() s:update("count", 1) end, "update expects a function, got number" },
    { "subscribe without a function", function() s:subscribe("count") end, "subscribe expects a function, got nil" },
    -- found by spec/fuzz/paths.lua: "count." read as 'Signal "count" is not
    -- registered.' and set("count..") replaced the whole value
    { "a path with a trailing dot", function() s:get("count.") end, 'signal path "count." has an empty segment' },
    { "set of a path with an empty segment", function() s:set("count..", 1) end,
      'signal path "count.." has an empty segment' },
    { "a path with a leading dot", function() s:set(".count", 1) end, 'signal path ".count" has an empty segment' },
    { "update of a path with an empty segment", function() s:update("count..x", function() end) end,
      'signal path "count..x" has an empty segment' },
    { "an id with an empty segment", function() s:register("a..b", 1) end, 'signal id "a..b" has an empty segment' },
  }
  for _, c in ipairs(plain) do
    it(c[1], function() assert.equal(c[3], msg(raised(c[2]))) end)
  end

  it("a refused path leaves the value as it was", function()
    pcall(s.set, s, "count..", 7)
    pcall(s.set, s, "count.", 7)
    assert.equal(0, s:get("count"))
  end)

  it("writing a computed raises", function()
    s:computed("double", function(r) return r:get("count") * 2 end)
    assert.equal('cannot write "double": "double" is a computed', msg(raised(s.set, s, "double", 1)))
  end)
end)

describe("signal registry: copy-on-write set", function()
  it("copies the containers along the path and leaves the old value unchanged", function()
    local s = signals_mod.new()
    local old = { title = "Keyboard", inventory = { count = 3 }, other = { kept = true } }
    s:register("product", Async.signal(old))
    assert.equal("Headphones", s:set("product.title", "Headphones"))
    s:set("product.inventory.count", 7)
    local new = s:get("product")
    assert.are_not.equal(old, new)
    assert.are.same({ title = "Keyboard", inventory = { count = 3 }, other = { kept = true } }, old)
    assert.are.same({ title = "Headphones", inventory = { count = 7 }, other = { kept = true } }, new)
    assert.are_not.equal(old.inventory, new.inventory)   -- copied along the path
    assert.equal(old.other, new.other)                   -- shared off the path
  end)

  -- { name, initial, path, value, expected root }
  local cases = {
    { "missing containers become tables", {}, "p.a.b.c", 1, { a = { b = { c = 1 } } } },
    { "a non-table on the path is replaced", { a = "text" }, "p.a.b", 1, { a = { b = 1 } } },
    { "a nil root becomes a table", nil, "p.x", "v", { x = "v" } },
    { "an index into an array is a number key", { list = { "a", "b" } }, "p.list.2", "B", { list = { "a", "B" } } },
    { "an index appends", { list = { "a" } }, "p.list.2", "b", { list = { "a", "b" } } },
    { "an index in a new container is a number key", {}, "p.list.1", "a", { list = { "a" } } },
    { "an existing string key keeps its type", { m = { ["1"] = "s" } }, "p.m.1", "t", { m = { ["1"] = "t" } } },
    { "a map gets a string key", { m = { x = 1 } }, "p.m.2", "t", { m = { x = 1, ["2"] = "t" } } },
    { "01 is not an index", {}, "p.l.01", "z", { l = { ["01"] = "z" } } },
    { "set nil removes a field", { a = 1, b = 2 }, "p.a", nil, { b = 2 } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local s = signals_mod.new()
      s:register("p", Async.signal(c[2]))
      s:set(c[3], c[4])
      assert.are.same(c[5], s:get("p"))
    end)
  end

  it("keeps a container's metatable (json arrays stay arrays)", function()
    local json = require("async.app.json")
    local s = signals_mod.new()
    s:register("p", Async.signal({ items = json.array() }))
    s:set("p.items.1", "x")
    assert.equal(json.array_mt, getmetatable(s:get("p.items")))
    assert.equal('{"items":["x"]}', json.encode(s:get("p")))
  end)

  -- found by spec/fuzz/paths.lua: the copy got the metatable first, so a
  -- __newindex diverted the write (the value was lost, or landed elsewhere)
  it("writes into the copy even when its metatable has __newindex", function()
    local s = signals_mod.new()
    local elsewhere = {}
    local mt = { __newindex = function(_, k, v) rawset(elsewhere, k, v) end }
    local old = setmetatable({ z = 1 }, mt)
    s:register("p", Async.signal(old))
    s:set("p.x.y", "v")
    assert.equal("v", s:get("p.x.y"))
    assert.equal(mt, getmetatable(s:get("p")))
    assert.is_nil(next(elsewhere))
    assert.is_nil(rawget(old, "x"))
  end)

  it("a path under a longer registered prefix writes that signal only", function()
    local s = signals_mod.new()
    s:register("product", Async.signal({ title = "Keyboard" }))
    s:register("product.title", Async.signal("Exact Title"))
    s:set("product.title", "Mouse")
    assert.are.same({ title = "Keyboard" }, s:get("product"))
    assert.equal("Mouse", s:get("product.title"))
  end)

  it("update writes fn(current) through a path", function()
    local s = registry({ { { "product", { inventory = { count = 3 } } } } })
    s:update("product.inventory.count", function(c) return c + 4 end)
    assert.equal(7, s:get("product.inventory.count"))
  end)
end)

describe("signal registry: ensure, ref, has, keys, unregister", function()
  it("ensure creates once and returns the same signal after", function()
    local s = signals_mod.new()
    local a = s:ensure("settings", { enabled = false })
    local b = s:ensure("settings", { enabled = "ignored" })
    assert.equal(a, b)
    assert.are.same({ enabled = false }, s:get("settings"))
  end)

  -- ensure adds a new signal without going through register (one check):
  -- it must leave the registry as register would
  it("ensure of a new id registers it as register does: order, id_of, the path cache dropped", function()
    local s = signals_mod.new({ size = 4 })
    s:register("a", { x = 1 })
    assert.equal("a", (s:resolve("a.x")))   -- cached
    local b = s:ensure("a.x", 2)            -- a longer prefix now wins
    assert.equal("a.x", (s:resolve("a.x")))
    assert.equal("a.x", signals_mod.id_of[b])
    assert.are.same({ "a", "a.x" }, s:keys())
    assert.equal(2, s:get("a.x"))
    for _, bad in ipairs({ "", ".a", "a.", "a..b" }) do
      local err = raised(s.ensure, s, bad, 1)
      assert.equal("invalid-signal-path", err.code)
    end
    assert.are.same({ "a", "a.x" }, s:keys())
  end)

  it("ref returns the registered signal object, which writes through", function()
    local s = registry({ { { "count", 0 } } })
    local count = s:ref("count")
    count:update(function(v) return v + 1 end)
    assert.equal(1, s:get("count"))
    assert.equal(1, count:peek())
  end)

  it("register of a plain value wraps it in a signal", function()
    local s = signals_mod.new()
    local sig = s:register("n", 5)
    assert.is_true(Async.is_signal(sig))
    assert.equal(5, s:get("n"))
  end)

  it("keys in registration order; unregister removes and reports", function()
    local s = registry({ { { "b", 1 }, { "a", 2 }, { "c", 3 } } })
    assert.are.same({ "b", "a", "c" }, s:keys())
    assert.is_true(s:unregister("a"))
    assert.is_false(s:unregister("a"))
    assert.is_false(s:has("a"))
    assert.are.same({ "b", "c" }, s:keys())
    assert.equal("signal-not-registered", raised(s.get, s, "a").code)
  end)

  it("unregistering a prefix id re-resolves paths to the shorter prefix", function()
    local s = registry({ { { "a", { b = "outer" } }, { "a.b", "inner" } } })
    assert.equal("inner", s:get("a.b"))
    s:unregister("a.b")
    assert.equal("outer", s:get("a.b"))
  end)
end)

describe("signal registry: subscribe", function()
  it("runs after each commit that changed the root, with the path's value; unsubscribe stops it", function()
    local s = signals_mod.new()
    local settings = s:ensure("settings", { enabled = false })
    local seen = {}
    local unsubscribe = s:subscribe("settings.enabled", function(v) seen[#seen + 1] = v end)
    assert.are.same({}, seen)                  -- not called at subscribe time
    settings:set({ enabled = true })
    s:set("settings.enabled", false)
    unsubscribe()
    s:set("settings.enabled", true)
    assert.are.same({ true, false }, seen)
  end)

  it("runs once per batch, not per write", function()
    local s = registry({ { { "n", 0 } } })
    local seen = {}
    s:subscribe("n", function(v) seen[#seen + 1] = v end)
    Async.batch(function() s:set("n", 1); s:set("n", 2); s:set("n", 3) end)
    assert.are.same({ 3 }, seen)
  end)

  it("does not run when a write leaves the root unchanged", function()
    local s = registry({ { { "n", 0 } } })
    local calls = 0
    s:subscribe("n", function() calls = calls + 1 end)
    s:set("n", 0)
    assert.equal(0, calls)
  end)

  it("on a manual scheduler runs at flush", function()
    local sched = Async.create_scheduler({ strategy = "manual" })
    local s = signals_mod.new({ scheduler = sched })
    s:register("n", Async.signal(0))
    local seen = {}
    s:subscribe("n", function(v) seen[#seen + 1] = v end)
    sched:flush()
    s:set("n", 1)
    assert.are.same({}, seen)
    sched:flush()
    assert.are.same({ 1 }, seen)
  end)
end)

describe("signal registry: computed", function()
  it("derives from tracked registry reads and follows writes", function()
    local s = registry({ { { "count", 2 } } })
    s:computed("doubled", function(r) return r:get("count") * 2 end)
    assert.equal(4, s:get("doubled"))
    s:set("count", 4)
    assert.equal(8, s:get("doubled"))
  end)

  it("unregister removes it", function()
    local s = registry({ { { "count", 1 } } })
    s:computed("doubled", function(r) return r:get("count") * 2 end)
    assert.equal(2, s:get("doubled"))
    assert.is_true(s:unregister("doubled"))
    assert.is_false(s:has("doubled"))
    assert.equal('Signal "doubled" is not registered.', raised(s.get, s, "doubled").message)
  end)
end)

describe("signal registry: async signals and $ meta paths", function()
  local s
  before_each(function()
    s = registry({ { { "productId", "sku-1" } } })
    s:async_signal("product", function(ctx)
      local id = ctx.signals:get("productId")
      Async.delay(10, ctx.abort)
      if id == "bad" then error({ code = "not-found", message = "no product " .. id }) end
      return { title = "Product " .. id }
    end)
  end)

  it("reads value and meta paths while loading, then ready", function()
    -- { path, while loading, when ready }
    local cases = {
      { "product", nil, { title = "Product sku-1" } },
      { "product.title", nil, "Product sku-1" },
      { "product.$value", nil, { title = "Product sku-1" } },
      { "product.$value.title", nil, "Product sku-1" },
      { "product.$status", "loading", "ready" },
      { "product.$loading", true, false },
      { "product.$error", nil, nil },
      { "product.$error.message", nil, nil },
      { "product.$version", 1, 1 },
      { "product.$unknown", nil, nil },
    }
    for _, c in ipairs(cases) do assert.are.same(c[2], s:get(c[1]), c[1] .. " while loading") end
    loop:advance(10)
    for _, c in ipairs(cases) do assert.are.same(c[3], s:get(c[1]), c[1] .. " when ready") end
  end)

  it("reruns when a dependency read through ctx.signals changes; errors land in $error", function()
    loop:advance(10)
    s:set("productId", "bad")
    assert.equal("loading", s:get("product.$status"))
    assert.equal(2, s:get("product.$version"))
    loop:advance(10)
    assert.equal("error", s:get("product.$status"))
    assert.equal("no product bad", s:get("product.$error.message"))
    assert.equal("not-found", s:get("product.$error.code"))
    assert.are.same({ title = "Product sku-1" }, s:get("product"))   -- last value kept
  end)

  it("meta paths are read-only, $value writes the value", function()
    loop:advance(10)
    local err = raised(s.set, s, "product.$status", "ready")
    assert.equal('cannot write "product.$status": async signal meta paths are read-only', msg(err))
    s:set("product.$value", { title = "Set" })
    assert.equal("Set", s:get("product.title"))
    assert.equal("ready", s:get("product.$status"))
  end)

  it("on a plain signal a $ segment is an ordinary key (as the seed)", function()
    s:register("plain", Async.signal({ ["$status"] = "mine" }))
    assert.equal("mine", s:get("plain.$status"))
    assert.is_nil(s:get("productId.$status"))
  end)

  it("unregister aborts the run in flight", function()
    local aborted
    s:async_signal("slow", function(ctx)
      ctx.abort:on_abort(function(reason) aborted = reason end)
      Async.delay(100, ctx.abort)
      return 1
    end)
    assert.equal("loading", s:get("slow.$status"))
    s:unregister("slow")
    assert.equal("disposed", aborted)
  end)
end)

describe("signal registry: snapshot and restore", function()
  it("snapshots signals and async snapshot forms, not computeds", function()
    local s = registry({ { { "count", 1 }, { "product", { title = "K" } } } })
    s:computed("doubled", function(r) return r:get("count") * 2 end)
    s:async_signal("a", function() return "done" end)
    assert.are.same({
      count = 1, product = { title = "K" },
      a = { value = "done", status = "ready", loading = false, version = 1 },
    }, s:snapshot())
    assert.are.same({ count = 1 }, s:snapshot(function(id) return id == "count" end))
  end)

  it("restore writes values, registers unknown ids and restores async state without a run", function()
    local s = registry({ { { "count", 1 } } })
    local runs = 0
    s:async_signal("a", function() runs = runs + 1; return "fresh" end)
    assert.equal(1, runs)
    s:restore({ count = 5, extra = { x = 1 },
                a = { value = "restored", status = "ready", loading = false, version = 7 } })
    assert.equal(5, s:get("count"))
    assert.equal(1, s:get("extra.x"))
    assert.equal("restored", s:get("a"))
    assert.equal(7, s:get("a.$version"))
    assert.equal(1, runs)
  end)

  it("a snapshot restored into a new registry reads the same", function()
    local s = registry({ { { "count", 3 }, { "p", { t = "x" } } } })
    local t = signals_mod.new()
    t:restore(s:snapshot())
    assert.are.same(s:snapshot(), t:snapshot())
  end)
end)

describe("signal registry: read-only view", function()
  it("reads through and refuses every write with signals-read-only", function()
    local s = registry({ { { "count", 1 } } })
    local view = s:readonly_view()
    assert.equal(1, view:get("count"))
    assert.equal(1, view:peek("count"))
    assert.is_true(view:has("count"))
    assert.are.same({ "count" }, view:keys())
    assert.are.same({ count = 1 }, view:snapshot())
    local writes = {
      function() view:set("count", 2) end,
      function() view:update("count", function(v) return v + 1 end) end,
      function() view:register("x", 1) end,
      function() view:unregister("count") end,
      function() view:ensure("y", 1) end,
      function() view:restore({ count = 9 }) end,
      function() view:ref("count") end,
      function() view.count = 3 end,
    }
    for i, w in ipairs(writes) do
      local err = raised(w)
      assert.equal("signals-read-only", err.code, "write #" .. i)
    end
    assert.equal(1, s:get("count"))
  end)
end)
