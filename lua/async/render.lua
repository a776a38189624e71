--- Server-side rendering: rt:render, rt:render_document, rt:render_stream
-- (protocol.md, "SSR output" and "Streaming").
--
-- A request runs the matched route's partial, waits (inside a coroutine) for
-- the async signals the page started, compiles the fragment's HTML into a
-- render plan once (async.scanner caches plans), fills every binding from
-- committed signal values so the page is right with JavaScript off, and adds
-- the snapshot the browser client activates from. Streaming sends the shell
-- at once and each boundary as its async signal settles.
local kernel = require("async.kernel")
local app = require("async.app")
local scanner = require("async.scanner")
local component = require("async.component")
local json = require("async.json")
local router_mod = require("async.router")
local async_signal = require("async.async_signal")
local html_mod = require("async.html")

local type, error, pairs, ipairs, tostring, setmetatable, pcall = type, error, pairs, ipairs, tostring,
  setmetatable, pcall
local concat = table.concat
local co_running = coroutine.running
local escape_attr = scanner.escape_attr or html_mod.escape
local escape_text = scanner.escape_text or html_mod.escape

local _M = {}
local Runtime = app.Runtime

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

local function render_error(code, message, hint)
  return app.error(code, message, hint)
end

local ROUTER_IDS = { "router.url", "router.path", "router.params", "router.query", "router.route",
                     "router.pending", "router.error" }

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

local PartialCtx = {}
PartialCtx.__index = PartialCtx

--- self:render(Component, props) inside a partial.
function PartialCtx:render(comp, props)
  local inst, html = component.render(self.runtime, self.id, comp, props)
  self.instances[#self.instances + 1] = inst
  return html
end

--- Runs partial `id`; returns { html=, status=, title= } (raises on a hard error).
function Runtime:run_partial(id, params, route)
  local fn = self.partials[id]
  if fn == nil then
    error(render_error("partial-not-registered", 'Partial "' .. tostring(id) .. '" is not registered.',
      "Register via Async.use({ partial })"), 0)
  end
  local ctx = setmetatable({
    id = id, params = params or {}, route = route, signals = self.signals, server = self.server,
    cache = self.cache.server, browser_cache = self.cache.browser, request = self.request,
    runtime = self, instances = {},
  }, PartialCtx)
  local res = fn(ctx, ctx.params)
  local out = { status = nil, title = nil }
  if type(res) == "table" and not html_mod.is_safe(res) then
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
  if out.html == nil then out.html = "" end
  if type(out.html) ~= "string" then
    if html_mod.is_safe(out.html) or type(out.html) == "table" then
      out.html = tostring(out.html)
    else
      error(render_error("invalid-partial-result", 'Partial "' .. id .. '" returned a ' .. type(out.html) ..
        "; expected a template result, a string or { html = ... }"), 0)
    end
  end
  out.instances = ctx.instances
  return out
end

-- ===== async waiting =====

local function loading_asyncs(rt, only)
  local out = {}
  for _, id in ipairs(rt.signals.order) do
    local sig = rt.signals.map[id]
    if async_signal.is_async(sig) and (only == nil or only[id]) then
      local st = sig._status
      if st == "loading" or st == "idle" then out[#out + 1] = id end
    end
  end
  return out
end

local function pump(rt)
  local s = rt.scheduler
  if s:size() > 0 then s:flush() end
end

--- Waits (yielding) until none of `ids` is loading, or `timeout` ms passed.
-- Calls on_settle(id) for each one as it settles, in settle order.
-- Returns the ids still loading at the deadline.
local function wait_settled(rt, ids, timeout, on_settle)
  local loop = loop_mod()
  local l = loop.get_loop()
  local pending, count = {}, 0
  for _, id in ipairs(ids) do pending[id] = true; count = count + 1 end
  local settled = {}
  local waiter
  local timed_out = false
  local disposers = {}
  for _, id in ipairs(ids) do
    local sig = rt.signals.map[id]
    disposers[#disposers + 1] = kernel.effect(function()
      local st = sig:status()
      if pending[id] and st ~= "loading" and st ~= "idle" then
        pending[id] = nil
        count = count - 1
        settled[#settled + 1] = id
        if waiter then local w = waiter; waiter = nil; w() end
      end
    end)
  end
  local timer = l:timer(timeout, function()
    timed_out = true
    if waiter then local w = waiter; waiter = nil; w() end
  end)
  local ok, err = pcall(function()
    while true do
      while #settled > 0 do
        local id = table.remove(settled, 1)
        if on_settle then on_settle(id) end
      end
      if count == 0 or timed_out then break end
      pump(rt)
      if #settled == 0 and count > 0 and not timed_out then
        loop.await(function(resume) waiter = resume end)
      end
    end
  end)
  timer:close()
  for _, d in ipairs(disposers) do d() end
  if not ok then error(err, 0) end
  local left = {}
  for _, id in ipairs(ids) do if pending[id] then left[#left + 1] = id end end
  return left
end
_M.wait_settled = wait_settled

-- ===== filling =====

local function log_line(rt, msg)
  local log = rt.opts.log or function(m) io.stderr:write(m, "\n") end
  log(msg)
end

--- Checks the plan's bindings against the runtime: unknown signals, handlers
-- and server functions are errors in development and log lines in production.
local function validate(rt, plan, name)
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
  for _, path in ipairs(b.signals) do
    if not rt.signals:resolve(path) then
      problems[#problems + 1] = 'unknown signal "' .. path .. '"' .. where(slot_of[path])
    end
  end
  local client = rt.opts.client_handlers or {}
  local client_set = {}
  for _, h in ipairs(client) do client_set[h] = true end
  for _, rec in ipairs(b.chains) do
    if rec.steps then
      for _, step in ipairs(rec.steps) do
        if step.kind == "handler" and rt.handlers[step.name] == nil and not client_set[step.name] then
          problems[#problems + 1] = 'unknown handler "' .. step.name .. '" in on:' .. rec.event .. where(rec.slot)
        elseif step.kind == "server" and rt.server_fns[step.id] == nil then
          problems[#problems + 1] = 'unknown server function "' .. step.id .. '" in on:' .. rec.event ..
            where(rec.slot)
        end
      end
    end
  end
  for _, e in ipairs(b.errors) do
    problems[#problems + 1] = e.message .. where(e.slot)
  end
  if #problems == 0 then return b end
  local msg = "render: " .. concat(problems, "; ")
  if rt.env == "development" then
    error(render_error("invalid-binding", msg), 0)
  end
  log_line(rt, msg)
  return b
end

--- A resolver reading committed values; `override` maps async ids to a
-- forced state (streaming timeouts).
local function resolver(rt, override)
  local sigs = rt.signals
  return function(slot)
    local kind = slot.kind
    if kind == "boundary" or kind == "template" then
      local id = slot.id
      local o = override and override[id]
      if o then return o.status end
      local sig = sigs.map[id]
      if sig and async_signal.is_async(sig) then
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
    local ok, v = pcall(sigs.peek, sigs, path)
    if not ok then return nil end
    return v
  end
end

local function compile_or_fail(rt, html, name)
  local plan, err = scanner.compile(html, { prefixes = rt.opts.attributes })
  if not plan then
    local msg = "render: cannot read the HTML of " .. (name or "the page") .. ": " .. tostring(err)
    if rt.env == "development" then error(render_error("invalid-html", msg), 0) end
    log_line(rt, msg)
    return nil
  end
  return plan
end

--- The snapshot of what the page needs.
local function snapshot(rt, b)
  local sigs = rt.signals
  local want = {}
  for _, path in ipairs(b and b.signals or {}) do
    local id = sigs:resolve(path)
    if id then want[id] = true end
  end
  for _, id in ipairs(b and b.boundaries or {}) do
    if sigs:has(id) then want[id] = true end
  end
  for _, id in ipairs(ROUTER_IDS) do if sigs:has(id) then want[id] = true end end
  for _, id in ipairs(rt.opts.client_signals or {}) do if sigs:has(id) then want[id] = true end end
  if rt.client_signals then for id in pairs(rt.client_signals) do if sigs:has(id) then want[id] = true end end end
  local out = sigs:snapshot(function(id) return want[id] end)
  return out, rt.cache.browser:snapshot()
end

local function snapshot_script(signals, browser)
  return '<script type="application/json" async:snapshot>' ..
    json.encode({ signals = signals, cache = { browser = browser } }, { script = true }) .. "</script>"
end

--- Marks signal ids as client state (always in the page's snapshot).
function Runtime:client_signal(...)
  self.client_signals = self.client_signals or {}
  for i = 1, select("#", ...) do self.client_signals[select(i, ...)] = true end
end

-- ===== the request: route -> partial -> waiting -> HTML =====

local function run_route(rt, url)
  if type(url) ~= "string" or url == "" then
    error("render expects a URL string, got " .. tostring(url), 3)
  end
  local path = router_mod.split_url(url)
  local m = rt.router:match(path)
  set_router_state(rt, url, m)
  if not m then
    return { html = "", status = 404, title = nil, error = router_mod.not_matched_error(path) }
  end
  local route = m.route
  local res = rt:run_partial(route.partial, m.params, m.pattern)
  res.status = res.status or route.status or 200
  res.match = m
  return res
end

local function fill_fragment(rt, res, override)
  local plan = compile_or_fail(rt, res.html, res.match and res.match.route.partial)
  if not plan then return res.html, nil, nil end
  local b = validate(rt, plan, res.match and res.match.route.partial)
  return scanner.fill(plan, resolver(rt, override)), b, plan
end

--- Renders `url`: { html=, status=, signals=, cache = { browser = } }.
-- opts.document = false: the bare fragment (no boundary section, no snapshot).
-- Inside a coroutine it waits (opts.timeout, default 10 s) for the async
-- signals the page started.
function Runtime:render(url, opts)
  opts = opts or {}
  local res = run_route(self, url)
  pump(self)
  if in_coroutine() then
    local ids = loading_asyncs(self)
    if #ids > 0 then wait_settled(self, ids, opts.timeout or DEFAULT_TIMEOUT) end
    pump(self)
  end
  local fragment, b = fill_fragment(self, res)
  local signals, browser = snapshot(self, b)
  local out = { status = res.status, signals = signals, cache = { browser = browser }, title = res.title }
  if opts.document == false then
    out.html = fragment
  else
    out.html = '<section async:boundary="route">' .. fragment .. "</section>" .. snapshot_script(signals, browser)
  end
  return out
end

-- ===== documents =====

local function default_layout(page)
  return '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' ..
    '<meta name="viewport" content="width=device-width, initial-scale=1">' ..
    "<title>" .. escape_text(page.title or "") .. "</title>" ..
    '<script src="' .. escape_attr(page.client or "/__async/client.js") .. '" defer></script>' ..
    (page.head or "") .. "</head><body><main async:container>" .. page.body .. "</main></body></html>"
end
_M.default_layout = default_layout

local function layout_parts(rt, title)
  local layout = rt.opts.layout or default_layout
  local marker = "\0ASYNC_BODY\0"
  local whole = layout({ title = title or rt.opts.title, body = marker, client = rt.opts.client_url, runtime = rt })
  local i = whole:find(marker, 1, true)
  if not i then error("layout must insert page.body", 0) end
  return whole:sub(1, i - 1), whole:sub(i + #marker)
end

--- Renders `url` as a whole document in the app's layout.
function Runtime:render_document(url, opts)
  local r = self:render(url, opts)
  local head, tail = layout_parts(self, r.title)
  r.html = head .. r.html .. tail
  return r
end

-- ===== streaming =====

local function find_boundary(plan, id)
  for _, h in ipairs(plan.holes or {}) do
    if h.kind == "boundary" and h.slot and h.slot.id == id then return h end
  end
  return nil
end

--- Streams `url`: the shell at once, then each pending boundary as its async
-- signal settles (protocol.md, "Streaming"). Calls write(chunk) per chunk and
-- write(nil) once at the end; returns then. Must run in a coroutine.
function Runtime:render_stream(url, write, opts)
  if type(write) ~= "function" then error("render_stream expects a write function, got " .. type(write), 2) end
  if not in_coroutine() then error("render_stream must be called from a coroutine", 2) end
  opts = opts or {}
  local timeout = opts.stream_timeout or DEFAULT_TIMEOUT
  local ok, err = pcall(function()
    local res = run_route(self, url)
    pump(self)
    local fragment, b, plan = fill_fragment(self, res)
    local signals, browser = snapshot(self, b)
    local head, tail = "", ""
    if opts.document ~= false then head, tail = layout_parts(self, res.title) end
    write(head .. '<section async:boundary="route">' .. fragment .. "</section>" .. snapshot_script(signals, browser))
    local pending = {}
    if plan and b then
      for _, id in ipairs(b.boundaries) do
        local sig = self.signals.map[id]
        if async_signal.is_async(sig) and (sig._status == "loading" or sig._status == "idle") then
          pending[#pending + 1] = id
        end
      end
    end
    local function send(id, override)
      local h = find_boundary(plan, id)
      local status = override and override[id] and override[id].status or self.signals.map[id]._status
      local sub = h and h.templates and h.templates[status]
      local inner = sub and scanner.fill(sub, resolver(self, override)) or ""
      local chunk = '<template async:fill="' .. escape_attr(id) .. '">' .. inner .. "</template>"
      local patch = { [id] = override and override[id] or self.signals.map[id]:snapshot() }
      chunk = chunk .. '<script type="application/json" async:patch>' ..
        json.encode({ signals = patch }, { script = true }) .. "</script>"
      write(chunk)
    end
    if #pending > 0 then
      local left = wait_settled(self, pending, timeout, function(id)
        local okf, e = pcall(send, id)
        if not okf then
          send(id, { [id] = { status = "error", value = json.null, version = 0, loading = false,
            error = { name = "Error", message = tostring(type(e) == "table" and e.message or e), code = "render" } } })
        end
      end)
      for _, id in ipairs(left) do
        local sig = self.signals.map[id]
        sig:cancel()
        send(id, { [id] = { status = "error", value = sig:peek(), loading = false, version = sig._version,
          error = { name = "TimeoutError", message = "Boundary " .. id .. " timed out after " .. timeout .. " ms",
                    code = "timeout" } } })
      end
    end
    if tail ~= "" then write(tail) end
  end)
  write(nil)
  if not ok then error(err, 0) end
end

-- ===== reading snapshots back =====

--- Reads every async:snapshot script of `html` and merges them (later ones
-- win per signal and per cache key): { signals = {}, cache = { browser = {} } }.
function _M.read_snapshot(html, opts)
  if type(html) ~= "string" then error("read_snapshot expects an HTML string, got " .. type(html), 2) end
  local attr = (opts and opts.prefix or "async:") .. "snapshot"
  local out = { signals = {}, cache = { browser = {} } }
  local pos = 1
  while true do
    local s, e, attrs = html:find("<script([^>]*)>", pos)
    if not s then break end
    local close = html:find("</script", e + 1, true)
    if not close then break end
    if (" " .. attrs .. " "):find("[%s]" .. attr:gsub("%p", "%%%0") .. "[%s=/]") then
      local body = html:sub(e + 1, close - 1)
      local v, err = json.decode(body)
      if v == nil or type(v) ~= "table" then
        error("Could not parse Async snapshot: " .. tostring(err or "expected a JSON object"), 2)
      end
      if type(v.signals) == "table" then
        for k, x in pairs(v.signals) do out.signals[k] = x end
      end
      if type(v.cache) == "table" and type(v.cache.browser) == "table" then
        for k, x in pairs(v.cache.browser) do out.cache.browser[k] = x end
      end
    end
    pos = close + 1
  end
  return out
end

return _M
