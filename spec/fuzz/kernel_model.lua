-- Model checker for the reactive kernel (kernel.md): random programs run
-- against the kernel and against a naive reference model, and what every
-- effect observed is compared after every step.
--
--   luajit spec/fuzz/kernel_model.lua                -- short run (about 6,000 steps)
--   FUZZ_LONG=1 luajit spec/fuzz/kernel_model.lua    -- long run (10 million steps), `make fuzz`
--   FUZZ_SEED=n FUZZ_START=i FUZZ_N=1 ...            -- replay one program
--
-- A program (one input) builds a small graph and runs STEPS random steps:
-- create signals, computeds (sums, dynamic branches, equality cut-off,
-- getters that throw) and effects (reading through pcall, so an error is an
-- observation; some raise after reading; some create child effects every
-- run, some return a cleanup, some of whose cleanups dispose their own
-- effect); write; batch (write-only, or with reads: see "lenient");
-- transactions (nested, some throwing); top-level reads; dispose an effect
-- (and its children); and a coroutine that yields inside a batch while the
-- main thread writes other signals (kernel.md, the context belongs to the
-- coroutine that opened it).
--
-- The model re-evaluates everything naively (no caches, no links): a
-- computed is its function of the current values, an error is a value
-- ("E:" .. message). After every commit an effect runs when something it
-- read in its last run now reads differently (glitch-free, once per commit,
-- equality cut-off for free); a parent runs before its children and a
-- rerun disposes them. Effects are compared per effect (each has a name
-- given by its creation path, so the order effects run in does not matter:
-- kernel.md fixes an order only for effects queued by one commit, which
-- per-effect sequences cannot observe without writes inside effects).
--
-- Lenient commits: kernel.md decides that a read inside a batch commits the
-- signal's baseline, so an effect may rerun once with values equal to the
-- ones it saw before (batch{a:=5; read a; a:=0}). For commits whose batch
-- read a written signal, a run that observes exactly what the effect saw
-- last is accepted on the kernel side.
--
-- A step budget (getter, body and cleanup calls per step) turns a livelock
-- into a failure that names the seed and the program.

local modname = ...
local is_script = type(modname) ~= "string" or not modname:find("fuzz%.kernel_model$")
if is_script then package.path = "./spec/?.lua;" .. package.path end
local util = require("fuzz.util")
if is_script then util.script_paths() end

local Async = require("async")
local G = require("async.kernel.core").G
local make_peak = require("support.peak")
local I = require("async.kernel.graph")._internal
local compactions, compacted = 0, 0
I.on_compact(function() compactions = compactions + 1 end)
local floor, concat, format = math.floor, table.concat, string.format
local co_create, co_resume, co_status, co_yield = coroutine.create, coroutine.resume, coroutine.status,
  coroutine.yield

local STEPS = 60          -- steps per program
local NO_CO = os.getenv("FUZZ_NO_CO") ~= nil   -- leave out the coroutine steps (to bisect)
local BUDGET = 20000      -- user function calls per step
local MAX_SIGNALS, MAX_COMPUTEDS, MAX_EFFECTS = 8, 10, 10

local calls = 0
local function tick()
  calls = calls + 1
  if calls > BUDGET then error("step budget exceeded: a loop that never settles", 0) end
end

-- an error message without the "file:line: " position
local function errmsg(e)
  e = tostring(e)
  return (e:gsub("^[^:]*:%d+: ", ""))
end

local function one(r)
  local log = {}
  local function say(fmt, ...) log[#log + 1] = format(fmt, ...) end

  -- ===== the program's graph: shared description =====
  local nodes = {}        -- i -> { kind = "signal" | "computed", spec = ... , k = kernel handle }
  local mval = {}         -- signal i -> model value
  local effects = {}      -- name -> { spec, parent, children = {names}, alive, k_dispose, ... }
  local order = {}        -- effect names in creation order (roots and children)
  local kobs, mobs = {}, {}   -- name -> list of observations (kernel, model)
  local errors = {}
  local sched = Async.create_scheduler({ on_error = function(e) errors[#errors + 1] = errmsg(e) end })

  -- ===== computed specs, evaluated by both sides through `read` =====
  -- spec = { op, a, b, c } over earlier node indices
  local function eval_spec(spec, read)
    tick()
    local op = spec.op
    if op == "sum" then return read(spec.a) + read(spec.b) end
    if op == "half" then return floor(read(spec.a) / 2) end          -- equality cut-off
    if op == "pick" then                                               -- dynamic dependencies
      if read(spec.a) % 2 == 0 then return read(spec.b) end
      return read(spec.c)
    end
    if op == "err" then                                                -- errors as values
      local v = read(spec.a)
      if v % 3 == 0 then error("bad " .. v, 0) end
      return v + 1
    end
    return read(spec.a) * 2
  end

  -- the model: naive evaluation; `trace` collects the signals read
  local function mread(i, trace)
    local n = nodes[i]
    if n.kind == "signal" then
      if trace then trace[i] = true end
      return mval[i]
    end
    return eval_spec(n.spec, function(j) return mread(j, trace) end)
  end
  local function mshow(i, trace)
    local ok, v = pcall(mread, i, trace)
    if ok then return tostring(v) end
    return "E:" .. errmsg(v)
  end
  local function kread(i) return nodes[i].k() end
  local function kshow(i)
    local ok, v = pcall(kread, i)
    if ok then return tostring(v) end
    return "E:" .. errmsg(v)
  end

  -- ===== effects =====
  -- spec = { deps = {i...}, raise = bool, kids = n, kid_specs, cleanup = nil | "plain" | "self" }
  -- Both sides name an effect by its creation path (root "e<step>", child
  -- "<parent>/<run>.<k>") and register it here; the model keeps its own
  -- alive flag and children.
  local function register(name, spec, parent)
    local e = effects[name]
    if e == nil then
      e = { spec = spec, parent = parent, children = {}, malive = false, mruns = 0 }
      effects[name] = e
      order[#order + 1] = name
      kobs[name], mobs[name] = {}, {}
    end
    return e
  end

  local model_effect
  local function model_run(name)
    local e = effects[name]
    local parts = {}
    for k, i in ipairs(e.spec.deps) do parts[k] = mshow(i) end
    e.mseen = parts
    local list = mobs[name]
    list[#list + 1] = concat(parts, ",")
    e.mruns = e.mruns + 1
    for k = 1, e.spec.kids do model_effect(e.spec.kid_specs[k], name .. "/" .. e.mruns .. "." .. k, name) end
  end

  -- a new effect runs once at once (inside a run: in the same flush)
  function model_effect(spec, name, parent)
    local e = register(name, spec, parent)
    e.malive = true
    if parent then local p = effects[parent]; p.children[#p.children + 1] = name end
    model_run(name)
  end

  local function model_dispose(name)
    local e = effects[name]
    if not e or not e.malive then return end
    e.malive = false
    for _, c in ipairs(e.children) do model_dispose(c) end
  end

  -- one commit on the model side: run every live effect whose reads changed;
  -- parents first (creation order puts a parent before its children);
  -- `held`: effects that do not run now (they wait for a suspended batch)
  -- Where the model and the kernel may differ by an extra run that saw
  -- exactly what the effect saw last, the model follows the kernel (and
  -- reruns it too, making its children again):
  --  * a commit whose batch read what it wrote (`cur.lenient`): kernel.md
  --    decides that a read inside a batch commits the signal's seen value
  --    (batch{a:=5; read a; a:=0} reruns readers of a once);
  --  * an effect reading a computed that raised again: an error is never
  --    equal to the previous result (kernel.md graph rule 6, decided as
  --    Preact), even the same error.
  local cur = { marks = {}, lenient = false, self_disposed = {} }
  local function extra_kernel_run(name, e)
    local m = cur.marks[name] or { 0, 0 }   -- made during this step
    local kl = kobs[name]
    local last = concat(e.mseen, ",")
    return #kl - m[1] > #mobs[name] - m[2] and kl[#mobs[name] - m[2] + m[1] + 1] == last
      and (cur.lenient or last:find("E:", 1, true) ~= nil)
  end

  local function model_commit(held)
    for _, name in ipairs(order) do
      local e = effects[name]
      if e.malive and not (held and held[name]) then
        local changed = false
        for k, i in ipairs(e.spec.deps) do
          if mshow(i) ~= e.mseen[k] then changed = true; break end
        end
        if not changed and extra_kernel_run(name, e) then changed = true end
        -- the same extra rerun (lenient, or after an error), of an effect
        -- whose cleanup disposes it: the kernel's rerun was its disposal
        -- (found in a long run: FUZZ_SEED=779 FUZZ_START=7928, an effect
        -- reading a computed that raised the same error again)
        if not changed and cur.self_disposed[name]
            and (cur.lenient or concat(e.mseen, ","):find("E:", 1, true) ~= nil) then
          changed = true
        end
        if changed then
          for _, c in ipairs(e.children) do model_dispose(c) end
          e.children = {}
          -- a cleanup that disposes its own effect: the rerun never happens
          -- (an effect that raised returned no cleanup)
          if e.spec.cleanup == "self" and not e.spec.raise then
            model_dispose(name)
          else
            model_run(name)
          end
        end
      end
    end
  end

  local kernel_effect
  function kernel_effect(spec, name, parent)
    local e = register(name, spec, parent)
    local kruns = 0
    local dispose
    dispose = Async.effect(function()
      tick()
      kruns = kruns + 1
      local parts = {}
      for k, i in ipairs(spec.deps) do parts[k] = kshow(i) end
      local list = kobs[name]
      list[#list + 1] = concat(parts, ",")
      for k = 1, spec.kids do kernel_effect(spec.kid_specs[k], name .. "/" .. kruns .. "." .. k, name) end
      if spec.raise then error("effect " .. name .. " raised", 0) end
      if spec.cleanup == "plain" then return function() tick() end end
      if spec.cleanup == "self" then return function() tick(); cur.self_disposed[name] = true; dispose() end end
    end, { scheduler = sched })
    e.kdispose = dispose
  end

  local function effect_spec(depth)
    local deps = {}
    for k = 1, r:int(1, 3) do deps[k] = r:int(1, #nodes) end
    local spec = { deps = deps, raise = r:one_in(8), kids = 0, kid_specs = {} }
    local c = r:int(6)
    if c == 1 then spec.cleanup = "plain" elseif c == 2 then spec.cleanup = "self" end
    if depth < 2 and r:one_in(4) then
      spec.kids = r:int(1, 2)
      for k = 1, spec.kids do spec.kid_specs[k] = effect_spec(depth + 1) end
    end
    return spec
  end

  -- ===== comparisons =====
  local function check(step)
    for _, name in ipairs(order) do
      local kl, ml = kobs[name], mobs[name]
      local ok = #kl == #ml
      if ok then for k = 1, #kl do if kl[k] ~= ml[k] then ok = false; break end end end
      if not ok then
        return format("step %d: effect %s observed %s, the model says %s", step, name,
          util.show(kl), util.show(ml))
      end
    end
    for i, n in ipairs(nodes) do
      local kv, mv = kshow(i), mshow(i)
      if kv ~= mv then return format("step %d: node %d (%s) reads %s, the model says %s", step, i, n.kind, kv, mv) end
    end
    return nil
  end

  -- ===== steps =====
  local function new_signal(v)
    local i = #nodes + 1
    nodes[i] = { kind = "signal", k = Async.signal(v) }
    mval[i] = v
    say("s%d = signal(%d)", i, v)
  end
  local function new_computed()
    local n = #nodes
    local ops = { "sum", "half", "pick", "err", "double" }
    local spec = { op = ops[r:int(#ops)], a = r:int(n), b = r:int(n), c = r:int(n) }
    local i = n + 1
    nodes[i] = { kind = "computed", spec = spec, k = Async.computed(function() return eval_spec(spec, kread) end) }
    say("c%d = computed %s(%d, %d, %d)", i, spec.op, spec.a, spec.b, spec.c)
  end
  local function signal_ids()
    local t = {}
    for i, n in ipairs(nodes) do if n.kind == "signal" then t[#t + 1] = i end end
    return t
  end
  local function value() return r:int(0, 9) end

  -- writes `list` ({i, v} pairs) on both sides, kernel inside fn_wrap
  local function write(i, v)
    say("  s%d := %d", i, v)
    nodes[i].k:set(v)
    mval[i] = v
  end

  for _ = 1, r:int(2, 4) do new_signal(value()) end
  for _ = 1, r:int(1, 3) do new_computed() end

  local counts = { steps = 0 }
  for step = 1, STEPS do
    calls = 0
    counts.steps = counts.steps + 1
    local op = r:int(100)
    local sigs = signal_ids()
    local marks = {}
    for _, name in ipairs(order) do marks[name] = { #kobs[name], #mobs[name] } end
    cur.marks, cur.lenient, cur.self_disposed = marks, false, {}
    local ok, err = pcall(function()
      if op <= 6 and #sigs < MAX_SIGNALS then
        new_signal(value())
      elseif op <= 14 and #nodes - #sigs < MAX_COMPUTEDS then
        new_computed()
      elseif op <= 24 and #order < MAX_EFFECTS * 3 then
        local roots = 0
        for _, name in ipairs(order) do
          if not effects[name].parent and effects[name].malive then roots = roots + 1 end
        end
        if roots < MAX_EFFECTS then
          local name = "e" .. step
          local spec = effect_spec(0)
          say("%s = effect(reads %s, kids %d, cleanup %s, raise %s)", name, concat(spec.deps, " "), spec.kids,
            tostring(spec.cleanup), tostring(spec.raise))
          kernel_effect(spec, name, nil)
          model_effect(spec, name, nil)
        end
      elseif op <= 50 then
        local i = sigs[r:int(#sigs)]
        write(i, r:one_in(4) and mval[i] or value())
        model_commit()
      elseif op <= 62 then
        -- a batch: writes, maybe writes back, maybe reads (lenient)
        local reads = r:one_in(3)
        say("batch%s {", reads and " with reads" or "")
        cur.lenient = reads
        local plan = {}
        for k = 1, r:int(1, 4) do plan[k] = { sigs[r:int(#sigs)], value() } end
        if r:one_in(3) then local i = plan[1][1]; plan[#plan + 1] = { i, mval[i] } end  -- a := x ... a := old
        Async.batch(function()
          for _, w in ipairs(plan) do
            write(w[1], w[2])
            if reads then
              local j = r:int(#nodes)
              local kv, mv = kshow(j), mshow(j)
              say("  read %d -> %s", j, kv)
              if kv ~= mv then error(format("read of node %d inside a batch: %s, the model says %s", j, kv, mv), 0) end
            end
          end
        end)
        say("}")
        model_commit()
      elseif op <= 72 then
        -- transactions, nested, some throwing: the model keeps snapshots
        local reads = r:one_in(4)
        cur.lenient = reads
        local function tx(depth)
          local snap = {}
          for i, v in pairs(mval) do snap[i] = v end
          local throws = r:one_in(3)
          say("%stransaction%s {", string.rep("  ", depth), throws and " (throws)" or "")
          local okt = pcall(Async.transaction, function()
            for _ = 1, r:int(1, 3) do
              write(sigs[r:int(#sigs)], value())
              if reads then
                local j = r:int(#nodes)
                local kv, mv = kshow(j), mshow(j)
                say("  read %d -> %s", j, kv)
                if kv ~= mv then
                  error(format("read of node %d inside a transaction: %s, the model says %s", j, kv, mv), 0)
                end
              end
            end
            if depth < 2 and r:one_in(2) then tx(depth + 1) end
            if throws then error("rollback", 0) end
          end)
          if not okt then for i in pairs(mval) do mval[i] = snap[i] end end
          say("%s}", string.rep("  ", depth))
        end
        tx(0)
        model_commit()
      elseif op <= 80 then
        -- a top-level read of any node (computeds refresh lazily)
        local j = r:int(#nodes)
        local kv, mv = kshow(j), mshow(j)
        say("read %d -> %s", j, kv)
        if kv ~= mv then error(format("top-level read of node %d: %s, the model says %s", j, kv, mv), 0) end
      elseif op <= 86 then
        -- dispose an effect (and what it owns)
        local live = {}
        for _, name in ipairs(order) do if effects[name].malive then live[#live + 1] = name end end
        if #live > 0 then
          local name = live[r:int(#live)]
          say("dispose %s", name)
          effects[name].kdispose()
          effects[name].kdispose()            -- twice does nothing
          model_dispose(name)
          model_commit()
        end
      elseif op <= 94 and #sigs >= 2 and not NO_CO then
        -- coroutine A yields inside a batch; the main thread writes other
        -- signals meanwhile; A resumes and commits
        local split = r:int(1, #sigs - 1)
        local mine, other = {}, {}
        for k, i in ipairs(sigs) do if k <= split then mine[#mine + 1] = i else other[#other + 1] = i end end
        -- values are shared: A's writes are visible at once; what is per
        -- coroutine is the commit (effects queued by A's writes wait for it)
        local changed = {}
        local function a_write(i)
          local v = value()
          say("  A: s%d := %d", i, v)
          if v ~= mval[i] then changed[i] = true end
          nodes[i].k:set(v)
          mval[i] = v
        end
        -- lenient: the main thread's effects may read what A wrote (values
        -- are shared), which moves its baseline as a read inside A's batch
        -- would: an effect of A's may then rerun once with an equal value
        cur.lenient = true
        say("coroutine A: batch {")
        local A = co_create(function()
          Async.batch(function()
            for _ = 1, r:int(1, 2) do a_write(mine[r:int(#mine)]) end
            co_yield()
            a_write(mine[r:int(#mine)])
          end)
        end)
        -- what each effect depends on now: the signals a fresh evaluation
        -- of what it reads reaches (a computed may have changed branch since
        -- the effect last ran, cut off by equality)
        local reach = {}
        for _, name in ipairs(order) do
          local e = effects[name]
          if e.malive then
            local trace = {}
            for _, i in ipairs(e.spec.deps) do mshow(i, trace) end
            reach[name] = trace
          end
        end
        local okA, errA = co_resume(A)
        if not okA then error(errA, 0) end
        -- held: the effects A's writes reached
        local held = {}
        for name, trace in pairs(reach) do
          for i in pairs(trace) do if changed[i] then held[name] = true end end
        end
        for _ = 1, r:int(1, 3) do
          local i = other[r:int(#other)]
          local v = value()
          say("  main: s%d := %d", i, v)
          nodes[i].k:set(v)
          mval[i] = v
          model_commit(held)
        end
        okA, errA = co_resume(A)
        if not okA then error(errA, 0) end
        if co_status(A) ~= "dead" then error("A did not finish", 0) end
        say("} A committed")
        model_commit()
        counts.coroutine = true
      elseif op <= 96 then
        -- a peak of nodes outside the program, dropped: the kernel rebuilds
        -- its id-indexed tables and trims the core under the program's graph
        -- (docs/kernel.md, "Ids and the tables after a peak")
        local n = math.max(256, 4 * G.node_top)
        say("peak of %d nodes, dropped", n)
        if n <= 200000 then
          local prev = I.set_compact_min(128)
          local before = compactions
          make_peak(n)
          Async.collect_garbage()
          I.set_compact_min(prev)
          if compactions > before and not counts.compact then
            counts.compact = true
            compacted = compacted + 1
          end
        end
      else
        Async.flush()
      end
    end)
    if not ok then
      return format("step %d raised: %s", step, tostring(err)), concat(log, "\n")
    end
    local bad = check(step)
    if bad then return bad, concat(log, "\n") end
  end
  -- the end: dispose every effect; nothing may run after
  for _, name in ipairs(order) do effects[name].kdispose() end
  local before = {}
  for _, name in ipairs(order) do before[name] = #kobs[name] end
  for _, i in ipairs(signal_ids()) do nodes[i].k:set(mval[i] + 100) end
  for _, name in ipairs(order) do
    if #kobs[name] ~= before[name] then return "effect " .. name .. " ran after every effect was disposed",
      concat(log, "\n") end
  end
  sched:release()
  return nil, concat(log, "\n"), counts.coroutine and "coroutine" or "plain"
end

local driver = { name = "kernel_model", one = one, steps = STEPS }
--- programs so far whose peak step rebuilt the kernel's tables
function driver.compacted() return compacted end

if is_script then
  local env = os.getenv
  local n = tonumber(env("FUZZ_N") or "") or (env("FUZZ_LONG") and floor(10000000 / STEPS) or 100)
  local stats, failure = util.run(driver, { seed = tonumber(env("FUZZ_SEED") or ""),
    start = tonumber(env("FUZZ_START") or ""), n = n })
  if not stats then
    io.stderr:write(failure, "\n")
    os.exit(1)
  end
  print(format("kernel_model: %d steps, %d programs rebuilt the kernel's tables", stats.inputs * STEPS, compacted))
end

return driver
