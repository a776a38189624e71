-- 1,000 concurrent renders of one app as coroutines share no state: each
-- request has its own runtime (create_app per request), its own async runs
-- (settling in a scrambled order) and its own values, and every page holds
-- exactly its own values.
local Async = require("async")

local N = 1000

local PAGE = [[<article async:boundary="order"><template async:loading="order"><p>Loading</p></template>]] ..
  [[<template async:ready="order"><h1 signal:text="order.title"></h1><span signal:text="order.n"></span>]] ..
  [[<input signal:value="who"></template></article><p class:odd="odd" signal:text="who"></p>]]

local function app_under_test()
  local app = Async.define_app()
  app:use({
    signal = {
      who = "nobody",
      odd = false,
      order = Async.define_async(function(self)
        local n = tonumber(self.signals:get("router.params").n)
        -- settle order differs from start order: delays 1..97 ms, scrambled
        Async.delay((n * 37) % 97 + 1, self.abort)
        return { title = "Order " .. n, n = n }
      end),
    },
    partial = {
      order = function(self, params)
        self.signals:set("who", "user-" .. params.n)
        self.signals:set("odd", tonumber(params.n) % 2 == 1)
        return Async.html[[{{ page }}]] { page = Async.raw(PAGE) }
      end,
    },
    route = { ["/orders/:n"] = Async.define_route("order") },
  })
  return app
end

local function expected(n)
  return '<section async:boundary="route"><article async:boundary="order"><template async:loading="order">' ..
    '<p>Loading</p></template><template async:ready="order"><h1 signal:text="order.title"></h1>' ..
    '<span signal:text="order.n"></span><input signal:value="who"></template>' ..
    '<h1 signal:text="order.title">Order ' .. n .. '</h1><span signal:text="order.n">' .. n .. "</span>" ..
    '<input signal:value="who" value="user-' .. n .. '"></article>' ..
    '<p class:odd="odd" signal:text="who"' .. (n % 2 == 1 and ' class="odd"' or "") ..
    ">user-" .. n .. "</p></section>"
end

describe("render: 1,000 concurrent renders", function()
  it("each request renders only its own values", function()
    local loop = Async.manual_loop()
    Async.set_loop(loop)
    local app = app_under_test()
    local out, runtimes, done = {}, {}, 0
    for n = 1, N do
      local co = coroutine.create(function()
        local rt = Async.create_app(app)   -- the request's own runtime
        runtimes[n] = rt
        out[n] = rt:render("/orders/" .. n)
        done = done + 1
      end)
      assert(coroutine.resume(co))
    end
    assert.are.equal(0, done)      -- all are waiting at once
    loop:advance(100)
    assert.are.equal(N, done)
    for n = 1, N do
      local html = out[n].html
      local page = html:match("^(.-)<script type=\"application/json\" async:snapshot>")
      assert.are.equal(expected(n), page)
      local snap = Async.read_snapshot(html).signals
      assert.are.equal("user-" .. n, snap.who)
      assert.are.same({ title = "Order " .. n, n = n }, snap.order.value)
      assert.are.equal("/orders/" .. n, snap["router.url"])
      assert.are.equal(200, out[n].status)
    end
    -- the runtimes kept their own state after the fact
    assert.are.equal("user-1", runtimes[1].signals:get("who"))
    assert.are.equal("user-" .. N, runtimes[N].signals:get("who"))
    assert.are_not.equal(runtimes[1].signals:ref("order"), runtimes[2].signals:ref("order"))
  end)

  it("streams interleave without mixing chunks", function()
    local loop = Async.manual_loop()
    Async.set_loop(loop)
    local app = app_under_test()
    local chunks, ended = {}, 0
    for n = 1, N do
      chunks[n] = {}
      local co = coroutine.create(function()
        Async.create_app(app):render_stream("/orders/" .. n, function(c)
          if c == nil then ended = ended + 1 else chunks[n][#chunks[n] + 1] = c end
        end, { document = false })
      end)
      assert(coroutine.resume(co))
    end
    loop:advance(100)
    assert.are.equal(N, ended)
    for n = 1, N do
      assert.are.equal(2, #chunks[n])
      assert.are.equal('<template async:fill="order"><h1 signal:text="order.title">Order ' .. n .. "</h1>" ..
        '<span signal:text="order.n">' .. n .. '</span><input signal:value="who" value="user-' .. n ..
        '"></template>', chunks[n][2]:match("^(.-)<script"))
    end
  end)
end)
