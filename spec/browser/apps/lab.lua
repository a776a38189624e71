--- The browser specs' lab app: one page with every client feature the
-- examples do not show (spec/browser/client.test.mjs).
--
--   count + increment     a Lua handler over HTTP, quick clicks in order
--   bump                  a browser handler registered by /lab.js
--   greet.hello($form)    a server function called from a form
--   restock               a server function answering an error envelope
--                         that also carries signals and a swap (none applied)
--   leave                 a Lua handler answering a redirect
--   showPanel             a Lua handler that adds 10 to count and swaps
--                         boundary "panel" (signals, then the swap)
--   stock                 an async signal whose boundary has loading, ready
--                         and error templates
local Async = require("async")

local app = Async.define_app()

local PANEL = [[
<div class="panel-v{{ n }}">
  <b id="panel-count" signal:text="count">{{ count }}</b>
  <em id="panel-note" signal:text="panelNote"></em>
  <i on:attach="panelAttach"></i>
  <button type="button" id="panel-bump" on:click="bump">bump</button>
  <script type="application/json" async:snapshot>{"signals":{"panelNote":"note {{ n }}"}}</script>
</div>]]

app:use({
  signal = {
    count = 0,
    greeting = "",
    title = "Lab",
    active = true,
    tone = { "card", { wide = true } },
    sku = "a",
    stock = Async.define_async(function(self)
      local sku = self.signals:get("sku")
      Async.delay(10, self.abort)
      if sku == "none" then error({ code = "not-found", message = "No stock for " .. sku }, 0) end
      return { sku = sku, qty = 3 }
    end),
    panelNote = "",
    link = "/lab#top",
  },
  handler = {
    increment = function(self) self.signals:update("count", function(c) return c + 1 end) end,
    -- asks the client to navigate (the envelope's redirect)
    leave = function(self) self:redirect("/lab?left=1") end,
    showPanel = function(self)
      local n = (self.input and self.input.dataset and tonumber(self.input.dataset.n)) or 1
      self.signals:update("count", function(c) return c + 10 end)
      self:swap("panel", Async.html(PANEL) { n = n, count = self.signals:get("count") })
    end,
  },
  server = {
    ["greet.hello"] = function(_, form)
      local name = form and form.name or "nobody"
      return Async.result({ value = { greeted = name }, signals = { greeting = "Hello, " .. name } })
    end,
    ["restock"] = function()
      return Async.result({
        error = { name = "Error", code = "out-of-stock", message = "Nothing left to restock" },
        signals = { count = 99 }, boundary = "panel", html = "<p>never</p>", redirect = "/never",
      })
    end,
  },
  partial = {
    lab = function()
      return Async.html[[
<h1 id="title" signal:text="title">Lab</h1>
<p><span id="count" class="count" class:active="active" signal:class="tone" signal:attr:data-count="count"
    signal:text="count">0</span></p>
<button type="button" id="inc" on:click="increment">+1</button>
<button type="button" id="bump" on:click="bump" data-step="5">bump</button>
<button type="button" id="restock" on:click="server.restock()">restock</button>
<form id="greet" on:submit="preventDefault; server.greet.hello($form)">
  <input name="name" value="Ada">
  <button id="greet-go">Say hello</button>
</form>
<p id="greeting" signal:text="greeting"></p>
<label><input type="checkbox" id="agree" signal:prop:checked="active"> active</label>
<a id="link" signal:attr:href="link">link</a>
<div id="outer" on:click="bump">
  <button type="button" id="inner" data-step="2" on:click="stopPropagation; bump">inner</button>
</div>
<button type="button" id="leave" on:click="leave">leave</button>
<input id="title-input" signal:value="title">
<button type="button" id="show1" data-n="1" on:click="showPanel">panel 1</button>
<button type="button" id="show2" data-n="2" on:click="showPanel">panel 2</button>
<div id="panel" async:boundary="panel"><span id="panel-empty">no panel</span></div>
<section id="stock" async:boundary="stock">
  <template async:loading="stock"><p class="loading">Loading stock...</p></template>
  <template async:ready="stock">
    <p class="ready">Stock of <b signal:text="stock.sku"></b>: <span signal:text="stock.qty"></span></p>
  </template>
  <template async:error="stock"><p class="error" signal:text="stock.$error.message"></p></template>
</section>]] {}
    end,
  },
  route = { ["/lab"] = Async.define_route("lab") },
})

return app
