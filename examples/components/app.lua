--- The seed's components example: scoped fragment components. A Toggle
-- instance registers a scoped signal (its id starts with the instance's
-- scope, `home.Toggle.1`), carries the lifecycle pseudo-events `on:attach`
-- and `on:visible` (run in the browser by the handlers of the page script,
-- examples/components/public/app.js), and a Product renders an async
-- boundary with `self:suspense`.
--
-- Clicking a toggle runs the page-level Lua handler `toggle` on the server.
-- A component's own handlers (`self:handler`) cannot be called over HTTP
-- yet: each handler request runs in a fresh runtime where the component was
-- never rendered, so its scoped handler does not exist there (see README).
--
--   build/asyncrt examples/components/app.lua   then open http://127.0.0.1:8080/
local Async = require("async")

local SETTINGS = { wifi = true, bluetooth = false, airplane = false }

local Toggle = Async.define_component(function(self, props)
  local label = self:signal("label", props.label)   -- id: <scope>.label, e.g. home.Toggle.1.label
  return Async.html[[
<button type="button" class="toggle" data-key="{{ key }}"
  on:click="toggle($dataset)" on:attach="attached" on:visible="seen"
  class:on="settings.{{ key }}"><span signal:text="{{ label }}"></span></button>]] {
    key = props.key, label = label,
  }
end)

local Product = Async.define_component(function(self, props)
  local product = self:async_signal("product", function(ctx)
    return ctx.server.products.get(props.id)
  end)
  return Async.html[[<article async:boundary="{{ product }}">{{ views }}</article>]] {
    product = product,
    views = self:suspense(product, {
      loading = function() return Async.html[[<p class="loading">Loading...</p>]] {} end,
      ready = function(p) return Async.html[[<h2 signal:text="{{ p }}.title"></h2>]] { p = p } end,
      error = function(p) return Async.html[[<p signal:text="{{ p }}.$error.message"></p>]] { p = p } end,
    }),
  }
end)

local app = Async.define_app()

app:use({
  signal = { settings = SETTINGS, lifecycle = "" },
  component = { Toggle = Toggle, Product = Product },
  handler = {
    -- on:click="toggle($dataset)": the button's data-* attributes
    toggle = function(self, dataset)
      local key = dataset and dataset.key
      if SETTINGS[key] == nil then error({ code = "unknown-setting", message = "No setting " .. tostring(key) }, 0) end
      self.signals:update("settings." .. key, function(on) return not on end)
    end,
  },
  server = {
    ["products.get"] = function(self, id)
      Async.delay(150, self.abort)
      return ({ ["sku-1"] = { title = "Keyboard" } })[id] or error({ code = "not-found", message = "No " .. id }, 0)
    end,
  },
  partial = {
    home = function(self)
      return {
        title = "Components",
        html = Async.html[[
<h1>Components</h1>
<p>{{ wifi }} {{ bluetooth }}</p>
{{ product }}
<p>Lifecycle (from the page script, app.js):</p>
<pre signal:text="lifecycle"></pre>
<div class="spacer">Scroll down: the last toggle runs on:visible when it comes into view.</div>
<p>{{ airplane }}</p>]] {
          wifi = self:render("Toggle", { key = "wifi", label = "Wi-Fi" }),
          bluetooth = self:render("Toggle", { key = "bluetooth", label = "Bluetooth" }),
          product = self:render("Product", { id = "sku-1" }),
          airplane = self:render("Toggle", { key = "airplane", label = "Airplane mode" }),
        },
      }
    end,
  },
  route = { ["/"] = Async.define_route("home") },
})

-- The default layout with this example's stylesheet and page script
-- (public/): app.js registers the browser handlers `attached` and `seen`;
-- it loads after the client.
local function head(page)
  return Async.html[[<link rel="stylesheet" href="{{ p }}/style.css"><script src="{{ p }}/app.js" defer></script>]] {
    p = page.prefix or "" }
end

return Async.main(app, {
  public = "public",   -- examples/components/public: /style.css, /app.js (under the mount's prefix)
  head = head,
  -- handlers that exist only in the browser, so the server accepts their names
  runtime = { client_handlers = { "attached", "seen" } },
})
