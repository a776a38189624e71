--- App runtimes (lua-api.md, "App hub and registries", "Lifecycle"): one
-- instance of a hub with its own state: its own signals (a declared signal
-- is copied, its value deep-copied, so two runtimes never share a table),
-- its own caches, scheduler and component scopes. Declarations made with
-- `use` after a runtime exists reach that runtime too.
--
-- `rt:call` and `rt:dispatch` run a server function or a handler in-process
-- and answer the envelope the HTTP endpoints send (protocol.md), never a Lua
-- error. `rt:render*` delegate to the ssr layer the hub was given.
local kernel = require("async.kernel.graph")
local signals_mod = require("async.app.registry")
local cache_mod = require("async.app.cache")
local abort_mod = require("async.kernel.abort")
local async_signal = require("async.kernel.task")
local errors = require("async.kernel.errors")
local json_null = require("async.app.json").null

local type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall, xpcall, unpack, select, next =
  type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall, xpcall, unpack, select, next
local rawget = rawget
local sub, gmatch = string.sub, string.gmatch
local apply_client_signals  -- below
local co_running = coroutine.running
local traceback = debug.traceback
local os_getenv = os.getenv

local hub = require("async.app.hub")
local has_tnew, tnew = pcall(require, "table.new")
if not has_tnew then tnew = function() return {} end end

local _M = {}

local RESULT = hub.RESULT
local App = hub.App
local async_error = hub.error
local normalize_error = hub.normalize_error
local sorted_keys, deep_copy, inspector = hub.sorted_keys, hub.deep_copy, hub.inspector
local validate, check_kind = hub.validate, hub.check_kind
local is_envelope = hub.is_envelope

-- ===== runtimes =====

local Runtime = {}
Runtime.__index = Runtime
_M.Runtime = Runtime

-- A hub declaration becomes this runtime's own signal.
local function instantiate_signal(rt, id, decl)
  local sigs = rt.signals
  if sigs:has(id) then return end
  if kernel.is_signal(decl) then
    sigs:register(id, kernel.signal(deep_copy(decl:peek())))
  elseif kernel.is_computed(decl) then
    -- the registry wraps fn in the runtime's own closure (run with the registry)
    sigs:computed(id, kernel._internal.computed_fn(decl))
  elseif async_signal.is_async(decl) then
    sigs:async_signal(id, decl.fn, decl.opts_decl)
  elseif type(decl) == "table" and decl.__async_decl then
    sigs:async_signal(id, decl.fn, decl.opts)
  else
    sigs:register(id, kernel.signal(deep_copy(decl)))
  end
end

local function resolve_app(app)
  if type(app) == "table" and getmetatable(app) ~= App and type(app.hub) == "table" and
     getmetatable(app.hub) == App then
    return app.hub   -- require("async") itself: its default hub
  end
  return app
end

-- the browser cache's default clock: one function for every runtime (a
-- closure made per runtime kept create_app from being compiled)
local function loop_now() return require("async.loop").now() end

-- Sizes of the tables a runtime fills per request, as its app's last
-- rendered runtime left them (Runtime:note_sizes): a runtime's tables are
-- made that big, so a page that registers 40 component instances does not
-- grow (rehash) each table six times on every request. Bounded: a page much
-- bigger than the usual one does not make every later runtime big.
local SIZES_MAX = 256
_M.SIZES_MAX = SIZES_MAX
local NO_SIZES = { scopes = 0, counters = 0, handlers = 0, signals = 0 }

local function count(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

--- Creates a runtime of `app`. opts: target ("server" | "browser"),
-- scheduler, request, env ("development" | "production"), now (the
-- browser cache's clock), on_error(err, trace, what) (the error hook), log(msg)
-- (the log hook), browser_cache_entries, server_cache (a cache to use
-- instead of the app's shared one, app:server_cache()),
-- server_cache_backend (the backend of the app's shared server cache,
-- app/cache.lua "Backends": a lua_shared_dict under nginx; the app's cache
-- is remade over it once, then shared as usual).
function _M.create_app(app, opts)
  app = resolve_app(app)
  if type(app) ~= "table" or getmetatable(app) ~= App then
    errors.argument("create_app expects an app from Async.define_app(), got " .. type(app))
  end
  if opts ~= nil and type(opts) ~= "table" then errors.argument(
    "create_app options must be a table, got " .. type(opts)) end
  opts = opts or {}
  local env = opts.env or os_getenv("ASYNC_ENV") or "development"
  if env ~= "development" and env ~= "production" then
    errors.argument('create_app: env must be "development" or "production", got ' .. tostring(env))
  end
  local target = opts.target or "server"
  if target ~= "server" and target ~= "browser" then
    errors.argument('create_app: target must be "server" or "browser", got ' .. tostring(target))
  end
  if opts.scheduler ~= nil and (type(opts.scheduler) ~= "table" or type(opts.scheduler.enqueue) ~= "function") then
    errors.argument("create_app: scheduler must be made by Async.create_scheduler, got " .. type(opts.scheduler))
  end
  local own_scheduler = opts.scheduler == nil
  local sched = opts.scheduler or kernel.create_scheduler({ strategy = target == "server" and "manual" or "sync" })
  local now = opts.now or loop_now
  -- what belongs to the app is shared, not copied: the maps read through to
  -- the app's declarations, the compiled router is the app's
  local sizes = app.sizes or NO_SIZES
  local rt = setmetatable({
    app = app, target = target, env = env, request = opts.request, scheduler = sched,
    handlers = setmetatable(tnew(0, sizes.handlers), app:inherit("handler")),
    server_fns = setmetatable({}, app:inherit("server")),
    partials = setmetatable({}, app:inherit("partial")), components = setmetatable({}, app:inherit("component")),
    component_names = setmetatable({}, app:inherit("component_names")),
    routes = setmetatable({}, app:inherit("route")),
    router = app:compiled_router(), own_router = false, on_error = opts.on_error,
    opts = opts, component_counters = tnew(0, sizes.counters), scopes = tnew(0, sizes.scopes),
    own_scheduler = own_scheduler, sizes = sizes,
  }, Runtime)
  -- the browser cache is the runtime's own (it goes to one page's
  -- snapshot); the server cache is the app's, shared by all its runtimes
  -- (App:server_cache), unless opts.server_cache gives one
  rt.cache = {
    browser = cache_mod.new({ now = now, max_entries = opts.browser_cache_entries,
                              base = app.decl["cache.browser"] }),
    server = opts.server_cache or
      app:server_cache(opts.server_cache_backend and { backend = opts.server_cache_backend } or nil),
  }
  -- fired by destroy: releases what the runtime's partials and handlers
  -- hold across a wait (a single-flight fill of their caches)
  rt.abort = abort_mod.new()
  rt.server = rt:server_proxy(nil)
  -- the kernel root owns the runtime's effects and subscriptions (and keeps
  -- their functions alive only as long as the runtime lives; a computed's
  -- handle holds its own getter)
  rt.root = kernel.root()
  rt.signals = signals_mod.new({ scheduler = sched, root = rt.root, size = sizes.signals,
                                 context = { server = rt.server, cache = rt.cache.browser } })
  rt.registry = inspector(rt)
  rt.signals.registry = rt.registry
  rt:adopt({ signal = app.decl.signal })
  app.runtimes[rt] = true
  return rt
end

--- Records the sizes of this runtime's tables as its app's table sizes
-- (see SIZES_MAX): the renderer calls it when a page is rendered.
function Runtime:note_sizes()
  local app = self.app
  local sizes = rawget(app, "sizes")
  if sizes == nil then
    sizes = { scopes = 0, counters = 0, handlers = 0, signals = 0 }
    app.sizes = sizes
  end
  local n = count(self.scopes)
  sizes.scopes = n < SIZES_MAX and n or SIZES_MAX
  n = count(self.component_counters)
  sizes.counters = n < SIZES_MAX and n or SIZES_MAX
  n = count(self.handlers)   -- its own entries: the components' handlers
  sizes.handlers = n < SIZES_MAX and n or SIZES_MAX
  n = #self.signals.order
  sizes.signals = n < SIZES_MAX and n or SIZES_MAX
end

--- The seed's `createApp(app).start()`: returns the runtime.
function Runtime:start() return self end

-- Takes in hub declarations the app just made ({ kind = map }, already
-- checked). Functions, descriptors and cache policies are read through to
-- the app's maps, so only signals need instantiating (all in one batch, so
-- async first runs start after every signal exists), and new routes need
-- the app's rebuilt router (or, for a runtime with routes of its own, its
-- own copy updated).
local function instantiate_all(rt, decls, ids)
  for i = 1, #ids do
    local id = ids[i]
    instantiate_signal(rt, id, decls[id])
  end
end

-- the sorted ids of a declaration map, kept per map while its size holds
-- (declarations are only added): no sort per runtime
local sorted_ids = setmetatable({}, { __mode = "k" })
local function ids_of(decls)
  local c = sorted_ids[decls]
  local n = 0
  for _ in pairs(decls) do n = n + 1 end
  if c and c.n == n then return c.ids end
  local ids = sorted_keys(decls)
  sorted_ids[decls] = { n = n, ids = ids }
  return ids
end

function Runtime:adopt(all)
  if all.signal then
    kernel.batch(instantiate_all, self, all.signal, ids_of(all.signal))
  end
  if all.route then
    if self.own_router then
      for pattern, r in pairs(all.route) do
        if rawget(self.routes, pattern) == nil then self.router:add(pattern, r) end
      end
    else
      self.router = self.app:compiled_router()
    end
  end
end

-- Runtime-only declarations: kept in the runtime's own maps, over the app's.
local function use_own(rt, all)
  for id, fn in pairs(all.handler or {}) do rt.handlers[id] = fn end
  for id, fn in pairs(all.server or {}) do rt.server_fns[id] = fn end
  for id, fn in pairs(all.partial or {}) do rt.partials[id] = fn end
  if all.route then
    if not rt.own_router then
      rt.router = rt.router:clone()
      rt.own_router = true
    end
    for pattern, r in pairs(all.route) do
      rt.routes[pattern] = r
      rt.router:add(pattern, r)
    end
  end
  for name, c in pairs(all.component or {}) do
    rt.components[name] = c
    if rt.component_names[c] == nil then rt.component_names[c] = name end
  end
  for side, policies in pairs(all.cache or {}) do
    -- the server cache is shared with the app's other runtimes: policies
    -- of this runtime's own go on a view of it (same entries and fills)
    if side == "server" and not rt.own_server_policies then
      rt.cache.server = rt.cache.server:view()
      rt.own_server_policies = true
    end
    for id, p in pairs(policies) do rt.cache[side]:register(id, p) end
  end
end

--- Registers runtime-only declarations: rt:use(kind, map) or rt:use({ kind =
-- map }). Unlike a hub, a runtime registers a signal or computed object as
-- given; async signals and plain values are instantiated in its registry.
function Runtime:use(kind, map)
  local all
  if type(kind) == "table" and map == nil then all = kind else all = { [kind] = map } end
  for k, m in pairs(all) do
    check_kind(k, 2)
    validate(k, m, 2)
  end
  if all.signal then
    local ids = sorted_keys(all.signal)
    local sigs = self.signals
    kernel.batch(function()
      for _, id in ipairs(ids) do
        local v = all.signal[id]
        if kernel.is_signal(v) or kernel.is_computed(v) then sigs:register(id, v)
        else instantiate_signal(self, id, v) end
      end
    end)
  end
  use_own(self, all)
  return self
end

-- the keys of a runtime map and of the app map under it, sorted
local function all_keys(t)
  local out, seen = {}, {}
  for k in pairs(t) do out[#out + 1] = k; seen[k] = true end
  local mt = getmetatable(t)
  for k in pairs(mt and mt.__index or {}) do if not seen[k] then out[#out + 1] = k end end
  table.sort(out)
  return out
end

function Runtime:inspect_keys(kind)
  if kind == "signal" then return self.signals:keys() end
  if kind == "handler" then return all_keys(self.handlers) end
  if kind == "server" then return all_keys(self.server_fns) end
  if kind == "partial" then return all_keys(self.partials) end
  if kind == "route" then return all_keys(self.routes) end
  if kind == "component" then return all_keys(self.components) end
  if kind == "cache.browser" then return self.cache.browser:policies() end
  if kind == "cache.server" then return self.cache.server:policies() end
  if kind == "cache.browser.entries" then return sorted_keys(self.cache.browser:snapshot()) end
  if kind == "cache.server.entries" then
    if self.target ~= "server" then return {} end   -- never exposed to a browser view
    return sorted_keys(self.cache.server:snapshot())
  end
  return {}
end

function Runtime:inspect_get(kind, id)
  if kind == "signal" then return self.signals.map[id] end
  if kind == "handler" then return self.handlers[id] end
  if kind == "server" then
    if self.server_fns[id] == nil then return nil end
    if self.target == "server" then return self.server_fns[id] end
    return { id = id, kind = "server" }
  end
  if kind == "partial" then return self.partials[id] end
  if kind == "route" then return self.routes[id] end
  if kind == "component" then return self.components[id] end
  if kind == "cache.browser" then return self.cache.browser:policy(id) end
  if kind == "cache.server" then return self.cache.server:policy(id) end
  if kind == "cache.browser.entries" then return self.cache.browser:snapshot()[id] end
  if kind == "cache.server.entries" then
    if self.target ~= "server" then return nil end
    return self.cache.server:snapshot()[id]
  end
  return nil
end

function Runtime:inspect_snapshot_signal(id)
  local sig = self.signals.map[id]
  if async_signal.is_async(sig) then return sig:snapshot() end
  return sig:peek()
end

-- ===== error envelopes =====

-- Is `e` an error the app raised on purpose (a table with a string code)?
-- A misuse of the library's API (code invalid-argument) is an internal error:
-- its message says nothing a client should read.
local function is_public(e)
  return type(e) == "table" and type(e.code) == "string" and not errors.internal(e)
end

-- The envelope for a raised value. Development: its message (and `stack`
-- when there is a traceback); production: errors raised on purpose keep
-- their code and message, any other error becomes "Internal server error".
local function error_envelope(err, env, code, trace)
  local e
  if is_public(err) then
    e = normalize_error(err)
    if type(err.hint) == "string" and env == "development" then e.hint = err.hint end
  elseif env == "production" then
    e = { name = "Error", message = "Internal server error", code = code }
  else
    e = normalize_error(err)
    e.code = code
    if trace then e.stack = trace end
  end
  return { [RESULT] = 1, error = e }
end
_M.error_envelope = error_envelope

local function on_fail(e)
  if type(e) == "table" then return { err = e } end
  return { err = e, trace = traceback(tostring(e), 2) }
end

local function report(rt, err, trace, what)
  if rt.on_error then pcall(rt.on_error, err, trace, what) end
end

-- ===== server functions =====

local function unwrap(env)
  if env.error then error(errors.locate(errors.from(env.error)), 0) end
  return env.value
end

-- A call made through rt.server (a handler's, a partial's or an async
-- signal's) applies its envelope's signals and browser cache to the
-- runtime, as the seed's server proxy does.
local function apply_effects(rt, env)
  if env.error then return end
  if type(env.signals) == "table" and next(env.signals) ~= nil then
    local sigs = rt.signals
    kernel.batch(function()
      for _, path in ipairs(sorted_keys(env.signals)) do
        if sigs:resolve(path) then sigs:set(path, env.signals[path]) else sigs:ensure(path, env.signals[path]) end
      end
    end)
  end
  local c = env.cache
  if type(c) == "table" and type(c.browser) == "table" then
    for k, v in pairs(c.browser) do rt.cache.browser:set(k, v) end
  end
end

local function pack(...) return { n = select("#", ...), ... } end

--- self.server: `self.server.math.one(x)` and `self.server:call("math.one",
-- x)` return the unwrapped value and raise the error of an error envelope.
-- `parent` (nil for rt.server) is the calling server function's context: a
-- nested call shares its abort token, request and signals, and hands the
-- signals of its envelope to the outer one.
-- A proxy node is { rt, path or false, parent or false } with one shared
-- metatable (no closures per runtime): string keys reach __index, the
-- array slots are never looked up through it.
local ProxyNode = {}

local function proxy_call(node, id, ...)
  local rt, parent = node[1], node[3] or nil
  local env = rt:call(id, pack(...), { parent = parent })
  if parent == nil then apply_effects(rt, env) end
  return unwrap(env)
end

local function proxy_call_method(proxy, id, ...)
  if type(proxy) ~= "table" or getmetatable(proxy) ~= ProxyNode then
    errors.argument('use self.server:call("id", ...) with a colon')
  end
  return proxy_call(proxy, id, ...)
end

ProxyNode.__index = function(node, k)
  if type(k) ~= "string" then return nil end
  local path = node[2]
  if k == "call" and not path then return proxy_call_method end
  return setmetatable({ node[1], path and (path .. "." .. k) or k, node[3] }, ProxyNode)
end
ProxyNode.__call = function(node, ...)
  local path = node[2]
  if not path then errors.argument("self.server is not callable; call self.server.<id>(...)") end
  return proxy_call(node, path, ...)
end

function Runtime:server_proxy(parent)
  local proxy = setmetatable({ self, false, parent or false }, ProxyNode)
  return proxy   -- not a tail call (a trace cannot return through it at its root)
end

local function not_registered_server(id)
  return { [RESULT] = 1, error = async_error("server-function-not-registered",
    'Server function "' .. tostring(id) .. '" is not registered.', "Register via Async.use({ server })") }
end

-- the read-only signals a call sees: the paths the call sent, else the runtime's
local function call_signals(rt, sent)
  if sent == nil then return rt.signals:readonly_view() end
  local view = signals_mod.new({ scheduler = rt.scheduler })
  for _, path in ipairs(sorted_keys(sent)) do
    if type(path) == "string" and path ~= "" then view:register(path, kernel.signal(sent[path])) end
  end
  return view:readonly_view()
end

local ServerCtx = {}
ServerCtx.__index = ServerCtx

--- Runs server function `id` in-process with `args` (an array; `args.n`
-- counts trailing nils) and opts { input=, signals=, request=, headers=,
-- cookies=, abort= }. Always returns an envelope table: a plain result v is
-- `{ __async_server_result__ = 1, value = v }`; an unknown id or a raised
-- error is an error envelope. Yields when the function yields (call it
-- from a coroutine then).
function Runtime:call(id, args, opts)
  opts = opts or {}
  local fn = type(id) == "string" and self.server_fns[id] or nil
  if fn == nil then return not_registered_server(id) end
  if args ~= nil and type(args) ~= "table" then
    return { [RESULT] = 1, error = async_error("invalid-arguments",
      'Server function "' .. id .. '": args must be an array, got ' .. type(args)) }
  end
  args = args or {}
  local parent = opts.parent
  local request = opts.request or (parent and parent.request) or self.request
  local ctx = setmetatable({
    id = id, args = args, input = opts.input,
    signals = parent and opts.signals == nil and parent.signals or call_signals(self, opts.signals),
    cache = self.cache.server,
    request = request,
    headers = opts.headers or (parent and parent.headers) or (request and request.headers) or {},
    cookies = opts.cookies or (parent and parent.cookies) or (request and request.cookies) or {},
    abort = opts.abort or (parent and parent.abort),
    runtime = self, nested_signals = nil,
  }, ServerCtx)
  -- a call without a token of its own gets one that the runtime's destroy fires
  local unlink
  if ctx.abort == nil then
    local token = abort_mod.new()
    ctx.abort = token
    unlink = self.abort:on_abort(function(reason) token:cancel(reason) end)
  end
  ctx.server = self:server_proxy(ctx)
  -- a fill this call starts is released when its token fires
  local co, c = co_running(), self.cache.server
  local prev = c:enter_abort(co, ctx.abort)
  local ok, res = xpcall(fn, on_fail, ctx, unpack(args, 1, args.n or #args))
  c:leave_abort(co, prev)
  if unlink then unlink() end
  if not ok then
    report(self, res.err, res.trace, "server " .. id)
    return error_envelope(res.err, self.env, "runtime-error", res.trace)
  end
  local env
  if is_envelope(res) then
    env = res
  elseif res == nil then
    env = { [RESULT] = 1 }
  else
    env = { [RESULT] = 1, value = res }
  end
  -- signals from nested calls, under the ones this function returned
  if ctx.nested_signals and not env.error then
    local merged = {}
    for k, v in pairs(ctx.nested_signals) do merged[k] = v end
    for k, v in pairs(env.signals or {}) do merged[k] = v end
    local copy = {}
    for k, v in pairs(env) do copy[k] = v end
    copy.signals = merged
    env = copy
  end
  if parent and env.signals and not env.error then
    parent.nested_signals = parent.nested_signals or {}
    for k, v in pairs(env.signals) do parent.nested_signals[k] = v end
  end
  return env
end

-- ===== handlers =====

local HandlerCtx = {}
HandlerCtx.__index = HandlerCtx

--- Ends the command chain after this handler.
function HandlerCtx:stop() self.effects.stop = true end
--- Asks the client to navigate to `url` (the envelope's redirect).
function HandlerCtx:redirect(url) self.effects.redirect = url end
--- Asks the client to swap `html` into boundary `boundary`.
function HandlerCtx:swap(boundary, html) self.effects.boundary, self.effects.html = boundary, tostring(html) end

-- committed values of a registry's writable signals; an async signal's
-- state is its value, status and version (any of them changing is a change)
local function values(sigs)
  local out = {}
  for _, id in ipairs(sigs.order) do
    local sig = sigs.map[id]
    if async_signal.is_async(sig) then
      out[id] = { sig:peek(), sig._status, sig._version }
    elseif not kernel.is_computed(sig) then
      out[id] = sig:peek()
    end
  end
  return out
end

local function changed_since(sig, was)
  if async_signal.is_async(sig) then
    return was == nil or was[1] ~= sig:peek() or was[2] ~= sig._status or was[3] ~= sig._version
  end
  return was ~= sig:peek()
end

-- protocol.md "Lua handlers": the client's signals are untrusted input
_M.MAX_CLIENT_PATHS = 1000

-- A warning about client input, development only: the runtime's log hook
-- (opts.log(msg), which the HTTP server gives), else on_error(msg, nil,
-- "dispatch signals"), else stderr; nothing in production.
local function warn(rt, msg)
  if rt.env ~= "development" then return end
  if rt.opts.log then
    pcall(rt.opts.log, msg)
  elseif rt.on_error then
    pcall(rt.on_error, msg, nil, "dispatch signals")
  else
    io.stderr:write("asyncrt: ", msg, "\n")
  end
end

-- Why the client's `path` is not written (nil: it is), and whether that is
-- expected traffic (quiet: no warning). The client sends every signal of
-- its store whose id does not start with "_": router.* and async signals
-- (in snapshot form) come with every call and are expected; anything else
-- refused is worth a warning. Otherwise also returns id, segs, sig.
local function refused(rt, path)
  local sigs = rt.signals
  if type(path) ~= "string" then return "a path that is not a string" end
  if path == "" then return "an empty path" end
  if path == "router" or sub(path, 1, 7) == "router." then return "router state", true end
  if sub(path, 1, 1) == "_" then return "a private id (_x)" end
  local ok, id, segs = pcall(sigs.resolve, sigs, path)
  if not ok or id == nil then
    -- a component's signal (scope ids "parent.Name.N", html/component.lua):
    -- the page rendered the component, a handler's fresh runtime has not
    for name in gmatch("." .. path, "%.([^.]+)%.%d+%.") do
      if rt.components[name] ~= nil then return "a component's signal (not in this runtime)", true end
    end
    return "an id the app does not register"
  end
  if sub(id, 1, 1) == "_" then return "a private id (_x)" end
  for _, s in ipairs(segs) do
    if sub(s, 1, 1) == "$" then return "a $ meta path" end
  end
  local sig = sigs.map[id]
  if kernel.is_computed(sig) then return "a computed" end
  return nil, false, id, segs, sig
end

local SETTLED = { ready = true, error = true }

-- An async signal sent whole in snapshot form. Its state is the server's:
-- once the runtime's own signal has settled (ready or error) the client's
-- copy is ignored (quietly: the client always sends it). In a fresh
-- runtime, whose run has not settled (a request runtime of the handler
-- endpoint), a settled snapshot ({"status": "ready"|"error", "value",
-- "error", "version"}; JSON null for an absent value or error) is restored,
-- so the handler sees what the page shows; a pending one is ignored and the
-- runtime's own run goes on. Returns why (nil: restored) and quiet.
local function restore_async(sig, v)
  if type(v) ~= "table" then return "an async signal takes its snapshot form only" end
  if SETTLED[sig._status] then return "the server's own state stands", true end
  if not SETTLED[v.status] then return "an async snapshot that is not settled", true end
  local snap = { status = v.status, version = v.version }
  if v.value ~= json_null then snap.value = v.value end
  if v.error ~= json_null and v.error ~= nil then snap.error = v.error end
  local ok, e = pcall(sig.restore, sig, snap)
  if not ok then return "a bad snapshot form (" .. errors.message(e) .. ")" end
  return nil
end

-- names for a warning: the first five, and how many more
local function some(list)
  local shown = {}
  for i = 1, math.min(#list, 5) do shown[i] = '"' .. list[i] .. '"' end
  local s = table.concat(shown, ", ")
  if #list > 5 then s = s .. " and " .. (#list - 5) .. " more" end
  return s
end

--- Applies the signals a client sent with handler `name`'s call (the one
-- filter: the HTTP handler endpoint passes the body's signals through
-- here). The string paths, sorted, are considered up to MAX_CLIENT_PATHS;
-- each is written (one batch) only into a signal the app registers, never
-- "_x", router.* or a computed, never through a `$` segment, and an async
-- signal only whole (restore_async). No id is ever created. What is refused
-- is one warning line in development, router.* and async snapshots aside.
function apply_client_signals(rt, name, sent)
  local sigs = rt.signals
  local paths, bad = {}, {}
  for path in pairs(sent) do
    if type(path) == "string" then paths[#paths + 1] = path
    else bad[#bad + 1] = tostring(path) .. " (a path that is not a string)" end
  end
  table.sort(paths)
  local n, ignored, failed = math.min(#paths, _M.MAX_CLIENT_PATHS), bad, {}
  kernel.batch(function()
    for i = 1, n do
      local path = paths[i]
      local v = sent[path]
      local why, quiet, _, segs, sig = refused(rt, path)
      if why == nil and async_signal.is_async(sig) then
        if #segs > 0 then why = "a path into an async signal"
        else why, quiet = restore_async(sig, v) end
      elseif why == nil then
        local ok, e = pcall(sigs.set, sigs, path, v)
        if not ok then failed[#failed + 1] = path .. " (" .. errors.message(e) .. ")" end
      end
      if why and not quiet then ignored[#ignored + 1] = path .. " (" .. why .. ")" end
    end
  end)
  local lines = {}
  if #ignored > 0 then lines[#lines + 1] = #ignored .. " ignored: " .. some(ignored) end
  if #failed > 0 then lines[#lines + 1] = #failed .. " not applied: " .. some(failed) end
  if #paths > n then
    lines[#lines + 1] = "more than " .. _M.MAX_CLIENT_PATHS .. " signal paths; " .. (#paths - n) .. " ignored"
  end
  if #lines > 0 then warn(rt, "handler " .. name .. ": client signals " .. table.concat(lines, "; ")) end
end

--- Runs Lua handler `name` in-process as the handler endpoint does, with
-- `args` and opts { input=, signals=, event= }: the client's signals are
-- applied first, then the handler runs; the envelope's `signals` holds
-- exactly the signals whose value it changed (async signals in snapshot
-- form). A raised error or an unknown name is an error envelope.
function Runtime:dispatch(name, args, opts)
  opts = opts or {}
  local fn = type(name) == "string" and self.handlers[name] or nil
  if fn == nil then
    return { [RESULT] = 1, error = async_error("handler-not-registered",
      'Handler "' .. tostring(name) .. '" is not registered.', "Register via Async.use({ handler })") }
  end
  local sigs = self.signals
  if opts.signals ~= nil then
    if type(opts.signals) ~= "table" then
      return { [RESULT] = 1, error = async_error("invalid-signals",
        "signals must be an object of path -> value, got " .. type(opts.signals)) }
    end
    apply_client_signals(self, name, opts.signals)
  end
  -- what the runtime starts on its own (the first runs of its async
  -- signals, queued at creation) is not the handler's doing: it runs
  -- before the baseline, so only what the handler changed is reported
  if self.scheduler.strategy == "manual" then pcall(self.scheduler.flush, self.scheduler) end
  local before = values(sigs)
  local ctx = setmetatable({
    name = name, signals = sigs, server = self.server, cache = self.cache.browser, input = opts.input,
    event = opts.event or {}, request = opts.request or self.request, runtime = self, effects = {},
  }, HandlerCtx)
  args = args or {}
  local co, c = co_running(), self.cache.browser
  local prev = c:enter_abort(co, self.abort)
  local ok, res = xpcall(fn, on_fail, ctx, unpack(args, 1, args.n or #args))
  c:leave_abort(co, prev)
  if self.scheduler.strategy == "manual" then pcall(self.scheduler.flush, self.scheduler) end
  if not ok then
    report(self, res.err, res.trace, "handler " .. name)
    return error_envelope(res.err, self.env, "handler-failed", res.trace)
  end
  local changed = {}
  for _, id in ipairs(sigs.order) do
    local sig = sigs.map[id]
    if not kernel.is_computed(sig) and changed_since(sig, before[id]) then
      changed[id] = async_signal.is_async(sig) and signals_mod.wire_snapshot(sig) or sig:peek()
    end
  end
  local env = { [RESULT] = 1, signals = changed }
  local fx = ctx.effects
  if is_envelope(res) then
    for k, v in pairs(res) do
      if k == "signals" then for sk, sv in pairs(v) do changed[sk] = sv end
      elseif k ~= RESULT then env[k] = v end
    end
  elseif res ~= nil then
    env.value = res
  end
  if fx.redirect then env.redirect = fx.redirect end
  if fx.boundary then env.boundary, env.html = fx.boundary, fx.html end
  if fx.stop then env.stop = true end
  return env
end

--- Marks signal ids as client state (always in the page's snapshot).
function Runtime:client_signal(...)
  self.client_signals = self.client_signals or {}
  for i = 1, select("#", ...) do self.client_signals[select(i, ...)] = true end
end

-- ===== rendering (the ssr layer, given to the hub by require("async")) =====

local function ssr_of(rt, what)
  local ssr = rt.app.ssr
  if ssr == nil then
    errors.argument("rt:" .. what .. ": this app has no renderer; make it with require(\"async\").define_app()")
  end
  return ssr
end

--- Renders `url` (protocol.md "SSR output"); see async.ssr.render.
function Runtime:render(url, opts) return ssr_of(self, "render").render(self, url, opts) end
--- Renders `url` as a full HTML document.
function Runtime:render_document(url, opts) return ssr_of(self, "render_document").render_document(self, url, opts) end
--- Streams `url` through write(chunk) (protocol.md "Streaming").
function Runtime:render_stream(url, write, opts)
  return ssr_of(self, "render_stream").render_stream(self, url, write, opts)
end

--- Destroys the runtime's state: component scopes destroyed (their effects
-- stopped), signals unregistered (async runs aborted).
function Runtime:destroy()
  pcall(self.abort.cancel, self.abort, "destroyed")
  for _, scope in ipairs(sorted_keys(self.scopes)) do
    local inst = self.scopes[scope]
    if inst then
      self.scopes[scope] = nil
      pcall(inst.destroy, inst)
    end
  end
  for _, id in ipairs(self.signals:keys()) do self.signals:unregister(id) end
  pcall(self.root.dispose, self.root)   -- subscriptions and any effect still owned
  self.app.runtimes[self] = nil
  -- a scheduler the runtime made is released (its queued jobs hold the
  -- runtime); one passed in by the caller is the caller's
  if self.own_scheduler then self.scheduler:release() end
end

_M.App = App

return _M
