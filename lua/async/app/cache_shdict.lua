--- A server cache backend on an nginx `lua_shared_dict` (app/cache.lua,
-- "Backends"): one store for every worker of a machine.
--
--   lua_shared_dict async_cache 10m;                      # nginx.conf, http{}
--   local backend = require("async.app.cache_shdict").new("async_cache")
--   -- or, through the ngx transport: handle(app, { cache = { server = "shdict:async_cache" } })
--
-- Values are JSON-encoded (async.app.json: Async.null and empty arrays
-- round-trip; functions and cdata cannot be stored and raise). The TTL is
-- the shared dict's own expiry, so an entry disappears for every worker at
-- once; the dict is size-bounded and evicts least recently used entries
-- when full (a `set` that had to evict is not an error). get_or_set is single
-- flight across workers: the first worker to miss a key takes a lock (an
-- `add` of a lock key with an expiry, so a worker that dies cannot hold a key
-- for ever); the others poll the dict with a short, growing sleep until the
-- value is there or the lock is free, and read it. Values live under "v:",
-- locks under "l:", so one dict can serve several apps (give each app its
-- own key prefixes, as with any shared cache).
--
-- Cost: a get is one dict lookup and one JSON decode; clear(prefix) and
-- keys() walk every key of the dict (get_keys(0) locks the dict while it
-- copies them): keep them out of hot paths.
local json = require("async.app.json")
local errors = require("async.kernel.errors")
local cache = require("async.app.cache")
local loop = require("async.loop")

local setmetatable, error, type, tostring, rawget, pcall, tonumber =
      setmetatable, error, type, tostring, rawget, pcall, tonumber
local sub = string.sub
local encode, decode = json.encode, json.decode
local NIL = cache.NIL

local _M = {}

local NIL_MARK = "\0nil"   -- never the text of a JSON document

local Shdict = {}
Shdict.__index = Shdict

--- A backend on `ngx.shared[name]`. opts: lock_ttl (s a lock lives at most,
-- default 30), lock_timeout (s a waiter waits for another worker's fill
-- before filling itself, default 10), now (the cache's clock in ms, default
-- async.loop.now).
function _M.new(name, opts)
  local ngx = rawget(_G, "ngx")
  if type(name) ~= "string" then
    errors.argument("cache_shdict.new: expected a lua_shared_dict name, got " .. type(name))
  end
  if ngx == nil or type(ngx.shared) ~= "table" then
    errors.raise("not-in-nginx", "cache_shdict.new: no ngx.shared (not running inside nginx)")
  end
  local dict = ngx.shared[name]
  if dict == nil then
    errors.argument('cache_shdict.new: no lua_shared_dict "' .. name ..
      '" (declare it in the http block of nginx.conf)')
  end
  opts = opts or {}
  return setmetatable({
    name = name, dict = dict, ngx = ngx,
    lock_ttl = opts.lock_ttl or 30, lock_timeout = opts.lock_timeout or 10, now = opts.now or loop.now,
    owner = tostring(ngx.worker and ngx.worker.pid and ngx.worker.pid() or 0) .. ":", seq = 0,
  }, Shdict)
end

function Shdict:get(key)
  local s = self.dict:get("v:" .. key)
  if s == nil then return nil end
  if s == NIL_MARK then return NIL end
  local v, err = decode(s)
  if v == nil and err then
    self.ngx.log(self.ngx.WARN, "async cache: dropping an entry that does not decode: ", key, ": ", err)
    self.dict:delete("v:" .. key)
    return nil
  end
  return v
end

Shdict.peek = Shdict.get

function Shdict:set(key, value, expires)
  local ttl = 0
  if expires then
    ttl = (expires - self.now()) / 1000
    if ttl < 0.001 then   -- already expired: nothing to keep
      self.dict:delete("v:" .. key)
      return
    end
  end
  local s
  if value == NIL then
    s = NIL_MARK
  else
    local ok, r = pcall(encode, value)
    if not ok then error('cache: the value of "' .. key .. '" cannot be stored as JSON: ' .. tostring(r), 0) end
    s = r
  end
  local ok, err = self.dict:set("v:" .. key, s, ttl)
  if not ok then
    -- too large for the dict, or no memory even after evicting: not stored
    self.ngx.log(self.ngx.WARN, 'async cache: cannot store "', key, '" in lua_shared_dict ', self.name, ": ", err)
  end
end

function Shdict:delete(key)
  self.dict:delete("v:" .. key)
end

function Shdict:clear(prefix)
  local dict = self.dict
  local p = "v:" .. (prefix or "")
  local keys = dict:get_keys(0)
  for i = 1, #keys do
    local k = keys[i]
    if sub(k, 1, #p) == p then dict:delete(k) end
  end
end

function Shdict:keys()
  local list, n = {}, 0
  local keys = self.dict:get_keys(0)
  for i = 1, #keys do
    local k = keys[i]
    if sub(k, 1, 2) == "v:" then
      n = n + 1
      list[n] = sub(k, 3)
    end
  end
  return list
end

local function noop() end

--- Holds the fill of key for this worker (see the module comment); returns
-- the release function. Waits (polling, abortable through `abort`) while
-- another worker holds it; returns early, holding nothing, once the value
-- is there; fills anyway after lock_timeout.
function Shdict:lock(key, abort)
  local dict = self.dict
  local lk, vk = "l:" .. key, "v:" .. key
  self.seq = self.seq + 1
  local me = self.owner .. self.seq
  local step, waited = 1, 0   -- ms
  while true do
    local ok, err = dict:add(lk, me, self.lock_ttl)
    if ok then
      return function()
        if dict:get(lk) == me then dict:delete(lk) end
      end
    end
    if err ~= "exists" then return nil, err end
    if dict:get(vk) ~= nil then return noop end
    if waited >= self.lock_timeout * 1000 then return nil, "timeout" end
    loop.delay(step, abort)
    waited = waited + step
    step = step * 2
    if step > 50 then step = 50 end
  end
end

--- Entries and bytes of the dict: { free = bytes, capacity = bytes }.
function Shdict:stats()
  local dict = self.dict
  return { free = dict.free_space and tonumber(dict:free_space()) or nil,
           capacity = dict.capacity and tonumber(dict:capacity()) or nil }
end

_M.Shdict = Shdict

return _M
