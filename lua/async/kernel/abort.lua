--- Abort tokens: cancellation for coroutines and the I/O they start.
-- A token is aborted at most once; `on_abort` callbacks run in registration
-- order when it is, and at once when registered on an aborted token.
local errors = require("async.kernel.errors")

local setmetatable, getmetatable, pcall, error, type, tostring = setmetatable, getmetatable, pcall, error, type,
  tostring

local _M = {}

local Abort = {}
Abort.__index = Abort

--- Creates a token that is not aborted.
function _M.new()
  return setmetatable({ aborted = false, reason = nil, _cbs = nil }, Abort)
end

--- Is `v` an abort token?
function _M.is(v)
  return type(v) == "table" and getmetatable(v) == Abort
end

--- Registers `fn(reason)`; returns a function that unregisters it.
function Abort:on_abort(fn)
  if type(fn) ~= "function" then
    error("on_abort expects a function, got " .. type(fn), 2)
  end
  if self.aborted then
    fn(self.reason)
    return function() end
  end
  local cbs = self._cbs
  if not cbs then cbs = {}; self._cbs = cbs end
  cbs[#cbs + 1] = fn
  return function()
    for i = 1, #cbs do
      if cbs[i] == fn then table.remove(cbs, i); return end
    end
  end
end

--- Aborts the token: runs every callback even if one raises, then raises the
-- first error. A second cancel does nothing.
function Abort:cancel(reason)
  if self.aborted then return end
  self.aborted = true
  self.reason = reason == nil and "aborted" or reason
  local cbs = self._cbs
  self._cbs = nil
  if not cbs then return end
  local first
  for i = 1, #cbs do
    local ok, err = pcall(cbs[i], self.reason)
    if not ok and first == nil then first = err end
  end
  if first ~= nil then error(first, 0) end
end

--- The error a wait raises when `token` is aborted: the library's error
-- type (kernel/errors.lua) named "AbortError", code "aborted", message
-- "aborted: REASON", at the caller's line.
function _M.error(token)
  local e = setmetatable({ name = "AbortError", code = "aborted", message = "aborted: " .. tostring(token.reason) },
    errors.mt)
  e.source, e.line = errors.where(3)
  return e
end

--- Is `e` the error of an aborted wait?
function _M.is_error(e)
  return type(e) == "table" and e.name == "AbortError"
end

--- Raises the abort error if the token is aborted.
function Abort:check()
  if self.aborted then error(_M.error(self), 0) end
end

return _M
