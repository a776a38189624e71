--- The server of bench/http.sh: the suite's apps (spec/support/suite_apps.lua,
-- the counter at "/") served by Async.serve in this one process, production
-- mode, no access log.
--   build/asyncrt bench/http_server.lua PORT [profile-output]
-- With a second argument, LuaJIT's sampling profiler (jit.p) runs until the
-- process gets SIGTERM/SIGINT (asyncrt's shutdown) and writes its report
-- there (ASYNC_PROFILE_MODE: jit.p's mode string, default "Fl").
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
local Async = require("async")
local loop = require("async.loop")
local suite_apps = require("support.suite_apps")

local port = tonumber(arg[1]) or 8080
local srv = assert(Async.serve({ apps = suite_apps.apps(), env = "production", host = "127.0.0.1", port = port,
                                 log = false }))
if arg[2] then
  local prof = require("jit.p")
  prof.start(os.getenv("ASYNC_PROFILE_MODE") or "Fl", arg[2])
  loop.on_shutdown(function() prof.stop() end)
end
loop.on_shutdown(function() srv:close() end)
print("listening " .. srv.url)
io.stdout:flush()
