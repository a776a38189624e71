-- Template benchmark: a 100-row product table rendered by async.html, by
-- hand-written table.concat of the same HTML (the floor) and by lua-cosmo.
-- Run from the repo root: luajit bench/template.lua [iterations]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path

local html = require("async.html.template")
local clock, format, concat, gsub, find = os.clock, string.format, table.concat, string.gsub, string.find

local N = tonumber(arg and arg[1]) or 3000

local products = {}
for i = 1, 100 do
  products[i] = {
    id = "sku-" .. i,
    title = (i % 10 == 0) and ("Keyboard <Pro> & \"Friends\" " .. i) or ("Keyboard " .. i),
    price = 10 + i * 0.25,
    stock = i % 7,
  }
end

-- ===== async.html =====
local row = html.html([[
<tr id="row-{{ id }}"><td><a href="/products/{{ id }}">{{ title }}</a></td><td class="price">{{ price }}</td>]] ..
  [[<td>{{ stock }}</td></tr>
]])
local page = html.html[[
<table class="products">
<thead><tr><th>Title</th><th>Price</th><th>Stock</th></tr></thead>
<tbody>
{{ rows }}</tbody>
</table>
]]

local function render_template(list)
  local rows = {}
  for i = 1, #list do rows[i] = row(list[i]) end
  return tostring(page { rows = rows })
end

-- ===== hand-written (the floor) =====
local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s)
  s = tostring(s)
  if find(s, "[&<>\"']") then return (gsub(s, "[&<>\"']", ESC)) end
  return s
end

local function render_hand(list)
  local buf, n = {}, 1
  buf[1] = '<table class="products">\n<thead><tr><th>Title</th><th>Price</th><th>Stock</th></tr></thead>\n<tbody>\n'
  for i = 1, #list do
    local p = list[i]
    buf[n + 1] = '<tr id="row-'; buf[n + 2] = esc(p.id)
    buf[n + 3] = '"><td><a href="/products/'; buf[n + 4] = esc(p.id)
    buf[n + 5] = '">'; buf[n + 6] = esc(p.title)
    buf[n + 7] = '</a></td><td class="price">'; buf[n + 8] = esc(p.price)
    buf[n + 9] = "</td><td>"; buf[n + 10] = esc(p.stock)
    buf[n + 11] = "</td></tr>\n"
    n = n + 11
  end
  buf[n + 1] = "</tbody>\n</table>\n"
  return concat(buf)
end

-- ===== lua-cosmo =====
local has_cosmo, cosmo = pcall(require, "cosmo")
local cosmo_page
if has_cosmo then
  cosmo_page = cosmo.compile([[
<table class="products">
<thead><tr><th>Title</th><th>Price</th><th>Stock</th></tr></thead>
<tbody>
$rows[=[<tr id="row-$id"><td><a href="/products/$id">$title</a></td><td class="price">$price</td><td>$stock</td></tr>
]=]</tbody>
</table>
]])
end

local function render_cosmo(list)
  -- cosmo does not escape: give it pre-escaped rows, as an app would have to
  local rows = {}
  for i = 1, #list do
    local p = list[i]
    rows[i] = { id = esc(p.id), title = esc(p.title), price = esc(p.price), stock = esc(p.stock) }
  end
  return cosmo_page { rows = rows }
end

-- ===== run =====
local a, b = render_template(products), render_hand(products)
assert(a == b, "template and hand-written output differ:\n" .. a .. "\n----\n" .. b)
if has_cosmo then
  local c = render_cosmo(products)
  assert(c == b, "cosmo output differs:\n" .. c)
end

local function time(fn)
  for _ = 1, 200 do fn(products) end -- warm up
  collectgarbage()
  local t0 = clock()
  for _ = 1, N do fn(products) end
  return (clock() - t0) / N * 1000
end

-- best of 5 interleaved rounds, to keep GC and CPU noise out of the ratios
local floor, tpl, cos = math.huge, math.huge, math.huge
for _ = 1, 5 do
  floor = math.min(floor, time(render_hand))
  tpl = math.min(tpl, time(render_template))
  if has_cosmo then cos = math.min(cos, time(render_cosmo)) end
end
print(format("100-row product table, best of 5 x %d renders (%d bytes)", N, #b))
print(format("  hand-written concat  %8.4f ms/render  1.00x", floor))
print(format("  async.html           %8.4f ms/render  %.2fx", tpl, tpl / floor))
if has_cosmo then
  print(format("  lua-cosmo            %8.4f ms/render  %.2fx", cos, cos / floor))
else
  print("  lua-cosmo            not installed (apt-get install lua-cosmo)")
end
