-- Regression: every runtime used to stay alive forever. An async signal's
-- finalizer closed over the signal, and LuaJIT keeps finalizers in a table
-- with weak keys and strong values, so the signal, its context and its whole
-- runtime were never collected (~8 KB and 9 nodes per request, requests
-- getting slower as the heap grew). Schedulers were held by a strong table
-- too. A server creates a runtime per request: memory must stay flat.
local Async = require("async")

local function requests(app, loop, n, destroy)
  for i = 1, n do
    local co = coroutine.create(function()
      local rt = Async.create_app(app)
      local r = rt:render("/products/sku-" .. (i % 2 + 1))
      assert(r.status == 200)
      if destroy then rt:destroy() end
    end)
    assert(coroutine.resume(co))
    loop:advance(25)
  end
  jit.flush()
  collectgarbage()
  collectgarbage()
  Async.signal(nil)   -- creating a node frees the ones whose handles were collected
  return collectgarbage("count"), Async.core_stats().live_nodes
end

describe("runtimes per request do not leak", function()
  local app, loop
  setup(function()
    loop = Async.manual_loop()
    Async.set_loop(loop)
    app = dofile("examples/product.lua")
  end)

  for _, destroy in ipairs({ false, true }) do
    it(destroy and "with rt:destroy()" or "when runtimes are just dropped", function()
      local kb1, nodes1 = requests(app, loop, 1000, destroy)
      local kb2, nodes2 = requests(app, loop, 2000, destroy)
      -- 2,000 more requests: a leak of ~8 KB each would add ~16 MB
      assert.is_true(kb2 - kb1 < 1024, ("heap grew by %.0f KB over 2,000 requests"):format(kb2 - kb1))
      assert.is_true(nodes2 - nodes1 < 1000, ("live nodes grew by %d over 2,000 requests"):format(nodes2 - nodes1))
    end)
  end
end)
