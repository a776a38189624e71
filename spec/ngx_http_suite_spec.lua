-- nginx (require("async.ngx").handle) against the shared HTTP suite
-- (spec/support/http_suite.lua): the rows Async.serve passes in
-- spec/serve_http_spec.lua, unchanged, over real sockets, with 2 workers,
-- and no [error], [alert] or [crit] in nginx's error log after any row but
-- those the row causes on purpose. nginx refuses too-large bodies and
-- header blocks itself; `error_page` hands them to async.ngx.refused, which
-- answers the bytes the luv transport does. Rows nginx answers itself hold its
-- own bytes (EXPECT).
local nginx = require("support.nginx")
local suite = require("support.http_suite")
local suite_apps = require("support.suite_apps")
local http = require("support.http")

local describe_ngx = nginx.available() and describe or pending

-- Rows whose request nginx refuses itself, before Lua can answer: the luv
-- transport's refusals of malformed HTTP (nginx's parser answers them), and
-- paths nginx will not normalize (it refuses them while it reads the request
-- line; error_page cannot hand a request without a URI to Lua), where the
-- request core answers its own 400. Against nginx these rows hold nginx's own
-- 400 page, byte for byte, and the closed connection.
local NGINX_400 = { "HTTP/1.1 400 Bad Request", { ["Content-Type"] = "text/html" },
  "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n" ..
  "<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
  close = true }
local EXPECT = {}
for _, name in ipairs({
  "malformed: a request line http-parser refuses: 400, connection closed",
  "malformed: HTTP/1.1 without Host: 400, connection closed",
  "malformed request: 400 and closed while another client's stream is served",
  "traversal: /../outside.txt: 400",
  "traversal: /sub/../../outside.txt: 400",
  "traversal: /%2e%2e/outside.txt: 400",
  "traversal: /%2E%2E%2Foutside.txt (an encoded /): 400",
  "an encoded NUL: /hello.txt%00.png: 400",
  "a bad escape: /hello%zz: 400",
  "refused: a bad id (a bad escape): 400",
  "refused: an id with an encoded NUL: 400",
}) do EXPECT[name] = NGINX_400 end

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

  suite.busted(function() return "127.0.0.1", srv.port end, { reasons = "code", expect = EXPECT })
end)
