--- asyncrt: `local Async = require("async")`.
-- The default app hub, carrying every helper function (lua-api.md). This file
-- only assembles the modules; each concern lives in its own module.
local kernel = require("async.kernel")
local async_signal = require("async.async_signal")
local scheduler = require("async.scheduler")
local abort = require("async.abort")
local core = require("async.core")

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
    if loop_mod.set_resume_hook then loop_mod.set_resume_hook(kernel.resume) end
  end
  return loop_mod
end

function _M.delay(ms, token) return loop().delay(ms, token) end
function _M.await(start, token) return loop().await(start, token) end
function _M.manual_loop() return loop().manual_loop() end
function _M.get_loop() return loop().get_loop() end
function _M.set_loop(l) return loop().set_loop(l) end
function _M.now() return loop().now() end

return _M
