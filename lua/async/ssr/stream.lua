--- Streaming (protocol.md "Streaming"): the shell at once, then each
-- pending boundary as its async signal settles, out of order.
local kernel = require("async.kernel.graph")
local async_signal = require("async.kernel.task")
local json = require("async.app.json")
local scanner = require("async.html.scanner")
local render = require("async.ssr.render")
local snapshots = require("async.ssr.snapshot")
local document = require("async.ssr.document")

local type, error, pairs, ipairs, tostring, setmetatable, pcall, rawequal =
  type, error, pairs, ipairs, tostring, setmetatable, pcall, rawequal
local escape_attr = require("async.html.escape").attr
local in_coroutine, run_route, pump, prepare, fill = render.in_coroutine, render.run_route, render.pump,
  render.prepare, render.fill
local section_open, shape_resolver, time_out, wait_settled = render.section_open, render.shape_resolver,
  render.time_out, render.wait_settled
local snapshot, snapshot_script, layout_parts = snapshots.snapshot, snapshots.script, document.layout_parts
local public, with_nulls = snapshots.public, snapshots.with_nulls
local wire_snapshot = require("async.app.registry").wire_snapshot
local errors = require("async.kernel.errors")
local DEFAULT_TIMEOUT, CLOSED = render.DEFAULT_TIMEOUT, render.CLOSED

local _M = {}

-- ===== streaming =====

-- plan -> { list = {node...}, by_id = { id -> node } }, node = { id, hole,
-- parent = id of the enclosing boundary hole or nil, under = the status of
-- the parent's template holding it, or "fallback" }. Memoized per plan.
local trees = setmetatable({}, { __mode = "k" })
local STATUSES = { "loading", "ready", "error" }

local function boundary_tree(plan)
  local t = trees[plan]
  if t then return t end
  t = { list = {}, by_id = {} }
  local function walk(p, parent, under)
    for _, h in ipairs(p.holes or {}) do
      if h.kind == "boundary" then
        local id = h.slot.id
        if not t.by_id[id] then
          local node = { id = id, hole = h, parent = parent, under = under }
          t.by_id[id] = node
          t.list[#t.list + 1] = node
        end
        for _, st in ipairs(STATUSES) do
          if h.templates[st] then walk(h.templates[st], id, st) end
        end
        if h.fallback then walk(h.fallback, id, "fallback") end
      end
    end
  end
  walk(plan, nil, nil)
  trees[plan] = t
  return t
end
_M.boundary_tree = boundary_tree

local function status_of(rt, id, override)
  local o = override and override[id]
  if o then return o.status end
  local st = rt.signals.map[id]._status
  if st == "idle" then return "loading" end
  return st
end

--- Streams `url`: the shell at once, then each pending boundary as its async
-- signal settles (protocol.md, "Streaming"). Calls write(chunk) per chunk and
-- write(nil) once at the end; returns then. Must run in a coroutine.
-- opts: stream_timeout (ms, default 10000), document (false: no layout),
-- abort (a token: cancelling it ends the stream as a failed write does),
-- on_head(result) (called once the route has run, before the first write,
-- with { status =, title = }: an HTTP server sends its status line then).
-- Returns { status =, title = } of the route.
function _M.render_stream(self, url, write, opts)
  if type(write) ~= "function" then errors.argument("render_stream expects a write function, got " .. type(write)) end
  if not in_coroutine() then errors.argument("render_stream must be called from a coroutine") end
  opts = opts or {}
  local timeout = opts.stream_timeout or DEFAULT_TIMEOUT
  local result
  -- a write that answers false, or nil plus an error, means the client is
  -- gone: unwind, abort what is pending, write nothing more
  local write_to, closed_reason = write, nil
  write = function(chunk)
    local r, e = write_to(chunk)
    if r == false or (r == nil and e ~= nil) then
      closed_reason = e or "closed"
      error(CLOSED, 0)
    end
  end
  local ok, err = pcall(function()
    if opts.abort and opts.abort.aborted then closed_reason = opts.abort.reason; error(CLOSED, 0) end
    local res = run_route(self, url)
    result = { status = res.status, title = res.title }
    if opts.on_head then opts.on_head(result) end
    pump(self)
    if res.node then
      -- filled by parts when no async signal it binds is loading: nothing
      -- to stream after the shell (else the whole-HTML path below)
      local st = render.parts_check(self, res)
      if st and not st.wait then
        local fragment = render.parts_fill(self, res, st)
        local signals, browser = snapshot(self, nil, nil, nil, true)
        local head, tail = "", ""
        if opts.document ~= false then head, tail = layout_parts(self, res.title) end
        write(head .. section_open(res) .. fragment .. "</section>" .. snapshot_script(signals, browser))
        if tail ~= "" then write(tail) end
        return
      end
      res.html = tostring(res.node)
    end
    local plan, b, shape = prepare(self, res)
    local fragment = fill(self, res, plan, shape)
    local signals, browser, want = snapshot(self, b, shape)
    self:note_sizes()   -- the next runtime of the app makes its tables this big
    local map = self.signals.map
    -- the boundaries still pending at shell time: the page streams (their
    -- fills follow the shell), so the layout is told (page.stream) and the
    -- default one loads the client with `async` rather than `defer`, which
    -- would run it only once the whole stream has arrived
    local tree, state, pending = plan and boundary_tree(plan), {}, {}   -- state: id -> "pending" | "done"
    for _, node in ipairs(tree and tree.list or {}) do
      local sig = map[node.id]
      if async_signal.is_async(sig) and (sig._status == "loading" or sig._status == "idle") then
        state[node.id] = "pending"
        pending[#pending + 1] = node.id
      end
    end
    local head, tail = "", ""
    if opts.document ~= false then head, tail = layout_parts(self, res.title, #pending > 0) end
    write(head .. section_open(res) .. fragment .. "</section>" .. snapshot_script(signals, browser))
    if not plan then
      if tail ~= "" then write(tail) end
      return
    end
    -- what the browser has: sent[id] = value sent (plain signals) or
    -- status..version (async signals)
    local sent = {}
    local function mark(id, v)
      local sig = map[id]
      if async_signal.is_async(sig) then
        sent[id] = v and (v.status .. ":" .. tostring(v.version)) or (sig._status .. ":" .. sig._version)
      else
        sent[id] = v
      end
    end
    for id, v in pairs(signals) do
      if async_signal.is_async(map[id]) then mark(id) else mark(id, v) end
    end
    -- the signals that changed since they were sent (those registered
    -- since included), plus the forced states; never "_x" ids
    local order = self.signals.order
    local function patch(override)
      local out, any = {}, false
      for i = 1, #order do
        local id = order[i]
        local sig = map[id]
        local o = override and override[id]
        if not public(id) then   -- luacheck: ignore 542
        elseif o then
          out[id] = with_nulls(o); any = true; mark(id, o)
        elseif async_signal.is_async(sig) then
          if sent[id] ~= sig._status .. ":" .. sig._version then
            out[id] = wire_snapshot(sig); any = true; mark(id)
          end
        elseif sig ~= nil and not kernel.is_computed(sig) then
          local v = sig:peek()
          if not rawequal(v, sent[id]) or not want[id] then
            out[id] = v; any = true; mark(id, v); want[id] = true
          end
        end
      end
      return any and out or nil
    end
    local seq = 0   -- patches of this response, numbered from 1 (protocol.md "Streaming")
    -- is the boundary's element in the browser's document now?
    local function visible(node)
      local p = node.parent and tree.by_id[node.parent]
      while p do
        if state[p.id] == "pending" or state[p.id] == "gone" then return false end
        p = p.parent and tree.by_id[p.parent]
      end
      return true
    end
    local function send(id, override)
      local node = tree.by_id[id]
      state[id] = "done"
      if not visible(node) then return end   -- its parent's fill will carry it
      local status = status_of(self, id, override)
      local sub = node.hole.templates[status]
      local inner = sub and scanner.fill(sub, shape_resolver(self, shape, override)) or ""
      -- boundaries inside the other templates are not in the document
      for _, other in ipairs(tree.list) do
        if other.parent == id and other.under ~= status and state[other.id] == "pending" then
          state[other.id] = "gone"
        end
      end
      local chunk = '<template async:fill="' .. escape_attr(id) .. '">' .. inner .. "</template>"
      local p = patch(override)
      if p then
        seq = seq + 1
        chunk = chunk .. '<script type="application/json" async:patch>' ..
          json.encode({ seq = seq, signals = p }, { script = true }) .. "</script>"
      end
      write(chunk)
    end
    if #pending > 0 then
      local left = wait_settled(self, pending, timeout, function(id)
        if state[id] ~= "pending" then return end
        local okf, e = pcall(send, id)
        if not okf then
          local sig = map[id]
          if e == CLOSED then error(e, 0) end
          send(id, { [id] = { status = "error", value = json.null, version = sig._version, loading = false,
            error = { name = "Error", message = tostring(type(e) == "table" and e.message or e),
                      code = "render" } } })
        end
      end, opts.abort)
      for _, id in ipairs(left) do
        if state[id] == "pending" then send(id, time_out(self, { id }, timeout))
        else map[id]:cancel() end   -- no longer in the document: just stop it
      end
    end
    if tail ~= "" then write(tail) end
  end)
  if not ok and err == CLOSED then
    -- the client went away: stop every run still in flight
    local map = self.signals.map
    for _, id in ipairs(self.signals.order) do
      local sig = map[id]
      if async_signal.is_async(sig) and (sig._status == "loading" or sig._status == "idle") then
        pcall(sig.cancel, sig)
      end
    end
    if closed_reason == nil and opts.abort then closed_reason = opts.abort.reason end
    return nil, tostring(closed_reason or "closed")
  end
  write_to(nil)
  if not ok then error(err, 0) end
  return result
end

return _M
