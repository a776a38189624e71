--- Components: scoped fragment functions (lua-api.md, "Templates and components").
--
-- `define_component(fn)` declares one; rendering it creates an instance with
-- scope id `parent.Name.N` (N counts per parent and name in a runtime). What
-- an instance registers (signals, computeds, async signals, handlers,
-- effects, lifecycle callbacks) is scoped to it and removed by `destroy`,
-- children first.
local kernel = require("async.kernel")
local signals_mod = require("async.signals")

local type, error, setmetatable, tostring, select, pcall = type, error, setmetatable, tostring, select, pcall
local concat = table.concat

local _M = {}

local Instance = {}
Instance.__index = Instance

--- Declares a component; `name` defaults to the id it is registered under.
function _M.define_component(fn, name)
  if type(fn) ~= "function" then
    error("define_component expects a function, got " .. type(fn), 2)
  end
  return { fn = fn, name = name, __async_component = true }
end

local function local_id(self, prefix, name)
  if name ~= nil then
    if type(name) ~= "string" or name == "" or name:find("[%s()%;,]") then
      error("component " .. prefix .. " names must be non-empty strings without spaces, got " .. tostring(name), 3)
    end
    return self.id .. "." .. name
  end
  self.n = self.n + 1
  return self.id .. "." .. prefix .. self.n
end

--- self:signal(name, init) or self:signal(init): a scoped signal.
function Instance:signal(...)
  local name, init
  if select("#", ...) >= 2 then name, init = ... else init = ... end
  local id = local_id(self, "s", name)
  local sigs = self.runtime.signals
  local existed = sigs:has(id)
  local sig = sigs:ensure(id, init)
  if not existed then self.owned[#self.owned + 1] = id end
  return sig
end

--- A scoped computed; fn(self) derives it.
function Instance:computed(name, fn)
  local id = local_id(self, "c", name)
  self.owned[#self.owned + 1] = id
  return self.runtime.signals:computed(id, function() return fn(self) end)
end

--- A scoped async signal; fn(ctx) is its coroutine.
function Instance:async_signal(name, fn, opts)
  if type(name) == "function" then name, fn, opts = nil, name, fn end
  local id = local_id(self, "a", name)
  self.owned[#self.owned + 1] = id
  return self.runtime.signals:async_signal(id, fn, opts)
end

--- A scoped effect on the runtime's scheduler.
function Instance:effect(fn)
  local dispose = kernel.effect(fn, { scheduler = self.runtime.scheduler })
  self.effects[#self.effects + 1] = dispose
  return dispose
end

--- self:handler(name, fn) or self:handler(fn): a scoped handler; returns its id.
function Instance:handler(name, fn)
  if fn == nil then name, fn = nil, name end
  if type(fn) ~= "function" then error("component handler expects a function, got " .. type(fn), 2) end
  local id = local_id(self, "h", name)
  self.runtime.handlers[id] = fn
  self.handlers[#self.handlers + 1] = id
  return id
end

--- Renders a child component (a definition or a registered name).
function Instance:render(comp, props)
  local child, html = _M.render(self.runtime, self.id, comp, props)
  self.children[#self.children + 1] = child
  return html
end

--- The loading/ready/error templates of an async signal's boundary.
-- views: { loading = fn(ref), ready = fn(ref), error = fn(ref) } (each optional).
function Instance.suspense(_, ref, views)
  local id = type(ref) == "string" and ref or signals_mod.id_of[ref]
  if id == nil then error("suspense expects a registered async signal or its id", 2) end
  if type(views) ~= "table" then error("suspense expects a table of views, got " .. type(views), 2) end
  local html = require("async.html")
  local out = {}
  for _, status in ipairs({ "loading", "ready", "error" }) do
    local view = views[status]
    if view ~= nil then
      local body = type(view) == "function" and view(ref) or view
      out[#out + 1] = '<template async:' .. status .. '="' .. html.escape(id) .. '">' ..
        tostring(body == nil and "" or body) .. "</template>"
    end
  end
  return html.raw(concat(out))
end

local EVENTS = { attach = true, visible = true, destroy = true }

--- Lifecycle callbacks: attach and visible run in the browser; destroy here
-- too, when the instance is destroyed.
function Instance:on(event, fn)
  if not EVENTS[event] then
    error("component on() expects attach, visible or destroy, got " .. tostring(event), 2)
  end
  if type(fn) ~= "function" then error("component on() expects a function, got " .. type(fn), 2) end
  local list = self.lifecycle[event]
  list[#list + 1] = fn
end

--- Removes everything the instance registered, children first.
function Instance:destroy()
  if self.destroyed then return end
  self.destroyed = true
  local first
  for i = #self.children, 1, -1 do
    local ok, err = pcall(self.children[i].destroy, self.children[i])
    if not ok and first == nil then first = err end
  end
  for i = #self.effects, 1, -1 do
    local ok, err = pcall(self.effects[i])
    if not ok and first == nil then first = err end
  end
  if self.dispose_scope then
    local ok, err = pcall(self.dispose_scope)
    if not ok and first == nil then first = err end
  end
  local destroy = self.lifecycle.destroy
  for i = 1, #destroy do
    local ok, err = pcall(destroy[i], self)
    if not ok and first == nil then first = err end
  end
  local rt = self.runtime
  for i = #self.owned, 1, -1 do rt.signals:unregister(self.owned[i]) end
  for i = 1, #self.handlers do rt.handlers[self.handlers[i]] = nil end
  rt.scheduler:destroy_scope(self.id)
  rt.scopes[self.id] = nil
  if first ~= nil then error(first, 0) end
end

--- Renders `comp` (definition or registered name) under `parent` scope in
-- runtime `rt`; returns the instance and its HTML.
function _M.render(rt, parent, comp, props)
  if type(comp) == "string" then
    local found = rt.components[comp]
    if found == nil then
      error({ name = "AsyncError", code = "component-not-registered",
              message = 'Component "' .. comp .. '" is not registered.',
              hint = "Register via Async.use({ component })" }, 2)
    end
    comp = found
  end
  if type(comp) ~= "table" or type(comp.fn) ~= "function" then
    error("render expects a component from Async.define_component", 2)
  end
  local name = comp.name or "Component"
  local key = parent .. "." .. name
  local n = (rt.component_counters[key] or 0) + 1
  rt.component_counters[key] = n
  local inst = setmetatable({
    id = key .. "." .. n, name = name, runtime = rt, signals = rt.signals, server = rt.server,
    cache = rt.cache.browser, props = props, n = 0, owned = {}, handlers = {}, effects = {},
    children = {}, lifecycle = { attach = {}, visible = {}, destroy = {} },
  }, Instance)
  rt.scopes[inst.id] = inst
  local html
  inst.dispose_scope = kernel.scope(function() html = comp.fn(inst, props or {}) end)
  if html == nil then html = "" end
  return inst, html
end

_M.Instance = Instance

return _M
