--- The seed's partials and router example: server-rendered partial fragments
-- for routes, a partial that awaits a server function, and an explicit
-- fallback page (README: "Router And Partials").
--
--   luajit examples/render.lua partials /
--   luajit examples/render.lua partials /products/sku-1
--   luajit examples/render.lua partials /nowhere
local Async = require("async")

local DB = { ["sku-1"] = { title = "Keyboard" }, ["sku-2"] = { title = "Headphones" } }

local app = Async.define_app()

app:use({
  server = {
    ["products.get"] = function(self, id)
      return self.cache:get_or_set("products:" .. id, function()
        Async.delay(10)                          -- the database round trip
        return DB[id]
      end)
    end,
  },
  partial = {
    ["home.page"] = function()
      return Async.html[[<h1>Home</h1>]] {}
    end,
    -- the seed's `async function ({ id }) { const product = await this.server.products.get(id); ... }`
    ["product.page"] = function(self, params)
      local product = self.server.products.get(params.id)
      if not product then
        return { html = Async.html[[<h1>No product {{ id }}</h1>]] { id = params.id }, status = 404 }
      end
      return { html = Async.html[[<h1>{{ title }}</h1>]](product), title = product.title }
    end,
    ["notFound.page"] = function(self)
      return { html = Async.html[[<h1>Not found: {{ path }}</h1>]] { path = self.signals:get("router.path") },
               status = 404, title = "Not found" }
    end,
  },
  route = {
    ["/"] = Async.define_route("home.page"),
    ["/products/:id"] = Async.define_route("product.page"),
    ["*"] = Async.define_route("notFound.page"),
  },
  cache = { server = { ["products.get"] = Async.define_cache({ ttl = 30000 }) } },
})

return app
