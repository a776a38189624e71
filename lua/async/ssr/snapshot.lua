--- The page snapshot (protocol.md "SSR output"): the JSON the browser client
-- activates from, written into an async:snapshot script, and read back.
local json = require("async.app.json")
local kernel = require("async.kernel.graph")
local task = require("async.kernel.task")
local registry = require("async.app.registry")
local errors = require("async.kernel.errors")

local type, pairs = type, pairs
local sub, byte = string.sub, string.byte
local UNDERSCORE = 95   -- "_": a byte compare, no one-character string made per id
local is_async, is_signal, wire_snapshot = task.is_async, kernel.is_signal, registry.wire_snapshot

-- an override state with value and error present (json.null when absent)
local function with_nulls(o)
  local c = {}
  for k, v in pairs(o) do c[k] = v end
  if c.value == nil then c.value = json.null end
  if c.error == nil then c.error = json.null end
  return c
end

local _M = {}

local ROUTER_IDS = { "router.url", "router.path", "router.params", "router.query", "router.route",
                     "router.pending", "router.error" }
_M.ROUTER_IDS = ROUTER_IDS

-- ===== snapshots =====

--- The page snapshot (protocol.md "SSR output"): every signal of the
-- request's runtime whose id does not start with "_", computeds excepted
-- (they are derived), whatever wrote it (the partial, its table form's
-- `signals`, a component, an async run); async signals in their wire
-- snapshot form (value and error always present). `override` replaces
-- async states (timeouts, a boundary that failed to render). Returns the
-- signals, the browser cache, and the set of ids sent (unless no_sent).
function _M.snapshot(rt, _, _, override, no_sent)
  local sigs = rt.signals
  local map, order = sigs.map, sigs.order
  local out, sent = {}, (not no_sent) and {} or nil
  for i = 1, #order do
    local id = order[i]
    if byte(id, 1) ~= UNDERSCORE then
      local sig = map[id]
      if is_async(sig) then
        local o = override and override[id]
        if o then
          o = with_nulls(o)
        else
          o = wire_snapshot(sig)
        end
        out[id] = o
        if sent then sent[id] = true end
      elseif is_signal(sig) then
        out[id] = sig:peek()
        if sent then sent[id] = true end
      end
    end
  end
  return out, rt.cache.browser:snapshot(), sent
end

_M.with_nulls = with_nulls

--- Is `id` one the snapshot carries (not "_x")?
function _M.public(id)
  return sub(id, 1, 1) ~= "_"
end

function _M.script(signals, browser)
  return '<script type="application/json" async:snapshot>' ..
    json.encode({ signals = signals, cache = { browser = browser } }, { script = true }) .. "</script>"
end


-- ===== reading snapshots back =====

--- Reads every async:snapshot script of `html` and merges them (later ones
-- win per signal and per cache key): { signals = {}, cache = { browser = {} } }.
function _M.read_snapshot(html, opts)
  if type(html) ~= "string" then errors.argument("read_snapshot expects an HTML string, got " .. type(html)) end
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
        errors.raise("invalid-snapshot",
          "Could not parse Async snapshot: " .. tostring(err or "expected a JSON object"))
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
