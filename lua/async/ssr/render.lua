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
local co_running = coroutine.running
local is_async, is_computed = async_signal.is_async, kernel.is_computed
local floor, tonumber, rawget = math.floor, tonumber, rawget
local escape_attr = require("async.html.escape").attr

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



--- Sets the router.* signals of a runtime.
local function set_router_state(rt, url, m)
  local path, query = router_mod.split_url(url)
  local state = {
    ["router.url"] = url, ["router.path"] = path, ["router.params"] = m and m.params or json.array(),
    ["router.query"] = parse_query(query), ["router.route"] = m and m.pattern or json.null,
    ["router.pending"] = false,
    ["router.error"] = m and json.null or router_mod.not_matched_error(path),
  }
  if m and next(m.params) == nil then state["router.params"] = {} end
  kernel.batch(function()
    for _, id in ipairs(ROUTER_IDS) do
      local sigs = rt.signals
      if sigs:has(id) then sigs:set(id, state[id]) else sigs:ensure(id, state[id]) end
    end
  end)
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

local PartialCtx = {}
PartialCtx.__index = PartialCtx

--- self:render(Component, props) inside a partial.
function PartialCtx:render(comp, props)
  local inst, html = component.render(self.runtime, self.id, comp, props)
  self.instances[#self.instances + 1] = inst
  return html
end

--- Runs partial `id`; returns { html=, status=, title= } (raises on a hard error).
function _M.run_partial(self, id, params, route)
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
  out.html = to_html(out.html, id)
  out.instances = ctx.instances
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
local function validate(rt, plan, name)
  local b = scanner.bindings(plan)
  local per_app = valid_shapes[plan]
  local shape = per_app and per_app[rt.app]
  local sig = signature(rt)
  if shape and shape_holds(rt, shape, sig) then return b, shape end
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
  if #problems == 0 then
    if not per_app then
      per_app = setmetatable({}, { __mode = "k" })
      valid_shapes[plan] = per_app
    end
    -- slot -> its compiled path, for the slots the fast resolver reads
    local by_slot = {}
    for _, slot in ipairs(b.slots or {}) do
      local p = slot.kind ~= "boundary" and slot.kind ~= "template" and slot.path and paths[slot.path]
      if p then by_slot[slot] = p end
    end
    shape = { signature = sig, roots = roots, paths = paths, by_slot = by_slot, handlers = b.handlers,
              server = b.server }
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

-- ===== the request: route -> partial -> waiting -> HTML =====

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
  local res = _M.run_partial(rt, route.partial, m.params, m.pattern)
  local started = {}
  for i = before + 1, #order do started[#started + 1] = order[i] end
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
  local plan, b, shape = prepare(self, res)
  local override
  if in_coroutine() then
    local ids = needed_loading(self, b, res.started)
    if #ids > 0 then
      local timeout = opts.timeout or DEFAULT_TIMEOUT
      local left = wait_settled(self, ids, timeout, nil, opts.abort)
      if #left > 0 then override = time_out(self, left, timeout) end
      pump(self)
    end
  end
  local fragment = fill(self, res, plan, shape, override)
  local signals, browser = snapshot(self, b, shape, override)
  local out = { status = res.status, signals = signals, cache = { browser = browser }, title = res.title }
  if opts.document == false then
    out.html = fragment
  else
    out.html = section_open(res) .. fragment .. "</section>" .. snapshot_script(signals, browser)
  end
  return out
end

-- the pieces the document and stream modules build on
_M.DEFAULT_TIMEOUT = DEFAULT_TIMEOUT
_M.in_coroutine = in_coroutine
_M.run_route = run_route
_M.pump = pump
_M.prepare = prepare
_M.fill = fill
_M.section_open = section_open
_M.shape_resolver = shape_resolver
_M.time_out = time_out
_M.CLOSED = CLOSED

return _M
