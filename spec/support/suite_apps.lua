--- The apps of the shared HTTP suite (spec/support/http_suite.lua). Any
-- server that runs the suite serves exactly these, mounted as `apps()`
-- returns them, with `public` = the folder `make_public(dir)` filled:
--
--   local suite_apps = require("support.suite_apps")
--   local dir = suite_apps.make_public()          -- a fresh temp folder (or make_public(dir))
--   Async.serve({ apps = suite_apps.apps(), public = dir, env = "production", port = 0 })
--   -- nginx: init_by_lua_block { apps = require("support.suite_apps").apps() }
--   --        and the same folder as `public` (made by the test runner before nginx starts)
--
-- Mounts:
--   "/"      the counter: a page with a Lua handler (increment), server
--            functions (add, nothing, fail, result, echo), a server-only
--            signal (_secret), a computed (doubled), a 404 route
--   "/live"  async signals and streaming boundaries: "/live/" streams two
--            fills (fast at FAST_MS, slow at SLOW_MS); "/live/hang" has a
--            boundary that waits HANG_MS (for the disconnect case)
--   "/admin" a small app under a prefix (its request.prefix and paths)
--
-- `state` records what the apps did, for in-process checks only (a server
-- in another process has its own copy): `state.hang_started`,
-- `state.hang_done` (a hang run that was not aborted), `state.hang_aborted`.
local Async = require("async")

local _M = {}

_M.FAST_MS = 200
_M.SLOW_MS = 600
_M.HANG_MS = 8000
-- the mtime given to every file of public/ (so ETag and Last-Modified are exact)
_M.MTIME = 1700000000

_M.state = { hang_started = 0, hang_done = 0, hang_aborted = 0 }

--- The counter app (mounted at "/").
function _M.counter()
  local app = Async.define_app()
  app:use({
    signal = {
      count = 0,
      step = 1,
      label = "Clicks",
      _secret = "hunter2",
      doubled = Async.computed(function(s) return s:get("count") * 2 end),
    },
    handler = {
      increment = function(self)
        self.signals:update("count", function(c) return c + self.signals:get("step") end)
      end,
      rename = function(self, name) self.signals:set("label", name) end,
      reveal = function(self) return self.signals:get("_secret") end,
      boom = function() error("handler exploded") end,
      nothing = function() end,
      go = function(self) self:redirect("/about") end,
    },
    server = {
      add = function(_, a, b) return a + b end,
      nothing = function() return nil end,
      fail = function() error("db down") end,
      sold_out = function() error({ code = "out-of-stock", message = "Sold out" }, 0) end,
      ["cart.put"] = function(_, id, qty)
        return Async.result({ value = { id = id, qty = qty }, signals = { count = qty } })
      end,
      echo = function(self, ...)
        return { n = select("#", ...), args = { ... }, prefix = self.request.prefix, path = self.request.path,
                 sent = self.signals and self.signals:get("count") or Async.null }
      end,
    },
    partial = {
      counter = function()
        return {
          html = Async.html([[<h1 signal:text="label">Clicks</h1>]] ..
            [[<button type="button" on:click="increment">+</button> ]] ..
            [[<strong signal:text="count">0</strong> <em signal:text="doubled">0</em>]]) {},
          title = "Counter",
        }
      end,
      about = function() return { html = Async.html [[<p>About this counter</p>]] {}, title = "About" } end,
      gone = function() return { html = Async.html [[<p>Gone</p>]] {}, status = 410, title = "Gone" } end,
    },
    route = {
      ["/"] = Async.define_route("counter"),
      ["/about"] = Async.define_route("about"),
      ["/gone"] = Async.define_route("gone"),
    },
  })
  return app
end

--- The streaming app (mounted at "/live").
function _M.live()
  local app = Async.define_app()
  local state = _M.state
  app:use({
    signal = {
      fast = Async.define_async(function(self)
        Async.delay(_M.FAST_MS, self.abort)
        return { msg = "fast done" }
      end),
      slow = Async.define_async(function(self)
        Async.delay(_M.SLOW_MS, self.abort)
        return { msg = "slow done" }
      end),
      hang = Async.define_async(function(self)
        state.hang_started = state.hang_started + 1
        self.abort:on_abort(function() state.hang_aborted = state.hang_aborted + 1 end)
        Async.delay(_M.HANG_MS, self.abort)
        state.hang_done = state.hang_done + 1
        return { msg = "hang done" }
      end),
    },
    partial = {
      live = function()
        return {
          title = "Live",
          html = Async.html([[<h1>Live</h1>]] ..
            [[<div async:boundary="fast"><template async:loading="fast"><p>Loading fast</p></template>]] ..
            [[<template async:ready="fast"><p signal:text="fast.msg"></p></template></div>]] ..
            [[<div async:boundary="slow"><template async:loading="slow"><p>Loading slow</p></template>]] ..
            [[<template async:ready="slow"><p signal:text="slow.msg"></p></template></div>]]) {},
        }
      end,
      hang = function()
        return Async.html([[<div async:boundary="hang"><template async:loading="hang"><p>Waiting</p></template>]] ..
          [[<template async:ready="hang"><p signal:text="hang.msg"></p></template></div>]]) {}
      end,
    },
    route = {
      ["/"] = Async.define_route("live"),
      ["/hang"] = Async.define_route("hang"),
    },
  })
  return app
end

--- The app under a prefix (mounted at "/admin").
function _M.admin()
  local app = Async.define_app()
  app:use({
    signal = { visits = 0 },
    handler = { visit = function(self) self.signals:update("visits", function(v) return v + 1 end) end },
    server = {
      where = function(self) return { prefix = self.request.prefix, path = self.request.path,
                                       full_path = self.request.full_path } end,
    },
    partial = {
      home = function()
        return { html = Async.html [[<p>Admin <b signal:text="visits">0</b></p>]] {}, title = "Admin" }
      end,
      users = function(self)
        return { html = Async.html [[<p>Users at {{ p }}</p>]] { p = self.request.prefix .. self.request.path },
                 title = "Users" }
      end,
    },
    route = { ["/"] = Async.define_route("home"), ["/users"] = Async.define_route("users") },
  })
  return app
end

--- The mounts: { ["/"] = counter, ["/live"] = live, ["/admin"] = admin },
-- fresh apps each call.
function _M.apps()
  return { ["/"] = _M.counter(), ["/live"] = _M.live(), ["/admin"] = _M.admin() }
end

-- ===== public/ =====

-- the files of public/ (path -> bytes)
_M.FILES = {
  ["hello.txt"] = "hello, world\n",
  ["style.css"] = "body { color: #333; }\n" .. ("main { margin: 0 auto; max-width: 40rem; }\n"):rep(40),
  ["app.js"] = "console.log('static');\n",
  ["data.json"] = '{"ok":true}\n',
  ["logo.png"] = "\137PNG\r\n\26\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\8\6\0\0\0\31\21\196\137",
  ["blob.bin"] = "\0\1\2\3",
  ["page.html"] = "<!doctype html><title>static</title><p>static page</p>\n",
  ["sub/deep.txt"] = "deep file\n",
  ["a b.txt"] = "space in the name\n",
  [".env"] = "SECRET=1\n",
}
-- outside public/ (the symlinks' targets)
_M.OUTSIDE = "top secret outside public\n"

local function sh(cmd)
  local ok = os.execute(cmd)
  if ok ~= 0 and ok ~= true then error("suite_apps: command failed: " .. cmd, 2) end
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

--- Makes the public folder: `root`/public with FILES (mtime MTIME), a file
-- outside it (`root`/outside.txt), a symlink to that file
-- (public/escape.txt), a symlink to the folder above (public/up -> ..) and
-- a symlink that stays inside (public/inside.txt -> hello.txt). `root`
-- defaults to a fresh temp folder. Returns the public folder's path and
-- `root` (remove it with remove_public(root)).
function _M.make_public(root)
  if root == nil then
    local p = assert(io.popen("mktemp -d /tmp/asyncrt-suite.XXXXXX"))
    root = p:read("*l")
    p:close()
  end
  local pub = root .. "/public"
  sh("mkdir -p '" .. pub .. "/sub'")
  for name, bytes in pairs(_M.FILES) do write(pub .. "/" .. name, bytes) end
  write(root .. "/outside.txt", _M.OUTSIDE)
  sh("ln -sfn '" .. root .. "/outside.txt' '" .. pub .. "/escape.txt'")
  sh("ln -sfn .. '" .. pub .. "/up'")
  sh("ln -sfn hello.txt '" .. pub .. "/inside.txt'")
  sh("touch -h -d @" .. _M.MTIME .. " '" .. pub .. "'/* '" .. pub .. "'/.env '" .. pub .. "/sub/deep.txt'")
  return pub, root
end

--- Removes what make_public made.
function _M.remove_public(root)
  if type(root) == "string" and root:match("^/tmp/asyncrt%-suite%.") then sh("rm -rf '" .. root .. "'") end
end

return _M
