--- Per-request CPU and allocation of the page path in-process, without
-- sockets (docs/performance.md "Serving"): async.server.core's handler on
-- the suite's apps (spec/support/suite_apps.lua, production, no log)
-- answering GET / (the counter page of bench/http.sh), and the parts of it
-- alone.
--
--   luajit bench/core_page.lua [requests] [case]
--   luajit -jp=Fl bench/core_page.lua 200000 core     (profile one case)
--
-- Cases: core (the handler: GET / read to the last byte), stream
-- (create_app + render_stream + destroy), document (create_app +
-- render_document + destroy), create (create_app + destroy). Each prints
-- us per request (CPU time, os.clock, best of 3 runs after a warm-up) and
-- bytes allocated per request (GC stopped during a separate run).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local Async = require("async")
local core = require("async.server.core")
local suite_apps = require("support.suite_apps")

local N = tonumber(arg and arg[1] or "") or 50000
local ONLY = arg and arg[2]
local clock, fmt = os.clock, string.format

local loop = Async.manual_loop()
Async.set_loop(loop)

local handle = core.new({ apps = suite_apps.apps(), env = "production", log = false })
local counter = suite_apps.counter()

local REQ_HEADERS = { host = "127.0.0.1:8080", accept = "text/html", ["user-agent"] = "wrk" }
local function request()
  return { method = "GET", target = "/", path = "/", query = "", version = "1.1", headers = REQ_HEADERS, body = "",
           remote = "127.0.0.1", abort = Async.abort_token() }
end

local want_len
local function sink() return true end
local body_len = 0
local function count_write(c)
  if c then body_len = body_len + #c end
  return true
end

local cases = {
  core = function()
    local res
    local co = coroutine.create(function() res = handle(request()) end)
    assert(coroutine.resume(co))
    assert(coroutine.status(co) == "dead", "the page waited")
    if res.stream then
      body_len = 0
      local s = coroutine.create(function() res.stream(count_write) end)
      assert(coroutine.resume(s))
      if want_len then assert(body_len == want_len) end
    elseif want_len then
      assert(#res.body == want_len)
    end
    return res
  end,
  stream = function()
    local co = coroutine.create(function()
      local rt = Async.create_app(counter, { env = "production" })
      rt:render_stream("/", sink)
      rt:destroy()
    end)
    assert(coroutine.resume(co))
  end,
  document = function()
    local rt = Async.create_app(counter, { env = "production" })
    rt:render_document("/")
    rt:destroy()
  end,
  create = function()
    local rt = Async.create_app(counter, { env = "production" })
    rt:destroy()
  end,
}

do   -- the page's size, checked on every core request
  local res = cases.core()
  want_len = res.body and #res.body or body_len
end

local function run(fn, n)
  for _ = 1, n do fn() end
end

local function measure(name, fn)
  run(fn, math.min(N, 5000))   -- warm up
  local best = math.huge
  for _ = 1, 3 do
    collectgarbage()
    local t0 = clock()
    run(fn, N)
    local dt = (clock() - t0) / N * 1e6
    if dt < best then best = dt end
  end
  collectgarbage()
  collectgarbage("stop")
  local m = 2000
  local k0 = collectgarbage("count")
  run(fn, m)
  local bytes = (collectgarbage("count") - k0) * 1024 / m
  collectgarbage("restart")
  print(fmt("%-9s %8.2f us/request  %8.0f bytes/request", name, best, bytes))
end

print(fmt("GET / of the counter (%d bytes), %d requests per run", want_len, N))
for _, name in ipairs({ "core", "stream", "document", "create" }) do
  if not ONLY or ONLY == name then measure(name, cases[name]) end
end
