-- Command chain parser (protocol.md, "Command chains").
local chain = require("async.app.chain")

local function sig(path) return { kind = "signal", path = path } end
local function loc(name) return { kind = "local", name = name } end
local function builtin(name) return { kind = "builtin", name = name } end
local function handler(name, args) return { kind = "handler", name = name, args = args or {} } end
local function server(id, args) return { kind = "server", id = id, args = args or {} } end

describe("chain.parse", function()
  -- { chain, expected steps }
  local ok_cases = {
    { "increment", { handler("increment") } },
    { "increment()", { handler("increment") } },
    { "increment( )", { handler("increment") } },
    { "  increment  ", { handler("increment") } },
    { "", {} },
    { " ; ;; ", {} },
    { "save(productId)", { handler("save", { sig("productId") }) } },
    { "save ( a , b )", { handler("save", { sig("a"), sig("b") }) } },
    { "cart.add(cart.items.0.id, $value)", { handler("cart.add", { sig("cart.items.0.id"), loc("$value") }) } },
    { "pick($event, $el)", { handler("pick", { loc("$event"), loc("$el") }) } },
    { "Toggle.1.toggle", { handler("Toggle.1.toggle") } },
    { "prevent", { builtin("prevent") } },
    { "preventDefault", { builtin("preventDefault") } },
    { "preventDefault()", { builtin("preventDefault") } },
    { "stopPropagation; stopImmediatePropagation",
      { builtin("stopPropagation"), builtin("stopImmediatePropagation") } },
    { "preventDefault; server.products.save(productId, $form)",
      { builtin("preventDefault"), server("products.save", { sig("productId"), loc("$form") }) } },
    { "preventDefault; server.products.save(productId, $form); increment",
      { builtin("preventDefault"), server("products.save", { sig("productId"), loc("$form") }),
        handler("increment") } },
    { "server.ping()", { server("ping") } },
    { "server.a-b.c_d:e()", { server("a-b.c_d:e") } },
    { "server.x($value,$checked,$form,$dataset)",
      { server("x", { loc("$value"), loc("$checked"), loc("$form"), loc("$dataset") }) } },
    { "server.cart.add(product.$status)", { server("cart.add", { sig("product.$status") }) } },
    { "a;b\n;\tc", { handler("a"), handler("b"), handler("c") } },
    -- no literals: whatever matches ^[^\s,();]+$ and is not a $local is a signal path
    { "save('x', 1+1)", { handler("save", { sig("'x'"), sig("1+1") }) } },
  }
  for _, case in ipairs(ok_cases) do
    it(string.format("parses %q", case[1]), function()
      local steps, err = chain.parse(case[1])
      assert.is_nil(err)
      assert.are.same(case[2], steps)
    end)
  end

  -- { chain, expected message }
  local bad_cases = {
    { "server.products.save",
      'Invalid command chain "server.products.save": step 1 "server.products.save": '
        .. "a server call needs parentheses, as in server.products.save()" },
    { "preventDefault; server.x",
      'Invalid command chain "preventDefault; server.x": step 2 "server.x": '
        .. "a server call needs parentheses, as in server.x()" },
    { "server.(a)", 'Invalid command chain "server.(a)": step 1 "server.(a)": '
        .. "a server call needs an id, as in server.products.save()" },
    { "server", 'Invalid command chain "server": step 1 "server": '
        .. "a server call needs an id, as in server.products.save()" },
    { "server..x()", 'Invalid command chain "server..x()": step 1 "server..x()": bad server id ".x"' },
    { "server.a..b()", 'Invalid command chain "server.a..b()": step 1 "server.a..b()": bad server id "a..b"' },
    { "server.a.()", 'Invalid command chain "server.a.()": step 1 "server.a.()": bad server id "a."' },
    { "server.a b()", 'Invalid command chain "server.a b()": step 1 "server.a b()": bad server id "a b"' },
    { "server.x($event)", 'Invalid command chain "server.x($event)": step 1 "server.x($event)": '
        .. "$event cannot be sent to the server" },
    { "a; server.x(id, $el)", 'Invalid command chain "a; server.x(id, $el)": step 2 "server.x(id, $el)": '
        .. "$el cannot be sent to the server" },
    { "save(a,,b)", 'Invalid command chain "save(a,,b)": step 1 "save(a,,b)": argument 2 is empty' },
    { "save(a,)", 'Invalid command chain "save(a,)": step 1 "save(a,)": argument 2 is empty' },
    { "save(,a)", 'Invalid command chain "save(,a)": step 1 "save(,a)": argument 1 is empty' },
    { "save(a b)", 'Invalid command chain "save(a b)": step 1 "save(a b)": '
        .. 'bad argument "a b": arguments are signal paths or event locals' },
    { "save($foo)", 'Invalid command chain "save($foo)": step 1 "save($foo)": '
        .. 'unknown event local "$foo" (known: $value, $checked, $form, $dataset, $event, $el)' },
    { "save(a", 'Invalid command chain "save(a": step 1 "save(a": missing ")"' },
    { "save(a(b))", 'Invalid command chain "save(a(b))": step 1 "save(a(b))": '
        .. 'unexpected "(" inside the arguments' },
    { "save(a) x", 'Invalid command chain "save(a) x": step 1 "save(a) x": unexpected text after ")"' },
    { "save)", 'Invalid command chain "save)": step 1 "save)": bad handler name "save)"' },
    { "(a)", 'Invalid command chain "(a)": step 1 "(a)": bad handler name ""' },
    { "a b", 'Invalid command chain "a b": step 1 "a b": bad handler name "a b"' },
    { "$value", 'Invalid command chain "$value": step 1 "$value": bad handler name "$value"' },
    { "a,b", 'Invalid command chain "a,b": step 1 "a,b": bad handler name "a,b"' },
    { ".a", 'Invalid command chain ".a": step 1 ".a": bad handler name ".a"' },
    { "prevent(x)", 'Invalid command chain "prevent(x)": step 1 "prevent(x)": built-in "prevent" takes no arguments' },
    { ";; a ;; b c", 'Invalid command chain ";; a ;; b c": step 2 "b c": bad handler name "b c"' },
  }
  for _, case in ipairs(bad_cases) do
    it(string.format("rejects %q", case[1]), function()
      local steps, err = chain.parse(case[1])
      assert.is_nil(steps)
      -- the library's one error type (lua-api.md "Errors"): a returned error
      -- has no position, and tostring no longer starts with the code
      assert.are.same({ name = "AsyncError", code = "invalid-handler-command", message = case[2] }, err)
      assert.are.equal(case[2], tostring(err))
      assert.is_true(chain.is_error(err))
    end)
  end

  it("rejects a non-string", function()
    local steps, err = chain.parse(nil)
    assert.is_nil(steps)
    assert.are.equal("Invalid command chain: expected a string, got nil", err.message)
  end)
end)

describe("chain.check", function()
  it("returns the steps", function()
    assert.are.same({ builtin("prevent"), handler("go") }, chain.check("prevent; go"))
  end)

  it("raises the error table", function()
    local ok, err = pcall(chain.check, "server.x")
    assert.is_false(ok)
    assert.are.equal("invalid-handler-command", err.code)
    assert.are.equal('Invalid command chain "server.x": step 1 "server.x": '
      .. "a server call needs parentheses, as in server.x()", err.message)
  end)
end)
