-- A server creates a runtime per request: memory must stay flat over
-- 100,000 requests whether the runtime is destroyed or only dropped
-- (lua-api.md "Lifecycle"). The app has everything a runtime can own: hub
-- computeds, partial computeds, component effects and computeds,
-- subscriptions, async signals, server calls and the server cache. The four
-- request kinds take turns: rt:render (waits for an async signal),
-- rt:dispatch, rt:call, and rt:render_stream whose client goes away while
-- an async run is in flight (its run is aborted).
--
-- Regressions pinned: an async signal's finalizer that closed over the
-- signal; schedulers held strongly; the kernel's global function table
-- holding every node's closure (closure -> registry -> node), so dropped
-- runtimes never died; aborted runs kept in a weak-keyed table whose value
-- referenced its key; a collected root's finalizer disposing a reused id.
local Async = require("async")

local N = tonumber(os.getenv("LEAK_REQUESTS")) or 100000
local WAVE = 100   -- requests in flight together

local function make_app()
  local app = Async.define_app()
  local Counter = Async.define_component(function(self, props)
    local n = self:signal("n", props.start)
    local seen = 0
    self:effect(function() seen = seen + n() end)
    local doubled = self:computed("d", function() return n() * 2 + seen * 0 end)
    return Async.html[[<b signal:text="{{ d }}"></b>]] { d = doubled }
  end)
  app:use({
    signal = {
      count = 1,
      total = Async.computed(function(s) return s:get("count") * 10 end),
    },
    handler = {
      inc = function(self) self.signals:update("count", function(c) return c + 1 end) end,
    },
    server = {
      sum = function(self, a, b)
        return self.cache:get_or_set("sum:" .. a .. ":" .. b, function() return a + b end)
      end,
    },
    partial = {
      page = function(self)
        self.signals:computed("label", function(s) return "n=" .. s:get("count") end)
        self.signals:subscribe("count", function() end)
        self.signals:async_signal("slow", function(ctx)
          local c = ctx.signals:get("count")
          Async.delay(50, ctx.abort)
          return c + 1
        end)
        return Async.html[[
<p signal:text="label"></p><i signal:text="total"></i>{{ counter }}
<div async:boundary="slow">
  <template async:loading="slow">...</template>
  <template async:ready="slow"><u signal:text="slow"></u></template>
</div>]] { counter = self:render(Counter, { start = 3 }) }
      end,
    },
    route = { ["/"] = Async.define_route("page") },
  })
  return app
end

-- one request of kind i % 4, in its own coroutine
local function request(app, loop, i, destroy, results)
  local kind = tonumber(os.getenv("LEAK_KIND")) or i % 4
  local co = coroutine.create(function()
    local rt = Async.create_app(app)
    if kind == 0 then
      local r = rt:render("/")
      results.ok = results.ok + (r.status == 200 and r.html:find("<u signal:text=\"slow\">2</u>", 1, true) and 1 or 0)
    elseif kind == 1 then
      local env = rt:dispatch("inc", {}, { signals = { count = 5 } })
      results.ok = results.ok + (env.signals.count == 6 and 1 or 0)
    elseif kind == 2 then
      local env = rt:call("sum", { 1, 2, n = 2 })
      results.ok = results.ok + (env.value == 3 and 1 or 0)
    else
      -- the client goes away 10 ms in, while the async run waits
      local abort = Async.abort_token()
      loop:timer(10, function() abort:cancel("client gone") end)
      local chunks = 0
      local r, err = rt:render_stream("/", function(c) if c then chunks = chunks + 1 end end, { abort = abort })
      local slow = rt.signals:ref("slow")
      results.ok = results.ok + ((r == nil and err == "client gone" and chunks == 1
        and slow:status() == "idle") and 1 or 0)
    end
    if destroy then rt:destroy() end
  end)
  local ok, err = coroutine.resume(co)
  if not ok then error(err, 0) end
end

local function run(app, loop, n, destroy)
  local results = { ok = 0 }
  for first = 1, n, WAVE do
    for i = first, math.min(first + WAVE - 1, n) do request(app, loop, i, destroy, results) end
    loop:advance(60)
  end
  return results.ok
end

-- Compiled traces (their IR, snapshots and machine code) are counted in
-- the Lua heap, and which traces exist after 400 requests or after 100,000
-- is up to LuaJIT (up to 2 MB here, bounded by its maxtrace and maxmcode
-- limits). They are not request data: they are flushed before both
-- measurements, so what is compared is the data the requests left behind.
local function settle()
  jit.flush()
  Async.collect_garbage()   -- frees every node whose handle was collected
  Async.collect_garbage()
  return collectgarbage("count"), Async.core_stats().live_nodes
end

describe("runtimes per request do not leak", function()
  local loop, prev
  setup(function()
    prev = Async.get_loop()
    loop = Async.set_loop(Async.manual_loop())
  end)
  teardown(function() Async.set_loop(prev) end)

  for _, destroy in ipairs({ false, true }) do
    local what = destroy and "destroying each runtime" or "dropping each runtime"
    it(("%d requests, %s: C nodes back to baseline, Lua heap under +512 KB"):format(N, what), function()
      local app = make_app()
      assert.are.equal(400, run(app, loop, 400, destroy))   -- warm up: plans, traces, interned strings
      local kb0, nodes0 = settle()
      local ok = run(app, loop, N, destroy)
      local kb1, nodes1 = settle()
      print(("\n  leak: %d requests %s: Lua heap %.0f KB -> %.0f KB (%+.0f KB), C nodes %d -> %d")
        :format(N, what, kb0, kb1, kb1 - kb0, nodes0, nodes1))
      assert.are.equal(N, ok)
      assert.is_true(kb1 - kb0 < 512, ("heap grew by %.0f KB"):format(kb1 - kb0))
      assert.are.equal(nodes0, nodes1)
    end)
  end
end)
