-- The nine seed examples as served apps (examples/NAME/app.lua) and the
-- gallery (examples/gallery.lua), in-process: each app is loaded as the
-- gallery loads it, rendered, streamed on a manual loop, and its handlers
-- and server functions run through rt:dispatch and rt:call, with the
-- envelopes the HTTP endpoints would send checked exactly. Every page must
-- work under Content-Security-Policy: script-src 'self' (no inline script,
-- no inline event handler). spec/browser/e2e.mjs drives the same apps in
-- Chromium.
-- luacheck: no max line length
-- luacheck: ignore 611
local Async = require("async")
local ex = require("support.examples")

local RESULT = "__async_server_result__"
local NAMES = { "counter", "product", "components", "streaming", "server-call", "router", "partials", "cache", "ssr" }

-- the router.* signals of a render of `url` (path without query)
local function router_state(url, route, params)
  return {
    ["router.error"] = Async.null, ["router.params"] = params or {}, ["router.path"] = url,
    ["router.pending"] = false, ["router.query"] = {}, ["router.route"] = route, ["router.url"] = url,
  }
end

-- signals plus the router state
local function with_router(signals, url, route, params)
  local out = router_state(url, route, params)
  for k, v in pairs(signals) do out[k] = v end
  return out
end

-- an async signal's snapshot form, as the snapshot and patches write it
-- (protocol.md "SSR output": "value" and "error" always present, JSON null
-- (Async.null) when absent)
local function ready(value, version)
  return { loading = false, status = "ready", value = value, version = version or 1, error = Async.null }
end
local function loading(version)
  return { loading = true, status = "loading", version = version or 1, value = Async.null, error = Async.null }
end

-- renders url on a fresh runtime of the example; returns the result and the runtime
local function render(name, url, opts, extra)
  local app, options = ex.load(name)
  local loop = ex.manual_loop()
  local rt = ex.runtime(app, options, extra)
  local out = ex.drive(loop, function() return rt:render(url, opts) end)
  ex.assert_csp_safe(out.html)
  return out, rt, loop
end

-- the route section of a render (without the snapshot script)
local function section(html)
  return (html:gsub('<script type="application/json" async:snapshot>.*</script>$', ""))
end

describe("examples/NAME/app.lua", function()
  it("each example has its app, a README and Async.main as its last statement", function()
    for _, name in ipairs(NAMES) do
      local src = assert(io.open("examples/" .. name .. "/app.lua")):read("*a")
      assert.truthy(src:find("local Async = require%(\"async\"%)"), name)
      assert.truthy(src:find("local app = Async%.define_app%(%)"), name)
      assert.truthy(src:find("\nreturn Async%.main%(app[,%)][^\n]*\n?$") or
        src:find("\nreturn Async%.main%(app, {\n.-}%)\n$"), name .. ": must end with return Async.main(app, ...)")
      local readme = assert(io.open("examples/" .. name .. "/README.md"), name .. " has no README.md")
      local text = readme:read("*a")
      readme:close()
      assert.truthy(text:find("build/asyncrt examples/" .. name .. "/app.lua", 1, true), name .. ": README says how to run it")
      local app, options = ex.load(name)
      assert.truthy(app.decl, name .. " returns its app")
      assert.are.same(options, app.serve_opts, name .. ": the app keeps the options it gave Async.main")
      if options.public then
        assert.are.equal("public", options.public, name .. ": its files are in examples/NAME/public")
        local f = io.open("examples/" .. name .. "/public/style.css")
        assert.truthy(f, name .. ": examples/" .. name .. "/public without style.css")
        f:close()
      end
    end
  end)

  it("no public script uses eval, new Function or inline handlers", function()
    for _, name in ipairs(NAMES) do
      local f = io.open("examples/" .. name .. "/public/app.js")
      if f then
        local js = f:read("*a")
        f:close()
        assert.falsy(js:find("eval%(") or js:find("new Function") or js:find("innerHTML") or js:find("setAttribute%(\"on"),
          name .. "/app.js")
        assert.truthy(js:find("(window.Async = window.Async || []).push(", 1, true),
          name .. "/app.js registers through the queue (it may run before the client)")
      end
    end
  end)
end)

-- ===== counter =====

describe("examples/counter", function()
  it("renders the count with JavaScript off, and its snapshot", function()
    local out = render("counter", "/")
    assert.are.equal(200, out.status)
    assert.are.equal([[
<section async:boundary="route"><h1>Counter</h1>
<p>
  <button type="button" on:click="decrement">-</button>
  <strong signal:text="count">0</strong>
  <button type="button" on:click="increment">+</button>
</p></section>]], section(out.html))
    assert.are.same({ signals = with_router({ count = 0 }, "/", "/"), cache = { browser = {} } },
      Async.read_snapshot(out.html))
  end)

  it("the default layout loads the client, and the title is the page's", function()
    local app, options = ex.load("counter")
    local loop = ex.manual_loop()
    local out = ex.drive(loop, function() return ex.runtime(app, options):render_document("/") end)
    ex.assert_csp_safe(out.html)
    assert.truthy(out.html:find('<title>Counter</title><script src="/__async/client.js" defer></script>', 1, true))
  end)

  it("increment and decrement answer exactly the signal they changed", function()
    local app = ex.load("counter")
    local rt = Async.create_app(app)
    assert.are.same({ [RESULT] = 1, signals = { count = 42 } }, rt:dispatch("increment", {}, { signals = { count = 41 } }))
    assert.are.same({ [RESULT] = 1, signals = { count = -1 } },
      Async.create_app(app):dispatch("decrement", {}, { signals = { count = 0 } }))
  end)

  it("five clicks, each in a fresh request runtime with what the last answer left, count to five", function()
    local app = ex.load("counter")
    local count = 0
    for i = 1, 5 do
      local rt = Async.create_app(app)
      local env = rt:dispatch("increment", {}, { signals = { count = count } })
      rt:destroy()
      count = env.signals.count
      assert.are.equal(i, count)
    end
  end)

  it("an unknown handler is an error envelope", function()
    local env = Async.create_app((ex.load("counter"))):dispatch("reset")
    assert.are.equal("handler-not-registered", env.error.code)
    assert.is_nil(env.signals)
  end)
end)

-- ===== product =====

describe("examples/product", function()
  it("streams the loading template first, then the product after the 300 ms load", function()
    local app, options = ex.load("product")
    local loop = ex.manual_loop()
    local chunks, res = ex.stream(loop, ex.runtime(app, options), "/products/sku-1")
    assert.are.equal(200, res.status)
    assert.are.same({ 0, 300, 300, 300 }, { chunks[1].at, chunks[2].at, chunks[3].at, chunks[4].at })
    assert.are.equal(4, #chunks)
    local shell = chunks[1].html
    ex.assert_csp_safe(shell)
    assert.truthy(shell:find('<script src="/__async/client.js" async></script>', 1, true), "the client loads async")
    assert.truthy(shell:find('<link rel="stylesheet" href="/style.css">', 1, true))
    assert.truthy(shell:find([[
  <template async:error="product">
    <p class="error" signal:text="product.$error.message"></p>
  </template>
    <p class="loading">Loading sku-1...</p>
  
</section>]], 1, true), "the boundary shows its loading template")
    assert.are.same(loading(), Async.read_snapshot(shell).signals.product)
    local fill = ex.fill_of(chunks[2].html)
    assert.are.equal("product", fill.fill)
    assert.are.equal([[

    <h1 signal:text="product.title">Keyboard</h1>
    <p>Price: <span signal:text="product.price">129.5</span> (fetch #<span signal:text="product.fetch">1</span>)</p>
  ]], fill.html)
    assert.are.same(ready({ id = "sku-1", title = "Keyboard", price = 129.5, fetch = 1 }), fill.patch.signals.product)
    assert.are.equal("</main></body></html>", chunks[3].html)
    assert.is_false(chunks[4].html)
  end)

  it("an unknown product renders the error template", function()
    local out = render("product", "/products/sku-404")
    assert.are.equal(200, out.status)
    assert.truthy(section(out.html):find([[
    <p class="error" signal:text="product.$error.message">There is no product sku-404.</p>
  
</section>]], 1, true))
    assert.are.same({ loading = false, status = "error", version = 1, value = Async.null,
      error = { name = "Error", code = "not-found", message = "There is no product sku-404." } },
      Async.read_snapshot(out.html).signals.product)
  end)

  it("the refresh form and the links go through the router, under the gallery's prefix too", function()
    local out = render("product", "/products/sku-2", nil, { request = { prefix = "/product" } })
    local html = section(out.html)
    assert.truthy(html:find([[
<nav>
  <a href="/product/products/sku-1">Keyboard</a>
  <a href="/product/products/sku-2">Headphones</a>
  <a href="/product/products/sku-404">A missing product</a>
</nav>
<section async:boundary="product" class:pending="router.pending">]], 1, true))
    assert.truthy(html:find([[
<form method="get" action="/product/products/sku-2">
  <button signal:attr:disabled="router.pending">Refresh</button>
</form></section>]], 1, true))
  end)

  it("a refresh (the route partial again) loads the product again", function()
    local app, options = ex.load("product")
    local loop = ex.manual_loop()
    local fetch = {}
    for i = 1, 2 do
      local rt = ex.runtime(app, options)
      local t0 = loop:now()
      local out = ex.drive(loop, function() return rt:render("/products/sku-1", { document = false }) end)
      assert.are.equal(300, loop:now() - t0, "the page waits for the load")
      fetch[i] = out.signals.product.value.fetch
      rt:destroy()
    end
    assert.are.same({ 1, 2 }, fetch)
  end)

  it("a new productId aborts the load in flight: one fetch, for the new id", function()
    local app = ex.load("product")
    local loop = ex.manual_loop()
    local rt = Async.create_app(app)
    rt.scheduler:flush()
    loop:advance(100)
    rt.signals:set("productId", "sku-2")
    rt.scheduler:flush()
    loop:advance(300)
    rt.scheduler:flush()
    assert.are.equal("ready", rt.signals:get("product.$status"))
    assert.are.same({ id = "sku-2", title = "Headphones", price = 89, fetch = 1 }, rt.signals:get("product"))
  end)

  it("/ is the first product", function()
    local out = render("product", "/", { document = false })
    assert.truthy(out.html:find('<h1 signal:text="product.title">Keyboard</h1>', 1, true))
  end)
end)

-- ===== components =====

describe("examples/components", function()
  local SHELL_TOGGLES = [[
<p><button type="button" class="toggle on" data-key="wifi"
  on:click="toggle($dataset)" on:attach="attached" on:visible="seen"
  class:on="settings.wifi"><span signal:text="home.Toggle.1.label">Wi-Fi</span></button> <button type="button" class="toggle" data-key="bluetooth"
  on:click="toggle($dataset)" on:attach="attached" on:visible="seen"
  class:on="settings.bluetooth"><span signal:text="home.Toggle.2.label">Bluetooth</span></button></p>]]

  it("renders scoped components, lifecycle attributes for the browser, and a suspense boundary", function()
    local app, options = ex.load("components")
    local loop = ex.manual_loop()
    local chunks = ex.stream(loop, ex.runtime(app, options), "/")
    local shell = chunks[1].html
    ex.assert_csp_safe(shell)
    -- the page streams (the suspense boundary): the client is async, the
    -- page script registers through the queue whichever runs first
    assert.truthy(shell:find('<script src="/__async/client.js" async></script>' ..
      '<link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>', 1, true),
      "the page script loads after the client")
    assert.truthy(shell:find(SHELL_TOGGLES, 1, true))
    assert.truthy(shell:find('<article async:boundary="home.Product.1.product"><template async:loading="home.Product.1.product"><p class="loading">Loading...</p></template><template async:ready="home.Product.1.product"><h2 signal:text="home.Product.1.product.title"></h2></template><template async:error="home.Product.1.product"><p signal:text="home.Product.1.product.$error.message"></p></template><p class="loading">Loading...</p></article>', 1, true))
    assert.truthy(shell:find('<span signal:text="home.Toggle.3.label">Airplane mode</span>', 1, true))
    assert.are.same(with_router({
      ["home.Product.1.product"] = loading(),
      ["home.Toggle.1.label"] = "Wi-Fi", ["home.Toggle.2.label"] = "Bluetooth", ["home.Toggle.3.label"] = "Airplane mode",
      lifecycle = "", settings = { wifi = true, bluetooth = false, airplane = false },
    }, "/", "/"), Async.read_snapshot(shell).signals)
    assert.are.equal(150, chunks[2].at)
    local fill = ex.fill_of(chunks[2].html)
    assert.are.equal("home.Product.1.product", fill.fill)
    assert.are.equal('<h2 signal:text="home.Product.1.product.title">Keyboard</h2>', fill.html)
    assert.are.same(ready({ title = "Keyboard" }), fill.patch.signals["home.Product.1.product"])
  end)

  it("the lifecycle handlers exist only in the browser: the app names them to the server", function()
    local app = ex.load("components")
    local loop = ex.manual_loop()
    local ok, err = pcall(ex.drive, loop, function() return Async.create_app(app):render("/") end)
    assert.is_false(ok)
    assert.are.equal("invalid-binding", err.code)
    assert.truthy(err.message:find('unknown handler "attached" in on:attach', 1, true))
  end)

  it("the page-level toggle handler flips the clicked setting", function()
    local app = ex.load("components")
    local settings = { wifi = true, bluetooth = false, airplane = false }
    local env = Async.create_app(app):dispatch("toggle", { { key = "bluetooth" } }, { signals = { settings = settings } })
    assert.are.same({ [RESULT] = 1, signals = { settings = { wifi = true, bluetooth = true, airplane = false } } }, env)
    env = Async.create_app(app):dispatch("toggle", { { key = "wifi" } }, { signals = { settings = settings } })
    assert.are.same({ wifi = false, bluetooth = false, airplane = false }, env.signals.settings)
  end)

  it("an unknown setting is an error envelope with the app's code", function()
    local env = Async.create_app((ex.load("components")), { env = "production" })
      :dispatch("toggle", { { key = "__index" } })
    assert.are.equal("unknown-setting", env.error.code)
    assert.are.equal("No setting __index", env.error.message)
  end)
end)

-- ===== streaming =====

describe("examples/streaming", function()
  it("sends the shell at once, then each boundary as it settles, out of document order", function()
    local app, options = ex.load("streaming")
    local loop = ex.manual_loop()
    local chunks = ex.stream(loop, ex.runtime(app, options), "/")
    local shell = chunks[1].html
    ex.assert_csp_safe(shell)
    assert.are.equal(0, chunks[1].at)
    assert.truthy(shell:find('<script src="/__async/client.js" async></script>', 1, true))
    -- document order: product, reviews, recs, each showing its loading template
    local a = shell:find('</template><p class="loading">Loading the product...</p>\n</section>', 1, true)
    local b = shell:find('</template><p class="loading">Loading the reviews...</p>\n</section>', 1, true)
    local c = shell:find('</template><p class="loading">Loading the recommendations...</p>\n</aside>', 1, true)
    assert.truthy(a and b and c and a < b and b < c)
    assert.are.same(with_router({ product = loading(), reviews = loading(), recs = loading(), selected = "nothing yet" }, "/", "/"),
      Async.read_snapshot(shell).signals)
    -- settle order: product (100 ms), recs (200 ms), reviews (300 ms)
    local order = {}
    for i = 2, 4 do
      local f = ex.fill_of(chunks[i].html)
      ex.assert_csp_safe(chunks[i].html)
      order[#order + 1] = { chunks[i].at, f.fill }
      assert.are.same({ [f.fill] = f.patch.signals[f.fill] }, f.patch.signals, "a patch carries its boundary's signal")
      assert.is_true(f.patch.seq == nil or f.patch.seq == i - 1, "patches count from 1")
    end
    assert.are.same({ { 100, "product" }, { 200, "recs" }, { 300, "reviews" } }, order)
    assert.are.equal([[

    <h2 signal:text="product.title">Keyboard</h2>
    <p>Price: <span signal:text="product.price">129.5</span></p>
    <button type="button" on:click="select(product.title)">Select</button>
  ]], ex.fill_of(chunks[2].html).html)
    assert.are.equal([[

    <h3>You may also like</h3>
    <ul>
      <li><span signal:text="recs.1.title">Wrist rest</span>
        <button type="button" on:click="select(recs.1.title)">Select</button></li>
      <li><span signal:text="recs.2.title">Keycaps</span>
        <button type="button" on:click="select(recs.2.title)">Select</button></li>
    </ul>
  ]], ex.fill_of(chunks[3].html).html)
    assert.are.same(ready({ { who = "Ada", text = "Clicky." }, { who = "Linus", text = "Fast enough." } }),
      ex.fill_of(chunks[4].html).patch.signals.reviews)
    assert.are.same({ 300, "</main></body></html>" }, { chunks[5].at, chunks[5].html })
    assert.are.same({ 300, false }, { chunks[6].at, chunks[6].html })
    assert.are.equal(6, #chunks)
  end)

  it("a render that waits shows every boundary filled", function()
    local out = render("streaming", "/", { document = false })
    assert.truthy(out.html:find('<blockquote><span signal:text="reviews.2.text">Fast enough.</span> (<span signal:text="reviews.2.who">Linus</span>)</blockquote>', 1, true))
  end)

  it("the Select buttons inside the fills run the Lua handler with the title they show", function()
    local app = ex.load("streaming")
    local loop = ex.manual_loop()
    local rt = Async.create_app(app)
    local env = ex.drive(loop, function() return rt:dispatch("select", { "Keycaps" }, { signals = { selected = "nothing yet" } }) end)
    assert.are.same({ [RESULT] = 1, signals = { selected = "Keycaps" } }, env)
    rt:destroy()
  end)
end)

-- ===== server-call =====

describe("examples/server-call", function()
  it("renders the form whose submit calls the server function", function()
    local out = render("server-call", "/")
    assert.are.equal([[
<section async:boundary="route"><h1>Server call</h1>
<form on:submit="preventDefault; server.greet.say($form)">
  <label>Name <input name="name" value="Ada" autocomplete="off"></label>
  <button>Greet</button>
</form>
<p><output signal:text="greeting">Nobody greeted yet.</output></p>
<p>Times greeted: <span signal:text="greeted">0</span> (counted in the server cache, forgotten after 60 s)</p></section>]],
      section(out.html))
    assert.are.same(with_router({ greeting = "Nobody greeted yet.", greeted = 0 }, "/", "/"),
      Async.read_snapshot(out.html).signals)
    local steps = require("async.app.chain").check("preventDefault; server.greet.say($form)")
    assert.are.same({ kind = "server", id = "greet.say", args = { { kind = "local", name = "$form" } } }, steps[2])
  end)

  it("greet.say answers the greeting and the count from the server cache", function()
    local app = ex.load("server-call")
    local loop = ex.manual_loop()
    local rt = Async.create_app(app)
    assert.are.same({ [RESULT] = 1, value = "Hello, Ada!", signals = { greeting = "Hello, Ada!", greeted = 1 } },
      rt:call("greet.say", { { name = "  Ada " } }))
    assert.are.same({ greeting = "Hello, ada!", greeted = 2 }, rt:call("greet.say", { { name = "ada" } }).signals)
    assert.are.same({ greeting = "Hello, Linus!", greeted = 1 }, rt:call("greet.say", { { name = "Linus" } }).signals)
    loop:advance(60000)
    assert.are.same({ greeting = "Hello, Ada!", greeted = 1 }, rt:call("greet.say", { { name = "Ada" } }).signals,
      "the count expires with its 60 s TTL")
    assert.are.same({ "greetings:ada" }, rt.registry:keys("cache.server.entries"), "linus expired too")
  end)

  it("an empty name asks for one; a bad argument is not an error", function()
    local rt = Async.create_app((ex.load("server-call")))
    assert.are.same({ [RESULT] = 1, value = false, signals = { greeting = "Type a name first." } },
      rt:call("greet.say", { { name = "   " } }))
    assert.are.same({ [RESULT] = 1, value = false, signals = { greeting = "Type a name first." } },
      rt:call("greet.say", { "not a form" }))
  end)
end)

-- ===== router =====

describe("examples/router", function()
  local NAV = [[
<nav>
  <a href="/">Home</a>
  <a href="/about">About</a>
  <a href="/products/sku-1">Keyboard</a>
  <a href="/products/sku-2">Headphones</a>
  <a href="/nowhere">A broken link</a>
</nav>]]
  local function state(path, route)
    return ([[
<dl>
  <dt>router.path</dt><dd><code signal:text="router.path">%s</code></dd>
  <dt>router.route</dt><dd><code signal:text="router.route">%s</code></dd>
  <dt>router.pending</dt><dd><code signal:text="router.pending">false</code></dd>
</dl>]]):format(path, route)
  end

  local CASES = {
    { "/", 200, "/", "Home", '<h1>Home</h1><p>Pick a page above; only this part changes.</p>', {} },
    { "/about", 200, "/about", "About", "<h1>About</h1><p>Routes are Lua partials.</p>", {} },
    { "/products/sku-2", 200, "/products/:id", "Headphones", "<h1>Headphones</h1><p>Product <code>sku-2</code></p>",
      { id = "sku-2" } },
    { "/products/zzz", 404, "/products/:id", "Not found",
      "<h1>Not found</h1><p>Nothing lives at <code>/products/zzz</code>.</p>", { id = "zzz" } },
    { "/nowhere", 404, "*", "Not found", "<h1>Not found</h1><p>Nothing lives at <code>/nowhere</code>.</p>", {} },
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. " renders its partial in the route boundary (" .. c[2] .. ")", function()
      local out = render("router", c[1])
      assert.are.equal(c[2], out.status)
      assert.are.equal(c[4], out.title)
      assert.are.equal('<section async:boundary="route">' .. NAV .. '\n<article class:pending="router.pending">' ..
        c[5] .. "</article>\n" .. state(c[1], c[3]) .. "</section>", section(out.html))
      assert.are.same({ signals = router_state(c[1], c[3], c[6]), cache = { browser = {} } }, Async.read_snapshot(out.html))
    end)
  end

  it("a route partial (what a link click fetches) is the bare fragment and the router signals", function()
    local out = render("router", "/about", { document = false })
    assert.are.equal(NAV .. '\n<article class:pending="router.pending"><h1>About</h1><p>Routes are Lua partials.</p></article>\n' ..
      state("/about", "/about"), out.html)
    assert.are.same(router_state("/about", "/about"), out.signals)
  end)

  it("links carry the gallery's mount prefix", function()
    local out = render("router", "/", { document = false }, { request = { prefix = "/router" } })
    assert.truthy(out.html:find('<a href="/router/">Home</a>\n  <a href="/router/about">About</a>', 1, true))
  end)
end)

-- ===== partials =====

describe("examples/partials", function()
  local CARD1 = [[<article class="card">
  <h2><a href="/products/sku-1">Keyboard</a></h2>
  <p><span class="price">129.50 EUR</span> <span class="stars" title="4 of 5">****-</span></p>
</article>]]
  local CARD2 = [[<article class="card">
  <h2><a href="/products/sku-2">Headphones</a></h2>
  <p><span class="price">89.00 EUR</span> <span class="stars" title="5 of 5">*****</span></p>
</article>]]

  it("the list partial calls a server function and renders a card component per product", function()
    local out, _, loop = render("partials", "/")
    assert.are.equal(200, out.status)
    assert.are.equal("Products", out.title)
    assert.are.equal('<section async:boundary="route"><h1>Products</h1>' .. CARD1 .. CARD2 .. "</section>", section(out.html))
    assert.are.same(router_state("/", "/"), Async.read_snapshot(out.html).signals)
    assert.are.equal(50, loop:now(), "one database round trip")
  end)

  it("the product partial nests components three deep; an unknown id is a 404 fragment", function()
    local out = render("partials", "/products/sku-2", { document = false })
    assert.are.equal(200, out.status)
    assert.are.equal("Headphones", out.title)
    assert.are.equal(CARD2 .. '\n<p><a href="/">All products</a></p>', out.html)
    out = render("partials", "/products/zzz", { document = false }, { request = { prefix = "/partials" } })
    assert.are.equal(404, out.status)
    assert.are.equal('<h1>No product zzz</h1><p><a href="/partials/">All products</a></p>', out.html)
  end)

  it("products.get goes through products.list and its server cache (30 s)", function()
    local app = ex.load("partials")
    local loop = ex.manual_loop()
    local rt = Async.create_app(app)
    local env = ex.drive(loop, function() return rt:call("products.get", { "sku-1" }) end)
    assert.are.same({ [RESULT] = 1, value = { id = "sku-1", title = "Keyboard", price = 129.5, stars = 4 } }, env)
    assert.are.equal(50, loop:now())
    env = ex.drive(loop, function() return rt:call("products.get", { "zzz" }) end)
    assert.are.same({ [RESULT] = 1 }, env, "nil: the endpoint's 204")
    assert.are.equal(50, loop:now(), "a cache hit does not wait")
    loop:advance(30000)
    ex.drive(loop, function() return rt:call("products.list") end)
    assert.are.equal(30100, loop:now(), "expired: a new round trip")
  end)
end)

-- ===== cache =====

describe("examples/cache", function()
  it("three panels asking at once share one fill (single flight)", function()
    local app, options = ex.load("cache")
    local loop = ex.manual_loop()
    local chunks = ex.stream(loop, ex.runtime(app, options), "/")
    local shell = chunks[1].html
    ex.assert_csp_safe(shell)
    assert.truthy(shell:find('<script src="/__async/client.js" async></script>' ..
      '<link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>', 1, true))
    local snap = Async.read_snapshot(shell)
    assert.are.same(with_router({ ["panel.a"] = loading(), ["panel.b"] = loading(), ["panel.c"] = loading(),
      report = { fill = 0, age = 0 }, tip = "" }, "/", "/"), snap.signals)
    assert.are.same({ ["tip:today"] = "Cache what is slow to compute, not what is quick." }, snap.cache.browser,
      "the browser cache travels in the snapshot")
    local filled, patched = {}, {}
    for i = 2, 4 do
      assert.are.equal(200, chunks[i].at)
      local f = ex.fill_of(chunks[i].html)
      filled[f.fill] = f.html
      for id, v in pairs(f.patch and f.patch.signals or {}) do patched[id] = v end
    end
    assert.are.same({
      ["panel.a"] = '<p>A: fill #<span signal:text="panel.a.fill">1</span></p>',
      ["panel.b"] = '<p>B: fill #<span signal:text="panel.b.fill">1</span></p>',
      ["panel.c"] = '<p>C: fill #<span signal:text="panel.c.fill">1</span></p>',
    }, filled)
    local report = { fill = 1, made = 200 }
    assert.are.same({ ["panel.a"] = ready(report), ["panel.b"] = ready(report), ["panel.c"] = ready(report) }, patched)
  end)

  it("report.check is a hit within the 5 s TTL (same fill, older) and a new fill after it", function()
    local app = ex.load("cache")
    local loop = ex.manual_loop()
    local rt = Async.create_app(app)
    local function check() return ex.drive(loop, function() return rt:call("report.check") end) end
    assert.are.same({ [RESULT] = 1, value = { fill = 1, age = 0 }, signals = { report = { fill = 1, age = 0 } } }, check())
    assert.are.equal(200, loop:now(), "a fill takes 200 ms; the TTL counts from its end")
    loop:advance(4999)
    assert.are.same({ fill = 1, age = 4999 }, check().signals.report, "a hit, at once")
    assert.are.equal(5199, loop:now())
    loop:advance(1)
    assert.are.same({ fill = 2, age = 0 }, check().signals.report, "expired: filled again")
    assert.are.equal(5400, loop:now())
  end)

  it("concurrent calls wait for the one fill in flight", function()
    local app = ex.load("cache")
    local loop = ex.manual_loop()
    local rt = Async.create_app(app)
    local got = {}
    for i = 1, 3 do
      coroutine.wrap(function() got[i] = rt:call("report.get") end)()
      loop:advance(50)
    end
    loop:advance(100)
    for i = 1, 3 do assert.are.same({ [RESULT] = 1, value = { fill = 1, made = 200 } }, got[i]) end
  end)
end)

-- ===== ssr =====

describe("examples/ssr", function()
  it("renders the page and the activation snapshot (signals and the browser cache)", function()
    local out = render("ssr", "/products/123")
    assert.are.equal(200, out.status)
    assert.are.equal([[
<section async:boundary="route"><h1>Product 123</h1>
<p>
  <button type="button" on:click="increment">+</button>
  <strong signal:text="count">0</strong>
</p>
<h2>The activation snapshot</h2>
<pre class="snapshot" on:attach="showSnapshot">(the page script prints the snapshot here)</pre></section>]],
      section(out.html))
    assert.are.same({
      signals = with_router({ count = 0 }, "/products/123", "/products/:id", { id = "123" }),
      cache = { browser = { ["product:123"] = { id = "123", title = "Product 123" } } },
    }, Async.read_snapshot(out.html))
  end)

  it("the document loads the client, then the page script", function()
    local app, options = ex.load("ssr")
    local loop = ex.manual_loop()
    local out = ex.drive(loop, function() return ex.runtime(app, options):render_document("/products/1%3C2") end)
    ex.assert_csp_safe(out.html)
    assert.truthy(out.html:find('<title>Product 1&lt;2</title><script src="/__async/client.js" defer></script>' ..
      '<link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>', 1, true))
    assert.truthy(out.html:find('"product:1\\u003c2":{"id":"1\\u003c2","title":"Product 1\\u003c2"}', 1, true),
      "no < inside the snapshot")
  end)

  it("after activation the counter is a Lua handler", function()
    local env = Async.create_app((ex.load("ssr"))):dispatch("increment", {}, { signals = { count = 7 } })
    assert.are.same({ [RESULT] = 1, signals = { count = 8 } }, env)
  end)

  it("products.get fills the server cache once per id", function()
    local rt = Async.create_app((ex.load("ssr")))
    assert.are.same({ [RESULT] = 1, value = { id = "9", title = "Product 9" } }, rt:call("products.get", { "9" }))
    assert.are.same({ "products:9" }, rt.registry:keys("cache.server.entries"))
  end)
end)

-- ===== the gallery =====

describe("examples/gallery.lua", function()
  local cc = require("support.core_client")
  local core = require("async.server.core")
  local POST = { ["content-type"] = "application/json", ["x-async-request"] = "1" }

  -- the gallery's server (async.server.core, no sockets) on a manual loop
  local function gallery()
    local index, options = ex.load("gallery")
    local loop = ex.manual_loop()
    local opts = { root = "examples", log = false }
    for k, v in pairs(options) do opts[k] = v end
    local handle = core.new(opts)
    local function get(path, headers)
      local res, chunks = cc.run(handle, loop, cc.req({ target = path, headers = headers }))
      local body = cc.body(res, chunks)
      if body and res.status == 200 and (res.headers[1] or {})[2] ~= "text/css; charset=utf-8" then
        ex.assert_csp_safe(body)
      end
      return res, body
    end
    local function post(path, body)
      local res = cc.run(handle, loop, cc.req({ method = "POST", target = path, body = body, headers = POST }))
      return res, res.body and Async.json.decode(res.body)
    end
    return { index = index, options = options, get = get, post = post }
  end

  it("mounts the index at / and each example under its own prefix", function()
    local g = gallery()
    local prefixes = {}
    for prefix, mount in pairs(g.options.apps) do
      prefixes[#prefixes + 1] = prefix
      assert.truthy(mount.app.decl, prefix)
    end
    table.sort(prefixes)
    assert.are.same({ "/", "/cache", "/components", "/counter", "/partials", "/product", "/router", "/server-call",
      "/ssr", "/streaming" }, prefixes)
    assert.are.equal(g.index, g.options.apps["/"].app)
    -- each example's mount carries the options its app.lua gave Async.main
    -- (Async.mount: app.serve_opts), its folder as the root of its public/
    for _, name in ipairs(NAMES) do
      local m = g.options.apps["/" .. name]
      assert.are.equal("examples/" .. name, m.root, name)
      for k, v in pairs(m.app.serve_opts) do assert.are.equal(v, m[k], name .. " " .. k) end
    end
    assert.are.same({ "attached", "seen" }, g.options.apps["/components"].runtime.client_handlers)
    assert.are.same({ "readTip" }, g.options.apps["/cache"].runtime.client_handlers)
    assert.is_nil(g.options.apps["/counter"].runtime)
  end)

  it("the index links every example; its container keeps the router out of cross-app links", function()
    local res, html = gallery().get("/")
    assert.are.equal(200, res.status)
    assert.truthy(html:find('<main async:container="mpa">', 1, true))
    for _, name in ipairs(NAMES) do
      assert.truthy(html:find('<li><a href="/' .. name .. '/">' .. name .. "</a>: ", 1, true), name)
    end
  end)

  it("each example's page is in its own layout, loads the client under its prefix, and its links carry it", function()
    local g = gallery()
    local MAIN = { product = "/products/sku-1", ssr = "/products/123" }
    for _, name in ipairs(NAMES) do
      local res, html = g.get("/" .. name .. (MAIN[name] or "/"))
      assert.are.equal(200, res.status, name)
      assert.truthy(html:find('<script src="/' .. name .. '/__async/client.js" ', 1, true), name)
      local _, own = ex.load(name)
      if own.public then
        assert.truthy(html:find('<link rel="stylesheet" href="/' .. name .. '/style.css">', 1, true), name)
      end
    end
    local _, html = g.get("/router/about")
    assert.truthy(html:find('<a href="/router/">Home</a>', 1, true))
    assert.truthy(html:find('<code signal:text="router.path">/about</code>', 1, true), "the path inside the app")
    _, html = g.get("/components/")
    assert.truthy(html:find('<script src="/components/__async/client.js" async></script>' ..
      '<link rel="stylesheet" href="/components/style.css"><script src="/components/app.js" defer></script>', 1, true))
    -- a page that does not stream loads it deferred (protocol.md)
    _, html = g.get("/counter/")
    assert.truthy(html:find('<script src="/counter/__async/client.js" defer></script></head>', 1, true))
  end)

  it("serves each example's files from its own public/ under its prefix", function()
    local g = gallery()
    for _, file in ipairs({ "components/app.js", "cache/app.js", "ssr/app.js", "product/style.css", "streaming/style.css" }) do
      local res, body = g.get("/" .. file)
      assert.are.equal(200, res.status, file)
      local name, rest = file:match("^([^/]+)/(.*)$")
      local f = assert(io.open("examples/" .. name .. "/public/" .. rest))
      assert.are.equal(f:read("*a"), body, file)
      f:close()
    end
    assert.are.equal(404, (g.get("/counter/app.lua")).status, "no source file is public")
    assert.are.equal(404, (g.get("/product/app.js")).status, "a mount serves only its own folder")
    assert.are.equal(404, (g.get("/counter/style.css")).status, "a mount without public/ serves no files")
    assert.are.equal(404, (g.get("/public/style.css")).status)
  end)

  it("handlers and server functions answer under each example's prefix", function()
    local g = gallery()
    local res, env = g.post("/counter/__async/handler/increment", '{"args":[],"input":{},"signals":{"count":3}}')
    assert.are.equal(200, res.status)
    assert.are.same({ [RESULT] = 1, signals = { count = 4 } }, env)
    res, env = g.post("/server-call/__async/server/greet.say", '{"args":[{"name":"Ada"}],"input":{},"signals":{}}')
    assert.are.equal(200, res.status)
    assert.are.same({ [RESULT] = 1, value = "Hello, Ada!", signals = { greeting = "Hello, Ada!", greeted = 1 } }, env)
    res, env = g.post("/components/__async/handler/toggle",
      '{"args":[{"key":"airplane"}],"input":{},"signals":{"settings":{"wifi":true,"bluetooth":false,"airplane":false}}}')
    assert.are.equal(200, res.status)
    assert.are.same({ wifi = true, bluetooth = false, airplane = true }, env.signals.settings)
    res = g.post("/__async/handler/increment", '{"args":[],"input":{},"signals":{"count":3}}')
    assert.are.equal(404, res.status, "the index has no increment: each mount has its own endpoints")
  end)

  it("the server cache outlives a request (greet.say twice counts 2, report.check hits)", function()
    local g = gallery()
    local body = '{"args":[{"name":"Grace"}],"input":{},"signals":{}}'
    for n = 1, 2 do
      local res, env = g.post("/server-call/__async/server/greet.say", body)
      assert.are.equal(200, res.status)
      assert.are.same({ [RESULT] = 1, value = "Hello, Grace!", signals = { greeting = "Hello, Grace!", greeted = n } },
        env)
    end
    -- the cache page's three panels share one fill; "Ask again" within the
    -- 5 s TTL is a hit on it, in another request
    local res, html = g.get("/cache/")
    assert.are.equal(200, res.status)
    local fill = html:match('<p>A: fill #<span signal:text="panel.a.fill">(%d+)</span></p>')
    assert.truthy(fill, "panel a was filled")
    for _, p in ipairs({ "b", "c" }) do
      assert.truthy(html:find('<p>' .. p:upper() .. ': fill #<span signal:text="panel.' .. p .. '.fill">' .. fill ..
        "</span></p>", 1, true), "panel " .. p .. " shares the fill")
    end
    local env
    res, env = g.post("/cache/__async/server/report.check", '{"args":[],"input":{},"signals":{}}')
    assert.are.equal(200, res.status)
    assert.are.equal(tonumber(fill), env.value.fill)
    assert.are.same(env.value, env.signals.report)
  end)
end)
