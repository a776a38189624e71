-- The cdef in lua/async/core.lua mirrors src/core/core.h: sizes and field
-- offsets agree with what the C library reports, and the flag constants of
-- the Lua side match the header.
local ffi = require("ffi")
require("async")   -- the kernel creates the default scheduler
local core = require("async.kernel.core")

local C = core.C

local function read_header()
  local path
  for _, p in ipairs({ "src/core/core.h", "../src/core/core.h" }) do
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
  it("ac_node and ac_edge sizes equal the library's", function()
    assert.equal(C.ac_node_size(), ffi.sizeof("ac_node"))
    assert.equal(C.ac_link_size(), ffi.sizeof("ac_edge"))
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

  it("every shared struct has the size the C compiler gives it", function()
    for _, name in ipairs({ "ac_node", "ac_edge", "ac_job", "ac_queue", "ac_set", "ac_sched",
                            "ac_pull_frame", "ac_graph" }) do
      assert.equal(C.ac_sizeof(name), ffi.sizeof(name), name)
    end
    assert.equal(-1, C.ac_sizeof("nope"))
  end)

  it("the header's structs and prototypes are all declared in the cdef", function()
    local h = read_header()
    if not h then pending("src/core/core.h not found from the current directory") return end
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
