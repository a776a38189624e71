-- async.transport.http_parser: the Lua object over the C shim (src/http).
-- Runs under plain luajit (async_http.so from package.cpath) and, through
-- make sanitize, against the shim built with ASan+UBSan.
local http_parser = require("async.transport.http_parser")
local E = require("support.errors")
local bit = require("bit")

local function parse(s, limits) return http_parser.parse(s, limits) end

describe("http_parser: requests", function()
  local cases = {
    { "GET with query and repeated headers",
      "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\nX-Empty:\r\n\r\n",
      { { method = "GET", target = "/a/b?x=1&y=2", path = "/a/b", query = "x=1&y=2", version = "1.1",
          headers = { host = "h", accept = "a, b", ["x-empty"] = "" }, body = "", keep_alive = true,
          chunked = false, header_bytes = 70 } } },
    { "POST with Content-Length",
      "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
      { { method = "POST", target = "/p", path = "/p", query = "", version = "1.1",
          headers = { host = "h", ["content-length"] = "3" }, body = "abc", keep_alive = true,
          chunked = false, content_length = 3, header_bytes = 48 } } },
    { "chunked body, de-chunked",
      "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
      { { method = "PUT", target = "/c", path = "/c", query = "", version = "1.1",
          headers = { host = "h", ["transfer-encoding"] = "chunked" }, body = "hello world", keep_alive = true,
          chunked = true, header_bytes = 56 } } },
    { "HTTP/1.0 without Host, closing",
      "GET / HTTP/1.0\r\n\r\n",
      { { method = "GET", target = "/", path = "/", query = "", version = "1.0", headers = {}, body = "",
          keep_alive = false, chunked = false, header_bytes = 18 } } },
    { "absolute-form target",
      "GET http://example.com/x/y?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
      { { method = "GET", target = "http://example.com/x/y?q", path = "/x/y", query = "q", version = "1.1",
          headers = { host = "example.com" }, body = "", keep_alive = true, chunked = false, header_bytes = 60 } } },
    { "OPTIONS *",
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
      { { method = "OPTIONS", target = "*", path = "*", query = "", version = "1.1", headers = { host = "h" },
          body = "", keep_alive = true, chunked = false, header_bytes = 31 } } },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local list, err, n = parse(c[2])
      assert.is_nil(err)
      assert.same(c[3], list)
      assert.equal(#c[2], n)
    end)
  end

  it("pipelined requests come out one at a time, in order", function()
    local s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" ..
      "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok" ..
      "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    local p = http_parser.new()
    local n, ev = p:feed(s)
    assert.equal("headers", ev)
    assert.equal("/1", p:head().path)
    local pos = n + 1
    n, ev = p:feed(s, pos)
    assert.equal("request", ev)
    pos = pos + n
    assert.equal(28, pos - 1)
    assert.equal(0, (p:feed(s, pos)))   -- stopped until next()
    p:next()
    local paths = {}
    while true do
      n, ev = p:feed(s, pos)
      pos = pos + n
      if ev == "request" then
        local r = p:request()
        paths[#paths + 1] = r.path .. ":" .. r.body .. ":" .. tostring(r.keep_alive)
        p:next()
      elseif ev == "need_more" then
        break
      end
    end
    assert.same({ "/2:ok:true", "/3::false" }, paths)
    assert.equal(#s + 1, pos)
    p:free()
    p:free()
  end)
end)

describe("http_parser: refusals", function()
  local cases = {
    { "garbage", "\22\3\1\0\165\1\0\0", nil, "malformed", 400 },
    { "Content-Length and Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", nil,
      "content_length_with_transfer_encoding", 400 },
    { "two differing Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
      nil, "duplicate_content_length", 400 },
    { "headers over the limit", "GET / HTTP/1.1\r\nHost: h\r\nX: " .. ("a"):rep(100) .. "\r\n\r\n", { headers = 64 },
      "headers_too_large", 431 },
    { "declared body over the limit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", { body = 10 },
      "body_too_large", 413 },
    { "chunked body over the limit",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n",
      { body = 10 }, "body_too_large", 413 },
    { "unknown transfer coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: br\r\n\r\n", nil,
      "transfer_encoding", 501 },
    { "obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", nil, "bad_header", 400 },
    { "no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", nil, "host", 400 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", nil, "version", 505 },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local list, err = parse(c[2], c[3])
      assert.same({}, list)
      assert.equal(c[4], err.code)
      assert.equal(c[5], err.status)
      assert.is_string(err.detail)
    end)
  end

  it("a refusal names the request line when it was read", function()
    local _, err = parse("POST /up?x HTTP/1.1\r\nHost: h\r\nContent-Length: 99\r\n\r\n", { body = 10 })
    assert.same({ code = "body_too_large", status = 413, detail = "Content-Length over the limit",
                  method = "POST", target = "/up?x", version = "1.1" }, err)
  end)

  it("misuse raises", function()
    E.has_error(function() http_parser.new({ headers = 0 }) end,
      "http_parser.new: limits.headers must be an integer 1..2^32-1, got 0")
    E.has_error(function() http_parser.new("x") end, "http_parser.new: limits must be a table, got string")
    local p = http_parser.new()
    E.has_error(function() p:head() end, "http_parser: head() before the header block was complete")
    E.has_error(function() p:request() end, "http_parser: request() before a request was complete")
    p:free()
    E.has_error(function() p:feed("x") end, "http_parser: feed after free")
  end)
end)

-- ===== seeded random splits =====

local seed = tonumber(os.getenv("FUZZ_SEED")) or 20240601

local function rng(s)
  local state = bit.tobit(s * 2654435761 + 0x9E3779B9)
  if state == 0 then state = 1 end
  return function(n)
    state = bit.bxor(state, bit.lshift(state, 13))
    state = bit.bxor(state, bit.rshift(state, 17))
    state = bit.bxor(state, bit.lshift(state, 5))
    return (state % n + n) % n + 1
  end
end

-- A random valid request and the table the parser must make of it.
local function random_request(r)
  local methods = { "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" }
  local method = methods[r(#methods)]
  local path = "/"
  for _ = 1, r(4) - 1 do path = path .. ("abcxyz019-_."):sub(r(12), r(12) + r(3)) .. "/" end
  local query = r(2) == 1 and "" or ("k" .. r(99) .. "=v" .. r(999))
  local target = query == "" and path or (path .. "?" .. query)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: h" .. r(9) }
  local headers = { host = lines[2]:sub(7) }
  for i = 1, r(5) - 1 do
    local name = "X-H" .. i .. ("abc"):sub(1, r(3))
    local value = ("v"):rep(r(40)) .. r(1000)
    lines[#lines + 1] = name .. ":" .. (" "):rep(r(3) - 1) .. value .. (" "):rep(r(2) - 1)
    headers[name:lower()] = value
  end
  local body = ""
  local kind = r(3)   -- 1 none, 2 Content-Length, 3 chunked
  local wire_body = ""
  if kind > 1 then
    local parts = {}
    for _ = 1, r(4) do parts[#parts + 1] = ("0123456789abcdefXYZ\r\n"):rep(r(30)):sub(1, r(200)) end
    body = table.concat(parts)
    if kind == 2 then
      lines[#lines + 1] = "Content-Length: " .. #body
      headers["content-length"] = tostring(#body)
      wire_body = body
    else
      lines[#lines + 1] = "Transfer-Encoding: chunked"
      headers["transfer-encoding"] = "chunked"
      local w = {}
      for _, p in ipairs(parts) do
        if #p > 0 then w[#w + 1] = string.format("%x\r\n%s\r\n", #p, p) end
      end
      w[#w + 1] = "0\r\n\r\n"
      wire_body = table.concat(w)
    end
  end
  local head = table.concat(lines, "\r\n") .. "\r\n\r\n"
  return head .. wire_body, { method = method, path = path, query = query, headers = headers, body = body }
end

local function summary(req)
  return { method = req.method, path = req.path, query = req.query, headers = req.headers, body = req.body }
end

-- Feeds s arriving in pieces (sizes from r), as a transport does: the bytes
-- not consumed wait in front of the next piece.
local function parse_split(s, r)
  local p = http_parser.new()
  local out, pending, pos = {}, "", 1
  while pos <= #s or #pending > 0 do
    local take = r(3) == 1 and 1 or r(97)
    pending = pending .. s:sub(pos, pos + take - 1)
    pos = pos + take
    local at = 1
    while at <= #pending do
      local n, ev = p:feed(pending, at)
      at = at + n
      if ev == "request" then
        out[#out + 1] = summary(p:request())
        p:next()
      elseif ev == "error" then
        local e = p:error()
        p:free()
        return out, e
      elseif ev == "need_more" then
        break
      end
    end
    pending = pending:sub(at)
    if pos > #s and at == 1 and #pending > 0 then break end
  end
  p:free()
  return out
end

describe("http_parser: seeded random splits (FUZZ_SEED=" .. seed .. ")", function()
  it("300 pipelined streams parse the same whole and in random pieces", function()
    for i = 1, 300 do
      local r = rng(seed + i)
      local wire, want = {}, {}
      for k = 1, r(5) do
        wire[k], want[k] = random_request(r)
      end
      local s = table.concat(wire)
      local whole, err = parse(s)
      assert.is_nil(err, "input " .. i)
      local got = {}
      for k, req in ipairs(whole) do got[k] = summary(req) end
      assert.same(want, got, "whole, input " .. i)
      local split, serr = parse_split(s, r)
      assert.is_nil(serr, "split, input " .. i)
      assert.same(want, split, "split, input " .. i .. " (FUZZ_SEED=" .. seed .. ")")
    end
  end)
end)
