--- App hubs (lua-api.md, "App hub and registries"): declarations, their
-- checks, route declarations, server result envelopes and the registry
-- inspector. Runtimes are in async.app.runtime.
--
-- A hub (`define_app()`, and the default hub behind `require("async")`)
-- holds declarations: signals, handlers, server functions, partials, routes,
-- components and cache policies. A runtime (`create_app(app, opts)`) is one
-- instance of a hub with its own state: its own signals (a declared signal
-- is copied, its value deep-copied, so two runtimes never share a table),
-- its own caches, scheduler and component scopes. Declarations made with
-- `use` after a runtime exists reach that runtime too.
--
-- `rt:call` and `rt:dispatch` run a server function or a handler in-process
-- and answer the envelope the HTTP endpoints send (protocol.md), never a Lua
-- error.
local kernel = require("async.kernel.graph")
local router_mod = require("async.app.router")
local cache_mod = require("async.app.cache")
local async_signal = require("async.kernel.task")
local errors = require("async.kernel.errors")

local type, pairs, ipairs, tostring, setmetatable, getmetatable, pcall =
  type, pairs, ipairs, tostring, setmetatable, getmetatable, pcall
local sort, concat = table.sort, table.concat

local _M = {}

local RESULT = "__async_server_result__"
_M.RESULT = RESULT

local DECL_KINDS = { "signal", "handler", "server", "partial", "route", "component" }
local INSPECT_KINDS = { "signal", "handler", "server", "partial", "route", "component", "cache.browser",
                        "cache.server", "cache.browser.entries", "cache.server.entries" }
local IS_INSPECT_KIND = {}
for _, k in ipairs(INSPECT_KINDS) do IS_INSPECT_KIND[k] = true end

--- An error value with a code and a hint, as the seed's errors (async.errors).
local async_error = errors.new
_M.error = async_error

--- Turns any raised value into { name=, message=, code= }.
local normalize_error = async_signal.normalize_error

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  sort(out)
  return out
end

--- A deep copy of a plain value (tables copied with their metatables kept;
-- signals, computeds, functions and userdata shared). Cycles are preserved.
local is_computed = kernel.is_computed
local function deep_copy(v, seen)
  if type(v) ~= "table" or is_computed(v) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do c[deep_copy(k, seen)] = deep_copy(x, seen) end
  local mt = getmetatable(v)
  if mt ~= nil then setmetatable(c, mt) end
  return c
end
_M.deep_copy = deep_copy

-- ===== declarations =====

local function check_map(what, map)
  if type(map) ~= "table" then
    errors.raise("invalid-declaration", "Async.use: the " .. what .. " declarations must be a table, got " .. type(map))
  end
  return map
end

local function check_entry(kind, id, v)
  if type(id) ~= "string" or id == "" then
    errors.raise("invalid-declaration", "Async.use: " .. kind .. " ids must be non-empty strings, got " .. tostring(id))
  end
  if kind == "handler" or kind == "server" or kind == "partial" then
    if type(v) ~= "function" then
      errors.raise("invalid-declaration",
        "Async.use: " .. kind .. ' "' .. id .. '" must be a function, got ' .. type(v))
    end
  elseif kind == "route" then
    if type(v) ~= "table" or not v.__async_route then
      errors.raise("invalid-declaration",
        'Async.use: route "' .. id .. '" must be Async.define_route(partial_id), got ' .. type(v))
    end
    local ok, err = pcall(router_mod.compile, id)
    if not ok then errors.raise("invalid-route", errors.message(err)) end
  elseif kind == "component" then
    if type(v) ~= "table" or type(v.fn) ~= "function" then
      errors.raise("invalid-declaration", 'Async.use: component "' .. id .. '" must be Async.define_component(fn)')
    end
  elseif kind == "cache" then
    if not cache_mod.is_policy(v) then
      errors.raise("invalid-declaration", 'Async.use: cache "' .. id .. '" must be Async.define_cache({ ttl = ms })')
    end
  end
end

local App = {}
App.__index = App

--- A new, empty hub; `decls` (optional) is a declaration table as for use.
-- `services` (optional) gives its runtimes what lives in higher layers:
-- `ssr` (rt:render, rt:render_document, rt:render_stream).
function _M.define_app(decls, services)
  local app = setmetatable({
    ssr = services and services.ssr,
    router = nil,           -- compiled routes, built on first use, shared by the runtimes
    component_names = {},   -- component definition -> its first registered name
    decl = { signal = {}, handler = {}, server = {}, partial = {}, route = {}, component = {},
             ["cache.browser"] = {}, ["cache.server"] = {} },
    runtimes = setmetatable({}, { __mode = "k" }),
  }, App)
  if decls ~= nil then
    check_map("app", decls, 2)
    app:use(decls)
  end
  return app
end

-- Validates one kind's map; returns the list of (id, value) to declare.
local function validate(kind, map, level)
  level = level + 1
  check_map(kind, map, level)
  if kind == "cache" then
    for side, policies in pairs(map) do
      if side ~= "browser" and side ~= "server" then
        errors.raise("invalid-declaration",
          "Async.use: cache declarations are split into browser and server, got '" .. tostring(side) .. "'")
      end
      check_map("cache." .. side, policies, level)
      for id, p in pairs(policies) do check_entry("cache", id, p, level) end
    end
  elseif kind ~= "signal" then
    for id, v in pairs(map) do check_entry(kind, id, v, level) end
  else
    for id in pairs(map) do check_entry(kind, id, nil, level) end
  end
end

local IS_DECL_KIND = { cache = true }
for _, k in ipairs(DECL_KINDS) do IS_DECL_KIND[k] = true end

local function check_kind(kind)
  if IS_DECL_KIND[kind] then return end
  errors.raise("invalid-declaration", "Async.use: unknown kind '" .. tostring(kind) ..
    "' (expected signal, handler, server, partial, route, component or cache)")
end

--- Registers declarations: use({ kind = map, ... }) or use(kind, map).
-- Everything is checked before anything is declared.
function App:use(kind, map)
  local all
  if type(kind) == "table" and map == nil then
    all = kind
  else
    all = { [kind] = map }
  end
  for k, m in pairs(all) do
    check_kind(k, 2)
    validate(k, m, 2)
  end
  for k, m in pairs(all) do
    if k == "cache" then
      for side, policies in pairs(m) do
        local d = self.decl["cache." .. side]
        for id, p in pairs(policies) do d[id] = p end
      end
    else
      local d = self.decl[k]
      for id, v in pairs(m) do
        -- an async signal on a hub is only a template (fn + options): each
        -- runtime runs its own; the object given here is stopped
        if k == "signal" and async_signal.is_async(v) then v:dispose() end
        d[id] = v
        if k == "component" and self.component_names[v] == nil then self.component_names[v] = id end
      end
      if k == "route" then self.router = nil end   -- rebuilt once, on next use
    end
  end
  for rt in pairs(self.runtimes) do rt:adopt(all) end
  return self
end

--- The app's server cache (lua-api.md "Caches"): one per app, shared by
-- every runtime of it, so what a server function or partial caches in one
-- request (`self.cache`) is there for the next: the entries, the
-- single-flight fills (two requests asking for one key share one fill) and
-- the TTL policies (the app's `cache.server` declarations, read through).
-- Made on first use with the default backend, a bounded LRU in memory
-- (cache.DEFAULT_MAX_ENTRIES = 10,000 entries). `opts` replaces it (the
-- runtimes made from then on use the new one): `backend` (an
-- async.app.cache backend: get, set, delete, clear, keys; nginx plugs a
-- lua_shared_dict one), `max_entries` (the default backend's bound), `now`
-- (the clock, default the active loop's). Browser caches stay per runtime.
function App:server_cache(opts)
  local c = self.shared_server_cache
  if c ~= nil and opts == nil then return c end
  if opts ~= nil and type(opts) ~= "table" then
    errors.argument("app:server_cache: options must be a table, got " .. type(opts))
  end
  -- the same backend again (a runtime option given to every request: the
  -- nginx transport's shared dict) keeps the cache, its fills and policies
  if c ~= nil and opts.backend ~= nil and c._backend == opts.backend and opts.max_entries == nil and
     opts.now == nil then
    return c
  end
  opts = opts or {}
  if opts.backend ~= nil then cache_mod.check_backend(opts.backend, "app:server_cache: backend") end
  c = cache_mod.new({ base = self.decl["cache.server"], backend = opts.backend, max_entries = opts.max_entries,
                      now = opts.now })
  self.shared_server_cache = c
  return c
end

--- The app's routes compiled into one router, built once and shared
-- read-only by its runtimes; rebuilt after `use` changes the routes.
function App:compiled_router()
  local r = self.router
  if r == nil then
    r = router_mod.new()
    local patterns = sorted_keys(self.decl.route)
    for _, p in ipairs(patterns) do r:add(p, self.decl.route[p]) end
    self.router = r
  end
  return r
end

-- Metatables that make a runtime's maps read through to the app's
-- declarations (shared, never copied per runtime).
function App:inherit(kind)
  local mts = self.mts
  if mts == nil then mts = {}; self.mts = mts end
  local mt = mts[kind]
  if mt == nil then
    mt = { __index = kind == "component_names" and self.component_names or self.decl[kind] }
    mts[kind] = mt
  end
  return mt
end

--- A route declaration: the partial that renders it, and options
-- (boundary, default "route"; server; status).
function _M.define_route(partial_id, opts)
  if type(partial_id) ~= "string" or partial_id == "" then
    errors.argument("define_route expects a partial id string, got " .. tostring(partial_id))
  end
  if opts ~= nil and type(opts) ~= "table" then
    errors.argument("define_route options must be a table, got " .. type(opts))
  end
  opts = opts or {}
  return { partial = partial_id, boundary = opts.boundary or "route", server = opts.server, status = opts.status,
           __async_route = true }
end

local ENVELOPE_FIELDS = { value = true, signals = true, cache = true, boundary = true, html = true,
                          redirect = true, title = true, status = true, error = true }

--- Builds a server result envelope from { value=, signals=, boundary=, html=,
-- redirect=, error=, status=, title=, cache= }.
function _M.result(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then errors.argument("Async.result expects a table, got " .. type(t)) end
  local env = {}
  for k, v in pairs(t) do
    if not ENVELOPE_FIELDS[k] then
      errors.argument(
        "Async.result: unknown field '" .. tostring(k) .. "' (expected value, signals, cache, boundary, " ..
        "html, redirect, title, status or error)")
    end
    env[k] = v
  end
  if env.error ~= nil then env.error = normalize_error(env.error) end
  if env.html ~= nil and type(env.html) ~= "string" then env.html = tostring(env.html) end
  env[RESULT] = 1
  return env
end

local function is_envelope(v)
  return type(v) == "table" and v[RESULT] ~= nil
end
_M.is_envelope = is_envelope

-- ===== registry inspection =====
--
-- One surface over a hub (`Async.registry`) or a runtime (`rt.registry`):
-- the source answers `inspect_keys(kind)` and `inspect_get(kind, id)`.

local Inspect = {}
Inspect.__index = Inspect

local function inspector(source)
  local view = setmetatable({ source = source }, Inspect)
  return view   -- not a tail call (a trace cannot return through it at its root)
end
_M.inspector = inspector

local function check_inspect_kind(kind)
  if not IS_INSPECT_KIND[kind] then
    errors.argument(
      "registry: unknown kind '" .. tostring(kind) .. "' (expected " .. concat(INSPECT_KINDS, ", ") .. ")")
  end
end

--- The ids registered under `kind`, sorted.
function Inspect:keys(kind)
  check_inspect_kind(kind)
  local keys = self.source:inspect_keys(kind)
  sort(keys)
  return keys
end

--- `{ {id, value}, ... }` for `kind`, sorted by id.
function Inspect:entries(kind)
  check_inspect_kind(kind)
  local out = {}
  for i, id in ipairs(self:keys(kind)) do
    out[i] = { id, self.source:inspect_get(kind, id) }
  end
  return out
end

--- The entry `id` of `kind` (a server function: a descriptor on a browser
-- target), or nil.
function Inspect:get(kind, id)
  check_inspect_kind(kind)
  if type(id) ~= "string" then return nil end
  return self.source:inspect_get(kind, id)
end

function Inspect:has(kind, id)
  return self:get(kind, id) ~= nil
end

local function descriptors(self, kind)
  local m = {}
  for _, id in ipairs(self.source:inspect_keys(kind)) do m[id] = { id = id, kind = kind } end
  return m
end

local function plain(self, kind)
  local m = {}
  for _, id in ipairs(self.source:inspect_keys(kind)) do m[id] = self.source:inspect_get(kind, id) end
  return m
end

--- A serializable picture, as the seed's: `{ signal = {id = value},
-- handler/server/partial/component = {id = {id=, kind=}}, route = {pattern =
-- route}, cache = {browser = {id = policy}, server = {...}}, entries =
-- {browser = {key = value}, server = {key = value}} }`. `entries.server` is
-- always {} on a browser target.
function Inspect:snapshot()
  local src = self.source
  local signal = {}
  for _, id in ipairs(src:inspect_keys("signal")) do signal[id] = src:inspect_snapshot_signal(id) end
  return {
    signal = signal,
    handler = descriptors(self, "handler"),
    server = descriptors(self, "server"),
    partial = descriptors(self, "partial"),
    route = plain(self, "route"),
    component = descriptors(self, "component"),
    cache = { browser = plain(self, "cache.browser"), server = plain(self, "cache.server") },
    entries = { browser = plain(self, "cache.browser.entries"), server = plain(self, "cache.server.entries") },
  }
end

function App:inspect_keys(kind)
  local d = self.decl[kind]
  if d == nil then return {} end   -- a hub holds no cache contents
  return sorted_keys(d)
end

function App:inspect_get(kind, id)
  local d = self.decl[kind]
  if d == nil then return nil end
  local v = d[id]
  if v == nil then return nil end
  if kind == "server" then return { id = id, kind = "server" } end
  return v
end

function App:inspect_snapshot_signal(id)
  local v = self.decl.signal[id]
  if async_signal.is_async(v) then return v:snapshot() end
  if kernel.is_signal(v) then return v:peek() end
  if kernel.is_computed(v) or (type(v) == "table" and v.__async_decl) then return nil end
  return v
end

-- helpers the runtime module shares
_M.sorted_keys = sorted_keys
_M.validate = validate
_M.check_kind = check_kind
_M.DECL_KINDS = DECL_KINDS
_M.normalize_error = normalize_error
_M.App = App

return _M
