--- The seed's product example: an async signal with loading, ready and error
-- boundary templates (README: "Async Signals", "HTML Protocol").
--
--   luajit examples/render.lua product /products/sku-1
--   luajit examples/render.lua product /products/sku-404
local Async = require("async")

local PRODUCTS = {
  ["sku-1"] = { title = "Keyboard", price = 129.5 },
  ["sku-2"] = { title = "Headphones", price = 89 },
}

local app = Async.define_app()

app:use({
  signal = {
    productId = "sku-1",
    -- reads its dependency before the first wait, so a new productId reruns it
    product = Async.define_async(function(self)
      local id = self.signals:get("productId")
      Async.delay(20, self.abort)               -- the seed's fetch(..., { signal: this.abort })
      local product = PRODUCTS[id]
      if not product then error({ message = "Product " .. id .. " was not found", code = "not-found" }, 0) end
      return product
    end),
  },
  handler = {
    selectProduct = function(self) self.signals:set("productId", self.input.id) end,
  },
  partial = {
    ["product.page"] = function(self, params)
      self.signals:set("productId", params.id)
      return Async.html[[
<section async:boundary="product">
  <template async:loading="product">
    <p>Loading...</p>
  </template>
  <template async:ready="product">
    <h1 signal:text="product.title"></h1>
  </template>
  <template async:error="product">
    <p signal:text="product.$error.message"></p>
  </template>
</section>]] {}
    end,
  },
  route = { ["/products/:id"] = Async.define_route("product.page") },
})

return app
