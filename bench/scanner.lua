-- Benchmark of async.scanner: Lua patterns vs LPeg for the tokenizer, on a
-- product page and a 100-row table page.
--
--   luajit bench/scanner.lua [seconds-per-case]
--
-- For each page and tokenizer it prints pages/sec for: tokenize; cold
-- (tokenize + compile + fill, no plan cache); warm (cached plan + fill, what a
-- request costs). "floor" is hand-written concatenation of the same bytes.
-- The results are in docs/rendering.md ("Measurements").
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path

local scanner = require("async.html.scanner")
local ok_lpeg, lpeg = pcall(require, "lpeg")

local clock, concat, fmt = os.clock, table.concat, string.format
local BUDGET = tonumber(arg and arg[1] or "") or 0.5

-- ===== PAGES =====

local function table_page(rows)
  local out = { '<main async:container>\n<h1 signal:text="page.title">Orders</h1>\n',
    '<table class="grid">\n<thead><tr><th>Id</th><th>Customer</th><th>Status</th><th>Qty</th><th></th></tr></thead>\n',
    "<tbody>\n" }
  for i = 1, rows do
    out[#out + 1] = fmt('<tr class="row" class:selected="rows.%d.selected">'
      .. '<td signal:text="rows.%d.id"></td>'
      .. '<td><a signal:attr:href="rows.%d.url" signal:text="rows.%d.name"></a></td>'
      .. '<td><span class="badge" signal:class="rows.%d.status"></span></td>'
      .. '<td><input type="number" min="0" signal:value="rows.%d.qty"></td>'
      .. '<td><button type="button" on:click="select(rows.%d.id)" signal:attr:disabled="rows.%d.locked">'
      .. 'Open</button></td></tr>\n', i, i, i, i, i, i, i, i)
  end
  out[#out + 1] = "</tbody>\n</table>\n</main>"
  return concat(out)
end

local PRODUCT = [[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title signal:text="page.title">Shop</title>
<style>.price > span { font-weight: bold } .muted { color: #777 }</style></head>
<body><main async:container>
<nav><a href="/">Home</a> &rsaquo; <a href="/c/keyboards">Keyboards</a></nav>
<article class="product" async:boundary="product">
  <template async:loading="product"><p class="muted">Loading&hellip;</p></template>
  <template async:ready="product">
    <h1 signal:text="product.title"></h1>
    <img signal:attr:src="product.image" signal:attr:alt="product.title" src="/placeholder.png" width="320">
    <p class="price">Price: <span signal:text="product.price"></span></p>
    <p signal:text="product.description"></p>
    <ul class="tags"><li signal:text="product.tag1"></li><li signal:text="product.tag2"></li></ul>
    <select signal:value="product.size"><option value="s">Small<option value="m">Medium<option value="l">Large</select>
    <label><input type="checkbox" signal:prop:checked="product.gift"> Gift wrap</label>
    <button type="button" class="button" class:selected="product.inCart" signal:class="buttonClasses"
      signal:attr:disabled="product.$loading" on:click="server.cart.add(productId)">Add to cart</button>
  </template>
  <template async:error="product"><p class="error" signal:text="product.$error.message"></p></template>
</article>
<form on:submit="preventDefault; server.reviews.add(productId, $form)">
  <textarea name="body" signal:value="draft.body"></textarea>
  <button>Send</button>
</form>
<!-- recommendations: <aside> is filled by streaming -->
<aside async:boundary="recs"><template async:loading="recs"><p>...</p></template></aside>
</main>
<script type="application/json" async:snapshot>{"signals":{}}</script>
</body></html>]]

local VALUES = {
  ["page.title"] = "Keyboard <Pro> & more", ["product.title"] = "Keyboard \"Pro\"", ["product.price"] = 129.5,
  ["product.image"] = "/img/kb.png?w=320&h=200", ["product.description"] = "Mechanical, <hot-swap> switches & RGB.",
  ["product.tag1"] = "mechanical", ["product.tag2"] = "rgb", ["product.size"] = "m", ["product.gift"] = true,
  ["product.inCart"] = false, buttonClasses = { "button-primary", { compact = true } },
  ["product.$loading"] = false, ["draft.body"] = "It's <great>", ["@product"] = "ready", ["@recs"] = "loading",
}
for i = 1, 100 do
  VALUES["rows." .. i .. ".selected"] = i % 7 == 0
  VALUES["rows." .. i .. ".id"] = 1000 + i
  VALUES["rows." .. i .. ".url"] = "/orders/" .. (1000 + i)
  VALUES["rows." .. i .. ".name"] = "Customer #" .. i .. (i % 10 == 0 and " & Sons <Ltd>" or "")
  VALUES["rows." .. i .. ".status"] = ({ "paid", "open", { late = true, open = true } })[i % 3 + 1]
  VALUES["rows." .. i .. ".qty"] = i % 5
  VALUES["rows." .. i .. ".locked"] = i % 2 == 0
end

local function resolve(slot)
  if slot.kind == "boundary" then return VALUES["@" .. slot.id] end
  return VALUES[slot.path]
end

-- ===== FLOOR: hand-written concatenation of the same bytes (table page) =====

local esc = scanner.escape_attr
local function table_floor(rows)
  local out = { '<main async:container>\n<h1 signal:text="page.title">', esc(VALUES["page.title"]), '</h1>\n',
    '<table class="grid">\n<thead><tr><th>Id</th><th>Customer</th><th>Status</th><th>Qty</th><th></th></tr></thead>\n',
    "<tbody>\n" }
  local n = #out
  for i = 1, rows do
    local p = "rows." .. i .. "."
    local st = VALUES[p .. "status"]
    local cls = type(st) == "string" and st or "late open"
    n = n + 1
    out[n] = '<tr class="row' .. (VALUES[p .. "selected"] and " selected" or "") .. '" class:selected="rows.'
      .. i .. '.selected"><td signal:text="rows.' .. i .. '.id">' .. esc(tostring(VALUES[p .. "id"]))
      .. '</td><td><a signal:attr:href="rows.' .. i .. '.url" signal:text="rows.' .. i .. '.name" href="'
      .. esc(VALUES[p .. "url"]) .. '">' .. esc(VALUES[p .. "name"]) .. '</a></td><td><span class="badge '
      .. cls .. '" signal:class="rows.' .. i .. '.status"></span></td><td><input type="number" min="0" '
      .. 'signal:value="rows.' .. i .. '.qty" value="' .. VALUES[p .. "qty"] .. '"></td><td><button type="button" '
      .. 'on:click="select(rows.' .. i .. '.id)" signal:attr:disabled="rows.' .. i .. '.locked"'
      .. (VALUES[p .. "locked"] and ' disabled=""' or "") .. '>Open</button></td></tr>\n'
  end
  out[n + 1] = "</tbody>\n</table>\n</main>"
  return concat(out)
end

-- ===== LPEG TOKENIZER (the alternative measured) =====

local lpeg_tokenize
if ok_lpeg then
  local P, R, S, C, Cp, Ct, Cc, Cmt = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cp, lpeg.Ct, lpeg.Cc, lpeg.Cmt
  local lower, find, sub, byte = string.lower, string.find, string.sub, string.byte
  local RAW = scanner.RAW_TEXT
  local ws = S" \t\n\r\f"
  local alpha = R("az", "AZ")
  local skip = (ws + (P"/" * -P">")) ^ 0
  local name_ch = 1 - ws - S"/>"
  local value = (P'"' * Cc('"') * Cp() * C((1 - P'"') ^ 0) * P'"')
    + (P"'" * Cc("'") * Cp() * C((1 - P"'") ^ 0) * P"'")
    + (Cc("") * Cp() * C((1 - ws - P">") ^ 0))
  local attr = (Cp() * C((1 - ws - S"/>") * (1 - ws - S"/>=") ^ 0)
    * ((ws ^ 0 * P"=" * ws ^ 0 * value) + Cc(nil, nil, nil)) * Cp())
    / function(pos, raw, quote, vpos, v, after)
      return { name = lower(raw), raw_name = raw, pos = pos, stop = after - 1, value = v, quote = quote, vpos = vpos }
    end
  local function finish_start(s, i, pos, raw, attrs, close)
    local name = lower(raw)
    local last = attrs[#attrs]
    local tok = { type = "start", pos = pos, stop = i - 1, name = name, raw_name = raw, attrs = attrs,
      self_closing = close == "/>", ins = last and last.stop + 1 or pos + 1 + #raw }
    if not RAW[name] then return i, tok end
    local p, nl = i, #name
    while true do
      local e = find(s, "</", p, true)
      if not e then return false end
      if lower(sub(s, e + 2, e + 1 + nl)) == name then
        local nb = byte(s, e + 2 + nl)
        if not nb or nb == 32 or nb == 9 or nb == 10 or nb == 13 or nb == 12 or nb == 47 or nb == 62 then
          if e > i then return e, tok, { type = "text", pos = i, stop = e - 1, raw = name } end
          return e, tok
        end
      end
      p = e + 2
    end
  end
  local start_tag = Cmt(Cp() * P"<" * C(alpha * name_ch ^ 0) * Ct((skip * attr) ^ 0) * skip * C(P"/>" + P">"),
    finish_start)
  local end_tag = (Cp() * P"</" * C(alpha * name_ch ^ 0) * (skip * attr) ^ 0 * skip * (P"/>" + P">") * Cp())
    / function(pos, raw, ...)
      local after = select(select("#", ...), ...)
      return { type = "end", pos = pos, stop = after - 1, name = lower(raw) }
    end
  local comment = (Cp() * P"<!--" * (P">" + P"->" + ((1 - (P"--" * P"!" ^ -1 * P">")) ^ 0 * P"--" * P"!" ^ -1 * P">"))
    * Cp()) / function(a, b) return { type = "comment", pos = a, stop = b - 1 } end
  local ci = function(w)
    local pt = P(true)
    for ch in w:gmatch(".") do pt = pt * S(ch:lower() .. ch:upper()) end
    return pt
  end
  local doctype = (Cp() * P"<!" * ci("doctype") * (1 - P">") ^ 0 * P">" * Cp())
    / function(a, b) return { type = "doctype", pos = a, stop = b - 1 } end
  local bogus = (Cp() * ((P"<!" + P"<?") + (P"</" * -alpha)) * (1 - P">") ^ 0 * P">" * Cp())
    / function(a, b) return { type = "comment", pos = a, stop = b - 1, bogus = true } end
  local markup = alpha + (P"/" * P(1)) + S"!?"
  local text = (Cp() * ((1 - P"<") ^ 1 + (P"<" * -markup)) ^ 1 * Cp())
    / function(a, b) return { type = "text", pos = a, stop = b - 1 } end
  local doc = Ct((text + comment + doctype + bogus + start_tag + end_tag) ^ 0) * Cp()

  lpeg_tokenize = function(html)
    local toks, stop = doc:match(html)
    if stop ~= #html + 1 then return scanner._tokenize(html) end -- errors: the reference tokenizer reports them
    return toks
  end
end

-- ===== HARNESS =====

local function rate(fn)
  local n, t0 = 0, clock()
  local batch = 1
  while true do
    for _ = 1, batch do fn() end
    n = n + batch
    local dt = clock() - t0
    if dt >= BUDGET then return n / dt end
    if dt < BUDGET / 10 then batch = batch * 2 end
  end
end

local function same_tokens(a, b)
  if #a ~= #b then return false, "count " .. #a .. " vs " .. #b end
  for k = 1, #a do
    local x, y = a[k], b[k]
    for _, f in ipairs({ "type", "pos", "stop", "name", "raw", "self_closing", "ins" }) do
      if x[f] ~= y[f] then return false, "token " .. k .. " field " .. f end
    end
    if x.attrs then
      for j = 1, #x.attrs do
        for _, f in ipairs({ "name", "pos", "stop", "value", "quote", "vpos" }) do
          if x.attrs[j][f] ~= y.attrs[j][f] then return false, "token " .. k .. " attr " .. j .. " " .. f end
        end
      end
    end
  end
  return true
end

local pages = { { "product page", PRODUCT }, { "100-row table page", table_page(100) } }
local tokenizers = { { "lua patterns", scanner._tokenize } }
if lpeg_tokenize then tokenizers[2] = { "lpeg " .. lpeg.version(), lpeg_tokenize } end

print(fmt("async.scanner bench (%s, %.1fs per case)", jit and jit.version or _VERSION, BUDGET))
for _, pg in ipairs(pages) do
  local name, html = pg[1], pg[2]
  local ref = scanner._tokenize(html)
  local plan = assert(scanner.compile(html))
  local out = scanner.fill(plan, resolve)
  print(fmt("\n%s: %d bytes, %d tokens, %d slots, %d holes, output %d bytes", name, #html, #ref, #plan.slots,
    #plan.holes, #out))
  for _, tk in ipairs(tokenizers) do
    local tname, tok = tk[1], tk[2]
    local same, why = same_tokens(ref, tok(html))
    assert(same, tname .. " tokens differ: " .. tostring(why))
    local opts = { cache = false, tokenizer = tok }
    assert(scanner.fill(assert(scanner.compile(html, opts)), resolve) == out)
    print(fmt("  %-14s tokenize %9.0f/s   cold (tokenize+compile+fill) %8.0f/s", tname,
      rate(function() tok(html) end),
      rate(function() scanner.fill(scanner.compile(html, opts), resolve) end)))
  end
  print(fmt("  %-14s %9.0f pages/s (cached plan + fill: the per-request cost)", "warm fill",
    rate(function() scanner.fill(scanner.compile(html), resolve) end)))
  if name:find("table") then
    assert(table_floor(100) == out, "floor output differs")
    print(fmt("  %-14s %9.0f pages/s (hand-written concatenation of the same bytes)", "floor",
      rate(function() table_floor(100) end)))
  end
end
