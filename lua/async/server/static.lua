--- Files: the app's public/ folder and the browser client (protocol.md "The
-- served document and assets"). A request path is decoded and checked by
-- async.server.request.segments (no "..", no NUL); dot-files are never
-- served; the file's realpath must stay inside public/'s realpath, so a
-- symlink out of it is not followed. Answers carry ETag, Last-Modified (files)
-- and Cache-Control: no-cache (revalidate each time); If-None-Match and
-- If-Modified-Since give 304; text types are gzipped when the client
-- accepts it and a compressor was given.
local fs = require("async.server.fs")
local errors = require("async.kernel.errors")
local mime = require("async.server.mime")
local request = require("async.server.request")
local response = require("async.server.response")

local type, tostring, ipairs, setmetatable, pcall = type, tostring, ipairs, setmetatable, pcall
local format, byte, concat, insert = string.format, string.byte, table.concat, table.insert
local open = io.open
local bxor, band, lshift, tohex = bit.bxor, bit.band, bit.lshift, bit.tohex

local _M = {}

local CACHE_CONTROL = "no-cache"
local MAX_BUFFERED = 1048576       -- bigger files are streamed, not cached, not gzipped
local CHUNK = 65536
local MAX_CACHED = 256             -- file entries kept (content and gzip)

-- ===== entity tags =====

--- FNV-1a (32 bits) of `s`, as 8 hex digits.
function _M.hash(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = bxor(h, byte(s, i)) % 4294967296
    -- h * 0x01000193 mod 2^32 without leaving the doubles' exact range
    h = (h * 0x193 + band(lshift(h, 24), 0xffffffff)) % 4294967296
  end
  return tohex(h)
end

-- ===== conditional answers =====

-- The gzip body of entity `f` (made once, kept in f; false when it does not
-- make the body smaller or the compressor failed).
local function gzipped(f, gzip)
  if f.gz == nil then
    local ok, z = pcall(gzip.compress, f.body)
    f.gz = ok and type(z) == "string" and #z < #f.body and z or false
  end
  return f.gz
end

--- The answer for entity `f` = { body =, etag = '"x"', mtime =,
-- content_type =, compressible = } (or `stream = fn, size =` for a big
-- file): 304 when the request's validators match, else 200 with the body
-- (gzipped when the client accepts it, `gzip` is given and it helps).
function _M.answer(req, f, gzip)
  local vary = f.compressible and { "Vary", "Accept-Encoding" } or nil
  local gz = f.body and f.compressible and gzip and request.accepts_gzip(req) and gzipped(f, gzip) or nil
  local etag = gz and (f.etag:sub(1, -2) .. '-gzip"') or f.etag
  local last_modified = f.mtime and request.format_date(f.mtime) or nil
  local extra = { { "Cache-Control", CACHE_CONTROL }, { "ETag", etag } }
  if last_modified then extra[#extra + 1] = { "Last-Modified", last_modified } end
  if vary then extra[#extra + 1] = vary end
  local fresh
  if req.headers["if-none-match"] ~= nil then
    fresh = request.none_match(req, f.etag, f.etag:sub(1, -2) .. '-gzip"')
  elseif f.mtime and req.headers["if-modified-since"] ~= nil then
    local since = request.parse_date(req.headers["if-modified-since"])
    fresh = since ~= nil and f.mtime <= since
  end
  if fresh then return response.new(304, nil, nil, extra) end
  if f.stream then
    local res = response.new(200, nil, nil, extra)
    insert(res.headers, 1, { "Content-Type", f.content_type })
    res.stream = f.stream
    return res
  end
  if gz then
    insert(extra, 1, { "Content-Encoding", "gzip" })
    return response.new(200, f.content_type, gz, extra)
  end
  return response.new(200, f.content_type, f.body, extra)
end

-- ===== public/ =====

local Static = {}
Static.__index = Static

--- A public/ folder: `dir` (absolute, or relative to `root`, default the
-- current directory). Raises when it is not a directory.
function _M.new(dir, root)
  if type(dir) ~= "string" or dir == "" then
    errors.argument("public must be a directory path, got " .. tostring(dir))
  end
  local path = dir
  if dir:sub(1, 1) ~= "/" then path = (root or ".") .. "/" .. dir end
  local real = fs.realpath(path)
  local st = real and fs.stat(real)
  if not st or st.type ~= "directory" then
    errors.argument('public: "' .. path .. '" is not a directory')
  end
  return setmetatable({ dir = real, cache = {}, cached = 0 }, Static)
end

-- a file streamed in CHUNK-sized pieces
local function file_stream(path)
  return function(write)
    local f = open(path, "rb")
    if not f then return end
    while true do
      local s = f:read(CHUNK)
      if s == nil or s == "" then break end
      if not write(s) then break end
    end
    f:close()
  end
end

--- The entity of the file at decoded path segments `segs`, or nil when
-- there is no such regular file inside the folder.
function Static:entity(segs)
  if #segs == 0 then return nil end
  for _, s in ipairs(segs) do
    if s:sub(1, 1) == "." then return nil end   -- dot-files (.env, .git) are never served
  end
  local real = fs.realpath(self.dir .. "/" .. concat(segs, "/"))
  if real == nil then return nil end
  if real:sub(1, #self.dir + 1) ~= self.dir .. "/" then return nil end   -- a symlink out of public/
  local st = fs.stat(real)
  if st == nil or st.type ~= "file" then return nil end
  local ctype, compressible = mime.of(real)
  local etag = format('"%x-%x"', st.mtime, st.size)
  local hit = self.cache[real]
  if hit and hit.etag == etag then return hit end
  local f = { etag = etag, mtime = st.mtime, content_type = ctype, compressible = compressible, size = st.size }
  if st.size > MAX_BUFFERED then
    f.compressible = false
    f.stream = file_stream(real)
    return f
  end
  local body = fs.read(real)
  if body == nil then return nil end
  f.body = body
  if hit == nil then
    if self.cached >= MAX_CACHED then self.cache, self.cached = {}, 0 end
    self.cached = self.cached + 1
  end
  self.cache[real] = f
  return f
end

--- The answer for a GET/HEAD of decoded path `segs`, or nil when it names
-- no file of the folder.
function Static:serve(req, segs, gzip)
  local f = self:entity(segs)
  if f == nil then return nil end
  return _M.answer(req, f, gzip)
end

-- ===== the browser client =====

--- The entity of the browser client at `path`, or nil and an error.
function _M.client_entity(path)
  local body, err = fs.read(path)
  if body == nil then return nil, err end
  return { body = body, etag = '"' .. _M.hash(body) .. "-" .. format("%x", #body) .. '"',
           content_type = "text/javascript; charset=utf-8", compressible = true }
end

--- Where the browser client is: next to this module when installed
-- (`$(LUADIR)/async/server/client.js`), else the checkout's
-- client/async.js. Returns the path, or nil.
function _M.default_client_path()
  local dir = fs.source_dir(1)
  if dir == nil then return nil end
  for _, p in ipairs({ dir .. "/client.js", dir .. "/../../../client/async.js" }) do
    local st = fs.stat(p)
    if st and st.type == "file" then return fs.realpath(p) or p end
  end
  return nil
end

return _M
