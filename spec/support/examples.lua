--- Helpers for spec/examples_apps_spec.lua: load an example app the way the
-- gallery (or a server) does, make request runtimes with the options the app
-- gives Async.main, and drive renders, streams, handlers and server calls
-- on a manual loop. Nothing here opens a socket.
local Async = require("async")

local _M = {}

--- Loads examples/NAME/app.lua (or examples/NAME.lua for the gallery);
-- returns the app and the options it passed to Async.main. Loaded this way
-- Async.main must return the app without serving it (checked). The
-- gallery loads the examples' files, whose Async.main calls come first:
-- the file's own call is the one whose app it returns.
function _M.load(name)
  local file = name == "gallery" and "examples/gallery.lua" or ("examples/" .. name .. "/app.lua")
  local real, calls = Async.main, {}
  Async.main = function(app, opts)
    calls[#calls + 1] = { app = app, opts = opts or {} }
    local got = real(app, opts)
    assert(got == app, "Async.main must return the app when the file is not the script being run")
    return app
  end
  local ok, app = pcall(dofile, file)
  Async.main = real
  if not ok then error(app, 0) end
  local own = 0
  for _, c in ipairs(calls) do if c.app == app then own = own + 1 end end
  assert(own == 1 and calls[#calls].app == app, file .. " must end with one Async.main call for its app")
  return app, calls[#calls].opts
end

--- A fresh manual loop, made the active one.
function _M.manual_loop()
  local loop = Async.manual_loop()
  Async.set_loop(loop)
  return loop
end

--- A request runtime of `app` as a server makes it from the app's
-- Async.main options (layout, runtime = { client_handlers = ... }), in
-- development (bindings checked). `extra` adds create_app options.
function _M.runtime(app, options, extra)
  local opts = { env = "development", layout = options and options.layout, head = options and options.head,
                  title = options and options.title }
  for k, v in pairs(options and options.runtime or {}) do opts[k] = v end
  for k, v in pairs(extra or {}) do opts[k] = v end
  return Async.create_app(app, opts)
end

--- Runs fn(...) in a coroutine, advancing `loop` 1 ms at a time until it
-- has returned; returns its results. Fails after 60 s of loop time.
function _M.drive(loop, fn, ...)
  local args, res = { n = select("#", ...), ... }, nil
  local co = coroutine.create(function() res = { fn(unpack(args, 1, args.n)) } end)
  local ok, err = coroutine.resume(co)
  if not ok then error(err, 0) end
  local limit = loop:now() + 60000
  while coroutine.status(co) ~= "dead" do
    loop:advance(1)
    assert(loop:now() < limit, "did not finish in 60 s of loop time")
  end
  return unpack(res)
end

--- Streams url: the list of { at = loop ms, html = chunk } (write(nil) is
-- recorded as html = false), and render_stream's result.
function _M.stream(loop, rt, url)
  local chunks, t0 = {}, loop:now()
  local res = _M.drive(loop, function()
    return rt:render_stream(url, function(chunk)
      chunks[#chunks + 1] = { at = loop:now() - t0, html = chunk or false }
      return true
    end)
  end)
  return chunks, res
end

--- The parts of a streamed chunk that follow the shell: { fill = id, html =
-- inner HTML, patch = decoded JSON or nil } (nil for anything else).
function _M.fill_of(chunk)
  local id, inner, rest = chunk:match('^<template async:fill="([^"]+)">(.-)</template>(.*)$')
  if not id then return nil end
  local patch
  if rest ~= "" then
    local body = rest:match('^<script type="application/json" async:patch>(.*)</script>$')
    assert(body, "unexpected text after a fill: " .. rest)
    patch = Async.json.decode(body)
  end
  return { fill = id, html = inner, patch = patch }
end

--- Raises unless `html` works under Content-Security-Policy: script-src
-- 'self': every <script> has a src or is JSON data, no on*= attribute, no
-- javascript: URL.
function _M.assert_csp_safe(html)
  for tag in html:gmatch("<[sS][cC][rR][iI][pP][tT][^>]*>") do
    assert(tag:find('%ssrc="[^"]+"') or tag:find('%stype="application/json"'),
      "an inline script: " .. tag)
  end
  for tag in html:gmatch("<%a[^>]*>") do
    local attr = tag:match("%s([oO][nN]%a+)%s*=")
    assert(attr == nil, "an inline event handler (" .. tostring(attr) .. "): " .. tag)
  end
  assert(not html:lower():find("javascript:", 1, true), "a javascript: URL")
  return true
end

return _M
