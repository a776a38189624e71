-- Async.serve on loopback, in this process, against the shared HTTP suite
-- (spec/support/http_suite.lua: exact requests, exact answers for every
-- endpoint, limit and bad input; the same rows run against nginx). The
-- server's log entries are collected and checked per case, and as a whole
-- at the end. Tagged #loop: runs under build/asyncrt:
--   busted --lua=build/asyncrt --tags=loop spec/serve_http_spec.lua
local Async = require("async")
local loop = require("async.loop")
local suite = require("support.http_suite")
local suite_apps = require("support.suite_apps")
local support = require("support.http")

describe("Async.serve: the shared HTTP suite #loop", function()
  local srv, root
  local entries = {}

  setup(function()
    loop.set_loop(loop.luv_loop())
    loop.set_resume_hook(nil)
    local pub
    pub, root = suite_apps.make_public()
    srv = assert(Async.serve({ apps = suite_apps.apps(), public = pub, env = "production", host = "127.0.0.1",
                               port = 0, log = function(e) entries[#entries + 1] = e end }))
  end)

  teardown(function()
    if srv then
      local closed = false
      srv:close(function() closed = true end)
      support.wait_until(function() return closed end, 5000, "the server to close")
    end
    suite_apps.remove_public(root)
  end)

  suite.busted(function() return "127.0.0.1", srv.port end, {
    log_entries = entries,
    state = suite_apps.state,
    -- collected nodes are freed by a full collection (as in app_leak_spec.lua)
    live_nodes = function()
      Async.collect_garbage()
      Async.collect_garbage()
      return Async.core_stats().live_nodes
    end,
  })
end)
