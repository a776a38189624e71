--- The signal registry of a runtime (lua-api.md, "Signal registry").
--
-- Ids are dotted strings; a path reads through the longest registered
-- prefix and the rest walks into the value (`product.title`). Async signals
-- add meta paths (`product.$status`, `product.$error.message`). `set` on a
-- path copies the containers along it, so an old value is never mutated
-- and a commit is visible as a new root value.
local kernel = require("async.kernel.graph")
local async_signal = require("async.kernel.task")
local errors = require("async.kernel.errors")
local null = require("async.app.json").null

local xpcall, error = xpcall, error
local type, pairs, tostring, setmetatable, getmetatable, rawget, rawset, tonumber, next =
  type, pairs, tostring, setmetatable, getmetatable, rawget, rawset, tonumber, next
local sub, find, gmatch, floor, byte = string.sub, string.find, string.gmatch, math.floor, string.byte
local DOT = 46   -- "."
local has_tnew, tnew = pcall(require, "table.new")
if not has_tnew then tnew = function() return {} end end
local is_signal, is_computed, is_async = kernel.is_signal, kernel.is_computed, async_signal.is_async
local untrack = kernel.untrack

local _M = {}

-- every registered signal object -> its id (weak: registries come and go)
local id_of = setmetatable({}, { __mode = "k" })
_M.id_of = id_of

local function reactive(v)
  return is_signal(v) or is_computed(v) or is_async(v)
end
_M.is_reactive = reactive


local Signals = {}
Signals.__index = Signals

-- Paths resolved per registry, at most (a path can come from a client: the
-- cache is emptied when it is full, so a stream of fresh paths costs memory
-- bounded by this, and the paths in use are cached again at once).
_M.PATH_CACHE_MAX = 1024

--- A new registry; `init` is an optional map id -> signal (or plain value).
-- opts.size: how many signals it is expected to hold (its tables are made
-- that big).
function _M.new(opts)
  opts = opts or {}
  local size = opts.size or 0
  local self = setmetatable({
    map = tnew(0, size),   -- id -> signal object
    order = tnew(size, 0), -- ids in registration order
    cache = {},            -- path -> { id, rest segments } (cleared on (un)register and when full)
    cache_n = 0,           -- entries in cache
    scheduler = opts.scheduler,
    context = opts.context, -- { server=, cache= } for async signal ctx
    root = opts.root,       -- the kernel root (a runtime's) that owns its effects and subscriptions
    readonly = false,
  }, Signals)
  return self
end

local function split(rest)
  local segs = {}
  for seg in gmatch(rest, "[^.]+") do segs[#segs + 1] = seg end
  return segs
end

--- Resolves a path to (id, rest segments) or nil.
local function resolve(self, path)
  local hit = self.cache[path]
  if hit then return hit[1], hit[2] end
  if type(path) ~= "string" or path == "" then return nil end
  local map = self.map
  local id, rest
  if map[path] ~= nil then
    id, rest = path, nil
  else
    local i = #path
    while i > 0 do
      i = i - 1
      while i > 0 and sub(path, i, i) ~= "." do i = i - 1 end
      if i == 0 then break end
      local prefix = sub(path, 1, i - 1)
      if map[prefix] ~= nil then
        id, rest = prefix, sub(path, i + 1)
        break
      end
    end
  end
  if not id then return nil end
  local segs = rest and split(rest) or {}
  local n = self.cache_n
  if n >= _M.PATH_CACHE_MAX then
    self.cache, n = {}, 0
  end
  self.cache[path] = { id, segs }
  self.cache_n = n + 1
  return id, segs
end
Signals.resolve = resolve

-- True when a dotted path has an empty segment ("a..b", ".a", "a.").
-- (byte compares: no one-character strings made)
local function empty_segment(path)
  return byte(path, 1) == DOT or byte(path, -1) == DOT or find(path, "..", 1, true) ~= nil
end

local function check_path(path)
  if type(path) ~= "string" or path == "" then
    errors.raise("invalid-signal-path",
      "signal path must be a non-empty string, got " .. (path == "" and '""' or tostring(path)))
  end
  if empty_segment(path) then
    errors.raise("invalid-signal-path", 'signal path "' .. path .. '" has an empty segment')
  end
end

-- the seed names the first segment of an unknown path
local function not_registered(path)
  local first = path:match("^[^.]*")
  errors.raise("signal-not-registered", 'Signal "' .. first .. '" is not registered.',
    'Register it via Async.use({ signal = { ["' .. first .. '"] = Async.signal(value) } })')
end

-- Adds signal object `sig` under `id` (checked, not registered yet).
local function add(self, id, sig)
  self.map[id] = sig
  local order = self.order
  order[#order + 1] = id
  id_of[sig] = id
  if self.cache_n > 0 then self.cache, self.cache_n = {}, 0 end   -- an empty cache stays
  return sig
end

--- Registers `sig` (a signal, computed or async signal; a plain value
-- becomes a signal) under `id`.
function Signals:register(id, sig)
  if type(id) ~= "string" or id == "" then
    errors.raise("invalid-signal-path", "signal id must be a non-empty string, got " .. tostring(id))
  end
  if empty_segment(id) then
    errors.raise("invalid-signal-path", 'signal id "' .. id .. '" has an empty segment')
  end
  if self.map[id] ~= nil then
    errors.raise("signal-already-registered", 'Signal "' .. id .. '" is already registered.',
      "Unregister it first, or use signals:ensure(id, init) to reuse it")
  end
  if not reactive(sig) then sig = kernel.signal(sig) end
  return add(self, id, sig)
end

--- Removes `id`; an async signal's run is aborted.
function Signals:unregister(id)
  local sig = self.map[id]
  if sig == nil then return false end
  self.map[id] = nil
  for i = #self.order, 1, -1 do
    if self.order[i] == id then table.remove(self.order, i); break end
  end
  if is_async(sig) then sig:dispose() end
  if self.cache_n > 0 then self.cache, self.cache_n = {}, 0 end
  return true
end

--- The signal `id`, created with `init` if missing.
function Signals:ensure(id, init)
  check_path(id, 2)
  local sig = self.map[id]
  if sig ~= nil then return sig end
  -- the id is checked and free, the signal new: added as register would,
  -- without checking both again (a component registers its signals here,
  -- once per instance)
  sig = kernel.signal(init)
  return add(self, id, sig)
end

function Signals:has(id) return self.map[id] ~= nil end

--- The signal object registered as `id` (raises if missing).
function Signals:ref(id)
  check_path(id, 2)
  local sig = self.map[id]
  if sig == nil then not_registered(id) end
  return sig
end

function Signals:keys()
  local out = {}
  for i = 1, #self.order do out[i] = self.order[i] end
  return out
end

-- async signal meta paths (kernel.md): id.$value, id.$status, ...
local META = { ["$value"] = "value", ["$status"] = "status", ["$loading"] = "loading", ["$error"] = "error",
               ["$version"] = "version" }

-- a path segment that names an array index ("1", "20"; not "01" or "1.5")
local function index_of(k)
  local n = tonumber(k)
  if n and n >= 1 and floor(n) == n and tostring(n) == k then return n end
  return nil
end

local function walk(v, segs, from)
  for i = from, #segs do
    if type(v) ~= "table" then return nil end
    local k = segs[i]
    local nv = rawget(v, k)
    if nv == nil then
      local n = index_of(k)
      if n then nv = rawget(v, n) end
    end
    v = nv
  end
  return v
end

--- Reads a path (tracked when inside a computed or effect). On an async
-- signal, `id.$status` (etc.) reads its state; on other signals `$` segments
-- are plain keys, as the seed does.
function Signals:get(path)
  check_path(path, 2)
  local id, segs = resolve(self, path)
  if id == nil then not_registered(path) end
  local sig = self.map[id]
  local field = segs[1] and META[segs[1]]
  if field and is_async(sig) then
    local v
    if field == "value" then v = sig() else v = sig:state()[field] end
    return walk(v, segs, 2)
  end
  return walk(sig(), segs, 1)
end

--- Reads without tracking.
function Signals:peek(path)
  return untrack(self.get, self, path)
end

-- The key segment `k` addresses in container `v` (nil: a container to be
-- created): an existing key keeps its type; otherwise an index-like segment
-- is a number key in a new, empty or array-like container (the seed makes
-- an array there), a string key in a map.
local function key_for(v, k)
  if type(v) ~= "table" then return index_of(k) or k end
  if rawget(v, k) ~= nil then return k end
  local n = index_of(k)
  if n and (rawget(v, n) ~= nil or next(v) == nil or rawget(v, 1) ~= nil) then return n end
  return k
end

-- copy-on-write assignment of segs[from..] in v: every container along the
-- path is copied (metatable kept); a missing or non-table one becomes {}
local function assign(v, segs, from, value)
  if from > #segs then return value end
  local copy = {}
  if type(v) == "table" then
    for k, x in pairs(v) do copy[k] = x end
    local mt = getmetatable(v)
    if mt ~= nil then setmetatable(copy, mt) end
  end
  local k = key_for(v, segs[from])
  -- rawset: a __newindex in the kept metatable must not divert the write
  rawset(copy, k, assign(rawget(copy, k), segs, from + 1, value))
  return copy
end

local function read_only()
  errors.raise("signals-read-only",
    "self.signals is read-only in a server function",
    "Return changes in an envelope: Async.result({ signals = { [path] = value } })")
end

--- Writes a path: the root signal gets a new value (containers copied).
-- Returns the value written.
function Signals:set(path, value)
  if self.readonly then read_only() end
  check_path(path, 2)
  local id, segs = resolve(self, path)
  if id == nil then not_registered(path) end
  local sig = self.map[id]
  if is_computed(sig) then
    errors.raise("signal-not-writable", 'cannot write "' .. path .. '": "' .. id .. '" is a computed')
  end
  if is_async(sig) and segs[1] and META[segs[1]] then
    if segs[1] == "$value" and #segs == 1 then sig:set(value); return value end
    errors.raise("signal-not-writable", 'cannot write "' .. path .. '": async signal meta paths are read-only')
  end
  if #segs == 0 then sig:set(value); return value end
  sig:set(assign(sig:peek(), segs, 1, value))
  return value
end

--- Writes fn(current) to a path.
function Signals:update(path, fn)
  if self.readonly then read_only() end
  if type(fn) ~= "function" then errors.argument("update expects a function, got " .. type(fn)) end
  return self:set(path, fn(self:peek(path)))
end

--- Calls fn(value, path) after each commit that changed the path's root
-- signal (an async signal: its value or state); returns the unsubscribe
-- function. Runs on the registry's scheduler.
function Signals:subscribe(path, fn)
  check_path(path, 2)
  if type(fn) ~= "function" then errors.argument("subscribe expects a function, got " .. type(fn)) end
  local id = resolve(self, path)
  if id == nil then not_registered(path) end
  local sig = self.map[id]
  local first = true
  local dispose = kernel.effect(function()
    if is_async(sig) then sig:state() else sig() end
    if first then first = false; return end
    untrack(fn, self:peek(path), path)
  end, { scheduler = self.scheduler, root = self.root })
  return dispose
end

-- The kernel reports a computed that reads itself as a string raised at
-- the library's line (the registry's read). Turned into the library's error
-- type at the line of the app's computed that made the read: this runs as
-- xpcall's handler, before the stack unwinds. Other errors pass unchanged.
local CYCLE = "Cycle detected: a computed read itself"
local function cycle_to_error(e)
  if type(e) == "string" and find(e, CYCLE, 1, true) then
    return errors.locate(errors.new("cycle-detected", CYCLE,
      "a computed may not read itself, directly or through other computeds"))
  end
  return e
end

local function run_computed(fn, self)
  local ok, v = xpcall(fn, cycle_to_error, self)
  if not ok then error(v, 0) end
  return v
end

--- Registers a computed; fn(signals) derives it.
function Signals:computed(id, fn, opts)
  if type(fn) ~= "function" then errors.argument("computed expects a function, got " .. type(fn)) end
  -- no root: a computed's handle holds its getter, nothing else needs to
  return self:register(id, kernel.computed(function() return run_computed(fn, self) end, opts))
end

--- Registers an async signal; fn(ctx) runs as a coroutine, ctx.signals = this registry.
function Signals:async_signal(id, fn, opts)
  if type(fn) ~= "function" then errors.argument("async_signal expects a function, got " .. type(fn)) end
  check_path(id, 2)
  if self.map[id] ~= nil then
    errors.raise("signal-already-registered", 'Signal "' .. id .. '" is already registered.',
      "Unregister it first, or use signals:ensure(id, init) to reuse it")
  end
  local o = {}
  if opts then for k, v in pairs(opts) do o[k] = v end end
  o.name = id
  o.scheduler = o.scheduler or self.scheduler
  local ctx = { signals = self }
  if self.context then
    for k, v in pairs(self.context) do ctx[k] = v end
  end
  o.context = ctx
  -- registered inside a batch: the first run starts after registration
  local a
  kernel.batch(function()
    a = async_signal.async_signal(fn, o)
    self:register(id, a)
  end)
  return a
end

--- { id = value } for signals; async signals in their snapshot form;
-- computeds are derived and left out. filter(id) -> boolean is optional.
function Signals:snapshot(filter)
  local out = {}
  for i = 1, #self.order do
    local id = self.order[i]
    if filter == nil or filter(id) then
      local sig = self.map[id]
      if is_async(sig) then out[id] = sig:snapshot()
      elseif is_signal(sig) then out[id] = sig:peek() end
    end
  end
  return out
end

--- Restores values from a snapshot (async entries through their restore
-- form); ids not registered yet become signals. Computeds are skipped.
function Signals:restore(snap)
  if self.readonly then read_only() end
  if type(snap) ~= "table" then errors.argument("restore expects a snapshot table, got " .. type(snap)) end
  kernel.batch(function()
    for id, v in pairs(snap) do
      local sig = self.map[id]
      if sig == nil then
        self:register(id, kernel.signal(v))
      elseif is_async(sig) then
        if type(v) == "table" and (v.status ~= nil or v.loading ~= nil) then
          -- JSON null stands for an absent value or error (wire_snapshot)
          if v.value == null or v.error == null then
            local copy = {}
            for k, x in pairs(v) do if x ~= null then copy[k] = x end end
            v = copy
          end
          sig:restore(v)
        else
          sig:set(v)
        end
      elseif is_signal(sig) then
        sig:set(v)
      end
    end
  end)
end

--- An async signal's snapshot form as it goes over the wire (protocol.md
-- "SSR output"): `value` and `error` always present, json.null when absent.
function _M.wire_snapshot(sig)
  local snap = sig:snapshot()
  if snap.value == nil then snap.value = null end
  if snap.error == nil then snap.error = null end
  return snap
end

-- what a read-only view lets through
local READS = { get = true, peek = true, has = true, keys = true, snapshot = true, resolve = true }

--- A read-only view of this registry (a server function's self.signals):
-- get, peek, has, keys, snapshot; anything that writes raises
-- `signals-read-only`.
function Signals:readonly_view()
  local base = self
  local view = {}
  return setmetatable(view, {
    __index = function(_, k)
      if READS[k] then
        return function(v, ...)
          if v ~= view then errors.argument("call signals:" .. k .. "(...) with a colon") end
          return base[k](base, ...)
        end
      end
      if k == "readonly" then return true end
      if type(Signals[k]) == "function" then return read_only end
      return nil
    end,
    __newindex = function() read_only() end,
  })
end

_M.Signals = Signals

return _M
