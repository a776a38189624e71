-- Specs for rt:render_stream (protocol.md, "Streaming"): the shell first,
-- boundaries in settle order (each once), inlining of boundaries settled
-- before the shell, timeouts and raising async signals rendering the error
-- template, and write(nil) at the end of every stream. Exact bytes.
local E = require("support.errors")
local Async = require("async")

local loop
before_each(function()
  loop = Async.manual_loop()
  Async.set_loop(loop)
end)

-- An async declaration that sleeps `ms` then returns `v` (or raises `err`).
local function after(ms, v, err)
  return Async.define_async(function(self)
    Async.delay(ms, self.abort)
    if err ~= nil then error(err, 0) end
    return v
  end)
end

-- A boundary with loading/ready/error templates for async signal `id`.
local function boundary(id)
  return ('<div async:boundary="%s"><template async:loading="%s"><i>..</i></template>' ..
    '<template async:ready="%s"><b signal:text="%s.name"></b></template>' ..
    '<template async:error="%s"><em signal:text="%s.$error.code"></em></template></div>'):gsub("%%s", id)
end
local function templates(id)
  return boundary(id):match("^<div[^>]*>(.*)</div>$")
end

local function make_rt(html, signals, opts)
  local app = Async.define_app()
  app:use({ signal = signals, partial = { page = function() return html end },
            route = { ["/"] = Async.define_route("page") } })
  return Async.create_app(app, opts)
end

-- Runs render_stream in a coroutine; returns the chunk list (write(nil) recorded as
-- "<END>") and a function stepping the loop.
local function stream(rt, opts, url)
  local chunks = {}
  local res
  local co = coroutine.create(function()
    res = rt:render_stream(url or "/", function(c) chunks[#chunks + 1] = c == nil and "<END>" or c end, opts)
  end)
  local ok, err = coroutine.resume(co)
  assert(ok, err)
  return chunks, co, function() return res end
end

local function shell_of(chunk)
  return chunk:match('^<section async:boundary="route">(.-)</section><script type="application/json" async:snapshot>')
end

describe("render_stream: order", function()
  it("three boundaries settling in reverse order arrive in settle order, each once", function()
    local rt = make_rt(boundary("a") .. boundary("b") .. boundary("c"), {
      a = after(30, { name = "A" }), b = after(20, { name = "B" }), c = after(10, { name = "C" }),
    })
    local chunks, co = stream(rt, { document = false })
    assert.are.equal(1, #chunks)
    assert.are.equal(
      '<div async:boundary="a">' .. templates("a") .. "<i>..</i></div>" ..
      '<div async:boundary="b">' .. templates("b") .. "<i>..</i></div>" ..
      '<div async:boundary="c">' .. templates("c") .. "<i>..</i></div>", shell_of(chunks[1]))
    loop:advance(10)
    assert.are.equal(2, #chunks)
    loop:advance(10)
    assert.are.equal(3, #chunks)
    loop:advance(10)
    assert.are.equal("dead", coroutine.status(co))
    -- seq counts the patches of the response from 1 (protocol.md "Streaming")
    local function fill(id, name, version, seq)
      return '<template async:fill="' .. id .. '"><b signal:text="' .. id .. '.name">' .. name .. "</b></template>" ..
        '<script type="application/json" async:patch>{"seq":' .. seq .. ',"signals":{"' .. id .. '":{"error":null,' ..
        '"loading":false,"status":"ready","value":{"name":"' .. name .. '"},"version":' .. version .. "}}}</script>"
    end
    assert.are.same({ chunks[1], fill("c", "C", 1, 1), fill("b", "B", 1, 2), fill("a", "A", 1, 3), "<END>" }, chunks)
  end)

  it("the shell's snapshot shows the pending boundaries loading", function()
    local rt = make_rt(boundary("a"), { a = after(10, { name = "A" }) })
    local chunks = stream(rt, { document = false })
    local snap = Async.read_snapshot(chunks[1])
    assert.are.same({ loading = true, status = "loading", version = 1, value = Async.null, error = Async.null },
      snap.signals.a)
    loop:advance(10)
  end)

  it("a document stream: layout head + shell first, the layout tail last", function()
    local rt = make_rt(boundary("a"), { a = after(10, { name = "A" }) })
    local chunks, co = stream(rt)
    assert.truthy(chunks[1]:find('^<!doctype html>\n<html lang="en"><head>'))
    assert.truthy(chunks[1]:find('<main async:container><section async:boundary="route">', 1, true))
    assert.is_nil(chunks[1]:find("</body>", 1, true))
    loop:advance(10)
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal(4, #chunks)
    assert.truthy(chunks[2]:find('^<template async:fill="a">'))
    assert.are.equal("</main></body></html>", chunks[3])
    assert.are.equal("<END>", chunks[4])
  end)

  it("a boundary that settles before the shell is flushed is inlined, with no fill", function()
    local rt = make_rt(boundary("now") .. boundary("later"), {
      now = Async.define_async(function() return { name = "Now" } end), later = after(5, { name = "L" }),
    })
    local chunks = stream(rt, { document = false })
    assert.are.equal('<div async:boundary="now">' .. templates("now") .. '<b signal:text="now.name">Now</b></div>' ..
      '<div async:boundary="later">' .. templates("later") .. "<i>..</i></div>", shell_of(chunks[1]))
    loop:advance(5)
    assert.are.equal(3, #chunks)
    assert.truthy(chunks[2]:find('^<template async:fill="later">'))
    assert.is_nil(table.concat(chunks, "", 2, 2):find('async:fill="now"', 1, true))
  end)

  it("with nothing pending the stream is the shell then write(nil)", function()
    local rt = make_rt("<p>static</p>", {})
    local chunks, co = stream(rt, { document = false })
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal(2, #chunks)
    assert.are.equal("<p>static</p>", shell_of(chunks[1]))
    assert.are.equal("<END>", chunks[2])
  end)

  it("a patch carries the other signals the async run changed", function()
    local rt = make_rt(boundary("a") .. '<span signal:text="count"></span>', {
      count = 0,
      a = Async.define_async(function(self)
        Async.delay(10, self.abort)
        self.signals:set("count", 7)
        return { name = "A" }
      end),
    })
    local chunks = stream(rt, { document = false })
    loop:advance(10)
    local patch = chunks[2]:match("<script type=\"application/json\" async:patch>(.-)</script>$")
    assert.are.equal('{"seq":1,"signals":{"a":{"error":null,"loading":false,"status":"ready","value":{"name":"A"},' ..
      '"version":1},"count":7}}', patch)
  end)

  it("a boundary nested in a pending one is sent with its parent, not before", function()
    local outer = '<div async:boundary="o"><template async:loading="o"><i>o..</i></template>' ..
      '<template async:ready="o"><b signal:text="o.name"></b>' .. boundary("n") .. "</template></div>"
    local rt = make_rt(outer, { o = after(20, { name = "O" }), n = after(10, { name = "N" }) })
    local chunks, co = stream(rt, { document = false })
    loop:advance(10)
    assert.are.equal(1, #chunks)            -- n settled inside o's loading state: nothing to send yet
    loop:advance(10)
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal(3, #chunks)
    assert.truthy(chunks[2]:find('^<template async:fill="o"><b signal:text="o.name">O</b><div async:boundary="n">' ..
      templates("n"):gsub("%p", "%%%0") .. '<b signal:text="n.name">N</b></div></template>'))
    assert.are.equal("<END>", chunks[3])
  end)
end)

describe("render_stream: timeouts and errors", function()
  it("a boundary past stream_timeout gets its error template with $error.code = timeout", function()
    local rt = make_rt(boundary("slow") .. boundary("fast"), {
      slow = after(500, { name = "S" }), fast = after(10, { name = "F" }),
    })
    local chunks, co = stream(rt, { document = false, stream_timeout = 100 })
    loop:advance(100)
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal(4, #chunks)
    assert.truthy(chunks[2]:find('^<template async:fill="fast">'))
    assert.are.equal('<template async:fill="slow"><em signal:text="slow.$error.code">timeout</em></template>' ..
      '<script type="application/json" async:patch>{"seq":2,"signals":{"slow":{"error":{"code":"timeout",' ..
      '"message":"Boundary slow timed out after 100 ms","name":"TimeoutError"},"loading":false,"status":"error",' ..
      '"value":null,"version":1}}}</script>', chunks[3])
    assert.are.equal("<END>", chunks[4])
    -- the timed-out run was cancelled: it never commits later
    loop:advance(1000)
    assert.are.equal(4, #chunks)
    assert.are_not.equal("ready", rt.signals:ref("slow"):status())
  end)

  it("a boundary whose async raises renders its error template; the stream goes on", function()
    local rt = make_rt(boundary("bad") .. boundary("good"), {
      bad = after(10, nil, { message = "boom", code = "E_BOOM" }), good = after(20, { name = "G" }),
    })
    local chunks, co = stream(rt, { document = false })
    loop:advance(20)
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal('<template async:fill="bad"><em signal:text="bad.$error.code">E_BOOM</em></template>' ..
      '<script type="application/json" async:patch>{"seq":1,"signals":{"bad":{"error":{"code":"E_BOOM",' ..
      '"message":"boom","name":"Error"},"loading":false,"status":"error","value":null,"version":1}}}</script>',
      chunks[2])
    assert.truthy(chunks[3]:find('^<template async:fill="good"><b signal:text="good.name">G</b></template>'))
    assert.are.equal("<END>", chunks[4])
  end)

  it("a partial that raises: write(nil) still ends the stream, then the error is raised", function()
    local app = Async.define_app()
    app:use({ partial = { page = function() error("db down", 0) end }, route = { ["/"] = Async.define_route("page") } })
    local rt = Async.create_app(app)
    local chunks = {}
    local ok, err
    local co = coroutine.create(function()
      ok, err = pcall(rt.render_stream, rt, "/", function(c) chunks[#chunks + 1] = c == nil and "<END>" or c end)
    end)
    assert(coroutine.resume(co))
    assert.is_false(ok)
    assert.are.equal("db down", err)
    assert.are.same({ "<END>" }, chunks)
  end)

  it("must run in a coroutine and needs a write function", function()
    local rt = make_rt("<p>x</p>", {})
    E.has_error(function() rt:render_stream("/", function() end) end, "render_stream must be called from a coroutine")
    E.has_error(function() rt:render_stream("/", nil) end, "render_stream expects a write function, got nil")
  end)

  it("returns the route status", function()
    local rt = make_rt("<p>x</p>", {})
    local _, _, result = stream(rt, { document = false })
    assert.are.same({ status = 200 }, result())
    local chunks, _, r404 = stream(rt, { document = false }, "/missing")
    assert.are.same({ '<section async:boundary="route"></section>', "<END>" },
      { chunks[1]:sub(1, 42), chunks[2] })
    assert.are.equal(404, r404().status)
  end)
end)
