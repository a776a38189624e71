-- Spec helpers for the library's one error type (kernel/errors.lua,
-- lua-api.md "Errors"): errors the library raises are tables whose
-- tostring() starts with the caller's "file:line: ".
local errors = require("async.kernel.errors")
local assert = require("luassert")

local _M = {}

--- The message of a raised value without its position: a library error's
-- `message`, or a string without its leading "file:line: ".
function _M.message(err)
  if errors.is(err) then return err.message end
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

--- Asserts that fn(...) raises a library error with this message (and code,
-- when given); returns the error.
function _M.raises(message, code, fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  assert(errors.is(err), "expected the library's error type, got " .. type(err) .. ": " .. tostring(err))
  assert.are.equal(message, err.message)
  if code ~= nil then assert.are.equal(code, err.code) end
  local text = tostring(err)
  assert(not text:find("^table: 0x"), "tostring of a library error reads " .. text)
  return err
end

--- luassert's has_error(fn, message) for library errors: the message
-- without the position that tostring() now starts with.
function _M.has_error(fn, message)
  return _M.raises(message, nil, fn)
end

return _M
