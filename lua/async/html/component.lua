--- Components: scoped fragment functions (lua-api.md, "Templates and components").
--
-- `define_component(fn)` declares one; rendering it creates an instance with
-- scope id `parent.Name.N` (the top parent is "component"; N counts per
-- parent and name in a runtime; Name is the id the component is registered
-- under, else the name given to define_component, else "anonymous"). What an
-- instance registers (signals, computeds, async signals, handlers, effects,
-- lifecycle callbacks) is scoped to it (`scope.name`, or generated
-- `scope.signal.N` / `scope.handler.N` as the seed) and removed by
-- `destroy`, children first.
local kernel = require("async.kernel.graph")
local signals_mod = require("async.app.registry")
local errors = require("async.kernel.errors")
local escape_attr = require("async.html.escape").attr
local scope_enter, scope_leave, dispose_handle = kernel.scope_enter, kernel.scope_leave, kernel.dispose_handle

local type, error, setmetatable, tostring, select, pcall, ipairs = type, error, setmetatable, tostring, select,
  pcall, ipairs
local concat = table.concat
local has_tnew, tnew = pcall(require, "table.new")
if not has_tnew then tnew = function() return {} end end

local _M = {}

local Instance = {}
Instance.__index = Instance

local component_handler   -- below

--- Declares a component; `name` (optional) is used when it is rendered
-- without being registered (a registered component takes its id).
function _M.define_component(fn, name)
  if type(fn) ~= "function" then
    errors.argument("define_component expects a function, got " .. type(fn))
  end
  if name ~= nil and (type(name) ~= "string" or name == "" or name:find("[%s.]")) then
    errors.argument("define_component: name must be a non-empty string without dots or spaces, got " .. tostring(name))
  end
  return { fn = fn, name = name, __async_component = true }
end

-- ".N" for the counters of ids (a number's conversion to a string costs
-- more than the rest of the id)
local DOT_N = setmetatable({}, { __index = function(t, n)
  local v = "." .. n
  if n <= 4096 then t[n] = v end
  return v
end })

-- names already checked (component code passes literals: the pattern
-- find below is not compiled by LuaJIT); bounded, names can be data
local checked, checked_n = {}, 0
local CHECKED_MAX = 1024

-- `scope.name`, or a generated `scope.<kind>.N` (N counts per kind)
local function local_id(self, kind, name)
  if name ~= nil then
    if checked[name] == nil then
      if type(name) ~= "string" or name == "" or name:find("[%s()%;,]") then
        errors.argument("component " .. kind .. " names must be non-empty strings without spaces, got " ..
          tostring(name))
      end
      if checked_n >= CHECKED_MAX then checked, checked_n = {}, 0 end
      checked[name] = true
      checked_n = checked_n + 1
    end
    return self.id .. "." .. name
  end
  local counters = self.counters
  if not counters then counters = {}; self.counters = counters end
  local n = (counters[kind] or 0) + 1
  counters[kind] = n
  return self.id .. "." .. kind .. DOT_N[n]
end

-- The lists an instance keeps (owned ids, handlers, effects, children) are
-- made on first use: most instances register a signal or two and nothing
-- else. A list of ids (owned, handlers) holding one id is the id itself.
local function push(self, field, v)
  local list = self[field]
  if not list then
    self[field] = { v }
  else
    list[#list + 1] = v
  end
end

local function push_id(self, field, id)
  local list = self[field]
  if not list then
    self[field] = id
  elseif type(list) == "string" then
    self[field] = { list, id }
  else
    list[#list + 1] = id
  end
end

-- self:signal's work, in a function of fixed arity: LuaJIT starts no
-- trace in a vararg function, so a body run by the interpreter (one that
-- makes a closure) would run all of it interpreted
local function scoped_signal(self, name, init)
  local id = local_id(self, "signal", name)
  local sigs = self.runtime.signals
  local sig = sigs.map[id]
  if sig ~= nil then return sig end
  sig = sigs:ensure(id, init)
  push_id(self, "owned", id)
  return sig
end

--- self:signal(name, init) or self:signal(init): a scoped signal.
function Instance:signal(...)
  if select("#", ...) >= 2 then return scoped_signal(self, ...) end
  return scoped_signal(self, nil, ...)
end

--- A scoped computed; fn(self) derives it. self:computed(fn) generates its id.
function Instance:computed(name, fn)
  if fn == nil and type(name) == "function" then name, fn = nil, name end
  if type(fn) ~= "function" then errors.argument("component computed expects a function, got " .. type(fn)) end
  local id = local_id(self, "computed", name)
  push_id(self, "owned", id)
  return self.runtime.signals:computed(id, function() return fn(self) end)
end

--- A scoped async signal; fn(ctx) is its coroutine.
function Instance:async_signal(name, fn, opts)
  if type(name) == "function" then name, fn, opts = nil, name, fn end
  if type(fn) ~= "function" then errors.argument("component async_signal expects a function, got " .. type(fn)) end
  local id = local_id(self, "async", name)
  push_id(self, "owned", id)
  return self.runtime.signals:async_signal(id, fn, opts)
end

--- A scoped effect on the runtime's scheduler.
function Instance:effect(fn)
  local dispose = kernel.effect(fn, { scheduler = self.runtime.scheduler, root = self.runtime.root })
  push(self, "effects", dispose)
  return dispose
end

-- A runtime's component handlers: handler id -> the app's function, and
-- -> its instance (in the runtime's component_counters, under these keys).
-- Every component handler is this one function, which finds them by the
-- dispatch context's name and runtime (Runtime:dispatch): no closure per
-- handler (LuaJIT does not compile closure creation, and a render that
-- registers a handler ran in the interpreter).
local HANDLER_FNS, HANDLER_INSTS = {}, {}

-- what a component handler gets as self: the dispatch context, whose
-- missing fields come from the instance (one metatable, no closure per call;
-- the two keys are tables, so no field name of the app can meet them)
local CTX, INST = {}, {}
local Merged = { __index = function(t, k)
  local v = t[CTX][k]
  if v == nil then v = t[INST][k] end
  return v
end }

function component_handler(ctx, ...)
  local rt, name = ctx.runtime, ctx.name
  local counters = rt and rt.component_counters
  local fns = counters and counters[HANDLER_FNS]
  local fn = fns and fns[name]
  if fn == nil then
    errors.raise("handler-not-registered", 'Handler "' .. tostring(name) .. '" is not registered.',
      "Component handlers run through rt:dispatch(name, ...)")
  end
  local inst = counters[HANDLER_INSTS][name]
  return fn(setmetatable({ [CTX] = ctx, [INST] = inst }, Merged), ...)
end

--- self:handler(name, fn) or self:handler(fn): a scoped handler; returns
-- its id. A generated handler is registered once per function. The handler
-- runs with the dispatch context (signals, input, stop, ...) whose missing
-- fields come from the instance (props, id, ...).
function Instance:handler(name, fn)
  if fn == nil then name, fn = nil, name end
  if type(fn) ~= "function" then errors.argument("component handler expects a function, got " .. type(fn)) end
  local generated = self.generated
  if name == nil and generated and generated[fn] then return generated[fn] end
  local id = local_id(self, "handler", name)
  local rt = self.runtime
  local counters = rt.component_counters
  local fns = counters[HANDLER_FNS]
  if fns == nil then
    local n = rt.sizes and rt.sizes.handlers or 0   -- as many as the app's last page had
    fns = tnew(0, n)
    counters[HANDLER_FNS], counters[HANDLER_INSTS] = fns, tnew(0, n)
  end
  fns[id], counters[HANDLER_INSTS][id] = fn, self
  rt.handlers[id] = component_handler
  push_id(self, "handlers", id)
  if name == nil then
    if not generated then generated = {}; self.generated = generated end
    generated[fn] = id
  end
  return id
end

--- Renders a child component (a definition or a registered name).
function Instance:render(comp, props)
  local child, html = _M.render(self.runtime, self.id, comp, props)
  push(self, "children", child)
  return html
end

--- The loading/ready/error templates of an async signal's boundary (only
-- the templates: the caller owns the boundary element). views: { loading =
-- fn(ref), ready = fn(ref), error = fn(ref) } (each optional), or one
-- function: the ready view.
function Instance.suspense(_, ref, views)
  local id = type(ref) == "string" and ref or signals_mod.id_of[ref]
  if id == nil then errors.argument("suspense expects a registered async signal or its id") end
  if type(views) == "function" then views = { ready = views } end
  if type(views) ~= "table" then
    errors.argument("suspense expects a view function or a table of views, got " .. type(views))
  end
  local html = require("async.html.template")
  local out = {}
  for _, status in ipairs({ "loading", "ready", "error" }) do
    local view = views[status]
    if view ~= nil then
      if type(view) ~= "function" then
        errors.argument('suspense view "' .. status .. '" must be a function, got ' .. type(view))
      end
      local body = view(ref)
      out[#out + 1] = '<template async:' .. status .. '="' .. escape_attr(id) .. '">' ..
        tostring(body == nil and "" or body) .. "</template>"
    end
  end
  return html.raw(concat(out))
end

local EVENTS = { attach = true, visible = true, destroy = true }

--- Lifecycle callbacks: attach and visible run in the browser; destroy here
-- too, when the instance is destroyed.
function Instance:on(event, fn)
  if event == "mount" then errors.argument('Component lifecycle "mount" was removed; use self:on("attach", fn)') end
  if not EVENTS[event] then
    errors.argument(
      'Unsupported component lifecycle event "' .. tostring(event) .. '" (expected attach, visible or destroy)')
  end
  if type(fn) ~= "function" then errors.argument("component on() expects a function, got " .. type(fn)) end
  local lifecycle = self.lifecycle
  if not lifecycle then lifecycle = {}; self.lifecycle = lifecycle end
  local list = lifecycle[event]
  if list == nil then lifecycle[event] = { fn } else list[#list + 1] = fn end
end

local NONE = {}

--- Removes everything the instance registered, children first.
function Instance:destroy()
  if self.destroyed then return end
  self.destroyed = true
  local first
  local children = self.children or NONE
  for i = #children, 1, -1 do
    local ok, err = pcall(children[i].destroy, children[i])
    if not ok and first == nil then first = err end
  end
  local effects = self.effects or NONE
  for i = #effects, 1, -1 do
    local ok, err = pcall(effects[i])
    if not ok and first == nil then first = err end
  end
  if self.scope_handle then
    local ok, err = pcall(dispose_handle, self.scope_handle)
    if not ok and first == nil then first = err end
  end
  local destroy = self.lifecycle and self.lifecycle.destroy or NONE
  for i = 1, #destroy do
    local ok, err = pcall(destroy[i], self)
    if not ok and first == nil then first = err end
  end
  local rt = self.runtime
  local owned, handlers = self.owned or NONE, self.handlers or NONE
  if type(owned) == "string" then owned = { owned } end
  if type(handlers) == "string" then handlers = { handlers } end
  for i = #owned, 1, -1 do rt.signals:unregister(owned[i]) end
  local counters = rt.component_counters
  local fns, insts = counters[HANDLER_FNS], counters[HANDLER_INSTS]
  for i = 1, #handlers do
    local id = handlers[i]
    rt.handlers[id] = nil
    if insts and insts[id] == self then fns[id], insts[id] = nil, nil end
  end
  rt.scheduler:destroy_scope(self.id)
  rt.scopes[self.id] = nil
  if first ~= nil then error(first, 0) end
end

-- the key of the runtime's instance metatable in its component_counters
local PROTO = {}

-- A new instance of `comp` (definition or registered name) under `parent`
-- in runtime `rt`, and the definition. No app code runs here, so LuaJIT
-- compiles it even when the component's body cannot be (a closure made by
-- the body ends every trace that reaches it).
local function new_instance(rt, parent, comp, props)
  local name
  if type(comp) == "string" then
    local found = rt.components[comp]
    if found == nil then
      errors.raise("component-not-registered", 'Component "' .. comp .. '" is not registered.',
        "Register via Async.use({ component })")
    end
    name, comp = comp, found
  end
  if type(comp) ~= "table" or type(comp.fn) ~= "function" then
    errors.argument("render expects a component from Async.define_component, got " .. type(comp))
  end
  name = name or (rt.component_names and rt.component_names[comp]) or comp.name or "anonymous"
  parent = parent or "component"
  local key = parent .. "." .. name
  local counters = rt.component_counters
  local n = (counters[key] or 0) + 1
  counters[key] = n
  local id = key .. DOT_N[n]
  -- what every instance of the runtime shares (runtime, signals, server,
  -- cache) is read through a metatable made once per runtime, so an
  -- instance has six keys: its hash part is made with 8 slots, room for
  -- handlers and children without a resize
  local mt = counters[PROTO]
  if mt == nil then
    mt = { __index = setmetatable({ runtime = rt, signals = rt.signals, server = rt.server,
                                    cache = rt.cache.browser }, Instance) }
    counters[PROTO] = mt
  end
  local inst = setmetatable({
    id = id, scope = id, name = name, props = props or false, scope_handle = false, owned = false,
  }, mt)
  if not props then inst.props = {} end
  rt.scopes[id] = inst
  return inst, comp
end

-- Calls the body from a Lua frame: a body that ends in
-- `return template { ... }` tail-calls the template, whose return would
-- otherwise go straight to pcall, which a trace cannot record.
local function call_body(fn, inst, props)
  local html = fn(inst, props)
  return html
end

--- Renders `comp` (definition or registered name) under `parent` scope in
-- runtime `rt`; returns the instance and its HTML.
function _M.render(rt, parent, comp, props)
  local inst
  inst, comp = new_instance(rt, parent, comp, props)
  -- the body runs in a kernel scope of its own (made without a closure;
  -- scope_enter raises only when the core is out of memory)
  local handle, prev = scope_enter(rt.root)
  local ok, html = pcall(call_body, comp.fn, inst, inst.props)
  local lost = scope_leave(prev, handle)
  if lost ~= nil then ok, html = false, lost end
  if not ok then
    -- a component that raises leaves nothing registered behind (its scope
    -- first, as kernel.scope does)
    pcall(dispose_handle, handle)
    pcall(inst.destroy, inst)
    error(html, 0)
  end
  inst.scope_handle = handle
  if html == nil then html = "" end
  return inst, html
end

_M.Instance = Instance

return _M
