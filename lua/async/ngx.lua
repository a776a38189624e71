--- The OpenResty face of asyncrt (lua-api.md "Serving"):
--
--   init_by_lua_block    { app = require("myapp") }
--   content_by_lua_block { require("async.ngx").handle(app, opts) }
--
-- It is the nginx transport, async.transport.ngx (docs/openresty.md).
return require("async.transport.ngx")
