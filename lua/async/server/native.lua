--- The HTTP shim (src/http: request parsing and gzip), loaded through the
-- LuaJIT FFI.
-- Under the asyncrt interpreter the shim is linked into the executable and
-- found through ffi.C; elsewhere (plain luajit, nginx's LuaJIT)
-- async_http.so is searched on package.cpath. ASYNC_HTTP_LIB overrides both
-- with a path. The declarations come from async.server.http_cdef, which the
-- build generates from src/http/http.h (tools/cdef.lua), so they cannot
-- drift from the C layout.
-- One instance per Lua state, even when a test runner reloads modules
-- (busted insulates files by clearing package.loaded): ffi.cdef refuses to
-- declare a type twice.
local REGISTRY_KEY = "asyncrt:async.server.native"
do
  local loaded = debug.getregistry()[REGISTRY_KEY]
  if loaded then return loaded end
end

local ffi = require("ffi")
local os_getenv, pcall, error, require, tostring = os.getenv, pcall, error, require, tostring
local package = package

local _M = {}

local ok, cdef = pcall(require, "async.server.http_cdef")
if not ok then
  error("async.server.native: the generated FFI declarations are missing (" .. tostring(cdef) ..
    "); run `make` to build lua/async/server/http_cdef.lua from src/http/http.h", 0)
end
ffi.cdef(cdef)

local function load_lib()
  local path = os_getenv("ASYNC_HTTP_LIB")
  if path and path ~= "" then return ffi.load(path), path end
  if pcall(function() return ffi.C.ahttp_new end) then return ffi.C, "linked" end
  path = package.searchpath("async_http", package.cpath)
  if not path then
    error("async: cannot find the HTTP shim async_http.so on package.cpath (" .. package.cpath ..
      "); build it with `make` and use `eval \"$(make -s dev-env)\"`, or set ASYNC_HTTP_LIB", 0)
  end
  return ffi.load(path), path
end

--- The library (ffi.C under asyncrt) and where it came from ("linked" or
-- the path of the shared object).
_M.C, _M.source = load_lib()

debug.getregistry()[REGISTRY_KEY] = _M
return _M
