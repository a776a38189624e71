--- The gallery: one server for all nine examples, each mounted under its
-- own prefix (/counter, /product, ...), with an index page at / linking
-- them.
--
--   build/asyncrt examples/gallery.lua   then open http://127.0.0.1:8080/
--   HOST=0.0.0.0 PORT=9000 build/asyncrt examples/gallery.lua
--
-- Each example's app.lua ends with `return Async.main(app, options)`: run
-- as a script it serves itself; loaded from here it returns its app, which
-- keeps those options (app.serve_opts). Async.mount turns them into the
-- example's mount: its own public/ folder, layout or head, title and
-- runtime options (its browser handlers), under its prefix.
local Async = require("async")

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

-- "/" is the index in its own layout; each example is mounted with the
-- options its app.lua gave Async.main (a relative public is relative to
-- the example's folder)
local apps = { ["/"] = { app = index, layout = index_layout } }
for _, e in ipairs(EXAMPLES) do
  local dir = here .. e[1]
  apps["/" .. e[1]] = Async.mount(dofile(dir .. "/app.lua"), { root = dir })
end

return Async.main(index, { apps = apps })
