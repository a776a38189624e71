-- A peak of about `n` nodes (signals, computeds reading them, effects
-- reading those, in thirds) made in a scope and dropped before return: the
-- kernel frees them at its next safe points and, once node_top is a quarter
-- of the peak, rebuilds its id-indexed tables (docs/kernel.md, "Ids and the
-- tables after a peak"). Used by spec/kernel_compact_spec.lua and the model
-- checker's peak step.
local Async = require("async")

return function(n)
  local dispose = Async.scope(function()
    for _ = 1, n / 3 do
      local s = Async.signal(1)
      local c = Async.computed(function() return s() + 1 end)
      Async.effect(function() c() end)
    end
  end)
  dispose()
end
