-- Fuzz driver for async.scanner: random and mutated HTML through tokenize,
-- compile and fill with hostile values.
--
--   luajit spec/fuzz/run.lua                 -- short run (2,000 inputs)
--   FUZZ_LONG=1 luajit spec/fuzz/run.lua     -- long run (100,000 inputs), `make fuzz`
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...    -- replay one input
--
-- Checks: no Lua error escapes tokenize/compile/fill, compile errors are
-- values with a position (never "internal scanner error"), and no hostile
-- value ever appears raw in the output. Each input i uses randomseed(seed + i),
-- so any failure replays alone.
--
-- As a module: require("fuzz.run").run{ seed =, n =, start =, quiet = } -> stats or nil, failure.

local modname = ...
local is_script = modname ~= "fuzz.run" and modname ~= "spec.fuzz.run"
if is_script then package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path end

local random, randomseed, floor, min = math.random, math.randomseed, math.floor, math.min
local concat = table.concat
local ssub, schar, sformat = string.sub, string.char, string.format
local type, tostring, tonumber, pcall, ipairs, print = type, tostring, tonumber, pcall, ipairs, print

local _M = {}

-- ===== HOSTILE VALUES =====

-- Each string here must never appear in the output: the templates cannot contain them.
local HOSTILE = {
  "<img src=x onerror=alert(1)>",
  "</script><script>alert(2)</script>",
  '"><svg onload=alert(3)>',
  'x" onfocus="alert(4)',
  "y' onblur='alert(5)",
  "<!--hostile6-->",
  "</textarea><b onclick=alert(7)>",
  "</title><i onmouseover=alert(8)>",
}
_M.HOSTILE = HOSTILE

local function pick(t) return t[random(#t)] end

local function hostile_value(depth)
  local r = random(16)
  if r <= 8 then return HOSTILE[r] end
  if r == 9 then return nil end
  if r == 10 then return random(2) == 1 end
  if r == 11 then return random(-5, 5) end
  if r == 12 then return 0 / 0 end
  if r == 13 and depth < 2 then return { pick(HOSTILE), hostile_value(depth + 1), { pick(HOSTILE) } } end
  if r == 14 and depth < 2 then return { [pick(HOSTILE)] = true, ok = hostile_value(depth + 1), no = false } end
  if r == 15 then return "javascript:alert(9)" end
  return "plain " .. random(100)
end

local STATUSES = { "loading", "ready", "error", "idle", nil }

local function resolve(slot)
  if slot.kind == "boundary" then return STATUSES[random(5)] end
  return hostile_value(0)
end

-- ===== GENERATOR =====

local TAGS = { "div", "p", "span", "b", "li", "ul", "section", "template", "input", "textarea", "select", "option",
  "script", "style", "title", "br", "img", "svg", "table", "tr", "td", "a", "button", "form", "h1", "article", "i" }
local NAMES = { "v", "t", "product.title", "a.b.c", "cart.$loading", "x" }
local IDS = { "b1", "b2", "product" }

local function quoted(v)
  local r = random(4)
  if r == 1 then return '"' .. v .. '"' end
  if r == 2 then return "'" .. v .. "'" end
  if r == 3 and not v:find("[%s>\"'=`<]") and v ~= "" then return v end
  return '"' .. v .. '"'
end

local STATIC_ATTRS = { 'class', 'id', 'title', 'value', 'href', 'type', 'name', 'disabled', 'checked',
  'selected', 'data-x', 'class' }
local STATIC_VALUES = { "a", "a b", "x&amp;y", "", "1", "/p?q=1&r=2", "it's", 'say "hi"', "&lt;b&gt;" }

local function protocol_attr(pfx)
  local r = random(16)
  local s, c, o, a = pfx.signal, pfx.class, pfx.on, pfx.async
  if r == 1 then return s .. "text=" .. quoted(pick(NAMES)) end
  if r == 2 then return s .. "attr" .. pfx.sep .. pick({ "title", "href", "disabled", "data-n", "src" }) .. "="
    .. quoted(pick(NAMES)) end
  if r == 3 then return c .. pick({ "on", "selected", "x" }) .. "=" .. quoted(pick(NAMES)) end
  if r == 4 then return s .. "class=" .. quoted(pick(NAMES)) end
  if r == 5 then return s .. "value=" .. quoted(pick(NAMES)) end
  if r == 6 then return s .. "prop" .. pfx.sep .. pick({ "checked", "selected", "disabled", "hidden" }) .. "="
    .. quoted(pick(NAMES)) end
  if r == 7 then return o .. pick({ "click", "submit", "input" }) .. "="
    .. quoted(pick({ "go", "prevent; go(v)", "server.x.y(v, $form)", "server.z", "a(;" })) end
  if r == 8 or r == 9 then return a .. "boundary=" .. quoted(pick(IDS)) end
  if r >= 10 and r <= 12 then return a .. pick({ "loading", "ready", "error" }) .. "=" .. quoted(pick(IDS)) end
  if r == 13 then return a .. "container" end
  if r == 14 then return s .. pick({ "text", "bogus", "attr:" }) end
  if r == 15 then return c .. "=" .. quoted(pick(NAMES)) end
  return s .. "text"
end

local function attrs(pfx)
  local out, n = {}, random(0, 4)
  for k = 1, n do
    if random(2) == 1 then
      out[k] = protocol_attr(pfx)
    else
      local name = pick(STATIC_ATTRS)
      out[k] = random(4) == 1 and name or (name .. "=" .. quoted(pick(STATIC_VALUES)))
    end
  end
  if n == 0 then return "" end
  return pick({ " ", "\n  ", "  " }) .. concat(out, pick({ " ", "\n", "\t" }))
end

local BROKEN = { "<", ">", "</", "<!--", "-->", '"', "'", "=", "/>", "<div class=\"", "<a title='", "<!doctype",
  "</script>", "<script>", "<template>", "</template>", "&", "&amp;", "&#", "<!", "<?", "</>", "<p", "\0", "\255" }

local TEXTS = { "hello", "a < b", "x > y", "&copy; &amp; &#39;", "  ", "\n", "Keyboard", "1 & 2" }

local function gen(pfx, depth, out)
  local n = random(0, depth > 4 and 1 or 4)
  for _ = 1, n do
    local r = random(20)
    if r <= 3 then
      out[#out + 1] = pick(TEXTS)
    elseif r == 4 then
      out[#out + 1] = "<!-- " .. pick(TEXTS) .. " <b> -->"
    elseif r == 5 then
      out[#out + 1] = pick(BROKEN)
    elseif r == 6 then
      -- a boundary with templates
      local id = pick(IDS)
      out[#out + 1] = "<section " .. pfx.async .. "boundary=" .. quoted(id) .. ">"
      for _, st in ipairs({ "loading", "ready", "error" }) do
        if random(4) > 1 then
          out[#out + 1] = "\n  <template " .. pfx.async .. st .. "=" .. quoted(id) .. ">"
          if depth < 5 then gen(pfx, depth + 1, out) end
          out[#out + 1] = "</template>"
        end
      end
      if random(3) == 1 then gen(pfx, depth + 1, out) end
      out[#out + 1] = "\n</section>"
    else
      local tag = pick(TAGS)
      if random(6) == 1 then tag = tag:upper() end
      out[#out + 1] = "<" .. tag .. attrs(pfx) .. (random(8) == 1 and "/>" or ">")
      local lt = tag:lower()
      if lt == "script" or lt == "style" then
        out[#out + 1] = pick({ "if (a < b) {}", "x = '</div>'", "<!-- y -->", "" })
      elseif lt == "textarea" or lt == "title" then
        out[#out + 1] = pick(TEXTS)
      elseif depth < 6 and not (lt == "br" or lt == "img" or lt == "input") then
        gen(pfx, depth + 1, out)
      end
      if random(6) > 1 and not (lt == "br" or lt == "img" or lt == "input") then
        out[#out + 1] = "</" .. tag .. ">"
      end
    end
  end
end

local DEFAULT = { async = "async:", signal = "signal:", on = "on:", class = "class:", sep = ":" }
local DATA = { async = "data-async-", signal = "data-signal-", on = "data-on-", class = "data-class-", sep = "-" }

-- Real pages to mutate.
local PAGES = {
  [[<main async:container>
  <article class="product" async:boundary="product">
    <template async:loading="product"><p class="muted">Loading...</p></template>
    <template async:ready="product">
      <h1 signal:text="product.title"></h1>
      <p class="price" signal:text="product.price"></p>
      <img signal:attr:src="product.image" signal:attr:alt="product.title" src="/placeholder.png">
      <select signal:value="product.size"><option value="s">S<option value="m">M<option value="l">L</select>
      <button type="button" class="button" class:selected="product.selected" signal:class="buttonClasses"
        signal:attr:disabled="product.$loading" on:click="server.cart.add(productId)">Add</button>
    </template>
    <template async:error="product"><p class="error" signal:text="product.$error.message"></p></template>
  </article>
  <form on:submit="preventDefault; server.products.save(productId, $form)">
    <input name="title" signal:value="draft.title" value="">
    <textarea name="body" signal:value="draft.body"></textarea>
    <label><input type="checkbox" signal:prop:checked="draft.public"> public</label>
  </form>
  <script type="application/json" async:snapshot>{"signals":{}}</script>
</main>]],
  [[<table class="rows"><thead><tr><th>Id<th>Name<th>Qty</tr></thead><tbody>
<tr class:odd="rows.1.odd"><td signal:text="rows.1.id">1</td>
<td><a signal:attr:href="rows.1.url" signal:text="rows.1.name"></a></td>
<td><input type="number" signal:value="rows.1.qty"></td></tr>
<tr class:odd="rows.2.odd"><td signal:text="rows.2.id">2</td>
<td><a signal:attr:href="rows.2.url" signal:text="rows.2.name"></a></td>
<td><input type="number" signal:value="rows.2.qty"></td></tr>
</tbody></table><!-- rows: <tr> --><style>td > a { color: red }</style>]],
}

local function mutate(s)
  for _ = 1, random(1, 4) do
    local len = #s
    if len == 0 then return s end
    local r = random(6)
    local a = random(len)
    local b = min(len, a + random(0, 40))
    if r == 1 then
      s = ssub(s, 1, a - 1) .. ssub(s, b + 1) -- delete
    elseif r == 2 then
      s = ssub(s, 1, b) .. ssub(s, a, b) .. ssub(s, b + 1) -- duplicate
    elseif r == 3 then
      s = ssub(s, 1, a - 1) .. pick(BROKEN) .. ssub(s, a) -- insert broken piece
    elseif r == 4 then
      s = ssub(s, 1, a) -- truncate
    elseif r == 5 then
      s = ssub(s, 1, a - 1) .. schar(random(0, 255)) .. ssub(s, a + 1) -- flip a byte
    else
      local c = random(len) -- move a range
      local piece = ssub(s, a, b)
      s = ssub(s, 1, a - 1) .. ssub(s, b + 1)
      c = min(c, #s + 1)
      s = ssub(s, 1, c - 1) .. piece .. ssub(s, c)
    end
  end
  return s
end

-- One input for iteration i (randomseed already set); returns html, opts.
local function make_input()
  local r = random(10)
  local pfx = random(5) == 1 and DATA or DEFAULT
  local opts = { cache = random(4) == 1, prefixes = pfx == DATA and { async = DATA.async, signal = DATA.signal,
    on = DATA.on, class = DATA.class } or nil }
  if r <= 5 then
    local out = {}
    gen(pfx, 0, out)
    return concat(out), opts
  elseif r <= 8 then
    local out = {}
    gen(pfx, 0, out)
    return mutate(concat(out)), opts
  elseif r == 9 then
    opts.prefixes = nil
    return mutate(PAGES[random(#PAGES)]), opts
  else
    local n = random(0, 64)
    local b = {}
    for k = 1, n do b[k] = random(3) == 1 and pick(BROKEN) or schar(random(0, 255)) end
    return concat(b), opts
  end
end

local scanner = require("async.html.scanner")

local function check_output(out)
  if type(out) ~= "string" then return "fill returned " .. type(out) end
  for _, h in ipairs(HOSTILE) do
    if out:find(h, 1, true) then return "hostile value appears raw: " .. h end
  end
  if out:find('%shref="javascript:') or out:find('%ssrc="javascript:') then
    return "javascript: URL in a URL attribute"
  end
  return nil
end

-- Runs one input; returns nil or a failure message.
local function one(html, opts)
  local ok, toks, terr = pcall(scanner.tokenize, html)
  if not ok then return "tokenize raised: " .. tostring(toks) end
  if not toks and (type(terr) ~= "table" or type(terr.pos) ~= "number") then return "tokenize error without pos" end
  local plan, err
  ok, plan, err = pcall(scanner.compile, html, opts)
  if not ok then return "compile raised: " .. tostring(plan) end
  if not plan then
    if type(err) ~= "table" or type(err.message) ~= "string" or type(err.pos) ~= "number"
        or type(err.line) ~= "number" or type(err.col) ~= "number" then
      return "compile error is not a value with a position"
    end
    if err.internal then return err.message end
    if err.pos < 1 or err.pos > #html + 1 then return "error position out of range: " .. err.pos end
    return nil
  end
  for _ = 1, 2 do
    local out
    ok, out = pcall(scanner.fill, plan, resolve)
    if not ok then return "fill raised: " .. tostring(out) end
    local bad = check_output(out)
    if bad then return bad .. "\n--- output ---\n" .. out end
  end
  ok, err = pcall(scanner.bindings, plan)
  if not ok then return "bindings raised: " .. tostring(err) end
  return nil
end

function _M.run(o)
  o = o or {}
  local seed = o.seed or floor(os.time() % 1e6)
  local start = o.start or 1
  local n = o.n or 2000
  if not o.quiet then print(sformat("fuzz: FUZZ_SEED=%d, inputs %d..%d", seed, start, start + n - 1)) end
  local t0 = os.clock()
  local stats = { inputs = 0, compiled = 0, rejected = 0, seed = seed }
  for i = start, start + n - 1 do
    randomseed(seed + i)
    local html, opts = make_input()
    local failure = one(html, opts)
    stats.inputs = stats.inputs + 1
    if failure then
      local msg = sformat("fuzz failure at input %d: %s\n--- input (%d bytes) ---\n%s\n"
        .. "replay: FUZZ_SEED=%d FUZZ_START=%d FUZZ_N=1 luajit spec/fuzz/run.lua",
        i, failure, #html, html, seed, i)
      return nil, msg, stats
    end
    local plan = scanner.compile(html, { cache = false, prefixes = opts.prefixes })
    if plan then stats.compiled = stats.compiled + 1 else stats.rejected = stats.rejected + 1 end
  end
  stats.seconds = os.clock() - t0
  if not o.quiet then
    print(sformat("fuzz: %d inputs (%d compiled, %d rejected as malformed), no failures, %.1fs",
      stats.inputs, stats.compiled, stats.rejected, stats.seconds))
  end
  return stats
end

_M.one = one
_M.make_input = make_input

-- script entry
if is_script then
  local env = os.getenv
  local n = tonumber(env("FUZZ_N") or "") or (env("FUZZ_LONG") and 100000 or 2000)
  local stats, failure = _M.run({ seed = tonumber(env("FUZZ_SEED") or ""), start = tonumber(env("FUZZ_START") or ""),
    n = n })
  if not stats then
    io.stderr:write(failure, "\n")
    os.exit(1)
  end
end

return _M
