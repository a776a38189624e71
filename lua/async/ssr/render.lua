--- Server-side rendering of one request (protocol.md, "SSR output"): the
-- route's partial, the wait for its async signals, the render plan filled
-- from committed values. A runtime delegates rt:render(url) here. Documents
-- are async.ssr.document, streaming async.ssr.stream, the snapshot
-- async.ssr.snapshot; async.ssr gathers them.
--
-- A request runs the matched route's partial, waits (inside a coroutine) for
-- the async signals the page started, compiles the fragment's HTML into a
-- render plan once (async.scanner caches plans), fills every binding from
-- committed signal values so the page is right with JavaScript off, and adds
-- the snapshot the browser client activates from. Streaming sends the shell
-- at once and each boundary as its async signal settles.
local kernel = require("async.kernel.graph")
local scanner = require("async.html.scanner")
local component = require("async.html.component")
local json = require("async.app.json")
local snapshots = require("async.ssr.snapshot")
local router_mod = require("async.app.router")
local async_signal = require("async.kernel.task")
local html_mod = require("async.html.template")
local errors = require("async.kernel.errors")

local type, error, pairs, ipairs, tostring, setmetatable, pcall, next, getmetatable =
  type, error, pairs, ipairs, tostring, setmetatable, pcall, next, getmetatable
local concat, remove = table.concat, table.remove
local has_tnew, tnew = pcall(require, "table.new")
if not has_tnew then tnew = function() return {} end end
local has_tclear, tclear = pcall(require, "table.clear")
if not has_tclear then
  tclear = function(t) for k in pairs(t) do t[k] = nil end end
end
local co_running = coroutine.running
local is_async, is_computed = async_signal.is_async, kernel.is_computed
local floor, tonumber, rawget = math.floor, tonumber, rawget
local escape_attr = require("async.html.escape").attr
local chain_mod = require("async.app.chain")
local sfind = string.find

local _M = {}

local snapshot, snapshot_script = snapshots.snapshot, snapshots.script
local ROUTER_IDS = snapshots.ROUTER_IDS

local DEFAULT_TIMEOUT = 10000

-- ===== helpers =====

local function parse_query(q)
  local out = {}
  if not q or q == "" then return out end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = router_mod.decode((k:gsub("+", " ")))
    v = router_mod.decode((v:gsub("+", " ")))
    if k ~= "" then out[k] = v end
  end
  return out
end
_M.parse_query = parse_query

local function in_coroutine()
  local co, main = co_running()
  return co ~= nil and not main
end

local function loop_mod() return require("async.loop") end



local function set_one(sigs, id, v)
  if sigs.map[id] ~= nil then sigs:set(id, v) else sigs:ensure(id, v) end
end

-- in ROUTER_IDS order, in one batch (no closure or table per request)
local function set_router_signals(sigs, url, path, params, query, route, err)
  set_one(sigs, "router.url", url)
  set_one(sigs, "router.path", path)
  set_one(sigs, "router.params", params)
  set_one(sigs, "router.query", query)
  set_one(sigs, "router.route", route)
  set_one(sigs, "router.pending", false)
  set_one(sigs, "router.error", err)
end
assert(ROUTER_IDS[1] == "router.url" and ROUTER_IDS[7] == "router.error" and #ROUTER_IDS == 7)

--- Sets the router.* signals of a runtime.
local function set_router_state(rt, url, m)
  local path, query = router_mod.split_url(url)
  local params = m and m.params or json.array()
  if m and next(m.params) == nil then params = {} end
  kernel.batch(set_router_signals, rt.signals, url, path, params, parse_query(query),
    m and m.pattern or json.null, m and json.null or router_mod.not_matched_error(path))
end

-- ===== partials =====

-- The HTML of a partial's result: a string (trusted HTML), a template
-- result, or a list of those (concatenated); nil is "". Anything else is an
-- error naming the partial (a table is never rendered as its address).
local function to_html(v, id)
  local t = type(v)
  if t == "string" then return v end
  if v == nil then return "" end
  if html_mod.is_safe(v) then return tostring(v) end
  local mt = t == "table" and getmetatable(v)
  if t == "table" and (mt == nil or mt == json.array_mt) and (v[1] ~= nil or next(v) == nil) then
    local parts = {}
    for i = 1, #v do parts[i] = to_html(v[i], id) end
    return concat(parts)
  end
  errors.raise("invalid-partial-result", 'Partial "' .. tostring(id) .. '" returned a ' .. t ..
    "; expected a template result, a string, a list of those or { html = ... }")
end

-- The same check as to_html, without joining: a template result stays as
-- it is (its plan fills it, async.html.scanner), a list becomes a LIST of
-- nodes (strings wrapped as html.raw: they are HTML). Returns the node, or
-- nil and the HTML when the result is a string or html.raw (read whole).
local LIST_MT = html_mod.list_mt
local function to_node(v, id, top)
  local t = type(v)
  if t == "string" then
    if top then return nil, v end
    return html_mod.raw(v)
  end
  if v == nil then
    if top then return nil, "" end
    return html_mod.raw("")
  end
  if html_mod.is_safe(v) then
    if top and rawget(v, 0) == nil then return nil, v.html end
    return v
  end
  local mt = t == "table" and getmetatable(v)
  if t == "table" and (mt == nil or mt == json.array_mt) and (v[1] ~= nil or next(v) == nil) then
    local out = {}
    for i = 1, #v do out[i] = to_node(v[i], id, false) end
    return setmetatable(out, LIST_MT)
  end
  return nil, to_html(v, id)   -- raises
end

local PartialCtx = {}
PartialCtx.__index = PartialCtx

--- self:render(Component, props) inside a partial.
function PartialCtx:render(comp, props)
  local inst, html = component.render(self.runtime, self.id, comp, props)
  self.instances[#self.instances + 1] = inst
  return html
end

--- Runs partial `id`; returns { node=, html=, status=, title= } (raises
-- on a hard error): node is the result kept as template results (filled by
-- parts), html the HTML when node is nil.
local function partial_result(self, id, params, route)
  local fn = self.partials[id]
  if fn == nil then
    errors.raise("partial-not-registered", 'Partial "' .. tostring(id) .. '" is not registered.',
      "Register via Async.use({ partial })")
  end
  local ctx = setmetatable({
    id = id, params = params or {}, route = route, signals = self.signals, server = self.server,
    cache = self.cache.server, browser_cache = self.cache.browser, request = self.request,
    runtime = self, instances = {},
  }, PartialCtx)
  -- fills the partial starts are released when the runtime is destroyed
  local co, sc, bc = co_running(), self.cache.server, self.cache.browser
  local prev_s, prev_b = sc:enter_abort(co, self.abort), bc:enter_abort(co, self.abort)
  local okp, res = pcall(fn, ctx, ctx.params)
  sc:leave_abort(co, prev_s)
  bc:leave_abort(co, prev_b)
  if not okp then error(res, 0) end
  local out = { status = nil, title = nil }
  if type(res) == "table" and not html_mod.is_safe(res) and res[1] == nil then
    out.html = res.html
    out.status = res.status
    out.title = res.title
    if res.signals then
      kernel.batch(function()
        for path, v in pairs(res.signals) do
          local sid = self.signals:resolve(path)
          if sid then self.signals:set(path, v) else self.signals:ensure(path, v) end
        end
      end)
    end
    if res.cache and res.cache.browser then
      for k, v in pairs(res.cache.browser) do self.cache.browser:set(k, v) end
    end
  else
    out.html = res
  end
  out.node, out.html = to_node(out.html, id, true)
  out.instances = ctx.instances
  return out
end

--- Runs partial `id`; returns { html=, status=, title= } (raises on a hard error).
function _M.run_partial(self, id, params, route)
  local out = partial_result(self, id, params, route)
  if out.html == nil then out.html = tostring(out.node) end
  out.node = nil
  return out
end

-- ===== async waiting =====

local function pump(rt)
  local s = rt.scheduler
  if s:size() > 0 then s:flush() end
end

--- Waits (yielding) until none of `ids` is loading, or `timeout` ms passed.
-- Calls on_settle(id) for each one as it settles, in settle order.
-- Returns the ids still loading at the deadline.
-- The waiting coroutine is woken through the loop (defer), never from inside
-- the effect that saw the settle: the rest of the request must not run
-- inside another coroutine's commit.
-- raised inside render_stream to unwind when the client is gone
local CLOSED = setmetatable({}, { __tostring = function() return "client closed the stream" end })

local function wait_settled(rt, ids, timeout, on_settle, abort)
  local loop = loop_mod()
  local l = loop.get_loop()
  local pending, count = {}, 0
  for _, id in ipairs(ids) do pending[id] = true; count = count + 1 end
  local settled = {}
  local waiter
  local timed_out = false
  local disposers = {}
  local function wake()
    local w = waiter
    if w then
      waiter = nil
      if l.defer then l:defer(w) else w() end
    end
  end
  for _, id in ipairs(ids) do
    local sig = rt.signals.map[id]
    disposers[#disposers + 1] = kernel.effect(function()
      local st = sig:status()
      if pending[id] and st ~= "loading" and st ~= "idle" then
        pending[id] = nil
        count = count - 1
        settled[#settled + 1] = id
        wake()
      end
    end, { root = rt.root })
  end
  local timer = l:timer(timeout, function()
    timed_out = true
    wake()
  end)
  local gone, unregister = false, nil
  if abort then unregister = abort:on_abort(function() gone = true; wake() end) end
  local ok, err = pcall(function()
    while true do
      if gone then error(CLOSED, 0) end
      while #settled > 0 do
        local id = remove(settled, 1)
        if on_settle then on_settle(id) end
      end
      if count == 0 or timed_out then break end
      pump(rt)
      if #settled == 0 and count > 0 and not timed_out then
        loop.await(function(resume) waiter = resume end)
      end
    end
  end)
  waiter = nil
  timer:close()
  if unregister then unregister() end
  for _, d in ipairs(disposers) do d() end
  if not ok then error(err, 0) end
  local left = {}
  for _, id in ipairs(ids) do if pending[id] then left[#left + 1] = id end end
  return left
end
_M.wait_settled = wait_settled

-- ===== validation =====

local function log_line(rt, msg)
  local log = rt.opts.log or function(m) io.stderr:write(m, "\n") end
  log(msg)
end

-- plan -> app -> shape. A shape records what validation found for one
-- plan in a runtime whose registry held exactly the signal ids `signature`
-- (in registration order): the root ids the paths resolve to, each path
-- compiled to { id, keys, nums } for the fill, and the handlers and server
-- functions named. Plans are shared and cached by the scanner, runtimes
-- come and go (one per request): a runtime with the same signal ids resolves
-- every path the same way, so a request whose runtime has the same signature
-- and still has the handlers and server functions skips validation and path
-- resolution.
local valid_shapes = setmetatable({}, { __mode = "k" })

local function client_handler(rt, name)
  local set = rt._client_handlers
  if set == nil then
    set = {}
    for _, h in ipairs(rt.opts.client_handlers or {}) do set[h] = true end
    rt._client_handlers = set
  end
  return set[name] == true
end

local function signature(rt)
  return concat(rt.signals.order, "\0")
end

-- Does the registry hold exactly the ids of `order_copy`, in that order?
-- (signature's question without building the string)
local function same_ids(order, order_copy)
  local n = #order
  if n ~= #order_copy then return false end
  for i = 1, n do
    if order[i] ~= order_copy[i] then return false end
  end
  return true
end

local function shape_holds(rt, shape, sig)
  if shape.signature ~= sig then return false end
  local handlers, fns = rt.handlers, rt.server_fns
  local hs = shape.handlers
  for i = 1, #hs do
    if handlers[hs[i]] == nil and not client_handler(rt, hs[i]) then return false end
  end
  local ss = shape.server
  for i = 1, #ss do if fns[ss[i]] == nil then return false end end
  return true
end

-- a path segment naming an array index, as async.signals reads it
local function index_of(k)
  local n = tonumber(k)
  if n and n >= 1 and floor(n) == n and tostring(n) == k then return n end
  return nil
end

-- the state field a first segment names on an async signal (async.signals)
local META = { ["$value"] = "value", ["$status"] = "status", ["$loading"] = "loading", ["$error"] = "error",
               ["$version"] = "version" }

-- A path resolved in a registry: { id =, keys =, nums =, n =, meta =, ri = }
-- (meta: the state field the first segment names, read as such when the
-- signal is async; ri: the index of id in the shape's roots). k1, i1, k2,
-- i2: the first two segments and their array indexes, for the resolver's
-- unrolled walk.
local function compile_path(id, segs, ri)
  local keys, nums = {}, {}
  for i = 1, #segs do keys[i] = segs[i]; nums[i] = index_of(segs[i]) end
  return { id = id, keys = keys, nums = nums, n = #segs, meta = segs[1] ~= nil and META[segs[1]] or nil,
           ri = ri, k1 = keys[1], i1 = nums[1] or false, k2 = keys[2], i2 = nums[2] or false }
end

--- Checks the plan's bindings against the runtime: unknown signals, handlers
-- and server functions (and malformed chains) are errors in development and
-- log lines in production, each with the template name and line:col.
-- Returns the bindings and the shape (nil when something was unknown).
local function check_plan(rt, plan, name, sig)
  local b = scanner.bindings(plan)
  local problems = {}
  local function where(slot)
    if slot and slot.line then return " at " .. (name or "page") .. ":" .. slot.line .. ":" .. (slot.col or 0) end
    return " in " .. (name or "page")
  end
  local slot_of = {}
  for _, slot in ipairs(b.slots or {}) do
    if slot.path and slot.path ~= "" and not slot_of[slot.path] then slot_of[slot.path] = slot end
  end
  for _, rec in ipairs(b.chains) do
    for _, step in ipairs(rec.steps or {}) do
      for _, arg in ipairs(step.args or {}) do
        if arg.kind == "signal" and not slot_of[arg.path] then slot_of[arg.path] = rec.slot end
      end
    end
  end
  local roots, seen, paths = {}, {}, {}
  for _, path in ipairs(b.signals) do
    local id, segs = rt.signals:resolve(path)
    if not id then
      problems[#problems + 1] = 'unknown signal "' .. path .. '"' .. where(slot_of[path])
    else
      if not seen[id] then
        roots[#roots + 1] = id
        seen[id] = #roots
      end
      paths[path] = compile_path(id, segs, seen[id])
    end
  end
  for _, rec in ipairs(b.chains) do
    for _, step in ipairs(rec.steps or {}) do
      if step.kind == "handler" and rt.handlers[step.name] == nil and not client_handler(rt, step.name) then
        problems[#problems + 1] = 'unknown handler "' .. step.name .. '" in on:' .. rec.event .. where(rec.slot)
      elseif step.kind == "server" and rt.server_fns[step.id] == nil then
        problems[#problems + 1] = 'unknown server function "' .. step.id .. '" in on:' .. rec.event ..
          where(rec.slot)
      end
    end
  end
  for _, e in ipairs(b.errors) do
    problems[#problems + 1] = e.message .. where(e.slot)
  end
  if #problems > 0 then return b, nil, problems end
  -- slot -> its compiled path, for the slots the fast resolver reads
  local by_slot = {}
  for _, slot in ipairs(b.slots or {}) do
    local p = not slot.dyn and slot.kind ~= "boundary" and slot.kind ~= "template" and slot.path and paths[slot.path]
    if p then by_slot[slot] = p end
  end
  return b, { signature = sig, roots = roots, paths = paths, by_slot = by_slot, handlers = b.handlers,
              server = b.server, boundaries = b.boundaries }
end

local function validate(rt, plan, name)
  local per_app = valid_shapes[plan]
  local shape = per_app and per_app[rt.app]
  local sig = signature(rt)
  if shape and shape_holds(rt, shape, sig) then return scanner.bindings(plan), shape end
  local b, problems
  b, shape, problems = check_plan(rt, plan, name, sig)
  if shape then
    if not per_app then
      per_app = setmetatable({}, { __mode = "k" })
      valid_shapes[plan] = per_app
    end
    per_app[rt.app] = shape
    return b, shape
  end
  local msg = "render: " .. concat(problems, "; ")
  if rt.env == "development" then
    errors.raise("invalid-binding", msg)
  end
  log_line(rt, msg)
  return b, nil
end

-- ===== filling =====

--- A resolver reading committed values; `override` maps async ids to a
-- forced snapshot form (timeouts, a boundary that failed to render).
local function resolver(rt, override)
  local sigs = rt.signals
  local map, peek = sigs.map, sigs.peek
  return function(slot)
    local kind = slot.kind
    if kind == "boundary" or kind == "template" then
      local id = slot.id
      local o = override and override[id]
      if o then return o.status end
      local sig = map[id]
      if sig and is_async(sig) then
        local st = sig._status
        if st == "idle" then return "loading" end
        return st
      end
      return nil
    end
    local path = slot.path
    if not path or path == "" then return nil end
    if override then
      local id, segs = sigs:resolve(path)
      local o = id and override[id]
      if o and segs[1] and segs[1]:sub(1, 1) == "$" then
        local v = o[segs[1]:sub(2)]
        for i = 2, #segs do
          if type(v) ~= "table" then return nil end
          v = v[segs[i]]
        end
        return v
      end
    end
    local ok, v = pcall(peek, sigs, path)
    if not ok then return nil end
    return v
  end
end

-- one step of a compiled path: the string key, else its array index
local function step(v, k, n)
  if type(v) ~= "table" then return nil end
  local nv = rawget(v, k)
  if nv == nil and n then nv = rawget(v, n) end
  return nv
end

-- walks a compiled path from segment i (unrolled: a loop with these exits
-- does not compile in LuaJIT, "register coalescing too complex")
local function walk_path(v, p, i)
  local n = p.n
  if i > n then return v end
  local keys, nums = p.keys, p.nums
  v = step(v, keys[i], nums[i])
  if i + 1 > n then return v end
  v = step(v, keys[i + 1], nums[i + 1])
  if i + 2 > n then return v end
  return walk_path(step(v, keys[i + 2], nums[i + 2]), p, i + 3)
end

local UNREAD = {}

-- the value of compiled path p whose root signal holds v
local function path_value(map, p, v)
  local meta = p.meta
  if meta then   -- id.$status etc. of an async signal: its state (Signals:get)
    local sig = map[p.id]
    if sig ~= nil and is_async(sig) then
      local st = sig._status
      if meta == "status" then v = st
      elseif meta == "loading" then v = st == "loading"
      elseif meta == "error" then v = sig._error
      elseif meta == "version" then v = sig._version
      end -- "value": the value itself
      return walk_path(v, p, 2)
    end
  end
  -- the first two segments unrolled (the common paths), walk_path beyond
  local n = p.n
  if n == 0 then return v end
  if type(v) ~= "table" then return nil end
  local x = rawget(v, p.k1)
  if x == nil then
    local i1 = p.i1
    if i1 then x = rawget(v, i1) end
  end
  if n == 1 then return x end
  if type(x) ~= "table" then return nil end
  v = rawget(x, p.k2)
  if v == nil then
    local i2 = p.i2
    if i2 then v = rawget(x, i2) end
  end
  if n == 2 then return v end
  return walk_path(v, p, 3)
end

--- The resolver of a validated plan: paths compiled in the shape are read
-- straight from their signal (untracked) and walked here (an async signal's
-- `$status` etc. from its state); boundaries and overrides go through
-- `resolver`. The same values as `resolver`, without the registry's per-read
-- work, so the fill loop stays compiled.
-- Each root signal is read once per fill (nothing commits while a plan is
-- filled, and a 100-row table reads `rows` 600 times).
local function shape_resolver(rt, shape, override)
  local slow = resolver(rt, override)
  if override or not shape then return slow end
  local map, by_slot, root_ids = rt.signals.map, shape.by_slot, shape.roots
  local vals = {}   -- root index -> value; UNREAD until read
  for i = 1, #root_ids do vals[i] = UNREAD end
  return function(slot)
    local p = by_slot[slot]
    if p == nil then return slow(slot) end
    local ri = p.ri
    local v = vals[ri]
    if v == UNREAD then
      local sig = map[p.id]
      if sig == nil then return slow(slot) end   -- unregistered since (streaming)
      if is_computed(sig) then
        local ok
        ok, v = pcall(sig.peek, sig)
        if not ok then v = nil end
      else
        v = sig:peek()
      end
      vals[ri] = v
    end
    return path_value(map, p, v)
  end
end

-- ===== filling by parts (plans of template source) =====
--
-- A partial that returns template results is filled from the plans of its
-- templates' source (async.html.scanner.template_plan): binding discovery
-- and validation once per template, the {{ }} values as holes, nested
-- results filled through their own plans. The walk below checks the whole
-- tree first (every plan valid in this registry, every path or chain that
-- holds a {{ }} known, every value where its plan can take it); anything
-- else, or an async signal the page waits for, and the request takes the
-- path above (the joined HTML read whole), which raises or logs the same
-- errors as before.

-- app -> what the plans resolved to in a registry with the signal ids
-- `signature`: plans (plan -> shape), by_slot (slot -> compiled path, all
-- plans), paths (dynamic path -> compiled path or false), chains (dynamic
-- chain -> its names or false). The string-keyed ones are bounded.
local part_states = setmetatable({}, { __mode = "k" })
-- pages filled by parts, and read whole (for tests and benchmarks)
local counts = { parts = 0, whole = 0 }
_M.counts = counts
-- ASYNC_VERIFY_PARTS=1: every page filled by parts is read whole too and
-- compared (make test runs the rendering specs so)
_M.verify_parts = os.getenv("ASYNC_VERIFY_PARTS") == "1"
local DYN_MAX = 4096

local function part_state(rt)
  local app = rt.app
  local s = part_states[app]
  local order = rt.signals.order
  if s == nil or not same_ids(order, s.ids) or s.npaths > DYN_MAX or s.nchains > DYN_MAX then
    local ids = {}
    for i = 1, #order do ids[i] = order[i] end
    s = { signature = signature(rt), ids = ids, plans = setmetatable({}, { __mode = "k" }),
          by_slot = setmetatable({}, { __mode = "k" }), paths = {}, npaths = 0, chains = {}, nchains = 0 }
    part_states[app] = s
  end
  return s
end

-- an async signal still loading: the request waits for it (st.wait, in
-- the order met; needed_loading's set)
local function watch(st, id)
  local sig = st.map[id]
  if sig ~= nil and is_async(sig) then
    local s = sig._status
    if s == "loading" or s == "idle" then
      local w = st.wait
      if w == nil then
        w = {}
        st.wait, st.waiting = w, {}
      end
      if not st.waiting[id] then
        st.waiting[id] = true
        w[#w + 1] = id
      end
    end
  end
end

local function plan_ok(st, plan)
  local ps = st.ps
  local shape = ps.plans[plan]
  if shape == nil then
    local rt = st.rt
    local _, sh = check_plan(rt, plan, nil, ps.signature)
    if not sh then return false end   -- not cached: the whole-HTML path reports it
    local by_slot = ps.by_slot
    for slot, p in pairs(sh.by_slot) do by_slot[slot] = p end
    local w = {}
    for _, id in ipairs(sh.roots) do w[#w + 1] = id end
    for _, id in ipairs(sh.boundaries) do w[#w + 1] = id end
    sh.watch = w
    ps.plans[plan] = sh
    shape = sh
  end
  if shape.mark == st then return true end   -- checked in this request
  shape.mark = st
  local rt = st.rt
  local handlers, fns = rt.handlers, rt.server_fns
  local hs = shape.handlers
  for i = 1, #hs do
    if handlers[hs[i]] == nil and not client_handler(rt, hs[i]) then return false end
  end
  local ss = shape.server
  for i = 1, #ss do if fns[ss[i]] == nil then return false end end
  local w = shape.watch
  for i = 1, #w do watch(st, w[i]) end
  return true
end

local dyn_string = scanner.dyn_string

-- a binding whose path or chain holds {{ }}: known for these values?
local function dyn_ok(st, slot, vals)
  local s = dyn_string(slot.dyn, vals)
  local ps, rt = st.ps, st.rt
  if slot.kind == "on" then
    local c = ps.chains[s]
    if c == nil then
      local steps = chain_mod.parse(s)
      c = false
      if steps then
        c = { handlers = {}, server = {}, ids = {} }
        for _, st_ in ipairs(steps) do
          if st_.kind == "handler" then c.handlers[#c.handlers + 1] = st_.name
          elseif st_.kind == "server" then c.server[#c.server + 1] = st_.id end
          for _, arg in ipairs(st_.args or {}) do
            if arg.kind == "signal" then
              local id = rt.signals:resolve(arg.path)
              if not id then c = false; break end
              c.ids[#c.ids + 1] = id
            end
          end
          if not c then break end
        end
      end
      ps.chains[s], ps.nchains = c, ps.nchains + 1
    end
    if not c then return false end
    local hs = c.handlers
    for i = 1, #hs do
      if rt.handlers[hs[i]] == nil and not client_handler(rt, hs[i]) then return false end
    end
    local ss = c.server
    for i = 1, #ss do if rt.server_fns[ss[i]] == nil then return false end end
    local ids = c.ids
    for i = 1, #ids do watch(st, ids[i]) end
    return true
  end
  local p = ps.paths[s]
  if p == nil then
    local id, segs = rt.signals:resolve(s)
    p = id and compile_path(id, segs, 0) or false
    ps.paths[s], ps.npaths = p, ps.npaths + 1
  end
  if not p then return false end
  watch(st, p.id)
  return true
end

local LIST = html_mod.list_mt
local template_plan, plan_for = scanner.template_plan, scanner.plan_for

-- Can node v be filled by parts where it is inserted? el: the innermost
-- open element around it (nil: none); top: v is the whole page.
local function node_ok(st, v, el, top)
  if type(v) == "string" then return true end   -- escaped text
  local t = rawget(v, 0)
  local plan
  if t then
    local plans = t.plans   -- template_plan's cache, looked up here first
    plan = plans and plans[st.cfg]
    if plan == nil then plan = template_plan(t, st.cfg) end
  elseif getmetatable(v) == LIST then
    for i = 1, #v do
      if not node_ok(st, v[i], el, false) then return false end
    end
    return true
  else
    local h = rawget(v, "html")
    if type(h) ~= "string" then return false end
    plan = plan_for(h, st.cfg)
  end
  if not plan then return false end
  if not top then
    local f = plan.facts
    if f.open then return false end
    if el and ((f.closes and f.closes[el.name]) or (f.selfclosing and el.foreign)) then return false end
  end
  if not plan_ok(st, plan) then return false end
  if t then
    local at = plan.at
    for k = 1, t.n do
      local x = v[k]
      local a = at[k]
      local kind = a.kind
      if kind == "data" then
        if type(x) ~= "string" and not node_ok(st, x, a.el or el, false) then return false end
      elseif type(x) ~= "string" then
        return false   -- in an attribute, raw text or a comment: strings only
      elseif kind == "comment" and sfind(x, "-", 1, true) then
        return false   -- could end the comment
      end
    end
    local dyn = plan.dyn
    for i = 1, #dyn do
      if not dyn_ok(st, dyn[i], v) then return false end
    end
  end
  return true
end

--- The resolver of a fill by parts: a slot's compiled path from the part
-- state (a dynamic slot's by its path for the values at hand), each root
-- signal read once per fill. One function for all fills (no closure per
-- request): the fill under way is CUR (saved and put back around a fill,
-- so a fill started while resolving does not disturb it).
local NIL = {}
local CUR   -- { rt =, map =, by_slot =, paths =, read = { id -> value or NIL }, slow = }

local function parts_resolve(slot, vals)
  local cur = CUR
  local p
  local d = slot.dyn
  if d then p = cur.paths[dyn_string(d, vals)] else p = cur.by_slot[slot] end
  if not p then
    local slow = cur.slow or resolver(cur.rt, nil)
    cur.slow = slow
    return slow(slot)
  end
  local id = p.id
  local read = cur.read
  local v = read[id]
  local map = cur.map
  if v == nil then
    local sig = map[id]
    if sig == nil then
      local slow = cur.slow or resolver(cur.rt, nil)
      cur.slow = slow
      return slow(slot)
    end
    if is_computed(sig) then
      local ok
      ok, v = pcall(sig.peek, sig)
      if not ok then v = nil end
    else
      v = sig:peek()
    end
    read[id] = v == nil and NIL or v
  elseif v == NIL then
    v = nil
  end
  return path_value(map, p, v)
end

--- Checks the route result's node for a fill by parts; returns the walk's
-- state (st.wait: the async signals to wait for), or nil when the page must
-- be read whole (see above).
local function parts_check(rt, res)
  local node = res.node
  local map = rt.signals.map
  local ps = part_state(rt)
  local st = { rt = rt, ps = ps, map = map, cfg = scanner.config(rt.opts.attributes), wait = nil, waiting = nil }
  if not node_ok(st, node, nil, true) then return nil end
  local started = res.started
  for i = 1, #started do watch(st, started[i]) end
  return st
end

-- The buffer a page is filled into, kept for the next page once the page
-- is joined: a 100-row table is 2,300 pieces, an 18 KB array made and
-- dropped per request (docs/rendering.md, "One buffer for every page").
-- Taken (set to nil) while in use, so a fill that runs inside another (user
-- code during a fill: a cdata's __tostring) or a page that raised makes a
-- new one. It is cleared when given back (table.clear keeps its size), so
-- it holds nothing of the page it served; a buffer of a page over
-- SPARE_MAX pieces is not kept.
local spare = nil
local SPARE_MAX = 65536
local function take_buffer()
  local buf = spare
  spare = nil
  return buf
end
local function give_buffer(buf, n)
  if n <= SPARE_MAX then
    tclear(buf)
    spare = buf
  end
end

--- Fills the checked node by parts (override: none) into the kept buffer
-- (take_buffer): returns buf, n with the HTML in buf[first + 1 .. n]
-- (scanner.fill_node_pieces); the caller joins it and gives it back.
local function parts_pieces(rt, res, st, first)
  local node = res.node
  local t = rawget(node, 0)
  local ps = st.ps
  st.resolve = parts_resolve   -- st is the fill's cx too (cfg, resolve)
  local prev = CUR
  CUR = { rt = rt, map = st.map, by_slot = ps.by_slot, paths = ps.paths, read = {}, slow = nil }
  local ok, buf, n = pcall(scanner.fill_node_pieces, node, st, t and t.fill_n, first, take_buffer())
  CUR = prev
  if not ok then error(buf, 0) end
  if t then t.fill_n = n - first end
  counts.parts = counts.parts + 1
  if _M.verify_parts then   -- the whole-HTML path must give the same bytes
    local html = concat(buf, "", first + 1, n)
    local plan = scanner.compile(tostring(node), { prefixes = rt.opts.attributes })
    local _, shape = check_plan(rt, plan, nil, signature(rt))
    local want = scanner.fill(plan, shape_resolver(rt, shape))
    if want ~= html then
      errors.raise("render-parts-mismatch", "render: filled by parts:\n" .. html .. "\nread whole:\n" .. want)
    end
  end
  return buf, n
end

--- The same, joined: the HTML.
local function parts_fill(rt, res, st)
  local buf, n = parts_pieces(rt, res, st, 0)
  local html = concat(buf, "", 1, n)
  give_buffer(buf, n)
  return html
end

local function compile_or_fail(rt, html, name)
  local plan, err = scanner.compile(html, { prefixes = rt.opts.attributes })
  if not plan then
    local msg = "render: cannot read the HTML of " .. (name or "the page") .. ": " .. tostring(err)
    if rt.env == "development" then errors.raise("invalid-html", msg) end
    log_line(rt, msg)
    return nil
  end
  return plan
end

--- The plan of a route result and its (validated) bindings; nil when the
-- HTML cannot be read in production (the HTML is then sent as written).
local function prepare(rt, res)
  local name = res.match and res.match.route.partial
  local plan = compile_or_fail(rt, res.html, name)
  if not plan then return nil, nil, nil end
  return plan, validate(rt, plan, name)
end

-- the route boundary: define_route's `boundary` option, default "route"
local function section_open(res)
  local id = res.match and res.match.route.boundary or "route"
  if id == "route" then return '<section async:boundary="route">' end
  return '<section async:boundary="' .. escape_attr(id) .. '">'
end

local function fill(rt, res, plan, shape, override)
  if not plan then return res.html end
  return scanner.fill(plan, shape_resolver(rt, shape, override))
end

-- fill's pieces (scanner.fill_pieces): buf, n with the HTML in buf[first + 1 .. n]
local function fill_pieces(rt, res, plan, shape, override, first)
  if not plan then
    local buf = {}
    buf[first + 1] = res.html
    return buf, first + 1
  end
  return scanner.fill_pieces(plan, shape_resolver(rt, shape, override), first, take_buffer())
end

-- ===== the request: route -> partial -> waiting -> HTML =====

local NONE = setmetatable({}, { __newindex = function() error("read-only", 2) end })

local function run_route(rt, url)
  if type(url) ~= "string" or url == "" then
    errors.argument("render expects a URL string, got " .. tostring(url))
  end
  local path = router_mod.split_url(url)
  local m = rt.router:match(path)
  set_router_state(rt, url, m)
  if not m then
    return { html = "", status = 404, title = nil, error = router_mod.not_matched_error(path), started = {} }
  end
  local route = m.route
  local order = rt.signals.order
  local before = #order
  local res = partial_result(rt, route.partial, m.params, m.pattern)
  local started = NONE
  local after = #order
  if after > before then
    started = tnew(after - before, 0)   -- made at its size (40-odd ids on a components page)
    for i = before + 1, after do started[i - before] = order[i] end
  end
  res.started = started   -- ids the partial and its components registered
  res.status = res.status or route.status or 200
  res.match = m
  return res
end

--- The async signals the page needs that are still loading: those bound or
-- used as boundaries, and those the request itself started.
local function needed_loading(rt, b, started)
  local sigs = rt.signals
  local map = sigs.map
  local out, seen = {}, {}
  local function consider(id)
    if id == nil or seen[id] then return end
    seen[id] = true
    local sig = map[id]
    if async_signal.is_async(sig) and (sig._status == "loading" or sig._status == "idle") then
      out[#out + 1] = id
    end
  end
  if b then
    for _, id in ipairs(b.boundaries) do consider(id) end
    for _, path in ipairs(b.signals) do consider((sigs:resolve(path))) end
  end
  for _, id in ipairs(started or {}) do consider(id) end
  return out
end

--- The error state of boundaries that did not settle in `timeout` ms: each
-- run is cancelled and its snapshot form shows a TimeoutError.
local function time_out(rt, ids, timeout, override)
  override = override or {}
  for _, id in ipairs(ids) do
    local sig = rt.signals.map[id]
    sig:cancel()
    override[id] = { status = "error", value = sig:peek(), loading = false, version = sig._version,
      error = { name = "TimeoutError", message = "Boundary " .. id .. " timed out after " .. timeout .. " ms",
                code = "timeout" } }
  end
  return override
end

--- Renders `url`: { html=, status=, signals=, cache = { browser = }, title= }.
-- opts.document = false: the bare fragment (no boundary section, no snapshot).
-- Inside a coroutine it waits (opts.timeout, default 10 s) for the async
-- signals the page needs; one still loading at the deadline is cancelled and
-- renders its error template with $error.code = "timeout". opts.abort (a
-- token): cancelling it ends the wait at once and raises the CLOSED error
-- (the client went away; the runtime's runs are left to rt:destroy).
function _M.render(self, url, opts)
  opts = opts or {}
  local res = run_route(self, url)
  pump(self)
  local co = in_coroutine()
  -- filled by parts (plans of template source), else read whole
  local st = res.node and parts_check(self, res)
  local plan, b, shape, ids
  if st then
    ids = st.wait
  else
    if res.node then res.html = tostring(res.node) end
    plan, b, shape = prepare(self, res)
    if co then ids = needed_loading(self, b, res.started) end
  end
  local override
  if co and ids and #ids > 0 then
    local timeout = opts.timeout or DEFAULT_TIMEOUT
    local left = wait_settled(self, ids, timeout, nil, opts.abort)
    if #left > 0 then override = time_out(self, left, timeout) end
    pump(self)
  end
  -- the page is joined once: buf[1] the section's open tag, then the
  -- fragment, the close tag and the snapshot
  local buf, n
  if st and not override then
    buf, n = parts_pieces(self, res, st, 1)
  else
    if st then   -- a timeout: its forced states go through the whole-HTML path
      res.html = tostring(res.node)
      plan, b, shape = prepare(self, res)
    end
    counts.whole = counts.whole + 1
    buf, n = fill_pieces(self, res, plan, shape, override, 1)
  end
  local signals, browser = snapshot(self, b, shape, override, true)
  self:note_sizes()   -- the next runtime of the app makes its tables this big
  local out = { status = res.status, signals = signals, cache = { browser = browser }, title = res.title }
  if opts.document == false then
    out.html = concat(buf, "", 2, n)
  else
    buf[1], buf[n + 1], buf[n + 2] = section_open(res), "</section>", snapshot_script(signals, browser)
    out.html = concat(buf, "", 1, n + 2)
  end
  give_buffer(buf, n + 2)
  return out
end

-- the pieces the document and stream modules build on
_M.DEFAULT_TIMEOUT = DEFAULT_TIMEOUT
_M.in_coroutine = in_coroutine
_M.run_route = run_route
_M.pump = pump
_M.prepare = prepare
_M.fill = fill
_M.parts_check = parts_check
_M.parts_fill = parts_fill
_M.section_open = section_open
_M.shape_resolver = shape_resolver
_M.time_out = time_out
_M.CLOSED = CLOSED

return _M
