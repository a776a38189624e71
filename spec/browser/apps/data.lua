--- The lab's counter written with the data-* attribute prefixes
-- (protocol.md "Attributes": configurable prefixes).
local Async = require("async")

local app = Async.define_app()

app:use({
  signal = { count = 0, hot = false },
  handler = {
    increment = function(self) self.signals:update("count", function(c) return c + 1 end) end,
  },
  partial = {
    data = function()
      return Async.html[[
<strong id="count" data-signal-text="count" data-class-hot="hot">0</strong>
<button type="button" id="inc" data-on-click="increment">+1</button>]] {}
    end,
  },
  route = { ["/data"] = Async.define_route("data") },
})

return app
