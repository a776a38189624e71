--- The apps the browser specs serve and how one request runs against
-- them: a fresh runtime per request, time on a manual loop (shared by
-- fixtures.lua, which records, and bridge.lua, which answers live).
local Async = require("async")

local _M = {}

local loop = Async.manual_loop()
Async.set_loop(loop)
_M.loop = loop

-- Runs fn in a coroutine, moving the manual clock until it has finished.
function _M.drive(fn)
  local res
  local co = coroutine.create(function() res = { fn() } end)
  local ok, err = coroutine.resume(co)
  if not ok then error(err, 0) end
  while coroutine.status(co) ~= "dead" do
    loop:advance(1)
    if loop:now() > 600000 then error("fixture did not finish in 600 s of loop time", 0) end
  end
  return unpack(res)
end

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

-- ===== layouts (the app's own layout, as Async.serve({ layout }) takes) =====

local function layout_with(head, top, bottom, container)
  return function(page)
    return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" .. esc(page.title or "") ..
      "</title><script src=\"/__async/client.js\" defer></script>" .. (head or "") .. "</head><body><main " ..
      (container or "async:container") .. ">" .. (top or "") .. page.body .. (bottom or "") .. "</main></body></html>"
  end
end

local LAB_LAYOUT = layout_with('<script src="/lab.js" defer></script>')

local NAV_LAYOUT = layout_with(nil, [[
<nav>
  <a id="nav-home" href="/">Home</a>
  <a id="nav-sku1" href="/products/sku-1">Keyboard</a>
  <a id="nav-sku2" href="/products/sku-2">Headphones</a>
  <a id="nav-blank" href="/products/sku-2" target="_blank">new tab</a>
  <a id="nav-download" href="/products/sku-2" download>download</a>
  <a id="nav-external" href="https://elsewhere.test/page">elsewhere</a>
  <a id="nav-missing" href="/products/sku-9">missing</a>
  <form id="search" action="/search" method="get">
    <input name="q" value="key board"><button id="search-go">Search</button>
  </form>
</nav>]], [[
<footer>path <code id="router-path" signal:text="router.path"></code>
  pending <code id="router-pending" signal:text="router.pending"></code></footer>]])

local DATA_LAYOUT = layout_with(nil, nil, nil, "data-async-container")

-- ===== apps =====

local apps = {
  -- example apps as a server would mount them, default layout
  ["ssr-plain"] = { mod = "examples.ssr", opts = {} },
  ["partials-plain"] = { mod = "examples.partials", opts = {} },
  lab = { mod = "apps.lab", opts = { layout = LAB_LAYOUT, client_handlers = { "bump", "panelAttach" } } },
  data = { mod = "apps.data", opts = { layout = DATA_LAYOUT, attributes = {
    async = "data-async-", signal = "data-signal-", on = "data-on-", class = "data-class-" } } },
  ssr = { mod = "examples.ssr", opts = {} },
  product = { mod = "examples.product", opts = {} },
  components = { mod = "examples.components", opts = {} },
  streaming = { mod = "examples.streaming", opts = {} },
  partials = { mod = "examples.partials", opts = { layout = NAV_LAYOUT } },
}

-- The served examples, examples/NAME/app.lua, as "ex/NAME": loaded as the
-- gallery loads them (their Async.main returns the app, which keeps its
-- options: app.serve_opts give the layout, head, title and runtime
-- options); the app's server cache is shared by its requests, as
-- async.server.core shares it (the mock serves their examples/NAME/public
-- files itself).
local EXAMPLES = { "counter", "product", "components", "streaming", "server-call", "router", "partials", "cache",
                   "ssr" }
for _, name in ipairs(EXAMPLES) do apps["ex/" .. name] = { example = name, opts = {} } end

-- examples/NAME/app.lua -> app, with a.opts filled from its Async.main options
local function load_example(a)
  local app = dofile("examples/" .. a.example .. "/app.lua")
  local options = app.serve_opts or {}
  a.opts = { layout = options.layout, head = options.head, title = options.title }
  for k, v in pairs(options.runtime or {}) do a.opts[k] = v end
  return app
end

-- A fresh request runtime of app `name` (one per request, as the servers do).
function _M.runtime(name)
  local a = apps[name]
  if a == nil then error("no app " .. tostring(name), 0) end
  a.app = a.app or (a.example and load_example(a)) or require(a.mod)
  local opts = { env = "development" }
  for k, v in pairs(a.opts) do opts[k] = v end
  return Async.create_app(a.app, opts)
end

_M.apps = apps

-- Streams url of app; returns { status, chunks = { { at = ms, html } } }.
-- The patches are numbered from 1 (protocol.md "Streaming": `{"seq": N,
-- "signals": ...}`) where render.lua did not write a seq.
function _M.stream(app, url)
  local rt = _M.runtime(app)
  local chunks, seq, start = {}, 0, loop:now()
  local res = _M.drive(function()
    return rt:render_stream(url, function(chunk)
      if chunk then
        chunk = chunk:gsub('(<script type="application/json" async:patch>){"signals":', function(open)
          seq = seq + 1
          return open .. '{"seq":' .. seq .. ',"signals":'
        end)
        chunks[#chunks + 1] = { at = loop:now() - start, html = chunk }
      end
      return true
    end)
  end)
  rt:destroy()
  return { status = res and res.status or 200, chunks = chunks }
end

-- The route partial envelope GET url answers with Accept:
-- application/x-async-partial (from rt:render(url, { document = false })).
function _M.partial(app, url)
  local rt = _M.runtime(app)
  local r = _M.drive(function() return rt:render(url, { document = false }) end)
  rt:destroy()
  return r.status, { __async_server_result__ = 1, boundary = "route", html = r.html, signals = r.signals,
                     cache = r.cache, title = r.title, status = r.status }
end

-- The HTTP status the endpoint answers an envelope with (protocol.md).
function _M.status_of(env)
  if env.error then
    local code = env.error.code
    if code == "handler-not-registered" or code == "server-function-not-registered" then return 404 end
    return 500
  end
  if next(env) == "__async_server_result__" and next(env, "__async_server_result__") == nil then return 204 end
  return 200
end

-- Runs handler or server function `name` of app with a request body
-- { args, input, signals }; returns status, envelope.
function _M.endpoint(app, kind, name, body)
  local rt = _M.runtime(app)
  local env = _M.drive(function()
    if kind == "handler" then
      return rt:dispatch(name, body.args, { input = body.input, signals = body.signals })
    end
    return rt:call(name, body.args, { input = body.input, signals = body.signals })
  end)
  rt:destroy()
  return _M.status_of(env), env
end

return _M
