--- The transport-neutral request core (docs/endpoints.md):
--
--   local handle = require("async.server.core").new({ app = app, public = "public" })
--   local res = handle(req)   -- inside a coroutine per request
--
-- `req` and `res` are the transport contract's tables (docs/http.md):
--   req = { method =, target =, path =, query =, version =, headers = { lowercase = value },
--           body = "", remote =, abort = <abort token, cancelled when the client goes away> }
--   res = { status =, headers = { {name, value}, ... }, body = "..." }
--      or { status =, headers = {...}, stream = function(write) ... end }
--
-- A request goes: limits (431, 413) -> the mount whose prefix is the longest
-- that matches -> `<prefix>/__async/...` endpoints (client.js, server
-- functions, handlers) -> GET/HEAD only (405) -> the path's segments
-- (400 for "..", NUL, bad escapes) -> a file of public/ -> a route partial
-- (Accept: application/x-async-partial) or a page. Each endpoint is its own
-- module: async.server.static (files), .rpc (POST endpoints), .page (pages
-- and partials); requests and responses are read and built by
-- async.server.request and async.server.response.
local runtime = require("async.app.runtime")
local hub = require("async.app.hub")
local loop = require("async.loop")
local ssr = require("async.ssr")
local document = require("async.ssr.document")
local request = require("async.server.request")
local response = require("async.server.response")
local static = require("async.server.static")
local page = require("async.server.page")
local rpc = require("async.server.rpc")
local cache_mod = require("async.app.cache")
local errors = require("async.kernel.errors")

local type, error, tostring, pairs, ipairs, pcall, xpcall, setmetatable, getmetatable, require =
  type, error, tostring, pairs, ipairs, pcall, xpcall, setmetatable, getmetatable, require
local sort, concat = table.sort, table.concat
local find, sub, lower, format = string.find, string.sub, string.lower, string.format
local co_running = coroutine.running
local os_getenv = os.getenv

local _M = {}

local DEFAULT_LIMITS = { body = 1048576, headers = 16384, connections = 10000 }
local DEFAULT_CSP = "script-src 'self'"
local CLIENT_PATH = "/__async/client.js"

-- ===== options =====

local function bad(msg) errors.argument("async.server.core.new: " .. msg) end

-- the App behind `a` (an app of define_app, or require("async") itself), or nil
local function app_of(a)
  if type(a) ~= "table" then return nil end
  if getmetatable(a) == hub.App then return a end
  if type(a.hub) == "table" and getmetatable(a.hub) == hub.App then return a.hub end
  return nil
end

-- "" for "/", else the prefix without a trailing slash; raises on a bad one
local function normalize_prefix(p)
  if type(p) ~= "string" or sub(p, 1, 1) ~= "/" then bad("a mount prefix must start with /, got " .. tostring(p)) end
  if find(p, "[%s%%?#\\%z]") or find(p, "//", 1, true) or find(p, "/%.%.?/") or find(p, "/%.%.?$") then
    bad("bad mount prefix " .. format("%q", p))
  end
  if p ~= "/" and sub(p, -1) == "/" then p = sub(p, 1, -2) end
  if p == "/" then return "" end
  if p == "/__async" or sub(p, 1, 9) == "/__async/" then bad("a mount prefix cannot be under /__async") end
  return p
end

local function check_limits(l)
  local out = {}
  for k, v in pairs(DEFAULT_LIMITS) do out[k] = v end
  if l == nil then return out end
  if type(l) ~= "table" then bad("limits must be a table") end
  for k, v in pairs(l) do
    if DEFAULT_LIMITS[k] == nil then bad("unknown limit " .. tostring(k)) end
    if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then bad("limits." .. k .. " must be a positive integer") end
    out[k] = v
  end
  return out
end

-- the compressor: opts.gzip (false: none), else async.server.gzip when
-- this tree has it (the HTTP layer provides it), else none
local function gzip_of(g)
  if g == false then return nil end
  if g ~= nil then
    if type(g) ~= "table" or type(g.compress) ~= "function" then bad("gzip must be { compress = fn } or false") end
    return g
  end
  local name = "async.server.gzip"   -- optional: not in every tree, so not a literal require
  local ok, m = pcall(require, name)
  if ok and type(m) == "table" and type(m.compress) == "function" then return m end
  return nil
end

-- The `cache` option: nil, or what to give App:server_cache: { backend = b }
-- (an async.app.cache backend object) or { max_entries = n } (the default
-- in-memory LRU's bound). Browser caches are per runtime: no option.
local function check_cache(c)
  if c == nil then return nil end
  if type(c) ~= "table" then bad("cache must be { server = backend } or { server = { max_entries = n } }") end
  for k in pairs(c) do
    if k ~= "server" then
      bad("cache: unknown key " .. tostring(k) .. " (only server: the browser cache belongs to each page)")
    end
  end
  local sv = c.server
  if sv == nil then return nil end
  if type(sv) ~= "table" then
    bad("cache.server must be a backend (get, set, delete, clear, keys) or { max_entries = n }")
  end
  if sv.get ~= nil or sv.set ~= nil then
    local ok, err = pcall(cache_mod.check_backend, sv, "cache.server")
    if not ok then bad(errors.message(err)) end
    return { backend = sv }
  end
  for k, v in pairs(sv) do
    if k ~= "max_entries" then bad("cache.server: unknown key " .. tostring(k)) end
    if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then bad("cache.server.max_entries must be a positive integer") end
  end
  return { max_entries = sv.max_entries }
end

local function stderr_log(entry)
  local line = format('%s "%s %s" %d %d %dms %s', tostring(entry.remote or "-"), entry.method, entry.path,
    entry.status, entry.bytes, entry.ms, entry.kind)
  if entry.id then line = line .. " " .. entry.id end
  local out = { line }
  for _, w in ipairs(entry.warnings or {}) do out[#out + 1] = "  warning: " .. w end
  if entry.error then out[#out + 1] = "  error: " .. entry.error end
  if entry.traceback then out[#out + 1] = "  " .. entry.traceback:gsub("\n", "\n  ") end
  io.stderr:write(concat(out, "\n"), "\n")
end

-- ===== mounts =====

-- What a mount may give beside its app (docs/endpoints.md "Mounts").
local MOUNT_KEYS = { app = true, public = true, root = true, layout = true, runtime = true, title = true,
                     head = true, cache = true }
_M.MOUNT_KEYS = MOUNT_KEYS

-- The options of one mount: an app, or a table { app = a, public =, root =,
-- layout =, runtime =, title =, head =, cache = } (Async.mount makes one).
local function mount_options(entry, prefix)
  local where = "the app for " .. tostring(prefix)
  if app_of(entry) then return { app = app_of(entry) } end
  if type(entry) ~= "table" or entry.app == nil then bad(where .. " must be made by Async.define_app()") end
  for k in pairs(entry) do
    if not MOUNT_KEYS[k] then
      bad(where .. ": unknown mount option " .. tostring(k) ..
        " (app, public, root, layout, runtime, title, head, cache)")
    end
  end
  local a = app_of(entry.app)
  if a == nil then bad(where .. " must be made by Async.define_app()") end
  if entry.layout ~= nil and type(entry.layout) ~= "function" then bad(where .. ": layout must be a function(page)") end
  if entry.runtime ~= nil and type(entry.runtime) ~= "table" then
    bad(where .. ": runtime must be a table of create_app options")
  end
  if entry.root ~= nil and type(entry.root) ~= "string" then bad(where .. ": root must be a directory path") end
  if entry.title ~= nil and type(entry.title) ~= "string" then bad(where .. ": title must be a string") end
  if entry.head ~= nil and type(entry.head) ~= "string" and type(entry.head) ~= "function" then
    bad(where .. ": head must be a string or a function(page)")
  end
  local o = {}
  for k, v in pairs(entry) do o[k] = v end
  o.app = a
  return o
end

local Mount = {}
Mount.__index = Mount

-- A layout that always loads the client: the app's layout (or the default
-- one) gets page.client (the client's URL under the prefix), page.prefix
-- and page.stream (the page streams); a document that does not reference
-- page.client gets its <script> before </head> (or first), `async` on a
-- streamed page, `defer` otherwise (ssr.document.client_tag).
local function layout_for(user, prefix)
  local base = user or ssr.default_layout
  return function(page_t)
    page_t.prefix = prefix
    local doc = tostring(base(page_t))
    if user and not find(doc, page_t.client, 1, true) then
      local tag = document.client_tag(page_t)
      local i = find(lower(doc), "</head>", 1, true)
      doc = i and (sub(doc, 1, i - 1) .. tag .. sub(doc, i)) or (tag .. doc)
    end
    return doc
  end
end

-- the request runtime's on_error and log hooks: they report to the
-- request's context (Ctx)
local ReportTo = { __call = function(self, err, trace, what) self.ctx:report(err, trace, what) end }
local WarnTo = { __call = function(self, msg) self.ctx:warn(msg, true) end }

--- A request runtime for ctx, its request table under the mount: `path`
-- relative to the prefix, `prefix`, `url` (what the router sees), the
-- transport's fields, `cookies`, and `abort` (the token its runs honour).
function Mount:runtime(ctx, abort)
  local req = ctx.req
  local view = {
    method = req.method, target = req.target, path = ctx.rel, query = req.query, url = ctx.url,
    version = req.version, headers = req.headers, body = req.body, remote = req.remote, abort = abort,
    prefix = self.prefix, full_path = req.path, cookies = request.cookies(req),
  }
  local o = {}
  for k, v in pairs(self.runtime_opts) do o[k] = v end
  o.env, o.request, o.layout, o.client_url = self.env, view, self.layout, self.client_url
  -- callable tables, not closures: a closure made per request keeps the
  -- trace around it from compiling (docs/performance.md)
  o.on_error = setmetatable({ ctx = ctx }, ReportTo)
  o.log = setmetatable({ ctx = ctx }, WarnTo)
  ctx.runtimes = ctx.runtimes + 1
  return runtime.create_app(self.app, o)
end

--- Destroys a request runtime (a failure to destroy is logged, never raised).
function Mount:destroy(rt, ctx)   -- luacheck: ignore 212/self
  local ok, err = pcall(rt.destroy, rt)
  ctx.runtimes = ctx.runtimes - 1
  if not ok then ctx:warn("destroying the request runtime failed: " .. tostring(err)) end
end

-- ===== request context =====

local Ctx = {}
Ctx.__index = Ctx

-- a warning for the log of this request: development only, unless `always`
-- (the renderer's own log lines, which are its only report in production)
function Ctx:warn(msg, always)
  if self.env ~= "development" and not always then return end
  local w = self.entry.warnings
  if w == nil then w = {}; self.entry.warnings = w end
  w[#w + 1] = msg
end

-- an error the runtime reported (a server function or handler raised)
function Ctx:report(err, trace, what)
  local list = self.reports
  if list == nil then list = {}; self.reports = list end
  list[#list + 1] = { err = err, trace = trace, what = what }
end

-- the last report of `what`, or nil
function Ctx:reported(what)
  local list = self.reports or {}
  for i = #list, 1, -1 do
    if list[i].what == what then return list[i] end
  end
  return nil
end

-- the request failed with { err =, trace = }: the log gets both
function Ctx:fail(f)
  self.failed = f
  self.entry.error = page.message_of(f)
  self.entry.traceback = f.trace
end

-- ===== routing =====

local Server = {}
Server.__index = Server

local function is_async_path(rel)
  return rel == "/__async" or sub(rel, 1, 9) == "/__async/"
end

-- the mount for a raw path, and the path relative to it
function Server:mount_of(path)
  for _, m in ipairs(self.mounts) do
    local p = m.prefix
    if p == "" then return m, path end
    if path == p then return m, "/" end
    if sub(path, 1, #p + 1) == p .. "/" then return m, sub(path, #p + 1) end
  end
  return nil
end

-- the /__async/ endpoints of a mount
function Server:endpoint(m, ctx)
  local rel, req = ctx.rel, ctx.req
  if rel == CLIENT_PATH then
    ctx.entry.kind = "client"
    if req.method ~= "GET" and req.method ~= "HEAD" then return response.text(405, { { "Allow", "GET, HEAD" } }) end
    return static.answer(req, self.client, self.gzip)
  end
  local kind, raw = rel:match("^/__async/(%a+)/(.*)$")
  if kind == "server" or kind == "handler" then return rpc.serve(m, ctx, kind, raw) end
  ctx.entry.kind = "error"
  return response.error_envelope(404, "not-found", "no endpoint " .. rel)
end

function Server:route(ctx)
  local req = ctx.req
  if request.header_bytes(req) > self.limits.headers then return response.text(431) end
  local m, rel = self:mount_of(req.path)
  if m == nil then
    ctx.entry.kind = "error"
    return response.error_document(404, nil, self.csp)
  end
  ctx.mount, ctx.rel = m, rel
  ctx.url = (req.query ~= nil and req.query ~= "") and (rel .. "?" .. req.query) or rel
  ctx.entry.app = m.prefix == "" and "/" or m.prefix
  if #(req.body or "") > self.limits.body then
    if is_async_path(rel) then
      return response.error_envelope(413, "body-too-large", "the body is larger than " .. self.limits.body .. " bytes")
    end
    return response.text(413)
  end
  if is_async_path(rel) then return self:endpoint(m, ctx) end
  if req.method ~= "GET" and req.method ~= "HEAD" then
    ctx.entry.kind = "error"
    return response.text(405, { { "Allow", "GET, HEAD" } })
  end
  local segs, why = request.segments(req.path)
  if not segs then
    ctx.entry.kind = "error"
    ctx.entry.error = why
    return response.text(400)
  end
  -- a file of the mount's own public/ (at its path under the prefix), else
  -- of the server's (at the full path)
  local public = m.public or self.public
  if public then
    if m.public and m.prefix ~= "" then segs = request.segments(rel) end
    local res = segs and public:serve(req, segs, self.gzip)
    if res then
      ctx.entry.kind = "static"
      return res
    end
  end
  if request.wants_partial(req) then
    ctx.entry.kind = "partial"
    return page.partial(m, ctx)
  end
  ctx.entry.kind = "page"
  return page.document(m, ctx)
end

-- writes the access-log entry once
local function finish(self, ctx)
  if ctx.logged then return end
  ctx.logged = true
  local e = ctx.entry
  e.ms = loop.now() - ctx.t0
  if ctx.reports and not ctx.failed then
    for _, r in ipairs(ctx.reports) do ctx:warn(r.what .. " raised (handled): " .. page.message_of(r)) end
  end
  if self.log then
    local ok, err = pcall(self.log, e)
    if not ok then io.stderr:write("async.server.core: log failed: ", tostring(err), "\n") end
  elseif (e.error and e.status >= 500) or e.warnings then
    stderr_log(e)   -- without an access log, errors and warnings still reach stderr
  end
end

-- the answer when the core itself failed
local function internal_error(self, ctx, f)
  ctx:fail(f)
  if is_async_path(ctx.rel or "") then
    local e = response.error_value("internal-error", "Internal server error")
    if self.env == "development" then
      e.message, e.stack = page.message_of(f), f.trace
    end
    return response.envelope(500, { [response.RESULT] = 1, error = e })
  end
  local detail = self.env == "development" and f.trace or nil
  return response.error_document(500, detail, self.csp)
end

--- Answers one request (see the module comment). Runs inside a coroutine.
function Server:handle(req)
  local co, main = co_running()
  if co == nil or main then
    errors.raise("not-in-coroutine", "handle(req) must run inside a coroutine (one per request)")
  end
  if type(req) ~= "table" or type(req.headers) ~= "table" or type(req.path) ~= "string"
     or type(req.method) ~= "string" then
    errors.argument("handle(req): req must have method, path and headers (the transport contract)")
  end
  local ctx = setmetatable({
    req = req, env = self.env, runtimes = 0, t0 = loop.now(),
    entry = { method = req.method, path = req.path, remote = req.remote, status = 0, bytes = 0, ms = 0,
              kind = "page" },
  }, Ctx)
  local ok, res = xpcall(self.route, page.failure, self, ctx)
  if not ok then res = internal_error(self, ctx, res) end
  local e = ctx.entry
  e.status = res.status
  if res.stream and req.method ~= "HEAD" then
    local inner = res.stream
    res.stream = function(write)
      local function counted(chunk)
        local r, err = write(chunk)
        if r and chunk then e.bytes = e.bytes + #chunk end
        return r, err
      end
      local oks, err = pcall(inner, counted)
      finish(self, ctx)
      if not oks then error(err, 0) end
    end
  else
    e.bytes = res.body and #res.body or 0
    finish(self, ctx)
  end
  return res
end

--- For a transport's `error_response(e)` hook (docs/http.md): the answer
-- to a request the transport refused (`e = { status =, code =, path = }`)
-- or whose handler raised, as an error envelope when the path is a POST
-- endpoint's (`.../__async/server/...`, `.../__async/handler/...`), so the
-- browser client gets JSON it can read; nil (the transport's default)
-- otherwise.
function _M.error_response(e)
  if type(e) ~= "table" or type(e.path) ~= "string" then return nil end
  if not find(e.path, "/__async/server/", 1, true) and not find(e.path, "/__async/handler/", 1, true) then
    return nil
  end
  local status = type(e.status) == "number" and e.status or 500
  local code = type(e.code) == "string" and e.code:gsub("_", "-") or "error"
  if status >= 500 then code = "internal-error" end
  return response.error_envelope(status, code, response.REASONS[status] or "Error")
end

--- The handler for `opts` (docs/endpoints.md, "Options").
function _M.new(opts)
  if type(opts) ~= "table" then bad("expects an options table") end
  local known = { app = 1, apps = 1, public = 1, root = 1, env = 1, layout = 1, csp = 1, limits = 1, log = 1,
                  client_js = 1, gzip = 1, stream = 1, stream_timeout = 1, timeout = 1, origins = 1,
                  trust_proxy = 1, runtime = 1, cache = 1 }
  for k in pairs(opts) do
    if not known[k] then bad("unknown option " .. tostring(k)) end
  end
  local env = opts.env or os_getenv("ASYNC_ENV") or "development"
  if env ~= "development" and env ~= "production" then bad('env must be "development" or "production"') end
  if opts.layout ~= nil and type(opts.layout) ~= "function" then bad("layout must be a function(page)") end
  local csp = opts.csp
  if csp == nil or csp == true then csp = DEFAULT_CSP
  elseif csp == false then csp = nil
  elseif type(csp) ~= "string" or find(csp, "[%c]") then bad("csp must be true, false or a header value") end
  local log = opts.log
  if log == true then log = stderr_log
  elseif log == false then log = nil
  elseif log ~= nil and type(log) ~= "function" then bad("log must be true, false or a function(entry)") end
  if opts.runtime ~= nil and type(opts.runtime) ~= "table" then bad("runtime must be a table of create_app options") end
  if opts.origins ~= nil and type(opts.origins) ~= "table" then bad("origins must be a list of origins") end
  for _, k in ipairs({ "stream_timeout", "timeout" }) do
    if opts[k] ~= nil and (type(opts[k]) ~= "number" or opts[k] < 0) then bad(k .. " must be milliseconds") end
  end
  -- mounts, longest prefix first
  local list = {}
  if opts.app ~= nil and opts.apps ~= nil then bad("give app or apps, not both") end
  if opts.app ~= nil then
    list[1] = { prefix = "/", entry = opts.app }
  elseif type(opts.apps) == "table" then
    for p, a in pairs(opts.apps) do list[#list + 1] = { prefix = p, entry = a } end
  else
    bad("app (or apps = { [prefix] = app }) is required")
  end
  local self = setmetatable({ env = env, csp = csp, log = log, limits = check_limits(opts.limits), mounts = {},
                              gzip = gzip_of(opts.gzip) }, Server)
  local seen = {}
  local server_cache = check_cache(opts.cache)
  for _, e in ipairs(list) do
    local mo = mount_options(e.entry, e.prefix)
    local prefix = normalize_prefix(e.prefix)
    if seen[prefix] then bad("two apps mounted at " .. (prefix == "" and "/" or prefix)) end
    seen[prefix] = true
    -- the runtime options: the server's, then the mount's over them (key by
    -- key), then the mount's title and head
    local ro = {}
    for k, v in pairs(opts.runtime or {}) do ro[k] = v end
    for k, v in pairs(mo.runtime or {}) do ro[k] = v end
    if mo.title ~= nil then ro.title = mo.title end
    if mo.head ~= nil then ro.head = mo.head end
    local m = setmetatable({
      app = mo.app, prefix = prefix, env = env, csp = csp, limits = self.limits,
      client_url = prefix .. CLIENT_PATH, layout = layout_for(mo.layout or opts.layout, prefix),
      stream = opts.stream ~= false, stream_timeout = opts.stream_timeout, timeout = opts.timeout,
      origin = { origins = opts.origins, trust_proxy = opts.trust_proxy == true },
      runtime_opts = ro, cache = check_cache(mo.cache),
    }, Mount)
    -- a public folder of the mount's own: its files at the paths under the prefix
    if mo.public ~= nil then
      local ok, st = pcall(static.new, mo.public, mo.root or opts.root)
      if not ok then
        bad("the mount " .. (prefix == "" and "/" or prefix) .. ": " .. (tostring(st):gsub("^[^:]*:%d+: ", "")))
      end
      m.public = st
    end
    self.mounts[#self.mounts + 1] = m
  end
  sort(self.mounts, function(x, y) return #x.prefix > #y.prefix end)
  -- the server cache of each mounted app (App:server_cache: one per app,
  -- shared by its request runtimes): the mount's cache option, else the
  -- server's; a backend of the server's shared by several mounts sees each
  -- app's keys under its own prefix ("/shop#key")
  for _, m in ipairs(self.mounts) do
    local o = m.cache or server_cache
    if o and o.backend and not m.cache and #self.mounts > 1 then
      o = { backend = cache_mod.namespaced(o.backend, (m.prefix == "" and "/" or m.prefix) .. "#") }
    end
    if o then m.app:server_cache(o) end
  end
  if opts.public ~= nil then
    local ok, st = pcall(static.new, opts.public, opts.root)
    if not ok then bad(tostring(st):gsub("^[^:]*:%d+: ", "")) end
    self.public = st
  end
  local client_path = opts.client_js or static.default_client_path()
  if client_path == nil then bad("cannot find the browser client (client/async.js); give client_js") end
  local client, err = static.client_entity(client_path)
  if client == nil then bad("client_js: " .. tostring(err)) end
  self.client = client
  local handle = function(req) return self:handle(req) end
  return handle, self
end

return _M
