--- The C core, loaded through the LuaJIT FFI.
-- Under the asyncrt interpreter the core is linked into the executable and
-- found through ffi.C; elsewhere async_core.so is searched on package.cpath
-- (ASYNC_CORE_LIB overrides the path). The declarations below mirror
-- src/core/core.h; spec/core_ffi_spec.lua checks the struct sizes agree.
local ffi = require("ffi")
local errors = require("async.kernel.errors")
local os_getenv, pcall, error = os.getenv, pcall, error

local _M = {}

-- generated from src/core/core.h and src/core/layout.h by `make`
ffi.cdef(require("async.kernel.cdef"))

local function load_core()
  local path = os_getenv("ASYNC_CORE_LIB")
  if path and path ~= "" then return ffi.load(path) end
  local linked = pcall(function() return ffi.C.ac_version end)
  if linked then return ffi.C end
  path = package.searchpath("async_core", package.cpath)
  if not path then
    error("async: cannot find the C core async_core.so on package.cpath (" .. package.cpath ..
      "); build it with `make` and use `eval \"$(make -s dev-env)\"`, or set ASYNC_CORE_LIB", 0)
  end
  return ffi.load(path)
end

local C = load_core()
local G = C.ac_new()
if G == nil then error("async: out of memory creating the reactive graph", 0) end

_M.C = C
_M.G = G

-- flags and kinds (core.h)
_M.MUTABLE, _M.WATCHING, _M.RECURSED_CHECK, _M.RECURSED = 1, 2, 4, 8
_M.DIRTY, _M.PENDING, _M.QUEUED, _M.DISPOSED, _M.FREE = 16, 32, 64, 128, 256
_M.ERROR = 512            -- embedder bit: a computed holds a cached error
_M.KIND_SHIFT = 12
_M.SIGNAL, _M.COMPUTED, _M.EFFECT, _M.ASYNC, _M.SCOPE = 0, 1, 2, 3, 4
_M.PHASES = { binding = 0, lifecycle = 1, effect = 2, async = 3, post = 4 }
_M.PHASE_NAMES = { [0] = "binding", "lifecycle", "effect", "async", "post" }
-- return codes of the core (core.h)
_M.OK, _M.BAD_ID, _M.OOM = ffi.C.AC_OK, ffi.C.AC_BAD_ID, ffi.C.AC_OOM

--- Raises the error of a failed core call: r is AC_OOM or AC_BAD_ID.
function _M.fail(r, what)
  if r == _M.OOM then errors.raise("out-of-memory", "async: out of memory " .. what) end
  errors.raise("bad-id", "async: bad id (" .. tostring(r) .. ") " .. what)
end

--- Memory figures of the core.
function _M.stats()
  return {
    node_bytes = ffi.sizeof("ac_node"), link_bytes = ffi.sizeof("ac_edge"),
    live_nodes = G.live_nodes, live_links = G.live_links,
    node_capacity = G.node_cap, link_capacity = G.link_cap,
    version = ffi.string(C.ac_version()),
  }
end

return _M
