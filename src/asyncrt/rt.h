/*
** asyncrt runtime: one LuaJIT state, one libuv loop shared with luv, error
** reporting, signals and the orderly close. main.c is the command line on
** top of it.
*/
#ifndef ASYNCRT_RT_H
#define ASYNCRT_RT_H

#include <lua.h>

#define ASYNCRT_VERSION "0.1.0"
#define ASYNCRT_NAME    "asyncrt"

/* Creates the loop and the Lua state with luv, module paths and the boot
** module (noenv: ignore LUA_PATH/LUA_CPATH, as -E does); returns NULL
** (after printing why) on failure. */
lua_State *rt_open(int noenv);

/* Calls the function below nargs arguments with a traceback handler; on
** error prints "asyncrt: message" + traceback and returns the status. */
int rt_docall(lua_State *L, int nargs, int nresults);

/* Prints the error value on top of the stack (if any) and pops it. */
void rt_report(lua_State *L, int status);

/* Runs the loop until no active referenced handle is left (or a callback
** error or a shutdown stops it). */
void rt_run_loop(lua_State *L);

/* Starts the REPL on the loop (stdin is a terminal). */
int rt_repl(lua_State *L);

/* Closes every handle, the state and the loop; returns the exit status
** given the status the program would otherwise have. */
int rt_close(lua_State *L, int status);

/* atexit hook: resets the terminal mode if libuv changed it. */
void rt_atexit(void);

/* Exit status forced by a failure (1) or a signal (128+n); 0 if none. */
int rt_forced_status(void);

/* The async_bind module (src/bind/bind.c), linked in and preloaded. */
int luaopen_async_bind(lua_State *L);

#endif
