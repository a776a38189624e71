--- The seed's product example: an async signal with loading, ready and error
-- boundary templates. The product loads on the server (a 300 ms
-- `Async.delay`, aborted if the request goes away); the page streams, so
-- the browser shows the loading template first and the product (or the
-- error) when it arrives. /products/sku-404 fails on purpose.
--
--   build/asyncrt examples/product/app.lua   then open http://127.0.0.1:8080/products/sku-1
local Async = require("async")

-- the "database"
local PRODUCTS = {
  ["sku-1"] = { title = "Keyboard", price = 129.5 },
  ["sku-2"] = { title = "Headphones", price = 89 },
}
local fetches = 0   -- counts loads, so a refresh shows it really loaded again

local app = Async.define_app()

app:use({
  signal = {
    productId = "sku-1",
    -- reads productId before its first wait, so a new productId reruns it
    -- (and aborts the run in flight)
    product = Async.define_async(function(ctx)
      local id = ctx.signals:get("productId")
      Async.delay(300, ctx.abort)
      local p = PRODUCTS[id]
      if not p then error({ code = "not-found", message = "There is no product " .. id .. "." }, 0) end
      fetches = fetches + 1
      return { id = id, title = p.title, price = p.price, fetch = fetches }
    end),
  },
  partial = {
    ["product.page"] = function(self, params)
      local id = params.id or "sku-1"
      self.signals:set("productId", id)
      -- the mount prefix when the gallery serves this app ("" on its own)
      local base = self.request and self.request.prefix or ""
      return {
        title = "Product " .. id,
        html = Async.html[[
<nav>
  <a href="{{ base }}/products/sku-1">Keyboard</a>
  <a href="{{ base }}/products/sku-2">Headphones</a>
  <a href="{{ base }}/products/sku-404">A missing product</a>
</nav>
<section async:boundary="product" class:pending="router.pending">
  <template async:loading="product">
    <p class="loading">Loading {{ id }}...</p>
  </template>
  <template async:ready="product">
    <h1 signal:text="product.title"></h1>
    <p>Price: <span signal:text="product.price"></span> (fetch #<span signal:text="product.fetch"></span>)</p>
  </template>
  <template async:error="product">
    <p class="error" signal:text="product.$error.message"></p>
  </template>
</section>
<form method="get" action="{{ base }}/products/{{ id }}">
  <button signal:attr:disabled="router.pending">Refresh</button>
</form>]] { base = base, id = id },
      }
    end,
  },
  route = {
    ["/"] = Async.define_route("product.page"),   -- sku-1
    ["/products/:id"] = Async.define_route("product.page"),
  },
})

-- The default layout with this example's stylesheet (public/). The page
-- streams, so the default layout loads the client with `async` (page.stream):
-- each boundary is swapped in as the stream brings it.
local function head(page)
  return Async.html[[<link rel="stylesheet" href="{{ p }}/style.css">]] { p = page.prefix or "" }
end

return Async.main(app, { public = "public", head = head })   -- examples/product/public: /style.css
