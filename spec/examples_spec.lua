-- The seed README's rendering examples (examples/*.lua), rendered in-process
-- and compared byte for byte: product (loading/ready/error), components
-- (Toggle, suspense), streaming (shell, then fills in settle order), partials
-- (routes, a server call, 404s) and ssr (route boundary + snapshot, document).
-- `luajit examples/render.lua NAME URL [--stream|--document]` prints the same.
-- luacheck: no max line length
-- luacheck: ignore 611
local Async = require("async")

-- { example, url, mode ("render" | "document" | "stream"), expected }
local CASES = {
  { "product", "/products/sku-1", "render", status = 200, html = [==[
<section async:boundary="route"><section async:boundary="product">
  <template async:loading="product">
    <p>Loading...</p>
  </template>
  <template async:ready="product">
    <h1 signal:text="product.title"></h1>
  </template>
  <template async:error="product">
    <p signal:text="product.$error.message"></p>
  </template>
    <h1 signal:text="product.title">Keyboard</h1>
  
</section></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"product":{"error":null,"loading":false,"status":"ready","value":{"price":129.5,"title":"Keyboard"},"version":1},"productId":"sku-1","router.error":null,"router.params":{"id":"sku-1"},"router.path":"/products/sku-1","router.pending":false,"router.query":{},"router.route":"/products/:id","router.url":"/products/sku-1"}}</script>]==] },
  { "product", "/products/sku-404", "render", status = 200, html = [==[
<section async:boundary="route"><section async:boundary="product">
  <template async:loading="product">
    <p>Loading...</p>
  </template>
  <template async:ready="product">
    <h1 signal:text="product.title"></h1>
  </template>
  <template async:error="product">
    <p signal:text="product.$error.message"></p>
  </template>
    <p signal:text="product.$error.message">Product sku-404 was not found</p>
  
</section></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"product":{"error":{"code":"not-found","message":"Product sku-404 was not found","name":"Error"},"loading":false,"status":"error","value":null,"version":1},"productId":"sku-404","router.error":null,"router.params":{"id":"sku-404"},"router.path":"/products/sku-404","router.pending":false,"router.query":{},"router.route":"/products/:id","router.url":"/products/sku-404"}}</script>]==] },
  { "components", "/", "render", status = 200, html = [==[
<section async:boundary="route"><div id="app"><button
  type="button"
  on:attach="home.Toggle.1.attach"
  on:visible="home.Toggle.1.visible"
  on:click="home.Toggle.1.handler.1"
  class:selected="home.Toggle.1.signal.1"
  signal:class="home.Toggle.1.classes"
  signal:attr:aria-pressed="home.Toggle.1.signal.1" class="toggle"
>
  Toggle
</button><article async:boundary="home.Product.1.product">
  <template async:loading="home.Product.1.product"><p>Loading...</p></template><template async:ready="home.Product.1.product"><h1 signal:text="home.Product.1.product.title"></h1></template><template async:error="home.Product.1.product"><p signal:text="home.Product.1.product.$error.message"></p></template><h1 signal:text="home.Product.1.product.title">Keyboard</h1>
</article><h2 async:boundary="home.ProductTitle.1.product"><template async:ready="home.ProductTitle.1.product"><span signal:text="home.ProductTitle.1.product.title"></span></template><span signal:text="home.ProductTitle.1.product.title">Headphones</span></h2></div></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"home.Product.1.product":{"error":null,"loading":false,"status":"ready","value":{"title":"Keyboard"},"version":1},"home.ProductTitle.1.product":{"error":null,"loading":false,"status":"ready","value":{"title":"Headphones"},"version":1},"home.Toggle.1.signal.1":false,"router.error":null,"router.params":{},"router.path":"/","router.pending":false,"router.query":{},"router.route":"/","router.url":"/"}}</script>]==] },
  { "streaming", "/products/sku-1", "stream", chunks = {
      { 0, [==[
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title></title><script src="/__async/client.js" async></script></head><body><main async:container><section async:boundary="route"><section async:boundary="product">
  <template async:loading="product"><p>Loading product...</p></template>
  <template async:ready="product">
    <article>
      <h1 signal:text="product.title"></h1>
      <button type="button" on:click="selectProduct">Select</button>
    </article>
  </template><p>Loading product...</p>
</section>
<aside async:boundary="recs">
  <template async:loading="recs"><p>Loading recommendations...</p></template>
  <template async:ready="recs">
    <ul><li signal:text="recs.1.title"></li><li signal:text="recs.2.title"></li></ul>
  </template>
  <template async:error="recs"><p>No recommendations (<span signal:text="recs.$error.code"></span>)</p></template><p>Loading recommendations...</p>
</aside></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"product":{"error":null,"loading":true,"status":"loading","value":null,"version":1},"productId":"sku-1","recs":{"error":null,"loading":true,"status":"loading","value":null,"version":1},"router.error":null,"router.params":{"id":"sku-1"},"router.path":"/products/sku-1","router.pending":false,"router.query":{},"router.route":"/products/:id","router.url":"/products/sku-1"}}</script>]==] },
      { 50, [==[
<template async:fill="product">
    <article>
      <h1 signal:text="product.title">Keyboard</h1>
      <button type="button" on:click="selectProduct">Select</button>
    </article>
  </template><script type="application/json" async:patch>{"seq":1,"signals":{"product":{"error":null,"loading":false,"status":"ready","value":{"id":"sku-1","title":"Keyboard"},"version":1}}}</script>]==] },
      { 200, [==[
<template async:fill="recs">
    <ul><li signal:text="recs.1.title">Wrist rest</li><li signal:text="recs.2.title">Keycaps</li></ul>
  </template><script type="application/json" async:patch>{"seq":2,"signals":{"recs":{"error":null,"loading":false,"status":"ready","value":[{"title":"Wrist rest"},{"title":"Keycaps"}],"version":1}}}</script>]==] },
      { 200, [==[
</main></body></html>]==] },
      { 200, [==[
<END>]==] },
  } },
  { "partials", "/", "render", status = 200, html = [==[
<section async:boundary="route"><h1>Home</h1></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"router.error":null,"router.params":{},"router.path":"/","router.pending":false,"router.query":{},"router.route":"/","router.url":"/"}}</script>]==] },
  { "partials", "/products/sku-1", "document", status = 200, html = [==[
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Keyboard</title><script src="/__async/client.js" defer></script></head><body><main async:container><section async:boundary="route"><h1>Keyboard</h1></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"router.error":null,"router.params":{"id":"sku-1"},"router.path":"/products/sku-1","router.pending":false,"router.query":{},"router.route":"/products/:id","router.url":"/products/sku-1"}}</script></main></body></html>]==] },
  { "partials", "/nowhere", "render", status = 404, html = [==[
<section async:boundary="route"><h1>Not found: /nowhere</h1></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"router.error":null,"router.params":{},"router.path":"/nowhere","router.pending":false,"router.query":{},"router.route":"*","router.url":"/nowhere"}}</script>]==] },
  { "partials", "/products/zzz", "render", status = 404, html = [==[
<section async:boundary="route"><h1>No product zzz</h1></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{"router.error":null,"router.params":{"id":"zzz"},"router.path":"/products/zzz","router.pending":false,"router.query":{},"router.route":"/products/:id","router.url":"/products/zzz"}}</script>]==] },
  { "ssr", "/products/123", "render", status = 200, html = [==[
<section async:boundary="route"><h1>Product 123</h1>
<button type="button" on:click="increment">+</button>
<strong signal:text="count">0</strong></section><script type="application/json" async:snapshot>{"cache":{"browser":{"product:123":{"id":"123","title":"Product 123"}}},"signals":{"count":0,"router.error":null,"router.params":{"id":"123"},"router.path":"/products/123","router.pending":false,"router.query":{},"router.route":"/products/:id","router.url":"/products/123"}}</script>]==] },
  { "ssr", "/products/1%3C2?x=1", "document", status = 200, html = [==[
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Product 1&lt;2</title><script src="/__async/client.js" defer></script></head><body><main async:container><section async:boundary="route"><h1>Product 1&lt;2</h1>
<button type="button" on:click="increment">+</button>
<strong signal:text="count">0</strong></section><script type="application/json" async:snapshot>{"cache":{"browser":{"product:1\u003c2":{"id":"1\u003c2","title":"Product 1\u003c2"}}},"signals":{"count":0,"router.error":null,"router.params":{"id":"1\u003c2"},"router.path":"/products/1%3C2","router.pending":false,"router.query":{"x":"1"},"router.route":"/products/:id","router.url":"/products/1%3C2?x=1"}}</script></main></body></html>]==] },
}

-- Renders a case on a manual loop; returns { status, html } or the list of
-- { loop ms, chunk } (write(nil) recorded as "<END>").
local function run(c)
  local loop = Async.manual_loop()
  Async.set_loop(loop)
  local rt = Async.create_app(dofile("examples/" .. c[1] .. ".lua"), { env = "development" })
  local res = {}
  local co = coroutine.create(function()
    if c[3] == "stream" then
      rt:render_stream(c[2], function(chunk) res[#res + 1] = { loop:now(), chunk or "<END>" } end)
    else
      local out = c[3] == "document" and rt:render_document(c[2]) or rt:render(c[2])
      res = { status = out.status, html = out.html }
    end
  end)
  local ok, err = coroutine.resume(co)
  assert(ok, err)
  while coroutine.status(co) ~= "dead" do
    loop:advance(1)
    assert(loop:now() < 60000, "the render did not finish")
  end
  return res
end

describe("examples (byte for byte)", function()
  for _, c in ipairs(CASES) do
    it(c[1] .. " " .. c[2] .. " (" .. c[3] .. ")", function()
      local res = run(c)
      if c[3] == "stream" then
        assert.are.same(c.chunks, res)
      else
        assert.are.equal(c.status, res.status)
        assert.are.equal(c.html, res.html)
      end
    end)
  end

  it("the snapshot of the ssr example reads back", function()
    local res = run({ "ssr", "/products/123", "render" })
    assert.are.same({
      signals = { count = 0, ["router.error"] = Async.null, ["router.params"] = { id = "123" },
                  ["router.path"] = "/products/123", ["router.pending"] = false, ["router.query"] = {},
                  ["router.route"] = "/products/:id", ["router.url"] = "/products/123" },
      cache = { browser = { ["product:123"] = { id = "123", title = "Product 123" } } },
    }, Async.read_snapshot(res.html))
  end)
end)
