-- cdef.lua OUT HEADER...: writes a Lua module holding the C declarations of
-- the headers for ffi.cdef, so the FFI never reads a struct or a function the
-- C side does not have (a field moved in C moves in Lua at the next build).
-- Kept: typedefs, structs, enums, prototypes. Dropped: comments, preprocessor
-- lines (with their continuations) and `extern "C"` guards. A constant that
-- Lua must read is written as an enum in the header, not as a #define.
local out_path = arg[1]
if not out_path or not arg[2] then
  io.stderr:write("usage: luajit tools/cdef.lua OUT.lua HEADER...\n")
  os.exit(2)
end

local parts, sources = {}, {}
for i = 2, #arg do
  local f = assert(io.open(arg[i], "rb"))
  local src = f:read("*a")
  f:close()
  sources[#sources + 1] = arg[i]
  src = src:gsub("/%*.-%*/", function(c) return (c:gsub("[^\n]", "")) end)  -- keep line count
           :gsub("//[^\n]*", "")
  local lines, cont = {}, false
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    if cont or line:match("^%s*#") then
      cont = line:match("\\%s*$") ~= nil
    elseif not line:match('^%s*extern%s+"C"') and not line:match("^%s*}%s*$") or line:match(";") then
      if line:match("%S") then lines[#lines + 1] = (line:gsub("%s+$", "")) end
    end
  end
  parts[#parts + 1] = table.concat(lines, "\n")
end

local body = table.concat(parts, "\n")
if body:find("]==]", 1, true) then error("cdef.lua: header text contains ]==]") end
local o = assert(io.open(out_path, "wb"))
o:write("-- generated from ", table.concat(sources, ", "), " by tools/cdef.lua; do not edit\n",
  "return [==[\n", body, "\n]==]\n")
o:close()
