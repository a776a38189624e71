--- A small counter (until examples/counter/app.lua lands in main): a
-- signal bound to text and two buttons whose Lua handlers run on the server
-- (`POST /__async/handler/increment` answers with the changed signal).
--
--   nginx: examples/openresty/nginx.conf mounts it at /counter
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

return app
