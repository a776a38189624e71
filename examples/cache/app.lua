--- The seed's cache example: cache declarations split by target.
--
-- Server cache (`self.cache` in server functions and partials): the report
-- is expensive (200 ms), so `report.get` keeps it for 5 s. The page starts
-- three panels that ask for it at the same moment: one fill serves all three
-- (get_or_set is single flight). "Ask again" calls the server: within the
-- TTL the answer is a hit (same fill number, growing age), after it a new
-- fill.
--
-- Browser cache (`self.browser_cache` in partials, `ctx.cache` in browser
-- handlers): the page seeds a tip into it through the snapshot; "Read the
-- tip" shows it from the browser's cache, with no request.
--
--   build/asyncrt examples/cache/app.lua   then open http://127.0.0.1:8080/
local Async = require("async")

local fills = 0   -- how many times the report was really computed

local app = Async.define_app()

app:use({
  cache = {
    server = { report = Async.define_cache({ ttl = 5000 }) },   -- keys "report:..."
    browser = { tip = Async.define_cache({ ttl = 60000 }) },
  },
  signal = { report = { fill = 0, age = 0 }, tip = "" },
  server = {
    -- the cached report: { fill = n, made = ms } (computed at most once per 5 s)
    ["report.get"] = function(self)
      return self.cache:get_or_set("report:daily", function()
        fills = fills + 1
        local fill = fills
        Async.delay(200, self.abort)   -- the expensive query
        return { fill = fill, made = Async.now() }
      end)
    end,
    -- what the "Ask again" button shows: the report's fill and age
    ["report.check"] = function(self)
      local r = self.server.report.get()
      local view = { fill = r.fill, age = Async.now() - r.made }
      return Async.result({ value = view, signals = { report = view } })
    end,
  },
  partial = {
    home = function(self)
      -- three panels load the report at once: they share one fill
      for _, id in ipairs({ "panel.a", "panel.b", "panel.c" }) do
        self.signals:async_signal(id, function(ctx) return ctx.server.report.get() end)
      end
      self.browser_cache:set("tip:today", "Cache what is slow to compute, not what is quick.")
      return {
        title = "Cache",
        html = Async.html[[
<h1>Cache</h1>
<h2>Server cache: one fill for three panels</h2>
<div class="panels">
  <section async:boundary="panel.a">
    <template async:loading="panel.a"><p>A: loading...</p></template>
    <template async:ready="panel.a"><p>A: fill #<span signal:text="panel.a.fill"></span></p></template>
  </section>
  <section async:boundary="panel.b">
    <template async:loading="panel.b"><p>B: loading...</p></template>
    <template async:ready="panel.b"><p>B: fill #<span signal:text="panel.b.fill"></span></p></template>
  </section>
  <section async:boundary="panel.c">
    <template async:loading="panel.c"><p>C: loading...</p></template>
    <template async:ready="panel.c"><p>C: fill #<span signal:text="panel.c.fill"></span></p></template>
  </section>
</div>
<h2>Hits and fills (TTL 5 s)</h2>
<p><button type="button" on:click="server.report.check()">Ask again</button>
  Fill #<strong signal:text="report.fill"></strong>, <span signal:text="report.age"></span> ms old</p>
<h2>Browser cache</h2>
<p><button type="button" on:click="readTip">Read the tip</button> <em signal:text="tip"></em></p>]] {},
      }
    end,
  },
  route = { ["/"] = Async.define_route("home") },
})

-- The default layout with this example's stylesheet and page script
-- (public/): app.js registers the browser handler readTip (after the client).
local function head(page)
  return Async.html[[<link rel="stylesheet" href="{{ p }}/style.css"><script src="{{ p }}/app.js" defer></script>]] {
    p = page.prefix or "" }
end

return Async.main(app, {
  public = "public",   -- examples/cache/public
  head = head,
  -- a handler that exists only in the browser, so the server accepts its name
  runtime = { client_handlers = { "readTip" } },
})
