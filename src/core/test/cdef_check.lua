-- cdef_check.lua CDEF KIND:NAME=VALUE...: loads the generated FFI
-- declarations (lua/async/kernel/cdef.lua) under ffi.cdef and compares what
-- the FFI sees with what the C compiler saw, as passed by test_core.c:
--   size:ac_node=48          ffi.sizeof("ac_node")
--   offset:ac_graph.retry=8  ffi.offsetof("ac_graph", "retry")
--   const:AC_OOM=-3          the enum constant through ffi.C
-- Prints one line per mismatch and "cdef ok: N checks"; exits 1 on a mismatch.
local ffi = require("ffi")

local path = assert(arg[1], "usage: luajit cdef_check.lua CDEF KIND:NAME=VALUE...")
local ok, err = pcall(function() ffi.cdef(dofile(path)) end)
if not ok then
  io.write("cdef does not load under ffi.cdef: ", tostring(err), "\n")
  os.exit(1)
end

local bad, n = 0, 0
for i = 2, #arg do
  local kind, name, want = arg[i]:match("^(%a+):([%w_%.]+)=(%-?%d+)$")
  assert(kind, "bad argument " .. arg[i])
  want = tonumber(want)
  local got
  if kind == "size" then
    got = ffi.sizeof(name)
  elseif kind == "offset" then
    local t, f = name:match("^([%w_]+)%.([%w_]+)$")
    got = ffi.offsetof(t, f)
  elseif kind == "const" then
    got = tonumber(ffi.C[name])
  end
  n = n + 1
  if got ~= want then
    bad = bad + 1
    io.write("mismatch ", kind, " ", name, ": C ", want, ", FFI ", tostring(got), "\n")
  end
end
io.write("cdef ok: ", n - bad, " of ", n, " checks\n")
os.exit(bad == 0 and 0 or 1)
