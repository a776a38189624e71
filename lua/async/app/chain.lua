-- async.chain: the command chain parser (protocol.md, "Command chains").
--
--   on:submit="preventDefault; server.products.save(productId, $form)"
--
-- parses to
--
--   { { kind = "builtin", name = "preventDefault" },
--     { kind = "server", id = "products.save",
--       args = { { kind = "signal", path = "productId" },
--                { kind = "local", name = "$form" } } } }
--
-- Steps are split on ";", trimmed, empty ones dropped. A step is `name`,
-- `name(args)` or `server.<id>(args)`; built-ins (`prevent`,
-- `preventDefault`, `stopPropagation`, `stopImmediatePropagation`) take no
-- arguments; any other name is a handler step
-- `{ kind = "handler", name =, args = }`. Arguments are split on "," and
-- trimmed; `$value $checked $form $dataset $event $el` are event locals
-- `{ kind = "local", name = }`, anything else a signal path
-- `{ kind = "signal", path = }`. `$event` and `$el` cannot be sent to the
-- server. No literals, no expressions.
--
-- The whole chain is parsed before anything runs: `parse` returns the steps
-- or `nil, err`; `check` returns the steps or raises err. err is
-- `{ code = "invalid-handler-command", message = "..." }` (tostring() gives
-- "invalid-handler-command: <message>").

local type, error, format = type, error, string.format
local errors = require("async.kernel.errors")
local find, sub, match, gmatch = string.find, string.sub, string.match, string.gmatch

local _M = {}

local CODE = "invalid-handler-command"
_M.CODE = CODE

local BUILTINS = {
  prevent = true, preventDefault = true, stopPropagation = true, stopImmediatePropagation = true,
}
_M.BUILTINS = BUILTINS

local LOCALS = { ["$value"] = true, ["$checked"] = true, ["$form"] = true, ["$dataset"] = true,
                 ["$event"] = true, ["$el"] = true }
local CLIENT_ONLY = { ["$event"] = true, ["$el"] = true }
_M.LOCALS = LOCALS
_M.CLIENT_ONLY = CLIENT_ONLY

-- the library's one error type (kernel/errors.lua), code invalid-handler-command
local function make_error(message)
  return errors.new(CODE, message)
end

local function trim(s)
  return match(s, "^%s*(.-)%s*$")
end

-- True when id matches ^[^.\s();]+(\.[^.\s();]+)*$ (the protocol's server id).
local function valid_dotted(id, extra)
  if id == "" or find(id, "[%s();" .. extra .. "]") then return false end
  if sub(id, 1, 1) == "." or sub(id, -1) == "." or find(id, "..", 1, true) then return false end
  return true
end

local function valid_server_id(id)
  return valid_dotted(id, "")
end
_M.valid_server_id = valid_server_id

-- Parses the text between the parentheses; returns args or nil, reason.
local function parse_args(inner, server)
  local args = {}
  if trim(inner) == "" then return args end
  local i = 0
  for raw in gmatch(inner .. ",", "([^,]*),") do
    i = i + 1
    local a = trim(raw)
    if a == "" then
      return nil, format("argument %d is empty", i)
    elseif find(a, "[%s,();]") then
      return nil, format('bad argument "%s": arguments are signal paths or event locals', a)
    elseif sub(a, 1, 1) == "$" then
      if not LOCALS[a] then
        return nil, format('unknown event local "%s" (known: $value, $checked, $form, $dataset, $event, $el)', a)
      end
      if server and CLIENT_ONLY[a] then
        return nil, format("%s cannot be sent to the server", a)
      end
      args[i] = { kind = "local", name = a }
    else
      args[i] = { kind = "signal", path = a }
    end
  end
  return args
end

-- Parses one trimmed, non-empty step; returns the step or nil, reason.
local function parse_step(s)
  local name, args_text
  local open = find(s, "(", 1, true)
  if open then
    name = trim(sub(s, 1, open - 1))
    local close = find(s, ")", open + 1, true)
    if not close then return nil, 'missing ")"' end
    args_text = sub(s, open + 1, close - 1)
    if find(args_text, "(", 1, true) then return nil, 'unexpected "(" inside the arguments' end
    if close ~= #s then return nil, 'unexpected text after ")"' end
  else
    name = s
  end
  if name == "server" or sub(name, 1, 7) == "server." then
    local id = sub(name, 8)
    if id == "" then
      return nil, "a server call needs an id, as in server.products.save()"
    end
    if not valid_server_id(id) then
      return nil, format('bad server id "%s"', id)
    end
    if not args_text then
      return nil, format("a server call needs parentheses, as in server.%s()", id)
    end
    local args, why = parse_args(args_text, true)
    if not args then return nil, why end
    return { kind = "server", id = id, args = args }
  end
  if sub(name, 1, 1) == "$" or not valid_dotted(name, ",") then
    return nil, format('bad handler name "%s"', name)
  end
  if BUILTINS[name] then
    if args_text and trim(args_text) ~= "" then
      return nil, format('built-in "%s" takes no arguments', name)
    end
    return { kind = "builtin", name = name }
  end
  local args = {}
  if args_text then
    local why
    args, why = parse_args(args_text, false)
    if not args then return nil, why end
  end
  return { kind = "handler", name = name, args = args }
end

-- Parses a chain; returns the array of steps, or nil and an error table.
function _M.parse(chain)
  if type(chain) ~= "string" then
    return nil, make_error(format("Invalid command chain: expected a string, got %s", type(chain)))
  end
  local steps, n, pos = {}, 0, 0
  for raw in gmatch(chain .. ";", "([^;]*);") do
    local s = trim(raw)
    if s ~= "" then
      pos = pos + 1
      local step, why = parse_step(s)
      if not step then
        return nil, make_error(format('Invalid command chain "%s": step %d "%s": %s', chain, pos, s, why))
      end
      n = n + 1
      steps[n] = step
    end
  end
  return steps
end

-- Like parse, but raises the error table.
function _M.check(chain)
  local steps, err = _M.parse(chain)
  if not steps then error(errors.locate(err), 0) end
  return steps
end

-- True when err is an error table made by this module.
function _M.is_error(err)
  return type(err) == "table" and err.code == CODE
end

return _M
