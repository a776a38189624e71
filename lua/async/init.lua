--- asyncrt: `local Async = require("async")`.
-- The public facade (lua-api.md): the default app hub, carrying every helper
-- function. This is the only module that assembles the layers
-- (docs/architecture.md):
--
--   kernel <- loop <- app <- html <- ssr <- server <- transport
--
-- Each name below comes from the layer that owns it; nothing here holds
-- state of its own except the default hub.
local kernel = require("async.kernel")
local loop = require("async.loop")
local hub_mod = require("async.app.hub")
local runtime = require("async.app.runtime")
local cache = require("async.app.cache")
local json = require("async.app.json")
local html = require("async.html.template")
local component = require("async.html.component")
local ssr = require("async.ssr")

local type, error, pairs, tostring, pcall, rawget, tonumber = type, error, pairs, tostring, pcall, rawget, tonumber

local _M = {}

-- kernel primitives
for _, name in ipairs({ "signal", "computed", "effect", "scope", "batch", "transaction", "untrack", "flush",
                        "on_cleanup", "is_signal", "is_computed", "async_signal", "is_async", "resume",
                        "create_scheduler", "abort_token", "is_abort", "core_stats", "collect_garbage" }) do
  _M[name] = kernel[name]
end
_M.errors = kernel.errors
local errors = kernel.errors

-- loops and waiting (luv is loaded only when a luv loop is first needed)
_M.delay = loop.delay
_M.await = loop.await
_M.manual_loop = loop.manual_loop
_M.ngx_loop = loop.ngx_loop
_M.get_loop = loop.get_loop
_M.set_loop = loop.set_loop
_M.now = loop.now

-- templates
_M.html = html.html
_M.raw = html.raw
_M.escape = html.escape

-- declarations
_M.define_route = hub_mod.define_route
_M.define_component = component.define_component
_M.define_cache = cache.define
_M.result = hub_mod.result
_M.null = json.null
_M.json = json
_M.read_snapshot = ssr.read_snapshot
_M.create_app = runtime.create_app

--- An isolated hub with the same :use as Async.use; its runtimes render with
-- the ssr layer.
function _M.define_app(decls)
  local ok, app = pcall(hub_mod.define_app, decls, { ssr = ssr })
  if not ok then error(app, 2) end
  return app
end

--- Declares an async signal for a hub (instantiated per runtime, never run here).
function _M.define_async(fn, opts)
  if type(fn) ~= "function" then errors.argument("define_async expects a function, got " .. type(fn)) end
  return { __async_decl = true, fn = fn, opts = opts }
end

-- the default hub
local hub = hub_mod.define_app(nil, { ssr = ssr })
_M.hub = hub
_M.registry = hub_mod.inspector(hub)

--- Registers declarations on the default hub: use({ kind = map, ... }) or
-- use(kind, map); before or after a runtime exists (see lua-api.md).
function _M.use(kind, map)
  if type(kind) == "table" and map == nil then
    for k, m in pairs(kind) do
      if kernel.is_signal(m) or kernel.is_computed(m) or kernel.is_async(m) then
        errors.argument("Async.use: pass { signal = { id = value } }, got a signal under '" .. tostring(k) .. "'")
      end
    end
  end
  local ok, err = pcall(hub.use, hub, kind, map)
  if not ok then error(err, 2) end
  return _M
end

-- ===== serving =====

-- options of Async.serve that belong to the transport (the rest go to the
-- request core, async.server.core)
local TRANSPORT_OPTS = { host = true, port = true, timeouts = true, high_water = true, backlog = true }

--- Serves apps over HTTP/1.1 on the luv loop (lua-api.md "Serving"); returns
-- once listening: { port =, host =, url =, close = fn } or nil, err (the
-- address could not be bound). opts: those of the request core
-- (docs/endpoints.md: app | apps, public, root, env, layout, csp, limits,
-- log, ...) and of the transport (docs/http.md: host, port, timeouts, ...).
-- `public` relative paths are taken from the calling script's folder.
function _M.serve(opts)
  if type(opts) ~= "table" then errors.argument("Async.serve expects an options table, got " .. type(opts)) end
  local core = require("async.server.core")
  local transport = require("async.transport.luv")
  local copts, topts = {}, {}
  for k, v in pairs(opts) do
    if TRANSPORT_OPTS[k] then topts[k] = v else copts[k] = v end
  end
  if copts.root == nil and type(copts.public) == "string" and copts.public:sub(1, 1) ~= "/" then
    local src = debug.getinfo(2, "S").source
    copts.root = src:sub(1, 1) == "@" and (src:sub(2):match("^(.*)/[^/]*$") or ".") or "."
  end
  local ok, handle = pcall(core.new, copts)
  if not ok then error(handle, 2) end
  local log = copts.log
  topts.limits = copts.limits
  topts.error_response = core.error_response
  -- the core logs every request it answers; the transport only those it
  -- refused before the core saw them (malformed, too large, timed out)
  if log ~= nil and log ~= false then
    local user = type(log) == "function" and log or nil
    topts.log = function(entry)
      if not entry.refused then return end
      if user then return user(entry) end
      io.stderr:write(string.format('%s "%s %s" %d %d %dms refused %s\n', tostring(entry.remote or "-"),
        tostring(entry.method or "-"), tostring(entry.path or "-"), entry.status, entry.bytes or 0,
        entry.ms or 0, tostring(entry.error or "")))
    end
  end
  topts.host = topts.host or "127.0.0.1"
  topts.port = topts.port or 8080
  local srv, err = transport.listen(topts, handle)
  if not srv then return nil, err end
  return srv
end

-- Is the caller of Async.main the script being run? `return Async.main(app)`
-- is a tail call, so the app file's own frame is gone: the script being run
-- has no Lua frame above it (asyncrt and luajit call it from C), while a
-- file loaded by dofile/require/a spec has its loader's chunk above (with
-- dofile's or require's C frame between: the gallery, itself the script,
-- loads the examples' files with dofile). Without a tail call the script's
-- own chunk is the frame right above.
local function called_from_main_script()
  local script = rawget(_G, "arg") and _G.arg[0]
  if type(script) ~= "string" then return false end
  local lua_frames, first, first_level = 0, nil, nil
  for level = 3, 200 do
    local info = debug.getinfo(level, "S")
    if info == nil then break end
    if info.what ~= "C" then
      lua_frames = lua_frames + 1
      if first == nil then first, first_level = info.source, level end
    end
  end
  if lua_frames == 0 then return true end
  local function norm(p) return (p:gsub("^@", ""):gsub("^%./", ""):gsub("/%./", "/")) end
  return lua_frames == 1 and first_level == 3 and norm(first) == norm(script)   -- not a tail call
end

--- Ends an app file: `return Async.main(app, opts)`. When the file is the
-- script being run (`asyncrt examples/counter/app.lua`) it serves the app
-- (Async.serve with HOST and PORT from the environment, default
-- 127.0.0.1:8080, and `public` relative to the file) and prints the URL;
-- when the file is loaded by something else (a gallery, a spec) it only
-- returns the app. opts are Async.serve's (opts.apps mounts more apps).
-- Either way the app keeps them as `app.serve_opts`, so whoever loads the
-- file can mount the app with them (Async.mount).
function _M.main(app, opts)
  if opts ~= nil and type(opts) ~= "table" then
    errors.argument("Async.main: opts must be a table of Async.serve options, got " .. type(opts))
  end
  if type(app) == "table" then app.serve_opts = opts or {} end
  if not called_from_main_script() then return app end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.apps == nil then o.app = o.app or app end
  o.host = o.host or os.getenv("HOST") or "127.0.0.1"
  o.port = o.port or tonumber(os.getenv("PORT") or "") or 8080
  if o.log == nil then o.log = true end
  if o.root == nil then o.root = _G.arg[0]:match("^(.*)/[^/]*$") or "." end
  local srv, err = _M.serve(o)
  if not srv then
    io.stderr:write("asyncrt: cannot listen on ", o.host, ":", tostring(o.port), ": ", tostring(err), "\n")
    os.exit(1)
  end
  print("asyncrt: serving " .. srv.url .. "/")
  io.stdout:flush()
  loop.on_shutdown(function() srv:close() end)
  return app
end

--- A mount for Async.serve's `apps` (docs/endpoints.md "Mounts"):
-- `{ app = app, public =, root =, layout =, runtime =, title =, head =,
-- cache = }` from the options the app's file gave Async.main
-- (app.serve_opts; those that are not a mount's, such as host or port,
-- are left out), `extra` over them. A relative `public` is relative to
-- `root`: give the app file's folder, which only its loader knows:
--   apps["/counter"] = Async.mount(dofile(dir .. "/app.lua"), { root = dir })
function _M.mount(app, extra)
  if hub_mod.App ~= getmetatable(app) and not (type(app) == "table" and app.hub) then
    errors.argument("Async.mount expects an app made by Async.define_app(), got " .. type(app))
  end
  if extra ~= nil and type(extra) ~= "table" then
    errors.argument("Async.mount: extra must be a table of mount options, got " .. type(extra))
  end
  local keys = require("async.server.core").MOUNT_KEYS
  local m = {}
  for k, v in pairs(app.serve_opts or {}) do
    if keys[k] then m[k] = v end
  end
  for k, v in pairs(extra or {}) do m[k] = v end
  m.app = app
  return m
end

--- A runtime of the default hub (opts as create_app's).
function _M.start(opts)
  local ok, rt = pcall(runtime.create_app, hub, opts)
  if not ok then error(rt, 2) end
  return rt
end

return _M
