-- Every request that creates a runtime destroys it, however the request
-- ends: success, a Lua error, the client going away before the head, during
-- the stream, or a transport that never reads the stream
-- (lua-api.md "Lifecycle"; docs/endpoints.md). Each row is a request and
-- what must have happened; the runtimes the core made are recorded by
-- wrapping create_app, and a destroyed runtime is one its app no longer
-- lists (rt:destroy removes it; the spec holds every runtime strongly, so
-- the garbage collector cannot be what removed it). Then C nodes come back
-- to their baseline after many mixed requests.
local Async = require("async")
local runtime = require("async.app.runtime")
local core = require("async.server.core")
local cc = require("support.core_client")
local apps = require("support.core_apps")

local POST = { ["content-type"] = "application/json", ["x-async-request"] = "1" }
local PARTIAL = { accept = "application/x-async-partial" }

local loop, prev, orig_create, created
setup(function()
  prev = Async.get_loop()
  loop = Async.set_loop(Async.manual_loop())
  orig_create = runtime.create_app
  runtime.create_app = function(...)
    local rt = orig_create(...)
    if created then created[#created + 1] = rt end
    return rt
  end
end)
teardown(function()
  runtime.create_app = orig_create
  Async.set_loop(prev)
end)

local function destroyed(rt)
  return rt.app.runtimes[rt] == nil and #rt.signals:keys() == 0
end

-- rows: { name, request, { gone = ms (the client goes away then), write = fn (the transport's write),
--          no_stream = true (the transport never calls stream) }, status, the waits that completed }
local ROWS = {
  { "a page that does not wait", { target = "/boom" }, {}, 500, {} },
  { "a streamed page read to its end", { target = "/stream" }, {}, 200, { "slow:done" } },
  { "a streamed page whose client goes away at the first fill (write fails)", { target = "/stream" },
    { write = function(c) return c:find("async:fill", 1, true) and nil or true, "closed" end }, 200,
    { "slow:done" } },
  { "a streamed page whose client goes away mid-wait (req.abort)", { target = "/stream" }, { gone = 20 }, 200,
    {} },
  { "a streamed page whose stream is never read, then the client goes away", { target = "/stream" },
    { no_stream = true, gone = 20 }, 200, {} },
  { "a streamed page whose stream is never read (the renderer ends by itself)", { target = "/stream" },
    { no_stream = true }, 200, { "slow:done" } },
  { "HEAD of a streamed page: the render stops at once", { method = "HEAD", target = "/stream" }, {}, 200,
    {} },
  { "the client goes away before the shell; the partial honours the abort", { target = "/wait" }, { gone = 10 },
    499, {} },
  { "the client goes away before the shell; the partial ignores the abort", { target = "/blind" }, { gone = 10 },
    499, { "blind:done" } },
  { "a route partial that waits", { target = "/wait", headers = PARTIAL }, {}, 200, { "wait:done" } },
  { "a route partial whose client goes away", { target = "/wait", headers = PARTIAL }, { gone = 10 }, 499,
    {} },
  { "a route partial that raises", { target = "/boom", headers = PARTIAL }, {}, 500, {} },
  { "a server function", { method = "POST", target = "/__async/server/wait", headers = POST, body = "{}" }, {}, 200,
    { "server:done" } },
  { "a server function whose client goes away", { method = "POST", target = "/__async/server/wait", headers = POST,
    body = "{}" }, { gone = 10 }, 499, {} },
  { "a server function that ignores the abort", { method = "POST", target = "/__async/server/blind",
    headers = POST, body = "{}" }, { gone = 10 }, 499, { "server-blind:done" } },
  { "a handler", { method = "POST", target = "/__async/handler/ok", headers = POST, body = "{}" }, {}, 200, {} },
  { "a handler that raises", { method = "POST", target = "/__async/handler/boom", headers = POST, body = "{}" }, {},
    500, {} },
}

describe("every request runtime is destroyed", function()
  for _, row in ipairs(ROWS) do
    local name, t, how, status, want = row[1], row[2], row[3], row[4], row[5]
    it(name, function()
      local events = {}
      local h = core.new({ app = apps.lifecycle(events), log = function() end })
      created = {}
      local req = cc.req(t)
      if how.gone then loop:timer(how.gone, function() req.abort:cancel("client disconnected") end) end
      local res = cc.run(h, loop, req, { write = how.write, no_stream = how.no_stream })
      loop:advance(200)   -- whatever was left running ends (or stays abandoned)
      local rts = created
      created = nil
      assert.are.equal(status, res.status)
      assert.are.equal(1, #rts)
      assert.is_true(destroyed(rts[1]), "runtime not destroyed")
      assert.are.same(want, events)
    end)
  end

  it("stream = false: a page whose client goes away mid-wait", function()
    local events = {}
    local h = core.new({ app = apps.lifecycle(events), stream = false, log = function() end })
    created = {}
    local req = cc.req({ target = "/stream" })
    loop:timer(20, function() req.abort:cancel("client disconnected") end)
    local res = cc.run(h, loop, req)
    loop:advance(200)
    local rts = created
    created = nil
    assert.are.equal(499, res.status)
    assert.is_true(destroyed(rts[1]))
    assert.are.same({}, events)
  end)

  it("a request that does not need an app runtime makes none", function()
    local h = core.new({ app = apps.lifecycle({}), log = function() end })
    created = {}
    cc.run(h, loop, cc.req({ target = "/__async/client.js" }))
    cc.run(h, loop, cc.req({ method = "POST", target = "/__async/server/nope", headers = POST, body = "{}" }))
    cc.run(h, loop, cc.req({ method = "POST", target = "/__async/server/wait", headers = {}, body = "{}" }))
    local n = #created
    created = nil
    assert.are.equal(0, n)
  end)
end)

describe("no leak over many requests", function()
  local function settle()
    Async.collect_garbage()   -- frees every node whose handle was collected
    Async.collect_garbage()
    return Async.core_stats().live_nodes, collectgarbage("count")
  end

  it("C nodes back to their baseline, Lua heap flat, after 600 mixed requests", function()
    local events = {}
    local h = core.new({ app = apps.lifecycle(events), log = function() end })
    local function wave(n)
      for i = 1, n do
        local row = ROWS[i % #ROWS + 1]
        local req = cc.req(row[2])
        if row[3].gone then loop:timer(row[3].gone, function() req.abort:cancel("gone") end) end
        cc.run(h, loop, req, { write = row[3].write, no_stream = row[3].no_stream })
      end
      loop:advance(200)
      for k in pairs(events) do events[k] = nil end
    end
    -- warm up: plans, compiled routes, interned strings, and the bounded
    -- caches and id-indexed tables at their working size (alone, the first
    -- 600 requests grew the heap by 340-520 KB, the next 600 by 20-155 KB:
    -- measured after one wave, the bound of 512 KB failed once in CI)
    wave(2 * #ROWS)
    wave(600)
    local nodes0, kb0 = settle()
    wave(600)
    local nodes1, kb1 = settle()
    -- not above the baseline (in the full suite, nodes other spec files left
    -- behind may still be freed meanwhile, so it can end below)
    assert.is_true(nodes1 <= nodes0, ("C nodes %d -> %d"):format(nodes0, nodes1))
    -- a string of 400 bytes kept per request (tried) grows it by 373 KB
    assert.is_true(kb1 - kb0 < 256, ("Lua heap grew by %.0f KB"):format(kb1 - kb0))
  end)
end)
