-- Async.serve under load: 50 concurrent keep-alive connections (wrk, a
-- child process on loopback, 2 threads) alternating GET of the counter page
-- and POST of its handler (bench/wrk/mixed.lua checks every answer's status
-- and bytes), in three rounds: a 3 s warm-up, then two 5 s rounds. This
-- process is the server, so its RSS is the server's (plus busted's, which
-- does not change while wrk runs).
--
-- Asserts: no socket error, no non-2xx answer, no answer with other bytes,
-- every log entry a 200 without error; after the warm-up the RSS grows by
-- less than 16 MiB over the two rounds (the warm-up has compiled the traces
-- and sized the heap: what grows after it is per-request state kept by
-- mistake; 10 s at ~10,000 requests/s is ~100,000 requests, so a leak of
-- 160 bytes per request fails), and by less than 4 MiB from the end of the
-- second round to the end of the third (flat: a leak of 40 bytes per request
-- over ~50,000 requests fails; LuaJIT's collector and the allocator keep
-- some slack, which 4 MiB covers). The Lua heap is printed after a full
-- collection at each point, and must be flat too (< 2 MiB between rounds).
--
-- Under AddressSanitizer (make sanitize sets ASAN_OPTIONS) the rounds are
-- 1 s and the memory bounds are not asserted (ASan's quarantine owns RSS).
-- Tagged #loop: busted --lua=build/asyncrt --tags=loop spec/serve_load_spec.lua
local Async = require("async")
local loop = require("async.loop")
local suite_apps = require("support.suite_apps")
local support = require("support.http")

local MiB = 1024 * 1024
local ASAN = os.getenv("ASAN_OPTIONS") ~= nil

local function rss_bytes()
  local f = assert(io.open("/proc/self/status", "r"))
  local s = f:read("*a")
  f:close()
  return assert(tonumber(s:match("VmRSS:%s*(%d+)%s*kB"))) * 1024
end

local function heap_bytes()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count") * 1024
end

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == 0
end

-- runs wrk as a child process while this process's loop serves; returns
-- its output
local function wrk(args, ms)
  local uv = support.uv()
  local out = {}
  local stdout = uv.new_pipe(false)
  local stderr = uv.new_pipe(false)
  local code
  local handle = uv.spawn("wrk", { args = args, stdio = { nil, stdout, stderr } }, function(c)
    code = c
  end)
  assert(handle, "cannot start wrk")
  local closed = 0
  local function reader(err, data)
    if err or data == nil then closed = closed + 1 return end
    out[#out + 1] = data
  end
  stdout:read_start(reader)
  stderr:read_start(reader)
  support.wait_until(function() return code ~= nil and closed == 2 end, ms, "wrk to finish")
  handle:close()
  stdout:close()
  stderr:close()
  local s = table.concat(out)
  assert(code == 0, "wrk exited " .. tostring(code) .. ":\n" .. s)
  return s
end

-- the numbers of a wrk run with bench/wrk/mixed.lua
local function parse(s)
  local r = {
    requests = tonumber(s:match("(%d+) requests in")),
    rps = tonumber(s:match("Requests/sec:%s*([%d.]+)")),
    non2xx = tonumber(s:match("Non%-2xx or 3xx responses: (%d+)")) or 0,
    ok = tonumber(s:match("CHECK ok=(%d+)")),
    bad = tonumber(s:match("CHECK ok=%d+ bad=(%d+)")),
    page = tonumber(s:match("page=(%d+)")),
    handler = tonumber(s:match("handler=(%d+)")),
    first_bad = s:match("FIRST_BAD ([^\n]*)"),
  }
  local c, rd, w, t = s:match("Socket errors: connect (%d+), read (%d+), write (%d+), timeout (%d+)")
  r.socket_errors = c and (tonumber(c) + tonumber(rd) + tonumber(w) + tonumber(t)) or 0
  return r
end

describe("Async.serve under load #loop", function()
  local srv

  teardown(function()
    if srv then
      local closed = false
      srv:close(function() closed = true end)
      support.wait_until(function() return closed end, 10000, "the server to close")
    end
  end)

  it("50 keep-alive clients, page and handler POST alternating: no error, memory flat after a warm-up", function()
    assert(have("wrk"), "wrk is not installed (tools/deps.sh installs it)")
    loop.set_loop(loop.luv_loop())
    loop.set_resume_hook(nil)
    local statuses, errors = {}, {}
    srv = assert(Async.serve({ apps = suite_apps.apps(), env = "production", host = "127.0.0.1", port = 0,
                               log = function(e)
                                 statuses[e.status] = (statuses[e.status] or 0) + 1
                                 if e.error and #errors < 5 then errors[#errors + 1] = e.error end
                               end }))
    local url = srv.url .. "/"
    local rounds = ASAN and { 1, 1, 1 } or { 3, 5, 5 }
    local names = { "warm-up", "round 2", "round 3" }
    local points = { { "start", rss_bytes(), heap_bytes() } }
    local results = {}
    for i, secs in ipairs(rounds) do
      local out = wrk({ "-t2", "-c50", "-d" .. secs .. "s", "--timeout", "5s", "-s", "bench/wrk/mixed.lua", url },
        (secs + 30) * 1000)
      local r = parse(out)
      results[i] = r
      points[#points + 1] = { names[i], rss_bytes(), heap_bytes() }
      assert(r.requests and r.ok and r.bad, "cannot read wrk's output:\n" .. out)
    end
    -- the report (on stderr: make test reads busted's JSON from stdout)
    local function print(line) io.stderr:write((line or ""), "\n") end
    print()
    print(("Async.serve under load (wrk -t2 -c50, GET / and POST /__async/handler/increment alternating)%s")
      :format(ASAN and " [ASan: 1 s rounds, no memory bounds]" or ""))
    print(("  %-8s %10s %10s %8s %8s %8s"):format("round", "requests", "req/s", "bad", "non-2xx", "sock.err"))
    for i, r in ipairs(results) do
      print(("  %-8s %10d %10.0f %8d %8d %8d"):format(names[i], r.requests, r.rps or 0, r.bad, r.non2xx,
        r.socket_errors))
    end
    print(("  %-8s %10s %10s"):format("after", "RSS MiB", "Lua heap MiB"))
    for _, p in ipairs(points) do print(("  %-8s %10.1f %10.1f"):format(p[1], p[2] / MiB, p[3] / MiB)) end
    local list = {}
    for st, n in pairs(statuses) do list[#list + 1] = st .. ": " .. n end
    table.sort(list)
    print("  log statuses: " .. table.concat(list, ", "))
    -- the answers
    for i, r in ipairs(results) do
      assert.are.equal(0, r.socket_errors, names[i] .. ": socket errors")
      assert.are.equal(0, r.non2xx, names[i] .. ": non-2xx answers")
      assert.are.equal(0, r.bad, names[i] .. ": answers with other bytes, first: " .. tostring(r.first_bad))
      assert.is_true(r.ok >= r.requests, names[i] .. ": every answer checked")
      assert.is_true(r.page > 0 and r.handler > 0, names[i] .. ": both kinds of request ran")
    end
    for st in pairs(statuses) do assert.are.equal(200, st, "only 200s in the log") end
    assert.are.same({}, errors)
    -- memory
    if not ASAN then
      local warm, second, third = points[2], points[3], points[4]
      assert.is_true(third[2] - warm[2] < 16 * MiB, ("RSS grew %.1f MiB after the warm-up"):format(
        (third[2] - warm[2]) / MiB))
      assert.is_true(third[2] - second[2] < 4 * MiB, ("RSS grew %.1f MiB between rounds 2 and 3"):format(
        (third[2] - second[2]) / MiB))
      assert.is_true(third[3] - second[3] < 2 * MiB, ("the Lua heap grew %.1f MiB between rounds 2 and 3"):format(
        (third[3] - second[3]) / MiB))
    end
  end)
end)
