--- The reactive kernel's Lua face: signals, computeds, effects, scopes,
-- batches and transactions (semantics: shared/spec/kernel.md).
--
-- Structure and flags live in the C core (async.core); values, user
-- functions and cleanups live here in plain arrays indexed by node id. The
-- core never calls Lua: a pull returns "update node N", this side updates N
-- and resumes the pull with whether N changed.
local ffi = require("ffi")
local bit = require("bit")
local core = require("async.kernel.core")
local errors = require("async.kernel.errors")
local scheduler = require("async.kernel.scheduler")

local C, G = core.C, core.G
local fail = core.fail
local band, bor, bnot, rshift = bit.band, bit.bor, bit.bnot, bit.rshift
local type, error, pcall, setmetatable, getmetatable = type, error, pcall, setmetatable, getmetatable
local co_resume, co_status, co_running = coroutine.resume, coroutine.status, coroutine.running

local DIRTY, PENDING, RECURSED_CHECK, ERROR = core.DIRTY, core.PENDING, core.RECURSED_CHECK, core.ERROR
local QUEUED, DISPOSED, FREE = core.QUEUED, core.DISPOSED, core.FREE
local PHASE_EFFECT = core.PHASES.effect
local KIND_SHIFT = core.KIND_SHIFT
local K_SIGNAL, K_COMPUTED, K_EFFECT, K_SCOPE, K_ASYNC = core.SIGNAL, core.COMPUTED, core.EFFECT, core.SCOPE,
  core.ASYNC
local NOT_DIRTY = bnot(DIRTY)
local NOT_ERROR = bnot(ERROR)

local _M = {}

-- ===== state =====
local vals = {}          -- id -> latest value (signals), cached value or error (computeds)
local seen = {}          -- signal id -> the value its readers last saw (commit baseline)
local eqs = {}           -- id -> custom equals
local owned = {}         -- scope/root id -> token table { disposed = bool }
-- effect id -> its serial (from effect_serial_n): an effect's dispose
-- function holds (id, serial), so it is a no-op once the effect is disposed
-- and its id reused. A number in an array, not a token table per effect
-- (docs/kernel.md "Effects, ownership, cleanups").
local effect_serial = {}
local effect_serial_n = 0
-- effect id -> its scheduler, for effects in the global home on a scheduler
-- other than the default (keeps the scheduler alive while the effect lives;
-- an effect in a root's home keeps it through the home)
local sched_of = {}  -- luacheck: ignore 241 (it holds, nothing reads it)
local to_free = {}       -- ids whose Lua objects were collected, freed at a safe point
local to_dispose = {}    -- (id, serial) of roots whose root object was collected, disposed at a safe point

-- Homes: who keeps a node's functions alive. The functions of computeds and
-- effects (and effects' cleanups) are looked up in `fns` and `cleanups`,
-- which hold them weakly; the strong reference is in the node's home. A node
-- made for a root (a runtime: kernel.root()) lives in the root's home, which
-- only the root object holds: when a runtime is dropped without destroy, its
-- root, its home and every closure in it become garbage together (a global
-- table holding them would keep the runtime alive through its closures), and
-- the root's finalizer disposes its scope. Other nodes live in the global home.
local WEAK_V = { __mode = "v" }
local fns = setmetatable({}, WEAK_V)       -- computed/effect id -> function
local cleanups = setmetatable({}, WEAK_V)  -- effect/scope id -> cleanup function or list
-- node id -> its home: one table, [id] = function, [-id] = cleanup,
-- [scheduler] = true for the schedulers its effects run on. A node in the
-- global home has `true` (home_at), so no table but this upvalue holds the
-- global home, and compact_tables can replace it; nil: no home (disposed).
local home_of = setmetatable({}, WEAK_V)
local global_home = {}
local function home_at(id)
  local h = home_of[id]
  if h == true then return global_home end
  return h
end
-- what home_of keeps for home `h` (home_at's inverse)
local function home_ref(h)
  if h == global_home then return true end
  return h
end

local active = 0         -- node whose reads are tracked (0: none)
local owner = 0          -- effect or scope that owns new effects (PENDING_OWNER: `pending_scope`)
-- A scope_enter scope whose node is not made yet (see _M.scope_enter): the
-- owner is then PENDING_OWNER and `pending_scope` is its record. Part of the
-- context (swapped with `owner`); meaningful only while owner is PENDING_OWNER.
local PENDING_OWNER = -1
local pending_scope = nil
-- the slots of a scope_enter record (an array: one allocation); T_DISPOSED
-- is also the slot of every token in `owned` (kernel.scope's, a root's)
local T_DISPOSED, R_ID, R_GEN, R_POWN, R_RID, R_UP, R_HOME = 1, 2, 3, 4, 5, 6, 7
-- A pending record's `up` is `pending_scope` when it was entered (scope_leave
-- puts it back). When the record's node is made, `owned` holds the record:
-- an `up` that is not its parent (it was entered in an effect run inside a
-- pending scope's body) may still hold a root's home, so it moves here,
-- held weakly, until scope_leave.
local up_of = setmetatable({}, WEAK_V)
local computing = 0      -- depth of computed evaluations (writes are errors)
local batch_depth = 0
local tx_depth = 0
-- the transaction log: signals by id with their value and commit baseline
-- before the transaction; computeds recomputed inside it by -id with their
-- cached value and state ("val", "err" or "none") before it
local tx_log_ids, tx_log_vals, tx_log_seen, tx_log_n = {}, {}, {}, 0
local tx_starts, tx_marks = {}, {}
local current_run = nil  -- async run whose coroutine is running (its writes are buffered)
-- coroutine -> async run. Weak both ways: a run references its coroutine,
-- and a weak-keyed table whose value references its key keeps both forever
-- (LuaJIT has no ephemerons); the run is held by its async signal while it
-- is current, and the async signal by the coroutine's ctx.
local run_of = setmetatable({}, { __mode = "kv" })
-- coroutines of aborted runs: never resumed again (weak keys, no values to leak)
local dead_runs = setmetatable({}, { __mode = "k" })
-- Under the ngx loop (task.set_spawner) runs are light threads. One that
-- waits on nginx directly (a raw ngx.sleep, a cosocket) leaves its context
-- loaded while other threads run: a write is the loaded run's only when it
-- comes from the run's own thread (else from whichever run's thread is
-- writing, or none). Checked only while a run's context is loaded.
local threaded_runs = false
local function threaded_check(run)
  local co = co_running()
  if run.co == co then return run end
  return run_of[co]
end

-- ===== the context belongs to the coroutine that opened it =====
-- The globals above (active .. current_run, the transaction log) are the
-- context of one coroutine at a time: the one running. They are swapped at
-- the boundaries where the running coroutine changes, never checked on the
-- hot path (no coroutine.running() on reads, writes, batches or flushes):
--
--   * a resume the library controls: coroutine.resume and coroutine.wrap
--     (replaced below when this module loads), Async.resume, the loop
--     layer's waits (luv and manual resume through Async.resume; the ngx
--     loop calls waiting/waited around each wait) and the ngx loop's light
--     threads (thread_enter/thread_return around a spawn). The resumer's
--     context is kept aside while the coroutine runs; the coroutine gets
--     its own (the one it left open when it last yielded, or a clean one);
--     when it yields, what it left open is parked under it;
--   * an entry from the event loop (a luv or ngx timer or deferred
--     callback, a thread the ngx loop resumes, a request: from_loop()): a
--     context still open there belongs to a coroutine that yielded by other
--     means (a raw ngx.sleep or cosocket, a resume taken before this module
--     loaded) and is parked, so the code that enters starts clean.
--
-- Every context has a serial (ctx_gen). A frame (a batch, a transaction, an
-- evaluation, an effect run, a scope, a cleanup, an untrack) notes the
-- serial it opened in and compares it when it closes (an integer compare):
-- a difference means its coroutine ran without its context (it was resumed
-- by something that does not restore it), so what it did meanwhile was not
-- tracked in it. The frame takes its context back, unwinds, and raises
-- CONTEXT_LOST in its own coroutine. See docs/kernel.md, "Coroutines".
local ctx_gen = 0            -- serial of the loaded context
local ctx_co = nil           -- the coroutine it was loaded for (nil: the main thread, or not known)
local gen_next = 0
local parked = setmetatable({}, { __mode = "k" })   -- coroutine -> its context, put aside
local by_gen = setmetatable({}, { __mode = "v" })   -- serial -> a context put aside
local orphans = {}           -- contexts put aside whose coroutine is not known (record -> true)
local npark = 0              -- contexts put aside (an upper bound: a collected coroutine's is dropped)
local renotify = {}          -- ids held by a context that was collected unreleased

local CONTEXT_LOST = errors.new("context-lost",
  "async: this coroutine yielded inside a batch, transaction, scope, computed, effect "
  .. "body or async run and was resumed without its kernel context (a raw ngx.sleep or cosocket, or a "
  .. "coroutine.resume taken before async was loaded) after another coroutine needed the kernel: what it "
  .. "did after the yield was not tracked in its context (do not wait there; use an async signal)")
_M.CONTEXT_LOST = CONTEXT_LOST

-- A context put aside with writes not yet committed must not have the
-- effects and async nodes they queued run by another coroutine's flush
-- (they would see values that may yet be rolled back): they are marked
-- HELD (an embedder flag bit), which run_effect and drain_async skip, and
-- queued again when the context is loaded back.
local HELD = 1024
local NOT_HELD = bnot(HELD)

local function hold_jobs()
  local held = nil
  local n = 0
  for slot = 0, G.sched_len - 1 do
    local sc = G.scheds[slot]
    if sc.in_use ~= 0 then
      local q = sc.q[PHASE_EFFECT]
      for i = q.head, q.len - 1 do
        local h = q.jobs[i].handle
        if h < 0 then
          local node = G.nodes[-h]
          local f = node.flags
          if band(f, QUEUED + DISPOSED + FREE + HELD) == QUEUED then
            node.flags = bor(f, HELD)
            held = held or { dirty = {} }
            n = n + 1
            held[n] = -h
            if band(f, DIRTY) ~= 0 then held.dirty[-h] = true end
          end
        end
      end
    end
  end
  for i = 0, G.async_len - 1 do
    local id = G.async_notified[i]
    local node = G.nodes[id]
    local f = node.flags
    if band(f, QUEUED + DISPOSED + FREE + HELD) == QUEUED then
      node.flags = bor(f, HELD)
      held = held or { dirty = {} }
      n = n + 1
      held[n] = id
      if band(f, DIRTY) ~= 0 then held.dirty[id] = true end
    end
  end
  return held
end

-- effects that turned dirty while held: another coroutine committed a
-- change they read, which a rollback of the held context must not undo
local dirtied_elsewhere = {}

local function release_jobs(held)
  local was_dirty = held.dirty
  for i = 1, #held do
    local id = held[i]
    local node = G.nodes[id]
    local f = node.flags
    if band(f, HELD) ~= 0 then
      node.flags = band(f, NOT_HELD)
      if band(f, DISPOSED + FREE) == 0 then
        if band(f, DIRTY) ~= 0 and was_dirty and not was_dirty[id] then dirtied_elsewhere[id] = true end
        C.ac_notify(G, id)
      end
    end
  end
end

-- a held list whose context was collected (its coroutine was dropped while
-- suspended): the jobs are queued again at the next safe point, never lost
local function held_gc(p)
  local held = getmetatable(p).held
  for i = 1, #held do renotify[#renotify + 1] = held[i] end
end
_M.HELD = HELD

local function is_clean()
  return batch_depth == 0 and computing == 0 and owner == 0 and active == 0 and current_run == nil
end

--- A record of the loaded context (its jobs held if it has a batch open).
local function snapshot()
  local c = { co = ctx_co, gen = ctx_gen, active = active, owner = owner, pending = pending_scope,
    computing = computing,
    batch_depth = batch_depth, tx_depth = tx_depth, run = current_run, ids = tx_log_ids, vals = tx_log_vals,
    seen = tx_log_seen, n = tx_log_n, starts = tx_starts, marks = tx_marks }
  if batch_depth > 0 then
    local held = hold_jobs()
    if held then
      c.held = held
      local p = newproxy(true)
      local mt = getmetatable(p)
      mt.held, mt.__gc = held, held_gc
      c.gc = p
    end
  end
  return c
end

--- Loads a record (with its serial: the frames it holds go on).
local function restore(c)
  local w = c.weak
  if w ~= nil then c.co, c.run = w.co, w.run end
  ctx_co, ctx_gen, active, owner, computing, batch_depth, tx_depth, current_run =
    c.co, c.gen, c.active, c.owner, c.computing, c.batch_depth, c.tx_depth, c.run
  pending_scope = c.pending
  tx_log_ids, tx_log_vals, tx_log_seen, tx_log_n, tx_starts, tx_marks = c.ids, c.vals, c.seen, c.n, c.starts, c.marks
  if c.gc then getmetatable(c.gc).__gc = nil end
  if c.held then release_jobs(c.held) end
end

--- Loads a clean context with a new serial, for coroutine `co`.
local function load_clean(co)
  ctx_co, active, owner, computing, batch_depth, tx_depth, current_run = co, 0, 0, 0, 0, 0, nil
  pending_scope = nil
  -- the transaction log tables are made by the first transaction
  tx_log_ids, tx_log_vals, tx_log_seen, tx_log_n, tx_starts, tx_marks = nil, nil, nil, 0, nil, nil
  gen_next = gen_next + 1
  ctx_gen = gen_next
end

--- Puts the loaded context aside under coroutine `co` (nil: not known).
-- The record holds its coroutine and its run weakly: `parked` has weak
-- keys, and a value that references its key keeps both for ever (LuaJIT
-- has no ephemerons), so a coroutine dropped while suspended (a request
-- abandoned mid-wait, an aborted run) would never be collected.
local function park(co)
  local c = snapshot()
  c.weak = setmetatable({ co = co, run = c.run }, WEAK_V)
  c.co, c.run = nil, nil
  if co ~= nil and parked[co] == nil then parked[co] = c else orphans[c] = true end
  by_gen[c.gen] = c
  npark = npark + 1
end

local function unpark(c)
  local co = c.weak.co
  if co ~= nil and parked[co] == c then parked[co] = nil else orphans[c] = nil end
  by_gen[c.gen] = nil
  npark = npark - 1
  if npark < 0 then npark = 0 end
end

-- Called by a frame that finds, when it closes, that the loaded context is
-- not the one it opened in (serial `gen`): its coroutine was resumed without
-- it. Its context is loaded back (the loaded one belongs to a suspended
-- coroutine and is parked); false when it cannot be found (then the frame
-- unwinds in the loaded one).
local function reclaim(gen)
  local c = by_gen[gen]
  if c == nil then return false end
  if not is_clean() then park(ctx_co) end
  unpark(c)
  restore(c)
  return true
end

-- what this kernel gives its schedulers (scheduler.new): run a due effect or
-- async node, run a batch; both filled in below
local sched_kernel = { run = nil, batch = nil }
-- the loaded context's serial: a flush of another context in progress (a
-- coroutine suspended in an effect body) does not stop this one
function sched_kernel.gen() return ctx_gen end
local default_sched  -- created below, once the runner exists
local async_hook         -- set by async.async_signal: function(id) handles a notified async node

-- records what a write (or a recompute) inside a transaction changes, once
-- per transaction level
local function tx_log(id, old, old_seen)
  local marks = tx_marks[tx_depth]
  if marks[id] then return end
  marks[id] = true
  local n = tx_log_n + 1
  tx_log_n = n
  tx_log_ids[n], tx_log_vals[n], tx_log_seen[n] = id, old, old_seen
end

-- ===== equality =====
local function default_equals(a, b)
  return a == b or (a ~= a and b ~= b)
end

-- A custom equals that raises counts as "not equal"; its error is kept in
-- eq_error and raised by the caller once the graph is consistent again
-- (never from inside a pull, which would leave the core's pull open).
local eq_error = nil

local function equal(id, a, b)
  local eq = eqs[id]
  if eq == nil then return a == b or (a ~= a and b ~= b) end
  local prev = active
  active = 0
  local ok, r = pcall(eq, a, b)
  active = prev
  if not ok then
    if eq_error == nil then eq_error = r end
    return false
  end
  return r and true or false
end

local function raise_eq_error()
  local e = eq_error
  eq_error = nil
  error(e, 0)
end

-- ===== deferred frees (GC finalizers run at arbitrary points) =====
-- Handles of signals and computeds have no finalizer each (a cdata
-- finalizer costs ~20x the handle itself: docs/kernel.md, "Deferred frees").
-- A weak registry maps id -> handle. One sentinel finalizer per GC cycle
-- notes that a cycle ended, and the next safe point (collect) sweeps the
-- node array: a live signal or computed whose handle left the registry is
-- freed, as its finalizer did before. (Every signal and computed node has
-- a handle from the moment _M.signal/_M.computed made it; no safe point
-- comes between.)
local handle_of = setmetatable({}, WEAK_V)   -- id -> its handle (weak)
-- Indexed by id, its array part follows the node array's capacity (which
-- never shrinks either, nor do vals and seen): 8 bytes per slot of the peak,
-- slots reused as ids are. (Rebuilding it after a peak walked every entry:
-- a 15 ms pause after a million handles were dropped.)
local gc_ended = false    -- a GC cycle ended since the last safe point
local sweep_pos = 1       -- where the sweep goes on
local sweep_left = 0      -- slots left in the current pass (0: no pass)

local function arm_sentinel()
  local p = newproxy(true)
  getmetatable(p).__gc = function()
    gc_ended = true
    arm_sentinel()
  end
end
arm_sentinel()

-- A sweep reads node flags (memory-bound: ~20-30 ns per node on the
-- benchmark machine, 30 ms for a million nodes), so it is incremental, like
-- the collector. A GC cycle's end starts a pass over the node array (from
-- where the last one stopped). A node array of up to SWEEP_WHOLE slots is
-- swept whole at the first safe point after that (a server's app and
-- request runtimes: a dropped runtime's nodes go at once, as they went with
-- a finalizer each); a larger one SWEEP_WHOLE slots there, then
-- SWEEP_PER_MADE slots per signal or computed made while the pass lasts, so
-- the sweep keeps pace with allocation (dead nodes are freed, and their
-- slots reused, while a large graph is rebuilt) without a pause (a whole
-- sweep of a million nodes was a 30-100 ms pause at the next write; a sweep
-- at GC cycle ends only, capped, freed too slowly: the node array grew by
-- a million slots per rebuild). collect_garbage() sweeps whole.
local SWEEP_WHOLE, SWEEP_PER_MADE = 16384, 16

local function sweep_step(budget)
  local top = G.node_top - 1
  if budget > sweep_left then budget = sweep_left end
  sweep_left = sweep_left - budget
  local nodes = G.nodes   -- nothing below creates nodes: the array stays put
  local id = sweep_pos
  if id > top then id = 1 end
  for _ = 1, budget do
    -- handle collected, kind SIGNAL or COMPUTED, not FREE. handle_of is
    -- read first: it is a Lua array (8 bytes a slot), the node's flags a
    -- 48-byte stride of the C array; live handles stop at the first test.
    if handle_of[id] == nil then
      local f = nodes[id].flags
      if rshift(f, KIND_SHIFT) <= K_COMPUTED and band(f, FREE) == 0 then
        -- not a count taken before the loop: a GC step inside it may run
        -- finalizers (async signals, roots) that append to the list too
        to_free[#to_free + 1] = id
      end
    end
    id = id + 1
    if id > top then id = 1 end
  end
  sweep_pos = id
end

-- at a safe point after a GC cycle ended (whole: collect_garbage)
local function sweep_handles(whole)
  gc_ended = false
  local top = G.node_top - 1
  sweep_left = top   -- a new pass (or the current one, made whole again)
  sweep_step((whole or top <= SWEEP_WHOLE) and top or SWEEP_WHOLE)
end

-- The list is swapped out first: a finalizer running during the loop (a GC
-- step can run on any allocation, trace exits included) appends to the new
-- list instead of punching holes into the one being walked.
local dispose_dropped  -- below: disposes the scopes of collected roots

-- ===== the tables after a peak =====
-- The id-indexed tables keep the array part of the highest id they held
-- (LuaJIT resizes a table only when a new key finds it full): after a peak
-- of a million nodes, a dozen tables of 4M slots, 148 MB that every GC
-- cycle traverses (a full collection 14 ms with nothing alive, 0.4 ms
-- before the peak). The core hands out the lowest free id, so the live ids
-- stay packed and node_top comes down as a peak's nodes are freed; once it
-- is at most a quarter of the peak, the tables are rebuilt over
-- [0, node_top), which costs O(node_top), not O(peak), and the core trims
-- its link array (ac_trim). Entries at or above node_top belong to freed
-- nodes. (docs/kernel.md, "Ids and the tables after a peak")
local COMPACT_MIN = 65536   -- a peak below this many slots is kept
local compact_hooks = {}    -- modules holding an id-indexed table: fn(top)

-- t[k] = nil only when the key is there: storing nil to a missing key
-- inserts it (LuaJIT's newkey), and into a full hash part that is a rehash
-- (docs/kernel.md, "Ids and the tables after a peak")
local function drop(t, k)
  if t[k] ~= nil then t[k] = nil end
end

local function copy_ids(t, top, mt)
  local n = {}
  for id = 0, top - 1 do
    local v = t[id]
    if v ~= nil then n[id] = v end
  end
  if mt ~= nil then setmetatable(n, mt) end
  return n
end

local function compact_tables()
  local top = G.node_top
  vals, seen, eqs = copy_ids(vals, top), copy_ids(seen, top), copy_ids(eqs, top)
  owned, effect_serial = copy_ids(owned, top), copy_ids(effect_serial, top)
  sched_of = copy_ids(sched_of, top)
  fns, cleanups = copy_ids(fns, top, WEAK_V), copy_ids(cleanups, top, WEAK_V)
  home_of, handle_of = copy_ids(home_of, top, WEAK_V), copy_ids(handle_of, top, WEAK_V)
  local gh = copy_ids(global_home, top)
  for id = 1, top - 1 do
    local cl = global_home[-id]
    if cl ~= nil then gh[-id] = cl end
  end
  global_home = gh
  for i = 1, #compact_hooks do compact_hooks[i](top) end
  C.ac_trim(G)   -- also when it runs out of memory: the graph stays valid
end

-- after frees: a peak given back (effects and scopes are freed by their
-- dispose, signals and computeds by collect)
local function maybe_compact()
  local peak = G.node_peak
  if peak >= COMPACT_MIN and G.node_top * 4 <= peak then compact_tables() end
end

local function collect()
  if active ~= 0 or G.pull_len ~= 0 then return end
  if renotify[1] ~= nil then
    local list = renotify
    renotify = {}
    release_jobs(list)
  end
  if to_dispose[1] ~= nil and batch_depth == 0 then dispose_dropped() end
  -- after the cleanups above (user code that may create nodes): nothing
  -- runs between the sweep and the frees below
  if gc_ended then sweep_handles() end
  local list = to_free
  if list[1] == nil then return maybe_compact() end
  -- swap before counting: allocating the new list can run a GC step whose
  -- finalizers still append to `list` (counting first lost those ids)
  to_free = {}
  local n = #list
  for i = 1, n do
    local id = list[i]
    C.ac_node_free(G, id)
    drop(vals, id); drop(seen, id); drop(fns, id); drop(eqs, id)
  end
  maybe_compact()
end

-- The safe point before a node is made: while a sweep pass is open it goes
-- on by SWEEP_PER_MADE slots, keeping pace with what is made; then deferred
-- frees (and, after a GC cycle, a sweep step) run, so the new node may take
-- a freed slot.
local function before_new()
  if sweep_left > 0 then sweep_step(SWEEP_PER_MADE) end
  if gc_ended or to_free[1] ~= nil or to_dispose[1] ~= nil then collect() end
end

-- the home for a node made now: the root's if one is given, else its
-- owner's, else the global one
local function home_for(root, own)
  if root ~= nil then return root.home end
  if own > 0 then return home_at(own) or global_home end
  if own == PENDING_OWNER then
    local p = pending_scope
    local pid = p[R_ID]
    if pid ~= 0 then return home_at(pid) or global_home end
    return p[R_HOME] or global_home
  end
  return global_home
end

-- sets the cleanup (a function or a list) of effect/scope `id`
local function set_cleanup(id, cl)
  cleanups[id] = cl
  local h = home_at(id)   -- nil once disposed
  if h then h[-id] = cl end
end


-- ===== settling: after the outermost write, batch or transaction =====
local function drain_async()
  local n = C.ac_async_drain(G)
  if n < 0 then fail(n, "handing out async signals") end
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = G.out[i] end
  for i = 1, n do
    local id = ids[i]
    if band(G.nodes[id].flags, HELD) == 0 then async_hook(id) end
  end
end

--- Pokes every scheduler that received jobs; all are poked even if one
-- raises, then the first error is raised.
local function poke_schedulers()
  local first
  local si = C.ac_sched_take_one(G)
  while si >= 0 do
    local s = scheduler.get(si)
    if s then
      local ok, err = pcall(s.poke, s)
      if not ok and first == nil then first = err end
    end
    si = C.ac_sched_take_one(G)
  end
  if first ~= nil then error(first, 0) end
end

local function settle()
  -- notifications the core could not queue for lack of memory (AC_RETRY)
  local lost = G.retry ~= 0 and C.ac_retry(G) ~= 0
  if G.async_len ~= 0 and async_hook then drain_async() end
  if G.sched_list_len ~= 0 then
    if G.sched_list_len == 1 then
      -- the common case, without a loop (LuaJIT compiles it straight)
      local s = scheduler.get(C.ac_sched_take_one(G))
      if s then s:poke() end
    else
      poke_schedulers()
    end
  end
  if to_free[1] ~= nil or to_dispose[1] ~= nil or renotify[1] ~= nil or gc_ended then collect() end
  if lost then
    errors.raise("out-of-memory", "async: out of memory queueing effects (they run once memory is available)")
  end
end

-- Records the effects and async nodes a change of `id` confirmed inside a
-- transaction is about to make dirty (ac_changed), so a rollback of this
-- level knows which dirty flags are its own.
local function note_dirty(id)
  local marks = tx_marks[tx_depth]
  local list = marks.dirtied
  if list == nil then list = {}; marks.dirtied = list end
  local l = G.nodes[id].subs
  while l ~= 0 do
    local link = G.links[l]
    local sid = link.sub
    local f = G.nodes[sid].flags
    local kind = rshift(f, KIND_SHIFT)
    if band(f, DIRTY) == 0 and (kind == K_EFFECT or kind == K_ASYNC) then list[#list + 1] = sid end
    l = link.next_sub
  end
end

-- ===== pull: bring a pending node up to date =====
local update

local function pull_more(r)
  while r > 0 do
    r = C.ac_pull_resume(G, update(r) and 1 or 0)
  end
  if eq_error ~= nil then raise_eq_error() end
  return r == -1
end

--- Checks the pending node `id`; true when it must be updated. update()
-- does not raise (user code runs under pcall in recompute; equals errors
-- are deferred), so the pull always completes. The first two updates are
-- handled without a loop: most pulls need one or two, and a loop of one
-- trip keeps LuaJIT from compiling the callers.
local function pull(id)
  local r = C.ac_pull(G, id)
  if r <= 0 then return r == -1 end
  r = C.ac_pull_resume(G, update(r) and 1 or 0)
  if r <= 0 then
    if eq_error ~= nil then raise_eq_error() end
    return r == -1
  end
  return pull_more(C.ac_pull_resume(G, update(r) and 1 or 0))
end

--- Re-runs the computed `id`; true when its value changed. A raised error
-- is cached as the value (ERROR flag) and counts as a change.
-- ac_begin runs inside the protected call: if pcall itself fails (a Lua
-- stack overflow on a very deep first evaluation), the node was never begun
-- and stays DIRTY, and the saved counters are restored, not decremented.
local function eval(id, fn, old)
  C.ac_begin(G, id)
  -- not a tail call: the getter then returns into this Lua frame, which
  -- LuaJIT can compile; returning straight into pcall's frame is "NYI:
  -- return to lower frame" and gets every getter's trace blacklisted
  local v = fn(old)
  -- `id` is kept live across the call (running_here reads it from this
  -- frame, and a compiled trace does not restore dead slots); one result
  -- only: a second one into pcall's frame is "NYI: return to lower frame"
  if id == 0 then return nil end
  return v
end

-- The second half of recompute, as its own function: code right after a
-- pcall returns often runs in the interpreter (the getter's trace cannot
-- return through the pcall), and a call to a hot function is where LuaJIT
-- re-enters compiled code.
-- The end of an evaluation whose context was put aside while its coroutine
-- was suspended in the getter: what it tracked may be missing reads, or hold
-- another coroutine's. It keeps no dependency and stays dirty (the next read
-- evaluates it again), and CONTEXT_LOST is raised to whoever read it.
local function recompute_lost(id, old, prev_active, prev_computing, gen)
  local mine = reclaim(gen)
  C.ac_end(G, id)
  C.ac_begin(G, id)
  C.ac_end(G, id)
  if mine then
    computing = prev_computing
    active = prev_active
  end
  local node = G.nodes[id]
  node.flags = bor(node.flags, DIRTY + ERROR)
  vals[id] = CONTEXT_LOST
  seen[id] = true
  return old ~= CONTEXT_LOST
end

local function recompute_end(id, ok, v, old, prev_active, prev_computing, gen)
  if ctx_gen ~= gen then return recompute_lost(id, old, prev_active, prev_computing, gen) end
  C.ac_end(G, id)
  computing = prev_computing
  active = prev_active
  local node = G.nodes[id]
  local f = node.flags
  if ok then
    if band(f, ERROR) ~= 0 then
      node.flags = band(f, NOT_ERROR)
    elseif seen[id] and equal(id, old, v) then
      -- unchanged, but computed from values a rollback may undo (the
      -- baselines of what it read move with it): logged so a rollback
      -- marks it dirty again (found by spec/fuzz/kernel_model.lua)
      if tx_depth > 0 then tx_log(-id, old, "val") end
      return false
    end
  else
    node.flags = bor(f, ERROR)
  end
  if tx_depth > 0 then
    tx_log(-id, old, band(f, ERROR) ~= 0 and "err" or (seen[id] and "val" or "none"))
  end
  vals[id] = v
  seen[id] = true       -- computeds: "holds a value"
  return true
end

local function recompute(id)
  local prev_active, prev_computing, gen = active, computing, ctx_gen
  active = id
  computing = prev_computing + 1
  local old = vals[id]
  -- fns[id] is nil when the handle (which holds the getter) was collected
  -- and the node waits for the sweep: the call raises, the error is cached
  -- (a change), and the subscribers rerun and drop the link (nobody can
  -- read the node any more)
  local ok, v = pcall(eval, id, fns[id], old)
  return recompute_end(id, ok, v, old, prev_active, prev_computing, gen)
end

--- Updates node `id` (a dirty signal or computed); true when it changed.
function update(id)
  local node = G.nodes[id]
  local f = node.flags
  local changed
  if rshift(f, KIND_SHIFT) == K_SIGNAL then
    node.flags = band(f, NOT_DIRTY)
    local v = vals[id]
    local old = seen[id]
    if tx_depth > 0 then tx_log(id, v, old) end   -- a rollback puts the baseline back too
    seen[id] = v
    changed = not equal(id, old, v)
  else
    changed = recompute(id)
  end
  -- the pull marks its subscribers dirty when it changed
  if changed and tx_depth > 0 then note_dirty(id) end
  return changed
end

-- ===== signals =====
ffi.cdef [[
typedef struct async_signal { const int32_t id; } async_signal;
]]

local Signal = {}
local Computed = {}

local function signal_get(s)
  local id = s.id
  local node = G.nodes[id]
  local f = node.flags
  if band(f, DIRTY) ~= 0 then
    node.flags = band(f, NOT_DIRTY)
    local v, old = vals[id], seen[id]
    -- the read moves the readers' baseline: inside a transaction that is
    -- logged, so a rollback puts back the baseline of before this level
    -- (found by spec/fuzz/kernel_model.lua: an effect missed its run)
    if tx_depth > 0 then tx_log(id, v, old) end
    seen[id] = v
    -- re-read the node: a custom equals may have grown (moved) the array
    if not equal(id, old, v) and G.nodes[id].subs ~= 0 then
      if tx_depth > 0 then note_dirty(id) end
      C.ac_changed(G, id)
    end
    if eq_error ~= nil then raise_eq_error() end
  end
  if active ~= 0 then
    local r = C.ac_link(G, id, active)
    if r ~= 0 then fail(r, "tracking a read") end
  end
  return vals[id]
end

local signal_set

local function signal_peek(s)
  return vals[s.id]
end

-- a write made inside an async run: kept in the run's buffer, applied when
-- the run commits (signals and async signals alike)
local function buffer_write(run, s, v)
  local w = run.writes
  w[#w + 1] = s
  w[#w + 1] = v
end

-- a write from another thread than the loaded run's (threaded_check): the
-- writer's own run buffers it, or it is applied as a write outside any run
local function foreign_set(s, v, run)
  if run ~= nil then return buffer_write(run, s, v) end
  local loaded = current_run
  current_run = nil
  local ok, err = pcall(signal_set, s, v)
  current_run = loaded
  if not ok then error(err, 0) end
end

function signal_set(s, v)
  if computing > 0 then
    errors.raise("write-in-computed", "Cannot write to a signal inside a computed")
  end
  local run = current_run
  if run ~= nil then
    if threaded_runs and run.co ~= co_running() then return foreign_set(s, v, threaded_check(run)) end
    return buffer_write(run, s, v)
  end
  local id = s.id
  local old = vals[id]
  if equal(id, old, v) then return end
  if eq_error ~= nil then raise_eq_error() end
  if tx_depth > 0 then tx_log(id, old, seen[id]) end
  vals[id] = v
  local r = C.ac_write(G, id)
  if r ~= 0 then
    vals[id] = old
    fail(r, "writing a signal")
  end
  if batch_depth == 0 then settle() end
end

Signal.get = signal_get
Signal.peek = signal_peek
Signal.set = signal_set
function Signal.update(s, fn)
  if type(fn) ~= "function" then errors.argument("update expects a function, got " .. type(fn)) end
  return signal_set(s, fn(vals[s.id]))
end
Signal.__index = Signal
Signal.__call = signal_get
function Signal.__tostring(s) return "signal: " .. s.id end

local SignalT = ffi.metatype("async_signal", Signal)

local function check_opts(opts, what)
  if opts == nil then return nil end
  if type(opts) ~= "table" then errors.argument(what .. " options must be a table, got " .. type(opts)) end
  local eq = opts.equals
  if eq ~= nil and type(eq) ~= "function" then
    errors.argument(what .. " option equals must be a function, got " .. type(eq))
  end
  return eq
end

--- A source value.
function _M.signal(value, opts)
  local eq = check_opts(opts, "signal")
  before_new()
  local id = C.ac_node_new(G, K_SIGNAL, 0, -1)
  if id <= 0 then fail(id, "creating a signal") end
  vals[id], seen[id] = value, value
  if eq then eqs[id] = eq end
  local h = SignalT(id)
  handle_of[id] = h
  return h
end

-- ===== computeds =====
local computed_get

-- brings `id` up to date; true when it was recomputed and changed
local function refresh(id, f)
  if band(f, DIRTY) ~= 0 or (band(f, PENDING) ~= 0 and pull(id)) then
    if recompute(id) then
      if tx_depth > 0 then note_dirty(id) end
      C.ac_changed(G, id)
    end
    return true
  end
  return false
end

-- Is the evaluation of `id` on this coroutine's stack? (a cold path: only
-- reached when `id` is being evaluated)
local getinfo, getlocal = debug.getinfo, debug.getlocal
local function running_here(id)
  local level = 3
  while true do
    local info = getinfo(level, "f")
    if info == nil then return false end
    if info.func == eval then
      local _, v = getlocal(level, 1)
      if v == id then return true end
    end
    level = level + 1
  end
end
-- debug.getinfo is not compiled; a trace through this loop (it stitches the
-- call) was seen never to end under LuaJIT 2.1
jit.off(running_here)

-- A computed being evaluated by a coroutine suspended in its getter, read
-- by another coroutine: no cycle; the reader gets the getter's result
-- computed for it alone (its reads untracked, nothing cached), and a
-- running reader depends on the computed.
local reading_suspended = {}
local function read_suspended(id)
  if reading_suspended[id] then errors.raise("cycle-detected", "Cycle detected: a computed read itself") end
  local prev_active = active
  active = 0
  reading_suspended[id] = true
  local ok, v = pcall(fns[id], vals[id])
  reading_suspended[id] = nil
  active = prev_active
  if not ok then error(v, 0) end
  if prev_active ~= 0 then C.ac_link(G, id, prev_active) end
  return v
end

function computed_get(c)
  local id = c[1]
  local f = G.nodes[id].flags
  if band(f, RECURSED_CHECK) ~= 0 then
    if fns[id] ~= nil and not running_here(id) then return read_suspended(id) end
    errors.raise("cycle-detected", "Cycle detected: a computed read itself")
  end
  if band(f, DIRTY + PENDING) ~= 0 then
    refresh(id, f)
    if eq_error ~= nil then raise_eq_error() end
  end
  if active ~= 0 then
    local r = C.ac_link(G, id, active)
    if r ~= 0 then fail(r, "tracking a read") end
  end
  if band(G.nodes[id].flags, ERROR) ~= 0 then error(vals[id], 0) end
  return vals[id]
end

local function computed_peek(c)
  local prev = active
  active = 0
  local ok, v = pcall(computed_get, c)
  active = prev
  if not ok then error(v, 0) end
  return v
end

-- A computed's handle is a table { id, getter } (array slots 1 and 2,
-- colocated with the table: one allocation), not a cdata like a signal's:
-- the handle holds its getter, so a getter, the handles it captures and
-- their getters are garbage together. (A cdata cannot reference a Lua
-- object, and the kernel's strong reference, in a home, freed a garbage
-- chain of computeds one link per GC cycle: docs/kernel.md "Deferred
-- frees".) `c.id` reads slot 1; the fields cannot be written.
local computed_methods = { get = computed_get, peek = computed_peek }
function Computed.__index(c, k)
  if k == "id" then return rawget(c, 1) end
  return computed_methods[k]
end
function Computed.__newindex(_, k)
  errors.argument("a computed's fields cannot be written (" .. tostring(k) .. ")")
end
Computed.__call = computed_get
function Computed.__tostring(c) return "computed: " .. rawget(c, 1) end

--- A derived value: lazy, cached, glitch-free.
function _M.computed(fn, opts)
  if type(fn) ~= "function" then
    errors.argument("computed expects a function, got " .. type(fn))
  end
  local eq = check_opts(opts, "computed")
  before_new()
  local id = C.ac_node_new(G, K_COMPUTED, 0, -1)
  if id <= 0 then fail(id, "creating a computed") end
  fns[id] = fn
  if eq then eqs[id] = eq end
  local c = setmetatable({ id, fn }, Computed)
  handle_of[id] = c
  return c
end

function _M.is_signal(v) return ffi.istype(SignalT, v) end
function _M.is_computed(v) return type(v) == "table" and getmetatable(v) == Computed end

-- ===== batches and transactions =====
-- settle() called from a fixed-arity frame: batch_end is vararg, and LuaJIT
-- cannot compile a return into a vararg frame below the trace's start ("NYI:
-- return to lower frame"), so settle's own traces return here instead.
local function settle_after_batch()
  settle()
end

-- A batch whose coroutine was resumed without its context (ctx_gen is not
-- `gen`, the serial it opened in): its writes after the yield went
-- elsewhere. It takes its context back, commits what it holds, and raises.
local function batch_lost(gen)
  if reclaim(gen) then
    batch_depth = batch_depth - 1
    if batch_depth == 0 then pcall(settle) end
  end
  error(CONTEXT_LOST, 0)
end

local function batch_end(gen, ok, ...)
  if ctx_gen ~= gen then return batch_lost(gen) end
  batch_depth = batch_depth - 1
  if batch_depth == 0 then
    if not ok then
      pcall(settle)
      error((...), 0)
    end
    settle_after_batch()
  elseif not ok then
    error((...), 0)
  end
  return ...
end

--- Runs fn(...) as one commit; returns its results.
function _M.batch(fn, ...)
  if type(fn) ~= "function" then errors.argument("batch expects a function, got " .. type(fn)) end
  batch_depth = batch_depth + 1
  return batch_end(ctx_gen, pcall(fn, ...))
end

-- Puts back what the transaction changed: signal values and baselines
-- (readers compare against the baseline, so a reader that pulled the new
-- value inside the transaction sees no change after), and the cached values
-- of computeds recomputed inside it, marked dirty: their next evaluation
-- compares with the restored value, so nothing below them reruns.
-- An effect marked dirty by a value seen inside the transaction would run
-- without checking: it is marked pending instead, so it checks its
-- dependencies (restored) and runs only if one really differs. Not one
-- that was made dirty before this level began (note_dirty lists of the
-- enclosing levels): a change an outer level read and commits must still
-- run it (downgraded, it missed its run; found by spec/fuzz/kernel_model.lua).
local function recheck_subscribers(id, before)
  local l = G.nodes[id].subs
  while l ~= 0 do
    local lk = G.links[l]
    local sid = lk.sub
    local sub = G.nodes[sid]
    local f = sub.flags
    local kind = rshift(f, KIND_SHIFT)
    if band(f, DIRTY) ~= 0 and (kind == K_EFFECT or kind == K_ASYNC) and not dirtied_elsewhere[sid]
        and not (before and before[sid]) then
      sub.flags = bor(band(f, NOT_DIRTY), PENDING)
    end
    l = lk.next_sub
  end
end

local tx_end

-- `levels`: the enclosing transaction levels (1 .. tx_depth), whose
-- note_dirty lists name the effects made dirty before this level began
local function rollback(from, levels)
  local before = nil
  for lv = 1, levels do
    local list = tx_marks[lv].dirtied
    if list then
      before = before or {}
      for i = 1, #list do before[list[i]] = true end
    end
  end
  for i = tx_log_n, from, -1 do
    recheck_subscribers(tx_log_ids[i] > 0 and tx_log_ids[i] or -tx_log_ids[i], before)
  end
  for i = tx_log_n, from, -1 do
    local id, old, old_seen = tx_log_ids[i], tx_log_vals[i], tx_log_seen[i]
    tx_log_ids[i], tx_log_vals[i], tx_log_seen[i] = nil, nil, nil
    -- nothing is freed inside a transaction (collect runs in settle)
    if id > 0 then
      vals[id], seen[id] = old, old_seen
      C.ac_write(G, id)
    else
      id = -id
      vals[id] = old
      seen[id] = old_seen ~= "none" or nil
      -- dirty, and what reads it pending (ac_write): a reader that was
      -- clean would keep a value derived from the rolled-back one (found
      -- by spec/fuzz/kernel_model.lua)
      C.ac_write(G, id)
      local node = G.nodes[id]
      local f = node.flags
      node.flags = old_seen == "err" and bor(f, ERROR) or band(f, NOT_ERROR)
    end
  end
  tx_log_n = from - 1
end

-- a transaction whose coroutine was resumed without its context: it takes
-- its context back and fails (its writes are rolled back)
local function tx_lost(gen)
  if not reclaim(gen) then error(CONTEXT_LOST, 0) end
  return tx_end(ctx_gen, false, CONTEXT_LOST)
end

function tx_end(gen, ok, ...)
  if ctx_gen ~= gen then return tx_lost(gen) end
  local start, marks = tx_starts[tx_depth], tx_marks[tx_depth]
  tx_starts[tx_depth], tx_marks[tx_depth] = nil, nil
  tx_depth = tx_depth - 1
  local dirtied = marks.dirtied
  if not ok then
    rollback(start, tx_depth)
  elseif dirtied and tx_depth > 0 then
    -- committed into the enclosing level: its rollback covers these too
    local outer = tx_marks[tx_depth]
    local list = outer.dirtied
    if list == nil then outer.dirtied = dirtied else
      for i = 1, #dirtied do list[#list + 1] = dirtied[i] end
    end
  end
  if tx_depth == 0 then
    for i = 1, tx_log_n do tx_log_ids[i], tx_log_vals[i], tx_log_seen[i] = nil, nil, nil end
    tx_log_n = 0
    if next(dirtied_elsewhere) ~= nil then dirtied_elsewhere = {} end
  end
  return batch_end(ctx_gen, ok, ...)
end

sched_kernel.batch = _M.batch

--- An all-or-nothing batch: if fn raises, its writes are rolled back.
function _M.transaction(fn, ...)
  if type(fn) ~= "function" then errors.argument("transaction expects a function, got " .. type(fn)) end
  if tx_starts == nil then tx_log_ids, tx_log_vals, tx_log_seen, tx_starts, tx_marks = {}, {}, {}, {}, {} end
  batch_depth = batch_depth + 1
  tx_depth = tx_depth + 1
  tx_starts[tx_depth] = tx_log_n + 1
  tx_marks[tx_depth] = {}
  return tx_end(ctx_gen, pcall(fn, ...))
end

-- an untrack whose coroutine was resumed without its context: raises if
-- its context was open (put aside), else nothing was lost (it was clean)
local function untrack_lost(prev, gen, ok, ...)
  if reclaim(gen) then
    active = prev
    error(CONTEXT_LOST, 0)
  end
  if not ok then error((...), 0) end
  return ...
end

local function untrack_end(prev, gen, ok, ...)
  if ctx_gen ~= gen then return untrack_lost(prev, gen, ok, ...) end
  active = prev
  if not ok then error((...), 0) end
  return ...
end

--- Runs fn(...) without tracking reads.
function _M.untrack(fn, ...)
  if type(fn) ~= "function" then errors.argument("untrack expects a function, got " .. type(fn)) end
  local prev = active
  active = 0
  return untrack_end(prev, ctx_gen, pcall(fn, ...))
end

-- ===== effects, scopes and ownership =====
local function run_cleanup(fn)
  local prev_active, gen = active, ctx_gen
  active = 0
  batch_depth = batch_depth + 1
  local ok, err = pcall(fn)
  if ctx_gen ~= gen then
    if not reclaim(gen) then return false, CONTEXT_LOST end
    ok, err = false, CONTEXT_LOST
  end
  batch_depth = batch_depth - 1
  active = prev_active
  return ok, err
end

local function run_cleanups(id, first)
  local cl = cleanups[id]
  if cl == nil then return first end
  set_cleanup(id, nil)
  if type(cl) == "function" then
    local ok, err = run_cleanup(cl)
    if not ok and first == nil then first = err end
  else
    for i = #cl, 1, -1 do
      local ok, err = run_cleanup(cl[i])
      if not ok and first == nil then first = err end
    end
  end
  return first
end

--- Disposes the subtree of `id` (children only when children_only).
-- Returns the first error raised by a cleanup.
local function dispose_tree(id, children_only)
  local n = C.ac_dispose(G, id, children_only and 1 or 0)
  if n <= 0 then return nil end   -- nothing owned, or disposed already (AC_BAD_ID)
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = G.out[i] end
  local pending = {}
  for i = 1, n do
    local d = ids[i]
    local tok = owned[d]
    if tok then tok[T_DISPOSED] = true; owned[d] = nil end
    drop(effect_serial, d); drop(sched_of, d); drop(fns, d); drop(vals, d)
    local cl = cleanups[d]
    pending[i] = cl
    if cl ~= nil then cleanups[d] = nil end
    local h = home_at(d)
    if h then
      drop(h, d)
      if cl ~= nil then h[-d] = nil end
      home_of[d] = nil
    end
  end
  local first
  for i = 1, n do
    local cl = pending[i]
    if cl ~= nil then
      cleanups[0] = cl
      first = run_cleanups(0, first)
    end
  end
  return first
end

-- Disposes the scopes of roots that were collected (their runtimes were
-- dropped without destroy). Cleanups whose closures were collected with the
-- root do not run: nothing can observe them.
function dispose_dropped()
  local list = to_dispose
  to_dispose = {}
  for i = 1, #list, 2 do
    local id, serial = list[i], list[i + 1]
    -- a root disposed explicitly has no token any more, and its id may
    -- already name another node: the serial tells them apart
    local tok = owned[id]
    if tok and tok.serial == serial and not tok[T_DISPOSED] then pcall(dispose_tree, id, false) end
  end
end

-- Makes the node of a scope_enter record `s` (and of the pending scopes it
-- was entered in, outermost first: the order scope_enter would have made
-- them in) unless it has one; returns its id. A record disposed before its
-- node was made raises as a node made in a disposed scope does (bad id).
local function materialize(s)
  local id = s[R_ID]
  if id ~= 0 then return id end
  if s[T_DISPOSED] then fail(core.BAD_ID, "creating a scope (disposed)") end
  local parent = s[R_POWN]
  if parent == PENDING_OWNER then
    parent = materialize(s[R_UP])
  else
    if parent == 0 then parent = s[R_RID] end
    if s[R_UP] ~= nil then up_of[s], s[R_UP] = s[R_UP], nil end
  end
  id = C.ac_node_new(G, K_SCOPE, parent, -1)
  if id <= 0 then fail(id, "creating a scope") end
  home_of[id] = s[R_HOME] or true   -- nil: the global home
  owned[id] = s
  -- `owned` holds the record from now on: it must not hold the home (a
  -- root's, which only the root may keep alive; `up` is its parent's record,
  -- whose node is made now too)
  s[R_ID], s[R_HOME] = id, nil
  return id
end

-- The owner as a node id, when something needs one while the owner is a
-- pending scope: its node is made now and becomes the owner.
local function owner_node()
  local id = materialize(pending_scope)
  owner = id
  return id
end

--- Registers fn to run when the current effect reruns or its owner is disposed.
function _M.on_cleanup(fn)
  if type(fn) ~= "function" then errors.argument("on_cleanup expects a function, got " .. type(fn)) end
  local own = owner
  if own == 0 then return false end
  if own < 0 then own = owner_node() end
  local cl = cleanups[own]
  if cl == nil then
    set_cleanup(own, { fn })
  elseif type(cl) == "function" then
    set_cleanup(own, { cl, fn })
  else
    cl[#cl + 1] = fn
  end
  return true
end

-- Calls an effect body from a Lua frame (see eval: no tail call into pcall).
local function call_body(fn)
  local r = fn()
  return r
end

--- Runs the effect `id` if a dependency changed. Returns ok, err.
-- The second half of run_effect, as its own function (see recompute_end).
local function run_effect_end(id, ok, res, first, prev_active, prev_owner, prev_computing, gen)
  -- its coroutine was resumed in the body without its context: the run
  -- ends, keeps what it tracked, and reports CONTEXT_LOST
  local lost = false
  if ctx_gen ~= gen then
    lost = true
    if not reclaim(gen) then
      C.ac_end(G, id)
      return false, CONTEXT_LOST
    end
  end
  local ended = C.ac_end(G, id)
  active, owner, computing = prev_active, prev_owner, prev_computing
  batch_depth = batch_depth - 1
  if ended == 2 then
    -- disposed during its own run: its cleanups already ran, except the one
    -- this run returned; release it and whatever it created meanwhile
    if ok and type(res) == "function" then
      local cok, cerr = run_cleanup(res)
      if not cok and first == nil then first = cerr end
    end
    local derr = dispose_tree(id, false)
    if first == nil then first = derr end
  elseif ok and type(res) == "function" then
    local cl = cleanups[id]
    if cl == nil then set_cleanup(id, res)
    elseif type(cl) == "function" then set_cleanup(id, { cl, res })
    else cl[#cl + 1] = res end
  end
  if batch_depth == 0 then
    local sok, serr = pcall(settle)
    if not sok and first == nil then first = serr end
  end
  if lost then return false, CONTEXT_LOST end
  if not ok then return false, res end
  if first ~= nil then return false, first end
  return true
end

local function run_effect(id)
  local f = G.nodes[id].flags
  if band(f, HELD) ~= 0 then return true end   -- waits for a context put aside (hold_jobs)
  if band(f, DIRTY) == 0 and (band(f, PENDING) == 0 or not pull(id)) then
    return true
  end
  -- the pull may have run a computed that disposed this effect; its home may
  -- have been collected (disposed at the next safe point)
  local fn, serial = fns[id], effect_serial[id]
  if fn == nil or serial == nil then return true end
  local first = nil
  if G.nodes[id].last_child ~= 0 then first = dispose_tree(id, true) end
  if cleanups[id] ~= nil then first = run_cleanups(id, first) end
  if effect_serial[id] ~= serial then
    -- a cleanup disposed it: it never runs again (its id may already name a
    -- node the cleanup created)
    if first ~= nil then return false, first end
    return true
  end
  local prev_active, prev_owner, prev_computing, gen = active, owner, computing, ctx_gen
  active, owner, computing = id, id, 0
  batch_depth = batch_depth + 1
  C.ac_begin(G, id)
  local ok, res = pcall(call_body, fn)
  return run_effect_end(id, ok, res, first, prev_active, prev_owner, prev_computing, gen)
end

local function run_watcher(id)
  local kind = rshift(G.nodes[id].flags, KIND_SHIFT)
  if kind == K_EFFECT then return run_effect(id) end
  return true
end
sched_kernel.run = run_watcher

--- Creates a scheduler of this kernel (lua-api.md "Scheduler").
function _M.create_scheduler(opts)
  return scheduler.new(opts, sched_kernel)
end
default_sched = scheduler.new({ strategy = "sync" }, sched_kernel)

local function dispose_now(id)
  local err = dispose_tree(id, false)
  if batch_depth == 0 then
    local ok, serr = pcall(settle)
    if not ok and err == nil then err = serr end
  end
  if err ~= nil then error(err, 0) end
end

local function dispose_owned(id, tok)
  if tok[T_DISPOSED] then return end
  return dispose_now(id)
end

local function dispose_effect(id, serial)
  if effect_serial[id] ~= serial then return end
  return dispose_now(id)
end

-- bind(fn, a, b): a C function that calls fn(a, b) (src/bind/bind.c). A
-- Lua closure is made by FNEW, which LuaJIT does not compile: with bind,
-- Async.effect compiles, and its dispose function is half the memory.
-- Without the module (only the Lua files and the core installed) effects
-- return Lua closures.
-- (Each way is a function of its own: a function that makes a closure
-- over its locals closes upvalues (UCLO) on every return, on the path that
-- does not make it too, and UCLO is not compiled either.)
local bind_ok, bind_mod = pcall(require, "async_bind")
local bind = bind_ok and type(bind_mod) == "table" and bind_mod.bind or nil
local disposer
if bind ~= nil then
  disposer = function(id, serial) return bind(dispose_effect, id, serial) end
else
  disposer = function(id, serial) return function() return dispose_effect(id, serial) end end
end

--- A side effect; returns its dispose function.
function _M.effect(fn, opts)
  if type(fn) ~= "function" then errors.argument("effect expects a function, got " .. type(fn)) end
  local sched, root = default_sched, nil
  if opts ~= nil then
    if type(opts) ~= "table" then errors.argument("effect options must be a table, got " .. type(opts)) end
    sched = opts.scheduler or sched
    root = opts.root
  end
  before_new()
  local own = owner
  if own < 0 then own = owner_node() end
  local h = home_for(root, own)
  local id = C.ac_node_new(G, K_EFFECT, own ~= 0 and own or (root and root.id or 0), sched.index)
  if id <= 0 then fail(id, "creating an effect") end
  fns[id] = fn
  h[id] = fn
  home_of[id] = home_ref(h)
  local serial = effect_serial_n + 1
  effect_serial_n = serial
  effect_serial[id] = serial
  -- the effect's home keeps its scheduler alive (schedulers are held weakly
  -- and released when collected) for as long as the effect lives
  if sched ~= default_sched then
    if h == global_home then sched_of[id] = sched else h[sched] = true end
  end
  C.ac_notify(G, id)
  if batch_depth == 0 then settle() end
  return disposer(id, serial)
end

--- Runs fn with a new owner: effects created inside are disposed together.
-- opts.root: the root that owns the scope when no effect or scope is running.
function _M.scope(fn, opts)
  if type(fn) ~= "function" then errors.argument("scope expects a function, got " .. type(fn)) end
  local root = opts and opts.root
  local own = owner
  if own < 0 then own = owner_node() end
  local id = C.ac_node_new(G, K_SCOPE, own ~= 0 and own or (root and root.id or 0), -1)
  if id <= 0 then fail(id, "creating a scope") end
  local h = home_for(root, own)
  home_of[id] = home_ref(h)
  local tok = { false }
  owned[id] = tok
  local prev, gen = owner, ctx_gen
  owner = id
  local ok, err = pcall(fn)
  if ctx_gen ~= gen then
    -- resumed without its context: what it created after the yield is not
    -- its own; it is disposed and raises
    if not reclaim(gen) then error(CONTEXT_LOST, 0) end
    ok, err = false, CONTEXT_LOST
  end
  owner = prev
  local function dispose() return dispose_owned(id, tok) end
  if not ok then
    pcall(dispose)
    error(err, 0)
  end
  return dispose
end

--- kernel.scope for callers that make a scope per object (components), in
-- two calls and without a closure (LuaJIT does not compile closure
-- creation, nor a trace that runs into one made by the body):
-- `local h, prev = scope_enter(root)` makes a scope and makes it the owner,
-- the caller runs its body, then `scope_leave(prev, h)` (always, also when the
-- body raised). dispose_handle(h) disposes the scope. root: as opts.root of
-- scope.
--
-- The scope's node is made lazily: scope_enter only records where it goes
-- (the owner and root, or the pending scope it was entered in) and makes
-- the record the pending owner (PENDING_OWNER). The node is made by the
-- first thing that needs an owner while the scope (or a scope entered in
-- it) is the owner: an effect, kernel.scope, on_cleanup (materialize). A
-- computed needs neither (its handle holds its getter). Most component
-- instances own nothing: they make no node, and their dispose_handle does
-- nothing (docs/kernel.md, "Effects, ownership, cleanups").
function _M.scope_enter(root)
  local own = owner
  local rid = 0
  if root ~= nil then rid = root.id end
  local h = home_for(root, own)
  -- nil for the global home: a record may outlive a compact_tables
  local s = { false, 0, ctx_gen, own, rid, pending_scope, h ~= global_home and h or nil }
  owner, pending_scope = PENDING_OWNER, s
  return s, own
end

--- Ends a scope_enter: `h` its handle, `prev` the owner it returned. As in
-- kernel.scope, a body resumed without its context (docs/kernel.md
-- "Coroutines") takes its own context back and gets CONTEXT_LOST returned
-- (the caller disposes the scope and raises it), or raised at once when
-- that context is gone. Returns nothing otherwise.
local function leave(prev, h)
  local up = h[R_UP]
  if h[R_ID] ~= 0 and up == nil then up = up_of[h]; up_of[h] = nil end
  h[R_UP] = nil
  -- entered in a pending scope whose node was made meanwhile: that node
  if prev == PENDING_OWNER and up[R_ID] ~= 0 then prev = up[R_ID] end
  owner, pending_scope = prev, up
end

function _M.scope_leave(prev, h)
  if h ~= nil and ctx_gen ~= h[R_GEN] then
    if not reclaim(h[R_GEN]) then error(CONTEXT_LOST, 0) end
    leave(prev, h)
    return CONTEXT_LOST
  end
  if h == nil then owner = prev; return end
  leave(prev, h)
end

--- Disposes a scope made by scope_enter (idempotent). One whose node was
-- never made owns nothing: it is only marked disposed.
function _M.dispose_handle(h)
  local id = h[R_ID]
  if id == 0 then h[T_DISPOSED] = true; return end
  return dispose_owned(id, h)
end

-- ===== roots: what a runtime owns =====

local Root = {}
Root.__index = Root

ffi.cdef [[ typedef struct async_root_gc { int32_t id, serial; } async_root_gc; ]]
local RootGC = ffi.typeof("async_root_gc")
local root_serial = 0

local function finalize_root(p)
  local n = #to_dispose
  to_dispose[n + 1] = p.id
  to_dispose[n + 2] = p.serial
end

--- A root: a scope that owns the effects made with `{ root = r }` (or made
-- by them), and a home that keeps the functions of its nodes alive. A
-- runtime has one. `r:dispose()` disposes them all; a root that is only
-- dropped is collected, and its scope disposed at the next safe point.
function _M.root()
  before_new()
  local id = C.ac_node_new(G, K_SCOPE, 0, -1)
  if id <= 0 then fail(id, "creating a root") end
  local home = {}
  home_of[id] = home
  root_serial = root_serial + 1
  local tok = { false, serial = root_serial }
  owned[id] = tok
  -- one finalizer for every root, closing over nothing: it names the root
  -- by (id, serial), never by the root or its home
  local gc = ffi.gc(RootGC(id, root_serial), finalize_root)
  return setmetatable({ id = id, home = home, tok = tok, gc = gc }, Root)
end

--- Disposes everything the root owns (children first). Idempotent.
function Root:dispose()
  return dispose_owned(self.id, self.tok)
end

function _M.is_root(v) return getmetatable(v) == Root end

--- A full garbage collection, then every signal and computed whose handle
-- it collected is freed at once (a sweep of the whole node array), with the
-- scopes of collected roots. Without it, nodes are freed at safe points after
-- the collector's own cycles, and a large graph is swept a slice at a time.
-- For tests and for a server's quiet moments.
function _M.collect_garbage()
  collectgarbage()
  collectgarbage()
  sweep_handles(true)
  collect()
end

--- Flushes the default scheduler (for the manual strategy).
function _M.flush()
  default_sched:flush()
end

function _M.default_scheduler() return default_sched end

--- Replaces the default scheduler (used by runtimes and tests).
function _M.set_default_scheduler(s)
  local prev = default_sched
  default_sched = s
  return prev
end

-- ===== hooks for async signals (async/async_signal.lua) =====
local internal = {}
_M._internal = internal
internal.buffer_write = buffer_write

function internal.set_async_hook(fn) async_hook = fn end
function internal.computed_fn(c) return fns[c.id] end
function internal.settle()
  if batch_depth == 0 then settle() end
end
internal.pull = pull
function internal.vals() return vals end
--- fn(top) runs when the kernel rebuilt its id-indexed tables after a peak
-- (entries at or above `top` belong to freed nodes): a module that holds
-- such a table, or internal.vals(), takes the new one or rebuilds its own.
function internal.on_compact(fn) compact_hooks[#compact_hooks + 1] = fn end
--- copy_ids(t, top, mt): a new table with t's entries at ids [0, top), for
-- such a module's own rebuild
internal.copy_ids = copy_ids
--- Sets the smallest peak (in node slots) that is given back; returns the
-- previous one (the model checker lowers it to rebuild the tables often).
function internal.set_compact_min(n)
  local prev = COMPACT_MIN
  COMPACT_MIN = n
  return prev
end
function internal.run_of() return run_of end
-- an async run's first segment is tracked for node `id` (its reads, in
-- the run's own context, link to it)
function internal.begin_tracking(id) C.ac_begin(G, id) end
function internal.end_tracking(id) C.ac_end(G, id) end
--- How many contexts are put aside: under a known coroutine, and not known
-- (for specs and diagnostics).
function internal.contexts_parked()
  local a, b = 0, 0
  for _ in pairs(parked) do a = a + 1 end
  for _ in pairs(orphans) do b = b + 1 end
  return a, b
end
function internal.finalize(id) to_free[#to_free + 1] = id end
--- The batch depth of the calling coroutine's context.
function internal.batch_depth() return batch_depth end
--- A batch for the caller (a run's commit).
function internal.enter_batch()
  batch_depth = batch_depth + 1
end
function internal.leave_batch()
  batch_depth = batch_depth - 1
  if batch_depth == 0 then settle() end
end
function internal.track(id)
  if active ~= 0 then
    local r = C.ac_link(G, id, active)
    if r ~= 0 then fail(r, "tracking a read") end
  end
end
function internal.set_error_state(id, is_err)
  local node = G.nodes[id]
  node.flags = is_err and bor(node.flags, ERROR) or band(node.flags, NOT_ERROR)
end

-- ===== boundaries: where the running coroutine changes =====

-- After coroutine `co` (resumed in a context of serial g) yielded or ended:
-- what it left open is parked under it, and the resumer's context is loaded
-- back: `saved`, or a clean one of serial rgen (the resumer's was clean).
local function switch_back(co, g, saved, rgen, rco)
  if ctx_gen == g then
    if saved == nil and is_clean() then
      ctx_gen, ctx_co = rgen, rco
      return
    end
    if not is_clean() then park(co) end
  elseif not is_clean() then
    -- co's context was put aside while it ran (it waited by other means):
    -- what is loaded belongs to a suspended coroutine
    park(ctx_co)
  end
  if saved ~= nil then
    restore(saved)
  else
    load_clean(rco)
    ctx_gen = rgen
  end
end

-- Loads the context of `co` for a resume: the one it left open when it last
-- yielded, or a clean one. Returns what switch_back needs of the resumer's.
local function switch_to(co)
  local rgen, rco, saved = ctx_gen, ctx_co, nil
  if not is_clean() then saved = snapshot() end
  local mine = npark ~= 0 and parked[co] or nil
  if mine ~= nil then
    unpark(mine)
    restore(mine)
  else
    load_clean(co)
  end
  return saved, rgen, rco
end

local function plain_end(co, g, saved, rgen, rco, ...)
  switch_back(co, g, saved, rgen, rco)
  return ...
end

-- An async run's resume: the run's context has current_run set (its writes
-- are buffered) and tracks reads only in its first segment. A run resumed
-- without its context meanwhile (ctx_gen moved while it ran) cannot commit
-- what it did (task.lua ends it with CONTEXT_LOST).
local function run_end(run, co, g, saved, rgen, rco, ok, ...)
  if ctx_gen ~= g then run.lost = true end
  switch_back(co, g, saved, rgen, rco)
  if run.on_step then run.on_step(run, ok, ...) end
  return ok, ...
end

--- Resumes a coroutine in its own context (what coroutine.resume is once
-- this module is loaded). For an async run, its context has current_run set
-- (its writes are buffered until commit); an aborted or stale run is never
-- resumed again. Returns what coroutine.resume returns.
function _M.resume(co, ...)
  local run = run_of[co]
  if run == nil then
    if dead_runs[co] ~= nil then return false, "async run was aborted" end
    if npark == 0 and is_clean() then
      -- the common case: both clean; the coroutine gets a new serial
      local rgen, rco = ctx_gen, ctx_co
      gen_next = gen_next + 1
      ctx_gen, ctx_co = gen_next, co
      return plain_end(co, gen_next, nil, rgen, rco, co_resume(co, ...))
    end
    local saved, rgen, rco = switch_to(co)
    return plain_end(co, ctx_gen, saved, rgen, rco, co_resume(co, ...))
  end
  if run.abort.aborted or run.done then return false, "async run was aborted" end
  local saved, rgen, rco = switch_to(co)
  current_run = run
  if run.tracking then active = run.tracking elseif active == run.a.id then active = 0 end
  return run_end(run, co, ctx_gen, saved, rgen, rco, co_resume(co, ...))
end

-- coroutine.resume and coroutine.wrap resume in the coroutine's own context
-- (a user coroutine yielding inside a batch, an effect or a computed leaves
-- its context with it). LuaJIT never compiles coroutine.resume, so the Lua
-- frame around it costs little beside the resume itself (docs/performance.md).
local co_create = coroutine.create
local function wrap_results(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" then error(e, 2) end   -- with the caller's position, as LuaJIT's wrap
  error(e, 0)
end
local function wrap(f)
  local co = co_create(f)
  return function(...) return wrap_results(_M.resume(co, ...)) end
end
-- the resume of before (specs use it to play a resume that does not give
-- the coroutine its context, as nginx resuming after a raw ngx.sleep)
internal.raw_resume = co_resume
coroutine.resume = _M.resume  -- luacheck: ignore 122
coroutine.wrap = wrap         -- luacheck: ignore 122

--- An entry from the event loop (a timer or deferred callback, a request
-- handed to the app): a context still open here belongs to a coroutine that
-- yielded by other means than a resume of ours (a raw ngx.sleep, a
-- cosocket) and is parked, so the code that enters starts clean; that
-- coroutine's frames raise CONTEXT_LOST when they close. `main_below`: the
-- callback runs on the main thread's stack (luv), whose own context stays.
function _M.from_loop(main_below)
  if is_clean() then return end
  if main_below and ctx_co == nil then return end
  park(ctx_co)
  load_clean(co_running())
end

-- ===== hooks for the ngx loop: threads and waits nginx resumes itself =====
-- Under nginx a run (and the server's workers) is a light thread that nginx
-- resumes after its waits, not _M.resume. The ngx loop brackets a thread's
-- first segment (thread_enter in the thread, thread_return in its spawner
-- once the spawn returned) and each wait (waiting before, waited after), so
-- the thread has its own context while it runs and its spawner's comes
-- back when it first waits.
local outer = setmetatable({}, { __mode = "k" })   -- thread -> its spawner's context, until it first waits
local cgen = setmetatable({}, { __mode = "k" })    -- thread -> the serial of its context

local function back_to_outer(co)
  local o = outer[co]
  if o == nil then
    load_clean(nil)
    return
  end
  outer[co] = nil
  if o.saved ~= nil then
    restore(o.saved)
  else
    load_clean(o.co)
    ctx_gen = o.gen
  end
end

--- The first thing a thread `co` does (nested in its spawner): the
-- spawner's context is kept aside, the thread gets a clean one (a run's:
-- current_run set, its first segment tracked).
function internal.thread_enter(co, run)
  outer[co] = { saved = not is_clean() and snapshot() or nil, gen = ctx_gen, co = ctx_co }
  load_clean(co)
  if run ~= nil then current_run, active = run, run.tracking or 0 end
  cgen[co] = ctx_gen
end

-- Thread `co` stops running (a wait, its end, or its spawn returned): when
-- the loaded context is still co's own, it is parked under co if `keep`
-- and open; when another context was loaded meanwhile, co's run (if any) is
-- marked lost and that context parked. Then the outer context is loaded.
local function hand_back(co, keep)
  if ctx_gen == cgen[co] then
    if keep and not is_clean() then park(co) end
  else
    local run = run_of[co]
    if run ~= nil then run.lost = true end
    if not is_clean() then park(ctx_co) end
  end
  back_to_outer(co)
end

--- Thread `co` is about to wait on its loop (or ends, final = true): its
-- context is parked under it (dropped when it ends) and the spawner's (its
-- first wait) or a clean one is loaded. A run whose context was put aside
-- while it ran is marked lost.
function internal.waiting(co, final)
  hand_back(co, not final)
end

--- Thread `co`'s wait on its loop ended (an entry from the event loop): an
-- open context left by another coroutine is parked and co's own is loaded.
-- False when co is a run that was aborted or has ended (its code must not
-- go on: the loop parks the thread until it is killed).
function internal.waited(co)
  local run = run_of[co]
  if run == nil then
    if dead_runs[co] ~= nil then return false end
  elseif run.abort.aborted or run.done then
    return false
  end
  if not is_clean() then park(ctx_co) end
  local c = npark ~= 0 and parked[co] or nil
  if c ~= nil then
    unpark(c)
    restore(c)
  else
    load_clean(co)
  end
  if run ~= nil then
    current_run = run
    if active == run.a.id then active = 0 end
  end
  cgen[co] = ctx_gen
  return true
end

--- The spawner of thread `co`, once the spawn returned: when the thread did
-- not give the spawner's context back (it ended, or waited by other means),
-- the spawner's is loaded back now.
function internal.thread_return(co)
  if outer[co] == nil then return end
  hand_back(co, co_status(co) ~= "dead")
end

--- Is a coroutine dead?
function internal.dead(co) return co_status(co) == "dead" end
--- The async run of the calling coroutine, if it is one.
function internal.current_run()
  local run = current_run
  if run ~= nil and threaded_runs then run = threaded_check(run) end
  return run
end
--- Runs are threads of their loop (task.set_spawner says so).
function internal.set_threaded_runs(on) threaded_runs = on and true or false end
function internal.is_dead(co) return dead_runs[co] == true end
--- The run of `co` was aborted: it is never resumed again.
function internal.mark_dead(co)
  run_of[co] = nil
  dead_runs[co] = true
end
function internal.set_current_run(r)
  local prev = current_run
  current_run = r
  return prev
end

_M.equals = default_equals

return _M
