--- The seed's router example, in ssr-spa mode: the server renders the first
-- page; after that, a click on a link fetches only the route's partial
-- (`Accept: application/x-async-partial`) and the client swaps it into the
-- `route` boundary, pushes the URL and updates the `router.*` signals.
-- Back and Forward fetch the earlier partials again. Unknown paths reach the
-- `*` route: a 404 page.
--
--   build/asyncrt examples/router/app.lua   then open http://127.0.0.1:8080/
local Async = require("async")

-- Every page: the navigation, the page's own content, and the router's
-- state. `base` is the mount prefix when the gallery serves this app.
local function page(self, title, content, status)
  local base = self.request and self.request.prefix or ""
  return {
    title = title,
    status = status,
    html = Async.html[[
<nav>
  <a href="{{ base }}/">Home</a>
  <a href="{{ base }}/about">About</a>
  <a href="{{ base }}/products/sku-1">Keyboard</a>
  <a href="{{ base }}/products/sku-2">Headphones</a>
  <a href="{{ base }}/nowhere">A broken link</a>
</nav>
<article class:pending="router.pending">{{ content }}</article>
<dl>
  <dt>router.path</dt><dd><code signal:text="router.path"></code></dd>
  <dt>router.route</dt><dd><code signal:text="router.route"></code></dd>
  <dt>router.pending</dt><dd><code signal:text="router.pending"></code></dd>
</dl>]] { base = base, content = content },
  }
end

local PRODUCTS = { ["sku-1"] = "Keyboard", ["sku-2"] = "Headphones" }

local function not_found(self)
  return page(self, "Not found", Async.html[[<h1>Not found</h1><p>Nothing lives at <code>{{ path }}</code>.</p>]] {
    path = self.signals:get("router.path"),
  }, 404)
end

local app = Async.define_app()

app:use({
  partial = {
    home = function(self)
      return page(self, "Home", Async.html[[<h1>Home</h1><p>Pick a page above; only this part changes.</p>]] {})
    end,
    about = function(self)
      return page(self, "About", Async.html[[<h1>About</h1><p>Routes are Lua partials.</p>]] {})
    end,
    product = function(self, params)
      local title = PRODUCTS[params.id]
      if not title then return not_found(self) end
      return page(self, title, Async.html[[<h1>{{ title }}</h1><p>Product <code>{{ id }}</code></p>]] {
        title = title, id = params.id,
      })
    end,
    not_found = not_found,
  },
  route = {
    ["/"] = Async.define_route("home"),
    ["/about"] = Async.define_route("about"),
    ["/products/:id"] = Async.define_route("product"),
    ["*"] = Async.define_route("not_found"),
  },
})

return Async.main(app)
