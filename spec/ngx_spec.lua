-- The same apps inside nginx's Lua module (Debian's libnginx-mod-http-lua,
-- which runs the OpenResty LuaJIT branch, the same libluajit as asyncrt):
-- a real nginx on loopback, real requests with curl. The C core is loaded
-- through the FFI from build/, async signals wait on ngx.sleep.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

local root = sh("pwd"):gsub("%s+$", "")
local have = sh("test -x /usr/sbin/nginx && test -f /usr/lib/nginx/modules/ngx_http_lua_module.so" ..
  " && command -v curl >/dev/null && echo yes"):find("yes")

local PORT = 18000 + (os.time() % 1000)
local prefix

local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon on;
master_process off;
worker_processes 1;
error_log PREFIX/error.log warn;
pid PREFIX/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path PREFIX; proxy_temp_path PREFIX; fastcgi_temp_path PREFIX;
  uwsgi_temp_path PREFIX; scgi_temp_path PREFIX;
  lua_package_path "ROOT/lua/?.lua;ROOT/lua/?/init.lua;ROOT/?.lua;;";
  lua_package_cpath "ROOT/build/?.so;;";
  server {
    listen 127.0.0.1:PORT;
    location /kernel {
      content_by_lua_block {
        local Async = require("async")
        local a = Async.signal(2)
        local b = Async.computed(function() return a() * 21 end)
        local seen = {}
        local dispose = Async.effect(function() seen[#seen + 1] = b() end)
        Async.batch(function() a:set(3); a:set(4) end)
        dispose()
        ngx.say(b(), " ", table.concat(seen, ","), " ", Async.core_stats().node_bytes)
      }
    }
    location /render {
      content_by_lua_block {
        local Async = require("async")
        local rt = Async.create_app(require("examples.product"))
        local r = rt:render(ngx.var.arg_u)
        ngx.status = r.status
        ngx.print(r.html)
      }
    }
  }
}
]]

local function get(path)
  return sh(("curl -s -m 10 -w '\\n%%{http_code}' 'http://127.0.0.1:%d%s'"):format(PORT, path))
end

local describe_ngx = have and describe or pending

describe_ngx("OpenResty: apps inside nginx's Lua module", function()
  setup(function()
    prefix = sh("mktemp -d"):gsub("%s+$", "")
    local conf = CONF:gsub("PREFIX", prefix):gsub("ROOT", root):gsub("PORT", tostring(PORT))
    local f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    local out = sh(("/usr/sbin/nginx -p %s -c %s/nginx.conf"):format(prefix, prefix))
    assert(out == "", "nginx did not start: " .. out)
    for _ = 1, 50 do
      if get("/kernel"):find("200$") then break end
      sh("sleep 0.1")
    end
  end)

  teardown(function()
    if prefix then
      sh(("kill $(cat %s/nginx.pid) ; sleep 0.2; rm -rf %s"):format(prefix, prefix))
    end
  end)

  it("runs the kernel: computeds, effects, batches, the C core through the FFI", function()
    assert.equal("84 42,84 48\n\n200", get("/kernel"))
  end)

  it("renders a page whose async signal waits on ngx.sleep", function()
    local out = get("/render?u=/products/sku-2")
    assert.truthy(out:find('<h1 signal:text="product.title">Headphones</h1>', 1, true), out)
    assert.truthy(out:find('"status":"ready"', 1, true), out)
    assert.truthy(out:find("200$"), out)
  end)

  it("answers 404 with router.error for an unknown route", function()
    local out = get("/render?u=/nowhere")
    assert.truthy(out:find('"code":"route-not-matched"', 1, true), out)
    assert.truthy(out:find("404$"), out)
  end)

  it("keeps serving after an error in one request", function()
    local out = get("/render?u=/products/sku-404")
    assert.truthy(out:find("Product sku-404 was not found", 1, true), out)
    assert.truthy(get("/kernel"):find("200$"))
  end)
end)
