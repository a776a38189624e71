-- The asyncrt adapter for bench/cases.lua, the Lua counterpart of the
-- framework adapters of milomg/js-reactivity-benchmark (bench/node/frameworks.mjs).
-- asyncrt's own handles already have the shape the cases use (handle() reads,
-- handle:set(v) writes), so signal and computed are passed straight through
-- and the adapter costs nothing on the hot path. Effects are passed through
-- too: asyncrt takes only a returned *function* for a cleanup and ignores any
-- other result, and no case's effect returns a function. (The JS adapters wrap
-- effects because alien-signals 3 calls any truthy result as a cleanup.)
local Async = require("async")

local A = { name = "asyncrt" }

local signal, computed, effect, batch = Async.signal, Async.computed, Async.effect, Async.batch
local scope = Async.scope

local disposers = {}

function A.signal(v) return signal(v) end
function A.computed(fn) return computed(fn) end

if scope then
  function A.effect(fn)
    effect(fn)
  end
  function A.build(fn)
    local out
    disposers[#disposers + 1] = scope(function() out = fn() end)
    return out
  end
else
  -- no scopes: dispose each effect on cleanup, as the preact adapter does
  function A.effect(fn)
    disposers[#disposers + 1] = effect(fn)
  end
  function A.build(fn) return fn() end
end

function A.batch(fn, ...) batch(fn, ...) end

function A.cleanup()
  local d = disposers
  disposers = {}
  for i = 1, #d do d[i]() end
end

--- A full collection that frees the nodes of collected handles at once
-- (without it the kernel sweeps a large node array a slice per GC cycle)
A.collect = Async.collect_garbage

--- { node_bytes=, link_bytes=, live_nodes=, live_links= } of the C core, or nil
function A.stats()
  if Async.core_stats then return Async.core_stats() end
  return nil
end

return A
