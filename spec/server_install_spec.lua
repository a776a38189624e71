-- An installed tree serves the browser client: `make install` puts
-- client/async.js beside the server modules ($(LUADIR)/async/server/client.js)
-- and async.server finds it there, away from any checkout.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok, _, code = p:close()
  return out, (ok == true or ok == 0) and 0 or code
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

describe("make install", function()
  local dest
  setup(function() dest = sh("mktemp -d"):gsub("%s+$", "") end)
  teardown(function() sh("rm -rf " .. dest) end)

  it("installs the client beside async.server and the installed modules find it", function()
    local out, code = sh("make -s install DESTDIR=" .. dest .. " PREFIX=/usr/local")
    assert.are.equal(0, code, out)
    local lua = dest .. "/usr/local/share/lua/5.1"
    local installed = lua .. "/async/server/client.js"
    assert.are.equal(read("client/async.js"), read(installed))
    local cwd = sh("pwd"):gsub("%s+$", "")
    -- from /, with only the installed tree on the path (the C core from this build)
    local found
    found, code = sh(("cd / && LUA_PATH='%s/?.lua;%s/?/init.lua;;' LUA_CPATH='%s/build/?.so;;' luajit -e " ..
      "'io.write(require(\"async.server.static\").default_client_path())'"):format(lua, lua, cwd))
    assert.are.equal(0, code, found)
    assert.are.equal(installed, found)
  end)
end)
