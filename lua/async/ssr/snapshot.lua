--- The page snapshot (protocol.md "SSR output"): the JSON the browser client
-- activates from, written into an async:snapshot script, and read back.
local json = require("async.app.json")

local type, error, pairs, ipairs = type, error, pairs, ipairs

local _M = {}

local ROUTER_IDS = { "router.url", "router.path", "router.params", "router.query", "router.route",
                     "router.pending", "router.error" }
_M.ROUTER_IDS = ROUTER_IDS

-- ===== snapshots =====

--- The ids of the signals the page needs: bound, named in chains, boundaries,
-- router.*, and client state (opts.client_signals, rt:client_signal).
local function wanted(rt, b, shape)
  local sigs = rt.signals
  local want = {}
  if shape then
    local roots = shape.roots
    for i = 1, #roots do want[roots[i]] = true end
  else
    for _, path in ipairs(b and b.signals or {}) do
      local id = sigs:resolve(path)
      if id then want[id] = true end
    end
  end
  for _, id in ipairs(b and b.boundaries or {}) do
    if sigs:has(id) then want[id] = true end
  end
  for _, id in ipairs(ROUTER_IDS) do if sigs:has(id) then want[id] = true end end
  for _, id in ipairs(rt.opts.client_signals or {}) do if sigs:has(id) then want[id] = true end end
  if rt.client_signals then for id in pairs(rt.client_signals) do if sigs:has(id) then want[id] = true end end end
  return want
end

--- The snapshot of what the page needs; `override` replaces async states.
function _M.snapshot(rt, b, shape, override)
  local want = wanted(rt, b, shape)
  local out = rt.signals:snapshot(function(id) return want[id] end)
  if override then for id, o in pairs(override) do if want[id] then out[id] = o end end end
  return out, rt.cache.browser:snapshot(), want
end

function _M.script(signals, browser)
  return '<script type="application/json" async:snapshot>' ..
    json.encode({ signals = signals, cache = { browser = browser } }, { script = true }) .. "</script>"
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
