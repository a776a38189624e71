-- Router benchmark: 1,000 routes, time per lookup.
-- Run from the repo root: luajit bench/router.lua [lookups]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path

local router = require("async.app.router")
local clock = os.clock

local N = tonumber(arg and arg[1]) or 200000

local r = router.new()
local count = 0
for i = 1, 200 do
  r:add("/section" .. i, i); r:add("/section" .. i .. "/:id", i)
  r:add("/section" .. i .. "/:id/edit", i); r:add("/section" .. i .. "/items/:item", i)
  r:add("/section" .. i .. "/*rest", i)
  count = count + 5
end
r:add("/", 0); r:add("*", 0)
count = count + 2

local paths = {
  "/", "/section1", "/section100/42", "/section200/42/edit", "/section150/items/x%20y",
  "/section7/a/b/c", "/nope/x", "/section55/42?page=2",
}

local function run(n)
  local m
  for i = 1, n do m = r:match(paths[i % #paths + 1]) end
  return m
end

run(10000) -- warm up
local t0 = clock()
run(N)
local dt = clock() - t0
print(string.format("router: %d routes, %d lookups, %.3f us/lookup (%.0f lookups/s)",
  count, N, dt / N * 1e6, N / dt))
