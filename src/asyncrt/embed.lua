-- embed.lua IN OUT NAME: writes a C header holding the bytes of IN as
-- `static const char NAME[]` and `#define NAME_LEN`, so Lua source becomes
-- part of the binary without string-literal length limits.
local input, output, name = arg[1], arg[2], arg[3]
local f = assert(io.open(input, "rb"))
local src = f:read("*a")
f:close()
local out = { "/* generated from " .. input .. " by src/asyncrt/embed.lua; do not edit */\n",
  "static const char " .. name .. "[] = {\n" }
local row = {}
for i = 1, #src do
  row[#row + 1] = tostring(src:byte(i))
  if #row == 20 or i == #src then
    out[#out + 1] = "  " .. table.concat(row, ",") .. ",\n"
    row = {}
  end
end
out[#out + 1] = "  0\n};\n#define " .. name:upper() .. "_LEN " .. #src .. "\n"
local o = assert(io.open(output, "wb"))
o:write(table.concat(out))
o:close()
