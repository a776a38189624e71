-- `make bench`: the js-reactivity-benchmark shapes on asyncrt (this LuaJIT
-- process, every case in one process on purpose, as a server hosts many apps)
-- and on alien-signals and @preact/signals-core (one node process each).
--
--   luajit bench/run.lua [options] [filter[,filter...]] ...
--     filter       run only the cases whose name contains one of these (any case)
--     --lua-only   skip the node peers
--     --node-only  skip asyncrt
--     --jit-flush  jit.flush() before each asyncrt case (diagnosis: the
--                  numbers each case gets with a fresh trace cache)
--     --list       print the case names and exit
--
-- Timing protocol, the same on both sides (that of the original): each kairo,
-- molBench and dynamic case is warmed up (3 runs) and then the BEST of 5 timed
-- runs is reported; cellx reports the sum of 10 fresh builds (read, batch
-- write, read); sBench cases run 3 warm-ups at n/100 and then one timed run.
local script_dir = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = script_dir .. "/?.lua;" .. script_dir .. "/kernel/?.lua;" .. package.path

local bench = require("cases")

local opts = { filters = {} }
for _, a in ipairs(arg or {}) do
  if a == "--lua-only" then opts.lua_only = true
  elseif a == "--node-only" then opts.node_only = true
  elseif a == "--jit-flush" then opts.jit_flush = true
  elseif a == "--list" then opts.list = true
  elseif a == "-h" or a == "--help" then
    io.write("usage: luajit bench/run.lua [--lua-only] [--node-only] [--jit-flush] [--list] [filter[,filter]]\n")
    os.exit(0)
  elseif a:sub(1, 2) == "--" then
    io.stderr:write("bench: unknown option " .. a .. "\n")
    os.exit(2)
  else
    for f in a:gmatch("[^,]+") do opts.filters[#opts.filters + 1] = f end
  end
end

local function selected(name)
  if #opts.filters == 0 then return true end
  local lname = name:lower()
  for _, f in ipairs(opts.filters) do
    if lname:find(f:lower(), 1, true) then return true end
  end
  return false
end

local cases = {}
for _, c in ipairs(bench.cases) do
  if selected(c.name) then cases[#cases + 1] = c end
end
if opts.list then
  for _, c in ipairs(bench.cases) do print(c.name) end
  os.exit(0)
end
if #cases == 0 then
  io.stderr:write("bench: no case matches the filter\n")
  os.exit(2)
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function out(fmt, ...)
  io.write(fmt:format(...))
  io.flush()
end

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "n/a" end
  local l = f:read("*l") or ""
  f:close()
  return l:match("^(%S+ %S+ %S+)") or "n/a"
end
out("load average at start: %s (timings are only comparable on an otherwise idle machine)\n", loadavg())

-- results[framework][case name] = { ms = number|nil, fail = {msgs} }
local results = { asyncrt = {}, alien = {}, preact = {} }
local notes = {}

------------------------------------------------------------ asyncrt (Lua)
local fw
if not opts.node_only then
  local ok, adapter = pcall(require, "adapter_asyncrt")
  if ok then
    fw = adapter
  else
    notes[#notes + 1] = "asyncrt: require(\"async\") failed, Lua side skipped: "
      .. tostring(adapter):gsub("\n.*", "")
  end
end

if fw then
  out("asyncrt (%s%s), %d cases in this process\n", jit and jit.version or _VERSION,
    opts.jit_flush and ", jit.flush() before each case" or "", #cases)
  for _, c in ipairs(cases) do
    if opts.jit_flush and jit then jit.flush() end
    bench.take_failures()
    local ok, ms = pcall(c.run, fw)
    local fails = bench.take_failures()
    if not ok then
      fails[#fails + 1] = "error: " .. tostring(ms)
      ms = nil
      pcall(fw.cleanup)
    end
    results.asyncrt[c.name] = { ms = ms, fail = fails }
    for _, f in ipairs(fails) do out("  FAIL %s: %s\n", c.name, f) end
    out("  %-28s %10s\n", c.name, ms and ("%.2f ms"):format(ms) or "-")
  end
end

---------------------------------------------------------------- the peers
local function command_ok(cmd)
  local r = os.execute(cmd .. " >/dev/null 2>&1")
  return r == true or r == 0
end

local node_dir = script_dir .. "/node"

local function installed(pkg, version)
  local f = io.open(node_dir .. "/node_modules/" .. pkg .. "/package.json")
  if not f then return false end
  local text = f:read("*a")
  f:close()
  return text:find('"version"%s*:%s*"' .. version:gsub("%.", "%%.") .. '"') ~= nil
end

local function peers_ready()
  if not command_ok("command -v node") then
    notes[#notes + 1] = "node not found: the JS peers are skipped (install node and npm to compare)"
    return false
  end
  if installed("alien-signals", "3.2.1") and installed("@preact/signals-core", "1.14.5") then
    return true
  end
  if not command_ok("command -v npm") then
    notes[#notes + 1] = "npm not found: the JS peers are skipped"
    return false
  end
  out("installing the JS peers: npm install --prefix %s\n", node_dir)
  if not command_ok("npm install --prefix " .. shell_quote(node_dir) .. " --no-audit --no-fund") then
    notes[#notes + 1] = "npm install failed: the JS peers are skipped"
    return false
  end
  return true
end

local function run_peer(name)
  local filter = ""
  if #opts.filters > 0 then filter = " " .. shell_quote(table.concat(opts.filters, ",")) end
  out("%s (node, one process)\n", name)
  local p = io.popen("node --expose-gc " .. shell_quote(node_dir .. "/run.mjs") .. " " .. name
    .. filter .. " 2>&1")
  local fails = {}
  for line in p:lines() do
    local kind, cname, rest = line:match("^(%u+)\t([^\t]*)\t(.*)$")
    if kind == "FAIL" then
      fails[cname] = fails[cname] or {}
      table.insert(fails[cname], rest)
      out("  FAIL %s: %s\n", cname, rest)
    elseif kind == "CASE" then
      local ms = tonumber((rest:match("^([^\t]*)")))
      if ms and ms ~= ms then ms = nil end
      results[name][cname] = { ms = ms, fail = fails[cname] or {} }
      out("  %-28s %10s\n", cname, ms and ("%.2f ms"):format(ms) or "-")
    else
      out("  node: %s\n", line)
    end
  end
  p:close()
end

if not opts.lua_only and peers_ready() then
  run_peer("alien")
  run_peer("preact")
end

------------------------------------------------------------------- table
local function cell(r)
  if not r or not r.ms then return "-" end
  return ("%.2f%s"):format(r.ms, #r.fail > 0 and "!" or "")
end

out("\n%-28s %12s %12s %12s %9s\n", "case", "asyncrt ms", "alien ms", "preact ms", "ours/alien")
local log_sum, n_ratio, over = 0, 0, {}
for _, c in ipairs(cases) do
  local a, l, p = results.asyncrt[c.name], results.alien[c.name], results.preact[c.name]
  local ratio = "-"
  if a and a.ms and l and l.ms and a.ms > 0 and l.ms > 0 and #a.fail == 0 and #l.fail == 0 then
    local r = a.ms / l.ms
    ratio = ("%.2f"):format(r)
    log_sum = log_sum + math.log(r)
    n_ratio = n_ratio + 1
    if r > 1.5 then over[#over + 1] = c.name end
  end
  out("%-28s %12s %12s %12s %9s\n", c.name, cell(a), cell(l), cell(p), ratio)
end
if n_ratio > 0 then
  out("\ngeometric mean asyncrt/alien-signals over %d cases: %.3f (goal: < 1)\n", n_ratio,
    math.exp(log_sum / n_ratio))
  out("cases above 1.5x alien-signals: %d%s\n", #over,
    #over > 0 and (" (" .. table.concat(over, ", ") .. ")") or "")
else
  out("\ngeometric mean: n/a (need asyncrt and alien-signals results)\n")
end
out("(\"!\" marks a case whose asserts failed; those are left out of the ratios)\n")

------------------------------------------------------------------ memory
-- Bytes per node and per edge of the C core: the sizes the core reports, and
-- the live counts measured on a graph of 10,000 signals and 10,000 computeds
-- that each read 4 of them (expect +20,000 nodes, +40,000 links).
local function memory_report()
  if not fw then return end
  local stats = fw.stats
  if not (stats and stats()) then
    out("\nC core bytes per node: n/a, per edge: n/a (Async.core_stats() is absent)\n")
    return
  end
  -- The probe graph, built twice: the first build grows the kernel's
  -- id-indexed tables from wherever the earlier cases left them (after a
  -- peak they are rebuilt to fit: docs/kernel.md "Ids and the tables after a
  -- peak"), so its figure includes their slots and doubling slack; the
  -- second reuses the slots the first freed (closures, handles and values).
  local N = 10000
  -- collections until the heap stops shrinking: what the last build left
  -- (its handles, closures and freed nodes' values) is gone before a count
  -- is taken, so a build's figure is not lowered by the last one's garbage.
  -- The traces go first: one compiled in a build can hold that build's
  -- tables as constants (its nodes then stay live, and the next build takes
  -- new ids and grows the id-indexed tables: 252 bytes per node instead of
  -- 199 in one process of three)
  local function settle()
    if jit then jit.flush() end
    local before = math.huge
    for round = 1, 10 do
      fw.collect()
      collectgarbage("collect")
      local now = collectgarbage("count")
      if round >= 3 and now >= before then return end
      before = now
    end
  end
  local function probe()
    settle()
    local s0 = stats()
    local lua0 = collectgarbage("count")
    local keep = {}
    fw.build(function()
      local sig = {}
      for i = 1, N do sig[i] = fw.signal(i) end
      for i = 1, N do
        local a, b, c, d = sig[i], sig[i % N + 1], sig[(i + 1) % N + 1], sig[(i + 2) % N + 1]
        local comp = fw.computed(function() return a() + b() + c() + d() end)
        comp()
        keep[i] = comp
      end
      keep.sig = sig
    end)
    settle()
    local s1 = stats()
    local lua1 = collectgarbage("count")
    assert(#keep == N)
    fw.cleanup()
    return s0, s1, (lua1 - lua0) * 1024 / (2 * N)
  end
  -- the same build with numbers for signals and no kernel: what the
  -- probe's own closures (four upvalues each) and arrays take
  local function baseline()
    settle()
    local lua0 = collectgarbage("count")
    local keep, sig = {}, {}
    for i = 1, N do sig[i] = i end
    for i = 1, N do
      local a, b, c, d = sig[i], sig[i % N + 1], sig[(i + 1) % N + 1], sig[(i + 2) % N + 1]
      keep[i] = function() return a + b + c + d end
    end
    keep.sig = sig
    settle()
    local lua1 = collectgarbage("count")
    assert(#keep == N)
    return (lua1 - lua0) * 1024 / (2 * N)
  end
  local s0, s1, first = probe()
  local _, _, second = probe()
  local base = baseline()
  local dn = (s1.live_nodes or 0) - (s0.live_nodes or 0)
  local dl = (s1.live_links or 0) - (s0.live_links or 0)
  local function per(field, delta)
    local v0, v1 = s0[field], s1[field]
    if type(v1) ~= "number" then return nil end
    if v1 ~= v0 and delta > 0 then return (v1 - v0) / delta end -- a running total
    return v1 -- a per-item size
  end
  local nb, lb = per("node_bytes", dn), per("link_bytes", dl)
  out("\nC core: %s bytes per node, %s bytes per edge (goal: <= 64 and <= 48)\n",
    nb and ("%g"):format(nb) or "n/a", lb and ("%g"):format(lb) or "n/a")
  out("  probe graph: +%d live nodes, +%d live links (expected +%d, +%d)\n", dn, dl, 2 * N, 4 * N)
  out("  Lua heap for the probe: %.0f bytes per node built on the tables as the cases left them"
    .. " (their id slots grow), %.0f built again (closures, handles and values)\n", first, second)
  out("  of which the probe's own closures and arrays (the same build, numbers for signals, no kernel):"
    .. " %.0f; the kernel's handles, values and id slots: %.0f bytes per node\n", base, second - base)
end
memory_report()

out("load average at end: %s\n", loadavg())
for _, n in ipairs(notes) do out("note: %s\n", n) end

local failed = 0
for _, fwname in ipairs({ "asyncrt", "alien", "preact" }) do
  for _, r in pairs(results[fwname]) do
    if #r.fail > 0 then failed = failed + 1 end
  end
end
if failed > 0 then
  out("%d case run(s) failed their asserts\n", failed)
  os.exit(1)
end
