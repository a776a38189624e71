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
    errors.argument("on_abort expects a function, got " .. type(fn))
  end
  if self.aborted then
    fn(self.reason)
    return function() end
  end
  local cbs = self._cbs
  if not cbs then cbs = { holes = 0 }; self._cbs = cbs end
  cbs[#cbs + 1] = fn
  -- unregistering leaves a hole (false) rather than shifting the list: a
  -- callback may unregister another while cancel walks the list, and the
  -- one after it must still run; holes are compacted when they pile up
  return function()
    for i = 1, #cbs do
      if cbs[i] == fn then
        cbs[i] = false
        cbs.holes = cbs.holes + 1
        if cbs.holes > 8 and cbs.holes * 2 > #cbs and self._cbs == cbs then
          local j = 0
          for k = 1, #cbs do
            local f = cbs[k]
            cbs[k] = nil
            if f then j = j + 1; cbs[j] = f end
          end
          cbs.holes = 0
        end
        return
      end
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
    local f = cbs[i]
    if f then
      local ok, err = pcall(f, self.reason)
      if not ok and first == nil then first = err end
    end
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
