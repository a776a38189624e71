-- Specs for SSR (async.render): golden bytes of every binding attribute and
-- of boundaries in every status, escaping of hostile values, the fragment and
-- document forms, statuses and router.* signals, partial results, hard
-- errors, validation and read_snapshot. Tables of cases with exact bytes.
local E = require("support.errors")
local Async = require("async")

local HOSTILE = '</script><script>alert(1)</script>"\'<!--<img src=x onerror=alert(1)>'

-- An app with `signals` (id -> value or declaration) whose route "/" runs a
-- partial returning `html`; extra declarations merge in.
local function make_app(html, signals, extra)
  local app = Async.define_app()
  local decls = {
    signal = signals or {},
    partial = { page = function() return html end },
    route = { ["/"] = Async.define_route("page") },
  }
  for k, v in pairs(extra or {}) do decls[k] = v end
  app:use(decls)
  return app
end

local function assert_starts(prefix, s)
  assert.are.equal(prefix, s:sub(1, #prefix))
end

-- The bare fragment of `html` rendered with `signals`.
local function fragment(html, signals, opts)
  local rt = Async.create_app(make_app(html, signals), opts or { env = "development" })
  return rt:render("/", { document = false }).html
end

-- async declarations settling at once (no yield): ready or error
local function ready(v) return Async.define_async(function() return v end) end
local function failing(e) return Async.define_async(function() error(e, 0) end) end
local function slow() return Async.define_async(function(self) Async.delay(1000, self.abort); return "late" end) end

local loop
before_each(function()
  loop = Async.manual_loop()
  Async.set_loop(loop)
end)

describe("render: binding attributes (golden bytes)", function()
  local cases = {
    { "signal:text string", '<h1 signal:text="title"></h1>', { title = "Keyboard" },
      '<h1 signal:text="title">Keyboard</h1>' },
    { "signal:text replaces children", '<p signal:text="n">old <b>x</b></p>', { n = 42 },
      '<p signal:text="n">42</p>' },
    { "signal:text number like JS", '<i signal:text="p"></i><i signal:text="q"></i>', { p = 129.5, q = 1e21 },
      '<i signal:text="p">129.5</i><i signal:text="q">1e+21</i>' },
    { "signal:text boolean", '<i signal:text="b"></i>', { b = true }, '<i signal:text="b">true</i>' },
    { "signal:text null is empty", '<i signal:text="x">old</i>', { x = Async.null }, '<i signal:text="x"></i>' },
    { "signal:text nested path", '<i signal:text="product.title"></i>', { product = { title = "Mouse" } },
      '<i signal:text="product.title">Mouse</i>' },
    { "signal:text missing key is empty", '<i signal:text="product.nope">x</i>', { product = {} },
      '<i signal:text="product.nope"></i>' },
    { "signal:attr:href", '<a signal:attr:href="url">go</a>', { url = "/p?a=1&b=2" },
      '<a signal:attr:href="url" href="/p?a=1&amp;b=2">go</a>' },
    { "signal:attr replaces the static value", '<img src="/x.png" signal:attr:src="src">', { src = "/y.png" },
      '<img src="/y.png" signal:attr:src="src">' },
    { "signal:attr false removes", '<button disabled signal:attr:disabled="off">b</button>', { off = false },
      '<button signal:attr:disabled="off">b</button>' },
    { "signal:attr true is empty", '<button signal:attr:disabled="on">b</button>', { on = true },
      '<button signal:attr:disabled="on" disabled="">b</button>' },
    { "signal:attr number", '<td signal:attr:colspan="n"></td>', { n = 3 },
      '<td signal:attr:colspan="n" colspan="3"></td>' },
    { "signal:attr unsafe URL", '<a signal:attr:href="u">x</a>', { u = "javascript:alert(1)" },
      '<a signal:attr:href="u" href="about:invalid#async-unsafe-url">x</a>' },
    { "class:NAME on", '<li class="item" class:active="on">x</li>', { on = true },
      '<li class="item active" class:active="on">x</li>' },
    { "class:NAME off removes a static class", '<li class="item active" class:active="on">x</li>', { on = false },
      '<li class="item" class:active="on">x</li>' },
    { "class:NAME without static class", '<li class:active="on">x</li>', { on = true },
      '<li class:active="on" class="active">x</li>' },
    { "signal:class list, map and nesting", '<b class="btn" signal:class="cls">x</b>',
      { cls = { "primary", { selected = true, disabled = false }, { "compact" } } },
      '<b class="btn primary selected compact" signal:class="cls">x</b>' },
    { "signal:class string", '<b class="btn" signal:class="cls">x</b>', { cls = "a b btn" },
      '<b class="btn a b" signal:class="cls">x</b>' },
    { "signal:value input", '<input name="q" signal:value="q">', { q = 'say "hi"' },
      '<input name="q" signal:value="q" value="say &quot;hi&quot;">' },
    { "signal:value textarea", '<textarea signal:value="body">old</textarea>', { body = "<hi> & bye" },
      '<textarea signal:value="body">&lt;hi&gt; &amp; bye</textarea>' },
    { "signal:value select", '<select signal:value="size"><option value="s">S</option>' ..
      '<option value="m">M</option></select>', { size = "m" },
      '<select signal:value="size"><option value="s">S</option><option value="m" selected="">M</option></select>' },
    { "signal:prop:checked true", '<input type="checkbox" signal:prop:checked="c">', { c = true },
      '<input type="checkbox" signal:prop:checked="c" checked="">' },
    { "signal:prop:checked false removes", '<input type="checkbox" checked signal:prop:checked="c">', { c = false },
      '<input type="checkbox" signal:prop:checked="c">' },
    { "signal:prop:checked JS falsy 0", '<input type="checkbox" signal:prop:checked="c">', { c = 0 },
      '<input type="checkbox" signal:prop:checked="c">' },
    { "signal:prop:selected", '<option signal:prop:selected="s">A</option>', { s = "yes" },
      '<option signal:prop:selected="s" selected="">A</option>' },
    { "signal:prop:disabled", '<button signal:prop:disabled="d">b</button>', { d = 1 },
      '<button signal:prop:disabled="d" disabled="">b</button>' },
    { "async meta path", '<i signal:text="p.$status"></i>', { p = ready("x") },
      '<i signal:text="p.$status">ready</i>' },
    { "on: and async:container stay as written", '<main async:container><button on:click="go">b</button></main>',
      {}, '<main async:container><button on:click="go">b</button></main>' },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local html, signals, want = c[2], c[3], c[4]
      local extra = { handler = { go = function() end } }
      local rt = Async.create_app(make_app(html, signals, extra), { env = "development" })
      assert.are.equal(want, rt:render("/", { document = false }).html)
    end)
  end
end)

describe("render: boundaries in every status", function()
  local B = '<section async:boundary="p">' ..
    '<template async:loading="p"><p>Loading</p></template>' ..
    '<template async:ready="p"><h1 signal:text="p.title"></h1></template>' ..
    '<template async:error="p"><p class="error" signal:text="p.$error.message"></p></template>' ..
    "</section>"
  local TEMPLATES = B:sub(#'<section async:boundary="p">' + 1, -#"</section>" - 1)
  local cases = {
    { "ready", ready({ title = "Desk & Chair" }),
      '<h1 signal:text="p.title">Desk &amp; Chair</h1>' },
    { "error", failing({ message = "No <desk>", code = "not-found" }),
      '<p class="error" signal:text="p.$error.message">No &lt;desk&gt;</p>' },
    { "loading (outside a coroutine nothing waits)", slow(), "<p>Loading</p>" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.are.equal('<section async:boundary="p">' .. TEMPLATES .. c[3] .. "</section>",
        fragment(B, { p = c[2] }))
    end)
  end

  it("idle shows the loading template", function()
    local app = make_app(B, { p = slow() })
    app:use("partial", { page = function(self)
      self.signals:ref("p"):cancel()
      return B
    end })
    local rt = Async.create_app(app)
    assert.are.equal("idle", rt.signals:ref("p"):status())
    assert.are.equal('<section async:boundary="p">' .. TEMPLATES .. "<p>Loading</p></section>",
      rt:render("/", { document = false }).html)
  end)

  it("a boundary that is not an async signal keeps its content as written", function()
    local html = '<div async:boundary="static"><template async:ready="static">R</template>kept</div>'
    assert.are.equal(html, fragment(html, {}))
  end)

  it("waits inside a coroutine and renders the settled status", function()
    local app = make_app(B, { p = Async.define_async(function(self)
      Async.delay(30, self.abort)
      return { title = "Lamp" }
    end) })
    local rt = Async.create_app(app)
    local out
    local co = coroutine.create(function() out = rt:render("/", { document = false }) end)
    assert(coroutine.resume(co))
    assert.is_nil(out)
    loop:advance(30)
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal('<section async:boundary="p">' .. TEMPLATES .. '<h1 signal:text="p.title">Lamp</h1></section>',
      out.html)
  end)

  it("a timeout renders the error template with $error.code = timeout", function()
    local html = B:gsub("p%.%$error%.message", "p.$error.code")
    local rt = Async.create_app(make_app(html, { p = slow() }))
    local out
    local co = coroutine.create(function() out = rt:render("/", { timeout = 50 }) end)
    assert(coroutine.resume(co))
    loop:advance(50)
    assert.are.equal("dead", coroutine.status(co))
    assert.truthy(out.html:find('<p class="error" signal:text="p.$error.code">timeout</p></section>', 1, true))
    assert.are.equal("timeout", out.signals.p.error.code)
    assert.are.equal("error", out.signals.p.status)
  end)

  it("does not wait for an async signal the page does not need", function()
    local rt = Async.create_app(make_app('<i signal:text="x"></i>', { x = "a", other = slow() }))
    local out
    local co = coroutine.create(function() out = rt:render("/", { document = false }) end)
    assert(coroutine.resume(co))
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal('<i signal:text="x">a</i>', out.html)
  end)
end)

describe("render: escaping of hostile values", function()
  local cases = {
    { "text", '<p signal:text="h"></p>',
      '<p signal:text="h">&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&lt;!--' ..
      '&lt;img src=x onerror=alert(1)&gt;</p>' },
    { "attribute", '<a signal:attr:title="h">x</a>',
      '<a signal:attr:title="h" title="&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&lt;!--' ..
      '&lt;img src=x onerror=alert(1)&gt;">x</a>' },
    { "value", '<input signal:value="h">',
      '<input signal:value="h" value="&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&lt;!--' ..
      '&lt;img src=x onerror=alert(1)&gt;">' },
    { "class names", '<b signal:class="h">x</b>',
      '<b signal:class="h" class="&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&lt;!--&lt;img' ..
      ' src=x onerror=alert(1)&gt;">x</b>' },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.are.equal(c[3], fragment(c[2], { h = HOSTILE }))
    end)
  end

  it("the snapshot JSON has no raw <, so no </script> or <!-- can appear", function()
    local rt = Async.create_app(make_app('<p signal:text="h"></p>', { h = HOSTILE }))
    local html = rt:render("/").html
    local json = html:match("<script type=\"application/json\" async:snapshot>(.-)</script>$")
    assert.truthy(json)
    assert.is_nil(json:find("<", 1, true))
    assert.truthy(json:find('"h":"\\u003c/script>\\u003cscript>alert(1)\\u003c/script>\\"\'\\u003c!--' ..
      '\\u003cimg src=x onerror=alert(1)>"', 1, true))
    assert.are.equal(HOSTILE, Async.read_snapshot(html).signals.h)
  end)

  it("a hostile title is escaped in the document", function()
    local app = make_app("", {})
    app:use("partial", { page = function() return { html = "", title = HOSTILE } end })
    local html = Async.create_app(app):render_document("/").html
    assert.truthy(html:find("<title>&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&lt;!--" ..
      "&lt;img src=x onerror=alert(1)&gt;</title>", 1, true))
  end)
end)

describe("render: fragment and document forms", function()
  local SNAP = '<script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{' ..
    '"router.error":null,"router.params":{},"router.path":"/","router.pending":false,"router.query":{},' ..
    '"router.route":"/","router.url":"/","title":"Hi"}}</script>'

  it("render(url): the route section and the snapshot", function()
    local rt = Async.create_app(make_app('<h1 signal:text="title"></h1>', { title = "Hi" }))
    local out = rt:render("/")
    assert.are.equal('<section async:boundary="route"><h1 signal:text="title">Hi</h1></section>' .. SNAP, out.html)
    assert.are.equal(200, out.status)
    assert.are.same({ browser = {} }, out.cache)
    assert.are.equal("Hi", out.signals.title)
  end)

  it("render(url, { document = false }): the bare fragment", function()
    local rt = Async.create_app(make_app('<h1 signal:text="title"></h1>', { title = "Hi" }))
    assert.are.equal('<h1 signal:text="title">Hi</h1>', rt:render("/", { document = false }).html)
  end)

  it("render_document: the default layout loads /__async/client.js", function()
    local app = make_app("", { title = "Hi" })
    app:use("partial", { page = function() return { html = '<h1 signal:text="title"></h1>', title = "Home" } end })
    local out = Async.create_app(app):render_document("/")
    assert.are.equal('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' ..
      '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Home</title>' ..
      '<script src="/__async/client.js" defer></script></head><body><main async:container>' ..
      '<section async:boundary="route"><h1 signal:text="title">Hi</h1></section>' .. SNAP ..
      "</main></body></html>", out.html)
  end)

  it("an app layout wraps the page", function()
    local rt = Async.create_app(make_app("<p>x</p>", {}), { layout = function(page)
      return "<html><title>" .. Async.escape(page.title or "") .. "</title>" .. page.body .. "</html>"
    end, title = "Default" })
    local html = rt:render_document("/").html
    assert.are.equal('<html><title>Default</title><section async:boundary="route"><p>x</p></section>',
      html:sub(1, #'<html><title>Default</title><section async:boundary="route"><p>x</p></section>'))
    assert.are.equal("</script></html>", html:sub(-#"</script></html>"))
  end)

  it("define_route's boundary names the section", function()
    local app = make_app("<p>x</p>", {})
    app:use("route", { ["/"] = Async.define_route("page", { boundary = "main" }) })
    local html = Async.create_app(app):render("/").html
    assert_starts('<section async:boundary="main"><p>x</p></section>', html)
  end)

  it("the server cache never appears; the browser cache does", function()
    local app = make_app("<p>x</p>", {})
    app:use("partial", { page = function(self)
      self.cache:set("secret", "server-only")
      return { html = "<p>x</p>", cache = { browser = { ["product:1"] = { id = 1 } } } }
    end })
    local out = Async.create_app(app):render("/")
    assert.is_nil(out.html:find("server-only", 1, true))
    assert.are.same({ ["product:1"] = { id = 1 } }, out.cache.browser)
    assert.are.same({ ["product:1"] = { id = 1 } }, Async.read_snapshot(out.html).cache.browser)
  end)

  -- protocol.md "SSR output" (the contract this row used to contradict: it
  -- asserted "only the signals the page needs, plus client state")
  it("the snapshot holds every signal whose id does not start with _, computeds excepted", function()
    local rt = Async.create_app(make_app('<i signal:text="a"></i><b on:click="go(b)">x</b>',
      { a = 1, b = 2, c = 3, d = 4, _private = 5, twice = Async.computed(function() return 2 end) },
      { handler = { go = function() end } }), { client_signals = { "d" } })
    local s = rt:render("/").signals
    assert.are.same({ 1, 2, 3, 4 }, { s.a, s.b, s.c, s.d })
    assert.is_nil(s._private)
    assert.is_nil(s.twice)
  end)
end)

describe("render: statuses and router.* signals", function()
  it("a route renders 200 and sets every router.* signal", function()
    local app = make_app("", {})
    app:use({ partial = { product = function(_, params) return "<p>" .. Async.escape(params.id) .. "</p>" end },
              route = { ["/products/:id"] = Async.define_route("product") } })
    local rt = Async.create_app(app)
    local out = rt:render("/products/sku%201?tab=specs&q=a+b")
    assert.are.equal(200, out.status)
    assert_starts('<section async:boundary="route"><p>sku 1</p></section>', out.html)
    local s = out.signals
    assert.are.equal("/products/sku%201?tab=specs&q=a+b", s["router.url"])
    assert.are.equal("/products/sku%201", s["router.path"])
    assert.are.same({ id = "sku 1" }, s["router.params"])
    assert.are.same({ tab = "specs", q = "a b" }, s["router.query"])
    assert.are.equal("/products/:id", s["router.route"])
    assert.are.equal(false, s["router.pending"])
    assert.are.equal(Async.null, s["router.error"])
  end)

  it("no match: 404, an empty route section and router.error", function()
    local rt = Async.create_app(make_app("<p>home</p>", {}))
    local out = rt:render("/missing")
    assert.are.equal(404, out.status)
    assert_starts('<section async:boundary="route"></section>', out.html)
    assert.are.same({ code = "route-not-matched", message = "No route matched /missing" },
      out.signals["router.error"])
    assert.are.equal(Async.null, out.signals["router.route"])
  end)

  it("a wildcard route catches the rest with the partial's status", function()
    local app = make_app("<p>home</p>", {})
    app:use({ partial = { nf = function() return { html = "<h1>Not found</h1>", status = 404 } end },
              route = { ["*"] = Async.define_route("nf") } })
    local out = Async.create_app(app):render("/nope")
    assert.are.equal(404, out.status)
    assert_starts('<section async:boundary="route"><h1>Not found</h1></section>', out.html)
  end)
end)

describe("render: partial results", function()
  local cases = {
    { "a template result", function() return Async.html[[<p>{{ x }}</p>]] { x = "a<b" } end, "<p>a&lt;b</p>", 200 },
    { "a string (trusted HTML)", function() return "<p>s</p>" end, "<p>s</p>", 200 },
    { "nil", function() return nil end, "", 200 },
    { "a list of fragments", function() return { Async.html[[<i>1</i>]] {}, "<i>2</i>" } end, "<i>1</i><i>2</i>", 200 },
    { "a table with html and status", function() return { html = Async.raw("<p>t</p>"), status = 201 } end,
      "<p>t</p>", 201 },
    { "a table with a list as html", function() return { html = { "<a>", "</a>" } } end, "<a></a>", 200 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local app = make_app("", {})
      app:use("partial", { page = c[2] })
      local out = Async.create_app(app):render("/", { document = false })
      assert.are.equal(c[3], out.html)
      assert.are.equal(c[4], out.status)
    end)
  end

  it("a table's signals, cache.browser and title", function()
    local app = make_app("", { n = 1 })
    app:use("partial", { page = function()
      return { html = '<i signal:text="n"></i><b signal:text="fresh"></b>', signals = { n = 2, fresh = "new" },
               cache = { browser = { k = "v" } }, title = "T" }
    end })
    local rt = Async.create_app(app)
    local out = rt:render("/")
    assert_starts('<section async:boundary="route"><i signal:text="n">2</i><b signal:text="fresh">new</b>' ..
      "</section>", out.html)
    assert.are.equal(2, out.signals.n)
    assert.are.equal("new", out.signals.fresh)
    assert.are.same({ k = "v" }, out.cache.browser)
    assert.are.equal("T", out.title)
    assert.truthy(rt:render_document("/").html:find("<title>T</title>", 1, true))
  end)

  it("a result of another type is an error naming the partial", function()
    local app = make_app("", {})
    app:use("partial", { page = function() return 42 end })
    local ok, err = pcall(function() Async.create_app(app):render("/") end)
    assert.is_false(ok)
    assert.are.equal("invalid-partial-result", err.code)
    assert.are.equal('Partial "page" returned a number; expected a template result, a string, a list of those ' ..
      "or { html = ... }", err.message)
  end)
end)

describe("render: a missing partial or component is a hard error", function()
  it("missing partial", function()
    local app = make_app("", {})
    app:use("route", { ["/x"] = Async.define_route("nope") })
    local ok, err = pcall(function() Async.create_app(app):render("/x") end)
    assert.is_false(ok)
    assert.are.equal("partial-not-registered", err.code)
    assert.are.equal('Partial "nope" is not registered.', err.message)
  end)

  it("missing component (never rendered as its name)", function()
    local app = make_app("", {})
    app:use("partial", { page = function(self)
      return Async.html[[<div>{{ c }}</div>]] { c = self:render("Nope") }
    end })
    local rendered
    local ok, err = pcall(function() rendered = Async.create_app(app):render("/") end)
    assert.is_false(ok)
    assert.is_nil(rendered)
    assert.are.equal("component-not-registered", err.code)
    assert.are.equal('Component "Nope" is not registered.', err.message)
  end)

  it("a raising partial raises out of render", function()
    local app = make_app("", {})
    app:use("partial", { page = function() error("db down", 0) end })
    local ok, err = pcall(function() Async.create_app(app):render("/") end)
    assert.is_false(ok)
    assert.are.equal("db down", err)
  end)
end)

describe("render: validation", function()
  local cases = {
    { "unknown signal", '<p>\n  <i signal:text="missing.title"></i></p>',
      'render: unknown signal "missing.title" at page:2:6' },
    { "unknown handler", '<button on:click="nope">x</button>',
      'render: unknown handler "nope" in on:click at page:1:9' },
    { "unknown server function", '<form on:submit="preventDefault; server.cart.add(x)"></form>',
      'render: unknown server function "cart.add" in on:submit at page:1:7' },
    { "unknown chain argument", '<button on:click="go(ghost)">x</button>',
      'render: unknown signal "ghost" at page:1:9' },
    { "malformed chain", '<button on:click="server.x">x</button>', "at page:1:9" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. ": an error in development", function()
      local app = make_app(c[2], { x = 1 }, { handler = { go = function() end } })
      local ok, err = pcall(function() Async.create_app(app, { env = "development" }):render("/") end)
      assert.is_false(ok)
      assert.are.equal("invalid-binding", err.code)
      assert.truthy(err.message:find(c[3], 1, true), err.message)
    end)
    it(c[1] .. ": a log line in production", function()
      local lines = {}
      local app = make_app(c[2], { x = 1 }, { handler = { go = function() end } })
      local rt = Async.create_app(app, { env = "production", log = function(m) lines[#lines + 1] = m end })
      local out = rt:render("/")
      assert.are.equal(200, out.status)
      assert.are.equal(1, #lines)
      assert.truthy(lines[1]:find(c[3], 1, true), lines[1])
    end)
  end

  it("a client-side handler named in opts.client_handlers is known", function()
    local rt = Async.create_app(make_app('<b on:click="toggle">x</b>', {}), { client_handlers = { "toggle" } })
    assert.are.equal('<b on:click="toggle">x</b>', rt:render("/", { document = false }).html)
  end)

  it("a cached validation does not hide a runtime that lacks the signal", function()
    local html = '<i signal:text="late"></i>'
    local app = make_app(html, {})
    local good = Async.create_app(app)
    good.signals:ensure("late", "here")
    assert.are.equal('<i signal:text="late">here</i>', good:render("/", { document = false }).html)
    local ok, err = pcall(function() Async.create_app(app):render("/") end)
    assert.is_false(ok)
    assert.truthy(err.message:find('unknown signal "late"', 1, true))
  end)

  it("unreadable HTML from a partial is sent as written in production, with a log line", function()
    local html = '<p signal:text="x">never closed'
    local lines = {}
    local rt = Async.create_app(make_app(html, { x = 1 }),
      { env = "production", log = function(m) lines[#lines + 1] = m end })
    assert.are.equal(html, rt:render("/", { document = false }).html)
    local page = rt:render("/").html
    local open = '<section async:boundary="route">' .. html .. "</section>"
    assert.are.equal(open, page:sub(1, #open))
    assert.are.equal(1, Async.read_snapshot(page:sub(#open + 1)).signals.x)
    assert.are.equal(2, #lines)
    assert.truthy(lines[1]:find("render: cannot read the HTML of page: ", 1, true), lines[1])
  end)

  it("unreadable HTML from a partial is an error in development", function()
    local ok, err = pcall(function() fragment('<p signal:text="x">never closed', { x = 1 }) end)
    assert.is_false(ok)
    assert.are.equal("invalid-html", err.code)
    assert.truthy(err.message:find("render: cannot read the HTML of page: ", 1, true), err.message)
  end)
end)

describe("Async.read_snapshot", function()
  it("reads one snapshot", function()
    local s = Async.read_snapshot('<script type="application/json" async:snapshot>' ..
      '{"signals":{"a":1},"cache":{"browser":{"k":"v"}}}</script>')
    assert.are.same({ signals = { a = 1 }, cache = { browser = { k = "v" } } }, s)
  end)

  it("merges several; later ones win per signal and per key", function()
    local s = Async.read_snapshot('<p>x</p><script type="application/json" async:snapshot>' ..
      '{"signals":{"a":1,"b":1},"cache":{"browser":{"k":1}}}</script><script>var x = 1</script>' ..
      '<script async:snapshot type="application/json">{"signals":{"b":2},"cache":{"browser":{"j":2}}}</script>')
    assert.are.same({ signals = { a = 1, b = 2 }, cache = { browser = { k = 1, j = 2 } } }, s)
  end)

  it("no snapshot: empty tables", function()
    assert.are.same({ signals = {}, cache = { browser = {} } }, Async.read_snapshot("<p>none</p>"))
  end)

  it("round-trips a render", function()
    local rt = Async.create_app(make_app('<i signal:text="x"></i>', { x = { deep = { "a", 2 } } }))
    assert.are.same({ deep = { "a", 2 } }, Async.read_snapshot(rt:render("/").html).signals.x)
  end)

  local bad = {
    { "bad JSON", '<script type="application/json" async:snapshot>{"signals":</script>' },
    { "not an object", '<script type="application/json" async:snapshot>null</script>' },
  }
  for _, c in ipairs(bad) do
    it(c[1] .. " fails with 'Could not parse Async snapshot: ...'", function()
      local ok, err = pcall(Async.read_snapshot, c[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find("Could not parse Async snapshot: ", 1, true), tostring(err))
    end)
  end

  it("a non-string argument is an error", function()
    E.has_error(function() Async.read_snapshot(nil) end, "read_snapshot expects an HTML string, got nil")
  end)
end)

describe("render: the page buffer kept from one page to the next", function()
  -- rows 1..n of a list, as the page's HTML (the same plan for any n)
  local function rows_app()
    local app = Async.define_app()
    app:use({
      signal = { n = 0 },
      partial = {
        page = function(self, params)
          local n = tonumber(params.n)
          self.signals:set("n", n)
          local out = {}
          for i = 1, n do out[i] = '<li signal:text="n">' .. i .. "</li>" end
          return "<ul>" .. table.concat(out) .. "</ul>"
        end,
      },
      route = { ["/:n"] = Async.define_route("page") },
    })
    return app
  end
  local function want_rows(n)
    local out = {}
    for i = 1, n do out[i] = '<li signal:text="n">' .. n .. "</li>" end
    return "<ul>" .. table.concat(out) .. "</ul>"
  end

  it("a short page after a long one has only its own bytes, in both forms", function()
    local app = rows_app()
    for _, n in ipairs({ 300, 2, 50, 0, 7 }) do
      local frag = Async.create_app(app):render("/" .. n, { document = false }).html
      assert.are.equal(want_rows(n), frag)
      local doc = Async.create_app(app):render("/" .. n).html
      assert.are.equal('<section async:boundary="route">' .. want_rows(n) .. "</section>", doc:match("^(.-)<script"))
    end
  end)

  it("a page rendered while another is being filled leaves both whole", function()
    -- a value whose text is made by user code during the fill: a cdata's
    -- __tostring (what signal:text shows of a cdata), which renders a page
    local ffi = require("ffi")
    local inner_app = rows_app()
    ffi.cdef("typedef struct render_spec_nested { int n; } render_spec_nested;")
    local Nested = ffi.metatype("render_spec_nested", { __tostring = function(c)
      return Async.create_app(inner_app):render("/" .. c.n, { document = false }).html
    end })
    local outer = Async.define_app()
    outer:use({
      signal = { a = Nested(3), b = Nested(40) },
      partial = { page = function() return '<p signal:text="a"></p><p signal:text="b"></p>' end },
      route = { ["/"] = Async.define_route("page") },
    })
    local function esc(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;")) end
    local want = '<p signal:text="a">' .. esc(want_rows(3)) .. '</p><p signal:text="b">' .. esc(want_rows(40)) .. "</p>"
    for _ = 1, 3 do
      assert.are.equal(want, Async.create_app(outer):render("/", { document = false }).html)
      assert.are.equal(want_rows(5), Async.create_app(inner_app):render("/5", { document = false }).html)
    end
  end)


  it("keeps nothing of the page it served (a 4 MB value is collected with its runtime)", function()
    local app = Async.define_app()
    app:use({
      partial = { page = function(self, params)
        local n = params.size == "big" and 4 * 1024 * 1024 or 10
        self.signals:set("text", string.rep("x", n - 1) .. "y")
        return '<p signal:text="text"></p>'
      end },
      signal = { text = "" },
      route = { ["/:size"] = Async.define_route("page") },
    })
    Async.create_app(app):render("/small", { document = false })   -- warm (plans, caches, the buffer)
    Async.collect_garbage(); collectgarbage()
    local before = collectgarbage("count")
    local html = Async.create_app(app):render("/big", { document = false }).html
    assert.are.equal('<p signal:text="text">' .. string.rep("x", 4 * 1024 * 1024 - 1) .. "y</p>", html)
    html = nil   -- luacheck: ignore 311
    Async.collect_garbage(); collectgarbage()
    local grown = collectgarbage("count") - before
    assert.is_true(grown < 2048, ("the heap kept %.0f KB after the page was dropped"):format(grown))
  end)
end)
