-- async.cache: TTL policies, runtime caches and storage backends.
--
--   local policy = cache.define({ ttl = 30000 })          -- a descriptor
--   local c = cache.new({ policies = { products = policy }, now = Async.now })
--   c:set("products:1", p)                   -- TTL of policy "products"
--   c:get_or_set("products:2", function() return db.get(2) end)
--
-- TTL lookup on set: the explicit `{ cache = id }`, else the policy named
-- exactly like the key, else the policy named like the key's prefix before
-- the first ":"; no policy means no expiry. An entry lives `ttl` ms: it is
-- gone once now() >= set time + ttl.
--
-- nil is a value: `set(k, nil)` stores a nil entry, `get` returns nil for
-- it, `get_or_set` does not refill it until it expires or is deleted, and
-- `snapshot` leaves it out (as it leaves out expired entries).
--
-- get_or_set is single flight: while a fill for a key runs (and yields), other
-- coroutines asking for that key wait (through async.loop's await) and get
-- the fill's result, or raise its error. A delete, clear or set of the key
-- during the fill lets the fill return its result to its callers but keeps
-- it out of the cache. If fn does not yield, everything is synchronous.
--
-- A fill never outlives its filler (kernel.md "Robustness rules": cancelling
-- by never resuming). The filler's abort token is opts.abort, else the token
-- its coroutine was given with `cache:enter_abort(co, token)` (a runtime
-- gives a server function's self.abort, and its own token, fired by
-- rt:destroy, to partials and handlers), else the token of the async run it
-- is running in (ctx.abort). When that token fires, the fill is dropped at once (nothing
-- is stored) and its waiters are woken on the next loop tick to try again:
-- the first of them fills the key anew, the others wait for that fill. A
-- fill whose fn raises is dropped too, and its waiters get the error. A
-- filler with no abort token that is never resumed cannot be noticed: its
-- waiters wait until the key is deleted, cleared or set (which wakes them).
--
-- Backends: an object with
--   backend:get(key)          -> value, expires_at   (value nil: missing)
--   backend:peek(key)         -> value, expires_at   (optional; no LRU touch)
--   backend:set(key, value, expires_at)   expires_at: absolute ms or nil
--   backend:delete(key)
--   backend:clear(prefix)     prefix nil: everything
--   backend:keys()            -> array of keys
-- and, for a backend shared by processes (nginx workers, machines):
--   backend:lock(key, abort)  -> release function, or nil, err
--                                (optional) waits while another process
--                                fills key, then holds the fill of key until
--                                release() (or until the lock expires, so a
--                                process that died does not block the key);
--                                may return early, without holding it, when
--                                key was filled meanwhile. get_or_set takes
--                                it after its own single flight (within one
--                                cache) and reads the key again before
--                                filling, so one process fills a key at a time.
-- Values reach the backend as given, except nil, which arrives as cache.NIL
-- (a backend that serializes must round-trip it). expires_at is on the
-- cache's clock; the cache checks it on every read, so a backend may keep
-- expired entries (a backend that expires entries itself returns nil for
-- expires_at). The default backend is cache.memory({ max_entries = N }):
-- a bounded LRU (hash table + doubly linked list, O(1) per operation).
-- async.app.cache_shdict is the backend on an nginx lua_shared_dict (all
-- workers of a machine); a cross-machine backend (Redis, memcached) has the
-- same shape: string keys, values serialized, lock with an expiry.

local type, error, pairs, ipairs, setmetatable, getmetatable, tostring, require, pcall =
  type, error, pairs, ipairs, setmetatable, getmetatable, tostring, require, pcall
local find, sub, format = string.find, string.sub, string.format
local co_running = coroutine.running
local graph_internal = require("async.kernel.graph")._internal
local errors = require("async.kernel.errors")
local os_time, sort = os.time, table.sort

local _M = {}

local NIL = setmetatable({}, { __tostring = function() return "cache.NIL" end })
_M.NIL = NIL

local DEFAULT_MAX_ENTRIES = 10000
_M.DEFAULT_MAX_ENTRIES = DEFAULT_MAX_ENTRIES

-- ===== POLICIES =====

-- A cache policy descriptor: { __async_cache = true, ttl = ms or nil }.
function _M.define(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    errors.argument("cache.define: expected an options table, got " .. type(opts))
  end
  local ttl = opts.ttl
  if ttl ~= nil and (type(ttl) ~= "number" or ttl < 0 or ttl ~= ttl) then
    errors.argument("cache.define: ttl must be a number of milliseconds >= 0, got " .. tostring(ttl))
  end
  return { __async_cache = true, ttl = ttl }
end

-- True when v is a policy descriptor made by define.
local function is_policy(v)
  return type(v) == "table" and v.__async_cache == true
end
_M.is_policy = is_policy

local function has_prefix(key, prefix)
  return prefix == nil or sub(key, 1, #prefix) == prefix
end

-- ===== MEMORY BACKEND =====

local Memory = {}
Memory.__index = Memory

-- A bounded in-memory LRU backend.
function _M.memory(opts)
  local max = opts and opts.max_entries or DEFAULT_MAX_ENTRIES
  if type(max) ~= "number" or max < 1 then
    errors.argument("cache.memory: max_entries must be a number >= 1, got " .. tostring(max))
  end
  local head = {} -- sentinel: head.next is the most recent, head.prev the least
  head.next, head.prev = head, head
  return setmetatable({ max = max, count = 0, nodes = {}, head = head }, Memory)
end

local function unlink(node)
  node.prev.next = node.next
  node.next.prev = node.prev
end

local function push_front(head, node)
  node.next = head.next
  node.prev = head
  head.next.prev = node
  head.next = node
end

function Memory:get(key)
  local node = self.nodes[key]
  if not node then return nil end
  if self.head.next ~= node then
    unlink(node)
    push_front(self.head, node)
  end
  return node.value, node.expires
end

function Memory:peek(key)
  local node = self.nodes[key]
  if not node then return nil end
  return node.value, node.expires
end

function Memory:set(key, value, expires)
  local node = self.nodes[key]
  if node then
    node.value, node.expires = value, expires
    unlink(node)
    push_front(self.head, node)
    return
  end
  node = { key = key, value = value, expires = expires }
  self.nodes[key] = node
  push_front(self.head, node)
  self.count = self.count + 1
  if self.count > self.max then
    local last = self.head.prev
    unlink(last)
    self.nodes[last.key] = nil
    self.count = self.count - 1
  end
end

function Memory:delete(key)
  local node = self.nodes[key]
  if not node then return end
  unlink(node)
  self.nodes[key] = nil
  self.count = self.count - 1
end

function Memory:clear(prefix)
  if prefix == nil or prefix == "" then
    local head = self.head
    head.next, head.prev = head, head
    self.nodes = {}
    self.count = 0
    return
  end
  for key, node in pairs(self.nodes) do
    if has_prefix(key, prefix) then
      unlink(node)
      self.nodes[key] = nil
      self.count = self.count - 1
    end
  end
end

-- Keys from most to least recently used.
function Memory:keys()
  local list, n = {}, 0
  local node = self.head.next
  while node ~= self.head do
    n = n + 1
    list[n] = node.key
    node = node.next
  end
  return list
end

_M.Memory = Memory

local BACKEND_METHODS = { "get", "set", "delete", "clear", "keys" }

-- Raises unless b has the backend methods (see the top comment).
function _M.check_backend(b, what)
  if type(b) ~= "table" then
    errors.argument((what or "cache backend") .. " must be a table with get, set, delete, clear and keys, got " ..
      type(b))
  end
  for _, m in ipairs(BACKEND_METHODS) do
    local f = b[m]
    if type(f) ~= "function" and not (type(f) == "table" and getmetatable(f) and getmetatable(f).__call) then
      errors.argument((what or "cache backend") .. " has no " .. m .. " method")
    end
  end
  return b
end

-- ===== NAMESPACED BACKEND =====

local Namespaced = {}
Namespaced.__index = Namespaced

-- `backend` seen through a key prefix `ns`: several caches (the server
-- caches of several apps) can share one store (a lua_shared_dict, say)
-- without their keys meeting. keys() lists only this namespace's, without
-- the prefix; clear(prefix) clears only under it.
function _M.namespaced(backend, ns)
  _M.check_backend(backend)
  if type(ns) ~= "string" or ns == "" then errors.argument("cache.namespaced: ns must be a non-empty string") end
  return setmetatable({ backend = backend, ns = ns }, Namespaced)
end

function Namespaced:get(key) return self.backend:get(self.ns .. key) end
function Namespaced:peek(key)
  local b = self.backend
  if b.peek then return b:peek(self.ns .. key) end
  return b:get(self.ns .. key)
end
function Namespaced:set(key, value, expires) return self.backend:set(self.ns .. key, value, expires) end
function Namespaced:delete(key) return self.backend:delete(self.ns .. key) end
function Namespaced:clear(prefix) return self.backend:clear(self.ns .. (prefix or "")) end
function Namespaced:keys()
  local out, ns, n = {}, self.ns, #self.ns
  for _, k in ipairs(self.backend:keys()) do
    if sub(k, 1, n) == ns then out[#out + 1] = sub(k, n + 1) end
  end
  return out
end

-- ===== RUNTIME CACHE =====

local Cache = {}
Cache.__index = Cache

local function default_now()
  local ok, loop = pcall(require, "async.loop")
  if ok and type(loop) == "table" and loop.now then return loop.now() end
  return os_time() * 1000
end

local function default_await(start, abort)
  return require("async.loop").await(start, abort)
end

local function default_defer(fn)
  return require("async.loop").get_loop():defer(fn)
end

-- what a woken waiter receives when the fill it waited for was dropped
local RETRY = setmetatable({}, { __tostring = function() return "cache.RETRY" end })

-- The abort token of the async run executing in coroutine co, if any.
local function run_abort(co)
  local run = graph_internal.current_run()
  if run ~= nil and run.co == co then return run.abort end
  return nil
end

local function check_key(key)
  if type(key) ~= "string" then
    errors.argument("cache: key must be a string, got " .. type(key))
  end
end

-- A runtime cache. opts: policies (id -> descriptor), base (a policy map
-- shared read-only, such as the app's: looked up when `policies` has no
-- entry, never copied), now (fn -> ms), max_entries (for the default memory
-- backend), backend, await (fn(start, abort), default async.loop.await).
function _M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    _policies = opts.base and setmetatable({}, { __index = opts.base }) or {},
    _base = opts.base,
    _now = opts.now or default_now,
    _backend = opts.backend or _M.memory({ max_entries = opts.max_entries }),
    _await = opts.await or default_await,
    _defer = opts.defer or default_defer,
    _abort_of = setmetatable({}, { __mode = "k" }), -- coroutine -> its caller's token (enter_abort)
    _fills = {}, -- key -> in-flight fill { co=, waiters=, store= }
  }, Cache)
  if opts.policies then
    for id, p in pairs(opts.policies) do self:register(id, p) end
  end
  return self
end

-- A view of this cache with policies of its own: the entries, in-flight
-- fills and callers' abort tokens are this cache's (shared), the policies
-- registered on the view stay the view's, over this cache's. A runtime
-- that registers server cache policies of its own (rt:use) gets one, so
-- they never reach the app's other runtimes.
function Cache:view()
  local parent = self
  return setmetatable({
    _policies = setmetatable({}, { __index = function(_, id) return parent:policy(id) end }),
    _parent = parent,
    _now = self._now, _backend = self._backend, _await = self._await, _defer = self._defer,
    _abort_of = self._abort_of, _fills = self._fills,
  }, Cache)
end

-- Registers a policy descriptor under an id (a key or a key prefix).
function Cache:register(id, policy)
  if type(id) ~= "string" then
    errors.argument("cache: policy id must be a string, got " .. type(id))
  end
  if not is_policy(policy) then
    errors.argument(format('cache: policy "%s" must be made by define_cache({ ttl = ms })', id))
  end
  self._policies[id] = policy
  return self
end

-- The policy registered under id, or nil.
function Cache:policy(id)
  return self._policies[id]
end

-- The policy ids.
function Cache:policies()
  local list, seen = {}, {}
  for id in pairs(self._policies) do list[#list + 1] = id; seen[id] = true end
  local more = self._parent and self._parent:policies() or {}
  for id in pairs(self._base or {}) do more[#more + 1] = id end
  for _, id in ipairs(more) do
    if not seen[id] then list[#list + 1] = id; seen[id] = true end
  end
  sort(list)
  return list
end

-- The TTL (ms or nil) a set of key with opts would use.
function Cache:ttl_for(key, opts)
  local policies = self._policies
  local id = opts and opts.cache
  local p
  if id ~= nil then
    p = policies[id]
    if not p then errors.raise("cache-policy-not-defined",
      format('cache: policy "%s" is not defined', tostring(id))) end
  else
    p = policies[key]
    if not p then
      local colon = find(key, ":", 1, true)
      if colon then p = policies[sub(key, 1, colon - 1)] end
    end
  end
  return p and p.ttl
end

-- Looks a key up; returns value, found (expired entries are dropped).
local function lookup(self, key, touch)
  local b = self._backend
  local v, expires
  if touch or not b.peek then
    v, expires = b:get(key)
  else
    v, expires = b:peek(key)
  end
  if v == nil then return nil, false end
  if expires and self._now() >= expires then
    b:delete(key)
    return nil, false
  end
  if v == NIL then return nil, true end
  return v, true
end

-- The value of key, or nil (missing, expired or a nil entry).
function Cache:get(key)
  check_key(key, 2)
  return (lookup(self, key, true))
end

-- True when key has a live entry (a nil entry counts).
function Cache:has(key)
  check_key(key, 2)
  local _, found = lookup(self, key, false)
  return found
end

local function store(self, key, value, opts)
  local ttl = self:ttl_for(key, opts)
  local expires = ttl and self._now() + ttl or nil
  if value == nil then value = NIL end
  self._backend:set(key, value, expires)
end

-- Stores value under key; opts.cache names the policy to use.
function Cache:set(key, value, opts)
  check_key(key, 2)
  local fill = self._fills[key]
  if fill then
    fill.store = false -- this newer value wins over the fill's
    self._fills[key] = nil
  end
  store(self, key, value, opts)
  return value
end

-- Cancels the store of in-flight fills of key, or of keys under prefix.
local function cancel_fills(self, key, prefix)
  local fills = self._fills
  if key then
    local fill = fills[key]
    if fill then
      fill.store = false
      fills[key] = nil
    end
    return
  end
  for k, fill in pairs(fills) do
    if has_prefix(k, prefix) then
      fill.store = false
      fills[k] = nil
    end
  end
end

-- Drops a fill whose filler was aborted: nothing is stored, the entry is
-- released and every waiter is woken on the next tick to try again.
local function abandon(self, key, fill)
  if fill.done then return end
  fill.done = true
  fill.store = false
  if self._fills[key] == fill then self._fills[key] = nil end
  local waiters = fill.waiters
  fill.waiters = {}
  if #waiters == 0 then return end
  self._defer(function()
    for i = 1, #waiters do pcall(waiters[i], RETRY) end
  end)
end

-- Deletes key (and keeps an in-flight fill of it from being stored).
function Cache:delete(key)
  check_key(key, 2)
  cancel_fills(self, key)
  self._backend:delete(key)
end

-- Deletes every key starting with prefix (all when prefix is nil).
function Cache:clear(prefix)
  if prefix ~= nil and type(prefix) ~= "string" then
    errors.argument("cache: prefix must be a string or nil, got " .. type(prefix))
  end
  if prefix == "" then prefix = nil end
  cancel_fills(self, nil, prefix)
  self._backend:clear(prefix)
end

-- The live keys.
function Cache:keys()
  local list, n = {}, 0
  local keys = self._backend:keys()
  for i = 1, #keys do
    local _, found = lookup(self, keys[i], false)
    if found then
      n = n + 1
      list[n] = keys[i]
    end
  end
  return list
end

-- key -> value of the live entries; expired and nil entries left out.
function Cache:snapshot()
  local snap = {}
  local keys = self._backend:keys()
  for i = 1, #keys do
    local v = lookup(self, keys[i], false)
    if v ~= nil then snap[keys[i]] = v end
  end
  return snap
end

-- True when a fill of key is in flight.
function Cache:filling(key)
  return self._fills[key] ~= nil
end

-- The value of key, or the result of fn(key), stored with opts' policy.
-- Concurrent calls for one key share one run of fn (see the top comment).
-- opts: cache (policy id), abort (the caller's token: a waiter stops
-- waiting when it fires, a filler's fill is dropped).
function Cache:get_or_set(key, fn, opts)
  check_key(key, 2)
  if type(fn) ~= "function" then
    errors.argument("cache:get_or_set: expected a function, got " .. type(fn))
  end
  local co = co_running()
  local abort = opts and opts.abort or (co and self._abort_of[co]) or run_abort(co)
  local fill
  while true do
    local value, found = lookup(self, key, true)
    if found then return value end
    fill = self._fills[key]
    if not fill then break end
    if fill.co == co then
      errors.raise("cache-recursive-fill",
        format('cache:get_or_set("%s"): the fill of this key asked for the same key', key))
    end
    local waiters = fill.waiters
    local ok, result = self._await(function(resume)
      waiters[#waiters + 1] = resume
    end, abort)
    if ok ~= RETRY then   -- RETRY: the fill was dropped; look again
      if ok then return result end
      error(result, 0)
    end
  end

  if opts and opts.cache ~= nil then self:ttl_for(key, opts) end -- unknown policy: fail before running fn
  fill = { co = co, waiters = {}, store = true, done = false }
  self._fills[key] = fill
  local unregister
  if abort then
    if abort.aborted then
      self._fills[key] = nil
      abort:check()
    end
    unregister = abort:on_abort(function() abandon(self, key, fill) end)
  end
  -- a backend shared by processes: one of them fills the key at a time
  local release, ok, result, settled
  if self._backend.lock then
    local lok, r = pcall(self._backend.lock, self._backend, key, abort)
    if not lok then                      -- the wait raised (aborted): as if fn had
      ok, result, settled = false, r, true
    else
      release = r
      local v, filled = lookup(self, key, true)
      if filled then                     -- another process filled it meanwhile
        ok, result, settled = true, v, true
        fill.store = false
      end
    end
  end
  if not settled then ok, result = pcall(fn, key) end
  if unregister then unregister() end
  if self._fills[key] == fill then self._fills[key] = nil end
  if fill.done then   -- dropped meanwhile (its waiters were sent to try again)
    if release then release() end
    if ok then return result end
    error(result, 0)
  end
  fill.done = true
  if ok and fill.store then
    local sok, serr = pcall(store, self, key, result, opts)
    if not sok then ok, result = false, serr end
  end
  if release then release() end
  -- resume every waiter even if one of them raises; then raise the first
  local waiters, werr = fill.waiters, nil
  for i = 1, #waiters do
    local wok, e = pcall(waiters[i], ok, result)
    if not wok and werr == nil then werr = e end
  end
  if werr ~= nil then error(werr, 0) end
  if ok then return result end
  error(result, 0)
end

-- ===== ABORT TOKENS OF CALLERS =====

-- Makes `abort` the token of get_or_set calls made from coroutine co (until
-- leave_abort): a runtime sets a server function's self.abort, and its own
-- token for partials and handlers, around the call. Returns the previous
-- token of co, for leave_abort. Keys are weak: a coroutine never resumed
-- again is collected with its entry.
function Cache:enter_abort(co, abort)
  if co == nil then return nil end
  local map = self._abort_of
  local prev = map[co]
  map[co] = abort
  return prev
end

function Cache:leave_abort(co, prev)
  if co ~= nil then self._abort_of[co] = prev end
end

_M.Cache = Cache

return _M
