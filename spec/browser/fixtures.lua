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
local json = require("async").json

local out_path = arg[1]
if not out_path then
  io.stderr:write("usage: luajit spec/browser/fixtures.lua OUT.json\n")
  os.exit(2)
end

local serve = require("apps.serve")
local drive, runtime = serve.drive, serve.runtime

local manifest = { pages = {}, streams = {}, exchanges = {}, partials = {} }

-- ===== pages =====

local function page(key, app, url)
  local rt = runtime(app)
  local r = drive(function() return rt:render_document(url) end)
  manifest.pages[key] = { url = url, status = r.status, html = r.html }
  rt:destroy()
  return r.html
end

-- Records the stream of url; returns the whole document it made.
local function stream(key, app, url)
  local r = serve.stream(app, url)
  manifest.streams[key] = { url = url, chunks = r.chunks }
  local whole = {}
  for i, c in ipairs(r.chunks) do whole[i] = c.html end
  return table.concat(whole)
end

-- ===== exchanges: a scenario replays a page's clicks against the Lua code =====

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
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
    local status, env = serve.endpoint(app, s.kind, s.name, body)
    manifest.exchanges[#manifest.exchanges + 1] = {
      method = "POST", path = "/__async/" .. s.kind .. "/" .. s.name, body = body, status = status, response = env,
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
scenario("lab", lab, { { kind = "server", name = "greet.hello", args = { { name = "Ada" } },
                         input = { name = "Ada" } } })
scenario("lab", lab, { { kind = "server", name = "restock", input = button() } })
scenario("lab", lab, { { kind = "handler", name = "showPanel", input = button({ n = "1" }) },
                       { kind = "handler", name = "showPanel", input = button({ n = "2" }) } })

-- a button inside a streamed fill
scenario("streaming", streamed, { { kind = "handler", name = "selectProduct", input = button() } })

-- command chains: what async.chain makes of them (the client must agree)
-- the parser lives in the app layer (async.app.chain; async.chain before the layering)
local has_chain, chain = pcall(require, "async.app.chain")
if not has_chain then chain = require("async.chain") end
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
                     { "partials", "/products/sku-9" }, { "partials", "/search?q=key+board" },
                     { "lab", "/lab?left=1" } }) do
  local status, env = serve.partial(p[1], p[2])
  manifest.partials[#manifest.partials + 1] = { path = p[2], status = status, response = env }
end

local f = assert(io.open(out_path, "w"))
f:write(json.encode(manifest))
f:close()
