-- Robustness: the library's one error type (lua-api.md "Errors", STYLE.md
-- "One error convention"). Every error the library raises is a table
-- { name, code, message, hint?, source, line } whose tostring reads
-- "file:LINE: message (hint)", LINE being the caller's line, not the
-- library's; errors raised by user code pass through unchanged.
local Async = require("async")
local errors = require("async.kernel.errors")
local abort_mod = require("async.kernel.abort")

local FILE = debug.getinfo(1, "S").short_src
local function here() return debug.getinfo(2, "l").currentline end

-- asserts the shape of a library error and returns its tostring
local function check(err, code)
  assert.is_true(errors.is(err), "not the library's error type: " .. tostring(err))
  assert.is_string(err.name)
  assert.equal(code, err.code)
  assert.is_string(err.message)
  local text = tostring(err)
  assert.is_nil(text:find("^table: "))
  return text
end

describe("library errors name the caller's line", function()
  it("a bad route", function()
    local app = Async.define_app()
    local line, ok, err = here(), pcall(function() app:use({ route = { ["/a/*/b"] = Async.define_route("x") } }) end)
    assert.is_false(ok)
    assert.equal(FILE .. ":" .. line .. ': Invalid route pattern "/a/*/b": a splat ("*" or "*name") is only ' ..
      "allowed as the last segment", check(err, "invalid-route"))
  end)

  it("a bad route through the facade's Async.use", function()
    local line, ok, err = here(), pcall(Async.use, { route = { ["/a//b"] = Async.define_route("x") } })
    assert.is_false(ok)
    assert.truthy(check(err, "invalid-route"):find("^" .. FILE:gsub("%p", "%%%0") .. ":" .. line .. ": Invalid route"))
  end)

  it("a bad use", function()
    local line, ok, err = here(), pcall(Async.use, "widget", {})
    assert.is_false(ok)
    assert.equal(FILE .. ":" .. line .. ": Async.use: unknown kind 'widget' (expected signal, handler, server, " ..
      "partial, route, component or cache)", check(err, "invalid-declaration"))
  end)

  it("an unregistered signal", function()
    local rt = Async.create_app(Async.define_app({ signal = { a = 1 } }))
    local line, ok, err = here(), pcall(function() return rt.signals:get("nope.x") end)
    assert.is_false(ok)
    assert.equal(FILE .. ":" .. line .. ': Signal "nope" is not registered. (Register it via Async.use({ signal = ' ..
      '{ ["nope"] = Async.signal(value) } }))', check(err, "signal-not-registered"))
    assert.equal(line, err.line)
  end)

  it("abort:check()", function()
    local token = abort_mod.new()
    token:cancel("client gone")
    local line, ok, err = here(), pcall(function() token:check() end)
    assert.is_false(ok)
    assert.equal("AbortError", err.name)
    assert.equal(FILE .. ":" .. line .. ": aborted: client gone", check(err, "aborted"))
  end)

  it("a template error at compile time", function()
    local line, ok, err = here(), pcall(Async.html, "<p>\n{{ a b }}</p>")
    assert.is_false(ok)
    assert.equal(FILE .. ":" .. line .. ': template:2: bad expression "{{ a b }}": expected a dotted path like ' ..
      "user.name", check(err, "template-syntax"))
    assert.equal(2, err.template_line)
  end)

  it("a template error at render time", function()
    local page = Async.html("<p>{{ a.b }}</p>")
    local line, ok, err = here(), pcall(function() return page({ a = "s" }) end)
    assert.is_false(ok)
    assert.equal(FILE .. ":" .. line .. ': template:1: cannot index a (a string) with "b"',
      check(err, "template-render"))
  end)

  it("a misuse of an argument", function()
    local line, ok, err = here(), pcall(Async.define_route, 5)
    assert.is_false(ok)
    assert.equal(FILE .. ":" .. line .. ": define_route expects a partial id string, got 5",
      check(err, "invalid-argument"))
  end)

  it("a computed that reads itself through the registry", function()
    local rt = Async.create_app(Async.define_app())
    rt.signals:computed("c", function(s) local v = s:get("c"); return v end)
    local ok, err = pcall(function() return rt.signals:get("c") end)
    assert.is_false(ok)
    local text = check(err, "cycle-detected")
    assert.truthy(text:find("^" .. FILE:gsub("%p", "%%%0") .. ":%d+: Cycle detected: a computed read itself"), text)
    assert.is_nil(text:find("registry.lua", 1, true))
  end)
end)

describe("the kernel's own errors are the library's error type, at the caller's line", function()
  local function located(err, code, line, message)
    local text = check(err, code)
    assert.equal(FILE .. ":" .. line .. ": " .. message, text)
  end

  it("a computed that reads itself (Async.computed, no registry)", function()
    local c, line
    c = Async.computed(function() line = here(); local v = c(); return v end)
    local ok, err = pcall(function() return c() end)
    assert.is_false(ok)
    -- the read that found the cycle is in the computed's getter: its line,
    -- not kernel/graph.lua's
    located(err, "cycle-detected", line, "Cycle detected: a computed read itself")
  end)

  it("a write inside a computed", function()
    local s = Async.signal(1)
    local line
    local c = Async.computed(function() line = here(); s:set(2); return 1 end)
    local ok, err = pcall(c)
    assert.is_false(ok)
    located(err, "write-in-computed", line, "Cannot write to a signal inside a computed")
  end)

  it("bad arguments to the kernel's entry points", function()
    local line, ok, err = here(), pcall(Async.batch, 5)
    assert.is_false(ok)
    located(err, "invalid-argument", line, "batch expects a function, got number")
    line, ok, err = here(), pcall(function() Async.create_scheduler({ strategy = "eager" }) end)
    assert.is_false(ok)
    located(err, "invalid-argument", line, "unknown scheduler strategy 'eager' (expected sync, manual or loop)")
    line, ok, err = here(), pcall(function() Async.manual_loop():timer(-1, function() end) end)
    assert.is_false(ok)
    located(err, "invalid-argument", line, "timer: ms must be a number >= 0, got -1")
  end)

  it("a scheduler that never settles reports a max-depth error to the caller", function()
    local s = Async.create_scheduler({ strategy = "manual", max_depth = 3 })
    local function again() s:enqueue("effect", again) end
    s:enqueue("effect", again)
    local ok, err = pcall(s.flush, s)
    assert.is_false(ok)
    check(err, "max-depth")
    assert.truthy(tostring(err):find("exceeded max_depth (3 passes)", 1, true))
  end)

  it("a forged handle id at the C boundary", function()
    local a = Async.async_signal(function() return 1 end)
    a.id = -2
    local line, ok, err = here(), pcall(function() a:set(2) end)
    assert.is_false(ok)
    located(err, "bad-id", line, "async: bad id (-2) publishing an async signal")
  end)
end)

describe("errors raised by user code pass through unchanged", function()
  it("a table a handler raises reaches the caller as it was raised", function()
    local mine = { code = "mine" }
    local app = Async.define_app({ partial = { page = function() error(mine) end },
      route = { ["/"] = Async.define_route("page") } })
    local ok, err = pcall(Async.create_app(app).render, Async.create_app(app), "/")
    assert.is_false(ok)
    assert.equal(mine, err)
  end)

  it("a string a computed raises keeps its own position", function()
    local rt = Async.create_app(Async.define_app())
    rt.signals:computed("c", function() error("mine") end)
    local ok, err = pcall(rt.signals.get, rt.signals, "c")
    assert.is_false(ok)
    assert.truthy(err:find("robust_errors_spec.lua:%d+: mine$"))
  end)
end)

describe("errors in envelopes", function()
  it("carry name, code and message, never the server's file and line", function()
    local rt = Async.create_app(Async.define_app({ server = { get = function(self)
      return self.signals:get("missing")
    end } }), { env = "production" })
    local env = rt:call("get", {}, { signals = {} })
    assert.same({ name = "AsyncError", code = "signal-not-registered",
                  message = 'Signal "missing" is not registered.' }, env.error)
  end)

  it("a misuse of the API is an internal error in production", function()
    local rt = Async.create_app(Async.define_app({ server = { get = function(self)
      return self.cache:get(5)
    end } }), { env = "production" })
    assert.same({ name = "Error", code = "runtime-error", message = "Internal server error" }, rt:call("get").error)
  end)
end)
