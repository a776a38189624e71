--- gzip for response bodies, through zlib in the HTTP shim (src/http/gzip.c).
--
--   gzip.compress(s [, level])  --> gzip bytes | nil, err
--   local z = gzip.stream([level]) --> stream | nil, err
--   z:write(chunk) --> bytes       compressed and sync-flushed: the bytes
--                                  decode to everything written so far
--   z:finish()     --> bytes       the rest and the gzip trailer; frees
--   z:close()                      frees without finishing (idempotent)
--
-- level is 0..9 (default: zlib's, 6). zlib state (about 256 KiB per stream)
-- is freed by finish/close, on an error, or by the garbage collector when a
-- stream is dropped.
local ffi = require("ffi")
local errors = require("async.kernel.errors")
local native = require("async.server.native")

local C = native.C
local ffi_new, ffi_string, ffi_gc = ffi.new, ffi.string, ffi.gc
local type, setmetatable, tostring, pcall = type, setmetatable, tostring, pcall
local floor = math.floor

local _M = {}

local MESSAGES = {
  [-1] = "out of memory",
  [-2] = "gzip stream already finished",
  [-3] = "zlib refused the input",
}

local function check_level(level, what)
  if level == nil then return -1 end
  if type(level) ~= "number" or level ~= floor(level) or level < 0 or level > 9 then
    errors.argument(what .. ": level must be an integer 0..9, got " .. tostring(level))
  end
  return level
end

--- Compresses the string s into one gzip member.
function _M.compress(s, level)
  if type(s) ~= "string" then errors.argument("gzip.compress: expected a string, got " .. type(s)) end
  level = check_level(level, "gzip.compress")
  local out, len = ffi_new("char *[1]"), ffi_new("size_t[1]")
  local rc = C.ahttp_gzip(s, #s, level, out, len)
  if rc ~= 0 then return nil, MESSAGES[rc] or ("gzip error " .. tostring(rc)) end
  local ok, res = pcall(ffi_string, out[0], len[0])
  C.ahttp_gzip_release(out[0])
  if not ok then return nil, tostring(res) end
  return res
end

local Stream = {}
Stream.__index = Stream

--- A streaming compressor with a sync flush per write.
function _M.stream(level)
  level = check_level(level, "gzip.stream")
  local z = C.ahttp_gz_new(level)
  if z == nil then return nil, "out of memory" end
  return setmetatable({ z = ffi_gc(z, C.ahttp_gz_free), out = ffi_new("const char *[1]"),
                        len = ffi_new("size_t[1]") }, Stream)
end

local function run(self, chunk, finish, what)
  local z = self.z
  if z == nil then errors.argument("gzip stream: " .. what .. " after finish or close") end
  local rc = C.ahttp_gz_write(z, chunk, #chunk, finish, self.out, self.len)
  if rc ~= 0 then
    self:close()
    return nil, MESSAGES[rc] or ("gzip error " .. tostring(rc))
  end
  local ok, res = pcall(ffi_string, self.out[0], self.len[0])
  if finish == 1 or not ok then self:close() end
  if not ok then return nil, tostring(res) end
  return res
end

--- Compresses chunk and flushes; returns the bytes to send ("" is possible
-- when chunk is empty).
function Stream:write(chunk)
  if type(chunk) ~= "string" then errors.argument("gzip stream: write expects a string, got " .. type(chunk)) end
  return run(self, chunk, 0, "write")
end

--- Ends the stream; returns the last bytes (the gzip trailer included).
function Stream:finish()
  return run(self, "", 1, "finish")
end

--- Frees the zlib state now; the stream cannot be used afterwards.
function Stream:close()
  local z = self.z
  if z == nil then return end
  self.z = nil
  C.ahttp_gz_free(ffi_gc(z, nil))
end

return _M
