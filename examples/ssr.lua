--- The seed's SSR example: the app hub with signals, a handler, a server
-- function with a server cache, a browser cache seeded by the page, and a
-- route; `rt:render(url)` returns the route boundary plus the JSON snapshot
-- the browser activates from (README: "App Hub", "SSR Flow").
--
--   luajit examples/render.lua ssr /products/123
--   luajit examples/render.lua ssr /products/123 --document
local Async = require("async")

local app = Async.define_app()

app:use({
  signal = { count = 0 },
  handler = {
    increment = function(self) self.signals:update("count", function(c) return c + 1 end) end,
  },
  server = {
    ["products.get"] = function(self, id)
      return self.cache:get_or_set("products:" .. id, function() return { id = id, title = "Product " .. id } end)
    end,
  },
  partial = {
    ["product.page"] = function(self, params)
      local product = self.server.products.get(params.id)
      self.browser_cache:set("product:" .. params.id, product)
      return {
        html = Async.html[[
<h1>{{ title }}</h1>
<button type="button" on:click="increment">+</button>
<strong signal:text="count"></strong>]](product),
        title = product.title,
      }
    end,
  },
  route = { ["/products/:id"] = Async.define_route("product.page") },
  cache = {
    browser = { product = Async.define_cache({ ttl = 60000 }) },
    server = { ["products.get"] = Async.define_cache({ ttl = 30000 }) },
  },
})

return app
