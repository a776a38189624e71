--- The nginx transport: the request core (async.server.core) inside nginx's
-- Lua module (lua-nginx-module + lua-resty-core). nginx parses, frames and
-- keeps connections; this module turns ngx.req into the core's request
-- table and its answer into ngx.status / ngx.header / ngx.print
-- (docs/openresty.md, docs/endpoints.md).
--
--   init_by_lua_block    { app = require("myapp") }            -- loads once, shared by the workers
--   content_by_lua_block { require("async.ngx").handle(app, { public = "/srv/myapp/public" }) }
--
-- One handler (the core, its options checked, client.js read) is built per
-- app and options and kept per worker; a request runs in the entry thread
-- of content_by_lua, its async runs and the page renderer in light threads
-- of the ngx loop (async.loop.ngx). A streamed page goes out through
-- ngx.print + ngx.flush(true) (which waits while the client is slow);
-- with `lua_check_client_abort on`, ngx.on_abort cancels req.abort at once
-- when the client goes away, else the first failed print does. handle()
-- ends the request with ngx.exit(ngx.OK), which also kills any thread the
-- request left waiting (counted and logged at warn).
local core = require("async.server.core")
local errors = require("async.kernel.errors")
local loop = require("async.loop")
local abort_mod = require("async.kernel.abort")
-- a request nginx hands to Lua is an entry from the event loop (docs/kernel.md,
-- "Coroutines"): a kernel context still open belongs to a coroutine that
-- waited on nginx directly, and is put aside so this request starts clean
local from_loop = require("async.kernel.graph").from_loop
local cache_shdict = require("async.app.cache_shdict")
local request = require("async.server.request")

local type, tostring, pairs, ipairs, pcall, xpcall, setmetatable, rawget, tonumber, next =
      type, tostring, pairs, ipairs, pcall, xpcall, setmetatable, rawget, tonumber, next
local find, sub, lower, format, match = string.find, string.sub, string.lower, string.format, string.match
local concat, sort = table.concat, table.sort
local traceback = debug.traceback
local io_open = io.open

local _M = {}

local TEXT_TYPE = "text/plain; charset=utf-8"
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }
-- the core's options, plus `cache`
local OPTIONS = { app = 1, apps = 1, public = 1, root = 1, env = 1, layout = 1, csp = 1, limits = 1, log = 1,
                  client_js = 1, gzip = 1, stream = 1, stream_timeout = 1, timeout = 1, origins = 1,
                  trust_proxy = 1, runtime = 1, cache = 1 }

local function ngx_() return rawget(_G, "ngx") end

-- ===== the log =====

-- one line per entry, as the core's stderr log writes it
local function line_of(e)
  local s = format('%s "%s %s" %d %d %dms %s', tostring(e.remote or "-"), tostring(e.method), tostring(e.path),
    e.status or 0, e.bytes or 0, e.ms or 0, tostring(e.kind))
  if e.id then s = s .. " " .. e.id end
  return s
end

-- The core's log under nginx: errors of 5xx answers at error, warnings at
-- warn; with `access` every request at info (nginx has its own access log).
local function ngx_logger(access)
  return function(e)
    local ngx = ngx_()
    local failed = e.error and (e.status or 0) >= 500
    if not access and not failed and not e.warnings then return end
    local parts = { line_of(e) }
    for _, w in ipairs(e.warnings or {}) do parts[#parts + 1] = "warning: " .. w end
    if e.error then parts[#parts + 1] = "error: " .. tostring(e.error) end
    if failed and e.traceback then parts[#parts + 1] = tostring(e.traceback) end
    local level = failed and ngx.ERR or (e.warnings and ngx.WARN) or ngx.INFO
    ngx.log(level, "async: ", concat(parts, "\n  "))
  end
end

-- ===== handlers =====

local Handler = {}
Handler.__index = Handler

-- a misuse: the library's invalid-argument error at the app's line
-- (errors.argument finds it)
local function bad(msg) errors.argument("async.ngx: " .. msg) end

-- the server-cache backend named by opts.cache.server, or nil
local function server_backend(c)
  if c == nil then return nil end
  if type(c) ~= "table" then bad("cache must be { server = \"shdict:NAME\" }") end
  for k in pairs(c) do
    if k ~= "server" then bad("unknown cache option " .. tostring(k) .. " (expected server)") end
  end
  local s = c.server
  if s == nil then return nil end
  if type(s) == "table" and type(s.get) == "function" and type(s.set) == "function" then return s end  -- a backend
  local name = type(s) == "string" and match(s, "^shdict:(.+)$")
  if not name then bad('cache.server must be "shdict:NAME" (a lua_shared_dict) or a cache backend') end
  local ok, b = pcall(cache_shdict.new, name)
  if not ok then bad((errors.message(b):gsub("^cache_shdict%.new: ", ""))) end
  return b
end

--- A handler for `app` (or opts.apps) with the options of lua-api.md
-- "Serving": public, root, env, layout, csp, limits, cache = { server =
-- "shdict:NAME" }, log, and the rest of the core's (docs/endpoints.md).
-- Relative `public` folders are taken from `root`, default nginx's prefix.
-- Returns an object with :handle() (serve the current request).
function _M.new(app, opts)
  if opts ~= nil and type(opts) ~= "table" then bad("options must be a table") end
  local o = {}
  for k, v in pairs(opts or {}) do
    if not OPTIONS[k] then bad("unknown option " .. tostring(k)) end
    o[k] = v
  end
  if app ~= nil then o.app = app end
  local ngx = ngx_()
  if o.root == nil and type(o.public) == "string" and sub(o.public, 1, 1) ~= "/" and ngx and ngx.config then
    o.root = ngx.config.prefix()
  end
  local backend = server_backend(o.cache)
  o.cache = nil
  if backend then
    local r = {}
    for k, v in pairs(o.runtime or {}) do r[k] = v end
    r.server_cache_backend = backend
    o.runtime = r
  end
  local log = o.log
  if log == nil or log == false then o.log = ngx_logger(false)
  elseif log == true then o.log = ngx_logger(true) end
  local ok, h, srv = pcall(core.new, o)
  if not ok then errors.argument((errors.message(h):gsub("^async%.server%.core%.new", "async.ngx"))) end
  return setmetatable({ core = h, server = srv, limits = srv.limits, backend = backend }, Handler)
end

-- ===== requests =====

-- what nginx itself refuses before Lua runs, and the codes the luv
-- transport gives them (docs/http.md "Refusals")
local REFUSALS = {
  [400] = { "Bad Request", "malformed" }, [408] = { "Request Timeout", "timeout" },
  [413] = { "Content Too Large", "body_too_large" }, [414] = { "URI Too Long", "malformed" },
  [431] = { "Request Header Fields Too Large", "headers_too_large" },
  [494] = { "Request Header Fields Too Large", "headers_too_large" },
  [501] = { "Not Implemented", "transfer_encoding" }, [505] = { "HTTP Version Not Supported", "version" },
}

-- the answer Async.serve gives a refused request: an error envelope on the
-- POST endpoints, else the reason phrase as text
local function refusal(status, path)
  local r = REFUSALS[status] or REFUSALS[400]
  if status == 494 then status = 431 end
  return core.error_response({ status = status, code = r[2], path = path })
    or { status = status, headers = { { "Content-Type", TEXT_TYPE } }, body = r[1] .. "\n" }
end


-- the request table of the transport contract (docs/http.md), or nil plus
-- the answer to send instead (a body over the limit)
local function read_request(self, ngx)
  local ngx_req, var = ngx.req, ngx.var
  local method = ngx_req.get_method()
  local target = var.request_uri or "/"
  local q = find(target, "?", 1, true)
  local path, query = target, ""
  if q then path, query = sub(target, 1, q - 1), sub(target, q + 1) end
  -- lowercased names; repeats joined with ", " (in place: no copy)
  local headers = ngx_req.get_headers(0)
  for k, v in pairs(headers) do
    if type(v) == "table" then headers[k] = concat(v, ", ") end
  end
  local v = ngx_req.http_version()
  local req = {
    method = method, target = target, path = path, query = query,
    version = v and format("%.1f", v) or "1.1",
    headers = headers, body = "", remote = var.remote_addr,
  }
  -- the luv transport's refusals (docs/http.md "Refusals"), before the core
  -- sees the request: the same bytes (nginx's own limits, when lower, are
  -- handed to refused() by error_page)
  if request.header_bytes(req) > self.limits.headers then
    return nil, refusal(431, path)
  end
  local cl, te = headers["content-length"], headers["transfer-encoding"]
  if cl ~= nil or te ~= nil then
    local n = tonumber(cl)
    if n and n > self.limits.body then return nil, refusal(413, path) end   -- before a byte of the body is read
    ngx_req.read_body()
    local body = ngx_req.get_body_data()
    if body == nil then
      local file = ngx_req.get_body_file()   -- over client_body_buffer_size: a temp file
      if file then
        local f = io_open(file, "rb")
        if f then
          body = f:read("*a")
          f:close()
        end
      end
    end
    req.body = body or ""
  end
  return req
end

-- the headers of `res` as ngx.header wants them: name -> value or list
-- (repeats in order); nil, err for a bad name or value
local function header_map(list)
  if list ~= nil and list[1] == nil and next(list) ~= nil then   -- a map: sorted by name
    local l = {}
    for k, v in pairs(list) do l[#l + 1] = { k, v } end
    sort(l, function(a, b) return tostring(a[1]) < tostring(b[1]) end)
    list = l
  end
  local out, order = {}, {}
  for i = 1, #(list or {}) do
    local h = list[i]
    if type(h) ~= "table" then return nil, "header " .. i .. " is not a {name, value} pair" end
    local name, value = h[1], h[2]
    if type(name) ~= "string" or not match(name, "^[%w!#$%%&'*+.^_`|~-]+$") then
      return nil, "bad header name " .. format("%q", tostring(name))
    end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" or find(value, "[%z\r\n]") then return nil, "bad value for header " .. name end
    local key = lower(name)
    if not FRAMING[key] then
      local cur = out[key]
      if cur == nil then
        out[key] = value
        order[#order + 1] = { key, name }
      elseif type(cur) == "table" then
        cur[#cur + 1] = value
      else
        out[key] = { cur, value }
      end
    end
  end
  return out, order
end

-- ends the response, then closes the connection (nginx's 444: close
-- without a further byte), as the luv transport does after a refusal
local function close_after(ngx)
  ngx.eof()
  return ngx.exit(444)
end

-- registers the request's on_abort callback, once (see Handler:handle)
local function arm(ngx)
  local c = ngx.ctx
  local f = c.async_arm
  if f then
    c.async_arm = nil
    f()
  end
end
_M.arm = arm

local PLAIN_500 = { status = 500, headers = { { "Content-Type", TEXT_TYPE } }, body = "Internal Server Error\n" }

-- sends res; returns nil, err when res is not a valid response (nothing
-- sent then)
local function send(ngx, req, res)
  if type(res) ~= "table" then return nil, "the handler returned " .. type(res) .. ", not a response table" end
  local status = res.status or 200
  if type(status) ~= "number" or status % 1 ~= 0 or status < 200 or status > 599 then
    return nil, "bad response status " .. tostring(status)
  end
  if status == 499 then return true end   -- the client went away before the head: nothing to send
  local body, stream = res.body, res.stream
  if stream ~= nil and type(stream) ~= "function" then return nil, "response stream is not a function" end
  if body ~= nil and type(body) ~= "string" then return nil, "response body is not a string" end
  local map, order = header_map(res.headers)
  if not map then return nil, order end
  ngx.status = status
  local h = ngx.header
  for i = 1, #order do
    local o = order[i]
    h[o[2]] = map[o[1]]
  end
  local no_body = status == 204 or status == 304
  if not no_body and not stream then
    body = body or ""
    h["Content-Length"] = #body
  end
  if req.method == "HEAD" or no_body then
    ngx.send_headers()
    return true
  end
  if not stream then
    if body ~= "" then ngx.print(body) end
    return true
  end
  -- streamed: chunked (HTTP/1.1) or until the connection closes (1.0)
  arm(ngx)
  if not ngx.send_headers() then
    pcall(req.abort.cancel, req.abort, "client disconnected")
    return true
  end
  local closed = false
  local function write(chunk)
    if closed then return nil, "closed" end
    if chunk == nil or chunk == "" then return true end
    if type(chunk) ~= "string" then errors.argument("write expects a string, got " .. type(chunk)) end
    local r = ngx.print(chunk)
    if r then r = ngx.flush(true) end
    if not r or req.abort.aborted then
      closed = true
      pcall(req.abort.cancel, req.abort, "client disconnected")
      return nil, "closed"
    end
    return true
  end
  local sok, serr = xpcall(stream, traceback, write)
  closed = true
  if not sok then
    -- the head is gone: end the connection without the last chunk, so the
    -- client sees the response incomplete
    ngx.log(ngx.ERR, "async: the response stream failed: ", tostring(serr))
    return true, "abort"
  end
  return true
end

--- Serves the current request (content_by_lua) and ends it.
function Handler:handle()
  from_loop()
  local ngx = ngx_()
  local l = loop.get_loop()
  local req, refused = read_request(self, ngx)
  local res
  if req then
    local abort = abort_mod.new()
    req.abort = abort
    -- the client going away cancels req.abort (lua_check_client_abort on);
    -- registered when the request first waits (the ngx loop calls
    -- ngx.ctx.async_arm): a request that never waits does not pay for it
    ngx.ctx.async_arm = function()
      ngx.on_abort(function() pcall(abort.cancel, abort, "client disconnected") end)   -- nil, err when off
    end
    local ok, r = xpcall(self.core, traceback, req)
    if ok then
      res = r
    else
      ngx.log(ngx.ERR, "async: the request failed: ", tostring(r))
      res = core.error_response({ status = 500, code = "handler_error", path = req.path }) or PLAIN_500
    end
  else
    -- refused as the luv transport does: the answer, then the connection ends
    req = { method = ngx.req.get_method(), abort = abort_mod.new() }
    send(ngx, req, refused)
    return close_after(ngx)
  end
  local ok, how = send(ngx, req, res)
  if not ok then
    ngx.log(ngx.ERR, "async: invalid response: ", tostring(how))
    send(ngx, req, PLAIN_500)
  end
  -- threads aborted just now (a destroyed runtime's runs) end once their
  -- supervisors have run: let nginx run them, a few ticks at most
  local left = l.request_threads and l:request_threads() or 0
  local ticks = 0
  while left > 0 and ticks < 5 do
    ngx.sleep(0)
    ticks = ticks + 1
    left = l:request_threads()
  end
  if left > 0 then
    l:forget_request_threads()
    ngx.log(ngx.WARN, "async: ", left, " thread(s) still waiting at the end of the request: killed")
  end
  if how == "abort" then return ngx.exit(ngx.ERROR) end
  return ngx.exit(ngx.OK)
end

-- ===== refusals =====

--- Answers a request nginx refused before it reached Lua, as Async.serve
-- answers it, for error_page (inside a named location nginx does not tell
-- the status: give it):
--
--   error_page 413 = @async_413;
--   location @async_413 { content_by_lua_block { require("async.ngx").refused(413) } }
--   error_page 400 = @async_400;
--   location @async_400 { content_by_lua_block { require("async.ngx").refused(400, app, opts) } }
--
-- 413 and 431 (494: nginx's "header too large") get the luv transport's
-- refusal. A 400 nginx gave a request whose line it did parse (a path it
-- will not normalize: "/../x", "%00", a bad escape) is answered by the
-- request core when `app`/`opts` are given (the core refuses those paths
-- itself, with its own bytes); any other 400 gets the refusal text.
function _M.refused(status, app, opts)
  local ngx = ngx_()
  status = tonumber(status) or tonumber(ngx.status) or 400
  local method = ngx.req.get_method()
  local uri = ngx.var.request_uri
  if status == 400 and (app ~= nil or opts ~= nil) and uri and sub(uri, 1, 1) == "/" and match(method, "^%u+$") then
    return _M.handle(app, opts)
  end
  local path = match(uri or "/", "^[^?]*")
  local ok, err = send(ngx, { method = method, abort = abort_mod.new() }, refusal(status, path))
  if not ok then ngx.log(ngx.ERR, "async: invalid refusal: ", tostring(err)) end
  return close_after(ngx)
end

-- ===== handle(app, opts) =====

-- handlers by app, then by a key of the options: content_by_lua code builds
-- its options table per request, so the key is made from their values (a
-- function by identity); at most MAX_KEYS per app
local handlers = setmetatable({}, { __mode = "k" })
local MAX_KEYS = 64

local function key_of(v, depth)
  local t = type(v)
  if t == "string" then return format("%q", v) end
  if t ~= "table" or depth > 4 then return t .. ":" .. tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. key_of(v[k], depth + 1) end
  return "{" .. concat(parts, ",") .. "}"
end

--- Serves the current request with `app` and `opts` (see _M.new); the
-- handler is built on first use and kept (per worker).
function _M.handle(app, opts)
  local per_app = handlers[app or opts]
  if per_app == nil then
    per_app = { n = 0, by = {}, same = setmetatable({}, { __mode = "k" }) }
    handlers[app or opts] = per_app
  end
  if opts ~= nil then   -- the same options table as before (built once, in init_by_lua): no key to make
    local h = per_app.same[opts]
    if h then return h:handle() end
  end
  local key = opts == nil and "" or key_of(opts, 0)
  local h = per_app.by[key]
  if h == nil then
    if per_app.n >= MAX_KEYS then   -- options that change every request: keep the newest only
      per_app.by, per_app.n = {}, 0
      local ngx = ngx_()
      ngx.log(ngx.WARN, "async.ngx: handle() got ", MAX_KEYS, " different options for one app; build them once ",
        "(init_by_lua) or use require(\"async.ngx\").new(app, opts):handle()")
    end
    h = _M.new(app, opts)
    per_app.by[key] = h
    per_app.n = per_app.n + 1
  end
  if opts ~= nil then per_app.same[opts] = h end
  return h:handle()
end

return _M
