--- asyncrt: `local Async = require("async")`.
-- The public facade (lua-api.md): the default app hub, carrying every helper
-- function. This is the only module that assembles the layers
-- (docs/architecture.md):
--
--   kernel <- loop <- app <- html <- ssr <- server <- transport
--
-- Each name below comes from the layer that owns it; nothing here holds
-- state of its own except the default hub.
local kernel = require("async.kernel")
local loop = require("async.loop")
local hub_mod = require("async.app.hub")
local runtime = require("async.app.runtime")
local cache = require("async.app.cache")
local json = require("async.app.json")
local html = require("async.html.template")
local component = require("async.html.component")
local ssr = require("async.ssr")

local type, error, pairs, tostring, pcall = type, error, pairs, tostring, pcall

local _M = {}

-- kernel primitives
for _, name in ipairs({ "signal", "computed", "effect", "scope", "batch", "transaction", "untrack", "flush",
                        "on_cleanup", "is_signal", "is_computed", "async_signal", "is_async", "resume",
                        "create_scheduler", "abort_token", "is_abort", "core_stats" }) do
  _M[name] = kernel[name]
end
_M.errors = kernel.errors
local errors = kernel.errors

-- loops and waiting (luv is loaded only when a luv loop is first needed)
_M.delay = loop.delay
_M.await = loop.await
_M.manual_loop = loop.manual_loop
_M.get_loop = loop.get_loop
_M.set_loop = loop.set_loop
_M.now = loop.now

-- templates
_M.html = html.html
_M.raw = html.raw
_M.escape = html.escape

-- declarations
_M.define_route = hub_mod.define_route
_M.define_component = component.define_component
_M.define_cache = cache.define
_M.result = hub_mod.result
_M.null = json.null
_M.json = json
_M.read_snapshot = ssr.read_snapshot
_M.create_app = runtime.create_app

--- An isolated hub with the same :use as Async.use; its runtimes render with
-- the ssr layer.
function _M.define_app(decls)
  local ok, app = pcall(hub_mod.define_app, decls, { ssr = ssr })
  if not ok then error(app, 2) end
  return app
end

--- Declares an async signal for a hub (instantiated per runtime, never run here).
function _M.define_async(fn, opts)
  if type(fn) ~= "function" then errors.argument("define_async expects a function, got " .. type(fn)) end
  return { __async_decl = true, fn = fn, opts = opts }
end

-- the default hub
local hub = hub_mod.define_app(nil, { ssr = ssr })
_M.hub = hub
_M.registry = hub_mod.inspector(hub)

--- Registers declarations on the default hub: use({ kind = map, ... }) or
-- use(kind, map); before or after a runtime exists (see lua-api.md).
function _M.use(kind, map)
  if type(kind) == "table" and map == nil then
    for k, m in pairs(kind) do
      if kernel.is_signal(m) or kernel.is_computed(m) or kernel.is_async(m) then
        errors.argument("Async.use: pass { signal = { id = value } }, got a signal under '" .. tostring(k) .. "'")
      end
    end
  end
  local ok, err = pcall(hub.use, hub, kind, map)
  if not ok then error(err, 2) end
  return _M
end

--- A runtime of the default hub (opts as create_app's).
function _M.start(opts)
  local ok, rt = pcall(runtime.create_app, hub, opts)
  if not ok then error(rt, 2) end
  return rt
end

return _M
