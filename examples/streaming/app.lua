--- The seed's streaming example: the server sends the page shell at once,
-- each boundary showing its loading template, then each boundary's content
-- as its async signal settles, out of order (the product after 100 ms, the
-- recommendations after 200 ms, the reviews, which sit above them, after
-- 300 ms). The filled content carries delegated handlers that work as soon
-- as it is swapped in.
--
--   build/asyncrt examples/streaming/app.lua   then open http://127.0.0.1:8080/
local Async = require("async")

-- an async signal that waits `ms` (a slow service) and returns `value`
local function slow(ms, value)
  return Async.define_async(function(ctx)
    Async.delay(ms, ctx.abort)
    return value
  end)
end

local app = Async.define_app()

app:use({
  signal = {
    product = slow(100, { title = "Keyboard", price = 129.5 }),
    reviews = slow(300, { { who = "Ada", text = "Clicky." }, { who = "Linus", text = "Fast enough." } }),
    recs = slow(200, { { title = "Wrist rest" }, { title = "Keycaps" } }),
    selected = "nothing yet",
  },
  handler = {
    -- on:click="select(product.title)": the client sends the title it shows
    select = function(self, title) self.signals:set("selected", title) end,
  },
  partial = {
    home = function()
      return {
        title = "Streaming",
        html = Async.html[[
<h1>Streaming</h1>
<p>Selected: <strong signal:text="selected"></strong></p>
<section async:boundary="product">
  <template async:loading="product"><p class="loading">Loading the product...</p></template>
  <template async:ready="product">
    <h2 signal:text="product.title"></h2>
    <p>Price: <span signal:text="product.price"></span></p>
    <button type="button" on:click="select(product.title)">Select</button>
  </template>
</section>
<section async:boundary="reviews">
  <template async:loading="reviews"><p class="loading">Loading the reviews...</p></template>
  <template async:ready="reviews">
    <h3>Reviews</h3>
    <blockquote><span signal:text="reviews.1.text"></span> (<span signal:text="reviews.1.who"></span>)</blockquote>
    <blockquote><span signal:text="reviews.2.text"></span> (<span signal:text="reviews.2.who"></span>)</blockquote>
  </template>
</section>
<aside async:boundary="recs">
  <template async:loading="recs"><p class="loading">Loading the recommendations...</p></template>
  <template async:ready="recs">
    <h3>You may also like</h3>
    <ul>
      <li><span signal:text="recs.1.title"></span>
        <button type="button" on:click="select(recs.1.title)">Select</button></li>
      <li><span signal:text="recs.2.title"></span>
        <button type="button" on:click="select(recs.2.title)">Select</button></li>
    </ul>
  </template>
</aside>]] {},
      }
    end,
  },
  route = { ["/"] = Async.define_route("home") },
})

-- The default layout with this example's stylesheet (public/). The page
-- streams, so the default layout loads the client with `async` (page.stream):
-- each boundary is swapped in as the stream brings it.
local function head(page)
  return Async.html[[<link rel="stylesheet" href="{{ p }}/style.css">]] { p = page.prefix or "" }
end

return Async.main(app, { public = "public", head = head })   -- examples/streaming/public: /style.css
