-- async.server.core without sockets: a request table in, the exact status,
-- headers and body bytes out (docs/endpoints.md, protocol.md). Cases are
-- rows { name, request, status, headers, body }; "Content-Length: #" in a
-- row stands for the length of its body, ETag/Last-Modified values are
-- given exactly where the spec fixed the file's mtime. The POST endpoints
-- are in server_rpc_spec.lua, runtime lifecycles in server_lifecycle_spec.lua.
local Async = require("async")
local E = require("support.errors")
local core = require("async.server.core")
local static = require("async.server.static")
local cc = require("support.core_client")
local apps = require("support.core_apps")

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- ===== expected documents =====

local HEAD = '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' ..
  '<meta name="viewport" content="width=device-width, initial-scale=1">'

-- `how`: how the client is loaded, "defer" (a whole page) or "async" (a
-- streamed one: docs/client.md "Streaming and defer")
local function doc(title, body, client, how)
  return HEAD .. "<title>" .. title .. '</title><script src="' .. (client or "/__async/client.js") ..
    '" ' .. (how or "defer") .. '></script></head><body><main async:container>' .. body .. "</main></body></html>"
end

local function snap(signals)
  return '<script type="application/json" async:snapshot>{"cache":{"browser":{}},"signals":{' .. signals ..
    "}}</script>"
end

-- the router.* signals of a page, as the snapshot writes them
local function router(url, route, params, query)
  local path = url:match("^[^?]*")
  return '"router.error":null,"router.params":' .. (params or "{}") .. ',"router.path":"' .. path ..
    '","router.pending":false,"router.query":' .. (query or "{}") .. ',"router.route":"' .. route ..
    '","router.url":"' .. url .. '"'
end

local function not_matched(url)
  return '"router.error":{"code":"route-not-matched","message":"No route matched ' .. url .. '"},' ..
    '"router.params":[],"router.path":"' .. url .. '","router.pending":false,"router.query":{},' ..
    '"router.route":null,"router.url":"' .. url .. '"'
end

local function section(inner) return '<section async:boundary="route">' .. inner .. "</section>" end

-- The shop's snapshot signals (protocol.md "SSR output"): every signal whose
-- id does not start with "_", computeds excepted (so count, name, prefs and
-- stock on every page, not only those the page read), sorted; the async
-- signal stock in its snapshot form with "value" and "error" always there.
-- `route` is router(...) or not_matched(...); `stock` defaults to loading
-- (its first run starts with the render and no page waits for it but /slow).
local STOCK_LOADING = '{"error":null,"loading":true,"status":"loading","value":null,"version":1}'
local STOCK_READY = '{"error":null,"loading":false,"status":"ready","value":{"left":3},"version":1}'
local function shop(route, stock)
  return '"count":0,"name":"ada","prefs":{"theme":"light"},' .. route .. ',"stock":' .. (stock or STOCK_LOADING)
end

local HOME = doc("Home", section('<h1 signal:text="name">ada</h1><b signal:text="count">0</b>') ..
  snap(shop(router("/", "/"))))

local DOC_HEADERS = { "Content-Type: text/html; charset=utf-8", "Content-Length: #", "Vary: Accept",
                      "Content-Security-Policy: script-src 'self'", "X-Content-Type-Options: nosniff" }
local STREAM_HEADERS = { "Content-Type: text/html; charset=utf-8", "Vary: Accept",
                         "Content-Security-Policy: script-src 'self'", "X-Content-Type-Options: nosniff" }
local PARTIAL_HEADERS = { "Content-Type: application/json; charset=utf-8", "Content-Length: #", "Vary: Accept",
                          "Cache-Control: no-store", "X-Content-Type-Options: nosniff" }
local ENVELOPE_HEADERS = { "Content-Type: application/json; charset=utf-8", "Content-Length: #",
                           "Cache-Control: no-store", "X-Content-Type-Options: nosniff" }
local TEXT_HEADERS = { "Content-Type: text/plain; charset=utf-8", "Content-Length: #",
                       "X-Content-Type-Options: nosniff" }
local CLIENT = read("client/async.js")
local CLIENT_ETAG = '"' .. static.hash(CLIENT) .. "-" .. string.format("%x", #CLIENT) .. '"'
local PARTIAL_ACCEPT = { accept = "application/x-async-partial, application/json", ["x-async-boundary"] = "route" }

local SLOW_SHELL = '<div async:boundary="stock"><template async:loading="stock"><i>...</i></template>' ..
  '<template async:ready="stock"><b signal:text="stock.left"></b></template><i>...</i></div>'
local SLOW_FILLED = '<div async:boundary="stock"><template async:loading="stock"><i>...</i></template>' ..
  '<template async:ready="stock"><b signal:text="stock.left"></b></template><b signal:text="stock.left">3</b></div>'

-- headers with "Content-Length: #" made exact for `body`
local function with_length(headers, body)
  local out = {}
  for i, h in ipairs(headers) do
    out[i] = h == "Content-Length: #" and ("Content-Length: " .. #(body or "")) or h
  end
  return out
end

local loop, prev
setup(function()
  prev = Async.get_loop()
  loop = Async.set_loop(Async.manual_loop())
end)
teardown(function() Async.set_loop(prev) end)

local function run(handle, t, opts) return cc.run(handle, loop, cc.req(t), opts) end

-- runs the rows of a table against `handle` (a function returning the handler)
local function rows(get_handle, cases)
  for _, c in ipairs(cases) do
    local name, t, status, headers, body = c[1], c[2], c[3], c[4], c[5]
    it(name, function()
      local res, chunks = run(get_handle(), t)
      assert.are.equal(status, res.status)
      local got = cc.body(res, chunks)
      if type(body) == "function" then body(got, res) else assert.are.equal(body, got) end
      assert.are.same(with_length(headers, res.body), cc.headers(res))
    end)
  end
end

-- ===== pages =====

describe("pages: a full document around rt:render's output", function()
  local handle
  before_each(function() handle = core.new({ app = apps.shop(), env = "development", log = function() end }) end)

  rows(function() return handle end, {
    { "GET / renders the route in the default layout, bindings filled, the snapshot inside <main>",
      { target = "/" }, 200, DOC_HEADERS, HOME },
    { "HEAD / answers the GET's status and headers (the transport drops the body bytes)",
      { method = "HEAD", target = "/" }, 200, DOC_HEADERS, HOME },
    { "the query string reaches router.query and router.url",
      { target = "/items/2?color=red&size=L" }, 200, DOC_HEADERS,
      doc("", section("<p>Item 2</p>") ..
        snap(shop(router("/items/2?color=red&size=L", "/items/:id", '{"id":"2"}', '{"color":"red","size":"L"}')))) },
    { "a partial's own status (404) is the document's status",
      { target = "/items/9" }, 404, DOC_HEADERS,
      doc("Missing", section("<p>No item 9</p>") .. snap(shop(router("/items/9", "/items/:id", '{"id":"9"}')))) },
    { "no route matched: 404, still a full document with router.error",
      { target = "/nope" }, 404, DOC_HEADERS, doc("", section("") .. snap(shop(not_matched("/nope")))) },
    { "a percent-encoded param is decoded for the route, kept raw in the URL",
      { target = "/items/a%20b" }, 200, DOC_HEADERS,
      doc("", section("<p>Item a b</p>") .. snap(shop(router("/items/a%20b", "/items/:id", '{"id":"a b"}')))) },
    { "PUT on a page: 405 with Allow",
      { method = "PUT", target = "/" }, 405, { "Content-Type: text/plain; charset=utf-8", "Content-Length: #",
        "Allow: GET, HEAD", "X-Content-Type-Options: nosniff" }, "Method Not Allowed\n" },
    { "a route that raises: 500 document with the message and traceback (development)",
      { target = "/boom" }, 500, DOC_HEADERS, function(body)
        assert.truthy(body:find("^<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf%-8\"><title>500 " ..
          "Internal Server Error</title></head><body><h1>500 Internal Server Error</h1><pre>[^<]*render exploded\n" ..
          "stack traceback:"))
        assert.is_nil(body:find("<script", 1, true))
      end },
  })

  it("a route that raises in production: 500 without message or traceback; the log has both", function()
    local entries = {}
    local h = core.new({ app = apps.shop(), env = "production", log = function(e) entries[#entries + 1] = e end })
    local res = run(h, { target = "/boom" })
    local body = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>500 Internal Server Error" ..
      "</title></head><body><h1>500 Internal Server Error</h1></body></html>\n"
    assert.are.equal(500, res.status)
    assert.are.equal(body, res.body)
    assert.are.same(with_length(DOC_HEADERS, body), cc.headers(res))
    assert.truthy(entries[1].error:find("render exploded", 1, true))
    assert.truthy(entries[1].traceback:find("stack traceback:", 1, true))
  end)

  it("the snapshot stays inside the document and reads back with Async.read_snapshot", function()
    local res = run(handle, { target = "/" })
    local s = res.body:find("<script type=\"application/json\" async:snapshot>", 1, true)
    assert.truthy(s and s < res.body:find("</main>", 1, true))
    assert.are.same({ count = 0, name = "ada" },
      { count = Async.read_snapshot(res.body).signals.count, name = Async.read_snapshot(res.body).signals.name })
  end)

  it("no inline script anywhere: every <script> is JSON data or the client by src", function()
    for _, url in ipairs({ "/", "/items/9", "/nope", "/slow" }) do
      local res, chunks = run(handle, { target = url })
      for attrs in cc.body(res, chunks):gmatch("<script([^>]*)>") do
        -- defer on a whole page, async on a streamed one (/slow: docs/client.md "Streaming and defer")
        local client = ' src="/__async/client.js" ' .. (url == "/slow" and "async" or "defer")
        assert.truthy(attrs:find('type="application/json"', 1, true) or attrs == client, url .. ": " .. attrs)
      end
    end
  end)
end)

describe("pages: layouts and the Content-Security-Policy option", function()
  local function layout(page)
    return "<!doctype html><html><head><title>" .. Async.escape(page.title or "") .. '</title><script src="' ..
      page.client .. '" defer></script></head><body data-prefix="' .. page.prefix .. '">' .. page.body ..
      "</body></html>"
  end

  rows(function() return core.new({ app = apps.shop(), layout = layout, csp = false, log = function() end }) end, {
    { "the app's layout gets title, body, client and prefix; csp = false sends no policy",
      { target = "/items/3" }, 200,
      { "Content-Type: text/html; charset=utf-8", "Content-Length: #", "Vary: Accept",
        "X-Content-Type-Options: nosniff" },
      '<!doctype html><html><head><title></title><script src="/__async/client.js" defer></script></head>' ..
      '<body data-prefix="">' .. section("<p>Item 3</p>") ..
      snap(shop(router("/items/3", "/items/:id", '{"id":"3"}'))) .. "</body></html>" },
  })

  rows(function()
    return core.new({ app = apps.shop(), csp = "default-src 'self'", log = function() end,
                      layout = function(page) return "<html><HEAD></HEAD><body>" .. page.body .. "</body></html>" end })
  end, {
    { "a layout that forgets the client gets its <script> before </head>; a csp string is sent as given",
      { target = "/items/3" }, 200,
      { "Content-Type: text/html; charset=utf-8", "Content-Length: #", "Vary: Accept",
        "Content-Security-Policy: default-src 'self'", "X-Content-Type-Options: nosniff" },
      '<html><HEAD><script src="/__async/client.js" defer></script></HEAD><body>' .. section("<p>Item 3</p>") ..
      snap(shop(router("/items/3", "/items/:id", '{"id":"3"}'))) .. "</body></html>" },
  })
end)

-- ===== streaming =====

describe("pages with pending boundaries at shell time stream (chunked)", function()
  it("the shell at 0 ms with the loading template, the fill and its patch at 30 ms, then the tail", function()
    local handle = core.new({ app = apps.shop(), log = function() end })
    local res, chunks = run(handle, { target = "/slow" })
    assert.are.equal(200, res.status)
    assert.is_nil(res.body)
    assert.are.same(STREAM_HEADERS, cc.headers(res))
    local full = doc("", section(SLOW_SHELL) .. snap(shop(router("/slow", "/slow"))) .. "\0", nil, "async")
    local shell, tail = full:match("^(.*)%z(.*)$")
    assert.are.same({
      { at = 0, data = shell },
      { at = 30, data = '<template async:fill="stock"><b signal:text="stock.left">3</b></template>' ..
        '<script type="application/json" async:patch>{"seq":1,"signals":{"stock":' .. STOCK_READY ..
        '}}</script>' },
      { at = 30, data = tail },
    }, chunks)
  end)

  it("an app's layout is told the page streams (page.stream), a whole page is not", function()
    local seen = {}
    local layout = function(page)
      seen[#seen + 1] = page.stream == true
      return "<html><head></head><body>" .. page.body .. "</body></html>"   -- forgets the client
    end
    local handle = core.new({ app = apps.shop(), layout = layout, log = function() end })
    local res, chunks = run(handle, { target = "/slow" })
    assert.truthy(cc.body(res, chunks):find('^<html><head><script src="/__async/client.js" async></script></head>'))
    res = run(handle, { target = "/" })
    assert.truthy(res.body:find('^<html><head><script src="/__async/client.js" defer></script></head>'))
    assert.are.same({ true, false }, seen)
    -- stream = false: the page waits and goes whole, deferred
    handle = core.new({ app = apps.shop(), layout = layout, stream = false, log = function() end })
    res = run(handle, { target = "/slow" })
    assert.truthy(res.body:find('^<html><head><script src="/__async/client.js" defer></script></head>'))
  end)

  it("HEAD of a streamed page: the head only, the render stopped at once", function()
    local handle = core.new({ app = apps.shop(), log = function() end })
    local res, chunks = run(handle, { method = "HEAD", target = "/slow" })
    assert.are.equal(200, res.status)
    assert.are.same(STREAM_HEADERS, cc.headers(res))
    assert.are.same({}, chunks)
  end)

  it("stream_timeout: a boundary that does not settle gets its error state, the response ends", function()
    local handle = core.new({ app = apps.shop(), stream_timeout = 10, log = function() end })
    local _, chunks = run(handle, { target = "/slow" })
    assert.are.equal(3, #chunks)
    assert.are.equal(10, chunks[2].at)
    assert.truthy(chunks[2].data:find('"code":"timeout"', 1, true))
    assert.are.equal("</main></body></html>", chunks[3].data)
  end)

  rows(function() return core.new({ app = apps.shop(), stream = false, log = function() end }) end, {
    { "stream = false: the page waits for its async signals and is sent whole",
      { target = "/slow" }, 200, DOC_HEADERS,
      doc("", section(SLOW_FILLED) .. snap(shop(router("/slow", "/slow"), STOCK_READY))) },
  })
end)

-- ===== route partials =====

describe("route partials: Accept: application/x-async-partial", function()
  local handle
  before_each(function() handle = core.new({ app = apps.shop(), log = function() end }) end)

  local function accept(t)
    t.headers = PARTIAL_ACCEPT
    return t
  end

  rows(function() return handle end, {
    { "an envelope with boundary, html, signals, cache, title and status",
      accept({ target = "/" }), 200, PARTIAL_HEADERS,
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},' ..
      '"html":"<h1 signal:text=\\"name\\">ada</h1><b signal:text=\\"count\\">0</b>","signals":{' ..
      shop(router("/", "/")) .. '},"status":200,"title":"Home"}' },
    { "the route's status is the HTTP status",
      accept({ target = "/items/9" }), 404, PARTIAL_HEADERS,
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"<p>No item 9</p>",' ..
      '"signals":{' .. shop(router("/items/9", "/items/:id", '{"id":"9"}')) .. '},"status":404,"title":"Missing"}' },
    { "no route: 404 envelope with router.error",
      accept({ target = "/nope" }), 404, PARTIAL_HEADERS,
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"",' ..
      '"signals":{' .. shop(not_matched("/nope")) .. '},"status":404}' },
    { "a partial waits for its async signals (never streams)",
      accept({ target = "/slow" }), 200, PARTIAL_HEADERS,
      '{"__async_server_result__":1,"boundary":"route","cache":{"browser":{}},"html":"' ..
      SLOW_FILLED:gsub('"', '\\"') .. '","signals":{' .. shop(router("/slow", "/slow"), STOCK_READY) ..
      '},"status":200}' },
    { "a partial that raises: 500 error envelope with message and stack (development)",
      accept({ target = "/boom" }), 500, { "Content-Type: application/json; charset=utf-8", "Content-Length: #",
        "Vary: Accept", "Cache-Control: no-store", "X-Content-Type-Options: nosniff" }, function(body)
        local env = Async.json.decode(body)
        assert.are.equal(1, env.__async_server_result__)
        assert.are.equal("render-failed", env.error.code)
        assert.truthy(env.error.message:find("render exploded", 1, true))
        assert.truthy(env.error.stack:find("stack traceback:", 1, true))
      end },
    { "Accept without the partial type gets the document",
      { target = "/", headers = { accept = "text/html,application/json" } }, 200, DOC_HEADERS, HOME },
    { "the partial type with q=0 gets the document",
      { target = "/", headers = { accept = "application/x-async-partial;q=0, text/html" } }, 200, DOC_HEADERS, HOME },
  })

  it("production: the 500 envelope has no message or stack", function()
    local h = core.new({ app = apps.shop(), env = "production", log = function() end })
    local res = run(h, accept({ target = "/boom" }))
    assert.are.equal(500, res.status)
    assert.are.equal('{"__async_server_result__":1,"error":{"code":"render-failed",' ..
      '"message":"Internal server error","name":"AsyncError"}}', res.body)
  end)

  it("a route's own boundary id is the envelope's boundary", function()
    local app = Async.define_app()
    app:use({ partial = { p = function() return "<p>x</p>" end },
              route = { ["/x"] = Async.define_route("p", { boundary = "main" }) } })
    local res = run(core.new({ app = app, log = function() end }), accept({ target = "/x" }))
    assert.are.equal("main", Async.json.decode(res.body).boundary)
  end)
end)

-- ===== the browser client =====

describe("GET /__async/client.js", function()
  local src = read("client/async.js")
  local ETAG = '"' .. static.hash(src) .. "-" .. string.format("%x", #src) .. '"'
  local GZ = "gzipped client"   -- what the injected compressor answers
  local function handle()
    return core.new({ app = apps.shop(), log = function() end,
                      gzip = { compress = function(s) assert(s == src); return GZ end } })
  end
  local HEADERS = { "Content-Type: text/javascript; charset=utf-8", "Content-Length: #", "Cache-Control: no-cache",
                    "ETag: " .. ETAG, "Vary: Accept-Encoding", "X-Content-Type-Options: nosniff" }
  local NOT_MODIFIED = { "Cache-Control: no-cache", "ETag: " .. ETAG, "Vary: Accept-Encoding",
                         "X-Content-Type-Options: nosniff" }

  rows(handle, {
    { "the client with an ETag, revalidated on each use", { target = "/__async/client.js" }, 200, HEADERS, src },
    { "HEAD: the same head", { method = "HEAD", target = "/__async/client.js" }, 200, HEADERS, src },
    { "If-None-Match with its ETag: 304, no body",
      { target = "/__async/client.js", headers = { ["if-none-match"] = ETAG } }, 304, NOT_MODIFIED, nil },
    { "a weak or listed tag matches too",
      { target = "/__async/client.js", headers = { ["if-none-match"] = '"x", W/' .. ETAG } }, 304, NOT_MODIFIED, nil },
    { "another tag: 200",
      { target = "/__async/client.js", headers = { ["if-none-match"] = '"old"' } }, 200, HEADERS, src },
    { "Accept-Encoding: gzip: the compressed bytes, their own ETag",
      { target = "/__async/client.js", headers = { ["accept-encoding"] = "br, gzip, deflate" } }, 200,
      { "Content-Type: text/javascript; charset=utf-8", "Content-Length: #", "Content-Encoding: gzip",
        "Cache-Control: no-cache", "ETag: " .. ETAG:sub(1, -2) .. '-gzip"', "Vary: Accept-Encoding",
        "X-Content-Type-Options: nosniff" }, GZ },
    { "gzip;q=0 refuses it", { target = "/__async/client.js", headers = { ["accept-encoding"] = "gzip;q=0" } },
      200, HEADERS, src },
    { "POST: 405, Allow: GET, HEAD", { method = "POST", target = "/__async/client.js" }, 405,
      { "Content-Type: text/plain; charset=utf-8", "Content-Length: #", "Allow: GET, HEAD",
        "X-Content-Type-Options: nosniff" }, "Method Not Allowed\n" },
  })

  it("without a compressor (gzip = false) gzip is never used", function()
    local res = run(core.new({ app = apps.shop(), gzip = false, log = function() end }),
      { target = "/__async/client.js", headers = { ["accept-encoding"] = "gzip" } })
    assert.are.same(with_length(HEADERS, src), cc.headers(res))
  end)

  it("a compressor that does not make it smaller is not used", function()
    local res = run(core.new({ app = apps.shop(), gzip = { compress = function(s) return s .. "x" end },
                               log = function() end }),
      { target = "/__async/client.js", headers = { ["accept-encoding"] = "gzip" } })
    assert.are.equal(src, res.body)
  end)

  it("client_js names another file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("/* mine */")
    f:close()
    local res = run(core.new({ app = apps.shop(), client_js = path, log = function() end }),
      { target = "/__async/client.js" })
    os.remove(path)
    assert.are.equal("/* mine */", res.body)
  end)
end)

-- ===== public/ =====

describe("static files from public/", function()
  local dir, outside
  local MTIME = 1700000000   -- Tue, 14 Nov 2023 22:13:20 GMT
  local LM = "Tue, 14 Nov 2023 22:13:20 GMT"
  local CSS = "body { color: red; }\n"
  setup(function()
    dir = sh("mktemp -d"):gsub("%s+$", "")
    outside = sh("mktemp -d"):gsub("%s+$", "")
    sh(("mkdir -p %s/public/sub %s/public/.git && printf 'secret' > %s/passwd && printf 'env' > %s/public/.env"):format(
      dir, dir, outside, dir))
    local function put(name, s)
      local f = assert(io.open(dir .. "/public/" .. name, "wb"))
      f:write(s)
      f:close()
      sh(("touch -d @%d '%s/public/%s'"):format(MTIME, dir, name))
    end
    put("app.css", CSS)
    put("logo.png", "\137PNG fake")
    put("sub/x.js", "x()")
    put("odd name.txt", "spaces")
    put(".git/config", "[core]")
    sh(("ln -s %s/passwd %s/public/leak.txt && ln -s %s %s/public/out && ln -s app.css %s/public/alias.css"):format(
      outside, dir, outside, dir, dir))
  end)
  teardown(function() sh("rm -rf " .. dir .. " " .. outside) end)

  local function handle(extra)
    local o = { app = apps.shop(), public = "public", root = dir, log = function() end,
                gzip = { compress = function(s) return "GZ" .. #s end } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return core.new(o)
  end
  local function file_headers(ctype, etag, compressible)
    local h = { "Content-Type: " .. ctype, "Content-Length: #", "Cache-Control: no-cache", "ETag: " .. etag,
                "Last-Modified: " .. LM }
    if compressible then h[#h + 1] = "Vary: Accept-Encoding" end
    h[#h + 1] = "X-Content-Type-Options: nosniff"
    return h
  end
  local ETAG_CSS = ('"%x-%x"'):format(MTIME, #CSS)
  local CSS_HEADERS = file_headers("text/css; charset=utf-8", ETAG_CSS, true)
  local NOT_FOUND_PAGE = function(url) return doc("", section("") .. snap(shop(not_matched(url)))) end

  rows(function() return handle() end, {
    { "a file: Content-Type by extension, ETag and Last-Modified", { target = "/app.css" }, 200, CSS_HEADERS, CSS },
    { "HEAD: the same head", { method = "HEAD", target = "/app.css" }, 200, CSS_HEADERS, CSS },
    { "a file in a folder", { target = "/sub/x.js" }, 200,
      file_headers("text/javascript; charset=utf-8", ('"%x-%x"'):format(MTIME, 3), true), "x()" },
    { "a percent-encoded name", { target = "/odd%20name.txt" }, 200,
      file_headers("text/plain; charset=utf-8", ('"%x-%x"'):format(MTIME, 6), true), "spaces" },
    { "a symlink that stays inside public/ is served", { target = "/alias.css" }, 200, CSS_HEADERS, CSS },
    { "binary types are not compressed and carry no Vary",
      { target = "/logo.png", headers = { ["accept-encoding"] = "gzip" } }, 200,
      file_headers("image/png", ('"%x-%x"'):format(MTIME, 9), false), "\137PNG fake" },
    { "text is gzipped when accepted",
      { target = "/app.css", headers = { ["accept-encoding"] = "gzip" } }, 200,
      { "Content-Type: text/css; charset=utf-8", "Content-Length: #", "Content-Encoding: gzip",
        "Cache-Control: no-cache", "ETag: " .. ETAG_CSS:sub(1, -2) .. '-gzip"', "Last-Modified: " .. LM,
        "Vary: Accept-Encoding", "X-Content-Type-Options: nosniff" }, "GZ21" },
    { "If-None-Match: 304", { target = "/app.css", headers = { ["if-none-match"] = ETAG_CSS } }, 304,
      { "Cache-Control: no-cache", "ETag: " .. ETAG_CSS, "Last-Modified: " .. LM, "Vary: Accept-Encoding",
        "X-Content-Type-Options: nosniff" }, nil },
    { "If-Modified-Since at the mtime: 304", { target = "/app.css", headers = { ["if-modified-since"] = LM } }, 304,
      { "Cache-Control: no-cache", "ETag: " .. ETAG_CSS, "Last-Modified: " .. LM, "Vary: Accept-Encoding",
        "X-Content-Type-Options: nosniff" }, nil },
    { "If-Modified-Since before the mtime: 200",
      { target = "/app.css", headers = { ["if-modified-since"] = "Tue, 14 Nov 2023 22:13:19 GMT" } }, 200,
      CSS_HEADERS, CSS },
    { "If-None-Match wins over If-Modified-Since",
      { target = "/app.css", headers = { ["if-none-match"] = '"other"', ["if-modified-since"] = LM } }, 200,
      CSS_HEADERS, CSS },
    { "/../ in the path: 400", { target = "/../passwd" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "/sub/../../ in the path: 400", { target = "/sub/../../passwd" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "%2e%2e: 400", { target = "/%2e%2e/passwd" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "%2E%2e mixed case: 400", { target = "/sub/%2E%2e/%2e%2E/passwd" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "an encoded NUL: 400", { target = "/app.css%00.png" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "an encoded slash: 400", { target = "/sub%2fx.js" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "a malformed escape: 400", { target = "/app%zz.css" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "a path that does not start with /: 400", { target = "app.css" }, 400, TEXT_HEADERS, "Bad Request\n" },
    { "an absolute filesystem path is looked up inside public/ (and is not there)",
      { target = "//etc/passwd" }, 404, DOC_HEADERS, NOT_FOUND_PAGE("//etc/passwd") },
    { "a symlink to a file out of public/: not served", { target = "/leak.txt" }, 404, DOC_HEADERS,
      NOT_FOUND_PAGE("/leak.txt") },
    { "a symlinked folder out of public/: not served", { target = "/out/passwd" }, 404, DOC_HEADERS,
      NOT_FOUND_PAGE("/out/passwd") },
    { "dot-files are never served", { target = "/.env" }, 404, DOC_HEADERS, NOT_FOUND_PAGE("/.env") },
    { "nor files in dot-folders", { target = "/.git/config" }, 404, DOC_HEADERS, NOT_FOUND_PAGE("/.git/config") },
    { "a folder is not a file: the routes answer", { target = "/sub" }, 404, DOC_HEADERS, NOT_FOUND_PAGE("/sub") },
    { "no such file: the routes answer", { target = "/" }, 200, DOC_HEADERS, HOME },
  })

  it("public is required to be a folder", function()
    E.has_error(function() core.new({ app = apps.shop(), public = "nope", root = dir }) end,
      'async.server.core.new: public: "' .. dir .. '/nope" is not a directory')
  end)

  it("an absolute public path ignores root", function()
    local res = run(core.new({ app = apps.shop(), public = dir .. "/public", root = "/nonexistent",
                               log = function() end }), { target = "/app.css" })
    assert.are.equal(CSS, res.body)
  end)

  it("a changed file gets a new ETag (the cache follows mtime and size)", function()
    local h = handle()
    local f = assert(io.open(dir .. "/public/sub/x.js", "wb"))
    f:write("x(1)")
    f:close()
    sh(("touch -d @%d '%s/public/sub/x.js'"):format(MTIME + 1, dir))
    local res = run(h, { target = "/sub/x.js" })
    assert.are.equal("x(1)", res.body)
    assert.are.equal(('"%x-%x"'):format(MTIME + 1, 4), require("async.server.response").header(res, "ETag"))
  end)
end)

-- ===== mounts =====

describe("apps mounted under path prefixes", function()
  local admin
  local function handle(entries)
    admin = Async.define_app()
    admin:use({
      signal = { hits = 0 },
      handler = { hit = function(self) self.signals:update("hits", function(n) return n + 1 end) end },
      server = { where = function(self) return { path = self.request.path, prefix = self.request.prefix } end },
      partial = { home = function(self)
        return Async.html[[<a href="{{ prefix }}/users">users</a>]] { prefix = self.request.prefix }
      end },
      route = { ["/"] = Async.define_route("home") },
    })
    return core.new({ apps = { ["/"] = apps.shop(), ["/admin/"] = admin }, log = entries and function(e)
      entries[#entries + 1] = e end or function() end })
  end
  local ADMIN = doc("", section('<a href="/admin/users">users</a>') .. snap('"hits":0,' .. router("/", "/")),
    "/admin/__async/client.js")
  local POST = { ["content-type"] = "application/json", ["x-async-request"] = "1" }

  rows(function() return handle() end, {
    { "the longest prefix wins; the app sees its path relative to it; the client URL is under it",
      { target = "/admin/" }, 200, DOC_HEADERS, ADMIN },
    { "the prefix without its slash is the app's /", { target = "/admin" }, 200, DOC_HEADERS, ADMIN },
    { "a longer name is not under the prefix", { target = "/administrator" }, 404, DOC_HEADERS,
      doc("", section("") .. snap(shop(not_matched("/administrator")))) },
    { "the root app still answers", { target = "/" }, 200, DOC_HEADERS, HOME },
    { "the client is served under each prefix", { target = "/admin/__async/client.js", method = "HEAD" }, 200,
      { "Content-Type: text/javascript; charset=utf-8", "Content-Length: #", "Cache-Control: no-cache",
        "ETag: " .. CLIENT_ETAG, "Vary: Accept-Encoding", "X-Content-Type-Options: nosniff" }, CLIENT },
    { "a handler under the prefix is the mounted app's", { method = "POST", target = "/admin/__async/handler/hit",
      headers = POST, body = '{"args":[],"signals":{"hits":4}}' }, 200, ENVELOPE_HEADERS,
      '{"__async_server_result__":1,"signals":{"hits":5}}' },
    { "the root app does not have it", { method = "POST", target = "/__async/handler/hit",
      headers = POST, body = '{"args":[]}' }, 404, ENVELOPE_HEADERS,
      '{"__async_server_result__":1,"error":{"code":"handler-not-registered","message":"Handler \\"hit\\" is not ' ..
      'registered.","name":"AsyncError"}}' },
    { "a server function sees its request relative to the prefix", { method = "POST",
      target = "/admin/__async/server/where", headers = POST, body = "{}" }, 200, ENVELOPE_HEADERS,
      '{"__async_server_result__":1,"value":{"path":"/__async/server/where","prefix":"/admin"}}' },
  })

  it("without a root app, a path under no prefix is 404", function()
    local h = core.new({ apps = { ["/shop"] = apps.shop() }, log = function() end })
    local res = run(h, { target = "/elsewhere" })
    assert.are.equal(404, res.status)
    assert.are.equal("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>404 Not Found</title>" ..
      "</head><body><h1>404 Not Found</h1></body></html>\n", res.body)
    assert.are.equal(200, run(h, { target = "/shop/items/1" }).status)
  end)

  it("the log entry names the mount", function()
    local entries = {}
    local h = handle(entries)
    run(h, { target = "/admin" })
    assert.are.equal("/admin", entries[1].app)
  end)
end)

-- ===== limits, methods, unknown endpoints =====

describe("limits and methods", function()
  local function handle(limits)
    return core.new({ app = apps.shop(), limits = limits, log = function() end })
  end

  it("a header block over limits.headers: 431", function()
    local res = run(handle({ headers = 1024 }), { target = "/", headers = { cookie = ("x"):rep(2000) } })
    assert.are.equal(431, res.status)
    assert.are.equal("Request Header Fields Too Large\n", res.body)
    assert.are.same(with_length(TEXT_HEADERS, res.body), cc.headers(res))
  end)

  it("a body over limits.body on a page: 413 text", function()
    local res = run(handle({ body = 10 }), { method = "GET", target = "/", body = ("x"):rep(11) })
    assert.are.equal(413, res.status)
    assert.are.equal("Content Too Large\n", res.body)
  end)

  rows(function() return handle() end, {
    { "an unknown /__async/ endpoint: 404 error envelope", { target = "/__async/nothing" }, 404, ENVELOPE_HEADERS,
      '{"__async_server_result__":1,"error":{"code":"not-found","message":"no endpoint /__async/nothing",' ..
      '"name":"AsyncError"}}' },
    { "GET on a server function: 405, Allow: POST", { target = "/__async/server/add" }, 405,
      { "Content-Type: application/json; charset=utf-8", "Content-Length: #", "Allow: POST",
        "Cache-Control: no-store", "X-Content-Type-Options: nosniff" },
      '{"__async_server_result__":1,"error":{"code":"method-not-allowed","message":"use POST","name":"AsyncError"}}' },
    { "OPTIONS on a handler (a CORS preflight): 405", { method = "OPTIONS", target = "/__async/handler/inc" }, 405,
      { "Content-Type: application/json; charset=utf-8", "Content-Length: #", "Allow: POST",
        "Cache-Control: no-store", "X-Content-Type-Options: nosniff" },
      '{"__async_server_result__":1,"error":{"code":"method-not-allowed","message":"use POST","name":"AsyncError"}}' },
  })
end)

-- ===== the log =====

describe("the access log: one entry per request", function()
  it("page, partial, client, static-free 404 and a streamed page: method, path, status, bytes, ms, kind", function()
    local entries = {}
    local h = core.new({ app = apps.shop(), log = function(e) entries[#entries + 1] = e end })
    run(h, { target = "/" })
    run(h, { target = "/items/1", headers = PARTIAL_ACCEPT })
    run(h, { target = "/slow" })
    run(h, { target = "/__async/client.js", headers = { ["if-none-match"] = "*" } })
    local got = {}
    for i, e in ipairs(entries) do
      got[i] = { e.method, e.path, e.status, e.kind, e.ms, e.stream, e.remote, e.app, e.bytes > 0 }
    end
    assert.are.same({
      { "GET", "/", 200, "page", 0, nil, "127.0.0.1", "/", true },
      { "GET", "/items/1", 200, "partial", 0, nil, "127.0.0.1", "/", true },
      { "GET", "/slow", 200, "page", 30, true, "127.0.0.1", "/", true },
      { "GET", "/__async/client.js", 304, "client", 0, nil, "127.0.0.1", "/", false },
    }, got)
    local res, chunks = run(h, { target = "/slow" })
    assert.are.equal(#cc.body(res, chunks), entries[5].bytes)
  end)

  it("a log function that raises does not break the answer", function()
    local h = core.new({ app = apps.shop(), log = function() error("disk full") end })
    local old = io.stderr
    local lines = {}
    -- luacheck: ignore 122
    io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do lines[#lines + 1] = s end end }
    local ok, res = pcall(run, h, { target = "/" })
    io.stderr = old   -- luacheck: ignore 122
    assert.is_true(ok, tostring(res))
    assert.are.equal(200, res.status)
    assert.truthy(table.concat(lines):find("disk full", 1, true))
  end)

  it("log = true writes one line per request to stderr", function()
    local h = core.new({ app = apps.shop(), log = true })
    local old = io.stderr
    local lines = {}
    -- luacheck: ignore 122
    io.stderr = { write = function(_, ...) for _, s in ipairs({ ... }) do lines[#lines + 1] = s end end }
    local ok, err = pcall(run, h, { target = "/items/7?x=1" })
    io.stderr = old   -- luacheck: ignore 122
    assert.is_true(ok, tostring(err))
    local page = doc("", section("<p>Item 7</p>") ..
      snap(shop(router("/items/7?x=1", "/items/:id", '{"id":"7"}', '{"x":"1"}'))))
    assert.are.equal(701, #page)
    assert.are.equal('127.0.0.1 "GET /items/7" 200 701 0ms page\n', table.concat(lines))
  end)
end)

-- ===== options =====

-- ===== mounts with options of their own =====

describe("a mount may be { app = a, public =, root =, layout =, runtime =, title =, head = }", function()
  local dir
  setup(function()
    dir = sh("mktemp -d"):gsub("%s+$", "")
    sh(("mkdir -p %s/a/public %s/b/public %s/shared && printf 'A' > %s/a/public/x.txt && " ..
        "printf 'B' > %s/b/public/x.txt && printf 'S' > %s/shared/s.txt"):format(dir, dir, dir, dir, dir, dir))
  end)
  teardown(function() if dir then sh("rm -rf " .. dir) end end)

  -- a small app: its page shows the title the runtime was given
  local function small(text)
    local app = Async.define_app()
    app:use({
      handler = { ping = function() return "pong" end },
      partial = { home = function() return Async.html[[<p>{{ t }}</p>]] { t = text } end },
      route = { ["/"] = Async.define_route("home") },
    })
    return app
  end

  local function layout(page)
    return "<html><head>" .. page.title .. "|" .. page.prefix .. "</head><body>" .. page.body .. "</body></html>"
  end

  local function server()
    return core.new({
      apps = {
        ["/"] = small("root"),
        ["/a"] = { app = small("a"), public = "a/public", root = dir, title = "A's", layout = layout },
        ["/b"] = { app = small("b"), public = dir .. "/b/public", head = '<link rel="stylesheet" href="/b/b.css">',
                   runtime = { title = "B's" } },
      },
      public = "shared", root = dir, runtime = { title = "everyone's" }, log = function() end,
    })
  end

  it("each mount serves its own public/ at the paths under its prefix", function()
    local h = server()
    assert.are.same({ 200, "A" }, { run(h, { target = "/a/x.txt" }).status, run(h, { target = "/a/x.txt" }).body })
    assert.are.same({ 200, "B" }, { run(h, { target = "/b/x.txt" }).status, run(h, { target = "/b/x.txt" }).body })
    -- a mount with a folder of its own serves nothing else (not the server's)
    assert.are.equal(404, run(h, { target = "/a/s.txt" }).status)
    assert.are.equal(404, run(h, { target = "/a/public/x.txt" }).status)
    -- a mount without one uses the server's, at the full path
    assert.are.same({ 200, "S" }, { run(h, { target = "/s.txt" }).status, run(h, { target = "/s.txt" }).body })
  end)

  it("each mount has its own layout, title and head; runtime options merge over the server's", function()
    local h = server()
    local res = run(h, { target = "/a/" })
    assert.are.equal(200, res.status)
    assert.truthy(res.body:find('^<html><head>A\'s|/a<script src="/a/__async/client.js" defer></script></head>' ..
      '<body><section async:boundary="route"><p>a</p></section>'), res.body)
    res = run(h, { target = "/b/" })
    assert.truthy(res.body:find("<title>B&#39;s</title><script src=\"/b/__async/client.js\" defer></script>" ..
      '<link rel="stylesheet" href="/b/b.css"></head>', 1, true), res.body)
    res = run(h, { target = "/" })
    assert.truthy(res.body:find("<title>everyone&#39;s</title>", 1, true), res.body)
    -- the endpoints stay each mount's
    assert.are.equal('{"__async_server_result__":1,"signals":{},"value":"pong"}', run(h, { method = "POST",
      target = "/a/__async/handler/ping", headers = { ["content-type"] = "application/json",
      ["x-async-request"] = "1" }, body = "{}" }).body)
  end)

  it("Async.mount: the options the app's file gave Async.main, those of a mount only, extra over them", function()
    local app = small("m")
    assert.are.equal(app, Async.main(app, { public = "public", port = 9, host = "x", title = "T",
                                            runtime = { client_handlers = { "h" } } }))
    assert.are.same({ public = "public", port = 9, host = "x", title = "T", runtime = { client_handlers = { "h" } } },
      app.serve_opts)
    local m = Async.mount(app, { root = dir .. "/a", title = "U" })
    assert.are.same({ app = app, public = "public", root = dir .. "/a", title = "U",
                      runtime = { client_handlers = { "h" } } }, m)
    local h = core.new({ apps = { ["/m"] = m }, log = function() end })
    assert.are.equal("A", run(h, { target = "/m/x.txt" }).body)
    assert.truthy(run(h, { target = "/m/" }).body:find("<title>U</title>", 1, true))
    assert.has_error(function() Async.mount({}) end)
  end)

  local bad_cases = {
    { "an unknown mount option", { ["/a"] = { app = small("a"), port = 1 } },
      "the app for /a: unknown mount option port (app, public, root, layout, runtime, title, head, cache)" },
    { "a mount whose app is not one", { ["/a"] = { app = {} } }, "the app for /a must be made by Async.define_app()" },
    { "a bad mount layout", { ["/a"] = { app = small("a"), layout = 1 } },
      "the app for /a: layout must be a function(page)" },
    { "a bad mount head", { ["/a"] = { app = small("a"), head = 1 } },
      "the app for /a: head must be a string or a function(page)" },
  }
  for _, c in ipairs(bad_cases) do
    it(c[1], function()
      E.has_error(function() core.new({ apps = c[2] }) end, "async.server.core.new: " .. c[3])
    end)
  end

  it("a mount's public folder must exist", function()
    local ok, err = pcall(core.new, { apps = { ["/a"] = { app = small("a"), public = "nope", root = dir } } })
    assert.is_false(ok)
    local want = 'async.server.core.new: the mount /a: public: "' .. dir .. '/nope" is not a directory'
    assert.truthy(tostring(err):find(want, 1, true), tostring(err))
  end)
end)

describe("core.new: options are checked", function()
  local app = apps.shop()
  local cases = {
    { "no app", {}, "app (or apps = { [prefix] = app }) is required" },
    { "app and apps", { app = app, apps = { ["/"] = app } }, "give app or apps, not both" },
    { "not an app", { app = {} }, "the app for / must be made by Async.define_app()" },
    { "unknown option", { app = app, port = 1 }, "unknown option port" },
    { "bad env", { app = app, env = "prod" }, 'env must be "development" or "production"' },
    { "bad csp", { app = app, csp = 1 }, "csp must be true, false or a header value" },
    { "csp with a newline", { app = app, csp = "a\nb" }, "csp must be true, false or a header value" },
    { "bad log", { app = app, log = "yes" }, "log must be true, false or a function(entry)" },
    { "bad limit", { app = app, limits = { body = -1 } }, "limits.body must be a positive integer" },
    { "unknown limit", { app = app, limits = { bodies = 1 } }, "unknown limit bodies" },
    { "prefix without /", { apps = { shop = app } }, "a mount prefix must start with /, got shop" },
    { "prefix with ..", { apps = { ["/a/../b"] = app } }, 'bad mount prefix "/a/../b"' },
    { "prefix with %", { apps = { ["/a%20"] = app } }, 'bad mount prefix "/a%20"' },
    { "two apps at one prefix", { apps = { ["/a"] = app, ["/a/"] = app } }, "two apps mounted at /a" },
    { "a prefix under /__async", { apps = { ["/__async/x"] = app } }, "a mount prefix cannot be under /__async" },
    { "bad gzip", { app = app, gzip = true }, "gzip must be { compress = fn } or false" },
    { "bad layout", { app = app, layout = "x" }, "layout must be a function(page)" },
    { "missing client", { app = app, client_js = "/nonexistent/client.js" },
      "client_js: /nonexistent/client.js: No such file or directory" },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      E.has_error(function() core.new(c[2]) end, "async.server.core.new: " .. c[3])
    end)
  end

  it("require('async') itself (the default hub) can be served", function()
    local res = run(core.new({ app = Async, log = function() end }), { target = "/" })
    assert.are.equal(404, res.status)
  end)

  it("handle must run inside a coroutine", function()
    local h = core.new({ app = app, log = function() end })
    E.has_error(function() h(cc.req({ target = "/" })) end,
      "handle(req) must run inside a coroutine (one per request)")
  end)
end)

-- ===== the examples, served =====

describe("the examples through the core", function()
  -- what the runtime itself renders for url (a fresh runtime, in a coroutine)
  local function rendered(app, url, how)
    local rt = Async.create_app(app, { env = "development" })
    local out
    local chunks = {}
    cc.drive(loop, coroutine.create(function()
      if how == "stream" then
        rt:render_stream(url, function(c) if c then chunks[#chunks + 1] = c end return true end)
        out = table.concat(chunks)
      elseif how == "partial" then
        out = rt:render(url, { document = false })
      else
        out = rt:render_document(url).html
      end
    end))
    rt:destroy()
    return out
  end

  local CASES = {
    { "ssr", "/products/123", 200, "document" },
    { "partials", "/", 200, "document" },
    { "partials", "/products/sku-1", 200, "document" },
    { "partials", "/missing/page", 404, "document" },
    { "components", "/", 200, "document" },
    { "product", "/products/sku-1", 200, "stream" },
    { "product", "/products/sku-404", 200, "stream" },
    { "streaming", "/products/sku-1", 200, "stream" },
  }
  for _, c in ipairs(CASES) do
    local name, url, status, how = c[1], c[2], c[3], c[4]
    it(("%s %s: %d, %s, the bytes the runtime renders"):format(name, url, status, how), function()
      local app = require("examples." .. name)
      local res, chunks = run(core.new({ app = app, env = "development", log = function() end }), { target = url })
      assert.are.equal(status, res.status)
      local want = rendered(app, url, how)
      if how == "stream" then
        assert.is_nil(res.body)
        assert.is_true(#chunks > 1)
        assert.are.same(STREAM_HEADERS, cc.headers(res))
      else
        assert.are.same(with_length(DOC_HEADERS, res.body), cc.headers(res))
      end
      assert.are.equal(want, cc.body(res, chunks))
    end)
  end

  it("partials: the route partial envelope is rt:render's fragment and state", function()
    local app = require("examples.partials")
    local res = run(core.new({ app = app, log = function() end }),
      { target = "/products/sku-2", headers = PARTIAL_ACCEPT })
    local r = rendered(app, "/products/sku-2", "partial")
    local env = Async.json.decode(res.body)
    assert.are.equal(200, res.status)
    assert.are.same({ 1, "route", r.html, r.title, r.status },
      { env.__async_server_result__, env.boundary, env.html, env.title, env.status })
    assert.are.equal(Async.json.encode(r.signals), Async.json.encode(env.signals))
  end)

  it("ssr: a handler round trip updates the count", function()
    local h = core.new({ app = require("examples.ssr"), log = function() end })
    local res = run(h, { method = "POST", target = "/__async/handler/increment", body = '{"signals":{"count":41}}',
                         headers = { ["content-type"] = "application/json", ["x-async-request"] = "1",
                                     origin = "http://example.test" } })
    assert.are.equal(200, res.status)
    assert.are.equal('{"__async_server_result__":1,"signals":{"count":42}}', res.body)
  end)
end)

describe("core.error_response: the transport's refusals on POST endpoints are envelopes", function()
  local cases = {
    { { status = 413, code = "body_too_large", path = "/__async/server/add" },
      413, '{"__async_server_result__":1,"error":{"code":"body-too-large","message":"Content Too Large",' ..
      '"name":"AsyncError"}}' },
    { { status = 431, code = "headers_too_large", path = "/shop/__async/handler/inc" },
      431, '{"__async_server_result__":1,"error":{"code":"headers-too-large",' ..
      '"message":"Request Header Fields Too Large","name":"AsyncError"}}' },
    { { status = 500, code = "handler_error", path = "/__async/handler/inc" },
      500, '{"__async_server_result__":1,"error":{"code":"internal-error","message":"Internal Server Error",' ..
      '"name":"AsyncError"}}' },
  }
  for _, c in ipairs(cases) do
    it(c[1].code .. " on " .. c[1].path, function()
      local res = core.error_response(c[1])
      assert.are.equal(c[2], res.status)
      assert.are.equal(c[3], res.body)
      assert.are.same(with_length(ENVELOPE_HEADERS, res.body), cc.headers(res))
    end)
  end

  it("anything else: nil (the transport's plain answer)", function()
    assert.is_nil(core.error_response({ status = 413, code = "body_too_large", path = "/upload" }))
    assert.is_nil(core.error_response({ status = 400, code = "malformed" }))
  end)
end)

describe("the renderer's problems reach the log", function()
  local function app()
    local a = Async.define_app()
    a:use({ partial = { p = function() return '<b signal:text="ghost"></b>' end },
            route = { ["/"] = Async.define_route("p") } })
    return a
  end

  it("production: an unknown binding renders and is a warning line", function()
    local entries = {}
    local h = core.new({ app = app(), env = "production", log = function(e) entries[#entries + 1] = e end })
    local res = run(h, { target = "/" })
    assert.are.equal(200, res.status)
    assert.are.same({ 'render: unknown signal "ghost" at p:1:4' }, entries[1].warnings)
  end)

  it("development: it is an error (500) with the message", function()
    local res = run(core.new({ app = app(), log = function() end }), { target = "/" })
    assert.are.equal(500, res.status)
    assert.truthy(res.body:find('render: unknown signal &quot;ghost&quot; at p:1:4', 1, true))
  end)
end)
