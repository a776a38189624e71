--- The seed's counter: a signal bound to text, two buttons with delegated
-- handlers. The handlers are Lua: each click is a `POST
-- /__async/handler/increment` answered with the signals it changed, so the
-- page works with no JavaScript of its own (and shows the right count with
-- JavaScript off).
--
--   build/asyncrt examples/counter/app.lua      then open http://127.0.0.1:8080/
local Async = require("async")

local app = Async.define_app()

app:use({
  signal = { count = 0 },
  handler = {
    increment = function(self) self.signals:update("count", function(c) return c + 1 end) end,
    decrement = function(self) self.signals:update("count", function(c) return c - 1 end) end,
  },
  partial = {
    counter = function()
      return {
        title = "Counter",
        html = Async.html[[
<h1>Counter</h1>
<p>
  <button type="button" on:click="decrement">-</button>
  <strong signal:text="count"></strong>
  <button type="button" on:click="increment">+</button>
</p>]] {},
      }
    end,
  },
  route = { ["/"] = Async.define_route("counter") },
})

return Async.main(app)
