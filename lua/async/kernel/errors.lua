--- The library's one error type (lua-api.md "Errors", STYLE.md "One error
-- convention"). Every error the library raises, or returns in an envelope,
-- is a table
--
--   { name = "AsyncError", code = "signal-not-registered",
--     message = 'Signal "x" is not registered.',
--     hint = "Register it via ...",          -- optional
--     source = "spec/app_spec.lua", line = 12 }  -- raised ones: the caller's line
--
-- whose tostring() reads like a Lua error, "spec/app_spec.lua:12: Signal "x"
-- is not registered. (Register it via ...)", never "table: 0x...".
--
-- The caller's line is the first frame on the stack that is not the
-- library's own code (a file under the directory this module was loaded
-- from, lua/async/), not C and not a template the library compiled: the
-- line of the app or spec that called into the library, however deep the
-- library's own calls went (Async.use -> hub:use -> validate -> ...). So a
-- raise site never counts levels, and a facade that re-raises (pcall +
-- error(e)) keeps the position. Errors raised by user code are never made
-- here and pass through unchanged.
local setmetatable, getmetatable, tostring, type, pairs, error = setmetatable, getmetatable, tostring, type, pairs,
  error
local getinfo = debug.getinfo
local sub, find = string.sub, string.find

local _M = {}

local AsyncError = {}
AsyncError.__index = AsyncError
AsyncError.__tostring = function(e)
  local s = tostring(e.message)
  if e.line ~= nil then s = tostring(e.source or "?") .. ":" .. tostring(e.line) .. ": " .. s end
  if e.hint ~= nil then s = s .. " (" .. tostring(e.hint) .. ")" end
  return s
end
_M.mt = AsyncError

-- "@/path/to/lua/async/" (the source prefix of every library module)
local LIB = getinfo(1, "S").source:match("^(@.*async/)kernel/errors%.lua$")

-- chunk names of code the library generates (templates): async.html.template
-- loads them as "=" .. GENERATED .. name
_M.GENERATED = "async:"

local function library_frame(src)
  if src == "=[C]" then return true end
  if LIB ~= nil and sub(src, 1, #LIB) == LIB then return true end
  return sub(src, 1, 7) == "=async:"
end

--- The caller's position: (short source, line) of the first frame from
-- `level` up (default 2: errors.where's caller) that is not the library's.
function _M.where(level)
  level = level or 2
  while true do
    local info = getinfo(level, "Sl")
    if info == nil then return nil end
    if not library_frame(info.source) and info.currentline and info.currentline > 0 then
      return info.short_src, info.currentline
    end
    level = level + 1
  end
end

--- A new error value (no position: for envelopes and returned errors);
-- `hint` is optional.
function _M.new(code, message, hint)
  return setmetatable({ name = "AsyncError", code = code, message = message, hint = hint }, AsyncError)
end

--- Gives `e` the caller's position (see the top comment) unless it has one.
function _M.locate(e)
  if e.line == nil then
    local src, line = _M.where(3)
    e.source, e.line = src, line
  end
  return e
end

--- Raises new(code, message, hint) at the caller's line.
function _M.raise(code, message, hint)
  local e = setmetatable({ name = "AsyncError", code = code, message = message, hint = hint }, AsyncError)
  e.source, e.line = _M.where(3)
  error(e, 0)
end

--- Raises an "invalid-argument" error (a misuse of the API) at the caller's line.
function _M.argument(message)
  local e = setmetatable({ name = "AsyncError", code = "invalid-argument", message = message }, AsyncError)
  e.source, e.line = _M.where(3)
  error(e, 0)
end

--- An error value from an envelope's `error` table ({ name=, message=,
-- code=, hint= }), so it can be raised and printed.
function _M.from(t)
  local e = setmetatable({}, AsyncError)
  for k, v in pairs(t) do e[k] = v end
  if e.name == nil then e.name = "Error" end
  return e
end

-- codes of errors that say the library was misused or the process is in
-- trouble (not something an app raised on purpose for its users): answers
-- carry a generic code and message for them in production
local INTERNAL = {
  ["invalid-argument"] = true, ["not-in-coroutine"] = true, ["cycle-detected"] = true,
  ["write-in-computed"] = true, ["max-depth"] = true, ["context-lost"] = true, ["out-of-memory"] = true,
  ["bad-id"] = true, ["wait-in-batch"] = true, ["wait-not-served"] = true, ["no-loop"] = true,
  ["defer-loop"] = true, ["ngx-timer"] = true, ["ngx-semaphore"] = true, ["not-in-nginx"] = true,
}

--- Is `e` one of the library's errors of misuse or trouble (INTERNAL)?
function _M.internal(e)
  return type(e) == "table" and getmetatable(e) == AsyncError and INTERNAL[e.code] == true
end

--- Is `e` an error value of this type?
function _M.is(e)
  return type(e) == "table" and getmetatable(e) == AsyncError
end

--- The message of any raised value (for an error of this type, without
-- its position; for a string, as it is).
function _M.message(e)
  if type(e) == "table" and e.message ~= nil then return tostring(e.message) end
  return tostring(e)
end

--- A raised string's message without its "file:line: " prefix.
function _M.strip_position(s)
  if type(s) ~= "string" then return s end
  local _, e = find(s, "^[^:\n]*:%d+: ")
  if e then return sub(s, e + 1) end
  return s
end

return _M
