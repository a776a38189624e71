-- Fuzz driver for async.html (templates: html.compile(src)(env)).
--
--   luajit spec/fuzz/html.lua               -- short run (2,000 inputs)
--   FUZZ_LONG=1 luajit spec/fuzz/html.lua   -- long run (100,000 inputs)
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...   -- replay one input
--
-- Inputs: templates generated from a small HTML grammar with {{ path }} in
-- every context (text, quoted and unquoted attribute values, binding
-- attributes, <script>/<style>/<textarea>/<title>, comments), the same
-- mutated byte-wise, and random bytes; each rendered with an env of
-- hostile values (strings, arrays, nested tables, __tostring tables, signal
-- objects whose id is hostile, functions, cdata, userdata).
-- Checks: compile and render never raise anything but a "template:LINE: "
-- error (LINE within the template); no hostile string ever appears raw in
-- the output (unless the template itself holds it).

local modname = ...
local is_script = type(modname) ~= "string" or not modname:find("fuzz%.html$")
if is_script then package.path = "./spec/?.lua;" .. package.path end
local util = require("fuzz.util")
if is_script then util.script_paths() end

require("async") -- installs the ref resolver (signal object -> registered id)
local html = require("async.html.template")
local errors = require("async.kernel.errors")
local signals = require("async.app.registry")
local ffi = require("ffi")

local concat = table.concat
local find, match, rep, format = string.find, string.match, string.rep, string.format
local show = util.show

local HOSTILE = util.HOSTILE

-- ===== ENV =====

local CSTRUCT = ffi.typeof("struct { int a; }") -- once: each ffi.new of a struct literal adds a ctype

local SIG = setmetatable({}, { __tostring = function() return HOSTILE[1] end }) -- a "signal object"
signals.id_of[SIG] = HOSTILE[2]

local function make_env(r)
  local function h() return r:pick(HOSTILE) end
  return {
    h = h(), h2 = h(),
    arr = { h(), { h(), html.raw("<i>ok</i>") }, 1, true },
    obj = { h = h(), arr = { h(), h() }, deep = { deep = { h = h() } }, n = 3 },
    tostr = setmetatable({}, { __tostring = function() return h() end }),
    raw = html.raw("<b>trusted</b>"),
    num = r:pick({ 1.5, -0, 1e300, 0 / 0, 42 }),
    bool = r:one_in(2),
    fn = function() return h() end,
    cd = ffi.new("int64_t", 7),
    cstruct = CSTRUCT(1),
    ud = io.stdout,
    sig = SIG,
    map = { [h()] = true },
    str = "plain",
  }
end

-- ===== GENERATOR =====

local PATHS = { "h", "h2", "arr", "arr.1", "arr.2", "arr.2.1", "obj.h", "obj.arr", "obj.deep.deep.h", "obj.n",
  "tostr", "raw", "num", "bool", "nothing", "nothing.x.y", "sig", "map", "str", "h", "h", "obj.arr.2", "fn", "cd",
  "cd.x", "cstruct.a", "cstruct.b", "ud", "ud.x", "str.x", "num.x", "arr.9.x" }
local SAFE_PATHS = { "h", "h2", "arr", "obj.h", "obj.arr", "tostr", "raw", "num", "bool", "nothing", "sig", "str" }

local function expr(r)
  local p = r:pick(r:one_in(4) and PATHS or SAFE_PATHS)
  return "{{" .. r:pick({ "", " ", "  ", "\n" }) .. p .. r:pick({ "", " ", "\t" }) .. "}}"
end

local TAGS = { "div", "p", "a", "span", "input", "img", "ul", "li", "button", "section", "td" }
local ATTRS = { "class", "title", "href", "id", "value", "data-x", "alt", "signal:text", "class:on",
  "signal:attr:title", "on:click", "async:boundary", "data-signal-text" }

local function attr(r)
  local name = r:pick(ATTRS)
  local k = r:int(9)
  if k == 1 then return name end
  if k == 2 then return name .. '="static"' end
  if k == 3 then return name .. "=" .. expr(r) end
  if k == 4 then return name .. "='" .. expr(r) .. "'" end
  if k == 5 then return name .. '="a ' .. expr(r) .. ' b ' .. expr(r) .. '"' end
  if k == 6 then return name .. "=bare" end
  return name .. '="' .. expr(r) .. '"'
end

local function gen(r, depth, out)
  for _ = 1, r:int(0, depth > 3 and 1 or 4) do
    local k = r:int(14)
    if k <= 3 then
      out[#out + 1] = r:pick({ "text ", "a < b", "x > y", "&amp;", "\n", "it's", '"q"' })
    elseif k <= 6 then
      out[#out + 1] = expr(r)
    elseif k == 7 then
      local t = r:pick({ "script", "style", "textarea", "title" })
      out[#out + 1] = "<" .. t .. ">" .. r:pick({ "var x = ", "a < b ", "" }) .. expr(r)
        .. r:pick({ "", "</b>", " }" }) .. "</" .. t .. ">"
    elseif k == 8 then
      out[#out + 1] = "<!-- " .. expr(r) .. " -->"
    elseif k == 9 then
      out[#out + 1] = r:pick({ "<!doctype html>", "<br>", "<hr/>", "</p>", "<?x?>" })
    else
      local tag = r:pick(TAGS)
      local as = {}
      for i = 1, r:int(0, 3) do as[i] = attr(r) end
      out[#out + 1] = "<" .. tag .. (#as > 0 and " " .. concat(as, r:pick({ " ", "\n  ", "\t" })) or "")
        .. (r:one_in(6) and " />" or ">")
      if depth < 5 then gen(r, depth + 1, out) end
      out[#out + 1] = "</" .. tag .. ">"
    end
  end
end

local PIECES = { "{{", "}}", "{{ h }}", "{{ 1x }}", "{{ a..b }}", "{{ a.b() }}", "{{}}", "<", ">", "'", '"', "=",
  "<!--", "-->", "</script>", "<script>", "\n", "<a ", " b=", "{{ obj.h }}", "{", "}", "%", "\0", "\\" }

local function gen_template(r)
  local k = r:int(20)
  local out = {}
  gen(r, 0, out)
  local src = concat(out)
  if k <= 10 then return src, "generated" end
  if k <= 17 then return util.mutate(r, src, PIECES), "mutated" end
  if k == 18 then
    -- long paths, deep indexes, many expressions
    local m = r:int(4)
    if m == 1 then
      local n = r:int(2, 400)
      return "<p>{{ obj" .. rep(".deep", n) .. " }}</p>", "long path"
    elseif m == 2 then
      return "{{ arr." .. rep("9", r:int(1, 400)) .. " }}", "long number"
    elseif m == 3 then
      return rep("<b title=\"{{ h }}\">{{ arr }}</b>\n", r:int(50, 400)), "many expressions"
    end
    return rep("\n", r:int(0, 50)) .. "<a {{ h }}>", "long error line"
  end
  local b = {}
  for i = 1, r:int(0, 30) do b[i] = r:one_in(2) and r:pick(PIECES) or r:bytes(1) end
  return concat(b), "random"
end

-- ===== CHECKS =====

local function lines_of(src)
  local _, n = src:gsub("\n", "")
  return n + 1
end

-- nil when err is the library's error (kernel/errors.lua) whose message
-- reads "template:LINE: message" with LINE in range.
local function bad_error(err, src, what)
  if not errors.is(err) then return what .. " raised a " .. type(err) .. ": " .. show(err) end
  if tostring(err):find("^table: ") then return what .. " error prints as " .. tostring(err) end
  err = err.message
  local line = match(err, "^template:(%d+): ")
  if not line then return what .. " error without a template:LINE: position: " .. err end
  line = tonumber(line)
  if line < 1 or line > lines_of(src) then return format("%s error line %d out of range", what, line) end
  return nil
end

local function one(r)
  html.clear_cache() -- every input is new: keep the cache from growing
  local src, kind = gen_template(r)
  local ok, fn = pcall(html.compile, src, r:one_in(10) and { name = "template" } or nil)
  if not ok then
    local bad = bad_error(fn, src, "compile")
    if bad then return bad, show(src) end
    return nil, src, kind .. " (refused)"
  end
  local env = make_env(r)
  local out
  ok, out = pcall(function() return tostring(fn(env)) end)
  if not ok then
    local bad = bad_error(out, src, "render")
    if bad then return bad, show(src) end
    return nil, src, kind .. " (render error)"
  end
  if type(out) ~= "string" then return "render gave a " .. type(out), show(src) end
  for _, hs in ipairs(HOSTILE) do
    if not find(src, hs, 1, true) and find(out, hs, 1, true) then
      return "hostile value appears raw: " .. hs .. "\n--- output ---\n" .. out, show(src)
    end
  end
  return nil, src, kind
end

if is_script then util.main({ name = "html", one = one }) end

return { name = "html", one = one }
