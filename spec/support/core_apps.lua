--- Small apps for the server core specs: every kind of declaration the
-- endpoints reach (plain, private and async signals, a computed, handlers
-- and server functions that succeed, return nil, raise, wait), and routes
-- that render at once, wait, stream, fail and set their status.
local Async = require("async")

local _M = {}

--- The shop: a fresh app each call (specs register on it freely).
function _M.shop()
  local app = Async.define_app()
  app:use({
    signal = {
      count = 0,
      name = "ada",
      _secret = "hunter2",
      prefs = { theme = "light" },
      doubled = Async.computed(function(s) return s:get("count") * 2 end),
      stock = Async.define_async(function(self)
        Async.delay(30, self.abort)
        return { left = 3 }
      end),
    },
    handler = {
      inc = function(self) self.signals:update("count", function(c) return c + 1 end) end,
      rename = function(self) self.signals:set("name", self.input.name) end,
      boom = function() error("kaboom") end,
      peek_secret = function(self) return self.signals:get("_secret") end,
      stop_here = function(self) self:stop() end,
      go = function(self) self:redirect("/items/2") end,
      read_theme = function(self) return self.signals:get("prefs.theme") end,
      stock_left = function(self)
        return { left = self.signals:get("stock.left"), status = self.signals:get("stock.$status") }
      end,
      call_fail = function(self)
        local ok = pcall(function() return self.server.fail() end)
        return ok and "ok" or "caught"
      end,
    },
    server = {
      add = function(_, a, b) return a + b end,
      nothing = function() return nil end,
      fail = function() error("db down") end,
      sold_out = function() error({ code = "out-of-stock", message = "Sold out" }, 0) end,
      refuse = function() return Async.result({ error = { code = "nope", message = "Not allowed" } }) end,
      ["cart.put"] = function(_, id, qty)
        return Async.result({ value = { id = id, qty = qty }, signals = { count = qty } })
      end,
      args = function(_, ...) return { n = select("#", ...), first = (...) == nil and "nil" or (...) } end,
      who = function(self) return { header = self.headers["x-test"], cookie = self.cookies.sid,
                                    path = self.request.path, prefix = self.request.prefix,
                                    sent = self.signals:get("count") } end,
      wait = function(self)
        Async.delay(50, self.abort)
        return "waited"
      end,
      bad_value = function() return { f = print } end,
    },
    partial = {
      home = function()
        return { html = Async.html[[<h1 signal:text="name"></h1><b signal:text="count"></b>]] {}, title = "Home" }
      end,
      item = function(_, params)
        if params.id == "9" then
          return { html = Async.html[[<p>No item {{ id }}</p>]] { id = params.id }, status = 404, title = "Missing" }
        end
        return Async.html[[<p>Item {{ id }}</p>]] { id = params.id }
      end,
      slow = function()
        return Async.html([[<div async:boundary="stock"><template async:loading="stock"><i>...</i></template>]] ..
          [[<template async:ready="stock"><b signal:text="stock.left"></b></template></div>]]) {}
      end,
      boom = function() error("render exploded") end,
    },
    route = {
      ["/"] = Async.define_route("home"),
      ["/items/:id"] = Async.define_route("item"),
      ["/slow"] = Async.define_route("slow"),
      ["/boom"] = Async.define_route("boom"),
    },
  })
  return app
end

--- An app for lifecycle specs; `events` collects the waits that completed
-- ("slow:done", "wait:done", ...). A wait aborted by its token never
-- resumes its coroutine (async.loop), so an aborted one leaves no event.
function _M.lifecycle(events)
  local app = Async.define_app()
  local function note(what) events[#events + 1] = what end
  app:use({
    signal = {
      slow = Async.define_async(function(self)
        Async.delay(50, self.abort)
        note("slow:done")
        return 1
      end),
    },
    partial = {
      stream = function()
        return Async.html([[<div async:boundary="slow"><template async:loading="slow">...</template>]] ..
          [[<template async:ready="slow"><b signal:text="slow"></b></template></div>]]) {}
      end,
      wait = function(self)
        Async.delay(100, self.request.abort)
        note("wait:done")
        return "<p>waited</p>"
      end,
      blind = function()
        Async.delay(100)
        note("blind:done")
        return "<p>waited</p>"
      end,
      boom = function() error("boom") end,
    },
    handler = { boom = function() error("boom") end, ok = function() end },
    server = {
      wait = function(self)
        Async.delay(100, self.abort)
        note("server:done")
        return 1
      end,
      blind = function()
        Async.delay(100)
        note("server-blind:done")
        return 1
      end,
    },
    route = {
      ["/stream"] = Async.define_route("stream"), ["/wait"] = Async.define_route("wait"),
      ["/blind"] = Async.define_route("blind"), ["/boom"] = Async.define_route("boom"),
    },
  })
  return app
end

return _M
