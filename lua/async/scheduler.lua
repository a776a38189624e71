--- The phased scheduler (kernel.md, "The scheduler").
-- Queues, phases, keys, scopes and max_depth live in the C core; this module
-- owns the job functions, the strategies and the error rule.
-- One instance per Lua state, even when a test runner reloads modules
-- (busted insulates files by clearing package.loaded): the graph and its
-- values must not be duplicated.
local REGISTRY_KEY = "asyncrt:async.scheduler"
do
  local loaded = debug.getregistry()[REGISTRY_KEY]
  if loaded then return loaded end
end

local core = require("async.core")

local C, G = core.C, core.G
local PHASES, PHASE_NAMES = core.PHASES, core.PHASE_NAMES
local ffi = require("ffi")
local type, error, pcall, tostring, setmetatable = type, error, pcall, tostring, setmetatable

local _M = {}

local Scheduler = {}
Scheduler.__index = Scheduler

local by_index = {}          -- C scheduler index -> Scheduler
local interned = {}          -- key/scope string -> int
local names = {}             -- int -> string
local job_out = ffi.new("ac_job[1]")
local runner                 -- function(node_id) -> ok, err: runs an effect or async node

local function intern(s)
  if s == nil then return 0 end
  local n = interned[s]
  if n then return n end
  n = #names + 1
  names[n] = s
  interned[s] = n
  return n
end
_M.intern = intern

local STRATEGIES = { sync = true, manual = true, loop = true }

--- Creates a scheduler. opts: strategy ("sync" | "manual" | "loop"),
-- max_depth (100), on_error(err, job).
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("create_scheduler expects an options table, got " .. type(opts), 2)
  end
  local strategy = opts.strategy or "sync"
  if not STRATEGIES[strategy] then
    error("unknown scheduler strategy '" .. tostring(strategy) .. "' (expected sync, manual or loop)", 2)
  end
  local max_depth = opts.max_depth or 100
  if type(max_depth) ~= "number" or max_depth < 1 then
    error("max_depth must be a positive number, got " .. tostring(max_depth), 2)
  end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error("on_error must be a function, got " .. type(opts.on_error), 2)
  end
  local index = C.ac_sched_new(G, max_depth)
  if index < 0 then error("async: out of memory creating a scheduler", 2) end
  local s = setmetatable({
    index = index, strategy = strategy, max_depth = max_depth, on_error = opts.on_error,
    jobs = {}, free = {}, flushing = false, deferred = false, loop = opts.loop,
  }, Scheduler)
  by_index[index] = s
  return s
end

function _M.set_runner(fn) runner = fn end
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
    error("unknown phase '" .. tostring(phase) .. "' (expected binding, lifecycle, effect, async or post)", 2)
  end
  if type(fn) ~= "function" then error("enqueue expects a function, got " .. type(fn), 2) end
  local key, scope = 0, 0
  if opts then
    key = intern(opts.key)
    scope = intern(opts.scope)
  end
  local h = take_slot(self, fn)
  local r = C.ac_sched_push(G, self.index, p, h, scope, key)
  if r ~= 1 then
    self.jobs[h] = nil
    self.free[#self.free + 1] = h
    if r < 0 then error("async: out of memory queueing a job", 2) end
    return false
  end
  return true
end

--- Number of waiting jobs.
function Scheduler:size()
  return C.ac_sched_size(G, self.index)
end

local function report(self, err, phase, key, first)
  local on_error = self.on_error
  if on_error then
    local ok, e2 = pcall(on_error, err, { phase = PHASE_NAMES[phase], key = key and names[key] or nil })
    if not ok and first == nil then return e2 end
    return first
  end
  if first == nil then return err end
  return first
end

--- Runs jobs until every phase is empty. Re-entrant calls return at once.
function Scheduler:flush()
  if self.flushing then return end
  self.flushing = true
  local first
  local index, jobs, free = self.index, self.jobs, self.free
  while true do
    local r = C.ac_sched_next(G, index, job_out)
    if r == 1 then
      local j = job_out[0]
      local h, phase, key = j.handle, j.phase, j.key
      local ok, err
      if h < 0 then
        ok, err = runner(-h)
      else
        local fn = jobs[h]
        jobs[h] = nil
        free[#free + 1] = h
        ok, err = pcall(fn)
      end
      if not ok then first = report(self, err, phase, key ~= 0 and key or nil, first) end
    elseif r == 2 then
      local h = job_out[0].handle
      if h > 0 then jobs[h] = nil; free[#free + 1] = h end
    elseif r == 0 then
      break
    else
      -- the core cleared the queues; drop the job functions too
      for k in pairs(jobs) do jobs[k] = nil end
      for k = #free, 1, -1 do free[k] = nil end
      local err = "scheduler flush exceeded max_depth (" .. self.max_depth .. " passes): a loop never settles"
      first = report(self, err, 2, nil, first)
      break
    end
  end
  self.flushing = false
  if first ~= nil then error(first, 0) end
end

--- Called by the kernel when this scheduler received jobs outside a flush.
function Scheduler:poke()
  local strategy = self.strategy
  if strategy == "sync" then
    self:flush()
  elseif strategy == "loop" and not self.deferred then
    self.deferred = true
    local loop = self.loop or require("async.loop").get_loop()
    loop:defer(function()
      self.deferred = false
      self:flush()
    end)
  end
end

--- Runs `fn` as one batch on the kernel (writes commit once).
function Scheduler.batch(_, fn, ...)
  return require("async.kernel").batch(fn, ...)
end

--- Drops pending and future jobs of `scope` (until revive_scope).
function Scheduler:destroy_scope(scope)
  C.ac_sched_destroy_scope(G, self.index, intern(scope))
end

function Scheduler:revive_scope(scope)
  C.ac_sched_revive_scope(G, self.index, intern(scope))
end

--- Drops every waiting job.
function Scheduler:clear()
  C.ac_sched_clear(G, self.index)
  for k in pairs(self.jobs) do self.jobs[k] = nil end
  for k = #self.free, 1, -1 do self.free[k] = nil end
end

debug.getregistry()[REGISTRY_KEY] = _M
return _M
