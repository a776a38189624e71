--- The seed's components example: a Toggle with lifecycle handlers, class
-- and attribute bindings, and a Product rendered through self:suspense
-- (README: "Components").
--
--   luajit examples/render.lua components /
local Async = require("async")

local Toggle = Async.define_component(function(self)
  local selected = self:signal(false)
  local attach = self:handler("attach", function(ctx) ctx.element.dataset.attached = "true" end)
  local visible = self:handler("visible", function(ctx) ctx.element.dataset.visible = "true" end)
  -- the seed's signal:class="${["toggle", { active: selected }]}", as a computed
  local classes = self:computed("classes", function() return { "toggle", { active = selected() } } end)
  return Async.html[[
<button
  type="button"
  on:attach="{{ attach }}"
  on:visible="{{ visible }}"
  on:click="{{ toggle }}"
  class:selected="{{ selected }}"
  signal:class="{{ classes }}"
  signal:attr:aria-pressed="{{ selected }}"
>
  Toggle
</button>]] {
    attach = attach, visible = visible, selected = selected, classes = classes,
    toggle = self:handler(function() selected:update(function(v) return not v end) end),
  }
end)

local Product = Async.define_component(function(self)
  local product = self:async_signal("product", function(ctx)
    return ctx.server.products.get("sku-1")
  end)
  return Async.html[[
<article async:boundary="{{ product }}">
  {{ views }}
</article>]] {
    product = product,
    views = self:suspense(product, {
      loading = function() return Async.html[[<p>Loading...</p>]] {} end,
      ready = function(p) return Async.html[[<h1 signal:text="{{ p }}.title"></h1>]] { p = p } end,
      error = function(p) return Async.html[[<p signal:text="{{ p }}.$error.message"></p>]] { p = p } end,
    }),
  }
end)

-- the shorthand: one function is the ready view
local ProductTitle = Async.define_component(function(self)
  local product = self:async_signal("product", function(ctx) return ctx.server.products.get("sku-2") end)
  return Async.html[[<h2 async:boundary="{{ product }}">{{ views }}</h2>]] {
    product = product,
    views = self:suspense(product, function(p)
      return Async.html[[<span signal:text="{{ p }}.title"></span>]] { p = p }
    end),
  }
end)

local app = Async.define_app()

app:use({
  component = { Toggle = Toggle, Product = Product, ProductTitle = ProductTitle },
  server = {
    ["products.get"] = function(self, id)
      return self.cache:get_or_set("products:" .. id, function()
        return ({ ["sku-1"] = { title = "Keyboard" }, ["sku-2"] = { title = "Headphones" } })[id]
      end)
    end,
  },
  partial = {
    home = function(self)
      return Async.html[[<div id="app">{{ toggle }}{{ product }}{{ title }}</div>]] {
        toggle = self:render("Toggle"), product = self:render("Product"), title = self:render("ProductTitle"),
      }
    end,
  },
  route = { ["/"] = Async.define_route("home") },
})

return app
