--- asyncrt: `local Async = require("async")`.
-- The default app hub, carrying every helper function (lua-api.md). This file
-- only assembles the modules; each concern lives in its own module.
local kernel = require("async.kernel")
local async_signal = require("async.async_signal")
local scheduler = require("async.scheduler")
local abort = require("async.abort")
local core = require("async.core")
local app = require("async.app")
local component = require("async.component")
local signals = require("async.signals")
local cache = require("async.cache")
local html = require("async.html")
local json = require("async.json")
local errors = require("async.errors")
local render = require("async.render")   -- adds rt:render, rt:render_document, rt:render_stream

local type, error, pairs, tostring, pcall = type, error, pairs, tostring, pcall

local _M = {}

-- kernel primitives
_M.signal = kernel.signal
_M.computed = kernel.computed
_M.effect = kernel.effect
_M.scope = kernel.scope
_M.batch = kernel.batch
_M.transaction = kernel.transaction
_M.untrack = kernel.untrack
_M.flush = kernel.flush
_M.on_cleanup = kernel.on_cleanup
_M.is_signal = kernel.is_signal
_M.is_computed = kernel.is_computed
_M.async_signal = async_signal.async_signal
_M.is_async = async_signal.is_async
_M.resume = kernel.resume
_M.abort_token = abort.new
_M.is_abort = abort.is
_M.core_stats = core.stats

--- Creates a scheduler; see lua-api.md "Scheduler".
function _M.create_scheduler(opts)
  return scheduler.new(opts)
end

-- loops and waiting (async.loop is loaded on first use: it may load luv)
local loop_mod
local function loop()
  if loop_mod == nil then
    loop_mod = require("async.loop")
    local run_of = kernel._internal.run_of()
    loop_mod.set_resume_hook(function(co, ...)
      -- an async run handles its own end (commit, error state, abort);
      -- any other coroutine's error must not be lost
      local is_run = run_of[co] ~= nil
      local ok, err = kernel.resume(co, ...)
      if not ok and not is_run then loop_mod.on_error(err, co) end
      return ok, err
    end)
  end
  return loop_mod
end

-- Waiting inside a batch would hold the batch open for every coroutine (the
-- batch depth is one per Lua state), so it is refused.
local function check_not_batched(what)
  if kernel._internal.batch_depth() > 0 then
    error(what .. " cannot wait inside a batch, transaction or effect body: the commit would wait for it", 3)
  end
end

function _M.delay(ms, token)
  check_not_batched("Async.delay")
  return loop().delay(ms, token)
end

function _M.await(start, token)
  check_not_batched("Async.await")
  return loop().await(start, token)
end
function _M.manual_loop() return loop().manual_loop() end
function _M.get_loop() return loop().get_loop() end
function _M.set_loop(l) return loop().set_loop(l) end
function _M.now() return loop().now() end

-- templates: a signal object in a binding attribute becomes its registered id
html.set_ref_resolver(function(v) return signals.id_of[v] end)
_M.html = html.html
_M.raw = html.raw
_M.escape = html.escape

-- declarations
_M.define_app = app.define_app
_M.create_app = app.create_app
_M.define_route = app.define_route
_M.define_component = component.define_component
_M.define_cache = cache.define
_M.result = app.result
_M.null = json.null
_M.json = json
_M.read_snapshot = render.read_snapshot

--- Declares an async signal for a hub (instantiated per runtime, never run here).
function _M.define_async(fn, opts)
  if type(fn) ~= "function" then error("define_async expects a function, got " .. type(fn), 2) end
  return { __async_decl = true, fn = fn, opts = opts }
end

-- the default hub
local hub = app.define_app()
_M.hub = hub
_M.registry = app.inspector(hub)

--- Registers declarations on the default hub: use({ kind = map, ... }) or
-- use(kind, map); before or after a runtime exists (see lua-api.md).
function _M.use(kind, map)
  if type(kind) == "table" and map == nil then
    for k, m in pairs(kind) do
      if kernel.is_signal(m) or kernel.is_computed(m) or async_signal.is_async(m) then
        error("Async.use: pass { signal = { id = value } }, got a signal under '" .. tostring(k) .. "'", 2)
      end
    end
  end
  local ok, err = pcall(hub.use, hub, kind, map)
  if not ok then error(err, 2) end
  return _M
end

--- A runtime of the default hub (opts as create_app's).
function _M.start(opts)
  local ok, rt = pcall(app.create_app, hub, opts)
  if not ok then error(rt, 2) end
  return rt
end

_M.errors = errors

return _M
