--- Records what the browser specs serve: real pages from rt:render_document
-- and rt:render_stream, and real network answers from rt:dispatch, rt:call
-- and rt:render(url, { document = false }), as one JSON manifest.
--
--   luajit spec/browser/fixtures.lua OUT.json
--
-- LUA_PATH/LUA_CPATH must reach the asyncrt modules (client.test.mjs sets
-- them from ASYNC_LUA_ROOT, default: this checkout). Time runs on a manual
-- loop, so the output is the same on every run.
--
-- The request bodies are computed here, independently of client/async.js,
-- from the protocol: `signals` of a handler call is every signal of the
-- page's snapshot whose id does not start with "_", updated by each earlier
-- answer (envelope signals, snapshots inside swapped HTML). The browser
-- spec checks that the client sends exactly these bodies.
--
-- Manifest: { pages = { name -> { url, status, html } },
--             streams = { name -> { url, chunks = { { at, html } } } },
--             exchanges = { { method, path, body, status, response } },
--             partials = { { path, status, response } } }
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = here .. "/?.lua;" .. package.path

local Async = require("async")
local json = require("async.json")

local out_path = arg[1]
if not out_path then
  io.stderr:write("usage: luajit spec/browser/fixtures.lua OUT.json\n")
  os.exit(2)
end

local loop = Async.manual_loop()
Async.set_loop(loop)

-- Runs fn in a coroutine, moving the manual clock until it has finished.
local function drive(fn)
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
  <form id="search" action="/search" method="get"><input name="q" value="key board"><button id="search-go">Search</button></form>
</nav>]], [[
<footer>path <code id="router-path" signal:text="router.path"></code> pending <code id="router-pending" signal:text="router.pending"></code></footer>]])

local DATA_LAYOUT = layout_with(nil, nil, nil, "data-async-container")

-- ===== apps =====

local apps = {
  lab = { mod = "apps.lab", opts = { layout = LAB_LAYOUT, client_handlers = { "bump", "panelAttach" } } },
  data = { mod = "apps.data", opts = { layout = DATA_LAYOUT, attributes = {
    async = "data-async-", signal = "data-signal-", on = "data-on-", class = "data-class-" } } },
  ssr = { mod = "examples.ssr", opts = {} },
  product = { mod = "examples.product", opts = {} },
  components = { mod = "examples.components", opts = {} },
  streaming = { mod = "examples.streaming", opts = {} },
  partials = { mod = "examples.partials", opts = { layout = NAV_LAYOUT } },
}

-- A fresh request runtime of app `name` (one per request, as the servers do).
local function runtime(name)
  local a = apps[name]
  a.app = a.app or require(a.mod)
  local opts = { env = "development" }
  for k, v in pairs(a.opts) do opts[k] = v end
  return Async.create_app(a.app, opts)
end

local manifest = { pages = {}, streams = {}, exchanges = {}, partials = {} }

-- ===== pages =====

local function page(key, app, url)
  local rt = runtime(app)
  local r = drive(function() return rt:render_document(url) end)
  manifest.pages[key] = { url = url, status = r.status, html = r.html }
  rt:destroy()
  return r.html
end

-- Streams url; the patches are numbered from 1 (protocol.md "Streaming":
-- `{"seq": N, "signals": ...}`) where render.lua did not write a seq.
local function stream(key, app, url)
  local rt = runtime(app)
  local chunks, seq, start = {}, 0, loop:now()
  drive(function()
    rt:render_stream(url, function(chunk)
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
  manifest.streams[key] = { url = url, chunks = chunks }
  rt:destroy()
  local whole = {}
  for i, c in ipairs(chunks) do whole[i] = c.html end
  return table.concat(whole)
end

-- ===== exchanges: a scenario replays a page's clicks against the Lua code =====

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The HTTP status the endpoint answers an envelope with (protocol.md).
local function status_of(env)
  if env.error then
    local code = env.error.code
    if code == "handler-not-registered" or code == "server-function-not-registered" then return 404 end
    return 500
  end
  if next(env) == "__async_server_result__" and next(env, "__async_server_result__") == nil then return 204 end
  return 200
end

-- Runs the steps of one page visit; each step is { kind = "handler" |
-- "server", name =, args =, input = } and gets the client's signals.
local function scenario(app, html, steps)
  local state = {}
  for k, v in pairs(Async.read_snapshot(html).signals) do
    if k:sub(1, 1) ~= "_" then state[k] = v end
  end
  -- streamed patches, in seq order (they arrive in order here)
  for body in html:gmatch('<script type="application/json" async:patch>(.-)</script>') do
    for k, v in pairs(json.decode(body).signals) do state[k] = v end
  end
  for _, s in ipairs(steps) do
    local body = { args = json.array(s.args or {}), input = s.input,
                   signals = s.kind == "handler" and copy(state) or (s.signals or {}) }
    local rt = runtime(app)
    local env = drive(function()
      if s.kind == "handler" then
        return rt:dispatch(s.name, body.args, { input = body.input, signals = body.signals })
      end
      return rt:call(s.name, body.args, { input = body.input, signals = body.signals })
    end)
    rt:destroy()
    manifest.exchanges[#manifest.exchanges + 1] = {
      method = "POST", path = "/__async/" .. s.kind .. "/" .. s.name, body = body,
      status = status_of(env), response = env,
    }
    if not env.error then
      for k, v in pairs(env.signals or {}) do state[k] = v end
      if env.html then
        for k, v in pairs(Async.read_snapshot(env.html).signals) do state[k] = v end
      end
    end
  end
end

local function button(dataset)
  return { value = "", dataset = dataset or {} }
end

-- ===== the fixtures =====

local lab = page("lab", "lab", "/lab")
local data = page("data", "data", "/data")
local ssr = page("ssr", "ssr", "/products/123")
page("product", "product", "/products/sku-1")
page("product-404", "product", "/products/sku-404")
page("components", "components", "/")
page("streaming-shell", "streaming", "/products/sku-1")
page("nav-home", "partials", "/")
page("nav-sku1", "partials", "/products/sku-1")

local streamed = stream("streaming", "streaming", "/products/sku-1")
stream("product", "product", "/products/sku-1")
stream("product-404", "product", "/products/sku-404")

-- quick clicks: three increments, each with the count the previous left
scenario("lab", lab, { { kind = "handler", name = "increment", input = button() },
                       { kind = "handler", name = "increment", input = button() },
                       { kind = "handler", name = "increment", input = button() } })
scenario("ssr", ssr, { { kind = "handler", name = "increment", input = button() },
                       { kind = "handler", name = "increment", input = button() },
                       { kind = "handler", name = "increment", input = button() } })
scenario("data", data, { { kind = "handler", name = "increment", input = button() } })
scenario("lab", lab, { { kind = "server", name = "greet.hello", args = { { name = "Ada" } }, input = { name = "Ada" } } })
scenario("lab", lab, { { kind = "server", name = "restock", input = button() } })
scenario("lab", lab, { { kind = "handler", name = "showPanel", input = button({ n = "1" }) },
                       { kind = "handler", name = "showPanel", input = button({ n = "2" }) } })

-- a button inside a streamed fill
scenario("streaming", streamed, { { kind = "handler", name = "selectProduct", input = button() } })

-- command chains: what async.chain makes of them (the client must agree)
local chain = require("async.chain")
manifest.chains = {}
for _, src in ipairs({
  "increment", "  preventDefault ;  ; server.products.save(productId, $form)  ", "a.b.c(x.y, $value, $checked)",
  "server.cart.add()", "prevent; stopPropagation; stopImmediatePropagation; preventDefault",
  "save($event, $el, $dataset)", "server.x", "server.", "server.a..b()", "server.x($event)", "server.x($el)",
  "save(a,,b)", "save(a b)", "save($nope)", "prevent(x)", "save(a", "save(a)(b)", "save(a) x", "$value",
  "bad name", "a..b", "save((a))", ";;", "server.products.save(productId, $form); stop",
}) do
  local steps, err = chain.parse(src)
  manifest.chains[#manifest.chains + 1] = { src = src, ok = steps ~= nil, steps = steps and json.array(steps),
                                            message = err and err.message, code = err and err.code }
end

scenario("lab", lab, { { kind = "handler", name = "leave", input = button() } })

-- route partials (what GET <url> with Accept: application/x-async-partial
-- answers): the partials example, and the lab page the redirect goes to
for _, p in ipairs({ { "partials", "/" }, { "partials", "/products/sku-1" }, { "partials", "/products/sku-2" },
                     { "partials", "/products/sku-9" }, { "partials", "/search?q=key+board" }, { "lab", "/lab?left=1" } }) do
  local url = p[2]
  local rt = runtime(p[1])
  local r = drive(function() return rt:render(url, { document = false }) end)
  rt:destroy()
  manifest.partials[#manifest.partials + 1] = {
    path = url, status = r.status,
    response = { __async_server_result__ = 1, boundary = "route", html = r.html, signals = r.signals,
                 cache = r.cache, title = r.title, status = r.status },
  }
end

local f = assert(io.open(out_path, "w"))
f:write(json.encode(manifest))
f:close()
