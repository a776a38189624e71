-- Apps for spec/ngx_spec.lua. `diff` serves the same bytes under nginx and
-- Async.serve (no nginx API inside); `lab` uses nginx (shared dict
-- counters, ngx.timer) to observe what the ngx loop does.
local Async = require("async")

local _M = {}

-- ===== the differential app: two boundaries, a server cache =====

local diff = Async.define_app()
diff:use({
  server = {
    ["echo"] = function(_, ...) return { args = { ... } } end,
    ["boom"] = function() error({ code = "boom", message = "it blew up" }, 0) end,
    ["nothing"] = function() return nil end,
  },
  partial = {
    pair = function(self)
      self.signals:async_signal("left", function(ctx)
        Async.delay(30, ctx.abort)
        return { text = "left" }
      end)
      self.signals:async_signal("right", function(ctx)
        Async.delay(60, ctx.abort)
        return { text = "right" }
      end)
      return { title = "Pair", html = Async.html[[
<section async:boundary="left"><template async:loading="left"><p>...</p></template>
<template async:ready="left"><b signal:text="left.text"></b></template></section>
<section async:boundary="right"><template async:loading="right"><p>...</p></template>
<template async:ready="right"><i signal:text="right.text"></i></template></section>]] {} }
    end,
    plain = function() return { title = "Plain", html = "<p>plain & simple</p>" } end,
  },
  route = { ["/pair"] = Async.define_route("pair"), ["/plain"] = Async.define_route("plain") },
})
_M.diff = diff

-- examples/counter/app.lua, loaded as the gallery loads it (root: the checkout)
local counter

-- the options both servers get (public: a folder the spec made)
function _M.diff_options(public, root)
  counter = counter or require("examples.openresty.apps").load((root or ".") .. "/examples", "counter")
  return {
    apps = { ["/"] = require("examples.product"), ["/counter"] = counter, ["/diff"] = diff },
    public = public, env = "production",
  }
end

-- ===== the lab: nginx only =====

local function dict() return ngx.shared.lab end   -- luacheck: ignore 113
local function incr(k) dict():incr(k, 1, 0) end

local lab = Async.define_app()
-- each page registers only the async signals it shows (a runtime starts the
-- runs of every signal it holds)
local RUNS = {
  a = function(ctx) Async.delay(300, ctx.abort); return "A" end,
  b = function(ctx) Async.delay(300, ctx.abort); return "B" end,
  one = function(ctx) Async.delay(300, ctx.abort); return "one" end,
  -- resumed from an ngx.timer: the timer callback runs in another (fake)
  -- request and posts the run's semaphore
  timed = function(ctx)
    return Async.await(function(resume)
      assert(ngx.timer.at(0.05, function() resume("from a timer") end))   -- luacheck: ignore 113
    end, ctx.abort)
  end,
  -- a long sleep; the code after it must never run once aborted
  slow = function(ctx)
    incr("slow.started")
    Async.delay(1500, ctx.abort)
    incr("slow.after")
    return "slept"
  end,
}
local function boundaries(self, ids)
  local out = {}
  for _, id in ipairs(ids) do
    self.signals:async_signal(id, RUNS[id])
    out[#out + 1] = ('<section async:boundary="%s"><template async:loading="%s">...</template>' ..
      '<template async:ready="%s"><b signal:text="%s"></b></template></section>'):format(id, id, id, id)
  end
  return { title = table.concat(ids, "+"), html = Async.raw(table.concat(out, "\n")) }
end
lab:use({
  server = {
    put = function(self, key, v)
      self.cache:set(key, v, { cache = "lab" })
      return { worker = ngx.worker.id() }   -- luacheck: ignore 113
    end,
    get = function(self, key)
      return { value = self.cache:get(key), worker = ngx.worker.id() }   -- luacheck: ignore 113
    end,
    fill = function(self, key)
      local v = self.cache:get_or_set(key, function()
        incr("fills")
        Async.delay(200, self.abort)
        return { filled_by = ngx.worker.id(), n = dict():get("fills") }   -- luacheck: ignore 113
      end, { cache = "lab" })
      return { value = v, worker = ngx.worker.id() }   -- luacheck: ignore 113
    end,
  },
  partial = {
    two = function(self) return boundaries(self, { "a", "b" }) end,
    one = function(self) return boundaries(self, { "one" }) end,
    timed = function(self) return boundaries(self, { "timed" }) end,
    slow = function(self) return boundaries(self, { "slow" }) end,
  },
  route = {
    ["/two"] = Async.define_route("two"), ["/one"] = Async.define_route("one"),
    ["/timed"] = Async.define_route("timed"), ["/slow"] = Async.define_route("slow"),
  },
  cache = { server = { lab = Async.define_cache({ ttl = 60000 }) } },
})
_M.lab = lab

return _M
