--- Argument checks shared by the loops (errors point at the caller's caller).
local type, error, tostring = type, error, tostring

local _M = {}

--- ms must be a number >= 0.
function _M.ms(ms, what)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    error(what .. ": ms must be a number >= 0, got " .. tostring(ms), 3)
  end
end

--- fn must be a function.
function _M.fn(fn, what)
  if type(fn) ~= "function" then
    error(what .. ": expected a function, got " .. type(fn), 3)
  end
end

return _M
