-- async.server.gzip: one-shot and streaming gzip through the C shim,
-- checked with decoders that are not ours: zlib's inflate through the FFI
-- and the gzip command.
local gzip = require("async.server.gzip")
local E = require("support.errors")
local support = require("support.http")

-- Compressible text that is not a repetition of one short string.
local function text(n, s)
  local parts, x = {}, s or 7
  local words = { "<li class=\"item\">", "product", "</li>\n", "price ", "42.00", "<b>", "</b>", " " }
  local len = 0
  while len < n do
    x = (x * 1103515245 + 12345) % 2147483648
    local w = words[x % #words + 1]
    parts[#parts + 1] = w
    len = len + #w
  end
  return table.concat(parts):sub(1, n)
end

local function gzip_command(bytes)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  local p = assert(io.popen("gzip -dc < " .. path .. " 2>&1", "r"))
  local out = p:read("*a")
  local ok = p:close()
  os.remove(path)
  return out, ok
end

local function vm_size_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmSize:%s*(%d+)"))
end

describe("gzip.compress", function()
  it("round-trips through zlib's inflate and the gzip command", function()
    for _, n in ipairs({ 0, 1, 100, 65536, 1048576 + 17 }) do
      local s = text(n, n)
      local z = assert(gzip.compress(s))
      assert.equal("\31\139\8", z:sub(1, 3))   -- gzip magic, deflate
      assert.equal(s, support.gunzip(z))
      local out, ok = gzip_command(z)
      assert.is_truthy(ok)
      assert.equal(s, out)
      if n >= 65536 then assert.is_true(#z < n / 3, "compressed " .. n .. " to " .. #z) end
    end
  end)

  it("takes a level 0..9; binary data survives", function()
    local bin = {}
    for i = 0, 4095 do bin[#bin + 1] = string.char(i % 256, (i * 7) % 256) end
    local s = table.concat(bin)
    for level = 0, 9 do
      assert.equal(s, support.gunzip(assert(gzip.compress(s, level))))
    end
  end)

  it("misuse raises", function()
    E.has_error(function() gzip.compress(nil) end, "gzip.compress: expected a string, got nil")
    E.has_error(function() gzip.compress("x", 10) end, "gzip.compress: level must be an integer 0..9, got 10")
    E.has_error(function() gzip.stream(1.5) end, "gzip.stream: level must be an integer 0..9, got 1.5")
  end)
end)

describe("gzip.stream", function()
  it("each write decodes at once to exactly what was written (sync flush)", function()
    local z = assert(gzip.stream())
    local inf = support.inflater()
    local all, wire = {}, {}
    for i, n in ipairs({ 1, 15, 0, 700, 4096, 100000, 3, 65536 }) do
      local chunk = text(n, i)
      local bytes = assert(z:write(chunk))
      if n == 0 then assert.equal("", bytes) end
      wire[#wire + 1] = bytes
      all[#all + 1] = chunk
      local got, ended = inf:push(bytes)
      assert.equal(chunk, got, "chunk " .. i)
      assert.is_false(ended)
    end
    local tail = assert(z:finish())
    local got, ended = inf:push(tail)
    assert.equal("", got)
    assert.is_true(ended)
    inf:close()
    wire[#wire + 1] = tail
    local out, ok = gzip_command(table.concat(wire))
    assert.is_truthy(ok)
    assert.equal(table.concat(all), out)
    E.has_error(function() z:write("x") end, "gzip stream: write after finish or close")
    E.has_error(function() z:finish() end, "gzip stream: finish after finish or close")
    z:close()
  end)

  it("an empty stream is a valid gzip member", function()
    local z = gzip.stream(9)
    assert.equal("", support.gunzip(z:finish()))
  end)

  it("close frees at once; dropped streams are freed by the collector", function()
    local z = gzip.stream()
    z:write("abc")
    z:close()
    z:close()
    E.has_error(function() z:write("x") end, "gzip stream: write after finish or close")
    local before = vm_size_kb()
    if not before then return end
    for _ = 1, 8 do
      for _ = 1, 100 do
        local s = gzip.stream()
        s:write("some bytes to touch the window")
      end
      collectgarbage()
      collectgarbage()
    end
    -- 800 leaked streams would hold about 200 MiB of zlib state
    assert.is_true(vm_size_kb() - before < 64 * 1024, "VmSize grew by " .. (vm_size_kb() - before) .. " KiB")
  end)
end)
