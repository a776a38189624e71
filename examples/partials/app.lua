--- The seed's partials example: route partials are server-rendered
-- fragment functions. A partial can call server functions (here a slow
-- "database", cached for 30 s) and render components, which render their
-- own children. Links swap the route boundary with the next partial.
--
--   build/asyncrt examples/partials/app.lua   then open http://127.0.0.1:8080/
local Async = require("async")

local DB = {
  { id = "sku-1", title = "Keyboard", price = 129.5, stars = 4 },
  { id = "sku-2", title = "Headphones", price = 89, stars = 5 },
}

-- Components: plain fragments (no state), nested through self:render.
local Price = Async.define_component(function(_, props)
  return Async.html[[<span class="price">{{ amount }} EUR</span>]] { amount = ("%.2f"):format(props.amount) }
end)

local Stars = Async.define_component(function(_, props)
  return Async.html[[<span class="stars" title="{{ n }} of 5">{{ text }}</span>]] {
    n = props.n, text = ("*"):rep(props.n) .. ("-"):rep(5 - props.n),
  }
end)

local ProductCard = Async.define_component(function(self, props)
  local p = props.product
  return Async.html[[
<article class="card">
  <h2><a href="{{ href }}">{{ title }}</a></h2>
  <p>{{ price }} {{ stars }}</p>
</article>]] {
    href = props.base .. "/products/" .. p.id, title = p.title,
    price = self:render("Price", { amount = p.price }), stars = self:render("Stars", { n = p.stars }),
  }
end)

local app = Async.define_app()

app:use({
  component = { Price = Price, Stars = Stars, ProductCard = ProductCard },
  cache = { server = { products = Async.define_cache({ ttl = 30000 }) } },   -- keys "products:..."
  server = {
    ["products.list"] = function(self)
      return self.cache:get_or_set("products:all", function()
        Async.delay(50, self.abort)   -- the database round trip
        return DB
      end)
    end,
    ["products.get"] = function(self, id)
      for _, p in ipairs(self.server.products.list()) do
        if p.id == id then return p end
      end
      return nil
    end,
  },
  partial = {
    -- the list: one server call, one card component per product
    ["products.page"] = function(self)
      local base = self.request and self.request.prefix or ""   -- the gallery's mount prefix
      local cards = {}
      for i, p in ipairs(self.server.products.list()) do
        cards[i] = self:render("ProductCard", { product = p, base = base })
      end
      return { title = "Products", html = Async.html[[<h1>Products</h1>{{ cards }}]] { cards = cards } }
    end,
    -- one product, or a 404 fragment
    ["product.page"] = function(self, params)
      local base = self.request and self.request.prefix or ""
      local p = self.server.products.get(params.id)
      if not p then
        return { status = 404, title = "Not found", html = Async.html[[
<h1>No product {{ id }}</h1><p><a href="{{ base }}/">All products</a></p>]] { id = params.id, base = base } }
      end
      local card = self:render("ProductCard", { product = p, base = base })
      return { title = p.title, html = Async.html[[
{{ card }}
<p><a href="{{ base }}/">All products</a></p>]] { card = card, base = base } }
    end,
  },
  route = {
    ["/"] = Async.define_route("products.page"),
    ["/products/:id"] = Async.define_route("product.page"),
  },
})

return Async.main(app)
