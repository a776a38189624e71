--- The shared HTTP suite: exact requests and exact answers for every
-- endpoint, limit and bad input of protocol.md and docs/endpoints.md, run
-- over real sockets against ANY server that serves the apps of
-- spec/support/suite_apps.lua (mounted as `suite_apps.apps()` returns them,
-- `public` = the folder `suite_apps.make_public()` made, env "production").
-- spec/serve_http_spec.lua runs it against Async.serve in-process; the
-- nginx transport runs the same rows against nginx.
--
--   local suite = require("support.http_suite")
--   suite.busted(function() return host, port end, opts)   -- one busted `it` per case
--   local report = suite.run(host, port, opts)             -- or: { passed =, failed =, failures = {...} }
--
-- opts (all optional; the hooks need the server in this process):
--   log_entries = list    the server's log entries, appended by its `log`
--                         function: each case checks the entries it caused
--                         (statuses, errors), and the last check asserts
--                         the whole list
--   live_nodes = fn       returns Async.core_stats().live_nodes after a full
--                         GC (the disconnect case checks the runtime is gone)
--   state = table         suite_apps.state (the disconnect case checks the
--                         async run was aborted, not finished)
--   client_js = path      the browser client file the server sends
--                         (default "client/async.js" of the checkout)
--   reasons = "exact"     compare status lines exactly (default); "code":
--                         only "HTTP/1.1 NNN" (servers with other reason phrases)
--   skip = { [name] = why }  cases not run (listed as pending by busted)
--   expect = { [name] = { status_line, headers, body, close = bool } }
--                            another answer for a one-request row (or for the
--                            malformed request of "malformed request: ..."):
--                            a transport that answers such a request itself
--                            (nginx's own 400 page) is held to its own bytes
--   only = pattern        run only the cases whose name matches
--   timeout = ms          per wait (default 5000)
--
-- What is compared, and the normalisation (the only one):
--   * the status line, exactly (see opts.reasons);
--   * the headers by name, lowercased: every header the server sends must
--     be expected with exactly that value (a row may give a Lua pattern,
--     `like(p)`, for values such as tags), and every expected one must be
--     there. NOT compared: Date, Server, Connection, Keep-Alive (each
--     server's own), and the framing: Content-Length vs
--     Transfer-Encoding: chunked. A Content-Length, when sent, must equal
--     the body's length (for HEAD: the length of the GET's body, when the
--     row gives it);
--   * the body: de-chunked, byte for byte (gzip bodies are inflated with
--     zlib, not our code, and compared with the plain bytes).
--   A row that expects the connection closed waits for EOF; a keep-alive
--   row checks it stays open; bytes after the expected answers fail a row.
--
-- Running it against another server (nginx):
--   * serve suite_apps.apps() (its three mounts) with env = "production",
--     public = the folder suite_apps.make_public() returned (make it before
--     the server starts; lua_package_path needs spec/?.lua for
--     support.suite_apps), default limits (body 1 MiB, headers 16 KiB);
--   * run the rows from a busted file under build/asyncrt (the clients are
--     luv sockets): suite.busted(function() return "127.0.0.1", port end, opts)
--     without log_entries/state/live_nodes (those checks are skipped);
--   * the rows named "limit: ..." and "malformed: ..." (and the malformed
--     request of "malformed request: ...") are the luv transport's refusals:
--     413/431 on a POST endpoint are core.error_response's envelopes, on
--     other paths text/plain "<reason>\n" with only Content-Type (no
--     nosniff), and the connection closes. A server whose front refuses
--     differently either answers the same bytes (nginx: error_page to a Lua
--     location) or lists those rows in opts.skip with the reason;
--     opts.reasons = "code" when its reason phrases differ (nginx: 413
--     "Request Entity Too Large").
local support = require("support.http")
local static = require("async.server.static")

local type, tostring, tonumber, ipairs, pairs, pcall, error = type, tostring, tonumber, ipairs, pairs, pcall, error
local concat, insert, sort = table.concat, table.insert, table.sort
local find, sub, lower, format, rep = string.find, string.sub, string.lower, string.format, string.rep

local _M = {}

local HOST = "suite.test"
_M.HOST = HOST

-- ===== parsing answers =====

local NOT_COMPARED = { date = true, server = true, connection = true, ["keep-alive"] = true,
                       ["content-length"] = true, ["transfer-encoding"] = true }
_M.NOT_COMPARED = NOT_COMPARED

-- de-chunks buf from pos; returns body, next pos, or nil (incomplete), or false, err
local function dechunk(buf, pos)
  local parts = {}
  while true do
    local eol = find(buf, "\r\n", pos, true)
    if not eol then return nil end
    local size = tonumber(sub(buf, pos, eol - 1):match("^(%x+)"), 16)
    if size == nil then return false, "bad chunk size line " .. format("%q", sub(buf, pos, eol - 1)) end
    pos = eol + 2
    if size == 0 then
      -- trailers, then an empty line
      while true do
        local e = find(buf, "\r\n", pos, true)
        if not e then return nil end
        local line = sub(buf, pos, e - 1)
        pos = e + 2
        if line == "" then return concat(parts), pos end
      end
    end
    if #buf < pos + size + 1 then return nil end
    parts[#parts + 1] = sub(buf, pos, pos + size - 1)
    if sub(buf, pos + size, pos + size + 1) ~= "\r\n" then return false, "chunk not followed by CRLF" end
    pos = pos + size + 2
  end
end

--- Parses one response of `buf` from `pos` (the answer to a `method`
-- request; `eof`: the connection ended, so a body without framing ends
-- there). Returns the response and the position after it, nil when more
-- bytes are needed, or false and an error.
-- response = { status_line =, status =, headers = { [lowercase] = { values } }, order = { names },
--              body = (de-chunked), framing = "length" | "chunked" | "close" | "none", length = n|nil }
function _M.parse_response(buf, pos, method, eof)
  pos = pos or 1
  local hend = find(buf, "\r\n\r\n", pos, true)
  if not hend then
    if eof and pos <= #buf then return false, "incomplete head: " .. format("%q", sub(buf, pos, pos + 200)) end
    return nil
  end
  local head = sub(buf, pos, hend - 1)
  local status_line, rest = head:match("^([^\r\n]*)\r?\n?(.*)$")
  local code = tonumber(status_line:match("^HTTP/1%.[01] (%d%d%d)"))
  if not code then return false, "bad status line " .. format("%q", status_line) end
  local r = { status_line = status_line, status = code, headers = {}, order = {} }
  for line in (rest .. "\r\n"):gmatch("([^\r\n]*)\r\n") do
    if line ~= "" then
      local name, value = line:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
      if not name then return false, "bad header line " .. format("%q", line) end
      name = lower(name)
      if r.headers[name] == nil then r.headers[name] = {}; r.order[#r.order + 1] = name end
      insert(r.headers[name], value)
    end
  end
  local bpos = hend + 4
  local te = r.headers["transfer-encoding"]
  local cl = r.headers["content-length"]
  if cl then
    if #cl > 1 then return false, "more than one Content-Length" end
    r.length = tonumber(cl[1])
    if not r.length then return false, "bad Content-Length " .. cl[1] end
  end
  if method == "HEAD" or code == 204 or code == 304 or (code >= 100 and code < 200) then
    r.framing, r.body = "none", ""
    return r, bpos
  end
  if te then
    if lower(te[#te]) ~= "chunked" then return false, "Transfer-Encoding other than chunked: " .. te[#te] end
    if cl then return false, "both Content-Length and Transfer-Encoding" end
    local body, np = dechunk(buf, bpos)
    if body == false then return false, np end
    if body == nil then
      if eof then return false, "the connection ended inside a chunked body" end
      return nil
    end
    r.framing, r.body = "chunked", body
    return r, np
  end
  if cl then
    if #buf < bpos + r.length - 1 then
      if eof then return false, "the connection ended inside the body (" .. (#buf - bpos + 1) .. " of " ..
        r.length .. " bytes)" end
      return nil
    end
    r.framing, r.body = "length", sub(buf, bpos, bpos + r.length - 1)
    return r, bpos + r.length
  end
  if not eof then return nil end
  r.framing, r.body = "close", sub(buf, bpos)
  return r, #buf + 1
end

-- ===== expectations =====

--- A header value matched by a Lua pattern (anchored by the caller's pattern).
function _M.like(pattern) return { pattern = pattern } end

--- A body expected gzipped: inflated, it must be `plain`.
function _M.gzip(plain) return { gzip = plain } end

local function fail(fmt, ...) error(format(fmt, ...), 0) end

local function show(s)
  s = tostring(s)
  if #s > 600 then s = sub(s, 1, 300) .. ("... (%d bytes) ..."):format(#s) .. sub(s, -300) end
  return format("%q", s)
end

-- first difference of two strings, for messages
local function diff(want, got)
  local n = math.min(#want, #got)
  local i = 1
  while i <= n and sub(want, i, i) == sub(got, i, i) do i = i + 1 end
  return format("bodies differ at byte %d (want %d bytes, got %d)\n  want ...%s\n  got  ...%s", i, #want, #got,
    format("%q", sub(want, math.max(1, i - 60), i + 100)), format("%q", sub(got, math.max(1, i - 60), i + 100)))
end

-- checks response r against { status_line, headers, body, length = } (what = a label)
local function check_response(r, want, opts, what)
  local sl = want[1]
  if opts.reasons == "code" then
    if sub(r.status_line, 1, 12) ~= sub(sl, 1, 12) then
      fail("%s: status line %s, want %s", what, show(r.status_line), show(sl))
    end
  elseif r.status_line ~= sl then
    fail("%s: status line %s, want %s", what, show(r.status_line), show(sl))
  end
  -- headers
  local wanted = {}
  for name, v in pairs(want[2] or {}) do wanted[lower(name)] = v end
  local errs = {}
  for _, name in ipairs(r.order) do
    if not NOT_COMPARED[name] then
      local got = concat(r.headers[name], ", ")
      local w = wanted[name]
      if w == nil then
        errs[#errs + 1] = "unexpected header " .. name .. ": " .. got
      elseif type(w) == "table" then
        if not find(got, w.pattern) then
          errs[#errs + 1] = name .. ": " .. show(got) .. " does not match " .. w.pattern
        end
      elseif got ~= w then
        errs[#errs + 1] = name .. ": " .. show(got) .. ", want " .. show(w)
      end
    end
  end
  for name, w in pairs(wanted) do
    if r.headers[name] == nil and not NOT_COMPARED[name] then
      errs[#errs + 1] = "missing header " .. name .. ": " .. (type(w) == "table" and w.pattern or w)
    end
  end
  if #errs > 0 then sort(errs); fail("%s: headers:\n  %s", what, concat(errs, "\n  ")) end
  -- framing
  if r.length and r.framing == "length" and r.length ~= #r.body then
    fail("%s: Content-Length %d for a %d-byte body", what, r.length, #r.body)
  end
  if r.framing == "none" then
    if want.length and r.length and r.length ~= want.length then
      fail("%s: Content-Length %d, want %d (the GET's body)", what, r.length, want.length)
    end
    if (r.status == 204 or r.status == 304) and r.length then
      fail("%s: Content-Length on a %d", what, r.status)
    end
  end
  -- body
  local body = want[3]
  if type(body) == "table" and body.gzip then
    local enc = r.headers["content-encoding"]
    if not enc or enc[1] ~= "gzip" then fail("%s: the body is not gzip-encoded", what) end
    local plain, err = support.gunzip(r.body)
    if plain == nil then fail("%s: the gzip body does not inflate: %s", what, tostring(err)) end
    if plain ~= body.gzip then fail("%s: inflated: %s", what, diff(body.gzip, plain)) end
  elseif type(body) == "function" then
    local ok, err = body(r.body, r)
    if not ok then fail("%s: body: %s (got %s)", what, tostring(err), show(r.body)) end
  else
    body = body or ""
    if r.body ~= body then fail("%s: %s", what, diff(body, r.body)) end
  end
end
_M.check_response = check_response

-- ===== connections =====

local Conn = {}
Conn.__index = Conn

--- A connection to host:port: raw bytes out, responses parsed as they come.
function _M.connect(host, port, opts)
  local c = support.connect(port, { host = host })
  return setmetatable({ c = c, pos = 1, opts = opts or {}, times = {} }, Conn)
end

function Conn:send(bytes) self.c:send(bytes) end
function Conn:data() return self.c:data() end
function Conn:eof() return self.c.eof end
function Conn:close() self.c:close() end

-- waits for cond() (raises after opts.timeout)
local function wait(cond, opts, what) support.wait_until(cond, opts.timeout or 5000, what) end
_M.wait = wait

--- The next response (to a `method` request); raises on a parse error or
-- when none comes in time.
function Conn:response(method, what)
  local r, np
  local function ready()
    r, np = _M.parse_response(self.c:data(), self.pos, method, self.c.eof)
    return r ~= nil or self.c.eof
  end
  wait(ready, self.opts, what or "a response")
  if r == false then fail("%s: %s", what or "response", np) end
  if r == nil then
    fail("%s: the connection ended without a response (%s)", what or "response",
      self.c.err and ("error " .. tostring(self.c.err)) or "EOF")
  end
  self.pos = np
  return r
end

--- Waits for EOF; raises if it does not come or bytes follow the answers.
function Conn:expect_eof(what)
  wait(function() return self.c.eof end, self.opts, (what or "") .. ": the server to close the connection")
  local extra = sub(self.c:data(), self.pos)
  if extra ~= "" then fail("%s: bytes after the answers: %s", what or "", show(extra)) end
end

--- Raises if bytes follow the answers, or (keep = true) if the connection ended.
function Conn:expect_idle(what, keep)
  support.uv().run("nowait")
  local extra = sub(self.c:data(), self.pos)
  if extra ~= "" then fail("%s: bytes after the answers: %s", what or "", show(extra)) end
  if keep and self.c.eof then fail("%s: the server closed a keep-alive connection", what or "") end
end

-- ===== requests =====

--- A request's bytes: method, target, headers (a list of "Name: value"
-- lines, after Host), body (a Content-Length is added when body is given
-- and no header names one).
local function request(method, target, headers, body)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: " .. HOST }
  local has_length = false
  for _, h in ipairs(headers or {}) do
    lines[#lines + 1] = h
    if find(lower(h), "^content%-length:") or find(lower(h), "^transfer%-encoding:") then has_length = true end
  end
  if body and not has_length then lines[#lines + 1] = "Content-Length: " .. #body end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end
_M.request = request

--- A chunked body of the pieces given (the last chunk and no trailers).
local function chunked(pieces)
  local out = {}
  for _, p in ipairs(pieces) do out[#out + 1] = format("%x\r\n%s\r\n", #p, p) end
  return concat(out) .. "0\r\n\r\n"
end
_M.chunked = chunked

local JSON_POST = { "Content-Type: application/json", "X-Async-Request: 1" }

--- A POST to an endpoint with the client's headers, `extra` header lines after them.
local function post(path, body, extra, base)
  local h = {}
  for _, x in ipairs(base or JSON_POST) do h[#h + 1] = x end
  for _, x in ipairs(extra or {}) do h[#h + 1] = x end
  return request("POST", path, h, body)
end
_M.post = post

local function method_of(bytes) return bytes:match("^(%u+) ") or "GET" end

-- ===== expected answers =====

local HTML = "text/html; charset=utf-8"
local JSON = "application/json; charset=utf-8"
local TEXT = "text/plain; charset=utf-8"
local CSP = "script-src 'self'"
local NOSNIFF = "nosniff"

local function doc_headers()
  return { ["Content-Type"] = HTML, ["Vary"] = "Accept", ["Content-Security-Policy"] = CSP,
           ["X-Content-Type-Options"] = NOSNIFF }
end
local function envelope_headers(extra)
  local h = { ["Content-Type"] = JSON, ["Cache-Control"] = "no-store", ["X-Content-Type-Options"] = NOSNIFF }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end
local function text_headers(extra)
  local h = { ["Content-Type"] = TEXT, ["X-Content-Type-Options"] = NOSNIFF }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end
-- a transport refusal (before the core saw the request): text, no nosniff
local REFUSAL_HEADERS = { ["Content-Type"] = TEXT }

local HEAD = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' ..
  '<meta name="viewport" content="width=device-width, initial-scale=1">'

local function doc(title, body, prefix)
  return HEAD .. "<title>" .. title .. '</title><script src="' .. (prefix or "") ..
    '/__async/client.js" defer></script></head><body><main async:container>' .. body .. "</main></body></html>"
end

local function snap(signals, cache)
  return '<script type="application/json" async:snapshot>{"cache":{"browser":' .. (cache or "{}") ..
    '},"signals":{' .. signals .. "}}</script>"
end

-- the router.* signals of a matched page, as the snapshot writes them
local function router(url, route, params, query)
  local path = url:match("^[^?]*")
  return '"router.error":null,"router.params":' .. (params or "{}") .. ',"router.path":"' .. path ..
    '","router.pending":false,"router.query":' .. (query or "{}") .. ',"router.route":"' .. route ..
    '","router.url":"' .. url .. '"'
end

local function not_matched(url)
  return '"router.error":{"code":"route-not-matched","message":"No route matched ' .. url .. '"},' ..
    '"router.params":[],"router.path":"' .. url .. '","router.pending":false,"router.query":{},' ..
    '"router.route":null,"router.url":"' .. url .. '"'
end

local function section(inner) return '<section async:boundary="route">' .. inner .. "</section>" end

-- an async signal's snapshot form (protocol.md "SSR output": "value" and
-- "error" always present, null when absent), keys sorted
local function async_loading() return '{"error":null,"loading":true,"status":"loading","value":null,"version":1}' end
local function async_ready(v)
  return '{"error":null,"loading":false,"status":"ready","value":' .. v .. ',"version":1}'
end

-- Each app's snapshot signals: every signal whose id does not start with
-- "_", computeds excepted (protocol.md "SSR output"), whatever the page
-- read, sorted; `route` is router(...) or not_matched(...).
local function counter_snap(route) return '"count":0,"label":"Clicks",' .. route .. ',"step":1' end
local function admin_snap(route) return route .. ',"visits":0' end
-- every async signal of the live app has started its first run (a request
-- runtime starts them all); only the page's own boundaries are waited for
local function live_snap(route)
  return '"fast":' .. async_loading() .. ',"hang":' .. async_loading() .. "," .. route .. ',"slow":' .. async_loading()
end

local function counter_html(count, label)
  return '<h1 signal:text="label">' .. (label or "Clicks") ..
    '</h1><button type="button" on:click="increment">+</button> ' ..
    '<strong signal:text="count">' .. count .. '</strong> <em signal:text="doubled">' .. (count * 2) .. "</em>"
end

local function counter_page(url)
  url = url or "/"
  return doc("Counter", section(counter_html(0)) .. snap(counter_snap(router(url, "/",
    nil, url:find("?", 1, true) and '{"x":"1"}' or nil))))
end

local function not_found_page(url, prefix)
  local signals = prefix == "/admin" and admin_snap(not_matched(url)) or counter_snap(not_matched(url))
  return doc("", section("") .. snap(signals), prefix)
end

local function err_env(code, message, name)
  return '{"__async_server_result__":1,"error":{"code":"' .. code .. '","message":"' .. message ..
    '","name":"' .. (name or "AsyncError") .. '"}}'
end

local function value_env(json) return '{"__async_server_result__":1,"value":' .. json .. "}" end
local function signals_env(json) return '{"__async_server_result__":1,"signals":' .. json .. "}" end

-- the streaming app's pieces (suite_apps.live)
local function live_boundary(id, label, ready)
  return '<div async:boundary="' .. id .. '"><template async:loading="' .. id .. '"><p>Loading ' .. label ..
    '</p></template><template async:ready="' .. id .. '"><p signal:text="' .. id .. '.msg"></p></template>' ..
    (ready and ('<p signal:text="' .. id .. '.msg">' .. id .. " done</p>") or ("<p>Loading " .. label .. "</p>")) ..
    "</div>"
end

-- a string as a JSON string's contents (quotes and backslashes escaped)
local function jstr(s) return (s:gsub('[\\"]', "\\%0")) end

-- a streamed page loads the client with async, not defer (docs/client.md
-- "Streaming and defer": a deferred client runs only after the last fill)
local LIVE_SHELL = HEAD .. '<title>Live</title><script src="/live/__async/client.js" async></script></head><body>' ..
  '<main async:container>' ..
  section("<h1>Live</h1>" .. live_boundary("fast", "fast") .. live_boundary("slow", "slow")) ..
  snap(live_snap(router("/", "/")))
local function fill(id, n)
  return '<template async:fill="' .. id .. '"><p signal:text="' .. id .. '.msg">' .. id .. ' done</p></template>' ..
    '<script type="application/json" async:patch>{"seq":' .. n .. ',"signals":{"' .. id .. '":' ..
    async_ready('{"msg":"' .. id .. ' done"}') .. "}}</script>"
end
local LIVE_FILL_FAST = fill("fast", 1)
local LIVE_FILL_SLOW = fill("slow", 2)
local LIVE_TAIL = "</main></body></html>"
local LIVE_PAGE = LIVE_SHELL .. LIVE_FILL_FAST .. LIVE_FILL_SLOW .. LIVE_TAIL

local HANG_SHELL = HEAD .. '<title></title><script src="/live/__async/client.js" async></script></head><body>' ..
  '<main async:container>' .. section('<div async:boundary="hang"><template async:loading="hang"><p>Waiting</p>' ..
  '</template><template async:ready="hang"><p signal:text="hang.msg"></p></template><p>Waiting</p></div>') ..
  snap(live_snap(router("/hang", "/hang")))

-- ===== the cases =====

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- The list of cases for `opts` (see the top). A case is a row
-- `{ name, request bytes, status line, headers, body, [named fields] }` or
-- `{ name, run = function(t) end }` for the ones that need a script; named
-- fields: `length` (HEAD: the GET's body length), `close` (the server must
-- close the connection after the answer), `log` (the log entries the case
-- causes: a list of statuses or { status, error = pattern }; default: one
-- entry per answer, with its status and no error), `sequence` (a list of
-- { request, status line, headers, body } sent one after the other on one
-- connection, each after the previous answer), `pipeline` (the same list
-- sent in one write).
function _M.cases(opts)
  opts = opts or {}
  local apps = require("support.suite_apps")
  local client = assert(read_file(opts.client_js or "client/async.js"), "cannot read the browser client")
  local client_etag = '"' .. static.hash(client) .. "-" .. format("%x", #client) .. '"'
  local client_gz_etag = client_etag:sub(1, -2) .. '-gzip"'
  local function client_headers(extra)
    local h = { ["Content-Type"] = "text/javascript; charset=utf-8", ["Cache-Control"] = "no-cache",
                ["ETag"] = client_etag, ["Vary"] = "Accept-Encoding", ["X-Content-Type-Options"] = NOSNIFF }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end
  local MTIME_HEX = format("%x", apps.MTIME)
  local LAST_MODIFIED = os.date("!%a, %d %b %Y %H:%M:%S GMT", apps.MTIME)
  local function file_headers(name, ctype, vary, extra)
    local h = { ["Content-Type"] = ctype, ["Cache-Control"] = "no-cache",
                ["ETag"] = '"' .. MTIME_HEX .. "-" .. format("%x", #apps.FILES[name]) .. '"',
                ["Last-Modified"] = LAST_MODIFIED, ["X-Content-Type-Options"] = NOSNIFF }
    if vary then h["Vary"] = "Accept-Encoding" end
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end
  local function file_etag(name) return '"' .. MTIME_HEX .. "-" .. format("%x", #apps.FILES[name]) .. '"' end
  local F = apps.FILES
  local GET = function(target, headers) return request("GET", target, headers) end
  local PARTIAL = { "Accept: application/x-async-partial, application/json", "X-Async-Boundary: route" }
  local COUNTER = counter_page()
  local counter_partial = '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"' ..
    jstr(counter_html(0)) .. '","signals":{' .. counter_snap(router("/", "/")) ..
    '},"status":200,"title":"Counter"}'
  local cases = {}
  local function add(list) for _, c in ipairs(list) do cases[#cases + 1] = c end end

  -- ----- pages -----
  add({
    { "page: GET / renders the counter in the default layout, bindings filled, snapshot inside <main>",
      GET("/"), "HTTP/1.1 200 OK", doc_headers(), COUNTER },
    { "page: HEAD / has the GET's status and headers, no body",
      request("HEAD", "/"), "HTTP/1.1 200 OK", doc_headers(), "", length = #COUNTER },
    { "page: the query string reaches router.query and router.url",
      GET("/?x=1"), "HTTP/1.1 200 OK", doc_headers(), counter_page("/?x=1") },
    { "page: a second route of the app",
      GET("/about"), "HTTP/1.1 200 OK", doc_headers(),
      doc("About", section("<p>About this counter</p>") .. snap(counter_snap(router("/about", "/about")))) },
    { "page: the status a partial returns (410) is the document's",
      GET("/gone"), "HTTP/1.1 410 Gone", doc_headers(),
      doc("Gone", section("<p>Gone</p>") .. snap(counter_snap(router("/gone", "/gone")))) },
    { "page: no route matched: 404 document with router.error",
      GET("/nope"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/nope") },
    { "page: PUT on a page: 405 with Allow: GET, HEAD",
      request("PUT", "/", {}, "x"), "HTTP/1.1 405 Method Not Allowed", text_headers({ Allow = "GET, HEAD" }),
      "Method Not Allowed\n" },
    { "page: OPTIONS (a CORS preflight) on a page: 405",
      request("OPTIONS", "/"), "HTTP/1.1 405 Method Not Allowed", text_headers({ Allow = "GET, HEAD" }),
      "Method Not Allowed\n" },
    { "page: a POST without the client's headers to a page: 405",
      request("POST", "/", { "Content-Type: application/x-www-form-urlencoded" }, "a=1"),
      "HTTP/1.1 405 Method Not Allowed", text_headers({ Allow = "GET, HEAD" }), "Method Not Allowed\n" },
  })

  -- ----- route partials -----
  add({
    { "partial: Accept: application/x-async-partial answers the route's envelope",
      GET("/", PARTIAL), "HTTP/1.1 200 OK", envelope_headers({ Vary = "Accept" }), counter_partial },
    { "partial: no route matched: 404 envelope with router.error",
      GET("/nope", PARTIAL), "HTTP/1.1 404 Not Found", envelope_headers({ Vary = "Accept" }),
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"","signals":{' ..
        counter_snap(not_matched("/nope")) .. '},"status":404}' },
    { "partial: waits for the async signals (it never streams)",
      GET("/live/", PARTIAL), "HTTP/1.1 200 OK", envelope_headers({ Vary = "Accept" }),
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"' ..
        jstr("<h1>Live</h1>" .. live_boundary("fast", "fast", true) .. live_boundary("slow", "slow", true)) ..
        '","signals":{"fast":' .. async_ready('{"msg":"fast done"}') .. ',"hang":' .. async_loading() .. "," ..
        router("/", "/") .. ',"slow":' .. async_ready('{"msg":"slow done"}') .. '},"status":200,"title":"Live"}' },
    { "partial: an X-Async-Boundary that is not valid falls back to route",
      GET("/about", { "Accept: application/x-async-partial", "X-Async-Boundary: <bad>" }), "HTTP/1.1 200 OK",
      envelope_headers({ Vary = "Accept" }),
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"<p>About this counter</p>",' ..
        '"signals":{' .. counter_snap(router("/about", "/about")) .. '},"status":200,"title":"About"}' },
    { "partial: Accept with q=0 for the partial type gets the document",
      GET("/", { "Accept: application/x-async-partial;q=0, text/html" }), "HTTP/1.1 200 OK", doc_headers(), COUNTER },
  })

  -- ----- the browser client -----
  add({
    { "client.js: 200 with its ETag, no-cache, Vary",
      GET("/__async/client.js"), "HTTP/1.1 200 OK", client_headers(), client },
    { "client.js: HEAD",
      request("HEAD", "/__async/client.js"), "HTTP/1.1 200 OK", client_headers(), "", length = #client },
    { "client.js: If-None-Match with its tag: 304, no body",
      GET("/__async/client.js", { "If-None-Match: " .. client_etag }), "HTTP/1.1 304 Not Modified",
      { ["Cache-Control"] = "no-cache", ETag = client_etag, Vary = "Accept-Encoding",
        ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "client.js: If-None-Match weak, in a list: 304",
      GET("/__async/client.js", { 'If-None-Match: "other", W/' .. client_etag }), "HTTP/1.1 304 Not Modified",
      { ["Cache-Control"] = "no-cache", ETag = client_etag, Vary = "Accept-Encoding",
        ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "client.js: If-None-Match: * gives 304",
      GET("/__async/client.js", { "If-None-Match: *" }), "HTTP/1.1 304 Not Modified",
      { ["Cache-Control"] = "no-cache", ETag = client_etag, Vary = "Accept-Encoding",
        ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "client.js: another tag: 200",
      GET("/__async/client.js", { 'If-None-Match: "nope"' }), "HTTP/1.1 200 OK", client_headers(), client },
    { "client.js: Accept-Encoding: gzip gives the gzip bytes (inflated by zlib: the file)",
      GET("/__async/client.js", { "Accept-Encoding: gzip, deflate" }), "HTTP/1.1 200 OK",
      client_headers({ ["Content-Encoding"] = "gzip", ETag = client_gz_etag }), _M.gzip(client) },
    { "client.js: gzip with q=0 is not gzip",
      GET("/__async/client.js", { "Accept-Encoding: gzip;q=0, identity" }), "HTTP/1.1 200 OK", client_headers(),
      client },
    { "client.js: the gzip tag in If-None-Match: 304 with the gzip tag",
      GET("/__async/client.js", { "Accept-Encoding: gzip", "If-None-Match: " .. client_gz_etag }),
      "HTTP/1.1 304 Not Modified", { ["Cache-Control"] = "no-cache", ETag = client_gz_etag,
        Vary = "Accept-Encoding", ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "client.js: under a mount prefix, the same file",
      GET("/admin/__async/client.js"), "HTTP/1.1 200 OK", client_headers(), client },
    { "client.js: POST: 405 with Allow: GET, HEAD",
      post("/__async/client.js", "{}"), "HTTP/1.1 405 Method Not Allowed", text_headers({ Allow = "GET, HEAD" }),
      "Method Not Allowed\n" },
    { "__async: an unknown endpoint: 404 envelope",
      GET("/__async/nope"), "HTTP/1.1 404 Not Found", envelope_headers(),
      err_env("not-found", "no endpoint /__async/nope") },
  })

  -- ----- static files -----
  local T = function(ctype) return ctype .. "; charset=utf-8" end
  add({
    { "static: a text file: type, ETag, Last-Modified, no-cache, Vary",
      GET("/hello.txt"), "HTTP/1.1 200 OK", file_headers("hello.txt", T("text/plain"), true), F["hello.txt"] },
    { "static: css", GET("/style.css"), "HTTP/1.1 200 OK", file_headers("style.css", T("text/css"), true),
      F["style.css"] },
    { "static: js", GET("/app.js"), "HTTP/1.1 200 OK", file_headers("app.js", T("text/javascript"), true),
      F["app.js"] },
    { "static: json", GET("/data.json"), "HTTP/1.1 200 OK",
      file_headers("data.json", T("application/json"), true), F["data.json"] },
    { "static: html from public/ has no CSP (the app's own file)",
      GET("/page.html"), "HTTP/1.1 200 OK", file_headers("page.html", T("text/html"), true), F["page.html"] },
    { "static: png: binary, no Vary", GET("/logo.png"), "HTTP/1.1 200 OK",
      file_headers("logo.png", "image/png", false), F["logo.png"] },
    { "static: unknown extension: application/octet-stream", GET("/blob.bin"), "HTTP/1.1 200 OK",
      file_headers("blob.bin", "application/octet-stream", false), F["blob.bin"] },
    { "static: a file in a folder", GET("/sub/deep.txt"), "HTTP/1.1 200 OK",
      file_headers("sub/deep.txt", T("text/plain"), true), F["sub/deep.txt"] },
    { "static: a percent-encoded name", GET("/a%20b.txt"), "HTTP/1.1 200 OK",
      file_headers("a b.txt", T("text/plain"), true), F["a b.txt"] },
    { "static: HEAD", request("HEAD", "/style.css"), "HTTP/1.1 200 OK",
      file_headers("style.css", T("text/css"), true), "", length = #F["style.css"] },
    { "static: If-None-Match: 304",
      GET("/style.css", { "If-None-Match: " .. file_etag("style.css") }), "HTTP/1.1 304 Not Modified",
      { ["Cache-Control"] = "no-cache", ETag = file_etag("style.css"), ["Last-Modified"] = LAST_MODIFIED,
        Vary = "Accept-Encoding", ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "static: If-Modified-Since the mtime: 304",
      GET("/logo.png", { "If-Modified-Since: " .. LAST_MODIFIED }), "HTTP/1.1 304 Not Modified",
      { ["Cache-Control"] = "no-cache", ETag = file_etag("logo.png"), ["Last-Modified"] = LAST_MODIFIED,
        ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "static: If-Modified-Since before the mtime: 200",
      GET("/logo.png", { "If-Modified-Since: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT", apps.MTIME - 1) }),
      "HTTP/1.1 200 OK", file_headers("logo.png", "image/png", false), F["logo.png"] },
    { "static: a non-matching If-None-Match wins over If-Modified-Since: 200",
      GET("/logo.png", { 'If-None-Match: "x"', "If-Modified-Since: " .. LAST_MODIFIED }),
      "HTTP/1.1 200 OK", file_headers("logo.png", "image/png", false), F["logo.png"] },
    { "static: gzip when accepted and smaller (inflated by zlib: the file)",
      GET("/style.css", { "Accept-Encoding: gzip" }), "HTTP/1.1 200 OK",
      file_headers("style.css", T("text/css"), true, { ["Content-Encoding"] = "gzip",
        ETag = file_etag("style.css"):sub(1, -2) .. '-gzip"' }), _M.gzip(F["style.css"]) },
    { "static: no gzip when it would not be smaller",
      GET("/hello.txt", { "Accept-Encoding: gzip" }), "HTTP/1.1 200 OK",
      file_headers("hello.txt", T("text/plain"), true), F["hello.txt"] },
    { "static: a symlink that stays inside public/ is followed",
      GET("/inside.txt"), "HTTP/1.1 200 OK", file_headers("hello.txt", T("text/plain"), true), F["hello.txt"] },
    { "static: POST to a file: 405", request("POST", "/hello.txt", { "Content-Type: text/plain" }, "x"),
      "HTTP/1.1 405 Method Not Allowed", text_headers({ Allow = "GET, HEAD" }), "Method Not Allowed\n" },
  })
  -- what must never be served: each gets a 400 (bad path) or falls through to the routes (404 page)
  local BAD = "HTTP/1.1 400 Bad Request"
  add({
    { "traversal: /../outside.txt: 400", GET("/../outside.txt"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "segment" } } },
    { "traversal: /sub/../../outside.txt: 400", GET("/sub/../../outside.txt"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "segment" } } },
    { "traversal: /%2e%2e/outside.txt: 400", GET("/%2e%2e/outside.txt"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "segment" } } },
    { "traversal: /%2E%2E%2Foutside.txt (an encoded /): 400", GET("/%2E%2E%2Foutside.txt"), BAD, text_headers(),
      "Bad Request\n",
      log = { { 400, error = "encoded /" } } },
    { "traversal: /sub/%2e%2e/hello.txt: 400", GET("/sub/%2e%2e/hello.txt"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "segment" } } },
    { "traversal: /./hello.txt: 400", GET("/./hello.txt"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "segment" } } },
    { "an encoded NUL: /hello.txt%00.png: 400", GET("/hello.txt%00.png"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "control byte" } } },
    { "a bad escape: /hello%zz: 400", GET("/hello%zz"), BAD, text_headers(), "Bad Request\n",
      log = { { 400, error = "percent%-encoding" } } },
    { "an absolute path //etc/passwd is not the file system's: 404 page",
      GET("//etc/passwd"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("//etc/passwd") },
    { "an absolute path /etc/passwd: 404 page",
      GET("/etc/passwd"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/etc/passwd") },
    { "a symlink out of public/ (to a file) is not followed: 404 page",
      GET("/escape.txt"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/escape.txt") },
    { "a symlink out of public/ (to a folder) is not followed: 404 page",
      GET("/up/outside.txt"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/up/outside.txt") },
    { "a dot-file is never served: 404 page",
      GET("/.env"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/.env") },
    { "a folder is not a file (no index): 404 page",
      GET("/sub"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/sub") },
  })

  -- ----- POST endpoints: answers -----
  local OK = "HTTP/1.1 200 OK"
  add({
    { "handler: increment from the client's count: only the changed signals come back",
      post("/__async/handler/increment", '{"args":[],"input":{},"signals":{"count":4}}'), OK, envelope_headers(),
      signals_env('{"count":5}') },
    { "handler: the client may write any registered signal (step = 10)",
      post("/__async/handler/increment", '{"args":[],"signals":{"count":1,"step":10}}'), OK, envelope_headers(),
      signals_env('{"count":11}') },
    { "handler: no body fields at all: the server's state",
      post("/__async/handler/increment", "{}"), OK, envelope_headers(), signals_env('{"count":1}') },
    { "handler: args reach the handler",
      post("/__async/handler/rename", '{"args":["Taps"],"signals":{}}'), OK, envelope_headers(),
      signals_env('{"label":"Taps"}') },
    { "handler: a handler that changes nothing: an envelope with no signals",
      post("/__async/handler/nothing", '{"args":[]}'), OK, envelope_headers(), signals_env("{}") },
    { "handler: a redirect",
      post("/__async/handler/go", "{}"), OK, envelope_headers(),
      '{"__async_server_result__":1,"redirect":"/about","signals":{}}' },
    { "handler: client signals naming _x, router.url, unregistered ids, computeds and $ paths are ignored",
      post("/__async/handler/increment", '{"signals":{"_secret":"stolen","router.url":"/evil","ghost":1,' ..
        '"doubled":99,"count.$status":"x","count":2}}'), OK, envelope_headers(), signals_env('{"count":3}') },
    { "handler: the server-only signal keeps the server's value",
      post("/__async/handler/reveal", '{"signals":{"_secret":"stolen"}}'), OK, envelope_headers(),
      '{"__async_server_result__":1,"signals":{},"value":"hunter2"}' },
    { "handler: a Lua error: 500 handler-failed, no message in production",
      post("/__async/handler/boom", "{}"), "HTTP/1.1 500 Internal Server Error", envelope_headers(),
      err_env("handler-failed", "Internal server error", "Error"), log = { { 500, error = "handler exploded" } } },
    { "server: a value", post("/__async/server/add", '{"args":[2,3]}'), OK, envelope_headers(), value_env("5") },
    { "server: nil: 204", post("/__async/server/nothing", '{"args":[]}'), "HTTP/1.1 204 No Content",
      { ["Cache-Control"] = "no-store", ["X-Content-Type-Options"] = NOSNIFF }, "" },
    { "server: an envelope built with Async.result, as built; a dotted id",
      post("/__async/server/cart.put", '{"args":["sku",3]}'), OK, envelope_headers(),
      '{"__async_server_result__":1,"signals":{"count":3},"value":{"id":"sku","qty":3}}' },
    { "server: a percent-encoded id",
      post("/__async/server/cart%2Eput", '{"args":["a",1]}'), OK, envelope_headers(),
      '{"__async_server_result__":1,"signals":{"count":1},"value":{"id":"a","qty":1}}' },
    { "server: JSON null arguments are nil and counted; the client's signals are readable",
      post("/__async/server/echo", '{"args":[null,"b",null],"signals":{"count":7}}'), OK, envelope_headers(),
      value_env('{"args":{"2":"b"},"n":3,"path":"/__async/server/echo","prefix":"","sent":7}') },
    { "server: a Lua error: 500 runtime-error, no message in production",
      post("/__async/server/fail", "{}"), "HTTP/1.1 500 Internal Server Error", envelope_headers(),
      err_env("runtime-error", "Internal server error", "Error"), log = { { 500, error = "db down" } } },
    { "server: an error raised with a code keeps its code and message",
      post("/__async/server/sold_out", "{}"), "HTTP/1.1 500 Internal Server Error", envelope_headers(),
      err_env("out-of-stock", "Sold out", "Error"),
      log = { { 500, error = "Sold out" } } },
    { "server: under a prefix, the mounted app's function and its request.prefix",
      post("/admin/__async/server/where", "{}"), OK, envelope_headers(),
      value_env('{"full_path":"/admin/__async/server/where","path":"/__async/server/where","prefix":"/admin"}') },
    { "handler: under a prefix, the mounted app's handler",
      post("/admin/__async/handler/visit", '{"signals":{"visits":2}}'), OK, envelope_headers(),
      signals_env('{"visits":3}') },
    { "handler: the root app's handler is not reachable under the prefix: 404",
      post("/admin/__async/handler/increment", "{}"), "HTTP/1.1 404 Not Found", envelope_headers(),
      err_env("handler-not-registered", 'Handler \\"increment\\" is not registered.') },
    { "handler: a chunked request body",
      post("/__async/handler/increment", nil, { "Transfer-Encoding: chunked" }) ..
        chunked({ '{"signals":{', '"count":41}}' }), OK, envelope_headers(), signals_env('{"count":42}') },
  })

  -- ----- POST endpoints: refusals -----
  local F403 = "HTTP/1.1 403 Forbidden"
  add({
    { "refused: GET on a server function: 405, Allow: POST",
      GET("/__async/server/add"), "HTTP/1.1 405 Method Not Allowed", envelope_headers({ Allow = "POST" }),
      err_env("method-not-allowed", "use POST") },
    { "refused: OPTIONS (a CORS preflight) on a handler: 405",
      request("OPTIONS", "/__async/handler/increment", { "Origin: http://evil.test",
        "Access-Control-Request-Method: POST" }), "HTTP/1.1 405 Method Not Allowed",
      envelope_headers({ Allow = "POST" }), err_env("method-not-allowed", "use POST") },
    { "refused: no X-Async-Request: 403",
      post("/__async/server/add", "{}", nil, { "Content-Type: application/json" }), F403, envelope_headers(),
      err_env("missing-request-header", "the X-Async-Request: 1 header is required") },
    { "refused: X-Async-Request: 2: 403",
      post("/__async/handler/increment", "{}", nil, { "Content-Type: application/json", "X-Async-Request: 2" }),
      F403, envelope_headers(), err_env("missing-request-header", "the X-Async-Request: 1 header is required") },
    { "refused: a non-JSON Content-Type (a form post): 403",
      post("/__async/server/add", "a=1", nil, { "Content-Type: application/x-www-form-urlencoded",
        "X-Async-Request: 1" }), F403, envelope_headers(),
      err_env("invalid-content-type", "the Content-Type must be application/json") },
    { "refused: text/plain (a no-preflight cross-site fetch): 403",
      post("/__async/handler/increment", "{}", nil, { "Content-Type: text/plain", "X-Async-Request: 1" }), F403,
      envelope_headers(), err_env("invalid-content-type", "the Content-Type must be application/json") },
    { "accepted: a */*+json Content-Type with parameters",
      post("/__async/server/add", '{"args":[1,1]}', nil, { "Content-Type: application/vnd.x+json; charset=utf-8",
        "X-Async-Request: 1" }), OK, envelope_headers(), value_env("2") },
    { "refused: a cross-origin Origin: 403",
      post("/__async/server/add", "{}", { "Origin: http://evil.test" }), F403, envelope_headers(),
      err_env("cross-origin", "cross-origin request from http://evil.test") },
    { "refused: Origin: null: 403",
      post("/__async/handler/increment", "{}", { "Origin: null" }), F403, envelope_headers(),
      err_env("cross-origin", "Origin: null") },
    { "refused: the same host on another port is another origin: 403",
      post("/__async/server/add", "{}", { "Origin: http://suite.test:8081" }), F403, envelope_headers(),
      err_env("cross-origin", "cross-origin request from http://suite.test:8081") },
    { "accepted: the same-origin Origin",
      post("/__async/server/add", '{"args":[20,22]}', { "Origin: http://suite.test" }), OK, envelope_headers(),
      value_env("42") },
    { "refused: an unknown server function: 404",
      post("/__async/server/ghost", "{}"), "HTTP/1.1 404 Not Found", envelope_headers(),
      err_env("server-function-not-registered", 'Server function \\"ghost\\" is not registered.') },
    { "refused: an unknown handler: 404",
      post("/__async/handler/ghost", "{}"), "HTTP/1.1 404 Not Found", envelope_headers(),
      err_env("handler-not-registered", 'Handler \\"ghost\\" is not registered.') },
    { "refused: ids never reach _G: _G.print is an unknown id (404)",
      post("/__async/server/_G.print", "{}"), "HTTP/1.1 404 Not Found", envelope_headers(),
      err_env("server-function-not-registered", 'Server function \\"_G.print\\" is not registered.') },
    { "refused: __index is an unknown id (404)",
      post("/__async/handler/__index", "{}"), "HTTP/1.1 404 Not Found", envelope_headers(),
      err_env("handler-not-registered", 'Handler \\"__index\\" is not registered.') },
    { "refused: a bad id (parentheses): 400",
      post("/__async/server/add()", "{}"), BAD, envelope_headers(),
      err_env("invalid-id", "the id does not match the protocol's grammar") },
    { "refused: a bad id (a bad escape): 400",
      post("/__async/server/a%zz", "{}"), BAD, envelope_headers(),
      err_env("invalid-id", "the id is not percent-encoded cleanly") },
    { "refused: an empty id: 400",
      post("/__async/handler/", "{}"), BAD, envelope_headers(), err_env("invalid-id", "the id is empty") },
    { "refused: an id over 256 bytes: 400",
      post("/__async/server/" .. rep("a", 257), "{}"), BAD, envelope_headers(),
      err_env("invalid-id", "the id is longer than 256 bytes") },
    { "refused: an id with an encoded NUL: 400",
      post("/__async/server/add%00", "{}"), BAD, envelope_headers(),
      err_env("invalid-id", "the id holds a control byte") },
    { "refused: a handler name starting with $: 400",
      post("/__async/handler/$value", "{}"), BAD, envelope_headers(),
      err_env("invalid-id", "the id does not match the protocol's grammar") },
    { "refused: a body that is not JSON: 400",
      post("/__async/server/add", "{args:"), BAD, envelope_headers(), function(body)
        local ok = body:find('^{"__async_server_result__":1,"error":{"code":"invalid%-json","message":"the body ' ..
          'is not JSON: [^"]+","name":"AsyncError"}}$')
        return ok ~= nil, "not an invalid-json envelope"
      end },
    { "refused: JSON nested 100 deep: 400",
      post("/__async/server/add", '{"args":[' .. rep("[", 99) .. rep("]", 99) .. "]}"), BAD, envelope_headers(),
      err_env("json-too-deep", "the JSON body is nested deeper than 64") },
    { "refused: a body that is not an object: 400",
      post("/__async/server/add", "[1,2]"), BAD, envelope_headers(),
      err_env("invalid-request", "the body must be a JSON object") },
    { "refused: args that are not an array: 400",
      post("/__async/server/add", '{"args":{"a":1}}'), BAD, envelope_headers(),
      err_env("invalid-request", '\\"args\\" must be an array') },
    { "refused: signals that are not an object: 400",
      post("/__async/handler/increment", '{"signals":[1]}'), BAD, envelope_headers(),
      err_env("invalid-request", '\\"signals\\" must be an object') },
  })
  -- 1,001 client signal paths: the first 1,000 in sorted order are considered
  do
    local parts = {}
    for i = 1, 1000 do parts[i] = format('"a%04d":%d', i, i) end
    parts[#parts + 1] = '"count":500'          -- sorts after a0001..a1000: the 1,001st, ignored
    add({
      { "handler: of 1,001 client signal paths the 1,001st (count) is ignored",
        post("/__async/handler/increment", '{"signals":{' .. concat(parts, ",") .. "}}"), OK, envelope_headers(),
        signals_env('{"count":1}') },
    })
  end

  -- ----- limits: the transport's refusals (the connection closes) -----
  local big = rep("x", 2 * 1048576)
  local pad = {}
  for i = 1, 20 do pad[i] = "X-Pad-" .. i .. ": " .. rep("p", 1024) end
  local pad_post = {}
  for i, x in ipairs(JSON_POST) do pad_post[i] = x end
  for _, x in ipairs(pad) do pad_post[#pad_post + 1] = x end
  add({
    { "limit: a 2 MiB body to a handler: 413 envelope, connection closed",
      post("/__async/handler/increment", big), "HTTP/1.1 413 Content Too Large", envelope_headers(),
      err_env("body-too-large", "Content Too Large"), close = true,
      log = { { 413, error = "body_too_large" } } },
    { "limit: a 2 MiB body to a page: 413 text, connection closed",
      request("POST", "/", { "Content-Type: text/plain" }, big), "HTTP/1.1 413 Content Too Large",
      REFUSAL_HEADERS, "Content Too Large\n", close = true, log = { { 413, error = "body_too_large" } } },
    { "limit: 20 KiB of headers on a handler POST: 431 envelope, connection closed",
      request("POST", "/__async/handler/increment", pad_post, "{}"), "HTTP/1.1 431 Request Header Fields Too Large",
      envelope_headers(), err_env("headers-too-large", "Request Header Fields Too Large"), close = true,
      log = { { 431, error = "headers_too_large" } } },
    { "limit: 20 KiB of headers on a page: 431, connection closed",
      request("GET", "/", pad), "HTTP/1.1 431 Request Header Fields Too Large", REFUSAL_HEADERS,
      "Request Header Fields Too Large\n", close = true, log = { { 431, error = "headers_too_large" } } },
    { "malformed: a request line http-parser refuses: 400, connection closed",
      "GARBAGE\r\n\r\n", BAD, REFUSAL_HEADERS, "Bad Request\n", close = true, log = { { 400, error = "malformed" } } },
    { "malformed: HTTP/1.1 without Host: 400, connection closed",
      "GET / HTTP/1.1\r\n\r\n", BAD, REFUSAL_HEADERS, "Bad Request\n", close = true,
      log = { { 400, error = "host" } } },
  })

  -- ----- prefixes -----
  local ADMIN_HOME = doc("Admin", section('<p>Admin <b signal:text="visits">0</b></p>') ..
    snap(admin_snap(router("/", "/"))), "/admin")
  add({
    { "prefix: /admin is the admin app's /",
      GET("/admin"), OK, doc_headers(),
      ADMIN_HOME },
    { "prefix: /admin/ too",
      GET("/admin/"), OK, doc_headers(),
      ADMIN_HOME },
    { "prefix: the app sees paths without its prefix; links get request.prefix",
      GET("/admin/users"), OK, doc_headers(),
      doc("Users", section("<p>Users at /admin/users</p>") .. snap(admin_snap(router("/users", "/users"))), "/admin") },
    { "prefix: /administrator is the root app's (404 there)",
      GET("/administrator"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/administrator") },
    { "prefix: a 404 under the prefix is the mounted app's (its client URL)",
      GET("/admin/nope"), "HTTP/1.1 404 Not Found", doc_headers(), not_found_page("/nope", "/admin") },
  })

  -- ----- connections -----
  add({
    { "keep-alive: three requests on one connection, each after the previous answer", keep = true,
      sequence = {
        { GET("/"), OK, doc_headers(), COUNTER },
        { post("/__async/handler/increment", '{"signals":{"count":9}}'), OK, envelope_headers(),
          signals_env('{"count":10}') },
        { GET("/__async/client.js", { "If-None-Match: " .. client_etag }), "HTTP/1.1 304 Not Modified",
          { ["Cache-Control"] = "no-cache", ETag = client_etag, Vary = "Accept-Encoding",
            ["X-Content-Type-Options"] = NOSNIFF }, "" },
      } },
    { "pipelining: three requests in one write, answered in order", keep = true,
      pipeline = {
        { post("/__async/server/add", '{"args":[1,2]}'), OK, envelope_headers(), value_env("3") },
        { GET("/hello.txt"), OK, file_headers("hello.txt", T("text/plain"), true), F["hello.txt"] },
        { request("HEAD", "/"), OK, doc_headers(), "", length = #COUNTER },
      } },
    { "pipelining: a streamed page then a request: the second waits for the stream's end", keep = true,
      pipeline = {
        { GET("/live/"), OK, doc_headers(), LIVE_PAGE },
        { GET("/about"), OK, doc_headers(), doc("About", section("<p>About this counter</p>") ..
          snap(counter_snap(router("/about", "/about")))) },
      } },
    { "Connection: close from the client: answered, then closed", close = true,
      GET("/about", { "Connection: close" }), OK, doc_headers(),
      doc("About", section("<p>About this counter</p>") .. snap(counter_snap(router("/about", "/about")))) },
  })

  -- ----- scripted cases -----
  cases[#cases + 1] = { "streaming: the shell first, then each fill with async:patch seq 1, 2 as it settles",
    log = { 200 }, run = function(t)
      local c = t:connect()
      local arrivals = {}
      c.c.on_data = function() arrivals[#arrivals + 1] = #c.c:data() end
      c:send(GET("/live/"))
      -- the shell (up to its snapshot) arrives while both boundaries are pending
      t:wait(function() return c:data():find("async:snapshot>", 1, true) and c:data():find("</script>", 1, true)
        or c:eof() end, "the shell")
      local at_shell = c:data()
      if at_shell:find("async:fill", 1, true) then
        fail("the fills came with the shell (not streamed):\n%s", show(at_shell))
      end
      t:wait(function() return c:data():find('async:fill="fast"', 1, true) or c:eof() end, "the fast fill")
      local at_fast = c:data()
      if at_fast:find('async:fill="slow"', 1, true) then fail("the slow fill came with the fast one") end
      if not at_fast:find('{"seq":1,', 1, true) then fail("the fast fill has no patch seq 1") end
      local r = c:response("GET", "the streamed page")
      check_response(r, { "HTTP/1.1 200 OK", doc_headers(), LIVE_PAGE }, t.opts, "the streamed page")
      if r.length then fail("a streamed page with a Content-Length (%d)", r.length) end
      c:expect_idle("streaming", true)
      if #arrivals < 3 then fail("the page came in %d reads; want the shell and each fill apart", #arrivals) end
      c:close()
    end }
  cases[#cases + 1] = { "malformed request: 400 and closed while another client's stream is served",
    log = { { 400, error = "malformed" }, 200 },
    run = function(t)
      local a = t:connect()
      a:send(GET("/live/"))
      t:wait(function() return a:data():find("async:snapshot>", 1, true) or a:eof() end, "the shell")
      local b = t:connect()
      b:send("GET / HTTP/1.1\r\nHost: " .. HOST .. "\r\nBad Header Line\r\n\r\n")
      local r = b:response("GET", "the malformed request")
      local want = t.opts.expect and
        t.opts.expect["malformed request: 400 and closed while another client's stream is served"]
      check_response(r, want or { BAD, REFUSAL_HEADERS, "Bad Request\n" }, t.opts, "the malformed request")
      b:expect_eof("the malformed request")
      if a:data():find('async:fill="slow"', 1, true) then fail("the stream ended before the refusal") end
      r = a:response("GET", "the stream")
      check_response(r, { OK, doc_headers(), LIVE_PAGE }, t.opts, "the stream")
      a:expect_idle("the stream", true)
      a:close()
      b:close()
    end }
  cases[#cases + 1] = { "disconnect mid-stream: the async run is aborted, the runtime destroyed, the log says so",
    log = { { 200, error = "^closed" } },
    run = function(t)
      local o, st = t.opts, t.opts.state
      local base = o.live_nodes and o.live_nodes()
      local started = st and st.hang_started
      local aborted = st and st.hang_aborted
      local c = t:connect()
      c:send(GET("/live/hang"))
      t:wait(function() return c:data():find("async:snapshot>", 1, true) and c:data():find("</script>", 1, true)
        or c:eof() end, "the shell")
      local r = _M.parse_response(c:data(), 1, "GET", false)
      if r ~= nil then fail("the hanging page ended: %s", show(c:data())) end
      local head = c:data():match("^(.-\r\n\r\n)")
      local got = _M.parse_response(head .. "0\r\n\r\n", 1, "HEAD", true)
      check_response(got, { OK, doc_headers(), "" }, o, "the hanging page's head")
      if not c:data():find(HANG_SHELL, 1, true) then fail("the shell is not the expected one: %s", show(c:data())) end
      local during = o.live_nodes and o.live_nodes()
      if base and during <= base then fail("live nodes %d while the page runs, %d before: the check cannot fail",
        during, base) end
      if st and st.hang_started ~= started + 1 then fail("the hang signal did not start") end
      c:close()
      if st then
        t:wait(function() return st.hang_aborted == aborted + 1 end, "the async run to be aborted")
      end
      if base then
        local now
        t:wait(function() now = o.live_nodes() return now <= base end, "live nodes back to " .. base)
      end
      if st and st.hang_done ~= 0 then fail("an aborted async run finished") end
      -- the server keeps serving
      local c2 = t:connect()
      c2:send(GET("/about", { "Connection: close" }))
      local r2 = c2:response("GET", "the next request")
      check_response(r2, { OK, doc_headers(), doc("About", section("<p>About this counter</p>") ..
        snap(counter_snap(router("/about", "/about")))) }, o, "the next request")
      c2:close()
    end, log_after = { 200 } }
  return cases
end

-- ===== running =====

local Runner = {}
Runner.__index = Runner

function Runner:connect()
  local c = _M.connect(self.host, self.port, self.opts)
  self.conns[#self.conns + 1] = c
  return c
end

function Runner:wait(cond, what) wait(cond, self.opts, what) end

-- the log entries a case expects: its `log` (+ `log_after`), or one per answer
local function expected_log(case)
  local list = {}
  local function push(x) list[#list + 1] = type(x) == "number" and { x } or x end
  if case.log then
    for _, x in ipairs(case.log) do push(x) end
  elseif case.sequence or case.pipeline then
    for _, r in ipairs(case.sequence or case.pipeline) do push(tonumber(r[2]:match(" (%d%d%d)"))) end
  elseif case[3] then
    push(tonumber(case[3]:match(" (%d%d%d)")))
  end
  for _, x in ipairs(case.log_after or {}) do push(x) end
  return list
end
_M.expected_log = expected_log

local function entry_str(e)
  return format("%s %s %s%s", tostring(e.status), tostring(e.method), tostring(e.path),
    e.error and (" error=" .. show(e.error)) or "")
end

-- checks the entries a case added to the log
local function check_log(case, entries, from, opts)
  local want = expected_log(case)
  wait(function() return #entries >= from + #want end, opts, #want .. " log entries")
  support.uv().run("nowait")
  local got = {}
  for i = from + 1, #entries do got[#got + 1] = entries[i] end
  local lines = {}
  for _, e in ipairs(got) do lines[#lines + 1] = "  " .. entry_str(e) end
  local function bad(msg) fail("log: %s; the case logged:\n%s", msg, concat(lines, "\n")) end
  if #got ~= #want then bad(format("%d entries, want %d", #got, #want)) end
  -- statuses in order, except that concurrent requests may log in any order
  local used = {}
  for _, w in ipairs(want) do
    local found
    for i, e in ipairs(got) do
      if not used[i] and e.status == w[1] and ((w.error == nil and e.error == nil) or
         (w.error ~= nil and type(e.error) == "string" and find(e.error, w.error))) then
        found = i
        break
      end
    end
    if not found then bad("no entry " .. w[1] .. (w.error and (" with error " .. w.error) or " without error")) end
    used[found] = true
  end
  for _, e in ipairs(got) do
    if e.warnings then bad("unexpected warnings: " .. concat(e.warnings, " | ")) end
  end
end

-- runs a row's request(s) on one connection
local function run_row(t, case)
  local opts = t.opts
  local c = t:connect()
  local list
  local close = case.close
  if case.sequence then
    list = case.sequence
    for i, r in ipairs(list) do
      c:send(r[1])
      local what = "answer " .. i
      check_response(c:response(method_of(r[1]), what), { r[2], r[3], r[4], length = r.length }, opts, what)
    end
  elseif case.pipeline then
    list = case.pipeline
    local all = {}
    for i, r in ipairs(list) do all[i] = r[1] end
    c:send(concat(all))
    for i, r in ipairs(list) do
      local what = "answer " .. i
      check_response(c:response(method_of(r[1]), what), { r[2], r[3], r[4], length = r.length }, opts, what)
    end
  else
    c:send(case[2])
    local other = opts.expect and opts.expect[case[1]]
    local want = other or { case[3], case[4], case[5], length = case.length, close = case.close }
    check_response(c:response(method_of(case[2]), "the answer"), want, opts, "the answer")
    close = want.close
  end
  if close then c:expect_eof("after the answer") else c:expect_idle("after the answer", case.keep) end
end

--- Runs one case against host:port; raises on a failure.
function _M.run_case(host, port, case, opts)
  opts = opts or {}
  local t = setmetatable({ host = host, port = port, opts = opts, conns = {} }, Runner)
  local entries = opts.log_entries
  local from = entries and #entries
  local ok, err = pcall(function()
    if case.run then case.run(t) else run_row(t, case) end
  end)
  for _, c in ipairs(t.conns) do c:close() end
  if not ok then error(err, 0) end
  if entries then check_log(case, entries, from, opts) end
end

local function selected(case, opts)
  return not opts.only or find(case[1], opts.only) ~= nil
end

--- The statuses the whole suite should leave in the log, in order.
function _M.expected_statuses(opts)
  local out = {}
  for _, case in ipairs(_M.cases(opts)) do
    if selected(case, opts or {}) and not (opts and opts.skip and opts.skip[case[1]]) then
      for _, w in ipairs(expected_log(case)) do out[#out + 1] = w[1] end
    end
  end
  return out
end

--- Runs every case; returns { passed =, failed =, skipped =, failures = { { name, message } } }.
function _M.run(host, port, opts)
  opts = opts or {}
  local report = { passed = 0, failed = 0, skipped = 0, failures = {} }
  for _, case in ipairs(_M.cases(opts)) do
    if selected(case, opts) then
      if opts.skip and opts.skip[case[1]] then
        report.skipped = report.skipped + 1
      else
        local ok, err = pcall(_M.run_case, host, port, case, opts)
        if ok then report.passed = report.passed + 1
        else
          report.failed = report.failed + 1
          report.failures[#report.failures + 1] = { case[1], tostring(err) }
        end
      end
    end
  end
  return report
end

--- Registers one busted `it` per case (target() returns host, port once
-- the server is up), then one that checks the whole log (with
-- opts.log_entries): exactly the statuses the cases expect, and no error
-- entry the cases did not expect.
function _M.busted(target, opts)
  opts = opts or {}
  local env = getfenv(2)   -- busted's it/pending live in the spec file's environment
  local it, pending = env.it, env.pending
  local cases = _M.cases(opts)
  local n = 0
  for _, case in ipairs(cases) do
    if selected(case, opts) then
      n = n + 1
      if opts.skip and opts.skip[case[1]] then
        pending(case[1] .. " (skipped: " .. opts.skip[case[1]] .. ")")
      else
        it(case[1], function()
          local host, port = target()
          _M.run_case(host, port, case, opts)
        end)
      end
    end
  end
  if opts.log_entries and not opts.only and not opts.skip then
    it("the log: one entry per answer, exactly the statuses and errors the cases expect", function()
      local want, errors = {}, 0
      for _, case in ipairs(cases) do
        for _, w in ipairs(expected_log(case)) do
          want[#want + 1] = w[1]
          if w.error then errors = errors + 1 end
        end
      end
      local got, got_errors = {}, 0
      for i, e in ipairs(opts.log_entries) do
        got[i] = e.status
        if e.error then got_errors = got_errors + 1 end
      end
      if concat(got, " ") ~= concat(want, " ") then
        fail("statuses in the log:\n  %s\nwant\n  %s", concat(got, " "), concat(want, " "))
      end
      if got_errors ~= errors then fail("%d error entries in the log, the cases expect %d", got_errors, errors) end
    end)
  end
  return n
end

return _M
