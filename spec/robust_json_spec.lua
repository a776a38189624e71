-- Robustness: json.decode has one decision path with one behaviour
-- (docs/app-guide.md "Robustness"). It used to pick cjson or a Lua decoder
-- depending on whether an empty array appeared anywhere in the text (even
-- inside a string), and the two disagreed on raw control characters.
local json = require("async.app.json")

describe("json.decode: one behaviour whatever else the document holds", function()
  -- { name, document without "[]", the same with "[]" somewhere }
  local pairs_of = {
    { "a raw tab inside a string", '{"a":"x\ty"}', '{"a":"x\ty","b":[]}' },
    { "a raw newline inside a string", '{"a":"x\ny"}', '{"a":"x\ny","b":[]}' },
    { "a raw carriage return inside a string", '{"a":"x\ry"}', '{"a":"x\ry","b":[]}' },
    { "a raw tab in a string that spells []", '["[]\t"]', '["[]\t",[]]' },
    { "a number like 1.", "[1.]", "[1.,[]]" },
    { "a number like .5", "[.5]", "[.5,[]]" },
    { "a number like 1e", "[1e]", "[1e,[]]" },
  }
  for _, c in ipairs(pairs_of) do
    it("refuses " .. c[1] .. " with or without an empty array", function()
      local v1, e1 = json.decode(c[2])
      local v2, e2 = json.decode(c[3])
      assert.is_nil(v1)
      assert.is_nil(v2)
      assert.is_string(e1)
      assert.is_string(e2)
    end)
  end

  it("names the control character's position", function()
    assert.same({ nil, "Invalid control character in string at character 8" },
      { json.decode('{"a":"x\ty"}') })
  end)

  it("accepts tab, CR and LF between tokens", function()
    assert.same({ a = { 1 } }, json.decode('{\t"a"\r\n:\n[1]\t}'))
  end)

  it("an empty array decodes to a table marked as an array, and re-encodes as []", function()
    for _, doc in ipairs({ "[]", '{"a":[]}', '{"a":[ ],"s":"no brackets here"}', "[[],{}]" }) do
      assert.equal((doc:gsub("%[ %]", "[]")), json.encode(json.decode(doc)))
    end
    assert.equal(json.array_mt, getmetatable(json.decode("[]")))
    assert.equal(json.array_mt, getmetatable(json.decode('{"a":[1]}').a))
  end)

  it("a string holding [] decodes like any other string", function()
    assert.same({ s = "[]" }, json.decode('{"s":"[]"}'))
    assert.same({ s = "[]", t = "a" }, json.decode('{"s":"[]","t":"a"}'))
  end)

  it("escaped control characters are accepted", function()
    assert.same({ a = "x\ty\n" }, json.decode('{"a":"x\\ty\\n"}'))
  end)
end)

describe("decoded arrays render like Lua arrays", function()
  it("a template renders an array that came from JSON", function()
    local html = require("async.html.template")
    assert.equal("<p>ab</p>", tostring(html.html("<p>{{ xs }}</p>")({ xs = json.decode('["a","b"]') })))
  end)
end)
