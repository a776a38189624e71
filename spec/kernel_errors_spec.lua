-- issue 2 "Errors for bad use" and the memory rules of kernel.md ("Cost
-- targets"): exact messages for every entry point, a raising user function
-- leaves the graph consistent, disposed and collected nodes are freed.
local Async = require("async")
local E = require("support.errors")
local core = require("async.kernel.core")

local G = core.G

-- Collected nodes are freed by a full collection (Async.collect_garbage:
-- without it, a large node array is swept a slice per GC cycle).
local function gc_and_free()
  jit.flush()   -- compiled traces hold the closures and objects they specialised on
  Async.collect_garbage()
end

-- Node counts move when unrelated garbage (from earlier specs in the same
-- process) is freed, so the GC-driven tests check their own node ids
-- instead of global counts: how many of `ids` are still live (not FREE).
-- A freed id can be taken again by a probe signal made after the collection
-- (`Async.signal(nil)` below): those checks allow 1.
-- (ids are deduplicated: a node collected while the test still builds is
-- freed at the next creation and its id taken again)
local function live_among(ids)
  local n, counted = 0, {}
  for _, id in ipairs(ids) do
    if not counted[id] and bit.band(G.nodes[id].flags, core.FREE) == 0 then n = n + 1 end
    counted[id] = true
  end
  return n
end

local function assert_idle()
  assert.equal(0, G.pull_len)
  assert.equal(0, G.stack_len)
  -- writes are allowed (nothing thinks a computed is running)
  local s = Async.signal(0)
  s:set(1)
  local c = Async.computed(function() return s() + 1 end)
  assert.equal(2, c())
end

describe("Errors for bad use: entry points name what they expected", function()
  local sig = Async.signal(0)
  local cases = {
    { "computed(5)", function() Async.computed(5) end, "computed expects a function, got number" },
    { "computed(nil)", function() Async.computed() end, "computed expects a function, got nil" },
    { "effect('x')", function() Async.effect("x") end, "effect expects a function, got string" },
    { "scope({})", function() Async.scope({}) end, "scope expects a function, got table" },
    { "batch(true)", function() Async.batch(true) end, "batch expects a function, got boolean" },
    { "transaction(5)", function() Async.transaction(5) end, "transaction expects a function, got number" },
    { "untrack(5)", function() Async.untrack(5) end, "untrack expects a function, got number" },
    { "async_signal(5)", function() Async.async_signal(5) end, "async_signal expects a function, got number" },
    { "on_cleanup(5)", function() Async.on_cleanup(5) end, "on_cleanup expects a function, got number" },
    { "signal:update(5)", function() sig:update(5) end, "update expects a function, got number" },
    { "signal(v, 5)", function() Async.signal(0, 5) end, "signal options must be a table, got number" },
    { "signal equals", function() Async.signal(0, { equals = 1 }) end,
      "signal option equals must be a function, got number" },
    { "computed(fn, 'x')", function() Async.computed(function() end, "x") end,
      "computed options must be a table, got string" },
    { "computed equals", function() Async.computed(function() end, { equals = "eq" }) end,
      "computed option equals must be a function, got string" },
    { "effect(fn, 5)", function() Async.effect(function() end, 5) end, "effect options must be a table, got number" },
    { "async_signal(fn, 5)", function() Async.async_signal(function() end, 5) end,
      "async_signal options must be a table, got number" },
    { "create_scheduler strategy", function() Async.create_scheduler({ strategy = "x" }) end,
      "unknown scheduler strategy 'x' (expected sync, manual or loop)" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " -> " .. c[3], function()
      E.has_error(c[2], c[3])
    end)
  end

  it("the error points at the caller's line", function()
    local ok, err = pcall(function() Async.computed(5) end)
    assert.is_false(ok)
    assert.matches("kernel_errors_spec.lua:%d+: computed expects a function, got number", err)
  end)

  it("the kernel messages of kernel.md", function()
    local s = Async.signal(0)
    local w = Async.computed(function() s:set(1) end)
    local ok, err = pcall(w)
    assert.is_false(ok)
    assert.matches("Cannot write to a signal inside a computed", err, 1, true)
    local c
    c = Async.computed(function() return c() end)
    ok, err = pcall(c)
    assert.is_false(ok)
    assert.matches("Cycle detected", err, 1, true)
    local a = Async.signal(0)
    ok, err = pcall(Async.effect, function() a:set(a() + 1) end)
    assert.is_false(ok)
    assert.matches("exceeded max_depth", err, 1, true)
  end)
end)

describe("Errors for bad use: a raising user function leaves the graph consistent", function()
  it("a computed raising inside an effect's pull", function()
    local a = Async.signal(0)
    local bad = Async.computed(function() if a() == 1 then error("c", 0) end return a() end)
    local s = Async.create_scheduler({ on_error = function() end })
    local got = {}
    local dispose = Async.effect(function() got[#got + 1] = bad() end, { scheduler = s })
    a:set(1)
    assert_idle()
    a:set(2)
    assert.same({ 0, 2 }, got)
    dispose()
    assert_idle()
  end)

  it("an equals raising in the middle of a pull drops the pull", function()
    local a = Async.signal(1)
    local mid = Async.computed(function() return a() end,
      { equals = function(x, y) if y == 2 then error("eq", 0) end return x == y end })
    local top = Async.computed(function() return mid() + 1 end)
    assert.equal(2, top())
    a:set(2)
    assert.has_error(function() top() end, "eq")
    assert_idle()
    a:set(3)
    assert.equal(4, top())
  end)

  it("an effect raising, a cleanup raising, a scope body raising", function()
    local s = Async.create_scheduler({ on_error = function() end })
    local a = Async.signal(0)
    local d1 = Async.effect(function() a(); error("body", 0) end, { scheduler = s })
    local d2 = Async.effect(function() a(); return function() error("cleanup", 0) end end, { scheduler = s })
    pcall(Async.scope, function() error("scope", 0) end)
    a:set(1)
    assert_idle()
    d1()
    pcall(d2)
    assert_idle()
  end)

  it("a batch or transaction raising restores batch depth (effects still run after)", function()
    local a = Async.signal(0)
    pcall(Async.batch, function() error("b", 0) end)
    pcall(Async.transaction, function() a:set(5); error("t", 0) end)
    local got
    local dispose = Async.effect(function() got = a() end)
    a:set(9)
    assert.equal(9, got)
    dispose()
  end)

  it("an untrack raising restores tracking", function()
    local a = Async.signal(0)
    local runs = 0
    local dispose = Async.effect(function()
      runs = runs + 1
      pcall(Async.untrack, function() error("u", 0) end)
      a()
    end)
    a:set(1)
    assert.equal(2, runs)
    dispose()
  end)
end)

describe("Memory: disposed and collected nodes are freed", function()
  it("100,000 effects created and disposed: the live node count returns to its start", function()
    -- GC stopped: no unrelated finalizer frees anything during the count
    gc_and_free()
    collectgarbage("stop")
    Async.signal(nil)
    local start = Async.core_stats()
    local src = Async.signal(0)
    local disposers = {}
    for i = 1, 100000 do
      disposers[i] = Async.effect(function() src() end)
    end
    local mid = Async.core_stats()
    assert.equal(start.live_nodes + 100001, mid.live_nodes)
    assert.equal(start.live_links + 100000, mid.live_links)
    for i = 1, 100000 do disposers[i]() end
    local after = Async.core_stats()
    collectgarbage("restart")
    assert.equal(start.live_nodes + 1, after.live_nodes)   -- src itself
    assert.equal(start.live_links, after.live_links)
  end)

  it("100,000 effects in nested scopes, disposed through the scope", function()
    gc_and_free()
    collectgarbage("stop")
    Async.signal(nil)
    local start = Async.core_stats()
    local dispose = Async.scope(function()
      for _ = 1, 1000 do
        Async.effect(function()
          for _ = 1, 99 do Async.effect(function() end) end
        end)
      end
    end)
    assert.equal(start.live_nodes + 100001, Async.core_stats().live_nodes)
    dispose()
    local after = Async.core_stats()
    collectgarbage("restart")
    assert.equal(start.live_nodes, after.live_nodes)
  end)

  -- In a fresh process: inside busted, compiled traces and the runner's own
  -- references keep some of the test's objects alive for a while. The graph
  -- is built in a coroutine that ends, so no stale stack slot of the main
  -- thread keeps the last objects reachable, and compiled traces (which hold
  -- the closures they specialized on) are flushed before each collection.
  -- (No comments inside the script:
  -- %q joins its lines for the shell.)
  it("signals and computeds that are garbage collected are freed (fresh process)", function()
    local script = [=[
      local Async = require("async")
      local core = require("async.kernel.core")
      local ids = {}
      local function build()
        local s = Async.signal(1)
        ids[1] = s.id
        for i = 1, 10000 do
          local c = Async.computed(function() return s() + 1 end)
          assert(c() == 2)
          ids[i + 1] = c.id
        end
      end
      coroutine.wrap(build)()
      local live
      for _ = 1, 5 do
        jit.flush(); collectgarbage(); collectgarbage(); Async.signal(nil)
        live = 0
        local seen = {}
        for _, id in ipairs(ids) do
          if not seen[id] and bit.band(core.G.nodes[id].flags, core.FREE) == 0 then live = live + 1 end
          seen[id] = true
        end
        if live <= 1 then break end
      end
      io.write(live, " ", core.G.live_links)
    ]=]
    local cmd = string.format("LUA_PATH=%q LUA_CPATH=%q luajit -e %q 2>&1",
      package.path, package.cpath, script)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    assert.equal("1 0", out)
  end)

  it("a garbage chain of computeds is freed by one GC cycle (a handle holds its getter)", function()
    local ids = {}
    local function build()
      local last = Async.signal(1)
      ids[1] = last.id
      for i = 1, 20 do
        local prev = last
        last = Async.computed(function() return prev() + 1 end)
        last()
        ids[i + 1] = last.id
      end
    end
    build()
    gc_and_free()
    assert.equal(0, live_among(ids))   -- all 21 at once
  end)

  it("node slots are reused: capacity does not grow on create/dispose cycles", function()
    gc_and_free()
    for _ = 1, 3 do
      local d = {}
      for i = 1, 10000 do d[i] = Async.effect(function() end) end
      for i = 1, 10000 do d[i]() end
    end
    local cap = Async.core_stats().node_capacity
    for _ = 1, 3 do
      local d = {}
      for i = 1, 10000 do d[i] = Async.effect(function() end) end
      for i = 1, 10000 do d[i]() end
    end
    assert.equal(cap, Async.core_stats().node_capacity)
  end)

  it("core_stats: at most 64 bytes per node and 48 per edge", function()
    local st = Async.core_stats()
    assert.is_true(st.node_bytes <= 64, "node bytes " .. st.node_bytes)
    assert.is_true(st.link_bytes <= 48, "link bytes " .. st.link_bytes)
    assert.equal("string", type(st.version))
  end)
end)
