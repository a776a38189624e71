-- Robustness: every value is escaped for its context, by one module
-- (async.html.escape) that templates and the scanner's bindings share
-- (protocol.md "Safety rules", docs/rendering.md "Escaping"). Hostile
-- values for every context.
local escape = require("async.html.escape")
local html = require("async.html.template")
local scanner = require("async.html.scanner")
local json = require("async.app.json")

local function render(src, env) return tostring(html.html(src)(env)) end

-- the scanner's output for `src` with every slot's path read from `values`,
-- without the binding attributes themselves
local function fill(src, values)
  local plan = assert(scanner.compile(src, { cache = false }))
  return (scanner.fill(plan, function(slot) return values[slot.path] end):gsub(' signal:[^=]*="[^"]*"', ""))
end

local UNSAFE = escape.UNSAFE_URL

describe("one escaping module", function()
  it("templates and the scanner use its functions", function()
    assert.equal(escape.text, html.escape)
    assert.equal(escape.text, scanner.escape_text)
    assert.equal(escape.attr, scanner.escape_attr)
    assert.equal(escape.UNSAFE_URL, scanner.UNSAFE_URL)
  end)
end)

describe("HTML text", function()
  local hostile = { "<script>alert(1)</script>", "</p><img src=x onerror=alert(1)>", "&lt;", "\"'", "{{ x }}" }
  for _, v in ipairs(hostile) do
    it("escapes " .. v .. " the same in a template and in signal:text", function()
      local t = render("<p>{{ x }}</p>", { x = v })
      assert.equal(t, fill('<p signal:text="x"></p>', { x = v }))
      assert.is_nil(t:sub(4, -5):find("[<>\"']"))
    end)
  end

  it("textarea and title content (RCDATA) is escaped", function()
    assert.equal("<textarea>&lt;/textarea&gt;&lt;script&gt;</textarea>",
      render("<textarea>{{ x }}</textarea>", { x = "</textarea><script>" }))
    assert.equal("<title>&lt;/title&gt;</title>", render("<title>{{ x }}</title>", { x = "</title>" }))
  end)

  it("a comment cannot be closed by a value", function()
    assert.equal("<!-- --&gt;&lt;script&gt; -->", render("<!-- {{ x }} -->", { x = "--><script>" }))
  end)
end)

describe("attribute values", function()
  it("a quoted value cannot be left", function()
    assert.equal('<a title="&quot; onmouseover=&quot;alert(1)">',
      render('<a title="{{ t }}">', { t = '" onmouseover="alert(1)' }))
    assert.equal("<a title='&#39; onmouseover=&#39;alert(1)'>",
      render("<a title='{{ t }}'>", { t = "' onmouseover='alert(1)" }))
  end)

  it("an unquoted value is quoted", function()
    assert.equal('<a title="x onmouseover=alert(1)">', render("<a title={{ t }}>", { t = "x onmouseover=alert(1)" }))
  end)
end)

describe("URL attributes", function()
  local hostile = {
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "java\nscript:alert(1)", "\1javascript:alert(1)", "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>",
    "javascript&colon;alert(1)", "javascript&#58;alert(1)", "javascript&#x3A;alert(1)",
  }
  local attrs = { "href", "src", "action", "formaction", "xlink:href", "poster", "cite", "data" }
  for _, v in ipairs(hostile) do
    it(("neutralises %q in every URL attribute, as signal:attr does"):format(v), function()
      for _, a in ipairs(attrs) do
        -- a value that arrives holding "&colon;" is text, escaped as &amp;colon;: no scheme
        local t = render("<a " .. a .. '="{{ u }}">', { u = v })
        if not v:find("&", 1, true) then
          assert.equal("<a " .. a .. '="' .. UNSAFE .. '">', t)
        else
          -- "&" is escaped: the browser reads "javascript&colon;...", a relative URL
          assert.equal("<a " .. a .. '="' .. escape.attr(v) .. '">', t)
        end
        assert.equal(t, fill("<a signal:attr:" .. a .. '="u">', { u = v }))
      end
    end)
  end

  it("checks the whole value: a static part cannot complete a scheme", function()
    assert.equal('<a href="' .. UNSAFE .. '">', render('<a href="{{ s }}script:alert(1)">', { s = "java" }))
    assert.equal('<a href="' .. UNSAFE .. '">', render('<a href="java{{ s }}:alert(1)">', { s = "script" }))
    assert.equal('<a href="' .. UNSAFE .. '">', render("<a href={{ u }}>", { u = "javascript:alert(1)" }))
  end)

  local safe = { "https://example.com/a?b=1&c=2", "http://x", "mailto:a@b.c", "tel:+123", "/path:with-colon",
                 "relative/page", "#frag", "?q=javascript:alert(1)", "" }
  for _, v in ipairs(safe) do
    it(("keeps %q, escaped"):format(v), function()
      assert.equal('<a href="' .. escape.attr(v) .. '">', render('<a href="{{ u }}">', { u = v }))
      assert.equal(render('<a href="{{ u }}">', { u = v }), fill('<a signal:attr:href="u">', { u = v }))
    end)
  end

  it("a value after a static relative prefix is a query, not a scheme", function()
    assert.equal('<a href="/search?q=javascript:alert(1)">',
      render('<a href="/search?q={{ q }}">', { q = "javascript:alert(1)" }))
  end)

  it("srcset: every candidate is checked", function()
    assert.equal('<img srcset="' .. UNSAFE .. '">',
      render('<img srcset="{{ s }}">', { s = "a.png 1x, javascript:alert(1) 2x" }))
    assert.equal('<img srcset="a.png 1x, b.png 2x">', render('<img srcset="{{ s }}">', { s = "a.png 1x, b.png 2x" }))
    assert.equal('<img srcset="' .. UNSAFE .. '">', fill('<img signal:attr:srcset="s">', { s = "javascript:x 1x" }))
  end)

  it("non-URL attributes are not URL-checked", function()
    assert.equal('<a title="javascript:alert(1)">', render('<a title="{{ t }}">', { t = "javascript:alert(1)" }))
  end)
end)

describe("<script> and <style>", function()
  local hostile = { "</script><script>alert(1)</script>", "<!--", "\226\128\168", "a\"b", { list = { "</script>" } } }
  for i, v in ipairs(hostile) do
    it("JSON inside <script type=\"application/json\">: hostile value " .. i, function()
      local out = render('<script type="application/json">{{ v }}</script>', { v = v })
      local body = out:match('^<script type="application/json">(.*)</script>$')
      assert.is_nil(body:find("<", 1, true))
      assert.is_nil(body:find("\226\128\168", 1, true))
      assert.same(v, json.decode(body))
    end)
  end

  it("application/ld+json is JSON too", function()
    assert.equal('<script type="application/ld+json">{"a":"\\u003c"}</script>',
      render('<script type="application/ld+json">{{ v }}</script>', { v = { a = "<" } }))
  end)

  for _, src in ipairs({ "<script>var x = '{{ x }}'</script>", '<script type="module">{{ x }}</script>',
                         '<script type="text/javascript">f({{ x }})</script>', "<SCRIPT>{{ x }}</SCRIPT>" }) do
    it("refuses {{ }} in a script that runs: " .. src, function()
      local ok, err = pcall(html.html, src)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("{{ }} inside <script> is not allowed", 1, true), tostring(err))
    end)
  end

  it("refuses {{ }} in <style>", function()
    local ok, err = pcall(html.html, "<style>p { color: {{ c }} }</style>")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("{{ }} inside <style> is not allowed", 1, true), tostring(err))
  end)

  it("a script without {{ }} is left alone", function()
    assert.equal("<script>if (a<b) {}</script><p>1</p>",
      render("<script>if (a<b) {}</script><p>{{ x }}</p>", { x = 1 }))
  end)
end)
