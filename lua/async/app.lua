--- App hubs and runtimes (lua-api.md, "App hub and registries").
--
-- A hub (`define_app()`, and the default hub `require("async")`) holds
-- declarations: signals, handlers, server functions, partials, routes,
-- components and cache policies. A runtime (`create_app(app, opts)`) is one
-- instance of a hub with its own state: its own signals (declared signals
-- are copied with their current value), caches and scheduler. Declarations
-- made with `use` after a runtime exists reach that runtime too.
local kernel = require("async.kernel")
local scheduler_mod = require("async.scheduler")
local signals_mod = require("async.signals")
local router_mod = require("async.router")
local cache_mod = require("async.cache")
local abort_mod = require("async.abort")
local async_signal = require("async.async_signal")

local type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall, xpcall, unpack =
  type, error, pairs, ipairs, tostring, setmetatable, getmetatable, pcall, xpcall, unpack
local traceback = debug.traceback
local os_getenv = os.getenv

local _M = {}

local RESULT = "__async_server_result__"
_M.RESULT = RESULT

local KINDS = { signal = true, handler = true, server = true, partial = true, route = true, component = true,
                cache = true }
local INSPECT_KINDS = { "signal", "handler", "server", "partial", "route", "component", "cache.browser",
                        "cache.server", "cache.browser.entries", "cache.server.entries" }

--- An error value with a code and a hint, as the seed's errors.
local function async_error(code, message, hint)
  return { name = "AsyncError", code = code, message = message, hint = hint }
end
_M.error = async_error

--- Turns any raised value into { name=, message=, code= }.
local normalize_error = async_signal.normalize_error

-- ===== declarations =====

local function copy_map(kind, map)
  if type(map) ~= "table" then
    error("Async.use: the " .. kind .. " declarations must be a table, got " .. type(map), 3)
  end
  return map
end

local function check_entry(kind, id, v)
  if type(id) ~= "string" or id == "" then
    error("Async.use: " .. kind .. " ids must be non-empty strings, got " .. tostring(id), 4)
  end
  if kind == "handler" or kind == "server" or kind == "partial" then
    if type(v) ~= "function" then
      error("Async.use: " .. kind .. ' "' .. id .. '" must be a function, got ' .. type(v), 4)
    end
  elseif kind == "route" then
    if type(v) ~= "table" or v.partial == nil then
      error('Async.use: route "' .. id .. '" must be Async.define_route(partial_id), got ' .. type(v), 4)
    end
  elseif kind == "component" then
    if type(v) ~= "table" or type(v.fn) ~= "function" then
      error('Async.use: component "' .. id .. '" must be Async.define_component(fn)', 4)
    end
  end
end

local App = {}
App.__index = App

--- A new, empty hub.
function _M.define_app(opts)
  return setmetatable({
    decl = { signal = {}, handler = {}, server = {}, partial = {}, route = {}, component = {},
             ["cache.browser"] = {}, ["cache.server"] = {} },
    order = { signal = {}, handler = {}, server = {}, partial = {}, route = {}, component = {},
              ["cache.browser"] = {}, ["cache.server"] = {} },
    runtimes = setmetatable({}, { __mode = "k" }),
    opts = opts or {},
  }, App)
end

local function declare(app, kind, id, v)
  check_entry(kind, id, v)
  local d = app.decl[kind]
  if d[id] == nil then app.order[kind][#app.order[kind] + 1] = id end
  d[id] = v
  if kind == "route" then router_mod.compile(id) end
  for rt in pairs(app.runtimes) do rt:use(kind, { [id] = v }) end
end

--- Registers declarations: use({ kind = map, ... }) or use(kind, map).
function App:use(kind, map)
  if type(kind) == "table" and map == nil then
    for k, m in pairs(kind) do self:use(k, m) end
    return self
  end
  if not KINDS[kind] then
    error("Async.use: unknown kind '" .. tostring(kind) ..
      "' (expected signal, handler, server, partial, route, component or cache)", 2)
  end
  copy_map(kind, map)
  if kind == "cache" then
    for side, policies in pairs(map) do
      if side ~= "browser" and side ~= "server" then
        error("Async.use: cache declarations are split into browser and server, got '" .. tostring(side) .. "'", 2)
      end
      for id, p in pairs(copy_map("cache." .. side, policies)) do
        if type(p) ~= "table" or not p.__async_cache then
          error('Async.use: cache "' .. tostring(id) .. '" must be Async.define_cache({ ttl = ms })', 2)
        end
        local d = self.decl["cache." .. side]
        if d[id] == nil then self.order["cache." .. side][#self.order["cache." .. side] + 1] = id end
        d[id] = p
        for rt in pairs(self.runtimes) do rt.cache[side]:register(id, p) end
      end
    end
    return self
  end
  for id, v in pairs(map) do declare(self, kind, id, v) end
  return self
end

--- A route declaration: the partial that renders it, and options.
function _M.define_route(partial_id, opts)
  if type(partial_id) ~= "string" or partial_id == "" then
    error("define_route expects a partial id string, got " .. tostring(partial_id), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("define_route options must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  return { partial = partial_id, boundary = opts.boundary or "route", server = opts.server, status = opts.status,
           __async_route = true }
end

--- Builds a server result envelope.
function _M.result(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then error("Async.result expects a table, got " .. type(t), 2) end
  local env = {}
  for k, v in pairs(t) do env[k] = v end
  env[RESULT] = 1
  return env
end

local function is_envelope(v)
  return type(v) == "table" and v[RESULT] ~= nil
end
_M.is_envelope = is_envelope

-- ===== registry inspection =====

local Inspect = {}
Inspect.__index = Inspect

local function inspector(source)
  return setmetatable({ source = source }, Inspect)
end
_M.inspector = inspector

local function check_kind(kind)
  for _, k in ipairs(INSPECT_KINDS) do if k == kind then return end end
  error("registry: unknown kind '" .. tostring(kind) .. "' (expected " .. table.concat(INSPECT_KINDS, ", ") .. ")", 3)
end

--- The ids registered under `kind`, in registration order.
function Inspect:keys(kind)
  check_kind(kind)
  return self.source:inspect_keys(kind)
end

--- `{ {id, value}, ... }` for `kind`.
function Inspect:entries(kind)
  check_kind(kind)
  local out = {}
  for i, id in ipairs(self.source:inspect_keys(kind)) do
    out[i] = { id, self.source:inspect_get(kind, id) }
  end
  return out
end

function Inspect:get(kind, id)
  check_kind(kind)
  return self.source:inspect_get(kind, id)
end

--- { entries = { kind = { id = value } } } for every kind.
function Inspect:snapshot()
  local entries = {}
  for _, kind in ipairs(INSPECT_KINDS) do
    local m = {}
    for _, id in ipairs(self.source:inspect_keys(kind)) do m[id] = self.source:inspect_get(kind, id) end
    entries[kind] = m
  end
  return { entries = entries }
end

function App:inspect_keys(kind)
  if kind == "cache.browser.entries" or kind == "cache.server.entries" then return {} end
  local out = {}
  for i, id in ipairs(self.order[kind]) do out[i] = id end
  return out
end

function App:inspect_get(kind, id)
  if kind == "server" then
    return self.decl.server[id] and { id = id, kind = "server" } or nil
  end
  local d = self.decl[kind]
  return d and d[id]
end

-- ===== runtimes =====

local Runtime = {}
Runtime.__index = Runtime
_M.Runtime = Runtime

local function instantiate_signal(rt, id, decl)
  local sigs = rt.signals
  if sigs:has(id) then return end
  if kernel.is_signal(decl) then
    sigs:register(id, kernel.signal(decl:peek()))
  elseif kernel.is_computed(decl) then
    local fn = kernel._internal.computed_fn(decl)
    sigs:computed(id, function(s) return fn(s) end)
  elseif async_signal.is_async(decl) then
    sigs:async_signal(id, decl.fn, decl.opts_decl)
  elseif type(decl) == "table" and decl.__async_decl then
    sigs:async_signal(id, decl.fn, decl.opts)
  else
    sigs:register(id, kernel.signal(decl))
  end
end

--- Creates a runtime of `app`. opts: target ("server" | "browser"),
-- scheduler, request, env ("development" | "production").
function _M.create_app(app, opts)
  if type(app) ~= "table" or getmetatable(app) ~= App then
    error("create_app expects an app from Async.define_app(), got " .. type(app), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("create_app options must be a table, got " .. type(opts), 2) end
  local env = opts.env or os_getenv("ASYNC_ENV") or "development"
  if env ~= "development" and env ~= "production" then
    error("create_app: env must be \"development\" or \"production\", got " .. tostring(env), 2)
  end
  local target = opts.target or "server"
  local sched = opts.scheduler or scheduler_mod.new({ strategy = target == "server" and "manual" or "sync" })
  local now = opts.now or function() return require("async.loop").now() end
  local rt = setmetatable({
    app = app, target = target, env = env, request = opts.request, scheduler = sched,
    handlers = {}, server_fns = {}, partials = {}, components = {}, routes = {},
    router = router_mod.new(),
    opts = opts, component_counters = {}, scopes = {},
  }, Runtime)
  rt.cache = {
    browser = cache_mod.new({ now = now, max_entries = opts.browser_cache_entries }),
    server = cache_mod.new({ now = now, max_entries = opts.server_cache_entries }),
  }
  rt.server = rt:server_proxy()
  rt.signals = signals_mod.new({ scheduler = sched, context = { server = rt.server, cache = rt.cache.browser } })
  rt.registry = inspector(rt)
  rt.signals.registry = rt.registry
  rt.handlers_registry = rt.handlers
  -- copy declarations (signals inside one batch: async first runs start after all exist)
  kernel.batch(function()
    for _, id in ipairs(app.order.signal) do instantiate_signal(rt, id, app.decl.signal[id]) end
  end)
  for _, kind in ipairs({ "handler", "server", "partial", "route", "component" }) do
    local m = {}
    for _, id in ipairs(app.order[kind]) do m[id] = app.decl[kind][id] end
    rt:use(kind, m)
  end
  for _, side in ipairs({ "browser", "server" }) do
    for _, id in ipairs(app.order["cache." .. side]) do rt.cache[side]:register(id, app.decl["cache." .. side][id]) end
  end
  rt.partials_registry = rt.partials
  app.runtimes[rt] = true
  return rt
end

--- Registers runtime-only declarations (one kind).
function Runtime:use(kind, map)
  if type(kind) == "table" and map == nil then
    for k, m in pairs(kind) do self:use(k, m) end
    return self
  end
  if kind == "signal" then
    kernel.batch(function()
      for id, v in pairs(map) do instantiate_signal(self, id, v) end
    end)
  elseif kind == "handler" then
    for id, fn in pairs(map) do check_entry(kind, id, fn); self.handlers[id] = fn end
  elseif kind == "server" then
    for id, fn in pairs(map) do check_entry(kind, id, fn); self.server_fns[id] = fn end
  elseif kind == "partial" then
    for id, fn in pairs(map) do check_entry(kind, id, fn); self.partials[id] = fn end
  elseif kind == "route" then
    for pattern, r in pairs(map) do
      check_entry(kind, pattern, r)
      if self.routes[pattern] then self.router:remove(pattern) end
      self.routes[pattern] = r
      self.router:add(pattern, r)
    end
  elseif kind == "component" then
    for name, c in pairs(map) do
      check_entry(kind, name, c)
      self.components[name] = c
      if c.name == nil then c.name = name end
    end
  elseif kind == "cache" then
    for side, policies in pairs(map) do
      for id, p in pairs(policies) do self.cache[side]:register(id, p) end
    end
  else
    error("rt:use: unknown kind '" .. tostring(kind) .. "'", 2)
  end
  return self
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

function Runtime:inspect_keys(kind)
  if kind == "signal" then return self.signals:keys() end
  if kind == "handler" then return sorted_keys(self.handlers) end
  if kind == "server" then return sorted_keys(self.server_fns) end
  if kind == "partial" then return sorted_keys(self.partials) end
  if kind == "route" then return sorted_keys(self.routes) end
  if kind == "component" then return sorted_keys(self.components) end
  if kind == "cache.browser" then return self.cache.browser:policies() end
  if kind == "cache.server" then return self.cache.server:policies() end
  if kind == "cache.browser.entries" then return self.cache.browser:keys() end
  if kind == "cache.server.entries" then
    if self.target ~= "server" then return {} end   -- never exposed to a browser view
    return self.cache.server:keys()
  end
  return {}
end

local function policy_list(p)
  if p[1] ~= nil then return p end
  return sorted_keys(p)
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
  if kind == "cache.browser.entries" then return self.cache.browser:get(id) end
  if kind == "cache.server.entries" then
    if self.target ~= "server" then return nil end
    return self.cache.server:get(id)
  end
  return nil
end
_M.policy_list = policy_list

-- ===== server functions =====

local function error_envelope(err, env, code)
  local e = normalize_error(err)
  if code and e.code == nil then e.code = code end
  if env == "production" and e.code == nil then
    e = { name = "Error", message = "Internal server error", code = "internal-error" }
  end
  return { [RESULT] = 1, error = e }
end
_M.error_envelope = error_envelope

local function unwrap(env)
  if env.error then error(env.error, 0) end
  return env.value
end

--- self.server: `self.server.math.one(x)` and `self.server:call("math.one", x)`.
function Runtime:server_proxy(abort)
  local rt = self
  local function node(path)
    return setmetatable({}, {
      __index = function(_, k)
        if k == "call" and path == nil then
          return function(_, id, ...) return unwrap(rt:call(id, { ... }, { abort = abort })) end
        end
        return node(path and (path .. "." .. k) or k)
      end,
      __call = function(_, ...)
        if path == nil then error("self.server is not callable; call self.server.<id>(...)", 2) end
        return unwrap(rt:call(path, { ... }, { abort = abort }))
      end,
    })
  end
  return node(nil)
end

--- Runs a server function in-process; always returns an envelope.
function Runtime:call(id, args, opts)
  opts = opts or {}
  local fn = type(id) == "string" and self.server_fns[id] or nil
  if fn == nil then
    return { [RESULT] = 1, error = async_error("server-function-not-registered",
      'Server function "' .. tostring(id) .. '" is not registered.', "Register via Async.use({ server })") }
  end
  if args ~= nil and type(args) ~= "table" then
    return { [RESULT] = 1, error = async_error("invalid-arguments", "server call args must be an array") }
  end
  args = args or {}
  local token = opts.abort or abort_mod.new()
  local view
  if opts.signals ~= nil then
    view = signals_mod.new({ scheduler = self.scheduler })
    for path, v in pairs(opts.signals) do view:register(path, kernel.signal(v)) end
  else
    view = self.signals
  end
  local ctx = {
    id = id, args = args, input = opts.input, signals = view:readonly_view(), cache = self.cache.server,
    server = self:server_proxy(token), request = opts.request or self.request,
    headers = opts.headers or (self.request and self.request.headers) or {},
    cookies = opts.cookies or (self.request and self.request.cookies) or {},
    abort = token, runtime = self,
  }
  local ok, res = xpcall(fn, function(e)
    if type(e) == "table" then return { err = e } end
    return { err = e, trace = traceback(tostring(e), 2) }
  end, ctx, unpack(args, 1, args.n or #args))
  if not ok then
    local env = error_envelope(res.err, self.env)
    if self.env == "development" and res.trace then env.error.stack = res.trace end
    if self.on_error then self.on_error(res.err, res.trace) end
    return env
  end
  if is_envelope(res) then return res end
  return { [RESULT] = 1, value = res }
end

-- ===== handlers =====

local Stop = {}

--- Runs a Lua handler in-process as the handler endpoint does; the envelope's
-- `signals` holds exactly the signals the handler changed.
function Runtime:dispatch(name, args, opts)
  opts = opts or {}
  local fn = type(name) == "string" and self.handlers[name] or nil
  if fn == nil then
    return { [RESULT] = 1, error = async_error("handler-not-registered",
      'Handler "' .. tostring(name) .. '" is not registered.', "Register via Async.use({ handler })") }
  end
  local sigs = self.signals
  if opts.signals then
    kernel.batch(function()
      for id, v in pairs(opts.signals) do
        if sigs:has(id) then sigs:set(id, v) else sigs:register(id, kernel.signal(v)) end
      end
    end)
  end
  local before = {}
  for _, id in ipairs(sigs.order) do before[id] = sigs.map[id]:peek() end
  local effects = {}
  local ctx = setmetatable({
    signals = sigs, server = self.server, cache = self.cache.browser, input = opts.input, event = opts.event or {},
    runtime = self,
  }, { __index = {
    stop = function() effects.stopped = true end,
    redirect = function(_, url) effects.redirect = url end,
    swap = function(_, boundary, html) effects.boundary, effects.html = boundary, tostring(html) end,
  } })
  args = args or {}
  local ok, err = xpcall(function() return kernel.batch(fn, ctx, unpack(args, 1, args.n or #args)) end,
    function(e) return { err = e, trace = type(e) ~= "table" and traceback(tostring(e), 2) or nil } end)
  if self.scheduler.strategy == "manual" then pcall(self.scheduler.flush, self.scheduler) end
  if not ok and err.err ~= Stop then
    local env = error_envelope(err.err, self.env)
    if self.env == "development" and err.trace then env.error.stack = err.trace end
    return env
  end
  local changed = {}
  for _, id in ipairs(sigs.order) do
    local sig = sigs.map[id]
    if not kernel.is_computed(sig) then
      local v = sig:peek()
      if before[id] ~= v then changed[id] = async_signal.is_async(sig) and sig:snapshot() or v end
    end
  end
  local env = { [RESULT] = 1, signals = changed }
  if effects.redirect then env.redirect = effects.redirect end
  if effects.boundary then env.boundary, env.html = effects.boundary, effects.html end
  if effects.stopped then env.stop = true end
  return env
end

--- Destroys the runtime's state: async runs aborted, effects of its
-- components disposed.
function Runtime:destroy()
  for _, id in ipairs(self.signals:keys()) do self.signals:unregister(id) end
  for scope, inst in pairs(self.scopes) do
    self.scopes[scope] = nil
    if inst.destroy then pcall(inst.destroy, inst) end
  end
  self.app.runtimes[self] = nil
end

_M.App = App

return _M
