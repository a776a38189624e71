-- A LuaRocks config that builds and installs for LuaJIT (Debian's luarocks
-- defaults to lua5.1): LUAROCKS_CONFIG=tools/luarocks-luajit.lua luarocks make
lua_interpreter = "luajit"
variables = { LUA_DIR = "/usr", LUA_BINDIR = "/usr/bin", LUA_INCDIR = "/usr/include/luajit-2.1" }
