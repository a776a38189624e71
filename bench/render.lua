-- Benchmark of SSR (async.render): a product page and a 100-row table page,
-- pages per second in-process, compared in the same run with
--   floor   hand-written concatenation of the same bytes (same escaping, the
--           same snapshot JSON through async.json), and
--   cosmo   lua-cosmo rendering the same page (values escaped beforehand:
--           cosmo does not escape).
-- Measured:
--   request  Async.create_app(app) + rt:render(url): what a request costs
--   render   rt:render(url) on a runtime made once (the renderer alone)
-- Every variant is asserted to produce the same bytes before timing.
--
--   luajit bench/render.lua [--processes=K] [seconds-per-case] [page:variant]
-- --processes=K measures the table in K processes and prints the medians
-- and the ratios' ranges (make bench: K = 5); one process's ratios depend on
-- which traces LuaJIT formed first there.
-- The second argument times one variant alone (for profiling), e.g.
--   luajit -jp=Fl bench/render.lua 3 table:render
--   valgrind --tool=callgrind luajit bench/render.lua 2000 list:render count
--     (exactly 200 + N calls; instructions per page = the difference with N = 0, over N)
-- pages: product, table, list, components; variants: floor, request, render, cosmo, create.
-- The results are in docs/rendering.md ("Rendering measurements").
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local Async = require("async")
local json = require("async.app.json")
local scanner = require("async.html.scanner")

local clock, concat, fmt = os.clock, table.concat, string.format
-- --processes=K: the table is measured in K processes of its own and
-- printed as medians (see the end of this file); --child: one such process
local PROCS, CHILD = 1, false
local ARGS = {}   -- the other arguments, in order
do
  for i = 1, #(arg or {}) do
    local a = arg[i]
    local k = a:match("^%-%-processes=(%d+)$")
    if k then PROCS = tonumber(k)
    elseif a == "--child" then CHILD = true
    else ARGS[#ARGS + 1] = a end
  end
end
local BUDGET = tonumber(ARGS[1] or "") or 0.5
local ONLY = ARGS[2]
local esc_text, esc_attr = scanner.escape_text, scanner.escape_attr
local has_cosmo, cosmo = pcall(require, "cosmo")

Async.set_loop(Async.manual_loop())

-- ===== PRODUCT PAGE =====

local PRODUCTS = {
  ["sku-1"] = { title = 'Keyboard "Pro" <K2>', price = 129.5, image = "/img/kb.png?w=320&h=200",
                description = "Mechanical, <hot-swap> switches & RGB.", gift = true, inCart = true },
}

local PRODUCT_HTML = [[
<nav><a href="/">Home</a> &rsaquo; <a href="/c/keyboards">Keyboards</a></nav>
<article class="product" async:boundary="product">
  <template async:loading="product"><p class="muted">Loading&hellip;</p></template>
  <template async:ready="product">
    <h1 signal:text="product.title"></h1>
    <img signal:attr:src="product.image" signal:attr:alt="product.title" src="/placeholder.png" width="320">
    <p class="price">Price: <span signal:text="product.price"></span></p>
    <p signal:text="product.description"></p>
    <label><input type="checkbox" signal:prop:checked="product.gift"> Gift wrap</label>
    <button type="button" class="button" class:selected="product.inCart" signal:attr:disabled="product.$loading"
      on:click="server.cart.add(productId)">Add to cart</button>
  </template>
  <template async:error="product"><p class="error" signal:text="product.$error.message"></p></template>
</article>
<form on:submit="preventDefault; server.reviews.add(productId, $form)">
  <textarea name="body" signal:value="draft.body"></textarea>
  <button>Send</button>
</form>]]

local product_app = Async.define_app()
product_app:use({
  signal = {
    productId = "",
    draft = { body = "It's <great>" },
    product = Async.define_async(function(self) return PRODUCTS[self.signals:get("productId")] end),
  },
  server = { ["cart.add"] = function() end, ["reviews.add"] = function() end },
  partial = {
    ["product.page"] = function(self, params)
      self.signals:set("productId", params.id)
      return PRODUCT_HTML
    end,
  },
  route = { ["/products/:id"] = Async.define_route("product.page") },
})

local function router_state(url, path, pattern, params)
  return { ["router.url"] = url, ["router.path"] = path, ["router.params"] = params, ["router.query"] = {},
           ["router.route"] = pattern, ["router.pending"] = false, ["router.error"] = json.null }
end

local function snapshot_script(signals)
  return '<script type="application/json" async:snapshot>' ..
    json.encode({ signals = signals, cache = { browser = {} } }, { script = true }) .. "</script>"
end

local TEMPLATES = PRODUCT_HTML:match('<article class="product" async:boundary="product">(.-<template async:error' ..
  '="product">.-</template>)')
local FORM = PRODUCT_HTML:match("(\n<form.*)$")

local function product_floor(id)
  local p = PRODUCTS[id]
  local url = "/products/" .. id
  local signals = router_state(url, url, "/products/:id", { id = id })
  signals.productId = id
  signals.draft = { body = "It's <great>" }
  signals.product = { value = p, error = json.null, loading = false, status = "ready", version = 1 }
  return concat({
    '<section async:boundary="route"><nav><a href="/">Home</a> &rsaquo; <a href="/c/keyboards">Keyboards</a></nav>\n',
    '<article class="product" async:boundary="product">', TEMPLATES,
    '\n    <h1 signal:text="product.title">', esc_text(p.title), '</h1>\n',
    '    <img signal:attr:src="product.image" signal:attr:alt="product.title" src="', esc_attr(p.image),
    '" width="320" alt="', esc_attr(p.title), '">\n',
    '    <p class="price">Price: <span signal:text="product.price">', p.price, '</span></p>\n',
    '    <p signal:text="product.description">', esc_text(p.description), '</p>\n',
    '    <label><input type="checkbox" signal:prop:checked="product.gift"', p.gift and ' checked=""' or "",
    '> Gift wrap</label>\n',
    '    <button type="button" class="button', p.inCart and " selected" or "",
    '" class:selected="product.inCart" signal:attr:disabled="product.$loading"\n',
    '      on:click="server.cart.add(productId)">Add to cart</button>\n  \n</article>',
    FORM:gsub("</textarea>", esc_text(signals.draft.body) .. "</textarea>"),
    "</section>", snapshot_script(signals),
  })
end

local product_cosmo
if has_cosmo then
  product_cosmo = cosmo.compile('<section async:boundary="route"><nav><a href="/">Home</a> &rsaquo; ' ..
    '<a href="/c/keyboards">Keyboards</a></nav>\n<article class="product" async:boundary="product">$templates\n' ..
    '    <h1 signal:text="product.title">$title</h1>\n' ..
    '    <img signal:attr:src="product.image" signal:attr:alt="product.title" src="$image" width="320" ' ..
    'alt="$title">\n' ..
    '    <p class="price">Price: <span signal:text="product.price">$price</span></p>\n' ..
    '    <p signal:text="product.description">$description</p>\n' ..
    '    <label><input type="checkbox" signal:prop:checked="product.gift"$checked> Gift wrap</label>\n' ..
    '    <button type="button" class="button$selected" class:selected="product.inCart" ' ..
    'signal:attr:disabled="product.$$loading"\n' ..
    '      on:click="server.cart.add(productId)">Add to cart</button>\n  \n</article>$form</section>$snapshot')
end

local function product_cosmo_render(id)
  local p = PRODUCTS[id]
  local url = "/products/" .. id
  local signals = router_state(url, url, "/products/:id", { id = id })
  signals.productId = id
  signals.draft = { body = "It's <great>" }
  signals.product = { value = p, error = json.null, loading = false, status = "ready", version = 1 }
  return product_cosmo({
    templates = TEMPLATES, title = esc_text(p.title), image = esc_attr(p.image), price = p.price,
    description = esc_text(p.description), checked = p.gift and ' checked=""' or "",
    selected = p.inCart and " selected" or "",
    form = (FORM:gsub("</textarea>", esc_text(signals.draft.body) .. "</textarea>")),
    snapshot = snapshot_script(signals),
  })
end

-- ===== 100-ROW TABLE PAGE =====

local ROWS = {}
for i = 1, 100 do
  ROWS[i] = { id = 1000 + i, url = "/orders/" .. (1000 + i), name = "Customer #" .. i .. (i % 10 == 0 and
    " & Sons <Ltd>" or ""), status = ({ "paid", "open", "late" })[i % 3 + 1], qty = i % 5,
    selected = i % 7 == 0, locked = i % 2 == 0 }
end

local TABLE_HTML
do
  local out = { '<h1 signal:text="page.title"></h1>\n<table class="grid">\n<tbody>\n' }
  for i = 1, 100 do
    out[#out + 1] = fmt('<tr class="row" class:selected="rows.%d.selected"><td signal:text="rows.%d.id"></td>'
      .. '<td><a signal:attr:href="rows.%d.url" signal:text="rows.%d.name"></a></td>'
      .. '<td><span class="badge" signal:class="rows.%d.status"></span></td>'
      .. '<td><input type="number" signal:value="rows.%d.qty"></td>'
      .. '<td><button type="button" on:click="select(rows.%d.id)" signal:attr:disabled="rows.%d.locked">'
      .. "Open</button></td></tr>\n", i, i, i, i, i, i, i, i)
  end
  out[#out + 1] = "</tbody>\n</table>"
  TABLE_HTML = concat(out)
end

local table_app = Async.define_app()
table_app:use({
  signal = { page = { title = "Orders <all> & more" }, rows = {} },
  handler = { select = function() end },
  partial = {
    orders = function(self)
      self.signals:set("rows", ROWS)   -- the request's data: shared, never copied
      return TABLE_HTML
    end,
  },
  route = { ["/orders"] = Async.define_route("orders") },
})

local function table_signals()
  local signals = router_state("/orders", "/orders", "/orders", {})
  signals.page = { title = "Orders <all> & more" }
  signals.rows = ROWS
  return signals
end

local function table_floor()
  local signals = table_signals()
  local out = { '<section async:boundary="route"><h1 signal:text="page.title">', esc_text(signals.page.title),
    '</h1>\n<table class="grid">\n<tbody>\n' }
  local n = #out
  for i = 1, 100 do
    local r = ROWS[i]
    n = n + 1
    out[n] = '<tr class="row' .. (r.selected and " selected" or "") .. '" class:selected="rows.' .. i ..
      '.selected"><td signal:text="rows.' .. i .. '.id">' .. r.id .. '</td><td><a signal:attr:href="rows.' .. i ..
      '.url" signal:text="rows.' .. i .. '.name" href="' .. esc_attr(r.url) .. '">' .. esc_text(r.name) ..
      '</a></td><td><span class="badge ' .. esc_attr(r.status) .. '" signal:class="rows.' .. i ..
      '.status"></span></td><td><input type="number" signal:value="rows.' .. i .. '.qty" value="' .. r.qty ..
      '"></td><td><button type="button" on:click="select(rows.' .. i .. '.id)" signal:attr:disabled="rows.' .. i ..
      '.locked"' .. (r.locked and ' disabled=""' or "") .. ">Open</button></td></tr>\n"
  end
  out[n + 1] = "</tbody>\n</table></section>"
  out[n + 2] = snapshot_script(signals)
  return concat(out)
end

local table_cosmo
if has_cosmo then
  table_cosmo = cosmo.compile('<section async:boundary="route"><h1 signal:text="page.title">$title</h1>\n' ..
    '<table class="grid">\n<tbody>\n$rows[=[<tr class="row$selected" class:selected="rows.$i.selected">' ..
    '<td signal:text="rows.$i.id">$id</td><td><a signal:attr:href="rows.$i.url" signal:text="rows.$i.name" ' ..
    'href="$url">$name</a></td><td><span class="badge $status" signal:class="rows.$i.status"></span></td>' ..
    '<td><input type="number" signal:value="rows.$i.qty" value="$qty"></td><td><button type="button" ' ..
    'on:click="select(rows.$i.id)" signal:attr:disabled="rows.$i.locked"$disabled>Open</button></td></tr>\n' ..
    ']=]</tbody>\n</table></section>$snapshot')
end

local function table_cosmo_render()
  local signals = table_signals()
  local rows = {}
  for i = 1, 100 do
    local r = ROWS[i]
    rows[i] = { i = i, selected = r.selected and " selected" or "", id = r.id, url = esc_attr(r.url),
      name = esc_text(r.name), status = esc_attr(r.status), qty = r.qty, disabled = r.locked and ' disabled=""' or "" }
  end
  return table_cosmo({ title = esc_text(signals.page.title), rows = rows, snapshot = snapshot_script(signals) })
end

-- ===== 50-ROW LIST, REQUEST DATA IN {{ }} =====
-- Every request renders other data (ids and titles change per request), so
-- every page's HTML differs: what a plan cached by HTML cannot serve.

local LIST_N = 50
local seq = 0
local function list_items()
  seq = seq + 1
  local items, base = {}, seq * LIST_N
  for i = 1, LIST_N do
    local id = base + i
    items[i] = { id = id, title = "Item #" .. id .. (i % 10 == 0 and " <new> & \"hot\"" or ""), price = i * 1.5 }
  end
  return items
end

local LIST_ROW = Async.html([[<li class="item" data-id="{{ id }}"><a href="/items/{{ id }}">{{ title }}</a> ]] ..
  [[<span class="price">{{ price }}</span><button type="button" on:click="select">Open</button></li>
]])
local LIST_PAGE = Async.html[[<h1 signal:text="page.title">{{ heading }}</h1>
<p class="count">{{ count }} items</p>
<ul class="items">
{{ rows }}</ul>]]

local list_app = Async.define_app()
list_app:use({
  signal = { page = { title = "Items <all>" } },
  handler = { select = function() end },
  partial = {
    items = function()
      local items = list_items()
      local rows = {}
      for i = 1, #items do
        local it = items[i]
        rows[i] = LIST_ROW({ id = it.id, title = it.title, price = it.price })
      end
      return LIST_PAGE({ heading = "Items <all>", count = #items, rows = rows })
    end,
  },
  route = { ["/items"] = Async.define_route("items") },
})

local function list_floor()
  local items = list_items()
  local signals = router_state("/items", "/items", "/items", {})
  signals.page = { title = "Items <all>" }
  local out = { '<section async:boundary="route"><h1 signal:text="page.title">', esc_text(signals.page.title),
    '</h1>\n<p class="count">', #items, ' items</p>\n<ul class="items">\n' }
  local n = #out
  for i = 1, #items do
    local it = items[i]
    local id = esc_attr(tostring(it.id))
    out[n + 1] = '<li class="item" data-id="' .. id .. '"><a href="/items/' .. id .. '">' .. esc_text(it.title) ..
      '</a> <span class="price">' .. tostring(it.price) ..
      '</span><button type="button" on:click="select">Open</button></li>\n'
    n = n + 1
  end
  out[n + 1] = "</ul></section>"
  out[n + 2] = snapshot_script(signals)
  return concat(out)
end

-- ===== NESTED COMPONENTS =====
-- 20 cards, each a component with a signal, a handler and a class binding,
-- holding a Badge component with its own signal; card data in {{ }}.

local CARDS = 20
local Badge = Async.define_component(function(self, props)
  local n = self:signal("n", props.n)
  return Async.html[[<span class="badge" signal:text="{{ n }}">{{ v }}</span>]] { n = n, v = props.n }
end, "Badge")
local Card = Async.define_component(function(self, props)
  local open = self:signal("open", false)
  local toggle = self:handler("toggle", function() open:update(function(v) return not v end) end)
  return Async.html[[<article class="card" class:open="{{ open }}">
  <h2>{{ title }}</h2><p>{{ body }}</p>{{ badge }}
  <button type="button" on:click="{{ toggle }}">More</button>
</article>
]] { open = open, title = props.title, body = props.body, toggle = toggle,
     badge = self:render(Badge, { n = props.n }) }
end, "Card")

local function card_data()
  seq = seq + 1
  local cards = {}
  for i = 1, CARDS do
    cards[i] = { title = "Card " .. (seq * CARDS + i), body = "Body of <card> " .. i .. " & more", n = i }
  end
  return cards
end

local cards_app = Async.define_app()
cards_app:use({
  component = { Card = Card, Badge = Badge },
  partial = {
    cards = function(self)
      local data = card_data()
      local list = {}
      for i = 1, #data do list[i] = self:render("Card", data[i]) end
      return Async.html[[<div class="cards">
{{ list }}</div>]] { list = list }
    end,
  },
  route = { ["/cards"] = Async.define_route("cards") },
})

local function cards_floor()
  local data = card_data()
  local signals = router_state("/cards", "/cards", "/cards", {})
  local out, n = { '<section async:boundary="route"><div class="cards">\n' }, 1
  for i = 1, #data do
    local d = data[i]
    local id = "cards.Card." .. i
    signals[id .. ".open"] = false
    signals[id .. ".Badge.1.n"] = d.n
    out[n + 1] = '<article class="card" class:open="' .. esc_attr(id .. ".open") .. '">\n  <h2>' ..
      esc_text(d.title) .. "</h2><p>" .. esc_text(d.body) .. '</p><span class="badge" signal:text="' ..
      esc_attr(id .. ".Badge.1.n") .. '">' .. d.n .. '</span>\n  <button type="button" on:click="' ..
      esc_attr(id .. ".toggle") .. '">More</button>\n</article>\n'
    n = n + 1
  end
  out[n + 1] = "</div></section>"
  out[n + 2] = snapshot_script(signals)
  return concat(out)
end

-- ===== HARNESS =====

-- prep(k), when given, runs untimed before each batch of k calls. Such a
-- batch is at most FRESH_BATCH calls: prep's runtimes are live until the
-- batch ends, and a pool of hundreds of them (what doubling the batch up to
-- a tenth of the budget made) is a heap the collector marks on every cycle
-- of the timed calls, which a server that drops each request's runtime does
-- not have (it halved the components render's rate, and slowed the
-- variants measured after it; docs/rendering.md, "The fresh runtimes' pool")
local FRESH_BATCH = 16
local function rate(fn, prep)
  if prep then prep(50) end
  for _ = 1, 50 do fn() end -- warm up (JIT, plan cache)
  collectgarbage()
  local n, spent = 0, 0
  local batch = 1
  while true do
    if prep then prep(batch) end
    local t0 = clock()
    for _ = 1, batch do fn() end
    spent = spent + (clock() - t0)
    n = n + batch
    if spent >= BUDGET then return n / spent end
    if spent < BUDGET / 10 and (not prep or batch < FRESH_BATCH) then batch = batch * 2 end
  end
end

-- KB allocated per call (the collector stopped over 50 calls, after 200)
local function alloc_kb(fn, prep)
  if prep then prep(250) end
  for _ = 1, 200 do fn() end
  collectgarbage()
  collectgarbage("stop")
  local k0 = collectgarbage("count")
  for _ = 1, 50 do fn() end
  local kb = (collectgarbage("count") - k0) / 50
  collectgarbage("restart")
  return kb
end

-- best of 3 interleaved rounds per variant
local function best(variants)
  local out = {}
  for _ = 1, 3 do
    for _, v in ipairs(variants) do
      local r = rate(v[2], v[3])
      if not out[v[1]] or r > out[v[1]] then out[v[1]] = r end
    end
  end
  return out
end

local function check(name, want, got)
  if want ~= got then
    local i = 1
    while want:sub(i, i) == got:sub(i, i) do i = i + 1 end
    error(fmt("%s: output differs from the floor at byte %d:\nfloor: %s\ngot:   %s", name, i,
      want:sub(math.max(1, i - 60), i + 60), got:sub(math.max(1, i - 60), i + 60)), 0)
  end
end

local pages = {
  { name = "product", app = product_app, url = "/products/sku-1", floor = function() return product_floor("sku-1") end,
    cosmo = function() return product_cosmo_render("sku-1") end },
  { name = "100-row table", app = table_app, url = "/orders", floor = table_floor, cosmo = table_cosmo_render },
  -- request data in {{ }}: the floor and each variant draw the same data
  -- sequence (seq is reset before each comparison)
  { name = "50-row list", app = list_app, url = "/items", floor = list_floor, data = true },
  -- components register signals per render: "render" uses a fresh
  -- runtime per page, made untimed (fresh_pool)
  { name = "components", app = cards_app, url = "/cards", floor = cards_floor, data = true, fresh = true },
}

-- runtimes made ahead (untimed) for the pages whose render registers signals
local function fresh_pool(app)
  local pool, k = {}, 0
  local function prep(n)
    pool, k = {}, 0
    for i = 1, n do pool[i] = Async.create_app(app, { env = "production" }) end
  end
  local function next_rt()
    k = k + 1
    return pool[k]
  end
  return prep, next_rt
end

if ONLY then
  local pname, vname = ONLY:match("^(%w+):(%w+)$")
  for _, page in ipairs(pages) do
    if page.name:match(pname or "") then
      local rt = Async.create_app(page.app, { env = "production" })
      local prep, next_rt = fresh_pool(page.app)
      local fns = {
        floor = page.floor, cosmo = page.cosmo,
        -- create_app alone: for the components page, whose render count
        -- includes making its fresh runtimes (subtract this)
        create = function() return Async.create_app(page.app, { env = "production" }) end,
        request = function() return Async.create_app(page.app, { env = "production" }):render(page.url).html end,
        render = page.fresh and function() return next_rt():render(page.url).html end
          or function() return rt:render(page.url).html end,
      }
      local fn = assert(fns[vname], "unknown variant " .. tostring(vname))
      if ARGS[3] == "count" then   -- exactly N calls after 200 (for callgrind: subtract a run with N = 0)
        local n = tonumber(ARGS[1])
        if page.fresh and vname == "render" then prep(200 + n) end
        for _ = 1, 200 + n do fn() end
        return
      end
      print(fmt("%s %s: %.0f pages/s", page.name, vname, rate(fn, page.fresh and vname == "render" and prep or nil)))
      return
    end
  end
  error("unknown page " .. ONLY)
end

local function median(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

-- One process's table: a row per page { name, floor, request, render,
-- cosmo (nil without lua-cosmo), kb_floor, kb_render }, and the pages' sizes.
local function measure()
  local rows, sizes = {}, {}
  for _, page in ipairs(pages) do
    local rt = Async.create_app(page.app, { env = "production" })
    local prep, next_rt = fresh_pool(page.app)
    local function request()
      return Async.create_app(page.app, { env = "production" }):render(page.url).html
    end
    local render = page.fresh and function() return next_rt():render(page.url).html end
      or function() return rt:render(page.url).html end
    local cosmo_fn = has_cosmo and page.cosmo
    seq = 0
    local want = page.floor()
    sizes[#sizes + 1] = fmt("%s %d", page.name, #want)
    seq = 0
    check(page.name .. " request", want, request())
    seq = 0
    if page.fresh then prep(1) end
    check(page.name .. " render", want, render())
    if cosmo_fn then check(page.name .. " cosmo", want, cosmo_fn()) end
    if page.data then   -- and the pages differ from request to request
      local a, b = page.floor(), page.floor()
      assert(a ~= b, page.name .. ": the data should change per request")
    end
    local r = best({
      { "floor", page.floor }, { "request", request }, { "render", render, page.fresh and prep or nil },
      cosmo_fn and { "cosmo", cosmo_fn } or nil,
    })
    rows[#rows + 1] = { name = page.name, floor = r.floor, request = r.request, render = r.render, cosmo = r.cosmo,
                        kb_floor = alloc_kb(page.floor), kb_render = alloc_kb(render, page.fresh and prep or nil) }
  end
  return rows, concat(sizes, ", ")
end

local FIELDS = { "floor", "request", "render", "cosmo", "kb_floor", "kb_render" }

if CHILD then   -- a row per line for the parent (see below)
  local rows, sizes = measure()
  for _, row in ipairs(rows) do
    local out = { "row", row.name }
    for _, k in ipairs(FIELDS) do out[#out + 1] = row[k] and fmt("%.17g", row[k]) or "-" end
    print(concat(out, "\t"))
  end
  print("sizes\t" .. sizes)
  return
end

-- Run by LuaJIT's string hash seed (random per process), which traces form
-- first differs from one process to the next, and a page's rate with it:
-- the floor itself moved between 7,700 and 12,200 pages/s from one process
-- to the next. With --processes=K each process measures the whole table and
-- prints its rows (--child); the table is the median of each rate and of
-- each ratio, with the ratios' range.
local runs, sizes = {}, nil
if PROCS > 1 then
  local self_cmd = fmt("%s %s --child %s", arg[-1] or "luajit", arg[0], tostring(BUDGET))
  for _ = 1, PROCS do
    local p = assert(io.popen(self_cmd))
    local rows = {}
    for line in p:lines() do
      local parts = {}
      for f in line:gmatch("[^\t]+") do parts[#parts + 1] = f end
      if parts[1] == "row" then
        local row = { name = parts[2] }
        for j, k in ipairs(FIELDS) do row[k] = tonumber(parts[j + 2]) end
        rows[#rows + 1] = row
      elseif parts[1] == "sizes" then
        sizes = parts[2]
      end
    end
    local ok, how, code = p:close()
    if not ok then error(fmt("bench/render.lua: a child process failed (%s %s)", tostring(how), tostring(code)), 0) end
    runs[#runs + 1] = rows
  end
else
  runs[1], sizes = measure()
end

-- value(row) of page i in every run that has it, sorted
local function over_runs(i, value)
  local l = {}
  for _, rows in ipairs(runs) do
    local v = value(rows[i])
    if v then l[#l + 1] = v end
  end
  table.sort(l)
  return l
end
local function ratio(i, k)
  local l = over_runs(i, function(row) return row[k] and row.floor / row[k] end)
  if #l == 0 then return "n/a" end
  if #l == 1 then return fmt("%.2fx", l[1]) end
  return fmt("%.2fx (%.2f-%.2f)", median(l), l[1], l[#l])
end
local function rate_of(i, k)
  local l = over_runs(i, function(row) return row[k] end)
  return #l > 0 and median(l) or nil
end

print(fmt("%-14s %10s %10s %10s %10s   %-44s %s", "page", "floor", "request", "render", "cosmo",
  PROCS > 1 and "ratios to the floor, median (range): request / render / cosmo"
    or "ratios to the floor (request / render / cosmo)", "KB allocated per page (floor / render)"))
for i, row in ipairs(runs[1]) do
  local cos = rate_of(i, "cosmo")
  print(fmt("%-14s %10.0f %10.0f %10.0f %10s   %-44s %.1f / %.1f", row.name, rate_of(i, "floor"),
    rate_of(i, "request"), rate_of(i, "render"), cos and fmt("%.0f", cos) or "n/a",
    ratio(i, "request") .. " / " .. ratio(i, "render") .. " / " .. ratio(i, "cosmo"),
    rate_of(i, "kb_floor"), rate_of(i, "kb_render")))
end
if PROCS > 1 then
  print(fmt("(pages/s: the median over %d processes of each one's best of 3 rounds of %.1f s; bytes: %s;"
    .. " goal: render within 1.5x)", PROCS, BUDGET, sizes or "?"))
else
  print(fmt("(pages/s, best of 3 rounds of %.1f s; bytes: %s; goal: render within 1.5x)", BUDGET, sizes))
end
