-- The asyncrt command line, run as a child process from LuaJIT: arguments,
-- stdin, -e, exit statuses, error reports with file:line, errors in luv
-- callbacks and in coroutines, signals, module paths, handles at exit.
-- Needs build/asyncrt (make builds it).
local ROOT = assert(io.popen("pwd")):read("*l")
local EXE = ROOT .. "/build/asyncrt"

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local tmpdir = assert(io.popen("mktemp -d")):read("*l")

local function write(name, text)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- Runs a shell command line; returns exit status, stdout, stderr.
local function sh(cmdline)
  local err = tmpdir .. "/stderr"
  local p = assert(io.popen("(" .. cmdline .. ") 2>" .. err .. "; echo \"__rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)\n?$"))
  return rc, (out:gsub("__rc=%d+\n?$", "")), read(err)
end

-- asyncrt with arguments (each quoted)
local function run(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = sh_quote((select(i, ...))) end
  return sh(sh_quote(EXE) .. " " .. table.concat(args, " ") .. " </dev/null")
end

describe("asyncrt CLI", function()
  setup(function()
    local f = io.open(EXE, "rb")
    assert(f, EXE .. " is missing: run make first")
    f:close()
  end)
  teardown(function() os.execute("rm -rf " .. sh_quote(tmpdir)) end)

  describe("scripts and arguments", function()
    it("sets arg like luajit (arg[0], arguments, negative indices) and passes ... ", function()
      local script = write("args.lua", [[
        local n = select("#", ...)
        print(arg[0], arg[1], arg[2], #arg, arg[-1], arg[-2] ~= nil, n, (...))
      ]])
      local rc, out = run(script, "a b", "c")
      assert.equal(0, rc)
      assert.equal(table.concat({ script, "a b", "c", "2", EXE, "false", "2", "a b" }, "\t") .. "\n", out)
      rc, out = run("-joff", script, "a b", "c")
      assert.equal(0, rc)
      assert.equal(table.concat({ script, "a b", "c", "2", "-joff", "true", "2", "a b" }, "\t") .. "\n", out)
    end)

    it("-e runs chunks in order, then the script", function()
      local script = write("after.lua", "print('script', x)")
      local rc, out = run("-e", "x = 1", "-e", "x = x + 1; print('e', x)", script)
      assert.equal(0, rc)
      assert.equal("e\t2\nscript\t2\n", out)
    end)

    it("-l requires a library", function()
      local rc, out = run("-l", "async.loop", "-e", "print(type(package.loaded['async.loop']))")
      assert.equal(0, rc)
      assert.equal("table\n", out)
    end)

    it("'-' runs stdin with arguments; no script and piped stdin runs stdin too", function()
      local rc, out = sh("echo 'print(\"stdin\", ...)' | " .. sh_quote(EXE) .. " - x y")
      assert.equal(0, rc)
      assert.equal("stdin\tx\ty\n", out)
      rc, out = sh("echo 'print(1 + 1)' | " .. sh_quote(EXE))
      assert.equal(0, rc)
      assert.equal("2\n", out)
    end)

    it("-v prints asyncrt, LuaJIT, libuv and luv versions", function()
      local rc, out = run("-v")
      assert.equal(0, rc)
      assert.matches("^asyncrt %d+%.%d+%.%d+\nLuaJIT 2%.1[^\n]*\nlibuv %d+%.%d+%.%d+\nluv %d+%.%d+%.%d+\n$", out)
    end)

    it("-h prints usage; a bad option is an error", function()
      local rc, out = run("-h")
      assert.equal(0, rc)
      assert.matches("^usage: asyncrt %[options%]", out)
      local rc2, _, err = run("-Z")
      assert.equal(1, rc2)
      assert.matches("asyncrt: bad option '%-Z'", err)
    end)

    it("preloads luv (also as uv) sharing the interpreter's loop, and finds cjson", function()
      local rc, out = run("-e", [[
        print(require("uv") == require("luv"), require("cjson").encode({ 1, 2 }),
              type(require("asyncrt").version))]])
      assert.equal(0, rc)
      assert.equal("true\t[1,2]\tstring\n", out)
    end)
  end)

  describe("module paths", function()
    it("finds the build tree's lua/ from any directory", function()
      local rc, out = sh("cd / && " .. sh_quote(EXE) ..
        " -e 'print(package.searchpath(\"async.kernel.abort\", package.path))'")
      assert.equal(0, rc)
      assert.equal(ROOT .. "/lua/async/kernel/abort.lua\n", out)
    end)

    it("finds an installed tree next to bin/ (PREFIX/share/lua/5.1)", function()
      local prefix = tmpdir .. "/prefix"
      os.execute("mkdir -p " .. prefix .. "/bin " .. prefix .. "/share/lua/5.1/async/kernel && cp " ..
        sh_quote(EXE) .. " " .. prefix .. "/bin/ && cp " .. ROOT .. "/lua/async/kernel/abort.lua " ..
        prefix .. "/share/lua/5.1/async/kernel/")
      -- without LUA_PATH/LUA_CPATH from the environment (make dev-env
      -- exports this checkout's, which would come first)
      local rc, out = sh("cd / && env -u LUA_PATH -u LUA_CPATH " .. prefix .. "/bin/asyncrt -e " ..
        "'print(package.searchpath(\"async.kernel.abort\", package.path)); print(package.cpath:match(\"^[^;]*\"))'")
      assert.equal(0, rc)
      assert.equal(prefix .. "/share/lua/5.1/async/kernel/abort.lua\n" .. prefix .. "/lib/lua/5.1/?.so\n", out)
    end)

    it("keeps LUA_PATH entries first; without ';;' LUA_PATH stays as given, ours last", function()
      local rc, out = sh("LUA_PATH='/x/?.lua;;' " .. sh_quote(EXE) .. " -e 'print(package.path)'")
      assert.equal(0, rc)
      assert.matches("^/x/%?%.lua;" .. ROOT:gsub("%p", "%%%0") .. "/lua/%?%.lua;", out)
      rc, out = sh("LUA_PATH='/x/?.lua' " .. sh_quote(EXE) .. " -e 'print(package.path)'")
      assert.equal(0, rc)
      assert.equal("/x/?.lua;" .. ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua\n", out)
    end)
  end)

  describe("exit status", function()
    local cases = {
      { "no return", "local x = 1", 0 },
      { "a number returned by the main chunk", "return 7", 7 },
      { "a non-number return", "return 'x'", 0 },
      { "os.exit(n)", "os.exit(5)", 5 },
      { "os.exit(false)", "os.exit(false)", 1 },
      { "os.exit inside a timer callback", "local t = require('luv').new_timer()\n" ..
        "t:start(5, 0, function() os.exit(9) end)", 9 },
      { "the return value after the loop ran", "local t = require('luv').new_timer()\n" ..
        "t:start(5, 0, function() t:close() end)\nreturn 3", 3 },
      { "an error in the main chunk", "error('x')", 1 },
      { "an error inside a timer after return 3", "local t = require('luv').new_timer()\n" ..
        "t:start(5, 0, function() error('late') end)\nreturn 3", 1 },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " -> " .. c[3], function()
        local rc = run(write("exit.lua", c[2]))
        assert.equal(c[3], rc)
      end)
    end
  end)

  describe("uncaught errors", function()
    it("main chunk: 'asyncrt: file:line: message' and a traceback, status 1", function()
      local script = write("main_err.lua", "local x = 1\nerror('main failed')\n")
      local rc, out, err = run(script)
      assert.equal(1, rc)
      assert.equal("", out)
      assert.matches("^asyncrt: " .. script:gsub("%p", "%%%0") .. ":2: main failed\nstack traceback:\n", err)
    end)

    it("syntax error: file:line, status 1", function()
      local script = write("syntax.lua", "local x = \n")
      local rc, _, err = run(script)
      assert.equal(1, rc)
      assert.matches("^asyncrt: " .. script:gsub("%p", "%%%0") .. ":2: unexpected symbol", err)
    end)

    it("-e and a missing file", function()
      local rc, _, err = run("-e", "error('in e')")
      assert.equal(1, rc)
      assert.matches("^asyncrt: %(command line%):1: in e\n", err)
      rc, _, err = run(tmpdir .. "/nope.lua")
      assert.equal(1, rc)
      assert.matches("^asyncrt: cannot open ", err)
    end)

    it("a luv callback: reported with file:line, status 1, other callbacks never run", function()
      local script = write("cb_err.lua", [[
local uv = require("luv")
local a, b = uv.new_timer(), uv.new_timer()
a:start(5, 0, function()
  error("callback failed")
end)
b:start(5, 0, function() print("second timer ran") end)
local c = uv.new_timer()
c:start(50, 0, function() print("later timer ran") end)
print("main done")
]])
      local rc, out, err = run(script)
      assert.equal(1, rc)
      assert.equal("main done\n", out)
      assert.matches("^asyncrt: " .. script:gsub("%p", "%%%0") .. ":4: callback failed\nstack traceback:\n", err)
      assert.not_matches("Uncaught Error", err)  -- luv's own handler would say that and exit(-1)
    end)

    it("a coroutine waiting in loop.delay: reported with its traceback, status 1", function()
      local script = write("co_err.lua", [[
local loop = require("async.loop")
coroutine.wrap(function()
  loop.delay(5)
  error("coroutine failed")
end)()
]])
      local rc, _, err = run(script)
      assert.equal(1, rc)
      assert.matches("^asyncrt: " .. script:gsub("%p", "%%%0") .. ":4: coroutine failed\nstack traceback:\n", err)
    end)

    it("an error under a nested uv.run() stops the main chunk too", function()
      local script = write("nested.lua", [[
local uv = require("luv")
local t = uv.new_timer()
t:start(5, 0, function() error("nested failed") end)
uv.run()
print("after uv.run")
]])
      local rc, out, err = run(script)
      assert.equal(1, rc)
      assert.equal("", out)
      assert.matches(":3: nested failed", err)
    end)

    it("a non-string error object is described; error(nil) exits 1 silently like luajit", function()
      local rc, _, err = run("-e", "error(setmetatable({}, { __tostring = function() return 'custom' end }))")
      assert.equal(1, rc)
      assert.matches("^asyncrt: custom\n", err)
      rc, _, err = run("-e", "error()")
      assert.equal(1, rc)
      assert.equal("", err)
    end)
  end)

  describe("the loop", function()
    it("runs after the main chunk until no active handle is left", function()
      local rc, out = run("-e", [[
        local loop = require("async.loop")
        for i = 1, 3 do
          coroutine.wrap(function() loop.delay(10 * i); print("woke", i) end)()
        end
        print("main returned")]])
      assert.equal(0, rc)
      assert.equal("main returned\nwoke\t1\nwoke\t2\nwoke\t3\n", out)
    end)

    it("closes leftover handles (stopped, unref'd) and exits promptly with nothing left open", function()
      local script = write("leftover.lua", [[
local uv = require("luv")
local stopped = uv.new_timer()             -- never started: inactive, not closed
local unrefd = uv.new_timer()
unrefd:start(60000, 0, function() print("never") end)
unrefd:unref()                             -- does not keep the loop alive
local idle = uv.new_idle()                 -- created, never started
local check = uv.new_check()
check:start(function() end)
check:unref()
local n = 0
uv.walk(function() n = n + 1 end)
print("open", n)
]])
      local t0 = os.time()
      local rc, out, err = run(script)
      assert.equal(0, rc)
      assert.equal("", err)                 -- no "loop still busy" warning
      assert.matches("^open\t%d+\n$", out)
      assert.is_true(os.time() - t0 < 5)
    end)

    it("leaves no handle open after delay coroutines and an aborted delay", function()
      local rc, out = run("-e", [[
        local uv, loop, abort = require("luv"), require("async.loop"), require("async.kernel.abort")
        local rt = require("asyncrt")
        local a = abort.new()
        coroutine.wrap(function() loop.delay(5) end)()
        coroutine.wrap(function() loop.delay(60000, a) end)()
        local t = uv.new_timer()
        t:start(20, 0, function()
          t:close()
          a:cancel()
          local t2 = uv.new_timer()
          t2:start(10, 0, function()
            t2:close()
            local open = 0
            uv.walk(function(h)
              if not h:is_closing() and not rt.is_internal(h) and h:is_active() then open = open + 1 end
            end)
            print("active", open)
          end)
        end)]])
      assert.equal(0, rc)
      assert.equal("active\t0\n", out)      -- t2 is closing; the aborted delay's timer is gone
    end)
  end)

  describe("signals", function()
    -- starts asyncrt on `script` in the background, waits for it to create
    -- the ready file, sends the signals, returns status, stdout, stderr
    local function signal_run(script, signals, env)
      local ready = tmpdir .. "/ready"
      os.remove(ready)
      local kills = {}
      for _, s in ipairs(signals) do kills[#kills + 1] = "kill -" .. s .. " $pid; sleep 0.2" end
      return sh((env or "") .. " " .. sh_quote(EXE) .. " " .. sh_quote(script) .. " " .. sh_quote(ready) ..
        " </dev/null & pid=$!; i=0; while [ ! -f " .. sh_quote(ready) .. " ] && [ $i -lt 200 ]; do sleep 0.02;" ..
        " i=$((i+1)); done; " .. table.concat(kills, "; ") .. "; wait $pid")
    end

    local server = [[
local uv, loop = require("luv"), require("async.loop")
local ticker = uv.new_timer()
ticker:start(50, 50, function() end)       -- keeps the loop alive forever
if os.getenv("HOOK") then
  loop.on_shutdown(function(reason)
    print("shutdown hook", reason)
    if os.getenv("HOOK") == "close" then ticker:close() end
  end)
end
local f = io.open(arg[1], "w"); f:write("ready"); f:close()
]]

    it("SIGINT runs the shutdown hooks, then exits 130 once they closed their handles", function()
      local rc, out, err = signal_run(write("srv.lua", server), { "INT" }, "HOOK=close")
      assert.equal(130, rc)
      assert.equal("shutdown hook\tsigint\n", out)
      assert.equal("", err)
    end)

    it("SIGTERM without hooks closes everything and exits 143", function()
      local rc, out = signal_run(write("srv.lua", server), { "TERM" })
      assert.equal(143, rc)
      assert.equal("", out)
    end)

    it("hooks that leave handles open get ASYNCRT_SHUTDOWN_MS, then everything is closed", function()
      local rc, out, err = signal_run(write("srv.lua", server), { "TERM" }, "HOOK=keep ASYNCRT_SHUTDOWN_MS=100")
      assert.equal(143, rc)
      assert.equal("shutdown hook\tsigterm\n", out)
      assert.matches("shutdown hooks did not finish in 100 ms", err)
    end)

    it("a second signal exits at once", function()
      local rc, _, err = signal_run(write("srv.lua", server), { "INT", "INT" }, "HOOK=keep ASYNCRT_SHUTDOWN_MS=60000")
      assert.equal(130, rc)
      assert.matches("second signal, exiting now", err)
    end)

    it("interrupts a busy main chunk (interpreted code) with 'interrupted!'", function()
      local script = write("busy.lua", [[
local f = io.open(arg[1], "w"); f:write("ready"); f:close()
while true do end
]])
      local ready = tmpdir .. "/ready"
      os.remove(ready)
      local rc, _, err = sh(sh_quote(EXE) .. " -joff " .. sh_quote(script) .. " " .. sh_quote(ready) ..
        " </dev/null & pid=$!; while [ ! -f " .. sh_quote(ready) .. " ]; do sleep 0.02; done; sleep 0.1;" ..
        " kill -INT $pid; wait $pid")
      assert.equal(130, rc)
      assert.matches("^asyncrt: [^\n]*interrupted!", err)
    end)
  end)
end)
