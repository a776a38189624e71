-- The same apps inside nginx's Lua module (Debian's nginx-light +
-- libnginx-mod-http-lua + lua-resty-core: the OpenResty LuaJIT branch, the
-- same libluajit as asyncrt), Test::Nginx style: a real nginx from a temp
-- prefix on a random loopback port with 2 workers, raw requests, exact
-- bytes, and no [error], [alert] or [crit] in error.log after any case.
--
-- The endpoints are checked differentially: every request of DIFF is sent
-- to nginx (require("async.ngx").handle) and to Async.serve in this process
-- (the luv transport), and the answers must be the same bytes: status, every
-- header but those each server frames itself (Server, Date, Connection,
-- Transfer-Encoding), and the body. Then what only the ngx loop does:
-- concurrency, aborts, timers, the shared-dict cache across workers.
local nginx = require("support.nginx")
local http = require("support.http")
local json = require("cjson")

local describe_ngx = nginx.available() and describe or pending
local uv = http.uv()

local function now_ms() return uv.hrtime() / 1e6 end

-- ===== servers =====

local public   -- a public/ folder both servers serve

local function make_public()
  public = nginx.sh("mktemp -d /tmp/async-public.XXXXXX"):gsub("%s+$", "")
  local function put(name, s)
    local f = assert(io.open(public .. "/" .. name, "wb"))
    f:write(s)
    f:close()
  end
  put("style.css", "body { color: #333; }\n")
  put("notes.txt", string.rep("asyncrt under nginx\n", 200))
end

local INIT = [[
  Async = require("async")
  local apps = require("support.ngx_apps")
  diff_opts = apps.diff_options("@PUBLIC@", "@ROOT@")
  lab_opts = { apps = { ["/lab"] = apps.lab }, cache = { server = "shdict:async_cache" }, env = "production",
               stream_timeout = 5000 }
  -- a run started where nginx has no threads is a plain coroutine: its
  -- wait fails with a clear error instead of spinning
  local s = Async.async_signal(function() Async.delay(1); return 1 end)
  init_wait_error = s:status() .. ": " .. tostring((s:error() or {}).message)
]]

local HTTP = [[
  lua_shared_dict lab 1m;
  lua_shared_dict async_cache 1m;
  lua_shared_dict stats 64k;
  init_worker_by_lua_block {
    -- every worker publishes its loop's counters (threads alive, runs alive, runs killed)
    ngx.timer.every(0.02, function()
      local s = require("async.loop").get_loop():stats()
      local id = ngx.worker.id()
      ngx.shared.stats:set("threads:" .. id, s.threads)
      ngx.shared.stats:set("runs:" .. id, s.runs)
      ngx.shared.stats:set("killed:" .. id, s.killed)
    end)
  }
]]

local SERVER = [[
    location = /kernel {
      content_by_lua_block {
        local a = Async.signal(2)
        local b = Async.computed(function() return a() * 21 end)
        local seen = {}
        local dispose = Async.effect(function() seen[#seen + 1] = b() end)
        Async.batch(function() a:set(3); a:set(4) end)
        dispose()
        -- the effect's dispose function comes from async_bind (a C closure)
        ngx.say(b(), " ", table.concat(seen, ","), " ", debug.getinfo(dispose, "S").what)
      }
    }
    location = /stats {
      content_by_lua_block {
        local d, t = ngx.shared.stats, { threads = 0, runs = 0, killed = 0 }
        for _, k in ipairs(d:get_keys(0)) do
          local kind = k:match("^(%a+):")
          t[kind] = t[kind] + d:get(k)
        end
        ngx.print(require("cjson").encode(t))
      }
    }
    location = /lab/counter {
      content_by_lua_block { ngx.print(ngx.shared.lab:get(ngx.var.arg_k) or 0) }
    }
    location = /reset {
      content_by_lua_block { ngx.shared.lab:flush_all(); ngx.shared.async_cache:flush_all(); ngx.print("ok") }
    }
    # an async run aborted in the middle of its sleep: its thread is killed
    # at once and the code after the sleep never runs
    location = /abort {
      content_by_lua_block {
        local loop = require("async.loop")
        local d = ngx.shared.lab
        d:set("k.after", 0)
        local dep = Async.signal(1)
        local s = Async.async_signal(function(ctx)
          local v = dep()
          Async.delay(300, ctx.abort)
          d:incr("k.after", 1, 0)
          return v
        end)
        ngx.sleep(0.1)
        local killed0 = loop.get_loop():stats().killed
        dep:set(2)                     -- aborts run 1, starts run 2
        ngx.sleep(0.02)
        local killed = loop.get_loop():stats().killed - killed0
        ngx.sleep(0.4)
        ngx.say(s(), " after=", d:get("k.after"), " killed=", killed, " status=", s:status())
      }
    }
    # writes a run makes after a wait stay buffered until its commit, while
    # other threads run between its waits
    location = /buffered {
      content_by_lua_block {
        local seen = {}
        local x = Async.signal(0)
        local dispose = Async.effect(function() seen[#seen + 1] = x() end)
        local s = Async.async_signal(function(ctx)
          Async.delay(20, ctx.abort)
          x:set(1)
          Async.delay(20, ctx.abort)
          x:set(2)
          return "done"
        end)
        ngx.sleep(0.03)
        local mid = x()                -- between the run's waits: its write is not visible
        ngx.sleep(0.05)
        dispose()
        ngx.say(mid, " ", s(), " ", x(), " ", table.concat(seen, ","))
      }
    }
    # a run that waits on nginx directly (a raw ngx.sleep) after an
    # Async.delay: another thread's write meanwhile is not the run's
    location = /raw-wait {
      content_by_lua_block {
        local y = Async.signal(0)
        local s = Async.async_signal(function(ctx)
          Async.delay(10, ctx.abort)
          ngx.sleep(0.05)
          return "ok"
        end)
        ngx.sleep(0.03)
        y:set(5)
        local seen = y()
        ngx.sleep(0.06)
        ngx.say(seen, " ", y(), " ", s())
      }
    }
    # a `loop` scheduler defers its flush to ngx.timer.at(0): many writes, one flush, later
    location = /loop-scheduler {
      content_by_lua_block {
        local s = Async.create_scheduler({ strategy = "loop" })
        local x = Async.signal(0)
        local runs = {}
        local dispose = Async.effect(function() runs[#runs + 1] = x() end, { scheduler = s })
        x:set(1); x:set(2); x:set(3)
        local before = table.concat(runs, ",")
        ngx.sleep(0.01)
        dispose()
        ngx.say(before, " | ", table.concat(runs, ","))
      }
    }
    location = /manual-wait {
      content_by_lua_block {
        local loop = require("async.loop")
        local l = loop.get_loop()
        loop.set_loop(Async.manual_loop())
        local ok, err = pcall(Async.delay, 10)
        loop.set_loop(l)
        ngx.say(ok, " ", type(err) == "table" and err.message or tostring(err))
      }
    }
    location = /init-wait { content_by_lua_block { ngx.say(init_wait_error) } }
    location = /bad-options {
      content_by_lua_block {
        for _, o in ipairs({ { bogus = 1 }, { cache = { server = "redis:x" } }, { cache = { other = 1 } } }) do
          local ok, err = pcall(require("async.ngx").handle, Async.define_app(), o)
          ngx.say(ok, " ", err.code, " ", err.message, " @", err.line)
        end
      }
    }
    error_page 413 = @async_413;
    location @async_413 { content_by_lua_block { require("async.ngx").refused(413) } }
    location /lab/ { content_by_lua_block { require("async.ngx").handle(nil, lab_opts) } }
    location / { content_by_lua_block { require("async.ngx").handle(nil, diff_opts) } }
]]

-- ===== helpers =====

-- the headers both servers must agree on: sorted "name: value" lines
local FRAMED = { server = true, date = true, connection = true, ["transfer-encoding"] = true }
local function comparable(res)
  local lines = {}
  for _, h in ipairs(res.list or {}) do
    if not FRAMED[h[1]] then lines[#lines + 1] = h[1] .. ": " .. h[2] end
  end
  table.sort(lines)
  return { status = res.status, headers = lines, body = res.body, complete = res.complete ~= false }
end

local function raw_to(port, bytes)
  local c = http.connect(port)
  c:send(bytes)
  http.wait_until(function() return c.eof end, 10000, "EOF")
  c:close()
  return nginx.parse(c:data())
end

local req = nginx.request

-- the exact page of a lab route with one boundary `id` whose run returns `v`
-- (the snapshot's keys are sorted: the async signal sits before or after router.*);
-- the page streams, so the client is loaded `async` (docs/endpoints.md)
local LOADING = '{"error":null,"loading":true,"status":"loading","value":null,"version":1}'
local function lab_page(id, v)
  local q = string.format("%q", v):sub(2, -2)
  return '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" ' ..
    'content="width=device-width, initial-scale=1"><title>' .. id .. '</title><script src="/lab/__async/client.js" ' ..
    'async></script></head><body><main async:container><section async:boundary="route"><section ' ..
    'async:boundary="' .. id .. '"><template async:loading="' .. id .. '">...</template><template ' ..
    'async:ready="' .. id .. '"><b signal:text="' .. id .. '"></b></template>...</section></section><script ' ..
    'type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{' ..
    (id < "router" and ('"' .. id .. '":' .. LOADING .. ',') or "") ..
    '"router.error":null,"router.params":{},"router.path":"/' .. id .. '","router.pending":false,"router.query":{},' ..
    '"router.route":"/' .. id .. '","router.url":"/' .. id .. '"' ..
    (id > "router" and (',"' .. id .. '":' .. LOADING) or "") ..
    '}}</script><template async:fill="' .. id .. '"><b signal:text="' .. id .. '">' .. v .. '</b></template><script ' ..
    'type="application/json" async:patch>{"seq":1,"signals":{"' .. id .. '":{"error":null,"loading":false,' ..
    '"status":"ready","value":"' .. q .. '","version":1}}}</script></main></body></html>'
end
local POST_HEADERS = { "X-Async-Request: 1", "Content-Type: application/json" }

-- name, request bytes (ETag-dependent rows are built in the case)
local DIFF = {
  { "a streamed page (one boundary)", req("GET", "/products/sku-2") },
  { "a streamed page whose async signal fails", req("GET", "/products/sku-404") },
  { "a streamed page with two boundaries settling out of order", req("GET", "/diff/pair") },
  { "a page that does not wait", req("GET", "/diff/plain") },
  { "the counter example under a mount prefix", req("GET", "/counter/") },
  { "no route: 404 document", req("GET", "/nowhere") },
  { "HEAD of a streamed page", req("HEAD", "/products/sku-1") },
  { "HEAD of a whole page", req("HEAD", "/diff/plain") },
  { "a route partial", req("GET", "/products/sku-1", { "Accept: application/x-async-partial" }) },
  { "a route partial of a streaming route", req("GET", "/diff/pair", { "Accept: application/x-async-partial" }) },
  { "a query string", req("GET", "/diff/plain?x=1&y=%20") },
  { "client.js", req("GET", "/__async/client.js") },
  { "client.js gzipped", req("GET", "/__async/client.js", { "Accept-Encoding: gzip" }) },
  { "client.js under a mount prefix", req("GET", "/counter/__async/client.js") },
  { "a public file", req("GET", "/style.css") },
  { "a public file gzipped", req("GET", "/notes.txt", { "Accept-Encoding: gzip, deflate" }) },
  { "a handler", req("POST", "/counter/__async/handler/increment", POST_HEADERS,
      '{"args":[],"signals":{"count":41}}') },
  { "a server function", req("POST", "/diff/__async/server/echo", POST_HEADERS, '{"args":[1,"two",[]]}') },
  { "a server function that raises", req("POST", "/diff/__async/server/boom", POST_HEADERS, '{"args":[]}'),
    log = '"POST /diff/__async/server/boom" 500 .* server boom' },
  { "a server function returning nil: 204", req("POST", "/diff/__async/server/nothing", POST_HEADERS, '{}') },
  { "an unknown server function", req("POST", "/diff/__async/server/nope", POST_HEADERS, '{"args":[]}') },
  { "a POST without X-Async-Request", req("POST", "/diff/__async/server/echo", { "Content-Type: application/json" },
      '{"args":[]}') },
  { "a cross-origin POST", req("POST", "/diff/__async/server/echo",
      { "X-Async-Request: 1", "Content-Type: application/json", "Origin: https://evil.example" }, '{"args":[]}') },
  { "a body that is not JSON", req("POST", "/diff/__async/server/echo", POST_HEADERS, "{nope") },
  { "GET on a POST endpoint", req("GET", "/diff/__async/server/echo") },
  { "an unknown /__async/ endpoint", req("GET", "/__async/nothing") },
  { "PUT on a page", req("PUT", "/diff/plain", nil, "x") },
  { "a path with ..", req("GET", "/diff/a/../plain") },
  { "an encoded slash", req("GET", "/diff/a%2Fb") },
  { "a body over limits.body, declared", "POST /diff/__async/server/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
      "Connection: close\r\nX-Async-Request: 1\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n\r\n",
    log = "client intended to send too large body: 1048577 bytes" },
  { "a body over limits.body, declared, on a page", "POST /diff/plain HTTP/1.1\r\nHost: 127.0.0.1\r\n" ..
      "Connection: close\r\nContent-Length: 2000000\r\n\r\n", log = "client intended to send too large body" },
}

describe_ngx("OpenResty: apps inside nginx's Lua module", function()
  local srv, luv_srv, prev_loop
  local loop_mod = require("async.loop")

  setup(function()
    math.randomseed(os.time() + math.floor(now_ms()))
    make_public()
    srv = nginx.start({ http = HTTP, server = SERVER, init = INIT:gsub("@PUBLIC@", public) })
    local Async = require("async")
    -- Async.serve waits on luv (an earlier spec may have left a manual loop)
    prev_loop = loop_mod.get_loop()
    loop_mod.set_loop(loop_mod.luv_loop(uv))
    local apps = require("support.ngx_apps")
    local o = apps.diff_options(public)
    o.port = 0
    o.log = function() end   -- the 500 of a raising server function is expected here
    luv_srv = assert(Async.serve(o))
  end)

  teardown(function()
    if luv_srv then
      local closed = false
      luv_srv:close(function() closed = true end)
      http.wait_until(function() return closed end, 5000, "Async.serve closed")
    end
    if srv then srv:stop() end
    if public then nginx.sh("rm -rf " .. public) end
    if prev_loop then loop_mod.set_loop(prev_loop) end
    -- every handle closed now, not in luv's finalizer at exit
    http.wait_until(function() return (http.active_handles()) == 0 end, 3000, "every handle to close")
  end)

  after_each(function()
    http.sleep(50)   -- lines of the request just answered reach the log
    srv:check_log()
  end)

  it("runs the kernel: computeds, effects, batches, the C core through the FFI, async_bind", function()
    local r = srv:get("/kernel")
    assert.equal(200, r.status)
    assert.equal("84 42,84 C\n", r.body)
  end)

  describe("every endpoint answers the bytes Async.serve sends", function()
    for _, row in ipairs(DIFF) do
      it(row[1], function()
        if row.log then srv:expect_log(row.log) end
        local a = comparable(srv:raw(row[2]))
        local b = comparable(raw_to(luv_srv.port, row[2]))
        if row[2]:find("^HEAD ") then a.complete, b.complete = nil, nil end   -- a HEAD has no body to end
        assert.same(b, a)
      end)
    end

    it("304 for an ETag both servers gave", function()
      local first = srv:get("/__async/client.js")
      local etag = first.headers.etag
      assert.truthy(etag)
      local bytes = req("GET", "/__async/client.js", { "If-None-Match: " .. etag })
      local a = comparable(srv:raw(bytes))
      assert.equal(304, a.status)
      assert.same(comparable(raw_to(luv_srv.port, bytes)), a)
    end)

    it("a page's exact bytes", function()
      local r = srv:get("/diff/plain")
      assert.equal(200, r.status)
      assert.equal("text/html; charset=utf-8", r.headers["content-type"])
      assert.equal('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" ' ..
        'content="width=device-width, initial-scale=1"><title>Plain</title><script src="/diff/__async/client.js" ' ..
        'defer></script></head><body><main async:container><section async:boundary="route"><p>plain & ' ..
        'simple</p></section><script type="application/json" async:snapshot>{"cache":{"browser":{}},' ..
        '"signals":{"router.error":null,"router.params":{},"router.path":"/plain","router.pending":false,' ..
        '"router.query":{},"router.route":"/plain","router.url":"/plain"}}</script></main></body></html>', r.body)
    end)
  end)

  describe("the ngx loop", function()
    before_each(function() assert.equal("ok", srv:get("/reset").body) end)

    it("streams two boundaries that wait 300 ms each in under 450 ms, the shell first", function()
      local c = srv:open(req("GET", "/lab/two"))
      http.wait_until(function() return c.eof end, 5000, "EOF")
      c:close()
      local last = c.arrivals[#c.arrivals].ms
      assert.is_true(c.arrivals[1].ms < 150, "shell at " .. c.arrivals[1].ms .. " ms")
      assert.is_true(last >= 290 and last < 450, "last byte at " .. last .. " ms")
      local r = nginx.parse(c:data())
      assert.equal(200, r.status)
      assert.truthy(r.chunked and r.complete)
      assert.truthy(r.body:find('<template async:fill="a"><b signal:text="a">A</b></template>', 1, true))
      assert.truthy(r.body:find('<template async:fill="b"><b signal:text="b">B</b></template>', 1, true))
    end)

    it("resumes Async.await from an ngx.timer callback", function()
      local r = srv:get("/lab/timed")
      assert.equal(200, r.status)
      assert.equal(lab_page("timed", "from a timer"), r.body)
    end)

    it("kills a run aborted in the middle of its sleep: the code after the sleep never runs", function()
      local r = srv:get("/abort")
      assert.equal("2 after=1 killed=1 status=ready\n", r.body)
    end)

    it("keeps a run's writes buffered until its commit across its waits", function()
      assert.equal("0 done 2 0,2\n", srv:get("/buffered").body)
    end)

    it("interleaves 50 concurrent requests whose async signals wait 300 ms", function()
      local t0 = now_ms()
      local clients = {}
      for i = 1, 50 do clients[i] = srv:open(req("GET", "/lab/one")) end
      http.wait_until(function()
        for _, c in ipairs(clients) do if not c.eof then return false end end
        return true
      end, 10000, "50 responses")
      local total = now_ms() - t0
      for _, c in ipairs(clients) do
        c:close()
        local r = nginx.parse(c:data())
        assert.equal(200, r.status)
        assert.truthy(r.complete)
        assert.equal(lab_page("one", "one"), r.body)
      end
      assert.is_true(total < 1000, "50 requests took " .. total .. " ms (one wait is 300 ms)")
    end)

    it("a client that leaves mid-stream: its runs are killed at once, no thread is left, no code after the wait",
      function()
      local before = json.decode(srv:get("/stats").body)
      local c = srv:open(req("GET", "/lab/slow"))
      http.wait_until(function() return c:data():find("async:snapshot", 1, true) ~= nil end, 3000, "the shell")
      assert.equal("1", srv:get("/lab/counter?k=slow.started").body)
      http.sleep(100)
      c:close()   -- mid-stream: the run sleeps 1500 ms
      local stats
      http.wait_until(function()
        stats = json.decode(srv:get("/stats").body)
        return stats.threads == 0
      end, 1000, "no thread left")
      assert.same({ threads = 0, runs = 0, killed = 1 }, { threads = stats.threads, runs = stats.runs,
                                                         killed = stats.killed - before.killed })
      http.sleep(1600)   -- past the end of the sleep
      assert.equal("0", srv:get("/lab/counter?k=slow.after").body)
      local log = srv:check_log()
      assert.falsy(log:find("still waiting", 1, true), log)
    end)

    it("a write from another thread while a run waits on nginx directly is not the run's", function()
      assert.equal("5 5 ok\n", srv:get("/raw-wait").body)
    end)

    it("a loop-strategy scheduler flushes once, on an ngx.timer, for many writes", function()
      assert.equal(" | 3\n", srv:get("/loop-scheduler").body)
    end)

    it("refuses bad handle options with invalid-argument at the caller's line", function()
      -- @3: the chunk's line of the pcall (the block's first line is line 1)
      assert.equal("false invalid-argument async.ngx: unknown option bogus @3\n" ..
        'false invalid-argument async.ngx: cache.server must be "shdict:NAME" (a lua_shared_dict) ' ..
        "or a cache backend @3\n" ..
        "false invalid-argument async.ngx: unknown cache option other (expected server) @3\n",
        srv:get("/bad-options").body)
    end)

    it("raises a clear error for a wait nginx cannot serve", function()
      assert.equal("false Async.delay: inside nginx only the ngx loop can wait (the active loop would yield to " ..
        "nginx, which resumes at once: a busy loop); use Async.set_loop(Async.ngx_loop()) or leave the default\n",
        srv:get("/manual-wait").body)
      -- the async run's error keeps the library error's message (its
      -- position is the error's `line`, in the init_by_lua chunk)
      assert.equal("error: Async.delay: cannot wait in nginx's init phase " ..
        "(only in rewrite, access, content and timer handlers: load apps in init_by_lua, " ..
        "serve them in content_by_lua)\n",
        (srv:get("/init-wait").body:gsub("nginx%.conf:%d+", "nginx.conf:N")))
    end)
  end)

  describe("the server cache on a lua_shared_dict", function()
    before_each(function() assert.equal("ok", srv:get("/reset").body) end)

    local function call(id, args)
      local r = srv:post("/lab/__async/server/" .. id, json.encode({ args = args }), POST_HEADERS)
      assert.equal(200, r.status, r.raw)
      return json.decode(r.body).value
    end

    it("an entry set in one worker is read by the other", function()
      local set_by = call("put", { "k1", { n = 1, list = {} } }).worker
      local seen = {}
      for _ = 1, 60 do
        local v = call("get", { "k1" })
        seen[v.worker] = v.value
        if seen[1 - set_by] then break end
      end
      assert.is_table(seen[1 - set_by], "never reached the other worker")
      assert.same({ n = 1, list = {} }, seen[1 - set_by])
    end)

    it("fills a key once across workers (single flight with a shared-dict lock)", function()
      local clients = {}
      local body = json.encode({ args = { "slow-key" } })
      for i = 1, 12 do clients[i] = srv:open(req("POST", "/lab/__async/server/fill", POST_HEADERS, body)) end
      http.wait_until(function()
        for _, c in ipairs(clients) do if not c.eof then return false end end
        return true
      end, 10000, "12 answers")
      local values, workers = {}, {}
      for _, c in ipairs(clients) do
        c:close()
        local r = nginx.parse(c:data())
        assert.equal(200, r.status, r.raw)
        local v = json.decode(r.body).value
        values[#values + 1] = json.encode(v.value)
        workers[v.worker] = true
      end
      assert.equal("1", srv:get("/lab/counter?k=fills").body)
      for i = 2, #values do assert.equal(values[1], values[i]) end
      assert.truthy(workers[0] and workers[1], "the requests did not reach both workers")
    end)
  end)
end)
