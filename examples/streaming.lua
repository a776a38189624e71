--- The seed's streaming example: the shell goes out at once with each
-- boundary's loading template; the product (50 ms) and the recommendations
-- (200 ms) arrive later as <template async:fill> swaps whose content keeps
-- delegated handlers working (README: "Streaming").
--
--   luajit examples/render.lua streaming /products/sku-1 --stream
local Async = require("async")

local app = Async.define_app()

app:use({
  signal = {
    productId = "sku-1",
    product = Async.define_async(function(self)
      local id = self.signals:get("productId")
      Async.delay(50, self.abort)
      return { id = id, title = "Keyboard" }
    end),
    recs = Async.define_async(function(self)
      Async.delay(200, self.abort)
      return { { title = "Wrist rest" }, { title = "Keycaps" } }
    end),
  },
  handler = {
    selectProduct = function(self) self.signals:set("selected", self.signals:get("productId")) end,
  },
  partial = {
    ["product.page"] = function(self, params)
      self.signals:set("productId", params.id)
      return Async.html[[
<section async:boundary="product">
  <template async:loading="product"><p>Loading product...</p></template>
  <template async:ready="product">
    <article>
      <h1 signal:text="product.title"></h1>
      <button type="button" on:click="selectProduct">Select</button>
    </article>
  </template>
</section>
<aside async:boundary="recs">
  <template async:loading="recs"><p>Loading recommendations...</p></template>
  <template async:ready="recs">
    <ul><li signal:text="recs.1.title"></li><li signal:text="recs.2.title"></li></ul>
  </template>
  <template async:error="recs"><p>No recommendations (<span signal:text="recs.$error.code"></span>)</p></template>
</aside>]] {}
    end,
  },
  route = { ["/products/:id"] = Async.define_route("product.page") },
})

return app
