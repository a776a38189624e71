-- The FFI declarations are generated from src/core/core.h and layout.h
-- (lua/async/kernel/cdef.lua; make test's C stage compares every struct size
-- and offset with the C compiler's), the flag constants of the Lua side match
-- the header, and bad ids are refused at the C boundary.
local ffi = require("ffi")
local E = require("support.errors")
require("async")   -- the kernel creates the default scheduler
local core = require("async.kernel.core")

local C = core.C

local function read_header(name)
  local path
  for _, p in ipairs({ "src/core/" .. (name or "core.h"), "../src/core/" .. (name or "core.h") }) do
    local f = io.open(p)
    if f then f:close(); path = p; break end
  end
  if not path then return nil end
  local f = assert(io.open(path))
  local text = f:read("*a")
  f:close()
  return text
end

describe("core FFI: the cdef mirrors core.h", function()
  it("is the one generated from the headers", function()
    local cdef = require("async.kernel.cdef")
    assert.truthy(cdef:find("struct ac_graph {", 1, true))
    assert.truthy(cdef:find("AC_BAD_ID", 1, true))
    assert.equal(ffi.sizeof("ac_node"), core.stats().node_bytes)
  end)

  it("memory budget: node <= 64 bytes, edge <= 48 bytes", function()
    assert.is_true(ffi.sizeof("ac_node") <= 64)
    assert.is_true(ffi.sizeof("ac_edge") <= 48)
  end)

  it("the graph struct matches the live graph (fields read through FFI are sane)", function()
    local G = core.G
    assert.is_true(G.node_top >= 1 and G.node_top <= G.node_cap)
    assert.is_true(G.link_top >= 1 and G.link_top <= G.link_cap)
    assert.is_true(G.live_nodes >= 0 and G.live_nodes < G.node_top)
    assert.is_true(G.live_links >= 0 and G.live_links < G.link_top)
    assert.is_true(G.sched_len >= 1)   -- the default scheduler
    assert.equal(0, G.oom)
  end)

  it("a node written by C reads back through FFI at the right offsets", function()
    local G = core.G
    local s = C.ac_node_new(G, core.SIGNAL, 0, -1)
    local c = C.ac_node_new(G, core.COMPUTED, 0, 7)
    local n = G.nodes[c]
    assert.equal(core.COMPUTED, bit.rshift(n.flags, core.KIND_SHIFT))
    assert.equal(7, n.sched)
    assert.is_true(bit.band(n.flags, core.DIRTY) ~= 0)
    C.ac_begin(G, c)
    C.ac_link(G, s, c)
    C.ac_end(G, c)
    local l = G.nodes[c].deps
    assert.is_true(l > 0)
    assert.equal(l, G.nodes[s].subs)
    assert.equal(s, G.links[l].dep)
    assert.equal(c, G.links[l].sub)
    assert.equal(l, G.nodes[c].deps_tail)
    C.ac_node_free(G, c)
    C.ac_node_free(G, s)
  end)

  it("the headers' structs and prototypes are all declared in the cdef", function()
    local h = read_header()
    if not h then pending("src/core/core.h not found from the current directory") return end
    h = h .. read_header("layout.h")
    for name in h:gmatch("typedef struct (ac_[%w_]+)") do
      assert.is_true(pcall(ffi.typeof, "struct " .. name), "struct " .. name .. " missing from the cdef")
    end
    for fname in h:gmatch("\n[%w_ %*]-[ %*](ac_[%w_]+)%(") do
      assert.is_true(pcall(function() return C[fname] end), fname .. " missing from the cdef")
    end
  end)

  it("flag and kind constants match core.h", function()
    local h = read_header()
    if not h then pending("src/core/core.h not found from the current directory") return end
    local want = {
      AC_MUTABLE = core.MUTABLE, AC_WATCHING = core.WATCHING, AC_RECURSED_CHECK = core.RECURSED_CHECK,
      AC_RECURSED = core.RECURSED, AC_DIRTY = core.DIRTY, AC_PENDING = core.PENDING,
      AC_QUEUED = core.QUEUED, AC_DISPOSED = core.DISPOSED, AC_FREE = core.FREE,
    }
    for name, v in pairs(want) do
      local shift = h:match(name .. "%s*=%s*1u << (%d+)")
      assert.is_not_nil(shift, name)
      assert.equal(bit.lshift(1, tonumber(shift)), v, name)
    end
    assert.equal(tonumber(h:match("AC_KIND_SHIFT%s*=%s*(%d+)")), core.KIND_SHIFT)
    for name, key in pairs({ AC_SIGNAL = "SIGNAL", AC_COMPUTED = "COMPUTED", AC_EFFECT = "EFFECT",
                             AC_ASYNC = "ASYNC", AC_SCOPE = "SCOPE" }) do
      assert.equal(tonumber(h:match(name .. "%s*=%s*(%d+)")), core[key], name)
    end
    for name, phase in pairs({ AC_PHASE_BINDING = "binding", AC_PHASE_LIFECYCLE = "lifecycle",
                               AC_PHASE_EFFECT = "effect", AC_PHASE_ASYNC = "async", AC_PHASE_POST = "post" }) do
      assert.equal(tonumber(h:match(name .. "%s*=%s*(%d+)")), core.PHASES[phase], name)
    end
    -- the embedder's ERROR bit is in the range core.h leaves to the embedder
    assert.is_true(core.ERROR >= bit.lshift(1, 9) and core.ERROR < bit.lshift(1, core.KIND_SHIFT))
  end)
end)

describe("core FFI: bad ids are refused at the C boundary", function()
  it("every entry point answers AC_BAD_ID for an id out of range or freed", function()
    local G = core.G
    local gone = C.ac_node_new(G, core.SIGNAL, 0, -1)
    assert.equal(0, C.ac_node_free(G, gone))
    for _, id in ipairs({ 0, -1, 50000000, G.node_top, gone }) do
      assert.equal(core.BAD_ID, C.ac_write(G, id))
      assert.equal(core.BAD_ID, C.ac_begin(G, id))
      assert.equal(core.BAD_ID, C.ac_end(G, id))
      assert.equal(core.BAD_ID, C.ac_pull(G, id))
      assert.equal(core.BAD_ID, C.ac_dispose(G, id, 0))
      assert.equal(core.BAD_ID, C.ac_node_free(G, id))
      assert.equal(core.BAD_ID, C.ac_touch(G, id))
      assert.equal(core.BAD_ID, C.ac_task_abort(G, id))
      assert.equal(0, C.ac_task_start(G, id))
    end
  end)

  it("a signal's id cannot be written, so `s.id = 5e7; s()` raises instead of crashing", function()
    local Async = require("async")
    local s = Async.signal(1)
    assert.has_error(function() s.id = 5e7 end)
    assert.equal(1, s())
    local c = Async.computed(function() return s() + 1 end)
    assert.has_error(function() c.id = 5e7 end)
    assert.equal(2, c())
  end)

  it("a forged async signal id raises a bad id error", function()
    local Async = require("async")
    local a = Async.async_signal(function() return 1 end, { initial = 0 })
    local id = a.id
    a.id = 50000000
    E.has_error(function() a:set(2) end, "async: bad id (-2) publishing an async signal")
    assert.has_error(function() a:restore({ value = 1 }) end)
    a.id = id
  end)
end)
