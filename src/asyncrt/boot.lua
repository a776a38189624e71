-- asyncrt boot: the Lua half of the interpreter, embedded into the binary.
-- Called once by src/asyncrt/rt.c with (rt, exe_path, noenv); returns the
-- table the C side drives:
--   setup()              module paths
--   setup_loop(uv)       when luv is first required: signal watchers
--                        (internal, unref'd)
--   close_all(keep)      close every handle of the loop (keep: spare internal ones)
--   repl(progname)       the interactive prompt, read through the loop
-- Every handle of the loop must be a luv handle: uv.walk asserts on others.
local rt, exe, noenv = ...
local uv  -- luv, once required (setup_loop)

local io, package, tostring, type = io, package, tostring, type
local select, unpack = select, unpack

local M = {}
local internal = setmetatable({}, { __mode = "k" })

-- Is h one of asyncrt's own handles (signal watchers, shutdown timer)?
function M.is_internal(h)
  return internal[h] == true
end

-- Closes every handle that is not already closing.
function M.close_all(keep_internal)
  uv.walk(function(h)
    if not h:is_closing() and not (keep_internal and internal[h]) then
      h:close()
    end
  end)
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- Inserts `ours` into `cur`, the path LuaJIT built from the environment
-- variable `var`: unset -> ours first (before "./?.lua" and the defaults);
-- "user;;rest" -> after the user's entries, before the defaults; set without
-- ";;" -> last (the user chose the path, ours is only a fallback).
local function insert_path(cur, ours, var)
  local env = not noenv and os.getenv(var) or nil
  if env == nil then return ours .. ";" .. cur end
  local user = env:match("^(.-);;")
  if user == nil then return cur .. ";" .. ours end
  local at = #user + 1  -- the ";" that ends the user's part (or starts the path)
  return cur:sub(1, at) .. ours .. ";" .. cur:sub(at + 1)
end

-- Module paths from the executable's location: <root>/build/asyncrt (build
-- tree: <root>/lua, <root>/build) or <prefix>/bin/asyncrt (installed tree:
-- <prefix>/share/lua/5.1, <prefix>/lib/lua/5.1).
function M.paths(exe_path)
  local dir = exe_path:match("^(.*)/[^/]*$") or "."
  local root = dir:match("^(.*)/[^/]*$") or "."
  if root == "" then root = "/" end
  local lpath, cpath
  if dir:match("/build$") and exists(root .. "/lua/async/init.lua") then
    lpath = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua"
    cpath = dir .. "/?.so"
  else
    local share, lib = root .. "/share/lua/5.1", root .. "/lib/lua/5.1"
    lpath = share .. "/?.lua;" .. share .. "/?/init.lua"
    cpath = lib .. "/?.so"
  end
  return lpath, cpath
end

local shutting_down = false

-- First SIGINT/SIGTERM seen by the loop: run the shutdown hooks of
-- async.loop; with none, close everything now; with some, give them
-- rt.shutdown_ms() to finish before everything is closed.
local function on_signal(signame)
  if shutting_down then return end
  shutting_down = true
  rt.note_signal(signame)
  local n = 0
  local loop = package.loaded["async.loop"]
  if type(loop) == "table" and type(loop.shutdown) == "function" then
    n = loop.shutdown(signame) or 0
  end
  if n == 0 then
    M.close_all(true)
    return
  end
  local t = uv.new_timer()
  internal[t] = true
  t:start(rt.shutdown_ms(), 0, function()
    io.stderr:write("asyncrt: shutdown hooks did not finish in ", rt.shutdown_ms(), " ms; closing\n")
    M.close_all(true)
  end)
  t:unref()
end

function M.setup()
  local lpath, cpath = M.paths(exe)
  package.path = insert_path(package.path, lpath, "LUA_PATH")
  package.cpath = insert_path(package.cpath, cpath, "LUA_CPATH")
end

function M.setup_loop(luv)
  uv = luv
  for _, name in ipairs({ "sigint", "sigterm" }) do
    local h = uv.new_signal()
    internal[h] = true
    h:start(name, on_signal)
    h:unref()
  end
end

local function report(progname, msg)
  io.stderr:write(progname, ": ", tostring(msg), "\n")
  io.stderr:flush()
end

-- Evaluates one REPL chunk; returns true when it needs more lines.
local function eval(progname, code)
  local f, err = loadstring("return " .. code, "=stdin")
  if not f then f, err = loadstring(code, "=stdin") end
  if not f then
    if err:find("<eof>", 1, true) and err:find("'<eof>'$") then return true end
    report(progname, err)
    return false
  end
  local function pack(...) return select("#", ...), { ... } end
  local n, r = pack(xpcall(f, debug.traceback))
  if not r[1] then
    report(progname, r[2])
  elseif n > 1 then
    print(unpack(r, 2, n))
  end
  return false
end

-- The REPL reads stdin through a luv tty so timers and I/O started from it
-- run while it waits for the next line.
function M.repl(progname)
  require("luv")
  local tty = uv.new_tty(0, true)
  local pending, buf = "", ""
  local function prompt()
    io.stdout:write(buf == "" and "> " or ">> ")
    io.stdout:flush()
  end
  prompt()
  tty:read_start(function(err, data)
    if err or not data then
      io.stdout:write("\n")
      if not tty:is_closing() then tty:close() end
      return
    end
    pending = pending .. data
    while true do
      local nl = pending:find("\n", 1, true)
      if not nl then break end
      local line = pending:sub(1, nl - 1)
      pending = pending:sub(nl + 1)
      if buf == "" and line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
      local code = buf .. line
      if eval(progname, code) then buf = code .. "\n" else buf = "" end
    end
    prompt()
  end)
end

-- package.loaded.asyncrt: what scripts may ask the interpreter.
M.module = {
  version = rt.version,
  luv_version = rt.luv_version,
  is_internal = M.is_internal,
  shutdown_ms = rt.shutdown_ms,
}

return M
