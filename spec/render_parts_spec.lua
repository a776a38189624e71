-- Specs for filling pages by parts (docs/rendering.md "Plans of template
-- source"): a partial returning template results is filled from the plans
-- of its templates' source, nested results through their own plans. Every
-- case here is rendered with render.verify_parts on, which reads the joined
-- HTML whole too and raises when the bytes differ; each case also says
-- which way it must go: by parts, or whole (a value that would change how
-- the page reads).
local Async = require("async")
local render = require("async.ssr.render")
local html = require("async.html.template")
local scanner = require("async.html.scanner")

local loop
local verify_before
before_each(function()
  loop = Async.manual_loop()
  Async.set_loop(loop)
  verify_before = render.verify_parts
  render.verify_parts = true
end)
after_each(function() render.verify_parts = verify_before end)

-- An app whose route "/" runs partial(self); signals and extra declarations merge in.
local function make_app(partial, signals, extra)
  local app = Async.define_app()
  local decls = {
    signal = signals or {},
    partial = { page = partial },
    route = { ["/"] = Async.define_route("page") },
  }
  for k, v in pairs(extra or {}) do decls[k] = v end
  app:use(decls)
  return app
end

-- renders "/" once; returns the fragment and "parts" or "whole"
local function fragment(app, opts)
  local rt = Async.create_app(app, opts or { env = "development" })
  local before = render.counts.parts
  local out = rt:render("/", { document = false }).html
  return out, render.counts.parts > before and "parts" or "whole"
end

local T = Async.html

describe("render by parts: the same bytes as the whole HTML", function()
  local ROW = T([[<li class="item" data-id="{{ id }}"><a href="/items/{{ id }}">{{ title }}</a>]] ..
    [[<b signal:text="items.{{ i }}.title"></b><button type="button" on:click="select">Open</button></li>]])
  local LIST = T[[<h1 signal:text="page.title">{{ title }}</h1><ul class="items">{{ rows }}</ul>]]
  local items = {}
  for i = 1, 5 do items[i] = { id = 100 + i, title = "Item <" .. i .. '> & "' .. i .. '"' } end
  local list_signals = { page = { title = "Items" }, items = items }
  local list_extra = { handler = { select = function() end } }

  -- { name, partial, signals, extra, "parts" | "whole", [expected substring] }
  local cases = {
    { "a list of rows with request data and paths holding {{ }}", function()
        local rows = {}
        for i, it in ipairs(items) do rows[i] = ROW({ i = i, id = it.id, title = it.title }) end
        return LIST({ title = "x", rows = rows })
      end, list_signals, list_extra, "parts",
      '<b signal:text="items.2.title">Item &lt;2&gt; &amp; &quot;2&quot;</b>' },
    { "a list of fragments and strings at the top", function()
        return { '<h1 signal:text="page.title"></h1>', ROW({ i = 1, id = 1, title = "a" }), "<div>" }
      end, list_signals, list_extra, "whole" },
    { "a list of closed fragments and strings at the top", function()
        return { '<h1 signal:text="page.title"></h1>', ROW({ i = 1, id = 1, title = "a" }), "<p>x</p>" }
      end, list_signals, list_extra, "parts" },
    { "a nested <div> in a bound <p>: closes it", function()
        return T[[<p signal:text="page.title">{{ x }}</p>]]({ x = T"<div>d</div>" {} })
      end, list_signals, nil, "whole" },
    { "a nested <b> in a bound <p>: dropped with the content", function()
        return T[[<p signal:text="page.title">{{ x }}</p>]]({ x = T"<b>d</b>" {} })
      end, list_signals, nil, "parts", '<p signal:text="page.title">Items</p>' },
    { "an unclosed <li> per item", function()
        return T[[<ul>{{ x }}</ul>]]({ x = { T"<li>a" {}, T"<li>b" {} } })
      end, nil, nil, "whole" },
    { "a stray end tag in a nested value", function()
        return T[[<div><p signal:text="page.title">{{ x }}</p></div>]]({ x = T"</div>" {} })
      end, list_signals, nil, "whole" },
    { "a value right after <", function()
        return T[[<p><{{ x }}</p>]]({ x = "b" })
      end, nil, nil, "whole" },
    { "a comment holding a value with -", function()
        return T[[<!-- {{ x }} --><p signal:text="page.title"></p>]]({ x = "-" })
      end, list_signals, nil, "whole" },
    { "a comment holding a value without -", function()
        return T[[<!-- {{ x }} --><p signal:text="page.title"></p>]]({ x = "ok" })
      end, list_signals, nil, "parts" },
    { "safe HTML in a textarea", function()
        return T[[<textarea>{{ x }}</textarea><p signal:text="page.title"></p>]]({ x = html.raw("</textarea><b>") })
      end, list_signals, nil, "whole" },
    { "text in a textarea and a title", function()
        return T[[<title>{{ t }}</title><textarea>{{ x }}</textarea>]]({ t = "a<b", x = "</textarea>" })
      end, nil, nil, "parts" },
    { "safe HTML with a quote in an attribute", function()
        return T[[<a title="{{ t }}" signal:attr:href="page.title">x</a>]]({ t = html.raw('a" b="c') })
      end, list_signals, nil, "whole" },
    { "a self-closing element inserted in svg", function()
        return T[[<svg>{{ x }}</svg>]]({ x = T[[<text signal:text="page.title"/>]] {} })
      end, list_signals, nil, "whole" },
    { "options of a bound select", function()
        return T[[<select signal:value="v">{{ opts }}</select>]]({
          opts = { T[[<option value="a">A</option>]] {}, T[[<option value="b">B</option>]] {} } })
      end, { v = "b" }, nil, "whole", '<option value="b" selected="">B</option>' },
    { "a bound select whose options carry {{ }}", function()
        return T[[<select signal:value="v"><option value="{{ a }}">A</option><option>{{ b }}</option></select>]](
          { a = "a", b = "b" })
      end, { v = "b" }, nil, "whole" },
    { "a class attribute with {{ }} and a class binding", function()
        return T[[<i class="x {{ c }}" class:on="v"></i>]]({ c = "y z" })
      end, { v = true }, nil, "whole", '<i class="x y z on" class:on="v"></i>' },
    { "a class attribute with {{ }} alone", function()
        return T[[<i class="x {{ c }}" signal:text="v"></i>]]({ c = "y z" })
      end, { v = "t" }, nil, "parts", '<i class="x y z" signal:text="v">t</i>' },
    { "a value attribute with {{ }} replaced by its binding", function()
        return T[[<input value="{{ c }}" signal:value="v">]]({ c = "old" })
      end, { v = "new" }, nil, "parts", '<input value="new" signal:value="v">' },
    { "a boundary with {{ }} in its templates", function()
        return T[[<div async:boundary="p">
  <template async:ready="p"><b signal:text="p.title"></b>{{ x }}</template>
  <template async:error="p"><i>{{ y }}</i></template>
</div>]]({ x = T[[<u signal:text="p.title">{{ z }}</u>]] { z = "<z>" }, y = "e&" })
      end, { p = Async.define_async(function() return { title = "T" } end) }, nil, "parts" },
    { "a boundary whose id holds {{ }}", function()
        return T[[<div async:boundary="{{ id }}"><template async:ready="{{ id }}">r</template></div>]]({ id = "p" })
      end, { p = Async.define_async(function() return 1 end) }, nil, "whole" },
    { "a boundary's gap holding {{ }}", function()
        return T[[<div async:boundary="p">{{ g }}<template async:ready="p">r</template></div>]]({ g = "" })
      end, { p = Async.define_async(function() return 1 end) }, nil, "whole" },
    { "suspense views inserted in a boundary", function(self)
        return self:render(Async.define_component(function(c)
          local p = c:async_signal("p", function() return { title = "T" } end)
          return T[[<article async:boundary="{{ p }}">{{ views }}</article>]]({ p = p,
            views = c:suspense(p, function(ref) return T[[<h1 signal:text="{{ p }}.title"></h1>]] { p = ref } end) })
        end, "Prod"))
      end, nil, nil, "whole", '<h1 signal:text="page.Prod.1.p.title">T</h1>' },
    { "components with signals, computeds and handlers", function(self)
        local Toggle = Async.define_component(function(c, props)
          local on = c:signal(props.on)
          local label = c:computed(function() return props.label .. (on() and " on" or " off") end)
          return T[[<button type="button" on:click="{{ toggle }}" class:on="{{ on }}"
  signal:attr:aria-pressed="{{ on }}"><span signal:text="{{ label }}">{{ text }}</span></button>]] {
            on = on, label = label, text = props.label,
            toggle = c:handler(function() on:update(function(v) return not v end) end) }
        end, "Toggle")
        local list = {}
        for i = 1, 4 do list[i] = self:render(Toggle, { on = i % 2 == 0, label = "T" .. i }) end
        return T[[<nav>{{ list }}</nav>]] { list = list }
      end, nil, nil, "parts", '<span signal:text="page.Toggle.2.computed.1">T2 on</span>' },
    { "a path with {{ }} padded with spaces", function()
        return T[[<b signal:text=" {{ p }} "></b>]]({ p = "page.title" })
      end, list_signals, nil, "parts", '<b signal:text=" page.title ">Items</b>' },
    { "raw HTML values are read (and cached) whole", function()
        return T[[<div>{{ a }}</div>]]({ a = html.raw('<p signal:text="page.title"></p>') })
      end, list_signals, nil, "parts", '<div><p signal:text="page.title">Items</p></div>' },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local app = make_app(case[2], case[3], case[4])
      local out, way = fragment(app)
      assert.are.equal(case[5], way)
      if case[6] then assert.truthy(out:find(case[6], 1, true), out) end
      -- production gives the same bytes
      assert.are.equal(out, (fragment(app, { env = "production" })))
    end)
  end
end)

describe("render by parts: validation and waiting", function()
  it("an unknown signal in a path holding {{ }} raises in development, logs in production", function()
    local app = make_app(function() return T[[<b signal:text="{{ p }}.x"></b>]] { p = "nope" } end)
    local ok, err = pcall(fragment, app)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('unknown signal "nope.x"', 1, true))
    local logged = {}
    local rt = Async.create_app(app, { env = "production", log = function(m) logged[#logged + 1] = m end })
    assert.are.equal('<b signal:text="nope.x"></b>', rt:render("/", { document = false }).html)
    assert.truthy(logged[1]:find('unknown signal "nope.x"', 1, true))
  end)

  it("an unknown handler in a chain holding {{ }} raises in development", function()
    local app = make_app(function() return T[[<b on:click="{{ h }}"></b>]] { h = "nope" } end)
    local ok, err = pcall(fragment, app)
    assert.is_false(ok)
    assert.truthy(tostring(err):find('unknown handler "nope"', 1, true))
  end)

  it("waits inside a coroutine for an async signal a path holding {{ }} reads, then fills by parts", function()
    local app = make_app(function(self)
      self.signals:async_signal("slow", function(ctx)
        Async.delay(30, ctx.abort)
        return { title = "Lamp" }
      end)
      return T[[<h1 signal:text="{{ s }}.title"></h1><p>{{ x }}</p>]] { s = "slow", x = "<x>" }
    end)
    local rt = Async.create_app(app)
    local out
    local before = render.counts.parts
    local co = coroutine.create(function() out = rt:render("/", { document = false }) end)
    assert(coroutine.resume(co))
    assert.is_nil(out)
    loop:advance(30)
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal('<h1 signal:text="slow.title">Lamp</h1><p>&lt;x&gt;</p>', out.html)
    assert.are.equal(before + 1, render.counts.parts)
  end)

  it("a timeout renders the error template through the whole HTML", function()
    local app = make_app(function(self)
      self.signals:async_signal("slow", function(ctx) Async.delay(1000, ctx.abort); return 1 end)
      return T([[<div async:boundary="slow"><template async:error="slow"><i signal:text="slow.$error.code"></i>]] ..
        [[</template>{{ x }}</div>]]) { x = "" }
    end)
    local rt = Async.create_app(app)
    local out
    local co = coroutine.create(function() out = rt:render("/", { document = false, timeout = 50 }) end)
    assert(coroutine.resume(co))
    loop:advance(50)
    assert.are.equal("dead", coroutine.status(co))
    assert.truthy(out.html:find('<i signal:text="slow.$error.code">timeout</i>', 1, true), out.html)
  end)

  it("streams a page by parts when nothing is pending", function()
    local app = make_app(function() return T[[<p signal:text="t">{{ x }}</p><b>{{ x }}</b>]] { x = "<" } end,
      { t = "T" })
    local rt = Async.create_app(app)
    local chunks = {}
    local before = render.counts.parts
    local co = coroutine.create(function()
      rt:render_stream("/", function(c) chunks[#chunks + 1] = c; return true end, { document = false })
    end)
    assert(coroutine.resume(co))
    assert.are.equal(before + 1, render.counts.parts)
    assert.truthy(chunks[1]:find('<p signal:text="t">T</p><b>&lt;</b>', 1, true))
  end)
end)

describe("render by parts: memory", function()
  it("stays bounded when every request's HTML differs: no plan per page", function()
    local ROW = T[[<li data-id="{{ id }}">{{ title }}</li>]]
    local n = 0
    local app = make_app(function()
      n = n + 1
      local rows = {}
      for i = 1, 20 do rows[i] = ROW { id = n * 100 + i, title = "t" .. n .. "." .. i } end
      return T[[<ul signal:text="x">{{ rows }}</ul>]] { rows = rows }
    end, { x = "" })
    render.verify_parts = false   -- the check itself compiles each whole page
    local rt = Async.create_app(app, { env = "production" })
    rt:render("/")
    local plans = scanner.cache_count()
    for _ = 1, 2000 do rt:render("/") end
    assert.are.equal(plans, scanner.cache_count())
  end)
end)
