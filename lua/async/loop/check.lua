--- Argument checks shared by the loops (errors point at the caller's caller).
local type, tostring = type, tostring
local errors = require("async.kernel.errors")

local _M = {}

--- ms must be a number >= 0.
function _M.ms(ms, what)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    errors.argument(what .. ": ms must be a number >= 0, got " .. tostring(ms))
  end
end

--- fn must be a function.
function _M.fn(fn, what)
  if type(fn) ~= "function" then
    errors.argument(what .. ": expected a function, got " .. type(fn))
  end
end

return _M
