-- Specs for async.scanner: tokens, compile errors, golden fills, escaping,
-- prefixes, boundaries, bindings and the plan cache. Tables of cases with
-- exact expectations.
local E = require("support.errors")
local scanner = require("async.html.scanner")

local HOSTILE = "<img src=x onerror=alert(1)>"

-- resolve from a table: paths -> values, boundary ids -> status in values["@" .. id]
local function resolver(values)
  return function(slot)
    if slot.kind == "boundary" then return values["@" .. slot.id] end
    return values[slot.path]
  end
end

local function render(html, values, opts)
  local plan, err = scanner.compile(html, opts)
  assert(plan, err and tostring(err))
  return scanner.fill(plan, resolver(values or {}))
end

-- "start:div[class=a|b]" style summary of a token list
local function summarize(html, toks)
  local out = {}
  for _, t in ipairs(toks) do
    if t.type == "start" then
      local attrs = {}
      for _, a in ipairs(t.attrs) do
        attrs[#attrs + 1] = a.value and (a.name .. "=" .. a.quote .. a.value .. a.quote) or a.name
      end
      out[#out + 1] = "start:" .. t.name .. (#attrs > 0 and ("[" .. table.concat(attrs, " ") .. "]") or "")
        .. (t.self_closing and "/" or "")
    elseif t.type == "end" then
      out[#out + 1] = "end:" .. t.name
    elseif t.type == "text" then
      out[#out + 1] = (t.raw and ("raw(" .. t.raw .. "):") or "text:") .. html:sub(t.pos, t.stop)
    else
      out[#out + 1] = t.type .. ":" .. html:sub(t.pos, t.stop)
    end
  end
  return out
end

describe("scanner.tokenize", function()
  local cases = {
    { "text only", "hello &amp; bye", { "text:hello &amp; bye" } },
    { "double quoted", '<a href="/x?a=1&amp;b=2">', { 'start:a[href="/x?a=1&amp;b=2"]' } },
    { "single quoted", "<a title='say \"hi\"'>", { "start:a[title='say \"hi\"']" } },
    { "unquoted", "<a href=/x?y=1 id=z>", { "start:a[href=/x?y=1 id=z]" } },
    { "valueless", "<input disabled checked>", { "start:input[disabled checked]" } },
    { "spaces around =", '<a  href = "x"\n\tid=y >', { 'start:a[href="x" id=y]' } },
    { "self closing", "<br/><img src=x />", { "start:br/", "start:img[src=x]/" } },
    { "uppercase names", "<DIV Class=A></Div>", { "start:div[class=A]", "end:div" } },
    { "protocol attributes", '<b signal:text="t" on:click="go" class:on="x">',
      { 'start:b[signal:text="t" on:click="go" class:on="x"]' } },
    { "comment with < and >", "a<!-- <b> x > y -->c", { "text:a", "comment:<!-- <b> x > y -->", "text:c" } },
    { "empty comments", "<!--><!--->", { "comment:<!-->", "comment:<!--->" } },
    { "doctype", "<!DOCTYPE html><p>", { "comment:<!DOCTYPE html>", "start:p" } },
    { "lone <", "a < b <3 <", { "text:a < b <3 <" } },
    { "script raw text", '<script>if (a<b) x="</div>";</script>',
      { "start:script", 'raw(script):if (a<b) x="</div>";', "end:script" } },
    { "style raw text", "<style>a>b{}</STYLE>", { "start:style", "raw(style):a>b{}", "end:style" } },
    { "textarea raw text", "<textarea><b>&amp;</textarea>",
      { "start:textarea", "raw(textarea):<b>&amp;", "end:textarea" } },
    { "title raw text", "<title>a <i>b</i></title>", { "start:title", "raw(title):a <i>b</i>", "end:title" } },
    { "script end needs a delimiter", "<script></scripty></script>",
      { "start:script", "raw(script):</scripty>", "end:script" } },
    { "template", '<template async:ready="p"><h1></h1></template>',
      { 'start:template[async:ready="p"]', "start:h1", "end:h1", "end:template" } },
    { "char refs intact", "<p title=\"&lt;&#39;\">&copy; &#x41;</p>",
      { 'start:p[title="&lt;&#39;"]', "text:&copy; &#x41;", "end:p" } },
    { "bogus markup", "<?xml v?></ x><![CDATA[x]]>",
      { "comment:<?xml v?>", "comment:</ x>", "comment:<![CDATA[x]]>" } },
    { "> inside quotes", '<a title="a>b">', { 'start:a[title="a>b"]' } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local toks, err = scanner.tokenize(c[2])
      assert.is_nil(err)
      local doctype_fix = summarize(c[2], toks)
      for k, v in ipairs(doctype_fix) do doctype_fix[k] = v:gsub("^doctype:", "comment:") end
      assert.same(c[3], doctype_fix)
    end)
  end

  it("reports token positions", function()
    local toks = scanner.tokenize('ab<i x="1">c</i>')
    assert.same({ 1, 2 }, { toks[1].pos, toks[1].stop })
    assert.same({ 3, 11 }, { toks[2].pos, toks[2].stop })
    assert.same({ 6, 10, 9 }, { toks[2].attrs[1].pos, toks[2].attrs[1].stop, toks[2].attrs[1].vpos })
    assert.same({ 13, 16 }, { toks[4].pos, toks[4].stop })
  end)

  it("returns an error for non-strings", function()
    local toks, err = scanner.tokenize(42)
    assert.is_nil(toks)
    assert.equal("html must be a string, got number", err.message)
  end)
end)

describe("scanner.compile errors", function()
  local cases = {
    { "unterminated double quote", '<p>\n<div class="a>b</div>', "unterminated quoted attribute value", 16, 2, 12 },
    { "unterminated single quote", "<a title='x>", "unterminated quoted attribute value", 10, 1, 10 },
    { "unterminated start tag", "ok <div id=x", "unterminated start tag <div>", 4, 1, 4 },
    { "unterminated end tag", "<b></b", "unterminated end tag </b>", 4, 1, 4 },
    { "unterminated comment", "a\nb<!-- c -> d", "unterminated comment", 4, 2, 2 },
    { "unterminated doctype", "<!doctype html", "unterminated doctype", 1, 1, 1 },
    { "unclosed script", "<p><script>x</p>", "unclosed <script> (raw text runs to the end of the input)", 4, 1, 4 },
    { "unclosed text binding", '<div><b signal:text="t">x', '<b> with signal:text is never closed', 6, 1, 6 },
    { "unclosed boundary", '<section async:boundary="p"><template async:ready="p">x</template>',
      "boundary <section> is never closed", 1, 1, 1 },
    { "text binding on script", '<script signal:text="x"></script>',
      "signal:text on <script> cannot be rendered safely", 9, 1, 9 },
    { "event handler attribute", '<a signal:attr:onclick="x">', "signal:attr:onclick: binding the onclick "
      .. "attribute is not allowed (it would run its value)", 4, 1, 4 },
    { "srcdoc attribute", '<iframe signal:attr:srcdoc="x"></iframe>', "signal:attr:srcdoc: binding the srcdoc "
      .. "attribute is not allowed (it would run its value)", 9, 1, 9 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local plan, err = scanner.compile(c[2])
      assert.is_nil(plan)
      assert.same({ c[3], c[4], c[5], c[6] }, { err.message, err.pos, err.line, err.col })
      assert.equal(c[5] .. ":" .. c[6] .. ": " .. c[3], tostring(err))
    end)
  end

  it("names the template in errors", function()
    local _, err = scanner.compile("<b", { name = "product.page" })
    assert.equal("product.page:1:1: unterminated start tag <b>", tostring(err))
  end)

  it("returns an error for non-strings", function()
    local _, err = scanner.compile(nil)
    assert.equal("html must be a string, got nil", err.message)
  end)
end)

describe("scanner.fill golden output", function()
  local V = {
    title = "Keyboard", n = 3, yes = true, no = false, zero = 0, empty = "", pi = 3.5,
    cls = { "primary", { selected = true, disabled = false }, { "compact" } },
    name = "Ann", sku = "sku-2", skus = { "a", "c" },
    ["@p"] = "ready",
  }
  local cases = {
    { "text replaces children", '<h1 signal:text="title">old <b>x</b></h1>', V,
      '<h1 signal:text="title">Keyboard</h1>' },
    { "text from a number", '<b signal:text="n"></b><i signal:text="pi"></i>', V,
      '<b signal:text="n">3</b><i signal:text="pi">3.5</i>' },
    { "text nil is empty", '<b signal:text="missing">x</b>', V, '<b signal:text="missing"></b>' },
    { "text boolean", '<b signal:text="no"></b>', V, '<b signal:text="no">false</b>' },
    { "text on void is ignored", '<br signal:text="title">', V, '<br signal:text="text">' },
    { "text on title", '<title signal:text="title">x</title>', V, '<title signal:text="title">Keyboard</title>' },
    { "text in implicitly closed li", '<ul><li signal:text="title">a<li>b</ul>', V,
      '<ul><li signal:text="title">Keyboard<li>b</ul>' },
    { "nested bindings inside text are replaced", '<p signal:text="title"><b signal:text="n"></b></p>', V,
      '<p signal:text="title">Keyboard</p>' },
    { "attr set", '<a signal:attr:title="title">', V, '<a signal:attr:title="title" title="Keyboard">' },
    { "attr replaces static", '<a title="x" signal:attr:title="title" id=1>', V,
      '<a title="Keyboard" signal:attr:title="title" id=1>' },
    { "attr replaces static, later", '<a id=1 title="x" signal:attr:title="title">', V,
      '<a id=1 title="Keyboard" signal:attr:title="title">' },
    { "attr false removes", '<button disabled signal:attr:disabled="no">', V,
      '<button signal:attr:disabled="no">' },
    { "attr nil removes", '<button disabled="" signal:attr:disabled="missing">', V,
      '<button signal:attr:disabled="missing">' },
    { "attr true sets empty", '<button signal:attr:disabled="yes">', V,
      '<button signal:attr:disabled="yes" disabled="">' },
    { "attr zero is a value", '<i signal:attr:data-n="zero">', V, '<i signal:attr:data-n="zero" data-n="0">' },
    { "attr removes duplicates too", '<a title=a title=b signal:attr:title="no">', V,
      '<a signal:attr:title="no">' },
    { "attr on self-closing", '<img src="a.png" signal:attr:alt="title"/>', V,
      '<img src="a.png" signal:attr:alt="title" alt="Keyboard"/>' },
    { "class toggle on", '<b class="x" class:on="yes">', V, '<b class="x on" class:on="yes">' },
    { "class toggle off removes static", '<b class="x on" class:on="no">', V, '<b class="x" class:on="no">' },
    { "class toggle adds attribute", '<b class:on="yes">', V, '<b class:on="yes" class="on">' },
    { "class toggle off, no attribute", '<b class:on="no">', V, '<b class:on="no">' },
    { "class toggle, single-quoted static", "<b class='a' class:on=\"yes\">", V,
      '<b class="a on" class:on="yes">' },
    { "signal:class list and map", '<b class="btn" signal:class="cls">', V,
      '<b class="btn primary selected compact" signal:class="cls">' },
    { "signal:class string", '<b class="btn" signal:class="title">', V,
      '<b class="btn Keyboard" signal:class="title">' },
    { "signal:class dedupes", '<b class="btn" signal:class="dup">', { dup = "btn x btn" },
      '<b class="btn x" signal:class="dup">' },
    { "signal:class with toggles", '<b class="a" signal:class="cls" class:primary="no" class:z="yes">', V,
      '<b class="a selected compact z" signal:class="cls" class:primary="no" class:z="yes">' },
    { "class: aggregate compat", '<b class:="cls">', V, '<b class:="cls" class="primary selected compact">' },
    { "signal:class:NAME compat", '<b signal:class:on="yes">', V, '<b signal:class:on="yes" class="on">' },
    { "value on input", '<input value="old" signal:value="name">', V, '<input value="Ann" signal:value="name">' },
    { "value added", '<input signal:value="name">', V, '<input signal:value="name" value="Ann">' },
    { "value nil removes", '<input value="old" signal:value="missing">', V, '<input signal:value="missing">' },
    { "value on textarea", '<textarea signal:value="name">old</textarea>', V,
      '<textarea signal:value="name">Ann</textarea>' },
    { "value on select", '<select signal:value="sku"><option value="sku-1" selected>A</option>'
      .. '<option value="sku-2">B</option></select>', V,
      '<select signal:value="sku"><option value="sku-1">A</option><option value="sku-2" selected="">B</option>'
      .. '</select>' },
    { "select by option text", '<select signal:value="name"><option>Bob<option> Ann </select>', V,
      '<select signal:value="name"><option>Bob<option selected=""> Ann </select>' },
    { "select multiple", '<select multiple signal:value="skus"><option value=a>1<option value=b>2'
      .. '<option value=c>3</select>', V,
      '<select multiple signal:value="skus"><option value=a selected="">1<option value=b>2'
      .. '<option value=c selected="">3</select>' },
    { "prop checked on", '<input type=checkbox signal:prop:checked="yes">', V,
      '<input type=checkbox signal:prop:checked="yes" checked="">' },
    { "prop checked off removes", '<input type=checkbox checked signal:prop:checked="zero">', V,
      '<input type=checkbox signal:prop:checked="zero">' },
    { "prop disabled", '<button signal:prop:disabled="n">', V, '<button signal:prop:disabled="n" disabled="">' },
    { "prop selected", '<option signal:prop:selected="empty" selected>', V, '<option signal:prop:selected="empty">' },
    { "other props are client-only", '<input signal:prop:indeterminate="yes">', V,
      '<input signal:prop:indeterminate="yes">' },
    { "on: stays as is", '<form on:submit="preventDefault; server.products.save(productId, $form)">', V,
      '<form on:submit="preventDefault; server.products.save(productId, $form)">' },
    { "url attributes refuse javascript:", '<a signal:attr:href="u">', { u = " java\tscript:alert(1)" },
      '<a signal:attr:href="u" href="about:invalid#async-unsafe-url">' },
    { "url attributes keep http", '<a signal:attr:href="u">', { u = "https://x.test/?a=1&b=2" },
      '<a signal:attr:href="u" href="https://x.test/?a=1&amp;b=2">' },
    { "static attrs keep char refs", '<b title="a &amp; b" class="x&amp;y" class:z="yes">', V,
      '<b title="a &amp; b" class="x&amp;y z" class:z="yes">' },
    { "comments and script untouched", '<!-- <b signal:text="t"> --><script>a="<b signal:text=t>"</script>'
      .. '<b signal:text="title"></b>', V,
      '<!-- <b signal:text="t"> --><script>a="<b signal:text=t>"</script><b signal:text="title">Keyboard</b>' },
    { "several bindings on one element", '<input class=i type=text signal:value="name" class:on="yes" '
      .. 'signal:attr:title="title" signal:prop:disabled="no" disabled>', V,
      '<input class="i on" type=text signal:value="name" class:on="yes" signal:attr:title="title" '
      .. 'signal:prop:disabled="no" value="Ann" title="Keyboard">' },
  }
  cases[5][4] = '<br signal:text="title">'
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.equal(c[4], render(c[2], c[3]))
    end)
  end

  -- fill_pieces (what rt:render joins once with the page around it): the
  -- same bytes after the slots the caller keeps, which it leaves empty
  it("fill_pieces gives every case's bytes after the slots it keeps", function()
    for _, c in ipairs(cases) do
      local plan = assert(scanner.compile(c[2]))
      for first = 0, 2 do
        local buf, n = scanner.fill_pieces(plan, resolver(c[3]), first)
        for i = 1, first do assert.is_nil(buf[i], c[1]) end
        assert.equal(c[4], table.concat(buf, "", first + 1, n), c[1])
      end
    end
    local plain = assert(scanner.compile("<p>no bindings</p>"))
    local buf, n = scanner.fill_pieces(plain, resolver({}), 1)
    assert.are.same({ 2, "<p>no bindings</p>" }, { n, buf[2] })
    assert.is_nil(buf[1])
  end)
end)

describe("scanner boundaries", function()
  local product = table.concat({
    '<section async:boundary="product">',
    '  <template async:loading="product"><p>Loading...</p></template>',
    '  <template async:ready="product"><h1 signal:text="product.title"></h1></template>',
    '  <template async:error="product"><p signal:text="product.$error.message"></p></template>',
    "</section>",
  }, "\n")
  local templates = table.concat({
    '<section async:boundary="product">',
    '  <template async:loading="product"><p>Loading...</p></template>',
    '  <template async:ready="product"><h1 signal:text="product.title"></h1></template>',
    '  <template async:error="product"><p signal:text="product.$error.message"></p></template>',
  }, "\n")
  local values = { ["product.title"] = "Keyboard", ["product.$error.message"] = "Not found" }

  local cases = {
    { "ready", "ready", templates .. '<h1 signal:text="product.title">Keyboard</h1>\n</section>' },
    { "loading", "loading", templates .. "<p>Loading...</p>\n</section>" },
    { "error", "error", templates .. '<p signal:text="product.$error.message">Not found</p>\n</section>' },
    { "no status keeps the source", nil, product },
    { "unknown status keeps the source", "idle", product },
  }
  for _, c in ipairs(cases) do
    it("renders the " .. c[1] .. " template", function()
      values["@product"] = c[2]
      assert.equal(c[3], render(product, values))
    end)
  end

  it("drops fallback content when a template matches, fills it otherwise", function()
    local html = '<div async:boundary="b"><i signal:text="x">?</i><template async:ready="b">R</template></div>'
    assert.equal('<div async:boundary="b"><template async:ready="b">R</template>R</div>',
      render(html, { ["@b"] = "ready", x = "X" }))
    assert.equal('<div async:boundary="b"><i signal:text="x">X</i><template async:ready="b">R</template></div>',
      render(html, { ["@b"] = "loading", x = "X" }))
  end)

  it("handles nested boundaries", function()
    local html = '<div async:boundary="a"><template async:ready="a"><b async:boundary="c">'
      .. '<template async:ready="c"><i signal:text="x"></i></template></b></template></div>'
    assert.equal('<div async:boundary="a"><template async:ready="a"><b async:boundary="c">'
      .. '<template async:ready="c"><i signal:text="x"></i></template></b></template>'
      .. '<b async:boundary="c"><template async:ready="c"><i signal:text="x"></i></template>'
      .. '<i signal:text="x">X</i></b></div>',
      render(html, { ["@a"] = "ready", ["@c"] = "ready", x = "X" }))
  end)

  it("records boundary and template slots", function()
    local plan = scanner.compile(product)
    local kinds = {}
    for _, s in ipairs(plan.slots) do
      kinds[#kinds + 1] = s.kind .. ":" .. (s.status or "") .. ":" .. (s.id or s.path or "")
        .. ":" .. s.element .. ":" .. s.tag
    end
    assert.same({ "boundary::product:1:section", "template:loading:product:2:template",
      "template:ready:product:4:template",
      "text::product.title:5:h1", "template:error:product:6:template", "text::product.$error.message:7:p" }, kinds)
    assert.equal(1, plan.slots[2].boundary)
  end)

  it("warns about templates without a boundary", function()
    local plan = scanner.compile('<template async:ready="x">R</template>')
    assert.equal('template async:ready="x" has no enclosing boundary', plan.warnings[1].message)
    assert.equal('<template async:ready="x">R</template>', scanner.fill(plan, function() return "ready" end))
  end)
end)

describe("scanner prefixes", function()
  local values = { t = "T", on = true, d = false }
  local cases = {
    { "data- prefixes", scanner.DATA_PREFIXES,
      '<b data-signal-text="t" data-class-x="on" data-signal-attr-title="t" data-on-click="go"></b>',
      '<b data-signal-text="t" data-class-x="on" data-signal-attr-title="t" data-on-click="go" class="x" '
      .. 'title="T">T</b>' },
    { "data- prefixes ignore the default ones", scanner.DATA_PREFIXES, '<b signal:text="t">x</b>',
      '<b signal:text="t">x</b>' },
    { "custom table", { signal = "x-", class = "c-", async = "a-", on = "@" }, '<b x-text="t" c-y="on">x</b>',
      '<b x-text="t" c-y="on" class="y">T</b>' },
    { "several prefixes per kind", { signal = { "signal:", "data-signal-" } },
      '<b signal:text="t"></b><i data-signal-text="t"></i>', '<b signal:text="t">T</b><i data-signal-text="t">T</i>' },
    { "attributes alias (seed name)", nil, '<b data-signal-prop-disabled="d" disabled></b>',
      '<b data-signal-prop-disabled="d"></b>' },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local opts = c[2] and { prefixes = c[2] } or { attributes = scanner.DATA_PREFIXES }
      assert.equal(c[4], render(c[3], values, opts))
    end)
  end

  it("is case-insensitive", function()
    assert.equal('<b SIGNAL:TEXT="t">T</b>', render('<b SIGNAL:TEXT="t">x</b>', values))
  end)

  it("rejects bad prefix tables", function()
    E.has_error(function() scanner.compile("x", { prefixes = { signal = "" } }) end,
      "scanner: prefixes.signal has an empty prefix")
  end)
end)

describe("scanner escaping", function()
  local hostile = {
    HOSTILE, "</script><script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "' onmouseover='x",
    "<!--", "-->", "&amp;", "a&b<c>d\"e'f",
  }
  it("escapes text", function()
    assert.equal("a&amp;b&lt;c&gt;d&quot;e&#39;f", scanner.escape_text("a&b<c>d\"e'f"))
  end)
  it("escapes attribute values", function()
    assert.equal("a&amp;b&lt;c&gt;d&quot;e&#39;f", scanner.escape_attr("a&b<c>d\"e'f"))
  end)
  for _, h in ipairs(hostile) do
    it("never emits " .. h .. " raw", function()
      local html = '<p signal:text="v">x</p><a signal:attr:title="v" class="c" signal:class="v" class:on="v">'
        .. '<input signal:value="v"><textarea signal:value="v"></textarea><title signal:text="v"></title>'
      local out = render(html, { v = h })
      local te, ae = scanner.escape_text(h), scanner.escape_attr(h)
      assert.equal('<p signal:text="v">' .. te .. '</p><a signal:attr:title="v" class="c'
        .. (h:gsub("%S+", function(w) return " " .. scanner.escape_attr(w) end)):gsub("%s+", " ")
        .. (h:find("%S") and " on" or "") .. '" signal:class="v" class:on="v" title="' .. ae .. '">'
        .. '<input signal:value="v" value="' .. ae .. '"><textarea signal:value="v">' .. te
        .. '</textarea><title signal:text="v">' .. te .. "</title>", out)
      if h:find("<", 1, true) then
        assert.is_nil(out:find(h, 1, true))
      end
    end)
  end
  it("escapes select option matching input and values", function()
    local out = render('<select signal:value="v"><option value="&lt;x&gt;">a</select>', { v = "<x>" })
    assert.equal('<select signal:value="v"><option value="&lt;x&gt;" selected="">a</select>', out)
  end)
  it("escapes a literal quote in static unquoted attributes it rewrites", function()
    assert.equal('<b class="a&quot;b on" class:on="v">', render("<b class=a\"b class:on=\"v\">", { v = true }))
  end)
end)

describe("scanner.bindings", function()
  it("lists signals, handlers, server ids, boundaries and chains", function()
    local html = '<main async:container><b signal:text="a.b"></b>'
      .. '<button on:click="prevent; inc; server.cart.add(productId, $form)" class:on="sel">+</button>'
      .. '<form on:submit="server.x"></form><div async:boundary="p"></div><i signal:text="a.b"></i></main>'
    local plan = scanner.compile(html)
    local b = scanner.bindings(plan)
    assert.same({ "a.b", "productId", "sel" }, b.signals)
    assert.same({ "inc" }, b.handlers)
    assert.same({ "cart.add" }, b.server)
    assert.same({ "p" }, b.boundaries)
    assert.equal(2, #b.chains)
    assert.equal("click", b.chains[1].event)
    assert.equal(3, #b.chains[1].steps)
    assert.equal(1, #b.errors)
    assert.same({ 1, (html:find("on:submit", 1, true)) }, { b.errors[1].line, b.errors[1].col })
    assert.equal(b, scanner.bindings(plan))
  end)

  it("warns about unknown protocol attributes and empty paths", function()
    local plan = scanner.compile('<b signal:txt="a" async:bogus signal:text="">x</b>')
    local msgs = {}
    for _, w in ipairs(plan.warnings) do msgs[#msgs + 1] = w.message .. "@" .. w.col end
    assert.same({ "unknown signal attribute signal:txt@4", "unknown async attribute async:bogus@19",
      "signal:text names no signal path@31" }, msgs)
    assert.equal('<b signal:txt="a" async:bogus signal:text="">x</b>', scanner.fill(plan, function() end))
  end)
end)

describe("scanner plan cache", function()
  before_each(function() scanner.cache_clear() end)

  it("returns the same plan for the same html and prefixes", function()
    local a = scanner.compile('<b signal:text="t"></b>')
    assert.equal(a, scanner.compile('<b signal:text="t"></b>'))
    assert.equal(a, scanner.compile('<b signal:text="t"></b>', { prefixes = {
      async = "async:", signal = "signal:", on = "on:", class = "class:" } }))
    assert.are_not.equal(a, scanner.compile('<b signal:text="t"></b>', { prefixes = scanner.DATA_PREFIXES }))
    assert.are_not.equal(a, scanner.compile('<b signal:text="t"></b>', { cache = false }))
  end)

  it("caches errors", function()
    local _, e1 = scanner.compile("<b")
    local _, e2 = scanner.compile("<b")
    assert.equal(e1, e2)
  end)

  it("is bounded", function()
    local size = scanner.cache_size
    scanner.cache_size = 10
    for k = 1, 100 do scanner.compile("<b>" .. k .. "</b>") end
    assert.is_true(scanner.cache_count() <= 20)
    scanner.cache_size = size
  end)

  it("keeps recently used plans", function()
    local size = scanner.cache_size
    scanner.cache_size = 4
    local hot = scanner.compile("<i>hot</i>")
    for k = 1, 50 do
      scanner.compile("<b>" .. k .. "</b>")
      assert.equal(hot, scanner.compile("<i>hot</i>"))
    end
    scanner.cache_size = size
  end)
end)
