--- The apps examples/openresty/nginx.conf serves: the counter and product
-- examples (examples/NAME/app.lua) under /counter and /product, as the
-- gallery mounts them, and a small index at /. Loaded once, in
-- init_by_lua_block; the workers share it.
--
--   init_by_lua_block    { demo = require("examples.openresty.apps").options("/path/to/checkout/examples") }
--   content_by_lua_block { require("async.ngx").handle(nil, demo) }
--
-- Each example's app.lua ends with `return Async.main(app, options)`:
-- loaded from here it returns its app (Async.main serves only when the file
-- is the script being run), which keeps those options (app.serve_opts);
-- Async.mount makes the example's mount from them (its own public/ folder,
-- head or layout, runtime options), as examples/gallery.lua does.
local Async = require("async")

local _M = {}

local EXAMPLES = { "counter", "product" }

--- examples/NAME/app.lua (under `dir`) -> its app and the options it gives
-- Async.main.
local function load(dir, name)
  local app = dofile(dir .. "/" .. name .. "/app.lua")
  return app, app.serve_opts or {}
end
_M.load = load

local index = Async.define_app()
index:use({
  partial = {
    index = function()
      return { title = "asyncrt under nginx", html = Async.html[[
<h1>asyncrt under nginx</h1>
<ul>
  <li><a href="/counter/">counter</a>: a signal and Lua handlers over HTTP</li>
  <li><a href="/product/products/sku-1">product</a>: an async signal streamed in as it loads</li>
</ul>]] {} }
    end,
  },
  route = { ["/"] = Async.define_route("index") },
})

local function index_layout(page)
  return Async.html[[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><script src="{{ client }}" defer></script></head>
<body><main async:container="mpa">{{ body }}</main></body></html>]] {
    title = page.title, client = page.client or "/__async/client.js", body = Async.raw(page.body),
  }
end

--- The options of async.ngx's handle (or Async.serve) for the examples
-- under `dir` (the checkout's examples/ folder): the index at / in its own
-- layout, each example mounted with its own options (examples/NAME/public
-- is /NAME/...), and `extra` merged in (env, cache, limits...).
function _M.options(dir, extra)
  local apps = { ["/"] = { app = index, layout = index_layout } }
  for _, name in ipairs(EXAMPLES) do
    local d = dir .. "/" .. name
    apps["/" .. name] = Async.mount((load(dir, name)), { root = d })
  end
  local o = { apps = apps }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

return _M
