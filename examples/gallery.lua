--- The gallery: one server for all nine examples, each mounted under its
-- own prefix (/counter, /product, ...), with an index page at / linking
-- them.
--
--   build/asyncrt examples/gallery.lua   then open http://127.0.0.1:8080/
--   HOST=0.0.0.0 PORT=9000 build/asyncrt examples/gallery.lua
--
-- Each example's app.lua ends with `return Async.main(app, options)`: run
-- as a script it serves itself; loaded from here it just returns its app.
-- A server has one layout, one public folder and one set of runtime
-- options for all its mounts, so the gallery also collects each example's
-- options (`load` catches them while it loads the file): its layout is
-- chosen by the page's prefix, its browser handlers are accepted, and
-- public/ holds every example's files under its prefix (public/NAME/).
local Async = require("async")
local ssr = require("async.ssr")

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

local EXAMPLES = {
  { "counter", "Signal text binding and delegated handlers (Lua handlers over HTTP)" },
  { "product", "Async signal loading, ready and error boundaries" },
  { "components", "Scoped fragment components and lifecycle hooks" },
  { "streaming", "Boundaries streamed as they settle, handlers inside them" },
  { "server-call", "A form calling a server function" },
  { "router", "ssr-spa navigation: route partials swapped into the route boundary" },
  { "partials", "Server-rendered partial fragments with server calls and nested components" },
  { "cache", "Browser and server cache declarations: hits, fills, single flight" },
  { "ssr", "Server render output and the browser activation snapshot" },
}

-- examples/NAME/app.lua -> its app and the options it passes to Async.main
local function load(name)
  local main, options = Async.main, nil
  Async.main = function(app, opts) options = opts or {}; return app end
  local ok, app = pcall(dofile, here .. name .. "/app.lua")
  Async.main = main
  if not ok then error(app, 0) end
  return app, options
end

local index = Async.define_app()
index:use({
  partial = {
    index = function()
      local items = {}
      for i, e in ipairs(EXAMPLES) do
        items[i] = Async.html[[<li><a href="/{{ name }}/">{{ name }}</a>: {{ text }}</li>]] { name = e[1], text = e[2] }
      end
      return { title = "asyncrt examples", html = Async.html[[
<h1>asyncrt examples</h1>
<p>The seed's nine examples as Lua apps, each under its own prefix. Each one also runs alone:
<code>build/asyncrt examples/NAME/app.lua</code>.</p>
<ul>{{ items }}</ul>]] { items = items } }
    end,
  },
  route = { ["/"] = Async.define_route("index") },
})

-- The index's links lead to other apps: `async:container="mpa"` keeps the
-- client's router from fetching them as partials of this one.
local function index_layout(page)
  return Async.html[[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><script src="{{ client }}" defer></script></head>
<body><main async:container="mpa">{{ body }}</main></body></html>]] {
    title = page.title, client = page.client or "/__async/client.js", body = Async.raw(page.body),
  }
end

local apps, layouts, client_handlers = { ["/"] = index }, { [""] = index_layout }, {}
for _, e in ipairs(EXAMPLES) do
  local prefix = "/" .. e[1]
  local app, options = load(e[1])
  apps[prefix] = app
  layouts[prefix] = options.layout or ssr.default_layout
  for _, h in ipairs(options.runtime and options.runtime.client_handlers or {}) do
    client_handlers[#client_handlers + 1] = h
  end
end

return Async.main(index, {
  apps = apps,
  -- each page in its own example's layout (page.prefix is its mount)
  layout = function(page) return layouts[page.prefix or ""](page) end,
  public = "public",   -- examples/public: /components/app.js is public/components/app.js
  runtime = { client_handlers = client_handlers },
})
