-- Async.main: an app file ends with `return Async.main(app, opts)`. Run as
-- the script (`asyncrt app.lua`) it serves the app on HOST/PORT and prints
-- the URL; loaded by anything else (dofile, require, a spec, the gallery) it
-- only returns the app. A real asyncrt process on loopback, curl as client.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local ROOT = sh("pwd"):gsub("%s+$", "")
local EXE = ROOT .. "/build/asyncrt"

local APP = [[
local Async = require("async")
local app = Async.define_app()
app:use({
  signal = { count = 0 },
  handler = { increment = function(self) self.signals:update("count", function(c) return c + 1 end) end },
  partial = { home = function() return '<b signal:text="count"></b>' end },
  route = { ["/"] = Async.define_route("home") },
})
return Async.main(app, { public = "public" })
]]

describe("Async.main", function()
  local dir
  setup(function()
    dir = sh("mktemp -d"):gsub("%s+$", "")
    sh("mkdir -p " .. dir .. "/public && printf 'hello' > " .. dir .. "/public/hi.txt")
    local f = assert(io.open(dir .. "/app.lua", "w"))
    f:write(APP)
    f:close()
  end)
  teardown(function() if dir then sh("rm -rf " .. dir) end end)

  it("loaded with dofile, returns the app and listens on nothing", function()
    local out = sh("cd " .. dir .. " && LUA_PATH='" .. ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;' " ..
      "PORT=1 timeout 5 " .. EXE .. " -e 'local app = dofile(\"app.lua\"); print(type(app), app.decl ~= nil)'")
    assert.are.equal("table\ttrue\n", out)
  end)

  it("loaded with dofile by the script being run (a gallery), returns the app with its options", function()
    local f = assert(io.open(dir .. "/loader.lua", "w"))
    f:write('local app = dofile("app.lua"); local ok, m = pcall(dofile, "app.lua")\n' ..
            'print(app.decl ~= nil, app.serve_opts.public, m.serve_opts.public)\n')
    f:close()
    -- PORT=1 cannot be listened on: an app file that tried would exit 1 with a message
    local out = sh("cd " .. dir .. " && LUA_PATH='" .. ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;' " ..
      "PORT=1 timeout 5 " .. EXE .. " loader.lua; echo rc=$?")
    assert.are.equal("true\tpublic\tpublic\nrc=0\n", out)
  end)

  it("run as the script, serves the app on PORT, files of public/ beside it, and stops on SIGTERM", function()
    local port = 20000 + os.time() % 5000
    local log = dir .. "/out.log"
    sh(("cd / && PORT=%d %s %s/app.lua > %s 2>&1 & echo $! > %s/pid"):format(port, EXE, dir, log, dir))
    local printed
    for _ = 1, 50 do
      printed = sh("cat " .. log)
      if printed:find("serving", 1, true) then break end
      sh("sleep 0.1")
    end
    assert.are.equal(("asyncrt: serving http://127.0.0.1:%d/\n"):format(port), printed)
    local page = sh(("curl -s http://127.0.0.1:%d/ | grep -o '<b signal:text=\"count\">0</b>'"):format(port))
    assert.are.equal('<b signal:text="count">0</b>\n', page)
    assert.are.equal("hello", sh(("curl -s http://127.0.0.1:%d/hi.txt"):format(port)))
    local env = sh(("curl -s -X POST -H 'X-Async-Request: 1' -H 'Content-Type: application/json' " ..
      "-d '{\"args\":[],\"signals\":{\"count\":4}}' http://127.0.0.1:%d/__async/handler/increment"):format(port))
    assert.are.equal('{"__async_server_result__":1,"signals":{"count":5}}', env)
    local rc = sh("kill -TERM $(cat " .. dir .. "/pid); for i in $(seq 1 50); do " ..
      "kill -0 $(cat " .. dir .. "/pid) 2>/dev/null || break; sleep 0.1; done; kill -0 $(cat " .. dir ..
      "/pid) 2>/dev/null && echo running || echo stopped")
    assert.are.equal("stopped\n", rc)
    local lines = sh("cat " .. log)
    assert.is_nil(lines:find("error", 1, true), lines)
  end)
end)
