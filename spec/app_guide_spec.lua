-- docs/app-guide.md: every ```lua block runs as written, each in a fresh
-- environment (its own globals table over _G) on a manual loop.
local Async = require("async")
local loop_mod = require("async.loop")

local function blocks(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  local out, line = {}, 1
  local pos = 1
  while true do
    local s, e = text:find("```lua\n", pos, true)
    if not s then break end
    local close = text:find("\n```", e, true)
    assert(close, "unclosed ```lua block")
    local _, nl = text:sub(pos, s):gsub("\n", "")
    line = line + nl
    out[#out + 1] = { line = line, code = text:sub(e + 1, close) }
    local _, inner = text:sub(s + 1, close):gsub("\n", "")
    line = line + inner
    pos = close + 1
  end
  return out
end

describe("docs/app-guide.md snippets", function()
  local prev_loop
  before_each(function()
    prev_loop = loop_mod.get_loop()
    Async.set_loop(Async.manual_loop())
  end)
  after_each(function() Async.set_loop(prev_loop) end)

  local list = blocks("docs/app-guide.md")
  it("has snippets", function() assert.is_true(#list >= 10) end)
  for _, b in ipairs(list) do
    it("block at line " .. b.line, function()
      local env = setmetatable({}, { __index = _G })
      local fn, err = loadstring(b.code, "=app-guide.md:" .. b.line)
      assert(fn, err)
      setfenv(fn, env)
      fn()
    end)
  end
end)
