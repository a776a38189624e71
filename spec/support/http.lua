-- Helpers for the HTTP specs: raw TCP clients on luv that send exact bytes
-- and collect exact bytes, a loop driver with deadlines, and zlib's inflate
-- through the FFI (to check gzip output with a decoder that is not ours).
-- Nothing here raises inside a luv callback: under asyncrt an error there
-- stops the loop for every later test. Callbacks record; tests assert.
local ffi = require("ffi")

local _M = {}

-- ===== the loop =====

local uv

--- luv (loaded on first use, so the gzip helpers work under plain luajit).
function _M.uv()
  uv = uv or require("luv")
  return uv
end

--- Runs the loop until cond() is true; raises after ms (default 5000).
function _M.wait_until(cond, ms, what)
  local u = _M.uv()
  ms = ms or 5000
  local fired = false
  local t = u.new_timer()
  local outer = _M.guard
  _M.guard = t
  t:start(ms, 0, function() fired = true end)
  while not cond() and not fired do u.run("once") end
  _M.guard = outer
  t:close()
  u.run("nowait")
  if not cond() then error("timed out after " .. ms .. " ms waiting for " .. (what or "a condition"), 2) end
end

--- Runs the loop for ms milliseconds.
function _M.sleep(ms)
  local done = false
  local t = _M.uv().new_timer()
  t:start(ms, 0, function() done = true end)
  while not done do _M.uv().run("once") end
  t:close()
end

--- Handles that keep the loop alive, asyncrt's own and wait_until's
-- deadline excepted.
function _M.active_handles()
  local n, kinds = 0, {}
  _M.uv().walk(function(h)
    local rt = package.loaded.asyncrt
    if h:is_active() and not h:is_closing() and not (rt and rt.is_internal(h)) and h ~= _M.guard then
      n = n + 1
      kinds[#kinds + 1] = tostring(h)
    end
  end)
  return n, table.concat(kinds, " ")
end

-- ===== raw clients =====

local Client = {}
Client.__index = Client

--- A TCP client connecting to 127.0.0.1:port (opts.host: another
-- address). Bytes sent before the connection is up are queued; everything
-- read is kept in order.
function _M.connect(port, opts)
  local u = _M.uv()
  local c = setmetatable({ tcp = u.new_tcp(), chunks = {}, nread = 0, eof = false, connected = false,
                           pending = {}, keep = not (opts and opts.count_only), reading = false }, Client)
  c.on_read = function(err, chunk)
    if err then
      c.err = err
      c.eof = true
    elseif chunk then
      c.nread = c.nread + #chunk
      if c.keep then c.chunks[#c.chunks + 1] = chunk end
      if c.on_data then c.on_data(chunk) end
    else
      c.eof = true
    end
  end
  c.tcp:connect(opts and opts.host or "127.0.0.1", port, function(err)
    if err then
      c.err = err
      c.eof = true
      return
    end
    c.connected = true
    if not (opts and opts.no_read) then c:read() end
    for _, s in ipairs(c.pending) do c.tcp:write(s) end
    c.pending = {}
  end)
  return c
end

--- Starts reading (clients made with no_read start paused).
function Client:read()
  if self.reading or self.tcp:is_closing() then return end
  self.reading = true
  self.tcp:read_start(self.on_read)
end

--- Sends bytes (queued until connected).
function Client:send(s)
  if self.tcp:is_closing() then return end
  if self.connected then self.tcp:write(s) else self.pending[#self.pending + 1] = s end
end

--- Everything read so far.
function Client:data()
  return table.concat(self.chunks)
end

--- What was read, with the value of every Date header replaced by "X".
function Client:normalized()
  return _M.normalize(self:data())
end

--- Waits until the normalized bytes read are at least n long, or EOF.
function Client:wait_len(n, ms)
  -- the raw bytes are never shorter than the normalized ones: normalize only then
  _M.wait_until(function() return self.eof or (self.nread >= n and #self:normalized() >= n) end, ms, n .. " bytes")
  return self:normalized()
end

--- Waits until the bytes read contain `plain` (a plain substring).
function Client:wait_for(plain, ms)
  _M.wait_until(function() return self.eof or self:data():find(plain, 1, true) ~= nil end, ms, plain)
  return self:normalized()
end

--- Waits for EOF (or a read error).
function Client:wait_eof(ms)
  _M.wait_until(function() return self.eof end, ms, "EOF")
  return self:normalized()
end

--- Closes the socket (a reset when unread bytes are pending: use shutdown
-- first for a clean end).
function Client:close()
  if not self.tcp:is_closing() then self.tcp:close() end
end

--- Replaces the value of every Date header with "X".
function _M.normalize(s)
  return (s:gsub("\r\nDate: [^\r\n]*\r\n", "\r\nDate: X\r\n"))
end

--- The bytes of a response as the transport writes them (Date as "X").
-- headers: list of "Name: value" lines after Server and Date.
function _M.response(status_line, headers, body)
  local parts = { "HTTP/1.1 ", status_line, "\r\nServer: asyncrt\r\nDate: X\r\n" }
  for _, h in ipairs(headers or {}) do parts[#parts + 1] = h .. "\r\n" end
  parts[#parts + 1] = "\r\n"
  parts[#parts + 1] = body or ""
  return table.concat(parts)
end

-- ===== zlib =====

local REGISTRY_KEY = "asyncrt:spec.support.http.zlib"

local function zlib()
  local reg = debug.getregistry()
  if reg[REGISTRY_KEY] then return reg[REGISTRY_KEY] end
  ffi.cdef [[
  typedef struct spec_z_stream {
    const unsigned char *next_in; unsigned int avail_in; unsigned long total_in;
    unsigned char *next_out; unsigned int avail_out; unsigned long total_out;
    const char *msg; void *state;
    void *zalloc; void *zfree; void *opaque;
    int data_type; unsigned long adler; unsigned long reserved;
  } spec_z_stream;
  int inflateInit2_(spec_z_stream *strm, int windowBits, const char *version, int stream_size);
  int inflate(spec_z_stream *strm, int flush);
  int inflateEnd(spec_z_stream *strm);
  const char *zlibVersion(void);
  ]]
  local ok, lib = pcall(ffi.load, "libz.so.1")
  if not ok then lib = ffi.load("z") end
  reg[REGISTRY_KEY] = lib
  return lib
end

local Inflater = {}
Inflater.__index = Inflater

--- A gzip decoder (zlib's inflate, windowBits 31): :push(bytes) returns
-- what those bytes decode to (sync-flushed input decodes completely) and
-- whether the stream ended; errors come back as nil, message.
function _M.inflater()
  local z = zlib()
  local zs = ffi.new("spec_z_stream")
  local rc = z.inflateInit2_(zs, 31, z.zlibVersion(), ffi.sizeof("spec_z_stream"))
  assert(rc == 0, "inflateInit2 failed: " .. rc)
  return setmetatable({ z = z, zs = zs, out = ffi.new("unsigned char[65536]") }, Inflater)
end

function Inflater:push(bytes)
  local zs, out, parts = self.zs, self.out, {}
  local keep = bytes   -- anchored while zlib reads it
  zs.next_in = ffi.cast("const unsigned char *", keep)
  zs.avail_in = #keep
  local ended = false
  repeat
    zs.next_out = out
    zs.avail_out = 65536
    local rc = self.z.inflate(zs, 2)  -- Z_SYNC_FLUSH
    local n = 65536 - zs.avail_out
    if n > 0 then parts[#parts + 1] = ffi.string(out, n) end
    if rc == 1 then ended = true break end        -- Z_STREAM_END
    if rc == -5 then break end                    -- Z_BUF_ERROR: no progress possible
    if rc ~= 0 then return nil, "inflate error " .. rc .. (zs.msg ~= nil and (": " .. ffi.string(zs.msg)) or "") end
  until zs.avail_in == 0 and zs.avail_out > 0
  return table.concat(parts), ended
end

function Inflater:close()
  if self.zs then self.z.inflateEnd(self.zs); self.zs = nil end
end

--- Decodes a whole gzip member; nil, err when it is not one.
function _M.gunzip(bytes)
  local inf = _M.inflater()
  local out, ended = inf:push(bytes)
  inf:close()
  if out == nil then return nil, ended end
  if not ended then return nil, "truncated gzip stream" end
  return out
end

return _M
