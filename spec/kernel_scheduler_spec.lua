-- kernel.md "The scheduler".
local Async = require("async")
local E = require("support.errors")

local function manual(opts)
  opts = opts or {}
  opts.strategy = "manual"
  return Async.create_scheduler(opts)
end

describe("Scheduler: phase order binding -> lifecycle -> effect -> async -> post", function()
  it("one flush walks the phases in order, whatever the enqueue order", function()
    local s = manual()
    local log = {}
    for _, p in ipairs({ "post", "async", "effect", "lifecycle", "binding" }) do
      s:enqueue(p, function() log[#log + 1] = p end)
    end
    assert.same({}, log)
    s:flush()
    assert.same({ "binding", "lifecycle", "effect", "async", "post" }, log)
    assert.equal(0, s:size())
  end)

  it("jobs of one phase run in enqueue order", function()
    local s = manual()
    local log = {}
    for i = 1, 5 do s:enqueue("effect", function() log[#log + 1] = i end) end
    s:flush()
    assert.same({ 1, 2, 3, 4, 5 }, log)
  end)
end)

describe("Scheduler: same-pass / next-pass rule", function()
  it("a later phase queued during a flush runs in the same pass", function()
    local s = manual()
    local log = {}
    s:enqueue("binding", function()
      log[#log + 1] = "binding"
      s:enqueue("async", function() log[#log + 1] = "async" end)
      s:enqueue("lifecycle", function() log[#log + 1] = "lifecycle" end)
    end)
    s:enqueue("effect", function() log[#log + 1] = "effect" end)
    s:flush()
    assert.same({ "binding", "lifecycle", "effect", "async" }, log)
  end)

  it("the current or an earlier phase queued during a flush runs in the next pass", function()
    local s = manual()
    local log = {}
    s:enqueue("effect", function()
      log[#log + 1] = "effect1"
      s:enqueue("effect", function() log[#log + 1] = "effect2" end)
      s:enqueue("binding", function() log[#log + 1] = "binding2" end)
    end)
    s:enqueue("effect", function() log[#log + 1] = "effect1b" end)
    s:enqueue("async", function() log[#log + 1] = "async1" end)
    s:flush()
    assert.same({ "effect1", "effect1b", "async1", "binding2", "effect2" }, log)
  end)

  it("post runs only when no earlier phase has work", function()
    local s = manual()
    local log = {}
    s:enqueue("post", function() log[#log + 1] = "post" end)
    s:enqueue("async", function()
      log[#log + 1] = "async"
      s:enqueue("binding", function() log[#log + 1] = "binding2" end)
    end)
    s:flush()
    assert.same({ "async", "binding2", "post" }, log)
  end)

  it("post jobs queued by post jobs run in a later pass", function()
    local s = manual()
    local log = {}
    s:enqueue("post", function()
      log[#log + 1] = "post1"
      s:enqueue("post", function() log[#log + 1] = "post2" end)
      s:enqueue("effect", function() log[#log + 1] = "effect" end)
    end)
    s:flush()
    assert.same({ "post1", "effect", "post2" }, log)
  end)
end)

describe("Scheduler: key dedupe", function()
  it("a second job with the same (phase, scope, key) while pending is dropped", function()
    local s = manual()
    local log = {}
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "a" end, { key = "k" }))
    assert.is_false(s:enqueue("effect", function() log[#log + 1] = "b" end, { key = "k" }))
    assert.is_true(s:enqueue("binding", function() log[#log + 1] = "c" end, { key = "k" }))
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "d" end, { key = "k", scope = "s1" }))
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "e" end))
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "f" end))
    s:flush()
    assert.same({ "c", "a", "d", "e", "f" }, log)
  end)

  it("once the job has run (or started) the key is free again", function()
    local s = manual()
    local n = 0
    local function job()
      n = n + 1
      if n < 3 then assert.is_true(s:enqueue("effect", job, { key = "again" })) end
    end
    s:enqueue("effect", job, { key = "again" })
    s:flush()
    assert.equal(3, n)
    assert.is_true(s:enqueue("effect", job, { key = "again" }))
    s:flush()
    assert.equal(4, n)
  end)
end)

describe("Scheduler: destroy_scope / revive_scope", function()
  it("jobs of a destroyed scope are dropped, pending and future", function()
    local s = manual()
    local log = {}
    s:enqueue("effect", function() log[#log + 1] = "x1" end, { scope = "comp.X.1" })
    s:enqueue("effect", function() log[#log + 1] = "y1" end, { scope = "comp.Y.1" })
    s:destroy_scope("comp.X.1")
    assert.is_false(s:enqueue("effect", function() log[#log + 1] = "x2" end, { scope = "comp.X.1" }))
    s:flush()
    assert.same({ "y1" }, log)
  end)

  it("revive_scope accepts new jobs but does not bring back dropped ones", function()
    local s = manual()
    local log = {}
    s:enqueue("effect", function() log[#log + 1] = "old" end, { scope = "c.1", key = "k" })
    s:destroy_scope("c.1")
    s:revive_scope("c.1")
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "new" end, { scope = "c.1" }))
    s:flush()
    assert.same({ "new" }, log)
    -- the dropped keyed job freed its key
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "k2" end, { scope = "c.1", key = "k" }))
    s:flush()
    assert.same({ "new", "k2" }, log)
  end)

  it("destroying a scope from a job drops its later jobs in the same flush", function()
    local s = manual()
    local log = {}
    s:enqueue("binding", function() s:destroy_scope("gone") end)
    s:enqueue("effect", function() log[#log + 1] = "gone" end, { scope = "gone" })
    s:enqueue("effect", function() log[#log + 1] = "kept" end, { scope = "kept" })
    s:flush()
    assert.same({ "kept" }, log)
  end)
end)

describe("Scheduler: keys and scopes do not pile up (issue 9, item 13)", function()
  it("200,000 jobs with distinct keys and scopes leave nothing interned and the heap flat", function()
    local s = manual()
    local function noop() end
    local function round(from)
      for i = from, from + 99999 do
        s:enqueue("effect", noop, { key = "req:" .. i, scope = "scope:" .. i })
      end
      s:flush()
    end
    round(1)
    collectgarbage(); collectgarbage()
    local before = collectgarbage("count")
    round(100001)
    collectgarbage(); collectgarbage()
    local grown = collectgarbage("count") - before
    assert.equal(0, s:interned())
    assert.is_true(grown < 1024, ("the heap grew by %.0f KB"):format(grown))
  end)

  it("a key is held while its job waits, a scope while it is destroyed, and numbers are reused safely", function()
    local s = manual()
    local log = {}
    s:enqueue("effect", function() log[#log + 1] = "a" end, { key = "k" })
    assert.equal(1, s:interned())
    assert.is_false(s:enqueue("effect", function() log[#log + 1] = "dup" end, { key = "k" }))
    assert.equal(1, s:interned())
    s:destroy_scope("dead")
    assert.equal(2, s:interned())
    assert.is_false(s:enqueue("effect", function() log[#log + 1] = "x" end, { scope = "dead" }))
    s:flush()
    assert.same({ "a" }, log)
    assert.equal(1, s:interned())   -- "dead" stays while destroyed
    -- "k"'s number is free; a new key that reuses it is not taken for the dead scope
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "b" end, { key = "other", scope = "live" }))
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "c" end, { key = "k" }))
    s:flush()
    assert.same({ "a", "b", "c" }, log)
    s:revive_scope("dead")
    assert.equal(0, s:interned())
    assert.is_true(s:enqueue("effect", function() log[#log + 1] = "d" end, { scope = "dead" }))
    s:clear()
    assert.equal(0, s:interned())
  end)

  it("a failing keyed job reports its key to on_error, then lets it go", function()
    local seen
    local s = manual({ on_error = function(_, job) seen = job.key end })
    s:enqueue("post", function() error("boom") end, { key = "k1" })
    pcall(s.flush, s)
    assert.equal("k1", seen)
    assert.equal(0, s:interned())
  end)
end)

describe("Scheduler: max_depth", function()
  it("a flush that needs more than max_depth passes stops with 'exceeded max_depth'", function()
    local s = manual({ max_depth = 5 })
    local n = 0
    local function again()
      n = n + 1
      s:enqueue("effect", again)
    end
    s:enqueue("effect", again)
    local ok, err = pcall(s.flush, s)
    assert.is_false(ok)
    assert.matches("exceeded max_depth", err, 1, true)
    assert.equal(5, n)
    assert.equal(0, s:size())
    -- usable afterwards
    local ran = false
    s:enqueue("post", function() ran = true end)
    s:flush()
    assert.is_true(ran)
  end)

  it("the default is 100 passes", function()
    local s = manual()
    local n = 0
    local function again() n = n + 1; s:enqueue("binding", again) end
    s:enqueue("binding", again)
    assert.has_error(function() s:flush() end)
    assert.equal(100, n)
  end)

  it("with on_error the depth error goes to the handler", function()
    local errs = {}
    local s = manual({ max_depth = 3, on_error = function(e) errs[#errs + 1] = e end })
    local function again() s:enqueue("effect", again) end
    s:enqueue("effect", again)
    s:flush()
    assert.equal(1, #errs)
    assert.matches("exceeded max_depth", errs[1], 1, true)
  end)
end)

describe("Scheduler: errors in jobs", function()
  it("with on_error: called with job.phase and job.key, the flush goes on", function()
    local calls = {}
    local s = manual({ on_error = function(err, job) calls[#calls + 1] = { err, job.phase, job.key } end })
    local log = {}
    s:enqueue("lifecycle", function() error("l-fail", 0) end, { key = "lk" })
    s:enqueue("async", function() error({ code = 7 }) end)
    s:enqueue("post", function() log[#log + 1] = "post" end)
    s:flush()
    assert.same({ "post" }, log)
    assert.equal(2, #calls)
    assert.same({ "l-fail", "lifecycle", "lk" }, calls[1])
    assert.same({ code = 7 }, calls[2][1])
    assert.equal("async", calls[2][2])
    assert.is_nil(calls[2][3])
  end)

  it("without on_error the first error is rethrown once the flush has finished", function()
    local s = manual()
    local log = {}
    s:enqueue("binding", function() error("first", 0) end)
    s:enqueue("effect", function() error("second", 0) end)
    s:enqueue("post", function() log[#log + 1] = "post" end)
    local ok, err = pcall(s.flush, s)
    assert.is_false(ok)
    assert.equal("first", err)
    assert.same({ "post" }, log)
    assert.equal(0, s:size())
  end)

  it("an on_error that raises: its error is rethrown after the flush", function()
    local s = manual({ on_error = function() error("handler broke", 0) end })
    local ran = false
    s:enqueue("binding", function() error("job", 0) end)
    s:enqueue("post", function() ran = true end)
    assert.has_error(function() s:flush() end, "handler broke")
    assert.is_true(ran)
  end)
end)

describe("Scheduler: flush re-entry", function()
  it("flush() from inside a job returns at once", function()
    local s = manual()
    local log = {}
    s:enqueue("binding", function()
      s:enqueue("effect", function() log[#log + 1] = "effect" end)
      s:flush()
      log[#log + 1] = "after inner flush"
    end)
    s:flush()
    assert.same({ "after inner flush", "effect" }, log)
  end)

  it("Async.flush() inside an effect returns at once", function()
    local a = Async.signal(0)
    local log = {}
    local d1 = Async.effect(function() log[#log + 1] = "e1:" .. a(); Async.flush() end)
    local d2 = Async.effect(function() log[#log + 1] = "e2:" .. a() end)
    a:set(1)
    assert.same({ "e1:0", "e2:0", "e1:1", "e2:1" }, log)
    d1(); d2()
  end)
end)

describe("Scheduler: strategies", function()
  it("sync (the default): effects run as soon as the write / batch / transaction ends", function()
    local s = Async.create_scheduler({ strategy = "sync" })
    local a = Async.signal(0)
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = a() end, { scheduler = s })
    assert.same({ 0 }, log)
    a:set(1)
    assert.same({ 0, 1 }, log)
    Async.transaction(function() a:set(2) end)
    assert.same({ 0, 1, 2 }, log)
    s:batch(function() a:set(3) end)
    assert.same({ 0, 1, 2, 3 }, log)
    dispose()
  end)

  it("manual: only flush() runs the jobs", function()
    local s = manual()
    local a = Async.signal(0)
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = a() end, { scheduler = s })
    assert.same({}, log)
    s:flush()
    assert.same({ 0 }, log)
    a:set(1); a:set(2)
    assert.same({ 0 }, log)
    s:flush()
    assert.same({ 0, 2 }, log)
    dispose()
  end)

  it("manual: writes reverted before the flush run nothing", function()
    local s = manual()
    local a = Async.signal(0)
    local runs = 0
    local dispose = Async.effect(function() a(); runs = runs + 1 end, { scheduler = s })
    s:flush()
    a:set(1); a:set(0)
    s:flush()
    assert.equal(1, runs)
    dispose()
  end)

  it("loop: a flush is queued on the loop; many writes in one tick give one flush", function()
    local loop_mod = require("async.loop")
    local prev = loop_mod.get_loop()
    local loop = Async.set_loop(Async.manual_loop())
    local s = Async.create_scheduler({ strategy = "loop" })
    local a = Async.signal(0)
    local log = {}
    local dispose = Async.effect(function() log[#log + 1] = a() end, { scheduler = s })
    assert.same({}, log)
    loop:advance(0)
    assert.same({ 0 }, log)
    a:set(1); a:set(2); a:set(3)
    assert.same({ 0 }, log)
    loop:advance(0)
    assert.same({ 0, 3 }, log)
    a:set(4)
    loop:advance(10)
    assert.same({ 0, 3, 4 }, log)
    dispose()
    Async.set_loop(prev)
  end)
end)

describe("Scheduler: bad use", function()
  local cases = {
    { function() Async.create_scheduler({ strategy = "eager" }) end,
      "unknown scheduler strategy 'eager' (expected sync, manual or loop)" },
    { function() Async.create_scheduler({ max_depth = 0 }) end, "max_depth must be a positive number, got 0" },
    { function() Async.create_scheduler({ on_error = 1 }) end, "on_error must be a function, got number" },
    { function() Async.create_scheduler(5) end, "create_scheduler expects an options table, got number" },
    { function() manual():enqueue("render", function() end) end,
      "unknown phase 'render' (expected binding, lifecycle, effect, async or post)" },
    { function() manual():enqueue("post", 1) end, "enqueue expects a function, got number" },
  }
  for i, c in ipairs(cases) do
    it("case " .. i .. ": " .. c[2], function()
      E.has_error(c[1], c[2])
    end)
  end
end)
