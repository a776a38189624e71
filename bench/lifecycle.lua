-- Runtime lifecycle: create_app + rt:destroy() per request, for apps with
-- 10, 100 and 1,000 routes (and as many partials and handlers). What belongs
-- to the app (compiled routes, declarations, cache policies) is built once
-- and shared, so the cost per request must not grow with the app's size.
-- Goal (issue 8): under 20 us each on this machine.
-- Run from the repo root: luajit bench/lifecycle.lua [requests]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local Async = require("async")
local clock = os.clock
local N = tonumber(arg and arg[1]) or 20000

local function make_app(routes)
  local app = Async.define_app()
  local decl = { signal = { count = 0, user = { name = "ada" } }, partial = {}, route = {}, handler = {} }
  for i = 1, routes do
    local id = "page" .. i
    decl.partial[id] = function() return "<p>" .. i .. "</p>" end
    decl.handler["h" .. i] = function() end
    decl.route["/section" .. i .. "/:id"] = Async.define_route(id)
  end
  app:use(decl)
  return app
end

local function run(app, n)
  for _ = 1, n do
    local rt = Async.create_app(app)
    rt:destroy()
  end
end

print(string.format("%-8s %14s %14s", "routes", "us/request", "vs 10 routes"))
local base
for _, routes in ipairs({ 10, 100, 1000 }) do
  local app = make_app(routes)
  run(app, 2000)   -- warm up: the app's router is compiled here, once
  collectgarbage()
  local t0 = clock()
  run(app, N)
  local us = (clock() - t0) / N * 1e6
  base = base or us
  print(string.format("%-8d %14.2f %13.2fx%s", routes, us, us / base, us < 20 and "" or "  (over the 20 us goal)"))
end
