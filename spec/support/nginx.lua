-- A real nginx for the specs, Test::Nginx style: a configuration written to
-- a temporary prefix, a random loopback port, N workers, the error log at
-- `info`; raw HTTP clients on luv (spec/support/http.lua) that send exact
-- bytes and keep exact bytes; and the error log read after every case
-- (`[error]`, `[alert]`, `[crit]`, `[emerg]` fail it unless the case said
-- which ones it expects).
--
--   local nginx = require("support.nginx")
--   local srv = nginx.start({ http = "...", server = "...", init = "..." })
--   local res = srv:get("/path")            -- { status=, headers={name=...}, head=, body=, raw= }
--   srv:check_log()                          -- raises on new error lines
--   srv:stop()
local http = require("support.http")

local _M = {}

local NGINX = "/usr/sbin/nginx"
local MODULES = "/usr/lib/nginx/modules"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end
_M.sh = sh

local ROOT = sh("pwd"):gsub("%s+$", "")
local IS_ROOT = sh("id -u"):gsub("%s+$", "") == "0"
_M.ROOT = ROOT

--- Is a usable nginx with the Lua module installed?
function _M.available()
  local f = io.open(MODULES .. "/ngx_http_lua_module.so")
  if not f then return false end
  f:close()
  return sh("test -x " .. NGINX .. " && echo yes"):find("yes") ~= nil
end

local TEMPLATE = [[
load_module @MODULES@/ndk_http_module.so;
load_module @MODULES@/ngx_http_lua_module.so;
daemon on;
master_process on;
worker_processes @WORKERS@;
error_log @PREFIX@/error.log @LEVEL@;
pid @PREFIX@/nginx.pid;
env ASYNC_ENV;
@MAIN@
events { worker_connections 1024; accept_mutex off; }
http {
  access_log off;
  client_body_temp_path @PREFIX@/body; proxy_temp_path @PREFIX@/proxy; fastcgi_temp_path @PREFIX@/fastcgi;
  uwsgi_temp_path @PREFIX@/uwsgi; scgi_temp_path @PREFIX@/scgi;
  lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@ROOT@/?.lua;@ROOT@/spec/?.lua;;";
  lua_package_cpath "@ROOT@/build/?.so;;";
  lua_check_client_abort on;
  client_max_body_size 1m;
  client_body_buffer_size 1m;
  @HTTP@
  init_by_lua_block {
@INIT@
  }
  server {
    listen 127.0.0.1:@PORT@ @REUSEPORT@;
    server_tokens off;
@SERVER@
  }
}
]]

local Server = {}
Server.__index = Server

local function write_file(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

--- Starts nginx. opts: http (directives in http{}), server (in server{}),
-- init (Lua in init_by_lua_block), main (top-level directives); in all of
-- them @PREFIX@, @ROOT@ (the checkout) and @PORT@ are replaced; workers
-- (default 2), level (error_log level, default info), reuseport (default
-- true: each worker its own accept queue, so requests spread over them).
function _M.start(opts)
  opts = opts or {}
  local prefix = sh("mktemp -d /tmp/async-nginx.XXXXXX"):gsub("%s+$", "")
  for _, d in ipairs({ "body", "proxy", "fastcgi", "uwsgi", "scgi", "logs" }) do
    sh("mkdir -p " .. prefix .. "/" .. d)
  end
  local last
  for _ = 1, 8 do
    local port = 20000 + math.random(0, 29999)
    local conf = TEMPLATE
    local subs = {
      MODULES = MODULES, WORKERS = tostring(opts.workers or 2), LEVEL = opts.level or "info",
      -- as root, nginx runs its workers as nobody, who cannot read a
      -- mktemp folder: keep them as the user running the specs
      MAIN = (IS_ROOT and "user root;\n" or "") .. (opts.main or ""),
      HTTP = opts.http or "", INIT = opts.init or "", SERVER = opts.server or "",
      REUSEPORT = opts.reuseport == false and "" or "reuseport",
    }
    conf = conf:gsub("@([A-Z]+)@", function(w) return subs[w] end)
    conf = conf:gsub("@PREFIX@", prefix):gsub("@ROOT@", ROOT):gsub("@PORT@", tostring(port))
    write_file(prefix .. "/nginx.conf", conf)
    write_file(prefix .. "/error.log", "")
    local out = sh(("%s -p %s -c %s/nginx.conf"):format(NGINX, prefix, prefix))
    if out == "" then
      local srv = setmetatable({ prefix = prefix, port = port, log_offset = 0, expected = {} }, Server)
      -- wait until it answers
      for _ = 1, 100 do
        local c = http.connect(port)
        local done = false
        c:send("GET /__probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        local ok = pcall(http.wait_until, function() done = c.eof; return done end, 500, "probe")
        c:close()
        if ok and c:data():find("^HTTP/1%.1 ") then return srv end
        http.sleep(50)
      end
      srv:stop()
      error("nginx did not answer on port " .. port .. ": " .. read_file(prefix .. "/error.log"), 2)
    end
    last = out
    if not out:find("Address already in use", 1, true) then break end
  end
  error("nginx did not start: " .. tostring(last), 2)
end

--- Stops nginx (QUIT: graceful) and removes the prefix unless KEEP_NGINX.
function Server:stop()
  local pid = read_file(self.prefix .. "/nginx.pid"):gsub("%s+", "")
  if pid ~= "" then
    sh("kill -QUIT " .. pid)
    for _ = 1, 100 do
      if read_file(self.prefix .. "/nginx.pid") == "" then break end
      http.sleep(20)
    end
    sh("kill -TERM " .. pid .. " 2>/dev/null")
  end
  if not os.getenv("KEEP_NGINX") then sh("rm -rf " .. self.prefix) end
end

--- The error log since the start.
function Server:log()
  return read_file(self.prefix .. "/error.log")
end

--- Lines matching `pattern` (a Lua pattern) are expected in the error log
-- until the next check_log.
function Server:expect_log(pattern)
  self.expected[#self.expected + 1] = pattern
end

--- Raises if the error log got an [error], [alert], [crit] or [emerg]
-- line since the last check that the case did not expect; returns the new
-- text of the log.
function Server:check_log()
  local all = self:log()
  local new = all:sub(self.log_offset + 1)
  self.log_offset = #all
  local expected = self.expected
  self.expected = {}
  local bad = {}
  for line in new:gmatch("[^\n]+") do
    if line:find("%[error%]") or line:find("%[alert%]") or line:find("%[crit%]") or line:find("%[emerg%]") then
      local ok = false
      for _, p in ipairs(expected) do if line:find(p) then ok = true break end end
      if not ok then bad[#bad + 1] = line end
    end
  end
  if #bad > 0 then error("nginx error log:\n" .. table.concat(bad, "\n"), 2) end
  return new
end

-- ===== requests =====

--- Parses raw response bytes: { status =, head =, headers = { lower-name = value (repeats joined ", ") },
-- body = (de-chunked), chunked = bool, raw = }.
function _M.parse(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  if not head_end then return { raw = raw, status = 0, headers = {}, body = "", head = raw } end
  local head = raw:sub(1, head_end - 1)
  local rest = raw:sub(head_end + 4)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local headers, list = {}, {}
  for line in head:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then
      k = k:lower()
      list[#list + 1] = { k, v }
      headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
    end
  end
  local body = rest
  local chunked = (headers["transfer-encoding"] or ""):lower() == "chunked"
  local complete = true
  if chunked then
    local parts, i = {}, 1
    complete = false
    while true do
      local size_line_end = rest:find("\r\n", i, true)
      if not size_line_end then break end
      local size = tonumber(rest:sub(i, size_line_end - 1):match("^%x+"), 16)
      if not size then break end
      if size == 0 then complete = true break end
      parts[#parts + 1] = rest:sub(size_line_end + 2, size_line_end + 1 + size)
      i = size_line_end + 2 + size + 2
    end
    body = table.concat(parts)
  end
  return { raw = raw, head = head, status = status, headers = headers, list = list, body = body,
           chunked = chunked, complete = complete }
end

--- Sends raw request bytes on a new connection and waits for EOF (send
-- `Connection: close`); returns the parsed response (plus `ms`).
function Server:raw(bytes, ms)
  local t0 = http.uv().hrtime()
  local c = http.connect(self.port)
  c:send(bytes)
  http.wait_until(function() return c.eof end, ms or 10000, "EOF of " .. bytes:match("^[^\r\n]*"))
  c:close()
  local res = _M.parse(c:data())
  res.ms = (http.uv().hrtime() - t0) / 1e6
  return res
end

--- A request: method, path, headers (list of "Name: value"), body.
function _M.request(method, path, headers, body)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1", "Connection: close" }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

function Server:get(path, headers)
  return self:raw(_M.request("GET", path, headers))
end

function Server:post(path, body, headers)
  return self:raw(_M.request("POST", path, headers, body))
end

--- Opens a connection that records when each piece of data arrived:
-- c.arrivals = { { ms =, data = } }.
function Server:open(bytes)
  local t0 = http.uv().hrtime()
  local c = http.connect(self.port)
  c.arrivals = {}
  c.on_data = function(chunk) c.arrivals[#c.arrivals + 1] = { ms = (http.uv().hrtime() - t0) / 1e6, data = chunk } end
  if bytes then c:send(bytes) end
  return c
end

_M.http = http

return _M
