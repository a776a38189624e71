-- Robustness: the page snapshot holds what protocol.md "SSR output" says,
-- whatever wrote it, and streamed patches are numbered (protocol.md
-- "Streaming").
local Async = require("async")
local json = require("async.app.json")

local loop
before_each(function()
  loop = Async.manual_loop()
  Async.set_loop(loop)
end)

local function app_with(partial, signals, html)
  return Async.define_app({
    signal = signals,
    partial = { page = partial or function() return html or "<p>page</p>" end },
    route = { ["/products/:id"] = Async.define_route("page"), ["/"] = Async.define_route("page") },
  })
end

-- renders url inside a coroutine on the manual loop
local function render(rt, url)
  local out
  local co = coroutine.create(function() out = rt:render(url) end)
  assert(coroutine.resume(co))
  while coroutine.status(co) ~= "dead" do loop:advance(1) end
  return out
end

local function snapshot_json(html)
  return html:match('<script type="application/json" async:snapshot>(.-)</script>')
end

describe("the page snapshot", function()
  it("holds a signal the partial wrote, though the page does not bind it", function()
    local rt = Async.create_app(app_with(function(self, params)
      self.signals:set("productId", params.id)
      return "<p>no binding</p>"
    end, { productId = "" }))
    local out = render(rt, "/products/sku-9")
    assert.equal("sku-9", out.signals.productId)
    assert.equal("sku-9", Async.read_snapshot(out.html).signals.productId)
  end)

  it("holds the signals a partial returned in its table form", function()
    local rt = Async.create_app(app_with(function()
      return { html = "<p>saved</p>", signals = { flash = "saved" } }
    end, {}))
    local out = render(rt, "/")
    assert.equal("saved", out.signals.flash)
    assert.equal("saved", Async.read_snapshot(out.html).signals.flash)
  end)

  it("holds every signal of the runtime except _x ids and computeds", function()
    local rt = Async.create_app(app_with(nil, {
      a = 1, unbound = "u", _secret = "s", ["_private.x"] = 1,
      twice = Async.computed(function() return 2 end),
    }, '<p signal:text="a"></p>'))
    local snap = Async.read_snapshot(render(rt, "/").html).signals
    assert.equal(1, snap.a)
    assert.equal("u", snap.unbound)
    assert.is_nil(snap._secret)
    assert.is_nil(snap["_private.x"])
    assert.is_nil(snap.twice)
    assert.equal("/", snap["router.url"])
  end)

  it("writes an async signal with value and error always present (null when absent)", function()
    local rt = Async.create_app(app_with(nil, {
      ok = Async.define_async(function() return "v" end),
      bad = Async.define_async(function() error({ code = "E", message = "no" }, 0) end),
      empty = Async.define_async(function() return nil end),
    }))
    local out = render(rt, "/")
    local text = snapshot_json(out.html)
    assert.truthy(text:find('"ok":{"error":null,"loading":false,"status":"ready","value":"v","version":1}', 1, true),
      text)
    assert.truthy(text:find('"bad":{"error":{"code":"E","message":"no","name":"Error"},"loading":false,' ..
      '"status":"error","value":null,"version":1}', 1, true), text)
    assert.truthy(text:find('"empty":{"error":null,"loading":false,"status":"ready","value":null', 1, true), text)
    assert.equal(json.null, out.signals.ok.error)
    assert.equal(json.null, out.signals.bad.value)
  end)

  it("restores into a runtime: null value and error stand for absent ones", function()
    local rt = Async.create_app(app_with(nil, { ok = Async.define_async(function() return "v" end) }))
    local snap = Async.read_snapshot(render(rt, "/").html).signals
    local rt2 = Async.create_app(app_with(nil, { ok = Async.define_async(function() return "other" end) }))
    rt2.signals:restore({ ok = snap.ok })
    local ok = rt2.signals:ref("ok")
    assert.equal("ready", ok:status())
    assert.is_nil(ok:error())
    assert.equal("v", ok:peek())
  end)
end)

describe("streamed patches", function()
  local function after(ms, v)
    return Async.define_async(function(self) Async.delay(ms, self.abort); return v end)
  end
  local function boundary(id)
    return ('<div async:boundary="%s"><template async:ready="%s"><b signal:text="%s"></b></template></div>')
      :gsub("%%s", id)
  end

  local function stream(rt)
    local chunks = {}
    local co = coroutine.create(function()
      rt:render_stream("/", function(c) chunks[#chunks + 1] = c end, { document = false })
    end)
    assert(coroutine.resume(co))
    while coroutine.status(co) ~= "dead" do loop:advance(1) end
    return chunks
  end

  it("carry seq from 1, in the order they are sent, restarting per response", function()
    local app = app_with(nil, { a = after(30, "A"), b = after(10, "B"), c = after(20, "C") },
      boundary("a") .. boundary("b") .. boundary("c"))
    for _ = 1, 2 do
      local seqs = {}
      for _, chunk in ipairs(stream(Async.create_app(app))) do
        local p = chunk:match('<script type="application/json" async:patch>(.-)</script>')
        if p then seqs[#seqs + 1] = json.decode(p).seq end
      end
      assert.same({ 1, 2, 3 }, seqs)
    end
  end)

  it("carry a signal registered after the shell was sent", function()
    local app = app_with(nil, { a = Async.define_async(function(self)
      Async.delay(10, self.abort)
      self.signals:ensure("late", "registered by the run")
      self.signals:set("count", 1)
      return "A"
    end), count = 0 }, boundary("a"))
    local chunks = stream(Async.create_app(app))
    local p = json.decode(chunks[2]:match("async:patch>(.-)</script>"))
    assert.equal(1, p.signals.count)
    assert.equal("registered by the run", p.signals.late)
    assert.equal("A", p.signals.a.value)
  end)
end)
