--- The seed's SSR example: the server renders the whole page (the product
-- from a cached server function, the counter's current value) and writes
-- the activation snapshot next to it, a JSON script with the page's signals
-- and the browser cache. The browser client activates from that snapshot:
-- it attaches events and bindings and re-renders nothing. The page script
-- prints the snapshot into the page; the counter then works over the
-- server's Lua handlers.
--
--   build/asyncrt examples/ssr/app.lua   then open http://127.0.0.1:8080/products/123
local Async = require("async")

local app = Async.define_app()

app:use({
  signal = { count = 0 },
  handler = {
    increment = function(self) self.signals:update("count", function(c) return c + 1 end) end,
  },
  server = {
    ["products.get"] = function(self, id)
      return self.cache:get_or_set("products:" .. id, function()
        return { id = id, title = "Product " .. id }
      end)
    end,
  },
  partial = {
    ["product.page"] = function(self, params)
      local id = params.id or "123"
      local product = self.server.products.get(id)
      self.browser_cache:set("product:" .. id, product)   -- goes to the browser in the snapshot
      return {
        title = product.title,
        html = Async.html[[
<h1>{{ title }}</h1>
<p>
  <button type="button" on:click="increment">+</button>
  <strong signal:text="count"></strong>
</p>
<h2>The activation snapshot</h2>
<pre class="snapshot" on:attach="showSnapshot">(the page script prints the snapshot here)</pre>]](product),
      }
    end,
  },
  route = {
    ["/"] = Async.define_route("product.page"),   -- product 123
    ["/products/:id"] = Async.define_route("product.page"),
  },
  cache = {
    browser = { product = Async.define_cache({ ttl = 60000 }) },
    server = { products = Async.define_cache({ ttl = 30000 }) },
  },
})

-- The default layout with this example's stylesheet and page script
-- (public/): app.js registers the browser handler showSnapshot (after the client).
local function head(page)
  return Async.html[[<link rel="stylesheet" href="{{ p }}/style.css"><script src="{{ p }}/app.js" defer></script>]] {
    p = page.prefix or "" }
end

return Async.main(app, {
  public = "public",   -- examples/ssr/public
  head = head,
  -- a handler that exists only in the browser, so the server accepts its name
  runtime = { client_handlers = { "showSnapshot" } },
})
