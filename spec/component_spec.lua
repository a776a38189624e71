-- lua-api.md "Templates and components", as the seed's src/component.js:
-- scope ids parent.Name.N, named and generated scoped signals and handlers,
-- children, suspense templates, lifecycle, and destroy that removes
-- everything the instance registered, children first.
local Async = require("async")
local component = require("async.html.component")
local loop_mod = require("async.loop")

local loop, prev_loop
before_each(function()
  prev_loop = loop_mod.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
after_each(function() Async.set_loop(prev_loop) end)

local function msg(err) return (tostring(err):gsub("^[^:]*:%d+: ", "")) end

local function runtime(decls)
  return Async.create_app(Async.define_app(decls), { target = "browser" })
end

describe("component scope ids", function()
  it("parent.Name.N with the registered name, N per parent and name", function()
    local ids = {}
    local Child = Async.define_component(function(self) ids[#ids + 1] = self.id; return "<i>c</i>" end)
    local Parent = Async.define_component(function(self)
      ids[#ids + 1] = self.id
      return self:render(Child) .. self:render(Child) .. self:render("Child")
    end)
    local rt = runtime({ component = { Parent = Parent, Child = Child } })
    local _, html = component.render(rt, nil, "Parent")
    component.render(rt, nil, Parent)
    assert.equal("<i>c</i><i>c</i><i>c</i>", tostring(html))
    assert.are.same({
      "component.Parent.1", "component.Parent.1.Child.1", "component.Parent.1.Child.2", "component.Parent.1.Child.3",
      "component.Parent.2",
      "component.Parent.2.Child.1", "component.Parent.2.Child.2", "component.Parent.2.Child.3",
    }, ids)
  end)

  it("an unregistered component takes its define_component name, else anonymous", function()
    local rt = runtime()
    local a = component.render(rt, "page", Async.define_component(function() end, "Card"))
    local b = component.render(rt, "page", Async.define_component(function() end))
    assert.equal("page.Card.1", a.id)
    assert.equal("page.anonymous.1", b.id)
  end)

  it("counters are per runtime", function()
    local C = Async.define_component(function() end)
    local decls = { component = { C = C } }
    assert.equal("component.C.1", component.render(runtime(decls), nil, "C").id)
    assert.equal("component.C.1", component.render(runtime(decls), nil, "C").id)
  end)

  it("an unknown component name: component-not-registered", function()
    local ok, err = pcall(component.render, runtime(), nil, "Nope")
    assert.is_false(ok)
    assert.equal("component-not-registered", err.code)
    assert.equal('Component "Nope" is not registered.', err.message)
    assert.equal("Register via Async.use({ component })", err.hint)
  end)
end)

describe("scoped signals, computeds, async signals and handlers", function()
  local rt, inst, refs
  before_each(function()
    refs = {}
    local Toggle = Async.define_component(function(self, props)
      refs.selected = self:signal("selected", props.initial)
      refs.local1 = self:signal(0)
      refs.local2 = self:signal("x")
      refs.label = self:computed("label", function() return refs.selected() and "on" or "off" end)
      refs.product = self:async_signal("product", function(ctx)
        Async.delay(5, ctx.abort)
        return { title = "T" }
      end)
      refs.toggle = self:handler("toggle", function(h)
        h.signals:update(refs.toggle_target, function(v) return not v end)
      end)
      local gen = function() end
      refs.gen1 = self:handler(gen)
      refs.gen1_again = self:handler(gen)
      refs.gen2 = self:handler(function(h) refs.handler_self = h end)
      return "<button>t</button>"
    end)
    rt = runtime({ component = { Toggle = Toggle } })
    inst = component.render(rt, nil, "Toggle", { initial = false })
    refs.toggle_target = inst.id .. ".selected"
  end)

  it("registers under the scope: named, and generated as the seed (signal.N, handler.N)", function()
    assert.are.same({ "component.Toggle.1.label", "component.Toggle.1.product", "component.Toggle.1.selected",
                      "component.Toggle.1.signal.1", "component.Toggle.1.signal.2" }, rt.registry:keys("signal"))
    assert.are.same({ "component.Toggle.1.handler.1", "component.Toggle.1.handler.2", "component.Toggle.1.toggle" },
      rt.registry:keys("handler"))
    assert.equal("component.Toggle.1.toggle", refs.toggle)
    assert.equal("component.Toggle.1.handler.1", refs.gen1)
    assert.equal(refs.gen1, refs.gen1_again)            -- one registration per function
    assert.equal(false, rt.signals:get("component.Toggle.1.selected"))
    assert.equal("x", rt.signals:get("component.Toggle.1.signal.2"))
  end)

  it("the ids become binding values in templates", function()
    assert.equal('<b signal:text="component.Toggle.1.label"></b>',
      tostring(Async.html[[<b signal:text="{{ l }}"></b>]] { l = refs.label }))
  end)

  it("scoped handlers dispatch with the handler context, falling back to the instance", function()
    assert.are.same({ ["component.Toggle.1.selected"] = true }, rt:dispatch(refs.toggle).signals)
    assert.equal("on", rt.signals:get("component.Toggle.1.label"))
    rt:dispatch(refs.gen2, {}, { input = { a = 1 } })
    assert.are.same({ a = 1 }, refs.handler_self.input)
    assert.equal(inst.id, refs.handler_self.id)
    assert.are.same({ initial = false }, refs.handler_self.props)
  end)

  it("the async signal runs in the runtime with meta paths", function()
    assert.equal("loading", rt.signals:get("component.Toggle.1.product.$status"))
    loop:advance(5)
    assert.equal("T", rt.signals:get("component.Toggle.1.product.title"))
  end)

  it("a named signal already in the runtime is reused and not owned", function()
    local rt2 = runtime({ signal = { ["component.C.1.shared"] = "kept" },
                          component = { C = Async.define_component(function(self)
                            self:signal("shared", "ignored"); return ""
                          end) } })
    local c = component.render(rt2, nil, "C")
    assert.equal("kept", rt2.signals:get("component.C.1.shared"))
    c:destroy()
    assert.equal("kept", rt2.signals:get("component.C.1.shared"))
  end)

  -- { name, fn, message }
  local bad = {
    { "a bad signal name", function(self) self:signal("has space", 1) end,
      "component signal names must be non-empty strings without spaces, got has space" },
    { "a handler that is not a function", function(self) self:handler("h", 5) end,
      "component handler expects a function, got number" },
    { "an unknown lifecycle event", function(self) self:on("mount", function() end) end,
      'Component lifecycle "mount" was removed; use self:on("attach", fn)' },
    { "another unknown lifecycle event", function(self) self:on("hover", function() end) end,
      'Unsupported component lifecycle event "hover" (expected attach, visible or destroy)' },
    { "suspense without a registered signal", function(self) self:suspense(Async.signal(1), {}) end,
      "suspense expects a registered async signal or its id" },
    { "suspense with a view that is not a function", function(self) self:suspense("x", { ready = "<p>" }) end,
      'suspense view "ready" must be a function, got string' },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1] .. " and leaves nothing registered", function()
      local r = runtime()
      r:use("signal", {})
      local ok, err = pcall(component.render, r, nil, Async.define_component(function(self)
        self:signal("before", 1)
        self:handler("h0", function() end)
        c[2](self)
      end, "Bad"))
      assert.is_false(ok)
      assert.equal(c[3], msg(err))
      assert.are.same({}, r.registry:keys("signal"))
      assert.are.same({}, r.registry:keys("handler"))
      assert.is_nil(r.scopes["component.Bad.1"])
    end)
  end
end)

describe("suspense", function()
  local rt, out
  local function render(views)
    rt = runtime({ component = { P = Async.define_component(function(self)
      local product = self:async_signal("product", function() return 1 end)
      out = self:suspense(product, views)
      return out
    end) } })
    component.render(rt, nil, "P")
    return tostring(out)
  end

  it("emits only the templates, in loading/ready/error order, each view given the ref", function()
    local got
    assert.equal('<template async:loading="component.P.1.product"><p>Loading...</p></template>' ..
                 '<template async:ready="component.P.1.product"><h1 signal:text="component.P.1.product.title"></h1>' ..
                 '</template><template async:error="component.P.1.product"><p>bad</p></template>',
      render({
        error = function() return Async.html[[<p>bad</p>]] {} end,
        ready = function(ref)
          got = ref
          return Async.html[[<h1 signal:text="{{ id }}.title"></h1>]] { id = require("async.app.registry").id_of[ref] }
        end,
        loading = function() return "<p>Loading...</p>" end,
      }))
    assert.equal(rt.signals:ref("component.P.1.product"), got)
  end)

  it("a function is the ready view; a missing view is left out", function()
    assert.equal('<template async:ready="component.P.1.product">ok</template>', render(function() return "ok" end))
  end)
end)

describe("lifecycle and destroy", function()
  it("destroy removes everything, children first, stops effects and runs on('destroy')", function()
    local events = {}
    local effect_runs = 0
    local Child = Async.define_component(function(self)
      self:signal("c", 1)
      self:handler("ch", function() end)
      self:on("destroy", function() events[#events + 1] = "child destroy" end)
      return ""
    end)
    local Parent = Async.define_component(function(self)
      local s = self:signal("p", 1)
      self:computed("pc", function() return s() + 1 end)
      self:async_signal("pa", function(ctx) Async.delay(100, ctx.abort); return 1 end)
      self:effect(function() s(); effect_runs = effect_runs + 1 end)
      self:handler(function() end)
      self:on("attach", function() events[#events + 1] = "attach" end)
      self:on("destroy", function(inst)
        -- the instance's signals are still readable here
        events[#events + 1] = "parent destroy " .. tostring(inst.signals:get(inst.id .. ".p"))
      end)
      self:render(Child)
      return ""
    end)
    local rt = runtime({ signal = { global = 0 }, component = { Parent = Parent, Child = Child } })
    local inst = component.render(rt, nil, "Parent")
    assert.equal(1, effect_runs)
    assert.equal(5, #rt.registry:keys("signal"))   -- global, p, pc, pa, Child.1.c
    assert.equal(2, #rt.registry:keys("handler"))
    rt.signals:set(inst.id .. ".p", 2)
    assert.equal(2, effect_runs)

    local p = rt.signals:ref(inst.id .. ".p")
    inst:destroy()
    assert.are.same({ "child destroy", "parent destroy 2" }, events)   -- attach runs in the browser only
    assert.are.same({ "global" }, rt.registry:keys("signal"))
    assert.are.same({}, rt.registry:keys("handler"))
    assert.is_nil(rt.scopes[inst.id])
    assert.is_nil(rt.scopes[inst.id .. ".Child.1"])
    p:set(3)                                   -- the effect is stopped
    assert.equal(2, effect_runs)
    inst:destroy()                             -- idempotent
    assert.equal(2, #events)
  end)

  it("a destroy callback that raises does not stop the cleanup; the error is raised after", function()
    local rt = runtime({ component = { C = Async.define_component(function(self)
      self:signal("s", 1)
      self:on("destroy", function() error("cleanup failed") end)
      return ""
    end) } })
    local inst = component.render(rt, nil, "C")
    local ok, err = pcall(inst.destroy, inst)
    assert.is_false(ok)
    assert.equal("cleanup failed", msg(err))
    assert.are.same({}, rt.registry:keys("signal"))
  end)

  it("rt:destroy destroys every component scope", function()
    local destroyed = 0
    local rt = runtime({ component = { C = Async.define_component(function(self)
      self:on("destroy", function() destroyed = destroyed + 1 end)
      return ""
    end) } })
    component.render(rt, nil, "C")
    component.render(rt, nil, "C")
    rt:destroy()
    assert.equal(2, destroyed)
    assert.is_nil(next(rt.scopes))
  end)
end)

describe("define_component", function()
  it("rejects a non-function and a bad name", function()
    local ok, err = pcall(Async.define_component, "x")
    assert.is_false(ok)
    assert.equal("define_component expects a function, got string", msg(err))
    ok, err = pcall(Async.define_component, function() end, "a.b")
    assert.is_false(ok)
    assert.equal("define_component: name must be a non-empty string without dots or spaces, got a.b", msg(err))
  end)
end)

-- docs/rendering.md "Component instances": a runtime's tables are made as
-- big as its app's last rendered page left them (no rehash per request)
describe("table sizes learned per app", function()
  it("a render records the page's counts on its app, bounded; the next runtime renders the same", function()
    local runtime_mod = require("async.app.runtime")
    local Item = Async.define_component(function(self, props)
      self:signal("n", props.n)
      local h = self:handler("pick", function() end)
      return Async.html[[<li on:click="{{ h }}">{{ n }}</li>]] { h = h, n = props.n }
    end, "Item")
    local app = Async.define_app()
    app:use({
      component = { Item = Item },
      partial = { list = function(self)
        local out = {}
        for i = 1, 5 do out[i] = self:render("Item", { n = i }) end
        return out
      end },
      route = { ["/"] = Async.define_route("list") },
    })
    assert.is_nil(rawget(app, "sizes"))
    local first = Async.create_app(app, { env = "production" }):render("/").html
    local rt = Async.create_app(app, { env = "production" })
    local sizes = app.sizes
    assert.same({ scopes = 5, counters = 4, handlers = 5, signals = 12 }, sizes)   -- 7 router signals
    assert.equal(sizes, rt.sizes)
    assert.equal(first, rt:render("/").html)
    -- a page bigger than SIZES_MAX is recorded as SIZES_MAX
    local big = Async.define_app()
    big:use({
      component = { Item = Item },
      partial = { list = function(self)
        local out = {}
        for i = 1, runtime_mod.SIZES_MAX + 1 do out[i] = self:render("Item", { n = i }) end
        return out
      end },
      route = { ["/"] = Async.define_route("list") },
    })
    Async.create_app(big, { env = "production" }):render("/")
    assert.equal(runtime_mod.SIZES_MAX, big.sizes.scopes)
    assert.equal(runtime_mod.SIZES_MAX, big.sizes.signals)
  end)
end)
