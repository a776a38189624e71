-- Templates: compile, escape by context, refs in binding attributes, errors.
local E = require("support.errors")
local html = require("async.html.template")

local function render(src, env) return tostring(html.html(src)(env)) end

describe("html", function()
  after_each(function()
    html.set_ref_resolver(nil)
    html.set_binding_prefixes({})
  end)

  describe("rendering", function()
    local shout = setmetatable({}, { __tostring = function() return "<LOUD>" end })
    -- { name, template, env, expected html }
    local cases = {
      { "static only", "<p>hi</p>", nil, "<p>hi</p>" },
      { "empty template", "", {}, "" },
      { "text", "<h1>{{ title }}</h1>", { title = "Hello" }, "<h1>Hello</h1>" },
      { "text is escaped", "<p>{{ t }}</p>", { t = [[<a href="x">&'</a>]] },
        "<p>&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;</p>" },
      { "no spaces in braces", "{{t}}", { t = "x" }, "x" },
      { "nil renders empty", "<p>{{ missing }}</p>", {}, "<p></p>" },
      { "nil env", "<p>{{ missing }}</p>", nil, "<p></p>" },
      { "nil along the path", "{{ user.address.city }}", { user = {} }, "" },
      { "dotted path", "{{ user.name }}", { user = { name = "Ann" } }, "Ann" },
      { "numeric path segment", "{{ items.2.title }}", { items = { { title = "a" }, { title = "b" } } }, "b" },
      { "keyword keys", "{{ end.then }}", { ["end"] = { ["then"] = "ok" } }, "ok" },
      { "number", "{{ n }}|{{ f }}", { n = 3, f = 2.5 }, "3|2.5" },
      { "booleans", "{{ t }}/{{ f }}", { t = true, f = false }, "true/false" },
      { "raw", "<div>{{ body }}</div>", { body = html.raw("<b>bold</b>") }, "<div><b>bold</b></div>" },
      { "nested template", "<div>{{ inner }}</div>", { inner = html.html("<i>{{ x }}</i>")({ x = "<" }) },
        "<div><i>&lt;</i></div>" },
      { "list", "<ul>{{ items }}</ul>", { items = { "<a>", html.raw("<li>x</li>"), 1, true } },
        "<ul>&lt;a&gt;<li>x</li>1true</ul>" },
      { "nested list", "{{ items }}", { items = { { "a", { "<" } }, "b" } }, "a&lt;b" },
      { "empty list", "[{{ items }}]", { items = {} }, "[]" },
      { "list of templates", "<ul>{{ rows }}</ul>",
        { rows = { html.html("<li>{{ x }}</li>")({ x = 1 }), html.html("<li>{{ x }}</li>")({ x = 2 }) } },
        "<ul><li>1</li><li>2</li></ul>" },
      { "__tostring is escaped", "{{ v }}", { v = shout }, "&lt;LOUD&gt;" },
      { "double-quoted attribute", '<a title="{{ t }}">x</a>', { t = [["'<>&]] },
        '<a title="&quot;&#39;&lt;&gt;&amp;">x</a>' },
      { "single-quoted attribute", "<a title='{{ t }}'>x</a>", { t = "it's" }, "<a title='it&#39;s'>x</a>" },
      { "unquoted attribute gets quotes", "<a href={{ url }}>x</a>", { url = "/a b?c=\"d\"" },
        '<a href="/a b?c=&quot;d&quot;">x</a>' },
      { "unquoted attribute before />", "<img src={{ s }}/>", { s = "a.png" }, '<img src="a.png"/>' },
      { "unquoted attribute before space", "<img src={{ s }} alt=x>", { s = "a" }, '<img src="a" alt=x>' },
      { "attribute mixing text", '<tr id="row-{{ id }}-{{ n }}">', { id = "a", n = 1 }, '<tr id="row-a-1">' },
      { "list in attribute joins with spaces", '<p class="{{ c }}">', { c = { "a", "b&c" } }, '<p class="a b&amp;c">' },
      { "nil in attribute", '<p class="{{ c }}">', {}, '<p class="">' },
      { "a JSON script block gets JSON (spec/robust_escape_spec.lua: {{ }} in other scripts is refused)",
        '<script type="application/json">{{ x }}</script><p title={{ t }}>',
        { x = "</script>'", t = "z" }, '<script type="application/json">"\\u003c/script>\'"</script><p title="z">' },
      { "comment", "<!-- {{ x }} --><p>{{ x }}</p>", { x = "-->" }, "<!-- --&gt; --><p>--&gt;</p>" },
      { "doctype", "<!DOCTYPE html><p>{{ x }}</p>", { x = 1 }, "<!DOCTYPE html><p>1</p>" },
      { "a < in text is text", "<p>1 < 2 {{ x }}</p>", { x = "ok" }, "<p>1 < 2 ok</p>" },
      { "braces in data are not templates", "{{ x }}", { x = "{{ y }}" }, "{{ y }}" },
      { "multi-line", "<ul>\n  <li>{{ a }}</li>\n  <li a=\"{{ b }}\">\n</ul>", { a = 1, b = 2 },
        "<ul>\n  <li>1</li>\n  <li a=\"2\">\n</ul>" },
      { "boolean attribute before binding", "<input disabled value={{ v }}>", { v = "x" },
        '<input disabled value="x">' },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        assert.are.equal(case[4], render(case[2], case[3]))
      end)
    end

    it("renders more than the concat operand limit", function()
      local parts, env, want = {}, {}, {}
      for i = 1, 300 do
        parts[i] = "<b>{{ v" .. i .. " }}</b>"
        env["v" .. i] = i
        want[i] = "<b>" .. i .. "</b>"
      end
      assert.are.equal(table.concat(want), render(table.concat(parts), env))
    end)
  end)

  describe("safe values", function()
    it("are recognised, print and concatenate", function()
      local v = html.html("<b>{{ x }}</b>")({ x = "&" })
      assert.is_true(html.is_safe(v))
      assert.is_false(html.is_safe("<b>"))
      assert.are.equal("<b>&amp;</b>", tostring(v))
      assert.are.equal("<b>&amp;</b>!", v .. "!")
      assert.are.equal("!<b>&amp;</b>", "!" .. v)
      assert.are.equal(v, html.raw(v))
      assert.are.equal("", tostring(html.raw(nil)))
      assert.are.equal("5", tostring(html.raw(5)))
    end)

    it("escape", function()
      assert.are.equal("a&amp;b&lt;c&gt;d&quot;e&#39;", html.escape([[a&b<c>d"e']]))
      assert.are.equal("plain", html.escape("plain"))
    end)
  end)

  describe("compiling", function()
    it("compiles once per template string", function()
      local src = "<p>{{ once }}</p>"
      assert.are.equal(html.html(src), html.html(src))
      assert.are_not.equal(html.html(src), html.html(src .. " "))
    end)

    it("generates one table of the escaped values; the statics stay with the template", function()
      assert.are.equal(
        "local text, attr, bind, index, SAFE, setmetatable, check_env, type, walk, LONG, url, json, TPL, " ..
        "RESULT, url_rel = ...\n" ..
        "return function(env)\n" ..
        "  if type(env) ~= 'table' then env = check_env(env) end\n" ..
        '  local r = setmetatable({ [0] = TPL, url(1, "url", "", env["u"], ""), ' ..
        'text(index(env["p"], "t", 1, "p"), 1) }, SAFE)\n' ..
        "  return r\n" ..
        "end\n",
        html.source('<a href="{{ u }}">{{ p.t }}</a>'))
      local r = html.html('<a href="{{ u }}">{{ p.t }}</a>')({ u = "/x", p = { t = "<" } })
      assert.are.same({ '<a href="', '">', "</a>" }, r[0].statics)
      assert.are.equal('<a href="/x">&lt;</a>', r.html)
    end)

    it("keeps nested templates and lists of them as values, joined on first use", function()
      local li = html.html("<li>{{ x }}</li>")
      local r = html.html("<ul>{{ rows }}{{ one }}</ul>")({ rows = { li({ x = 1 }), "<", { li({ x = 2 }) } },
        one = li({ x = "&" }) })
      assert.are.equal(getmetatable(r[1]), html.list_mt)
      assert.is_true(html.is_safe(r[2]))
      assert.are.equal("<ul><li>1</li>&lt;<li>2</li><li>&amp;</li></ul>", tostring(r))
      -- a quote reaching an attribute from safe HTML is handed over whole
      local a = html.html('<a title="{{ t }}">')({ t = html.raw('x"y') })
      assert.is_true(html.is_safe(a[1]))
      assert.are.equal('<a title="x"y">', tostring(a))
    end)

    local PATH = ": expected a dotted path like user.name"
    local MIX = " when it mixes text and {{ }}"
    -- { name, template, expected error }
    local errors = {
      { "bad expression", "<p>\n{{ a b }}</p>",
        'template:2: bad expression "{{ a b }}": expected a dotted path like user.name' },
      { "call", "{{ os.exit() }}", 'template:1: bad expression "{{ os.exit() }}"' .. PATH },
      { "empty", "x\ny\n{{ }}", 'template:3: bad expression "{{ }}": expected a dotted path like user.name' },
      { "leading digit", "{{ 1.a }}", 'template:1: bad expression "{{ 1.a }}": expected a dotted path like user.name' },
      { "empty segment", "{{ a..b }}", 'template:1: bad expression "{{ a..b }}"' .. PATH },
      { "unclosed", "<p>\n\n{{ title </p>", 'template:3: unclosed "{{"' },
      { "in a tag", '<a\n {{ attrs }}>', "template:2: {{ }} inside a tag must be an attribute value (in <a>)" },
      { "as attribute name", "<a x{{ y }}=1>", "template:1: {{ }} inside a tag must be an attribute value (in <a>)" },
      { "in an end tag", "</a {{ y }}>", "template:1: {{ }} inside a tag must be an attribute value (in <a>)" },
      { "unquoted mix (after)", "<a href={{ u }}x>", 'template:1: quote the value of attribute "href"' .. MIX },
      { "unquoted mix (before)", "<a\nhref=x{{ u }}>", 'template:2: quote the value of attribute "href"' .. MIX },
    }
    for _, case in ipairs(errors) do
      it("rejects: " .. case[1], function()
        local ok, err = pcall(html.html, case[2])
        assert.is_false(ok)
        assert.are.equal(case[3], E.message(err))
      end)
    end

    it("names the template", function()
      local ok, err = pcall(html.compile, "{{ a b }}", { name = "product.page" })
      assert.is_false(ok)
      assert.are.equal('product.page:1: bad expression "{{ a b }}": expected a dotted path like user.name',
        E.message(err))
      ok, err = pcall(html.compile("\n{{ x.y }}", { name = "product.page" }), { x = "s" })
      assert.is_false(ok)
      assert.are.equal('product.page:2: cannot index x (a string) with "y"', E.message(err))
    end)

    it("rejects a non-string template", function()
      E.has_error(function() html.html(nil) end, "html: expected a template string, got nil")
    end)

    -- found by spec/fuzz/html.lua: nested index() calls past ~200 keys made
    -- loadstring fail with "function or expression too complex" (no line)
    it("compiles and renders a path of 300 keys", function()
      local env, v = {}, "deep & end"
      for _ = 1, 299 do v = { k = v } end
      env.a = v
      local src = "<p>\n{{ a" .. string.rep(".k", 299) .. " }}</p>"
      assert.are.equal("<p>\ndeep &amp; end</p>", tostring(html.html(src)(env)))
      local ok, err = pcall(html.html(src), { a = { k = "s" } })
      assert.is_false(ok)
      assert.are.equal('template:2: cannot index a.k (a string) with "k"', E.message(err))
    end)

    -- found by spec/fuzz/html.lua: a 400-digit index became the key inf and
    -- rendered as a global lookup
    it("refuses an index of more than 15 digits", function()
      local ok, err = pcall(html.html, "{{ a." .. string.rep("9", 16) .. " }}")
      assert.is_false(ok)
      assert.truthy(E.message(err):find("^template:1: bad expression"))
    end)

    -- found by spec/fuzz/html.lua: line numbers were counted from the start
    -- for each expression (16,000 expressions took 30 s)
    it("compiles many expressions in linear time", function()
      local parts = {}
      for i = 1, 20000 do parts[i] = '<b title="{{ t }}">{{ x }}</b>\n' end
      local t0 = os.clock()
      local fn = html.compile(table.concat(parts), { name = "many" })
      assert.is_true(os.clock() - t0 < 5)
      local out = tostring(fn({ t = "<", x = 1 }))
      assert.are.equal(20000 * #'<b title="&lt;">1</b>\n', #out)
      local ok, err = pcall(html.compile, table.concat(parts) .. "<a {{ x }}>", { name = "many" })
      assert.is_false(ok)
      assert.truthy(E.message(err):find("^many:20001: "))
    end)
  end)

  describe("render errors name the line", function()
    local fn = function() end
    -- { name, template, env, expected error }
    local cases = {
      { "indexing a string", "<p>\n{{ user.name }}</p>", { user = "ann" },
        'template:2: cannot index user (a string) with "name"' },
      { "indexing deeper", "\n\n{{ a.b.c }}", { a = { b = 5 } }, 'template:3: cannot index a.b (a number) with "c"' },
      { "indexing a boolean by number", "{{ a.1 }}", { a = true },
        "template:1: cannot index a (a boolean) with \"1\"" },
      { "a map", "x\n{{ m }}", { m = { a = 1 } }, "template:2: cannot render a table that is not an array" },
      { "a map in a list", "{{ m }}", { m = { "a", { b = 1 } } },
        "template:1: cannot render a table that is not an array" },
      { "a function", "{{ f }}", { f = fn }, "template:1: cannot render a function" },
      { "a function in an attribute", '<a\ntitle="{{ f }}">', { f = fn }, "template:2: cannot render a function" },
      { "a metatable without __tostring", "{{ o }}", { o = setmetatable({}, {}) },
        "template:1: cannot render a table with a metatable and no __tostring" },
      { "a coroutine", "{{ c }}", { c = coroutine.create(fn) }, "template:1: cannot render a thread" },
      -- found by spec/fuzz/html.lua: the FFI's error escaped without a position
      { "a cdata without the field", "\n{{ c.nope }}", { c = require("ffi").new("struct { int a; }") },
        "template:2: cannot index c (a cdata) with \"nope\": " },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local ok, err = pcall(html.html(case[2]), case[3])
        assert.is_false(ok)
        if case[4]:sub(-2) == ": " then
          assert.are.equal(case[4], E.message(err):sub(1, #case[4]))
        else
          assert.are.equal(case[4], E.message(err))
        end
      end)
    end

    it("rejects a non-table env", function()
      local ok, err = pcall(html.html("{{ len }}"), "string")
      assert.is_false(ok)
      assert.truthy(E.message(err):find("template: expected an env table, got string", 1, true))
    end)
  end)

  describe("binding attributes", function()
    local sig = setmetatable({ id = "product.title" }, { __call = function() return "value" end })
    local seen
    local function resolver(v, attr)
      seen[#seen + 1] = attr
      if type(v) == "table" and v.id then return v.id end
      return nil
    end
    before_each(function()
      seen = {}
      html.set_ref_resolver(resolver)
    end)

    -- { name, template, env, expected html, attributes the resolver saw }
    local cases = {
      { "signal:text", '<h1 signal:text="{{ t }}"></h1>', { t = sig }, '<h1 signal:text="product.title"></h1>',
        { "signal:text" } },
      { "signal:attr:disabled unquoted", "<b signal:attr:disabled={{ t }}>", { t = sig },
        '<b signal:attr:disabled="product.title">', { "signal:attr:disabled" } },
      { "class:", '<b class:on="{{ t }}">', { t = sig }, '<b class:on="product.title">', { "class:on" } },
      { "on:", '<b on:click="{{ t }}">', { t = sig }, '<b on:click="product.title">', { "on:click" } },
      { "async:", '<b async:boundary="{{ t }}">', { t = sig }, '<b async:boundary="product.title">',
        { "async:boundary" } },
      { "a path string is not resolved", '<h1 signal:text="{{ p }}">', { p = "a.b" }, '<h1 signal:text="a.b">', {} },
      { "resolver says no: rendered as a list", '<h1 signal:class="{{ l }}">', { l = { "a", "b" } },
        '<h1 signal:class="a b">', { "signal:class" } },
      { "other attributes are not resolved", '<h1 title="{{ t }}">', { t = { "x" } }, '<h1 title="x">', {} },
      { "text is not resolved", "<h1>{{ t }}</h1>", { t = { "x" } }, "<h1>x</h1>", {} },
      { "the id is escaped", '<h1 signal:text="{{ t }}">', { t = { id = 'a"b' } }, '<h1 signal:text="a&quot;b">',
        { "signal:text" } },
      { "case-insensitive prefix", '<h1 SIGNAL:text="{{ t }}">', { t = sig }, '<h1 SIGNAL:text="product.title">',
        { "SIGNAL:text" } },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        assert.are.equal(case[4], render(case[2], case[3]))
        assert.are.same(case[5], seen)
      end)
    end

    it("errors for a function the resolver does not know", function()
      local ok, err = pcall(html.html('<a\non:click="{{ f }}">'), { f = function() end })
      assert.is_false(ok)
      assert.are.equal('template:2: no id for a function in binding attribute "on:click"', E.message(err))
    end)

    it("without a resolver renders the value", function()
      html.set_ref_resolver(nil)
      assert.are.equal('<h1 signal:class="a b">', render('<h1 signal:class="{{ l }}">', { l = { "a", "b" } }))
    end)

    it("configured prefixes", function()
      local src = '<h1 data-signal-text="{{ t }}"></h1>'
      local ok, err = pcall(render, src, { t = sig })
      assert.is_false(ok)
      assert.are.equal("template:1: cannot render a table with a metatable and no __tostring", E.message(err))
      html.set_binding_prefixes({ "data-signal-", "data-on-" })
      assert.are.equal('<h1 data-signal-text="product.title"></h1>', render(src, { t = sig }))
    end)

    it("rejects a bad resolver", function()
      E.has_error(function() html.set_ref_resolver(42) end,
        "html.set_ref_resolver: expected a function or nil, got number")
    end)
  end)
end)
