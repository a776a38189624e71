-- async.transport.luv: HTTP/1.1 on real sockets (loopback, port 0), raw
-- TCP clients sending exact bytes and checking exact bytes (only the value
-- of Date is normalised). Tagged #loop: runs under build/asyncrt, where the
-- shim is linked in (ffi.C) and luv is the interpreter's loop:
--   busted --lua=build/asyncrt --tags=loop spec/http_transport_spec.lua
local uv = require("luv")
local E = require("support.errors")
local loop = require("async.loop")
local t = require("async.transport.luv")
local native = require("async.server.native")
local support = require("support.http")
local bit = require("bit")

local connect, wait_until, sleep, response = support.connect, support.wait_until, support.sleep, support.response

local abort_mod
do
  local ok, m = pcall(require, "async.kernel.abort")
  abort_mod = ok and m or require("async.abort")
end

local TEXT = "Content-Type: text/plain; charset=utf-8"

-- what every test opened, closed in after_each
local servers, clients

local function serve(opts, handler)
  opts = opts or {}
  local logs = {}
  opts.log = opts.log or function(e) logs[#logs + 1] = e end
  local srv = assert(t.listen(opts, handler))
  servers[#servers + 1] = srv
  return srv, logs
end

local function client(srv, opts)
  local c = connect(srv.port, opts)
  clients[#clients + 1] = c
  return c
end

local function close_server(srv)
  local closed = false
  srv:close(function() closed = true end)
  wait_until(function() return closed end, 5000, "the server to close")
end

-- a log entry without its duration (checked separately: a number >= 0)
local function entry(e)
  assert.is_number(e.ms)
  assert.is_true(e.ms >= 0)
  local copy = {}
  for k, v in pairs(e) do if k ~= "ms" then copy[k] = v end end
  return copy
end

local function ok_text(body, extra)
  local h = { "Content-Type: text/plain" }
  for _, x in ipairs(extra or {}) do h[#h + 1] = x end
  table.insert(h, 2, "Content-Length: " .. #body)
  return response("200 OK", h, body)
end

-- a handler answering "METHOD path body" as text
local function echo(req)
  return { status = 200, headers = { { "Content-Type", "text/plain" } }, body = req.method .. " " .. req.path ..
    (req.body ~= "" and (" " .. req.body) or "") }
end

local function refusal(status_line, reason)
  return response(status_line, { TEXT, "Content-Length: " .. (#reason + 1), "Connection: close" }, reason .. "\n")
end

-- expose, not describe: luv stays in package.loaded for the files after
-- this one. asyncrt's preload sets package.loaded.uv only on the first
-- require("luv"), so once busted's insulation dropped both, a later file
-- would see luv without uv (spec/loop_luv_spec.lua checks they are one).
expose("transport.luv #loop", function()
  before_each(function()
    loop.set_loop(loop.luv_loop())
    loop.set_resume_hook(nil)
    servers, clients = {}, {}
  end)

  after_each(function()
    for _, c in ipairs(clients) do c:close() end
    for _, s in ipairs(servers) do
      if not s.closing then close_server(s) end
    end
    wait_until(function() return (support.active_handles()) == 0 end, 3000, "every handle to close")
  end)

  it("runs against the shim linked into asyncrt", function()
    assert.equal("linked", native.source)
  end)

  it("answers a GET with exact bytes and logs it", function()
    local seen
    local srv, logs = serve({}, function(req)
      seen = req
      return { status = 200, headers = { { "Content-Type", "text/plain" } }, body = "hello" }
    end)
    assert.equal("127.0.0.1", srv.host)
    assert.is_true(srv.port > 0)
    assert.equal("http://127.0.0.1:" .. srv.port, srv.url)
    local c = client(srv)
    c:send("GET /hello?x=1&y HTTP/1.1\r\nHost: t\r\nX-Mixed-Case:  v  \r\n\r\n")
    local want = ok_text("hello")
    assert.equal(want, c:wait_len(#want))
    assert.equal("GET", seen.method)
    assert.equal("/hello?x=1&y", seen.target)
    assert.equal("/hello", seen.path)
    assert.equal("x=1&y", seen.query)
    assert.equal("1.1", seen.version)
    assert.same({ host = "t", ["x-mixed-case"] = "v" }, seen.headers)
    assert.equal("", seen.body)
    assert.equal("127.0.0.1", seen.remote)
    assert.is_true(abort_mod.is(seen.abort))
    assert.is_false(seen.abort.aborted)
    wait_until(function() return #logs == 1 end)
    assert.same({ method = "GET", path = "/hello", status = 200, bytes = 5, remote = "127.0.0.1" }, entry(logs[1]))
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", c:data():match("\r\nDate: ([^\r]*)\r\n"))
  end)

  it("keeps a connection alive for three requests in turn", function()
    local srv = serve({}, echo)
    local c = client(srv)
    local want = ""
    for i = 1, 3 do
      c:send("GET /r" .. i .. " HTTP/1.1\r\nHost: t\r\n\r\n")
      want = want .. ok_text("GET /r" .. i)
      assert.equal(want, c:wait_len(#want))
      assert.equal(1, srv:stats().connections)
    end
    assert.is_false(c.eof)
  end)

  it("answers three pipelined requests sent in one write, in order", function()
    local srv = serve({}, echo)
    local c = client(srv)
    c:send("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n" ..
           "POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody" ..
           "GET /3 HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = ok_text("GET /1") .. ok_text("POST /2 body") .. ok_text("GET /3")
    assert.equal(want, c:wait_len(#want))
  end)

  it("runs a pipelined request only after the slow one before it, answers in order", function()
    local events = {}
    local srv = serve({}, function(req)
      events[#events + 1] = "start " .. req.path
      if req.path == "/slow" then loop.delay(100) end
      events[#events + 1] = "end " .. req.path
      return echo(req)
    end)
    local c = client(srv)
    c:send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = ok_text("GET /slow") .. ok_text("GET /fast")
    assert.equal(want, c:wait_len(#want))
    assert.same({ "start /slow", "end /slow", "start /fast", "end /fast" }, events)
  end)

  it("de-chunks a chunked request body", function()
    local srv = serve({}, echo)
    local c = client(srv)
    c:send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" ..
           "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n")
    local want = ok_text("POST /echo hello, world")
    assert.equal(want, c:wait_len(#want))
  end)

  describe("refuses and closes", function()
    local cases = {
      { "Content-Length with Transfer-Encoding",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400 Bad Request", "Bad Request", "content_length_with_transfer_encoding" },
      { "two differing Content-Length",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "400 Bad Request", "Bad Request", "duplicate_content_length" },
      { "20 KiB of headers",
        "GET / HTTP/1.1\r\nHost: t\r\n" .. ("X-Pad: " .. ("p"):rep(1000) .. "\r\n"):rep(20) .. "\r\n",
        "431 Request Header Fields Too Large", "Request Header Fields Too Large", "headers_too_large" },
      { "a transfer coding other than chunked", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        "501 Not Implemented", "Not Implemented", "transfer_encoding" },
      { "HTTP/2.0 in HTTP/1 framing", "GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        "505 HTTP Version Not Supported", "HTTP Version Not Supported", "version" },
      { "an unknown expectation", "POST / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx",
        "417 Expectation Failed", "Expectation Failed", "expectation_failed" },
      { "a missing Host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request", "Bad Request", "host" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local called = false
        local srv, logs = serve({}, function() called = true return { body = "no" } end)
        local c = client(srv)
        c:send(case[2])
        assert.equal(refusal(case[3], case[4]), c:wait_eof())
        assert.is_nil(c.err)
        assert.is_false(called)
        wait_until(function() return #logs == 1 end)
        assert.equal(tonumber(case[3]:sub(1, 3)), logs[1].status)
        assert.equal(case[5], logs[1].error)
      end)
    end

    it("a 2 MiB body: 413 before the body is read, without a reset", function()
      local called = false
      local srv, logs = serve({}, function() called = true return { body = "no" } end)
      local c = client(srv)
      c:send("PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n" .. ("b"):rep(2097152))
      assert.equal(refusal("413 Content Too Large", "Content Too Large"), c:wait_eof())
      assert.is_nil(c.err)
      assert.is_false(called)
      wait_until(function() return #logs == 1 end)
      assert.same({ method = "PUT", path = "/upload", status = 413, bytes = 18, remote = "127.0.0.1",
                    error = "body_too_large", refused = true }, entry(logs[1]))
    end)

    it("a chunked body over limits.body: 413", function()
      local srv = serve({ limits = { body = 8 } }, echo)
      local c = client(srv)
      c:send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
      assert.equal(refusal("413 Content Too Large", "Content Too Large"), c:wait_eof())
    end)

    it("garbage: 400 and close, while another client is served", function()
      local srv = serve({}, function(req)
        loop.delay(100)
        return echo(req)
      end)
      local b = client(srv)
      b:send("GET /patient HTTP/1.1\r\nHost: t\r\n\r\n")
      local a = client(srv)
      a:send("\22\3\1\2\0\1\0\1\252\3\3garbage\r\n\r\n")
      assert.equal(refusal("400 Bad Request", "Bad Request"), a:wait_eof())
      assert.is_false(b.eof)
      local want = ok_text("GET /patient")
      assert.equal(want, b:wait_len(#want))
      assert.is_false(b.eof)
    end)

    it("error_response shapes the answer; the framing stays the transport's", function()
      local seen
      local srv = serve({ limits = { body = 4 }, error_response = function(e)
        seen = e
        return { status = e.status,
                 headers = { { "Content-Type", "application/json" }, { "Connection", "keep-alive" } },
                 body = '{"error":{"code":"' .. e.code .. '"}}' }
      end }, echo)
      local c = client(srv)
      c:send("POST /x?q HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
      local body = '{"error":{"code":"body_too_large"}}'
      assert.equal(response("413 Content Too Large", { "Content-Type: application/json", "Content-Length: " .. #body,
                                                       "Connection: close" }, body), c:wait_eof())
      assert.same({ status = 413, code = "body_too_large", message = "Content-Length over the limit", method = "POST",
                    path = "/x", remote = "127.0.0.1" }, seen)
    end)
  end)

  describe("timeouts", function()
    it("a header block not complete in time: 408, then close", function()
      local srv, logs = serve({ timeouts = { header = 150 } }, echo)
      local c = client(srv)
      c:send("GET /late HTTP/1.1\r\nHost: t\r\n")
      local t0 = uv.now()
      assert.equal(refusal("408 Request Timeout", "Request Timeout"), c:wait_eof())
      local waited = uv.now() - t0
      assert.is_true(waited >= 140 and waited < 2000, "closed after " .. waited .. " ms")
      wait_until(function() return #logs == 1 end)
      assert.equal("timeout", logs[1].error)
    end)

    it("a trickle of header bytes does not extend the header timeout", function()
      local srv = serve({ timeouts = { header = 200, idle = 5000 } }, echo)
      local c = client(srv)
      local t0 = uv.now()
      local line = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " .. ("s"):rep(100)
      local i = 0
      local drip = uv.new_timer()
      drip:start(20, 20, function()
        i = i + 1
        if i <= #line and not c.eof then c:send(line:sub(i, i)) else drip:stop() end
      end)
      assert.equal(refusal("408 Request Timeout", "Request Timeout"), c:wait_eof())
      drip:close()
      local waited = uv.now() - t0
      assert.is_true(waited >= 190 and waited < 1000, "closed after " .. waited .. " ms")
    end)

    it("an idle keep-alive connection is closed after timeouts.idle", function()
      local srv = serve({ timeouts = { idle = 150 } }, echo)
      local c = client(srv)
      c:send("GET /once HTTP/1.1\r\nHost: t\r\n\r\n")
      local want = ok_text("GET /once")
      assert.equal(want, c:wait_len(#want))
      local t0 = uv.now()
      assert.equal(want, c:wait_eof())
      local waited = uv.now() - t0
      assert.is_true(waited >= 130 and waited < 2000, "closed after " .. waited .. " ms")
      assert.equal(0, srv:stats().connections)
    end)

    it("a body that stops coming: 408 after timeouts.body", function()
      local srv = serve({ timeouts = { body = 150 } }, echo)
      local c = client(srv)
      c:send("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
      assert.equal(refusal("408 Request Timeout", "Request Timeout"), c:wait_eof())
    end)
  end)

  describe("disconnects", function()
    it("mid-stream: write returns nil, \"closed\" and req.abort fires", function()
      local results, aborted, stream_done = {}, nil, false
      local srv, logs = serve({}, function(req)
        req.abort:on_abort(function(reason) aborted = reason end)
        return { status = 200, headers = { { "Content-Type", "text/plain" } }, stream = function(write)
          while true do
            local ok, err = write("tick\n")
            results[#results + 1] = { ok, err }
            if not ok then break end
            loop.delay(10)
          end
          stream_done = true
        end }
      end)
      local c = client(srv)
      c:send("GET /ticks HTTP/1.1\r\nHost: t\r\n\r\n")
      c:wait_for("tick\n")
      c:close()
      wait_until(function() return stream_done end)
      assert.equal("client disconnected", aborted)
      assert.same({ nil, "closed" }, results[#results])
      for i = 1, #results - 1 do assert.same({ true }, results[i]) end
      wait_until(function() return #logs == 1 end)
      assert.equal(200, logs[1].status)
      assert.matches("^closed: ", logs[1].error)
      assert.equal(5 * (#results - 1), logs[1].bytes)
    end)

    it("while the handler waits: the abort token cancels the wait; logged as 499", function()
      local started, resumed = false, false
      local srv, logs = serve({}, function(req)
        started = true
        loop.delay(60000, req.abort)
        resumed = true
        return echo(req)
      end)
      local c = client(srv)
      c:send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
      wait_until(function() return started end)
      c:close()
      wait_until(function() return #logs == 1 end)
      assert.same({ method = "GET", path = "/wait", status = 499, bytes = 0, remote = "127.0.0.1",
                    error = "closed: client closed the connection" }, entry(logs[1]))
      assert.is_false(resumed)
      assert.equal(0, srv:stats().connections)
    end)
  end)

  it("backpressure: a client that does not read keeps the server's queue bounded", function()
    local CHUNK, TOTAL = 65536, 50 * 1024 * 1024
    local piece = ("z"):rep(CHUNK)
    local written, max_queued, done = 0, 0, false
    local srv
    collectgarbage()
    local base_kb = collectgarbage("count")
    srv = serve({}, function()
      return { status = 200, stream = function(write)
        while written < TOTAL do
          assert(write(piece))
          written = written + CHUNK
          local q = srv:stats().queued
          if q > max_queued then max_queued = q end
        end
        done = true
      end }
    end)
    local c = client(srv, { no_read = true, count_only = true })
    local tail = ""
    c.on_data = function(chunk) tail = (tail .. chunk):sub(-16) end
    c:send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    sleep(300)
    assert.is_false(done)
    assert.is_true(written < TOTAL / 2, "wrote " .. written .. " bytes to a client that reads nothing")
    assert.is_true(max_queued <= 65536 + CHUNK + 64, "queued up to " .. max_queued .. " bytes")
    collectgarbage()
    local live_kb = collectgarbage("count") - base_kb
    assert.is_true(live_kb < 4096, "the Lua heap holds " .. live_kb .. " KiB more while the client waits")
    c:read()
    local head = response("200 OK", { "Transfer-Encoding: chunked" }, "")
    local want = #head - 1 + #"Sun, 06 Nov 1994 08:49:37 GMT" + (TOTAL / CHUNK) * (#"10000\r\n" + CHUNK + 2) + 5
    wait_until(function() return c.nread >= want or c.eof end, 20000, "50 MiB")
    assert.equal(want, c.nread)
    assert.equal("\r\n0\r\n\r\n", tail:sub(-7))
    assert.is_true(done)
    assert.is_true(max_queued <= 65536 + CHUNK + 64, "queued up to " .. max_queued .. " bytes")
  end)

  it("a client that stops reading is dropped after timeouts.send: write -> nil, \"closed\", abort fires", function()
    local last, aborted = nil, nil
    local srv, logs = serve({ timeouts = { send = 200 } }, function(req)
      req.abort:on_abort(function(reason) aborted = reason end)
      return { stream = function(write)
        local piece = ("s"):rep(65536)
        repeat last = { write(piece) } until not last[1]
      end }
    end)
    local c = client(srv, { no_read = true, count_only = true })
    c:send("GET /stuck HTTP/1.1\r\nHost: t\r\n\r\n")
    local t0 = uv.now()
    wait_until(function() return last and not last[1] end, 5000, "write to fail")
    local waited = uv.now() - t0
    assert.is_true(waited >= 190 and waited < 3000, "dropped after " .. waited .. " ms")
    assert.same({ nil, "closed" }, last)
    assert.equal("client disconnected", aborted)
    wait_until(function() return #logs == 1 end)
    assert.equal("closed: send timeout", logs[1].error)
  end)

  it("pipelined requests past limits.pipeline to a client that reads nothing: bounded, then all answered in order",
     function()
    local n, BIG = 0, ("r"):rep(262144)
    local srv = serve({ limits = { pipeline = 4096 } }, function(req)
      n = n + 1
      return { status = 200, headers = { { "Content-Type", "text/plain" } }, body = req.path .. BIG }
    end)
    local c = client(srv, { no_read = true })
    local wire, want = {}, {}
    for i = 1, 100 do
      wire[i] = "GET /" .. i .. " HTTP/1.1\r\nHost: t\r\nX-Pad: " .. ("p"):rep(1000) .. "\r\n\r\n"
      want[i] = ok_text("/" .. i .. BIG)
    end
    c:send(table.concat(wire))
    sleep(200)
    assert.is_true(n < 100, "handled " .. n .. " requests for a client that reads nothing")
    assert.is_true(srv:stats().queued <= 65536 + 262144 + 1024, "queued " .. srv:stats().queued)
    c:read()
    local expected = table.concat(want)
    assert.equal(expected, c:wait_len(#expected, 20000))
    assert.equal(100, n)
  end)

  it("HEAD: the headers of a GET, no body bytes; the connection goes on", function()
    local srv = serve({}, function() return { status = 200, headers = { { "Content-Type", "text/plain" } },
                                               body = "hello world" } end)
    local c = client(srv)
    c:send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /h HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = response("200 OK", { "Content-Type: text/plain", "Content-Length: 11" }, "") .. ok_text("hello world")
    assert.equal(want, c:wait_len(#want))
    sleep(20)
    assert.equal(want, c:normalized())
  end)

  it("HEAD of a streamed response: no body, the stream is not run", function()
    local ran = false
    local srv = serve({}, function() return { stream = function(write) ran = true write("x") end } end)
    local c = client(srv)
    c:send("HEAD /s HTTP/1.1\r\nHost: t\r\n\r\nGET /s HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = response("200 OK", { "Transfer-Encoding: chunked" }, "") ..
                 response("200 OK", { "Transfer-Encoding: chunked" }, "1\r\nx\r\n0\r\n\r\n")
    assert.equal(want, c:wait_len(#want))
    assert.is_true(ran)
  end)

  it("Expect: 100-continue gets 100 Continue before the body is sent", function()
    local calls = 0
    local srv = serve({}, function(req) calls = calls + 1 return echo(req) end)
    local c = client(srv)
    c:send("PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    local cont = "HTTP/1.1 100 Continue\r\n\r\n"
    assert.equal(cont, c:wait_len(#cont))
    assert.equal(0, calls)
    c:send("hello")
    local want = cont .. ok_text("PUT /up hello")
    assert.equal(want, c:wait_len(#want))
    assert.equal(1, calls)
  end)

  it("streams a response with chunked framing; empty writes send nothing", function()
    local results = {}
    local srv = serve({}, function() return { status = 201, headers = { { "X-A", "1" } }, stream = function(write)
      results[#results + 1] = write("ab")
      results[#results + 1] = write("")
      results[#results + 1] = write(nil)
      results[#results + 1] = write("cde")
    end } end)
    local c = client(srv)
    c:send("GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = response("201 Created", { "X-A: 1", "Transfer-Encoding: chunked" }, "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")
    assert.equal(want, c:wait_len(#want))
    assert.same({ true, true, true, true }, results)
  end)

  describe("HTTP/1.0 and Connection", function()
    it("HTTP/1.0 closes after the response", function()
      local srv = serve({}, echo)
      local c = client(srv)
      c:send("GET /old HTTP/1.0\r\n\r\n")
      assert.equal(ok_text("GET /old", { "Connection: close" }), c:wait_eof())
    end)

    it("HTTP/1.0 with keep-alive stays open", function()
      local srv = serve({}, echo)
      local c = client(srv)
      c:send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      local want = ok_text("GET /a", { "Connection: keep-alive" })
      assert.equal(want, c:wait_len(#want))
      c:send("GET /b HTTP/1.0\r\n\r\n")
      want = want .. ok_text("GET /b", { "Connection: close" })
      assert.equal(want, c:wait_eof())
    end)

    it("HTTP/1.0 streamed response: delimited by closing", function()
      local srv = serve({}, function() return { stream = function(write) write("one ") write("two") end } end)
      local c = client(srv)
      c:send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      assert.equal(response("200 OK", { "Connection: close" }, "one two"), c:wait_eof())
    end)

    it("Connection: close in 1.1: answered, then closed; pipelined bytes after it are dropped", function()
      local paths = {}
      local srv = serve({}, function(req) paths[#paths + 1] = req.path return echo(req) end)
      local c = client(srv)
      c:send("GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: t\r\n\r\n")
      assert.equal(ok_text("GET /last", { "Connection: close" }), c:wait_eof())
      assert.same({ "/last" }, paths)
    end)
  end)

  it("a handler error: 500, logged; the server keeps serving", function()
    local srv, logs = serve({}, function(req)
      if req.path == "/boom" then error("boom") end
      if req.path == "/bad" then return "not a table" end
      return echo(req)
    end)
    local c = client(srv)
    c:send("GET /boom HTTP/1.1\r\nHost: t\r\n\r\nGET /bad HTTP/1.1\r\nHost: t\r\n\r\n" ..
           "GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
    local err500 = response("500 Internal Server Error", { TEXT, "Content-Length: 22" }, "Internal Server Error\n")
    local want = err500 .. err500 .. ok_text("GET /fine")
    assert.equal(want, c:wait_len(#want))
    wait_until(function() return #logs == 3 end)
    assert.equal(500, logs[1].status)
    assert.matches("boom", logs[1].error)
    assert.matches("stack traceback", logs[1].error)
    assert.equal("the handler returned string, not a response table", logs[2].error)
    assert.equal(200, logs[3].status)
  end)

  it("an error in stream after the head: the connection closes without the last chunk", function()
    local aborted
    local srv, logs = serve({}, function(req)
      req.abort:on_abort(function(reason) aborted = reason end)
      return { stream = function(write) write("part") error("stream broke") end }
    end)
    local c = client(srv)
    c:send("GET /broken HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal(response("200 OK", { "Transfer-Encoding: chunked" }, "4\r\npart\r\n"), c:wait_eof())
    assert.equal("response failed", aborted)
    wait_until(function() return #logs == 1 end)
    assert.equal(200, logs[1].status)
    assert.equal(4, logs[1].bytes)
    assert.matches("stream broke", logs[1].error)
  end)

  it("headers: a map is sent sorted; Date and Server can be replaced; framing headers are the transport's", function()
    local srv = serve({}, function(req)
      if req.path == "/map" then return { headers = { ["X-B"] = "2", ["X-A"] = 1 }, body = "m" } end
      return { status = 404, headers = { { "Server", "mine" }, { "Date", "then" }, { "Content-Length", "99" },
                                         { "Transfer-Encoding", "chunked" } }, body = "nf" }
    end)
    local c = client(srv)
    c:send("GET /map HTTP/1.1\r\nHost: t\r\n\r\nGET /other HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = response("200 OK", { "X-A: 1", "X-B: 2", "Content-Length: 1" }, "m") ..
      "HTTP/1.1 404 Not Found\r\nServer: mine\r\nDate: X\r\nContent-Length: 2\r\n\r\nnf"
    assert.equal(want, c:wait_len(#want))
    assert.matches("Date: then\r\n", c:data(), 1, true)
  end)

  it("a header value with CR LF is refused: 500, nothing injected", function()
    local srv = serve({}, function() return { headers = { { "X-Evil", "a\r\nSet-Cookie: x=1" } }, body = "no" } end)
    local c = client(srv)
    c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = response("500 Internal Server Error", { TEXT, "Content-Length: 22" }, "Internal Server Error\n")
    assert.equal(want, c:wait_len(#want))
  end)

  it("graceful close: idle connections close, in-flight requests finish with Connection: close", function()
    local slow_started = false
    local srv, logs = serve({}, function(req)
      if req.path == "/slow" then slow_started = true loop.delay(150) end
      return echo(req)
    end)
    local idle = client(srv)
    idle:send("GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
    local first = ok_text("GET /first")
    assert.equal(first, idle:wait_len(#first))
    local busy = client(srv)
    busy:send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_until(function() return slow_started end)
    local closed = false
    srv:close(function() closed = true end)
    assert.equal(first, idle:wait_eof())
    assert.is_false(busy.eof)
    assert.is_false(closed)
    local late = client(srv)
    wait_until(function() return late.eof end)
    assert.equal("ECONNREFUSED", late.err)
    assert.equal(ok_text("GET /slow", { "Connection: close" }), busy:wait_eof())
    busy:close()
    wait_until(function() return closed end)
    assert.equal(2, #logs)
  end)

  it("over limits.connections: 503 and close; served again once one left", function()
    local srv, logs = serve({ limits = { connections = 2 } }, echo)
    local a, b = client(srv), client(srv)
    for _, c in ipairs({ a, b }) do
      c:send("GET /in HTTP/1.1\r\nHost: t\r\n\r\n")
      c:wait_len(#ok_text("GET /in"))
    end
    assert.equal(2, srv:stats().connections)
    local extra = client(srv)
    assert.equal(refusal("503 Service Unavailable", "Service Unavailable"), extra:wait_eof())
    assert.is_nil(extra.err)
    extra:close()
    wait_until(function() return srv:stats().rejected == 0 end)
    a:close()
    wait_until(function() return srv:stats().connections == 1 end)
    local d = client(srv)
    d:send("GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
    local want = ok_text("GET /again")
    assert.equal(want, d:wait_len(#want))
    assert.equal("connections", logs[3].error)
    assert.equal(503, logs[3].status)
  end)

  it("listen reports a bound port as nil, err; misuse raises", function()
    local srv = serve({}, echo)
    local again, err = t.listen({ port = srv.port }, echo)
    assert.is_nil(again)
    assert.matches("^EADDRINUSE", err)
    E.has_error(function() t.listen({}, nil) end, "listen: handler must be a function, got nil")
    E.has_error(function() t.listen({ timeouts = { idle = -1 } }, echo) end,
      "listen: timeouts.idle must be a number > 0 or false, got -1")
    E.has_error(function() t.listen({ limits = { bodyy = 1 } }, echo) end, "listen: unknown limits.bodyy")
  end)

  -- ===== seeded random pieces over the socket =====

  local seed = tonumber(os.getenv("FUZZ_SEED")) or 20240601
  it("pipelined requests in random pieces get the same answers (FUZZ_SEED=" .. seed .. ")", function()
    local srv = serve({}, echo)
    for round = 1, 10 do
      local state = bit.tobit(seed * 2654435761 + round * 40503 + 0x9E3779B9)
      local function r(n)
        state = bit.bxor(state, bit.lshift(state, 13))
        state = bit.bxor(state, bit.rshift(state, 17))
        state = bit.bxor(state, bit.lshift(state, 5))
        return (state % n + n) % n + 1
      end
      local wire, want = {}, {}
      for i = 1, r(6) do
        local body = ("body" .. i .. "-"):rep(r(50) - 1)
        if r(2) == 1 or body == "" then
          wire[#wire + 1] = "GET /g" .. i .. "?q HTTP/1.1\r\nHost: t\r\nX-N: " .. r(1000) .. "\r\n\r\n"
          want[#want + 1] = ok_text("GET /g" .. i)
        elseif r(2) == 1 then
          wire[#wire + 1] = "POST /p" .. i .. " HTTP/1.1\r\nHost: t\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
          want[#want + 1] = ok_text("POST /p" .. i .. " " .. body)
        else
          local half = r(#body)
          wire[#wire + 1] = "POST /c" .. i .. " HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" ..
            string.format("%x\r\n%s\r\n", half, body:sub(1, half)) ..
            (half < #body and string.format("%x\r\n%s\r\n", #body - half, body:sub(half + 1)) or "") .. "0\r\n\r\n"
          want[#want + 1] = ok_text("POST /c" .. i .. " " .. body)
        end
      end
      local s, expected = table.concat(wire), table.concat(want)
      local c = client(srv)
      local pos = 1
      while pos <= #s do
        local n = r(4) == 1 and 1 or r(200)
        c:send(s:sub(pos, pos + n - 1))
        pos = pos + n
        if r(3) == 1 then sleep(1) end
      end
      assert.equal(expected, c:wait_len(#expected), "round " .. round)
      c:close()
    end
  end)
end)
