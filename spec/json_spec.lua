-- lua-api.md "JSON" (async.json): empty arrays, Async.null, script-safe
-- escaping, depth limits, errors. Rows are { name, input, expected }.
local Async = require("async")
local json = require("async.app.json")

describe("json.encode", function()
  local cases = {
    { "an empty table is an object", {}, "{}" },
    { "json.array() is an empty array", json.array(), "[]" },
    { "json.array(t) keeps its items", json.array({ 1, 2 }), "[1,2]" },
    { "keys 1..n are an array", { "a", "b", "c" }, '["a","b","c"]' },
    { "a hole makes an object", { [1] = "a", [3] = "c" }, '{"1":"a","3":"c"}' },
    { "mixed keys make an object, keys sorted", { 1, x = 2 }, '{"1":1,"x":2}' },
    { "nested empty arrays", { items = json.array(), meta = {} }, '{"items":[],"meta":{}}' },
    { "Async.null is null", { a = Async.null }, '{"a":null}' },
    { "json.null is Async.null", json.null, "null" },
    { "nil at top level", nil, "null" },
    { "booleans", { true, false }, "[true,false]" },
    { "integers", { 0, -7, 1e14 }, "[0,-7,100000000000000]" },
    { "decimals", { 0.1, -2.5, 1 / 3 }, "[0.1,-2.5,0.33333333333333331]" },
    { "large numbers", { 1e300 }, "[1e+300]" },
    { "string escapes", '"\\\n\r\t\b\f', '"\\"\\\\\\n\\r\\t\\b\\f"' },
    { "control characters", "\1\31", '"\\u0001\\u001f"' },
    { "utf-8 passes through", "café", '"café"' },
    { "< > & outside script mode stay", "</script><b>&", '"</script><b>&"' },
  }
  for _, c in ipairs(cases) do
    it(c[1], function() assert.equal(c[3], json.encode(c[2])) end)
  end

  local script = {
    { "< becomes \\u003c", "</script><!--", '"\\u003c/script>\\u003c!--"' },
    { "in keys too", { ["<k"] = "<v" }, '{"\\u003ck":"\\u003cv"}' },
    { "U+2028 and U+2029", "a\226\128\168b\226\128\169", '"a\\u2028b\\u2029"' },
  }
  for _, c in ipairs(script) do
    it("script = true: " .. c[1], function()
      local out = json.encode(c[2], { script = true })
      assert.equal(c[3], out)
      assert.is_nil(out:find("<", 1, true))
    end)
  end

  local errors = {
    { "a function", { f = print }, "json: cannot encode a value of type function" },
    { "NaN", { 0 / 0 }, "json: cannot encode nan" },
    { "infinity", { math.huge }, "json: cannot encode inf" },
    { "a table key", { [{}] = 1 }, "json: cannot encode a table key of type table" },
    { "a boolean key", { [true] = 1 }, "json: cannot encode a table key of type boolean" },
  }
  for _, c in ipairs(errors) do
    it("raises on " .. c[1], function()
      local ok, err = pcall(json.encode, c[2])
      assert.is_false(ok)
      -- the library's error type (lua-api.md "Errors"): message without position
      assert.equal(c[3], (err.message:gsub("-nan", "nan")))
      assert.equal("json-encode", err.code)
    end)
  end

  it("raises on a cycle instead of looping", function()
    local t = {}
    t.self = t
    local ok, err = pcall(json.encode, t)
    assert.is_false(ok)
    assert.equal("json: nesting deeper than 100 (a cycle?)", err.message)
  end)
end)

describe("json.decode", function()
  local cases = {
    { "an object", '{"a":1,"b":"x"}', { a = 1, b = "x" } },
    { "an array", "[1,2,3]", { 1, 2, 3 } },
    { "null is json.null", '{"a":null}', { a = json.null } },
    { "unicode escapes and surrogate pairs", '"\\u00e9\\ud83d\\ude00"', "é😀" },
    { "an empty array", "[]", {} },
    { "nested", '{"a":{"b":[true,false]}}', { a = { b = { true, false } } } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function() assert.are.same(c[3], json.decode(c[2])) end)
  end

  -- { name, input, re-encoded }
  local round = {
    { "empty arrays stay arrays", '{"items":[],"meta":{}}', '{"items":[],"meta":{}}' },
    { "an empty array inside an array", "[[],[1]]", "[[],[1]]" },
    { "spaces inside []", '{"a":[ ]}', '{"a":[]}' },
    { "strings and numbers in a Lua-decoded document", '{"a":[],"s":"x\\n\\"y","n":-1.5e3,"t":true,"z":null}',
      '{"a":[],"n":-1500,"s":"x\\n\\"y","t":true,"z":null}' },
    { "without empty arrays (cjson)", '{"a":[1],"b":{}}', '{"a":[1],"b":{}}' },
  }
  for _, c in ipairs(round) do
    it("round trip: " .. c[1], function()
      assert.equal(c[3], json.encode(json.decode(c[2])))
    end)
  end

  -- { name, input, opts, message } (both decoders answer nil, message)
  local bad = {
    { "a truncated array", "[1,2", nil, "Expected comma or array end but found T_END at character 5" },
    { "trailing data", "[1] x", nil, "Expected the end but found invalid token at character 5" },
    { "trailing data (Lua decoder)", "[] x", nil, "Expected the end but found invalid token at character 4" },
    { "a bad token (Lua decoder)", "[[], x]", nil, "Expected value but found invalid token at character 6" },
    { "empty input", "", nil, "Expected value but found T_END at character 1" },
    { "too deep (default 64)", ("["):rep(65) .. ("]"):rep(65), nil,
      "Found too many nested data structures (65) at character 65" },
    { "too deep (max_depth)", "[[[[1]]]]", { max_depth = 3 },
      "Found too many nested data structures (4) at character 4" },
    { "too deep with an empty array", "[[[[]]]]", { max_depth = 3 },
      "Found too many nested data structures (4) at character 4" },
    { "not a string", 5, nil, "expected a JSON string, got number" },
  }
  for _, c in ipairs(bad) do
    it("fails on " .. c[1], function()
      local v, err = json.decode(c[2], c[3])
      assert.is_nil(v)
      assert.equal(c[4], err)
    end)
  end

  it("64 levels are allowed by default", function()
    assert.is_table(json.decode(("["):rep(64) .. ("]"):rep(64)))
    assert.is_table(json.decode(("["):rep(63) .. "1" .. ("]"):rep(63)))
  end)
end)
