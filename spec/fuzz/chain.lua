-- Fuzz driver for async.chain (command chains, protocol.md "Command chains").
--
--   luajit spec/fuzz/chain.lua               -- short run (2,000 inputs)
--   FUZZ_LONG=1 luajit spec/fuzz/chain.lua   -- long run (100,000 inputs)
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...    -- replay one input
--
-- Inputs: chains generated from the grammar (random whitespace, empty steps,
-- odd but legal names and paths), the same chains mutated byte-wise, random
-- bytes and hostile strings, and non-string values.
-- Checks: parse never raises; a refusal is nil + { code =
-- "invalid-handler-command", message naming the chain }; a generated chain
-- parses to exactly the steps it was generated from; every accepted chain
-- obeys the grammar (kinds, server ids, arguments match ^[^\s,();]+$, event
-- locals known, $event/$el never in a server step) and re-parses to the same
-- steps when printed back.

local modname = ...
local is_script = type(modname) ~= "string" or not modname:find("fuzz%.chain$")
if is_script then package.path = "./spec/?.lua;" .. package.path end
local util = require("fuzz.util")
if is_script then util.script_paths() end

local chain = require("async.app.chain")

local concat = table.concat
local find, sub, format = string.find, string.sub, string.format
local deep_equal, show = util.deep_equal, util.show

local BUILTIN_NAMES = { "prevent", "preventDefault", "stopPropagation", "stopImmediatePropagation" }
local SERVER_LOCALS = { "$value", "$checked", "$form", "$dataset" }
local ALL_LOCALS = { "$value", "$checked", "$form", "$dataset", "$event", "$el" }

-- characters a name segment / signal path may hold (no whitespace , ( ) ; .)
local NAME_CHARS = { "a", "b", "x", "Z", "_", "-", "9", "0", ":", "$", "'", '"', "<", ">", "/", "%", "\195\169",
  "\226\130\172", "[", "]", "{", "}", "=", "!", "@", "#", "&", "*", "+", "?", "\\", "`", "|", "~", "^" }
local PATH_CHARS = { "a", "b", "x", ".", "_", "-", "1", "0", "$", "[", "]", "'", '"', "<", "/", "\195\169", "=",
  ":", "%", "{", "}" }

local function word(r, chars, len)
  local b = {}
  for k = 1, len do b[k] = r:pick(chars) end
  return concat(b)
end

-- a handler/server name segment (no ".", no leading "$" for the first)
local function segment(r)
  local s = word(r, NAME_CHARS, r:int(1, 6))
  if r:int(3) > 1 then s = r:pick({ "go", "save", "cart", "add", "products", "x1", "on_click" }) end
  return s
end

local function dotted(r)
  local segs = {}
  for k = 1, r:int(1, 3) do segs[k] = segment(r) end
  return concat(segs, ".")
end

local function gen_arg(r, server)
  if r:one_in(3) then
    return { kind = "local", name = r:pick(server and SERVER_LOCALS or ALL_LOCALS) }
  end
  local p
  if r:int(3) > 1 then
    p = r:pick({ "productId", "draft.title", "rows.1.qty", "cart.$loading", "a", "x.y.z", "router.params.id" })
  else
    p = word(r, PATH_CHARS, r:int(1, 8))
  end
  if sub(p, 1, 1) == "$" then p = "s" .. p end
  return { kind = "signal", path = p }
end

local function gen_args(r, server)
  local args = {}
  for k = 1, r:pick({ 0, 0, 1, 1, 2, 3, 5 }) do args[k] = gen_arg(r, server) end
  return args
end

-- One step as data.
local function gen_step(r)
  local k = r:int(10)
  if k <= 2 then
    return { kind = "builtin", name = r:pick(BUILTIN_NAMES) }
  elseif k <= 6 then
    local id = dotted(r)
    return { kind = "server", id = id, args = gen_args(r, true) }
  end
  local name
  repeat
    name = dotted(r)
    if sub(name, 1, 1) == "$" then name = "h" .. name end
  until not chain.BUILTINS[name] and name ~= "server" and sub(name, 1, 7) ~= "server."
  return { kind = "handler", name = name, args = gen_args(r, false) }
end

local function ws(r)
  local k = r:int(8)
  if k <= 4 then return "" end
  return r:pick({ " ", "  ", "\t", "\n", " \n\t", "\r\n", "\f", "\v" })
end

-- Prints steps back as chain text (with random spacing when r is given).
local function render(steps, r)
  local out = {}
  local function w() return r and ws(r) or "" end
  for i, st in ipairs(steps) do
    if r and r:one_in(5) then out[#out + 1] = w() .. ";" end -- an empty step
    local head
    if st.kind == "builtin" then
      head = st.name
      if r and r:one_in(3) then head = head .. w() .. "(" .. w() .. ")" end
    else
      head = st.kind == "server" and ("server." .. st.id) or st.name
      local parts = {}
      for j, a in ipairs(st.args) do parts[j] = w() .. (a.kind == "local" and a.name or a.path) .. w() end
      if st.kind == "server" or #st.args > 0 or (r and r:one_in(2)) then
        head = head .. w() .. "(" .. concat(parts, ",") .. (#parts == 0 and w() or "") .. ")"
      end
    end
    out[#out + 1] = w() .. head .. w()
    if i < #steps or (r and r:one_in(3)) then out[#out + 1] = ";" end
  end
  return concat(out)
end

local PIECES = { ";", "(", ")", ",", ".", "server.", "server", "$event", "$el", "$form", "$bogus", " ", "()",
  "prevent", "(a,b)", "((", "))", ";;", "\0", "\n", "$", "server.x", "server.a.b(", ",,", "..", "\194\160" }

local function valid_id(id)
  -- protocol: ^[^.\s();]+(\.[^.\s();]+)*$
  if id == "" or find(id, "[%s();]") then return false end
  for seg in (id .. "."):gmatch("([^.]*)%.") do
    if seg == "" then return false end
  end
  return true
end

-- Checks an accepted chain's steps against the grammar; returns nil or a failure.
local function check_steps(steps)
  if type(steps) ~= "table" then return "parse returned a " .. type(steps) end
  for i, st in ipairs(steps) do
    local where = format("step %d (%s)", i, show(st))
    if st.kind == "builtin" then
      if not chain.BUILTINS[st.name] then return where .. ": unknown built-in" end
      if st.args ~= nil then return where .. ": a built-in with args" end
    elseif st.kind == "server" or st.kind == "handler" then
      if st.kind == "server" and not valid_id(st.id) then return where .. ": bad server id" end
      if st.kind == "handler" then
        if type(st.name) ~= "string" or st.name == "" or find(st.name, "[%s();,]") or sub(st.name, 1, 1) == "$"
            or not valid_id(st.name) then
          return where .. ": bad handler name"
        end
        if chain.BUILTINS[st.name] then return where .. ": built-in parsed as a handler" end
        if st.name == "server" or sub(st.name, 1, 7) == "server." then return where .. ": server step as handler" end
      end
      if type(st.args) ~= "table" then return where .. ": no args table" end
      for j, a in ipairs(st.args) do
        local text = a.kind == "local" and a.name or a.path
        if type(text) ~= "string" or not text:match("^[^%s,();]+$") then
          return where .. format(": argument %d %s does not match ^[^\\s,();]+$", j, show(text))
        end
        if a.kind == "local" then
          if not chain.LOCALS[a.name] then return where .. ": unknown local " .. a.name end
          if st.kind == "server" and chain.CLIENT_ONLY[a.name] then
            return where .. ": " .. a.name .. " reaches a server step"
          end
        elseif a.kind == "signal" then
          if sub(a.path, 1, 1) == "$" then return where .. ": a $ signal path" end
        else
          return where .. ": argument of kind " .. tostring(a.kind)
        end
      end
    else
      return where .. ": unknown step kind"
    end
  end
  return nil
end

-- Parses s under pcall; returns steps or nil, failure message or nil, err.
local function parse(s)
  local ok, steps, err = pcall(chain.parse, s)
  if not ok then return nil, "parse raised: " .. tostring(steps) end
  if steps == nil then
    if not chain.is_error(err) then return nil, "refusal without an invalid-handler-command error: " .. show(err) end
    if type(err.message) ~= "string" then return nil, "error without a message" end
    if type(s) == "string" and not find(err.message, s, 1, true) then
      return nil, "error message does not name the chain: " .. err.message
    end
    if type(s) ~= "string" and not find(err.message, type(s), 1, true) then
      return nil, "error message does not name the type: " .. err.message
    end
    local tok, text = pcall(tostring, err)
    -- the library's error type: tostring is the message (a returned error has no position)
    if not tok or text ~= err.message or err.code ~= "invalid-handler-command" then
      return nil, "tostring(err) is wrong"
    end
    return nil, nil, err
  end
  return steps
end

local function one(r)
  local k = r:int(20)
  if k == 1 then
    local v = r:pick({ 1, true, {}, function() end, 0 / 0 })
    local steps, failure = parse(v)
    if steps then return "a " .. type(v) .. " parsed", tostring(v) end
    return failure, tostring(v), "refused"
  end
  local expected, s
  if k <= 10 then
    expected = {}
    for i = 1, r:int(0, 4) do expected[i] = gen_step(r) end
    s = render(expected, r)
  elseif k <= 17 then
    local steps = {}
    for i = 1, r:int(1, 4) do steps[i] = gen_step(r) end
    s = util.mutate(r, render(steps, r), PIECES)
  elseif k <= 19 then
    local b = {}
    for i = 1, r:int(0, 24) do b[i] = r:one_in(2) and r:pick(PIECES) or r:pick(util.ODD) end
    s = concat(b)
  else
    s = r:bytes(r:int(0, 40))
  end
  local steps, failure = parse(s)
  if failure then return failure, show(s) end
  if expected then
    if not steps then return "a generated chain was refused", show(s) .. "\nexpected " .. show(expected) end
    if not deep_equal(steps, expected) then
      return "parsed steps differ from the generated ones: " .. show(steps), show(s) .. "\nexpected " .. show(expected)
    end
  end
  if not steps then return nil, s, "refused" end
  local bad = check_steps(steps)
  if bad then return bad, show(s) end
  -- accepted: printing back and re-parsing gives the same steps
  local again = render(steps)
  local steps2, f2 = parse(again)
  if f2 or not steps2 or not deep_equal(steps, steps2) then
    return "re-parse of the printed chain differs (" .. tostring(f2) .. "): " .. show(again), show(s)
  end
  return nil, s, expected and "generated" or "accepted"
end

local driver = { name = "chain", one = one }
driver.render = render

if is_script then util.main(driver) end

return driver
