rockspec_format = "3.0"
package = "asyncrt"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Lua-scripted reactive application engine with a C core",
  detailed = [[
    Signals, computeds, effects, async signals (coroutines with versioning and
    abort), a phased scheduler, and an app layer for server rendering, built
    on a small C reactive kernel driven through the LuaJIT FFI.
  ]],
  license = "MIT",
}
-- LuaJIT (the FFI and bit; string.buffer and table.new when present): plain Lua 5.1
-- cannot run it. With Debian's luarocks (configured for lua5.1) point it at LuaJIT:
-- LUAROCKS_CONFIG=tools/luarocks-luajit.lua luarocks make
dependencies = { "lua == 5.1", "luajit >= 2.0" }
build = {
  type = "make",
  build_target = "all",
  build_variables = { CFLAGS = "$(CFLAGS)" },
  install_variables = {
    PREFIX = "$(PREFIX)", LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)", BINDIR = "$(BINDIR)",
  },
}
