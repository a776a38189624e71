-- The reactive kernel in one page: signals, computeds, effects, batches,
-- transactions and an async signal driven by the active loop.
--   luajit examples/kernel.lua        (manual loop: time moves by advance)
--   build/asyncrt examples/kernel.lua (real timers on libuv)
local Async = require("async")

local loop
if not package.loaded.asyncrt then     -- plain luajit: nobody runs libuv, use a manual clock
  loop = Async.manual_loop()
  Async.set_loop(loop)
end

local price = Async.signal(10)
local quantity = Async.signal(2)
local total = Async.computed(function() return price() * quantity() end)

local dispose = Async.effect(function()
  print(("total = %d"):format(total()))
end)

-- one commit, one effect run
Async.batch(function()
  price:set(12)
  quantity:set(3)
end)

-- all or nothing
local ok, err = pcall(Async.transaction, function()
  price:set(1000)
  error("payment declined", 0)
end)
print("transaction:", ok, err, "price is still", price())

-- an async signal: a coroutine, versioned and cancellable
local product_id = Async.signal("sku-1")
local product = Async.async_signal(function(ctx)
  local id = product_id()               -- read before the first yield: a dependency
  Async.delay(100, ctx.abort)           -- aborted (and never resumed) if product_id changes
  return { id = id, title = "Keyboard " .. id }
end)

Async.effect(function()
  local st = product:state()
  print(("product: status=%s version=%d title=%s"):format(st.status, st.version,
    st.value and st.value.title or "-"))
end)

product_id:set("sku-2")                 -- aborts run 1, starts run 2
if loop then loop:advance(100) end

dispose()
