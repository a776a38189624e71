-- nginx (require("async.ngx").handle) against the shared HTTP suite
-- (spec/support/http_suite.lua): the rows Async.serve passes in
-- spec/serve_http_spec.lua, unchanged, over real sockets, with 2 workers,
-- and no [error], [alert] or [crit] in nginx's error log after any row but
-- those the row causes on purpose. nginx refuses too-large bodies and
-- header blocks itself; `error_page` hands them to async.ngx.refused, which
-- answers the bytes the luv transport does. Skipped rows say why.
local nginx = require("support.nginx")
local suite = require("support.http_suite")
local suite_apps = require("support.suite_apps")
local http = require("support.http")

local describe_ngx = nginx.available() and describe or pending

-- the luv transport's own refusals of malformed HTTP: nginx's parser
-- answers those with its own 400 page
local NGINX_PARSER = "nginx parses HTTP itself and answers malformed requests with its own 400 page"
-- paths nginx will not normalize: it refuses them while it reads the
-- request line (its own 400 page; error_page cannot hand a request without
-- a URI to Lua), where the request core answers its own 400
local NGINX_URI = "nginx refuses this request line itself (its own 400 page) before Lua can answer"
local SKIP = {
  ["malformed: a request line http-parser refuses: 400, connection closed"] = NGINX_PARSER,
  ["malformed: HTTP/1.1 without Host: 400, connection closed"] = NGINX_PARSER,
  ["malformed request: 400 and closed while another client's stream is served"] = NGINX_PARSER,
  ["traversal: /../outside.txt: 400"] = NGINX_URI,
  ["traversal: /sub/../../outside.txt: 400"] = NGINX_URI,
  ["traversal: /%2e%2e/outside.txt: 400"] = NGINX_URI,
  ["traversal: /%2E%2E%2Foutside.txt (an encoded /): 400"] = NGINX_URI,
  ["an encoded NUL: /hello.txt%00.png: 400"] = NGINX_URI,
  ["a bad escape: /hello%zz: 400"] = NGINX_URI,
  ["refused: a bad id (a bad escape): 400"] = NGINX_URI,
  ["refused: an id with an encoded NUL: 400"] = NGINX_URI,
}

-- error lines a row causes on purpose (an app that raises, a body nginx refuses)
local EXPECTED_LOG = {
  "%[lua%].- async: .- 500 ",                 -- a server function or handler that raised: the core logs it
  "client intended to send too large body",   -- nginx's own line for the 413 it hands to error_page
}

describe_ngx("nginx: the shared HTTP suite", function()
  local srv, root

  setup(function()
    math.randomseed(os.time() + os.clock() * 1e6)
    local pub
    pub, root = suite_apps.make_public()
    srv = nginx.start({
      init = ([[
        suite_opts = { apps = require("support.suite_apps").apps(), public = "%s", env = "production" }
      ]]):format(pub),
      http = [[
        large_client_header_buffers 4 32k;
      ]],
      server = [[
        error_page 413 = @async_413;
        location @async_413 { content_by_lua_block { require("async.ngx").refused(413) } }
        error_page 494 = @async_431;
        location @async_431 { content_by_lua_block { require("async.ngx").refused(431) } }

        location / {
          content_by_lua_block { require("async.ngx").handle(nil, suite_opts) }
        }
      ]],
    })
  end)

  teardown(function()
    if srv then srv:stop() end
    suite_apps.remove_public(root)
    http.wait_until(function() return (http.active_handles()) == 0 end, 3000, "every handle to close")
  end)

  after_each(function()
    http.sleep(30)
    for _, p in ipairs(EXPECTED_LOG) do srv:expect_log(p) end
    srv:check_log()
  end)

  suite.busted(function() return "127.0.0.1", srv.port end, { reasons = "code", skip = SKIP })
end)
