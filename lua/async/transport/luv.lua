--- HTTP/1.1 server on luv: the transport under Async.serve (docs/http.md).
--
-- Contract (transport-neutral; the endpoints in async.server.* are written
-- against exactly this):
--
--   local t = require("async.transport.luv")
--   local srv, err = t.listen({
--     host = "127.0.0.1", port = 0,           -- port 0: a free port, read back as srv.port
--     limits = { body = 1048576, headers = 16384, connections = 10000, pipeline = 65536 },
--     timeouts = { header = 10000, idle = 5000, body = 30000, send = 60000, linger = 2000 },  -- ms
--     high_water = 65536,                     -- bytes queued on a socket before write() waits
--     log = function(entry) end,              -- nil: no log
--     error_response = function(e) end,       -- optional: the answer to a refused request
--   }, handler)
--   srv.port; srv.host; srv.url; srv:stats() --> { connections =, rejected =, queued = bytes }
--   srv:close(on_closed)  -- graceful: stops accepting, closes idle keep-alive connections,
--                         -- lets in-flight requests finish (answered with Connection: close);
--                         -- on_closed() runs once every connection is closed
--
--   handler(req) runs in its own coroutine per request; it may yield on the
--   luv loop (Async.delay, loop.await). Requests of one connection run one
--   after the other, answered in order.
--   req = { method = "GET", target = "/a?b" (raw), path = "/a", query = "b" (or ""),
--           version = "1.1" | "1.0", headers = { lowercase-name = value, repeats joined with ", " },
--           body = string ("" if none, de-chunked), remote = "127.0.0.1",
--           abort = token (async.abort) cancelled when the client disconnects,
--           content_length = n | nil, chunked = bool }
--   it returns a response:
--     { status = 200, headers = { {"Name", "value"}, ... }, body = "..." }   Content-Length added
--     { status = 200, headers = {...}, stream = function(write) ... end }    chunked (HTTP/1.0:
--         delimited by closing the connection); write(chunk) returns true, or nil, "closed"
--         once the client is gone; it waits (yields the request's coroutine) while more than
--         high_water bytes are queued on the socket; write(nil) and write("") do nothing;
--         the transport writes the last chunk when stream returns.
--   status defaults to 200 (200..599); headers may also be a map (sent sorted by name);
--   Content-Length, Transfer-Encoding and Connection from the handler are ignored (the
--   transport frames the response); Date and Server are added unless the handler set them.
--   HEAD: the headers a GET would get, no body bytes, stream not called; 204 and 304: no body.
--   An error raised by the handler (or an invalid response) -> 500, logged; the server
--   keeps serving. An error raised by stream after the head was sent closes the connection
--   without the last chunk, so the client sees an incomplete response.
--
-- Refusals, answered with Connection: close, then the connection is closed:
--   malformed 400, headers over limits.headers 431, body over limits.body 413,
--   Content-Length with Transfer-Encoding or repeated 400, a transfer coding other than
--   chunked 501, HTTP/2+ on this framing 505, an Expect other than 100-continue 417,
--   header block not complete within timeouts.header (from its first byte) 408, no body
--   bytes for timeouts.body while a body is incomplete 408. Over limits.connections a new
--   connection gets 503 and is closed. Body of these answers: the reason phrase and "\n"
--   (text/plain), unless error_response(e) returns a response table; e = { status =,
--   code =, message =, method =, path =, remote = } (code: the parser's, or "timeout",
--   "expectation_failed", "connections", "handler_error" with e.error).
--
-- log(entry): one per request (refused = true when the transport answered
-- it without calling the handler), entry = { method =, path =, status =, bytes = (body bytes
-- sent), ms =, remote =, error = (refusals, handler errors, disconnects) }; a client gone
-- before its response ended logs status 499 (when the status line was not sent) and
-- error = "closed: <why>".
--
-- Requires: luv, async.transport.http_parser (the C shim), the abort module
-- (async.kernel.abort, before the layer move async.abort).
local uv = require("luv")
local errors = require("async.kernel.errors")
local http_parser = require("async.transport.http_parser")

local type, error, tostring, pcall, xpcall, setmetatable, pairs, ipairs, next, require =
      type, error, tostring, pcall, xpcall, setmetatable, pairs, ipairs, next, require
local co_create, co_resume, co_yield, co_running, co_status =
      coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local traceback = debug.traceback
local floor, max = math.floor, math.max
local concat, sort = table.concat, table.sort
local format, lower = string.format, string.lower
local os_time, os_date = os.time, os.date
local io_stderr = io.stderr
local hrtime = uv.hrtime

-- the abort module: async.kernel.abort after the layer move, async.abort before
local abort_mod
do
  local names = { "async.kernel.abort", "async.abort" }
  for i = 1, #names do
    local ok, m = pcall(require, names[i])
    if ok then abort_mod = m break end
    if not tostring(m):find("module '" .. names[i] .. "' not found", 1, true) then error(m, 0) end
  end
  if not abort_mod then error("async.transport.luv: no abort module (async.kernel.abort or async.abort)", 0) end
end

local _M = {}

local DEFAULT_LIMITS = { body = 1048576, headers = 16384, connections = 10000, pipeline = 65536 }
local DEFAULT_TIMEOUTS = { header = 10000, idle = 5000, body = 30000, send = 60000, linger = 2000 }
local DEFAULT_HIGH_WATER = 65536
_M.DEFAULT_LIMITS, _M.DEFAULT_TIMEOUTS, _M.DEFAULT_HIGH_WATER = DEFAULT_LIMITS, DEFAULT_TIMEOUTS, DEFAULT_HIGH_WATER

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [203] = "Non-Authoritative Information",
  [204] = "No Content", [205] = "Reset Content", [206] = "Partial Content",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long", [415] = "Unsupported Media Type",
  [416] = "Range Not Satisfiable", [417] = "Expectation Failed", [418] = "I'm a teapot",
  [421] = "Misdirected Request", [422] = "Unprocessable Content", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
_M.REASONS = REASONS

local CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"
local LAST_CHUNK = "0\r\n\r\n"

-- ===== small helpers =====

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local date_sec, date_str = -1, nil

-- The Date header value (IMF-fixdate), computed once per second.
local function http_date()
  local t = os_time()
  if t ~= date_sec then
    local d = os_date("!*t", t)
    date_str = format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[d.wday], d.day, MONTHS[d.month], d.year,
      d.hour, d.min, d.sec)
    date_sec = t
  end
  return date_str
end
_M.http_date = http_date

local function now_ms() return hrtime() / 1e6 end

local function internal_error(msg)
  io_stderr:write("async.transport.luv: internal error: ", tostring(msg), "\n")
end

local function emit_log(srv, entry)
  local log = srv.log
  if log == nil then return end
  local ok, err = pcall(log, entry)
  if not ok then internal_error("log function raised: " .. tostring(err)) end
end

-- The response head; nil, err when the handler's headers are not valid.
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- header name -> "ok" | "framing" | "server" | "date" (nil: not a token).
-- Checked once per distinct name: a server sends the same few names on
-- every response, and the pattern match and lowercasing per header were a
-- measurable part of a small response's cost. Bounded (a handler that
-- makes up names cannot grow it without limit).
local name_kind, name_kinds = {}, 0
local function kind_of(name)
  local k = name_kind[name]
  if k ~= nil then return k end
  if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+.^_`|~-]+$") then return nil end
  local lname = lower(name)
  k = FRAMING[lname] and "framing" or (lname == "server" or lname == "date") and lname or "ok"
  if name_kinds >= 1024 then name_kind, name_kinds = {}, 0 end
  name_kind[name] = k
  name_kinds = name_kinds + 1
  return k
end

local function build_head(status, headers, framing, connection)
  local parts, n = { "HTTP/1.1 ", tostring(status), " ", REASONS[status] or "Unknown", "\r\n", false, false }, 7
  local has_server, has_date = false, false
  local list = headers
  if headers ~= nil and headers[1] == nil and next(headers) ~= nil then  -- a map: sorted by name
    list = {}
    for k, v in pairs(headers) do list[#list + 1] = { k, v } end
    sort(list, function(a, b) return tostring(a[1]) < tostring(b[1]) end)
  end
  -- parts[6] and [7] are kept for Server and Date, which go first
  if list ~= nil then
    for i = 1, #list do
      local h = list[i]
      if type(h) ~= "table" then return nil, "header " .. i .. " is not a {name, value} pair" end
      local name, value = h[1], h[2]
      local kind = kind_of(name)
      if kind == nil then return nil, "bad header name " .. format("%q", tostring(name)) end
      if type(value) == "number" then value = tostring(value) end
      if type(value) ~= "string" or value:find("[%z\r\n]") then
        return nil, "bad value for header " .. name
      end
      if kind ~= "framing" then
        if kind == "server" then has_server = true elseif kind == "date" then has_date = true end
        parts[n + 1], parts[n + 2], parts[n + 3], parts[n + 4] = name, ": ", value, "\r\n"
        n = n + 4
      end
    end
  end
  parts[6] = has_server and "" or "Server: asyncrt\r\n"
  parts[7] = has_date and "" or ("Date: " .. http_date() .. "\r\n")
  if framing then n = n + 1; parts[n] = framing end
  if connection then n = n + 1; parts[n] = connection end
  n = n + 1; parts[n] = "\r\n"
  return concat(parts, "", 1, n)
end
_M.build_head = build_head

-- ===== connections =====

local Conn = {}
Conn.__index = Conn

local pump, conn_close, conn_end, reject

local function queued(c)
  local tcp = c.tcp
  if c.closed or tcp == nil then return 0 end
  return tcp:get_write_queue_size()
end

-- (Re)arms the connection's one timer for `kind`; ms false/nil disarms it.
local function set_timer(c, kind, ms)
  local t = c.timer
  if t == nil or c.closed then return end
  t:stop()
  c.tkind = nil
  if ms then
    c.tkind = kind
    t:start(ms, 0, c.on_timer)
  end
end

-- Resumes a request's coroutine; an error here is a bug of this module.
local function resume(c, co, ...)
  if co_status(co) ~= "suspended" then return end
  local ok, err = co_resume(co, ...)
  if not ok then
    internal_error(traceback(co, tostring(err)))
    conn_close(c, "internal error", "internal error")
  end
end

local function read_on(c)
  if c.reading or c.closed then return end
  c.reading = true
  c.tcp:read_start(c.on_read)
end

local function read_off(c)
  if not c.reading or c.closed then return end
  c.reading = false
  c.tcp:read_stop()
end

-- Queues bytes on the socket; false once the connection is gone.
local function send(c, data)
  if c.closed then return false end
  local ok, err = c.tcp:write(data, c.on_write)
  if not ok then
    conn_close(c, "write: " .. tostring(err))
    return false
  end
  return true
end

-- Closes the connection now: timer, socket, parser; cancels the request's
-- abort token (with `reason`, default "client disconnected"), wakes a writer
-- waiting for the queue to drain, logs the request it was serving.
-- Idempotent.
function conn_close(c, why, reason)
  if c.closed then return end
  c.closed = true
  c.state = "closed"
  local srv = c.srv
  if c.timer and not c.timer:is_closing() then c.timer:close() end
  if c.tcp and not c.tcp:is_closing() then c.tcp:close() end
  c.parser:free()
  c.inbuf = ""
  if c.rejected then
    srv.nrejected = srv.nrejected - 1
  else
    srv.conns[c] = nil
    srv.nconns = srv.nconns - 1
  end
  local x = c.x
  c.x = nil
  if x and not x.logged then
    x.logged = true
    emit_log(srv, { method = x.req.method, path = x.req.path, status = x.status or 499, bytes = x.bytes,
                    ms = now_ms() - x.t0, remote = c.remote, error = "closed: " .. tostring(why or "closed") })
  end
  if x and x.req.abort then
    local ok, err = pcall(x.req.abort.cancel, x.req.abort, reason or "client disconnected")
    if not ok then internal_error("an abort callback raised: " .. tostring(err)) end
  end
  local w = c.waiter
  if w then
    c.waiter = nil
    resume(c, w)
  end
  srv:_check_closed()
end

-- Ends the connection gracefully once what was queued is sent: shuts down
-- the sending side, then reads and drops what the client still sends until
-- it closes or timeouts.linger passes (closing with unread bytes would
-- reset the connection and could destroy the answer in flight).
function conn_end(c)
  if c.closed or c.state == "closing" then return end
  c.state = "closing"
  c.inbuf = ""
  local tm = c.srv.timeouts
  set_timer(c, "linger", tm.send or tm.linger)   -- the queue may take a while to drain
  read_on(c)
  local ok = c.tcp:shutdown(function(err)
    if c.closed then return end
    if err then return conn_close(c) end
    set_timer(c, "linger", tm.linger or 1)
  end)
  if not ok then conn_close(c) end
end

-- Answers a refused request (timeouts included) and ends the connection.
function reject(c, status, code, message, method, target)
  if c.closed then return end
  local srv = c.srv
  local path = target and http_parser.split_target(target) or nil
  local t0 = c.t0 or now_ms()
  c.state = "refusing"
  local res
  if srv.error_response then
    local ok, r = pcall(srv.error_response, { status = status, code = code, message = message, method = method,
                                               path = path, remote = c.remote })
    if ok and type(r) == "table" then res = r
    elseif not ok then internal_error("error_response raised: " .. tostring(r)) end
  end
  local body, st = REASONS[status] .. "\n", status
  local headers = { { "Content-Type", "text/plain; charset=utf-8" } }
  if res then
    st = type(res.status) == "number" and REASONS[res.status] and res.status >= 400 and res.status or status
    body = type(res.body) == "string" and res.body or ""
    headers = res.headers
  end
  local head, err = build_head(st, headers, "Content-Length: " .. #body .. "\r\n", "Connection: close\r\n")
  if not head then
    internal_error("error_response: " .. err)
    body = REASONS[status] .. "\n"
    st = status
    head = build_head(st, { { "Content-Type", "text/plain; charset=utf-8" } },
                      "Content-Length: " .. #body .. "\r\n", "Connection: close\r\n")
  end
  if method == "HEAD" then body = "" end
  emit_log(srv, { method = method, path = path, status = st, bytes = #body, ms = now_ms() - t0,
                  remote = c.remote, error = code, refused = true })
  if send(c, { head, body }) then conn_end(c) end
end

-- ===== one request =====

-- Waits in the request's coroutine until the socket's queue is at most
-- srv.low_water or the connection is gone.
local function wait_drain(c)
  local tm = c.srv.timeouts
  c.waiter = co_running()
  set_timer(c, "send", tm.send)
  repeat co_yield() until c.closed or queued(c) <= c.srv.low_water
  c.waiter = nil
  if not c.closed then set_timer(c, nil, false) end
end

-- Sends the response `res` to request x.req; returns nil, err when res is
-- not a valid response (nothing was sent then).
local function respond(c, x, res)
  local req = x.req
  if type(res) ~= "table" then return nil, "the handler returned " .. type(res) .. ", not a response table" end
  local status = res.status
  if status == nil then status = 200 end
  if type(status) ~= "number" or status ~= floor(status) or status < 200 or status > 599 then
    return nil, "bad response status " .. tostring(status)
  end
  local stream, body = res.stream, res.body
  if stream ~= nil and type(stream) ~= "function" then return nil, "response stream is not a function" end
  if stream ~= nil and body ~= nil then return nil, "a response has a body or a stream, not both" end
  if body ~= nil and type(body) ~= "string" then return nil, "response body is not a string" end
  if res.headers ~= nil and type(res.headers) ~= "table" then return nil, "response headers are not a table" end
  local head_only = req.method == "HEAD"
  local no_body = status == 204 or status == 304
  local srv = c.srv
  local keep = x.keep and not srv.closing
  local framing
  local chunked = false
  if no_body then
    framing = nil
  elseif stream then
    if req.version == "1.0" then keep = false else framing = "Transfer-Encoding: chunked\r\n"; chunked = true end
  else
    body = body or ""
    framing = "Content-Length: " .. #body .. "\r\n"
  end
  local connection
  if not keep then connection = "Connection: close\r\n"
  elseif req.version == "1.0" then connection = "Connection: keep-alive\r\n" end
  local head, err = build_head(status, res.headers, framing, connection)
  if not head then return nil, err end
  x.keep = keep
  x.status = status
  if c.closed then return true end
  if head_only or no_body then
    send(c, head)
    return true
  end
  if not stream then
    x.bytes = #body
    send(c, body ~= "" and { head, body } or head)
    return true
  end
  -- streamed
  if not send(c, head) then return true end
  local done = false
  local low_co = x.co
  local function write(chunk)
    if done or c.closed or c.x ~= x then return nil, "closed" end
    if chunk == nil or chunk == "" then return true end
    if type(chunk) ~= "string" then errors.argument("write expects a string, got " .. type(chunk)) end
    local ok
    if chunked then
      ok = send(c, { format("%x\r\n", #chunk), chunk, "\r\n" })
    else
      ok = send(c, chunk)
    end
    if not ok then return nil, "closed" end
    x.bytes = x.bytes + #chunk
    if queued(c) > srv.high_water and co_running() == low_co then
      wait_drain(c)
      if c.closed then return nil, "closed" end
    end
    return true
  end
  local ok, serr = xpcall(stream, traceback, write)
  done = true
  if c.closed or c.x ~= x then return true end
  if not ok then
    x.error = serr
    x.logged = true
    emit_log(srv, { method = req.method, path = req.path, status = status, bytes = x.bytes, ms = now_ms() - x.t0,
                    remote = c.remote, error = tostring(serr) })
    conn_close(c, "stream error", "response failed")
    return true
  end
  if chunked then send(c, LAST_CHUNK) end
  return true
end

-- After a response: log, then the next request, or the end of the connection.
local function request_done(c, x)
  if not x.logged then
    x.logged = true
    emit_log(c.srv, { method = x.req.method, path = x.req.path, status = x.status, bytes = x.bytes,
                      ms = now_ms() - x.t0, remote = c.remote, error = x.error })
  end
  if c.closed or c.x ~= x then return end
  c.x = nil
  if not x.keep or c.srv.closing then return conn_end(c) end
  c.state = queued(c) > c.srv.high_water and "drain" or "wait"
  if not c.pumping then pump(c) end
end

-- The body of a request's coroutine.
local function run_request(c, x)
  local srv = c.srv
  local ok, res = xpcall(srv.handler, traceback, x.req)
  if c.closed or c.x ~= x then return end   -- the client is gone; the abort token said so
  local err
  if ok then
    ok, err = respond(c, x, res)
  else
    err = res
  end
  if not ok then
    if c.closed or c.x ~= x then return end
    x.error = tostring(err)
    local e = { status = 500, code = "handler_error", message = "handler error", error = x.error,
                method = x.req.method, path = x.req.path, remote = c.remote }
    local r
    if srv.error_response then
      local pok, pr = pcall(srv.error_response, e)
      if pok and type(pr) == "table" then r = pr end
    end
    r = r or { status = 500, headers = { { "Content-Type", "text/plain; charset=utf-8" } },
               body = "Internal Server Error\n" }
    r.stream = nil
    local rok = respond(c, x, r)
    if not rok then
      respond(c, x, { status = 500, headers = { { "Content-Type", "text/plain; charset=utf-8" } },
                      body = "Internal Server Error\n" })
    end
  end
  request_done(c, x)
end

-- Starts the handler for a complete request.
local function start_request(c, req)
  set_timer(c, nil, false)
  c.state = "busy"
  req.remote = c.remote
  req.abort = abort_mod.new()
  req.header_bytes = nil
  local x = { req = req, t0 = c.t0 or now_ms(), bytes = 0, keep = req.keep_alive, status = nil }
  req.keep_alive = nil
  c.x = x
  local co = co_create(run_request)
  x.co = co
  resume(c, co, c, x)
end

-- Parses what was read and starts requests, one at a time. Re-entrant calls
-- (a request finishing inside it) return at once; the loop goes on.
function pump(c)
  if c.pumping then return end
  c.pumping = true
  local srv = c.srv
  while not c.closed do
    local st = c.state
    if st == "busy" or st == "closing" or st == "refusing" then break end
    if st == "drain" then
      if queued(c) > srv.low_water then set_timer(c, "send", srv.timeouts.send) break end
      st = "wait"
      c.state = st
    end
    if st == "wait" and srv.closing then conn_end(c) break end
    local inbuf = c.inbuf
    if inbuf == "" then
      if st == "wait" then set_timer(c, "idle", srv.timeouts.idle) end
      break
    end
    if st == "wait" then
      c.state = "head"
      c.t0 = now_ms()
      set_timer(c, "header", srv.timeouts.header)
    end
    local n, ev = c.parser:feed(inbuf)
    c.inbuf = n >= #inbuf and "" or inbuf:sub(n + 1)
    if ev == "headers" then
      local head = c.parser:head()
      c.head = head
      c.state = "body"
      local expect = head.headers.expect
      if expect ~= nil then
        if lower(expect) ~= "100-continue" then
          reject(c, 417, "expectation_failed", "Expect: " .. expect, head.method, head.target)
          break
        end
        if head.version ~= "1.0" and (head.chunked or (head.content_length or 0) > 0) then
          send(c, CONTINUE)
        end
      end
      set_timer(c, "body", srv.timeouts.body)
    elseif ev == "request" then
      local req = c.head or c.parser:head()
      c.head = nil
      req.body = c.parser:body()
      c.parser:next()
      start_request(c, req)
    elseif ev == "error" then
      local e = c.parser:error()
      reject(c, e.status, e.code, e.detail, e.method, e.target)
      break
    end
  end
  c.pumping = false
  if not c.closed and c.state ~= "closing" and not c.reading and #c.inbuf <= srv.limits.pipeline then
    read_on(c)
  end
end

-- A new connection (counted: rejected = false).
local function conn_new(srv, tcp, rejected)
  local c = setmetatable({ srv = srv, tcp = tcp, timer = uv.new_timer(), inbuf = "", state = "wait",
                           reading = false, closed = false, pumping = false, rejected = rejected }, Conn)
  local peer = tcp:getpeername()
  c.remote = peer and peer.ip or nil
  c.parser = http_parser.new({ headers = srv.limits.headers, body = srv.limits.body })
  c.on_read = function(err, data)
    if c.closed then return end
    if err then return conn_close(c, "read: " .. tostring(err)) end
    if data == nil then   -- EOF: the client is gone (a half-close counts as gone)
      return conn_close(c, c.state == "closing" and "done" or "client closed the connection")
    end
    local st = c.state
    if st == "closing" or st == "refusing" then return end   -- lingering: dropped
    c.inbuf = c.inbuf == "" and data or c.inbuf .. data
    if st == "busy" or st == "drain" then   -- pipelined behind a request: kept, bounded
      if #c.inbuf > srv.limits.pipeline then read_off(c) end
      if st == "busy" then return end
    end
    if st == "body" then set_timer(c, "body", srv.timeouts.body) end
    pump(c)
  end
  c.on_write = function(err)
    if c.closed then return end
    if err then return conn_close(c, "write: " .. tostring(err)) end
    if queued(c) <= srv.low_water then
      local w = c.waiter
      if w then
        c.waiter = nil
        resume(c, w)
      elseif c.state == "drain" then
        pump(c)
      end
    end
  end
  c.on_timer = function()
    if c.closed then return end
    local kind = c.tkind
    c.tkind = nil
    if kind == "header" or kind == "body" then
      local head = c.head
      reject(c, 408, "timeout", kind == "header" and "header block not complete in time" or "body not complete in time",
             head and head.method, head and head.target)
    elseif kind == "idle" then
      conn_close(c, "idle")
    elseif kind == "send" then
      conn_close(c, "send timeout")
    else
      conn_close(c, "linger")
    end
  end
  if rejected then
    srv.nrejected = srv.nrejected + 1
  else
    srv.conns[c] = true
    srv.nconns = srv.nconns + 1
  end
  return c
end

-- ===== the server =====

local Server = {}
Server.__index = Server

local function on_connection(srv, err)
  if err or srv.closing then return end
  local tcp = uv.new_tcp()
  local ok = srv.tcp:accept(tcp)
  if not ok then tcp:close() return end
  tcp:nodelay(true)
  if srv.nconns >= srv.limits.connections then
    if srv.nrejected >= max(16, srv.limits.connections) then tcp:close() return end
    local c = conn_new(srv, tcp, true)
    c.state = "busy"
    read_on(c)
    reject(c, 503, "connections", "connection limit reached")
    return
  end
  local c = conn_new(srv, tcp, false)
  read_on(c)
  set_timer(c, "idle", srv.timeouts.idle)
end

-- Runs the on_closed callbacks once the listener and every connection closed.
function Server:_check_closed()
  if not self.closing or not self.listener_closed or self.nconns > 0 or self.nrejected > 0 then return end
  local cbs = self.on_closed
  if not cbs then return end
  self.on_closed = nil
  for i = 1, #cbs do
    local ok, err = pcall(cbs[i])
    if not ok then internal_error("on_closed raised: " .. tostring(err)) end
  end
end

--- Graceful close (see the contract at the top).
function Server:close(on_closed)
  if on_closed ~= nil and type(on_closed) ~= "function" then
    errors.argument("close: on_closed must be a function, got " .. type(on_closed))
  end
  local cbs = self.on_closed
  if on_closed then
    if cbs then cbs[#cbs + 1] = on_closed
    elseif self.closing then on_closed() return   -- closed already
    end
  end
  if self.closing then return end
  self.closing = true
  if not self.on_closed then self.on_closed = { on_closed } end
  self.tcp:close(function()
    self.listener_closed = true
    self:_check_closed()
  end)
  local list = {}
  for c in pairs(self.conns) do list[#list + 1] = c end
  for _, c in ipairs(list) do
    if c.state == "wait" and c.inbuf == "" then conn_close(c, "server closing") end
  end
end

--- Numbers for tests and monitoring: open connections, rejected ones still
-- lingering, bytes queued on all sockets.
function Server:stats()
  local q = 0
  for c in pairs(self.conns) do q = q + queued(c) end
  return { connections = self.nconns, rejected = self.nrejected, queued = q }
end

local function merge(defaults, given, what)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  if given == nil then return out end
  if type(given) ~= "table" then errors.argument("listen: " .. what .. " must be a table, got " .. type(given)) end
  for k, v in pairs(given) do
    if defaults[k] == nil then errors.argument("listen: unknown " .. what .. "." .. tostring(k)) end
    if v ~= false and (type(v) ~= "number" or v ~= v or v <= 0) then
      errors.argument("listen: " .. what .. "." .. k .. " must be a number > 0" ..
        (what == "timeouts" and " or false" or "") .. ", got " .. tostring(v))
    end
    if v == false and what ~= "timeouts" then errors.argument("listen: " .. what .. "." .. k .. " cannot be false") end
    out[k] = v
  end
  return out
end

-- The address to bind for host (a name is resolved once, here).
local function resolve(host)
  if host:match("^[%d.]+$") or host:find(":", 1, true) then return host end
  local res, err = uv.getaddrinfo(host, nil, { socktype = "stream" })
  if not res or not res[1] then return nil, "cannot resolve " .. host .. ": " .. tostring(err) end
  return res[1].addr
end

--- Starts listening; returns the server, or nil and an error ("EADDRINUSE:
-- address already in use") when the address cannot be bound.
function _M.listen(opts, handler)
  if type(opts) ~= "table" then errors.argument("listen: opts must be a table, got " .. type(opts)) end
  if type(handler) ~= "function" then errors.argument("listen: handler must be a function, got " .. type(handler)) end
  local host = opts.host or "127.0.0.1"
  local port = opts.port or 0
  if type(host) ~= "string" then errors.argument("listen: host must be a string") end
  if type(port) ~= "number" or port ~= floor(port) or port < 0 or port > 65535 then
    errors.argument("listen: port must be an integer 0..65535, got " .. tostring(port))
  end
  if opts.log ~= nil and type(opts.log) ~= "function" then errors.argument("listen: log must be a function or nil") end
  if opts.error_response ~= nil and type(opts.error_response) ~= "function" then
    errors.argument("listen: error_response must be a function or nil")
  end
  local high = opts.high_water or DEFAULT_HIGH_WATER
  if type(high) ~= "number" or high < 1 then errors.argument("listen: high_water must be a number >= 1") end
  local srv = setmetatable({
    handler = handler, log = opts.log, error_response = opts.error_response,
    limits = merge(DEFAULT_LIMITS, opts.limits, "limits"),
    timeouts = merge(DEFAULT_TIMEOUTS, opts.timeouts, "timeouts"),
    high_water = high, low_water = floor(high / 4),
    conns = {}, nconns = 0, nrejected = 0, closing = false, listener_closed = false,
  }, Server)
  local addr, rerr = resolve(host)
  if not addr then return nil, rerr end
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(addr, port)
  if ok then
    ok, err = tcp:listen(opts.backlog or 511, function(e) on_connection(srv, e) end)
  end
  if not ok then
    tcp:close()
    return nil, err
  end
  srv.tcp = tcp
  local name = tcp:getsockname()
  srv.host, srv.port = name.ip, name.port
  srv.url = "http://" .. (name.ip:find(":", 1, true) and "[" .. name.ip .. "]" or name.ip) .. ":" .. name.port
  return srv
end


return _M
