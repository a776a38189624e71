/*
 * bind.c: the Lua module async_bind, one function: bind(fn, a, b) returns a
 * C closure that calls fn(a, b) and returns its results (the arguments it
 * is called with are ignored).
 *
 * Why not a Lua closure: creating one (the FNEW bytecode) is not compiled
 * by LuaJIT 2.1, so any function that makes a closure runs interpreted. The
 * kernel's Async.effect returns a dispose function bound to the effect's
 * (id, serial); made here, the call is stitched and Async.effect compiles.
 * A C closure with three upvalues is also about half the memory of a Lua
 * closure with two (docs/kernel.md, "Effects, ownership, cleanups").
 *
 * The kernel falls back to Lua closures when this module is not found.
 */
#include <lua.h>
#include <lauxlib.h>

/* The bound call: fn(a, b), all results returned. */
static int bound_call(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_call(L, 2, LUA_MULTRET);
  return lua_gettop(L);
}

/* bind(fn, a, b) */
static int bind(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 3);
  lua_pushcclosure(L, bound_call, 3);
  return 1;
}

int luaopen_async_bind(lua_State *L);
int luaopen_async_bind(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, bind);
  lua_setfield(L, -2, "bind");
  return 1;
}
