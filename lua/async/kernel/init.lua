--- The reactive kernel (kernel.md): `require("async.kernel")` gives its
-- public names in one table. The parts:
--   core       the C core through the FFI (graph structure, scheduler queues)
--   graph      signals, computeds, effects, scopes, batches, transactions
--   scheduler  the phased scheduler (made through graph.create_scheduler)
--   task       async signals: coroutine runs with versions and abort
--   abort      abort tokens
--   errors     the library's one error type
local core = require("async.kernel.core")
local graph = require("async.kernel.graph")
local task = require("async.kernel.task")
local abort = require("async.kernel.abort")
local errors = require("async.kernel.errors")

local _M = {}

for _, name in ipairs({ "signal", "computed", "effect", "scope", "batch", "transaction", "untrack", "flush",
                        "on_cleanup", "is_signal", "is_computed", "resume", "create_scheduler",
                        "collect_garbage" }) do
  _M[name] = graph[name]
end
_M.async_signal = task.async_signal
_M.is_async = task.is_async
_M.abort_token = abort.new
_M.is_abort = abort.is
_M.core_stats = core.stats
_M.errors = errors

return _M
