--- The few filesystem calls the server needs: realpath (symlinks
-- resolved, for the public/ containment check), stat (type, size, mtime)
-- and reading a file. libc through the FFI (`realpath`, `statx`), with luv's
-- fs_realpath/fs_stat as the fallback where the FFI declarations are not
-- available. Synchronous: static files are small and local.
local ffi_ok, ffi = pcall(require, "ffi")

local type, pcall, tonumber, open = type, pcall, tonumber, io.open
local band = bit.band

local _M = {}

-- ===== libc through the FFI =====

local C
local have_realpath, have_statx = false, false
if ffi_ok then
  C = ffi.C
  -- each declaration on its own: another module may have declared one
  pcall(ffi.cdef, "char *realpath(const char *path, char *resolved_path);")
  pcall(ffi.cdef, "void free(void *ptr);")
  pcall(ffi.cdef, [[
    struct async_statx_timestamp { int64_t tv_sec; uint32_t tv_nsec; int32_t reserved; };
    struct async_statx {
      uint32_t mask; uint32_t blksize; uint64_t attributes;
      uint32_t nlink; uint32_t uid; uint32_t gid; uint16_t mode; uint16_t spare0;
      uint64_t ino; uint64_t size; uint64_t blocks; uint64_t attributes_mask;
      struct async_statx_timestamp atime, btime, ctime, mtime;
      uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
      uint64_t spare2[14];
    };
  ]])
  pcall(ffi.cdef, "int statx(int dirfd, const char *path, int flags, unsigned int mask, struct async_statx *buf);")
  have_realpath = pcall(function() return C.realpath ~= nil and C.free ~= nil end)
  have_statx = pcall(function() return C.statx ~= nil end)
end

local uv
local function luv()
  if uv == nil then
    local ok, m = pcall(require, "luv")
    uv = ok and m or false
  end
  return uv or nil
end

local AT_FDCWD, STATX_BASIC = -100, 0x7ff
local S_IFMT, S_IFREG, S_IFDIR = 0xF000, 0x8000, 0x4000

--- The canonical absolute path of `path` (symlinks, "." and ".." resolved),
-- or nil when it does not exist (or cannot be resolved).
function _M.realpath(path)
  if type(path) ~= "string" or path:find("\0", 1, true) then return nil end
  if have_realpath then
    local p = C.realpath(path, nil)
    if p == nil then return nil end
    local s = ffi.string(p)
    C.free(p)
    return s
  end
  local u = luv()
  if u then return (u.fs_realpath(path)) end
  return nil
end

--- `{ type = "file" | "directory" | "other", size =, mtime = seconds }` of
-- `path` (symlinks followed), or nil when it does not exist.
function _M.stat(path)
  if type(path) ~= "string" or path:find("\0", 1, true) then return nil end
  if have_statx then
    local buf = ffi.new("struct async_statx")
    if C.statx(AT_FDCWD, path, 0, STATX_BASIC, buf) ~= 0 then return nil end
    local fmt = band(buf.mode, S_IFMT)
    return { type = fmt == S_IFREG and "file" or fmt == S_IFDIR and "directory" or "other",
             size = tonumber(buf.size), mtime = tonumber(buf.mtime.tv_sec) }
  end
  local u = luv()
  if u then
    local st = u.fs_stat(path)
    if not st then return nil end
    return { type = st.type == "file" and "file" or st.type == "directory" and "directory" or "other",
             size = st.size, mtime = st.mtime and st.mtime.sec or 0 }
  end
  return nil
end

--- The whole content of file `path`, or nil and the error.
function _M.read(path)
  local f, err = open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  if s == nil then return nil, "cannot read " .. path end
  return s
end

--- The directory of the file that holds function level `level`'s code
-- (level 2: the caller), or nil when it was not loaded from a file.
function _M.source_dir(level)
  local src = debug.getinfo((level or 1) + 1, "S").source
  if type(src) ~= "string" or src:sub(1, 1) ~= "@" then return nil end
  return src:sub(2):match("^(.*)/[^/]*$") or "."
end

return _M
