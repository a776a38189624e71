--- Error values of the app layer, shaped like the seed's AsyncError:
-- `{ name = "AsyncError", code = "handler-not-registered", message = "...",
-- hint = "Register via Async.use({ handler })" }`. They are raised as tables
-- (`error(e, level)`), print as their message (`tostring(e)`), and are what
-- an error envelope's `error` field is built from.
local setmetatable, getmetatable, tostring, type, pairs = setmetatable, getmetatable, tostring, type, pairs

local _M = {}

local AsyncError = {}
AsyncError.__index = AsyncError
AsyncError.__tostring = function(e)
  local s = tostring(e.message)
  if e.code ~= nil then s = tostring(e.code) .. ": " .. s end
  if e.hint ~= nil then s = s .. " (" .. tostring(e.hint) .. ")" end
  return s
end

--- A new error value; `hint` is optional.
function _M.new(code, message, hint)
  return setmetatable({ name = "AsyncError", code = code, message = message, hint = hint }, AsyncError)
end

--- An error value from an envelope's `error` table ({ name=, message=,
-- code=, hint= }), so it can be raised and printed.
function _M.from(t)
  local e = setmetatable({}, AsyncError)
  for k, v in pairs(t) do e[k] = v end
  if e.name == nil then e.name = "Error" end
  return e
end

--- Is `e` an error value made by `new`?
function _M.is(e)
  return type(e) == "table" and getmetatable(e) == AsyncError
end

--- Raises `new(code, message, hint)` at `level` (default 1: the caller of raise's caller).
function _M.raise(code, message, hint, level)
  error(_M.new(code, message, hint), (level or 1) + 1)
end

--- The message of any raised value.
function _M.message(e)
  if type(e) == "table" and e.message ~= nil then return tostring(e.message) end
  return tostring(e)
end

return _M
