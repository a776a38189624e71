--- The phased scheduler (kernel.md, "The scheduler").
-- Queues, phases, keys, scopes and max_depth live in the C core; this module
-- owns the job functions, the strategies and the error rule.
local core = require("async.kernel.core")
local errors = require("async.kernel.errors")
local ffi = require("ffi")
local bit = require("bit")

local C, G = core.C, core.G
local PHASES, PHASE_NAMES = core.PHASES, core.PHASE_NAMES
local type, error, pcall, tostring, setmetatable = type, error, pcall, tostring, setmetatable

local _M = {}

local Scheduler = {}
Scheduler.__index = Scheduler

-- C scheduler handle -> Scheduler. Weak: a scheduler nobody references is
-- collected, and its finalizer releases the C slot (its handle then never
-- matches again, so effects still naming it are dropped, not misrouted).
local by_index = setmetatable({}, { __mode = "v" })
local SLOT_MASK = 0xFFFFF   -- a handle's slot bits (core.h)
-- Keys and scopes are strings to the caller and integers to the core. Each
-- scheduler interns its own, counted: a key is held while a job of it waits,
-- a scope while a job of it waits or while it is destroyed; a number nobody
-- holds is forgotten and reused. Keys a client controls (a request id in a
-- job key) so never pile up in a long-running process.
local function intern(self, s)
  if s == nil then return 0 end
  local ids = self.ids
  local n = ids[s]
  if n == nil then
    local free = self.free_ids
    local k = #free
    if k > 0 then n = free[k]; free[k] = nil else n = #self.strs + 1 end
    ids[s] = n
    self.strs[n] = s
    self.refs[n] = 1
  else
    self.refs[n] = self.refs[n] + 1
  end
  return n
end

local function unintern(self, n)
  if n == 0 or n == nil then return end
  local refs = self.refs
  local r = refs[n] - 1
  if r > 0 then refs[n] = r; return end
  refs[n] = nil
  self.ids[self.strs[n]] = nil
  self.strs[n] = false   -- keeps #strs: a freed number is reused from free_ids
  local free = self.free_ids
  free[#free + 1] = n
end

--- Number of key and scope strings the scheduler holds (for tests).
function Scheduler:interned()
  local c = 0
  for _ in pairs(self.ids) do c = c + 1 end
  return c
end

local STRATEGIES = { sync = true, manual = true, loop = true }

local function release_handle(p)
  C.ac_sched_release(G, p[0])
end

-- The event loop a `loop` scheduler defers its flushes to when it was given
-- none: set by the loop layer (async.loop) when it loads, so this layer never
-- requires a higher one.
local loop_provider = nil

--- Sets the function that returns the active event loop (async.loop calls it).
function _M.set_loop_provider(fn) loop_provider = fn end

--- Creates a scheduler. opts: strategy ("sync" | "manual" | "loop"),
-- max_depth (100), on_error(err, job), loop (for "loop": an event loop with
-- :defer(fn); default: the active loop). `kernel` is what the graph gives its
-- schedulers: `run(node_id) -> ok, err` runs an effect or async node whose
-- job comes due, `batch(fn, ...)` runs fn as one commit (Scheduler:batch).
-- Schedulers are made by the kernel (async.kernel.graph create_scheduler).
function _M.new(opts, kernel)
  opts = opts or {}
  if type(opts) ~= "table" then
    errors.argument("create_scheduler expects an options table, got " .. type(opts))
  end
  local strategy = opts.strategy or "sync"
  if not STRATEGIES[strategy] then
    errors.argument("unknown scheduler strategy '" .. tostring(strategy) .. "' (expected sync, manual or loop)")
  end
  local max_depth = opts.max_depth or 100
  if type(max_depth) ~= "number" or max_depth < 1 then
    errors.argument("max_depth must be a positive number, got " .. tostring(max_depth))
  end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    errors.argument("on_error must be a function, got " .. type(opts.on_error))
  end
  local index = C.ac_sched_new(G, max_depth)
  if index < 0 then core.fail(index, "creating a scheduler") end
  local s = setmetatable({
    index = index, slot = bit.band(index, SLOT_MASK), strategy = strategy, max_depth = max_depth,
    on_error = opts.on_error, jobs = {}, free = {}, flushing = false, deferred = false, loop = opts.loop,
    run_node = kernel.run, batch_fn = kernel.batch, kernel_gen = kernel.gen,
    ids = {}, strs = {}, refs = {}, free_ids = {}, job_key = {}, job_scope = {}, dead = {},
  }, Scheduler)
  s._gc = ffi.gc(ffi.new("int32_t[1]", index), release_handle)
  by_index[index] = s
  return s
end

--- Releases the scheduler now: queued jobs are dropped, effects that name
-- it are no longer run. Idempotent; also done when it is collected.
function Scheduler:release()
  if self.released then return end
  self.released = true
  by_index[self.index] = nil
  C.ac_sched_release(G, self.index)
  ffi.gc(self._gc, nil)
  for k in pairs(self.jobs) do self.jobs[k] = nil end
  self.ids, self.strs, self.refs, self.free_ids = {}, {}, {}, {}
  self.job_key, self.job_scope, self.dead = {}, {}, {}
end

function _M.get(index) return by_index[index] end

local function take_slot(self, fn)
  local free = self.free
  local n = #free
  local h
  if n > 0 then
    h = free[n]; free[n] = nil
  else
    h = #self.jobs + 1
  end
  self.jobs[h] = fn
  return h
end

--- Queues `fn` in `phase`. opts: key (dedupe while pending), scope.
-- Returns true if queued, false if dropped (duplicate key or destroyed scope).
function Scheduler:enqueue(phase, fn, opts)
  local p = PHASES[phase]
  if p == nil then
    errors.argument("unknown phase '" .. tostring(phase) .. "' (expected binding, lifecycle, effect, async or post)")
  end
  if type(fn) ~= "function" then errors.argument("enqueue expects a function, got " .. type(fn)) end
  local key, scope = 0, 0
  if opts then
    key = intern(self, opts.key)
    scope = intern(self, opts.scope)
  end
  local h = take_slot(self, fn)
  local r = C.ac_sched_push(G, self.index, p, h, scope, key)
  if r ~= 1 then
    self.jobs[h] = nil
    self.free[#self.free + 1] = h
    unintern(self, key); unintern(self, scope)
    if r == core.OOM then core.fail(r, "queueing a job") end
    return false   -- dropped: duplicate key, destroyed scope, or a released scheduler (AC_BAD_ID)
  end
  if key ~= 0 then self.job_key[h] = key end
  if scope ~= 0 then self.job_scope[h] = scope end
  -- a loop scheduler flushes on a later tick by itself: no write has to
  -- poke it (a flush in progress picks the job up)
  if self.strategy == "loop" and not self.flushing and not self.deferred then self:defer_flush() end
  return true
end

--- Number of waiting jobs.
function Scheduler:size()
  return C.ac_sched_size(G, self.index)
end

local function report(self, err, phase, key, first)
  local on_error = self.on_error
  if on_error then
    local ok, e2 = pcall(on_error, err, { phase = PHASE_NAMES[phase], key = key and self.strs[key] or nil })
    if not ok and first == nil then return e2 end
    return first
  end
  if first == nil then return err end
  return first
end

local STEP_DROPPED = -2147483647   -- AC_STEP_DROPPED; AC_STEP_DEPTH is below it

--- Runs the job with handle `h` (from ac_sched_step); returns ok, err.
local function run_job(self, h)
  if h < 0 then return self.run_node(-h) end
  local jobs = self.jobs
  local fn = jobs[h]
  jobs[h] = nil
  local free = self.free
  free[#free + 1] = h
  return pcall(fn)
end

local function failed(self, err, first)
  local last = G.scheds[self.slot].last
  local key = last.key
  return report(self, err, last.phase, key ~= 0 and key or nil, first)
end

-- the job with handle h is done (ran or dropped): its key and scope are no
-- longer held by it
local function forget_job(self, h)
  local jk, js = self.job_key, self.job_scope
  local k, sc = jk[h], js[h]
  if k then jk[h] = nil; unintern(self, k) end
  if sc then js[h] = nil; unintern(self, sc) end
end

-- every job is gone (the core cleared its queues)
local function forget_jobs(self)
  local jobs, free = self.jobs, self.free
  for k in pairs(jobs) do jobs[k] = nil end
  for k = #free, 1, -1 do free[k] = nil end
  for h in pairs(self.job_key) do forget_job(self, h) end
  for h in pairs(self.job_scope) do forget_job(self, h) end
end

--- Handles what ac_sched_step returned; false when the flush is over.
local function step(self, h, first)
  if h > STEP_DROPPED then
    local ok, err = run_job(self, h)
    if not ok then first = failed(self, err, first) end
    if h > 0 then forget_job(self, h) end
    return true, first
  end
  if h == STEP_DROPPED then
    local dh = G.scheds[self.slot].last.handle
    if dh > 0 then self.jobs[dh] = nil; self.free[#self.free + 1] = dh; forget_job(self, dh) end
    return true, first
  end
  -- past max_depth: the core cleared the queues; drop the job functions too
  forget_jobs(self)
  local err = errors.new("max-depth",
    "scheduler flush exceeded max_depth (" .. self.max_depth .. " passes): a loop never settles")
  return false, report(self, err, 2, nil, first)
end

--- Runs jobs until every phase is empty. Re-entrant calls return at once.
-- The first two jobs are handled outside the loop: most flushes run one or
-- two jobs, and a loop that exits after one trip keeps LuaJIT from
-- compiling the flush (it aborts "leaving loop in root trace").
-- A flush belongs to the kernel context of the coroutine that runs it:
-- `flushing` holds that context's serial, so a flush another coroutine left
-- suspended (it yielded in an effect body) does not stop this one.
function Scheduler:flush()
  local gen = self.kernel_gen()
  if self.flushing == gen then return end
  local outer = self.flushing
  self.flushing = gen
  local index = self.index
  local first = nil
  local h = C.ac_sched_step(G, index)
  if h ~= 0 then
    local more
    more, first = step(self, h, first)
    h = more and C.ac_sched_step(G, index) or 0
    if h ~= 0 then
      more, first = step(self, h, first)
      h = more and C.ac_sched_step(G, index) or 0
      while h ~= 0 do
        more, first = step(self, h, first)
        h = more and C.ac_sched_step(G, index) or 0
      end
    end
  end
  self.flushing = outer
  if first ~= nil then error(first, 0) end
end

--- Called by the kernel when this scheduler received jobs outside a flush.
function Scheduler:poke()
  local strategy = self.strategy
  if strategy == "sync" then
    self:flush()
  elseif strategy == "loop" and not self.deferred then
    self:defer_flush()
  end
end

--- Queues one flush on the event loop (the loop strategy).
function Scheduler:defer_flush()
  self.deferred = true
  local loop = self.loop or (loop_provider and loop_provider())
  if loop == nil then
    self.deferred = false
    errors.raise("no-loop", "a loop scheduler needs an event loop: load async.loop or pass { loop = ... }")
  end
  loop:defer(function()
    self.deferred = false
    self:flush()
  end)
end

--- Runs `fn` as one batch on the kernel (writes commit once).
function Scheduler:batch(fn, ...)
  return self.batch_fn(fn, ...)
end

--- Drops pending and future jobs of `scope` (until revive_scope).
function Scheduler:destroy_scope(scope)
  if scope == nil then return end
  local dead = self.dead
  local n = dead[scope]
  if n == nil then
    n = intern(self, scope)   -- held while the scope is destroyed
    dead[scope] = n
  end
  local r = C.ac_sched_destroy_scope(G, self.index, n)
  if r == core.OOM then core.fail(r, "destroying a scope") end
end

function Scheduler:revive_scope(scope)
  local n = scope ~= nil and self.dead[scope]
  if not n then return end
  C.ac_sched_revive_scope(G, self.index, n)
  self.dead[scope] = nil
  unintern(self, n)
end

--- Drops every waiting job.
function Scheduler:clear()
  C.ac_sched_clear(G, self.index)
  forget_jobs(self)
end

return _M
