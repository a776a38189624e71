/*
** asyncrt runtime.
**
** Caveats:
** - Every handle in the loop must be a luv handle: luv's uv.walk asserts that
**   handle->data is its own, and closing goes through uv.walk so Lua-side
**   references are released. asyncrt therefore creates its signal watchers
**   through luv (in boot.lua), never in C.
** - luv callbacks run through rt_cb_pcall (luv_set_callback), so an error in
**   one is reported here and stops the loop; luv's own handler would exit(-1).
** - SIGINT/SIGTERM: libuv's signal handler is chained behind ours. Ours counts
**   signals (the second one _exit()s at once) and, while Lua code runs outside
**   the loop (the main chunk), interrupts it with a hook like luajit does.
*/
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dlfcn.h>

#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include <uv.h>
#include <luv/luv.h>

#include "rt.h"
#include "boot.h"

#ifndef ASYNCRT_LUV_VERSION
#define ASYNCRT_LUV_VERSION "unknown"
#endif

/* ===== STATE ===== */

enum { PHASE_RUN, PHASE_CLOSING };

static uv_loop_t g_loop;
static lua_State *g_L;
static int g_failed;            /* an uncaught error was reported */
static int g_phase = PHASE_RUN;
static int g_in_loop;           /* depth of uv_run calls */
static int g_boot_ref = LUA_NOREF;
static int g_loop_ready;        /* luv required: loop initialised */
static volatile sig_atomic_t g_signals;  /* signals seen by our handler */
static volatile sig_atomic_t g_signum;   /* the first one */
static struct sigaction g_chain_int, g_chain_term;

/* luv and libuv are dlopen'ed on the first require("luv") instead of being
** linked: mapping them costs more startup time than everything else asyncrt
** adds to luajit (docs/asyncrt.md). These are the entry points we use. */
#ifndef ASYNCRT_LUV_SONAME
#define ASYNCRT_LUV_SONAME "liblua5.1-luv.so.0"
#endif
static struct {
  int (*loop_init)(uv_loop_t *);
  int (*run)(uv_loop_t *, uv_run_mode);
  void (*stop)(uv_loop_t *);
  int (*loop_alive)(const uv_loop_t *);
  int (*loop_close)(uv_loop_t *);
  int (*tty_reset_mode)(void);
  const char *(*strerror)(int);
  void (*set_loop)(lua_State *, uv_loop_t *);
  void (*set_callback)(lua_State *, luv_CFpcall);
  lua_CFunction open;
} uvf;

/* The error value raised to unwind after a failure already reported (or a
** shutdown) inside a nested uv.run(); reported silently. */
#define RT_UNWIND ((void *)&g_failed)

/* ===== ERRORS ===== */

/* Message handler: adds a traceback to string errors; leaves nil and our
** unwind marker alone (nothing to print). */
static int rt_traceback(lua_State *L)
{
  if (lua_touserdata(L, 1) == RT_UNWIND) return 1;
  if (!lua_isstring(L, 1)) {
    if (lua_isnoneornil(L, 1) || !luaL_callmeta(L, 1, "__tostring") ||
        !lua_isstring(L, -1))
      return 1;
    lua_remove(L, 1);
  }
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

void rt_report(lua_State *L, int status)
{
  if (status && !lua_isnil(L, -1) && lua_touserdata(L, -1) != RT_UNWIND) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) msg = "(error object is not a string)";
    fprintf(stderr, "%s: %s\n", ASYNCRT_NAME, msg);
    fflush(stderr);
  }
  if (status) lua_pop(L, 1);
}

int rt_docall(lua_State *L, int nargs, int nresults)
{
  int base = lua_gettop(L) - nargs, status;
  lua_pushcfunction(L, rt_traceback);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status) rt_report(L, status);
  return status;
}

/* Marks the run as failed: exit status 1, loop stopped. */
static void rt_fail(void)
{
  g_failed = 1;
  uvf.stop(&g_loop);
}

/* luv's callback runner (luv_CFpcall). After a failure the remaining
** callbacks of the stopped loop are dropped; while closing they run, and an
** error in one is reported and fails the exit status. */
static int rt_cb_pcall(lua_State *L, int nargs, int nresults, int flags)
{
  int base, status;
  (void)flags;
  if (g_failed && g_phase == PHASE_RUN) {
    lua_pop(L, nargs + 1);
    return -LUA_ERRRUN;
  }
  base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, rt_traceback);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status == 0) {
    if (nresults == LUA_MULTRET) nresults = lua_gettop(L) - base + 1;
    return nresults;
  }
  rt_report(L, status);
  rt_fail();
  return -status;
}

/* ===== SIGNALS ===== */

static void rt_interrupt_hook(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void rt_on_signal(int sig)
{
  int saved = errno;
  struct sigaction *chain = sig == SIGINT ? &g_chain_int : &g_chain_term;
  g_signals++;
  if (g_signals > 1) {
    static const char msg[] = "asyncrt: second signal, exiting now\n";
    if (uvf.tty_reset_mode) uvf.tty_reset_mode();
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) { /* nothing to do */ }
    _exit(128 + sig);
  }
  g_signum = sig;
  if (!g_in_loop && g_L)
    lua_sethook(g_L, rt_interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  if (chain->sa_handler != SIG_DFL && chain->sa_handler != SIG_IGN)
    chain->sa_handler(sig);
  errno = saved;
}

/* Puts our handler in front of whatever handles sig: at startup nothing
** (SIG_DFL/SIG_IGN are not chained), once luv is loaded libuv's handler
** (installed when boot.lua started the luv signal watchers). */
static void rt_chain_signal(int sig, struct sigaction *chain)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = rt_on_signal;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(sig, &sa, chain);
  if ((chain->sa_flags & SA_SIGINFO) || chain->sa_handler == rt_on_signal)
    chain->sa_handler = SIG_DFL;
}

void rt_atexit(void)
{
  if (uvf.tty_reset_mode) uvf.tty_reset_mode();
}

int rt_forced_status(void)
{
  if (g_failed) return 1;
  if (g_signum) return 128 + g_signum;
  return 0;
}

/* ===== LUA FUNCTIONS (package.loaded.asyncrt via boot.lua) ===== */

/* uv.run wrapper: counts loop depth (for the interrupt hook) and, when the
** loop stopped because of a failure or a shutdown, unwinds the caller. */
static int rt_uv_run(lua_State *L)
{
  int n = lua_gettop(L), status;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  g_in_loop++;
  status = lua_pcall(L, n, LUA_MULTRET, 0);
  g_in_loop--;
  if (status) return lua_error(L);
  if (g_failed || g_signum) {
    lua_pushlightuserdata(L, RT_UNWIND);
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int rt_note_signal(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  if (!g_signum) g_signum = strcmp(name, "sigterm") == 0 ? SIGTERM : SIGINT;
  return 0;
}

static int rt_shutdown_ms(lua_State *L)
{
  const char *env = getenv("ASYNCRT_SHUTDOWN_MS");
  lua_Number ms = 3000;
  if (env && *env) ms = strtod(env, NULL);
  lua_pushnumber(L, ms >= 0 ? ms : 0);
  return 1;
}

/* ===== SETUP ===== */

/* Calls boot.<name>(args...) with nargs arguments below; returns status. */
static int rt_boot_call(lua_State *L, const char *name, int nargs)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, g_boot_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  lua_insert(L, -1 - nargs);
  return rt_docall(L, nargs, 0);
}

/* Fills uvf from the luv library (which brings libuv); on failure pushes a
** message and returns 1. */
static int rt_load_luv(lua_State *L)
{
  static const char *const names[] = {
    "uv_loop_init", "uv_run", "uv_stop", "uv_loop_alive", "uv_loop_close",
    "uv_tty_reset_mode", "uv_strerror", "luv_set_loop", "luv_set_callback",
    "luaopen_luv" };
  void *slots[sizeof names / sizeof names[0]];
  size_t i;
  void *lib = dlopen(ASYNCRT_LUV_SONAME, RTLD_NOW | RTLD_GLOBAL);
  if (lib == NULL) {
    lua_pushfstring(L, "cannot load luv (%s): %s", ASYNCRT_LUV_SONAME, dlerror());
    return 1;
  }
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    slots[i] = dlsym(lib, names[i]);
    if (slots[i] == NULL) {
      lua_pushfstring(L, "cannot load luv: %s missing in %s", names[i], ASYNCRT_LUV_SONAME);
      return 1;
    }
  }
  /* object pointer -> function pointer without -pedantic complaints */
  memcpy(&uvf.loop_init, &slots[0], sizeof uvf.loop_init);
  memcpy(&uvf.run, &slots[1], sizeof uvf.run);
  memcpy(&uvf.stop, &slots[2], sizeof uvf.stop);
  memcpy(&uvf.loop_alive, &slots[3], sizeof uvf.loop_alive);
  memcpy(&uvf.loop_close, &slots[4], sizeof uvf.loop_close);
  memcpy(&uvf.strerror, &slots[6], sizeof uvf.strerror);
  memcpy(&uvf.set_loop, &slots[7], sizeof uvf.set_loop);
  memcpy(&uvf.set_callback, &slots[8], sizeof uvf.set_callback);
  memcpy(&uvf.open, &slots[9], sizeof uvf.open);
  memcpy(&uvf.tty_reset_mode, &slots[5], sizeof uvf.tty_reset_mode);  /* last: signal handler reads it */
  return 0;
}

/* package.preload.luv: the loop, luv on it (errors in its callbacks to
** rt_cb_pcall), the uv.run wrapper and the signal watchers. Done on first
** require so scripts that never touch luv start as fast as luajit. */
static int rt_open_luv(lua_State *L)
{
  int r;
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (g_loop_ready) {  /* loaded before, then package.loaded was cleared */
    lua_getfield(L, LUA_REGISTRYINDEX, "asyncrt.luv");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "uv");         /* both names again, as on first load */
    return 1;
  }
  if (rt_load_luv(L)) return lua_error(L);
  r = uvf.loop_init(&g_loop);
  if (r < 0) return luaL_error(L, "cannot create the loop: %s", uvf.strerror(r));
  g_loop_ready = 1;
  /* luv runs callbacks on the state given here: the main thread, even when
  ** the first require("luv") happens inside a coroutine */
  uvf.set_loop(g_L, &g_loop);
  uvf.set_callback(g_L, rt_cb_pcall);
  lua_pushcfunction(L, uvf.open);
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "run");
  lua_pushcclosure(L, rt_uv_run, 1);
  lua_setfield(L, -2, "run");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "uv");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "luv");          /* package.loaded: luv, uv */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "asyncrt.luv");
  lua_rawgeti(L, LUA_REGISTRYINDEX, g_boot_ref);
  lua_getfield(L, -1, "setup_loop");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  rt_chain_signal(SIGINT, &g_chain_int);
  rt_chain_signal(SIGTERM, &g_chain_term);
  return 1;
}

/* package.preload.uv: the same module. */
static int rt_open_uv(lua_State *L)
{
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luv");
  lua_call(L, 1, 1);
  return 1;
}

static int rt_setup(lua_State *L)
{
  char exe[4096];
  ssize_t n;
  if (lua_toboolean(L, 1)) {  /* -E: LuaJIT's setpath ignores LUA_PATH too */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, rt_open_luv);
  lua_setfield(L, -2, "luv");
  lua_pushcfunction(L, rt_open_uv);
  lua_setfield(L, -2, "uv");
  lua_pushcfunction(L, luaopen_async_bind);   /* src/bind/bind.c, linked in */
  lua_setfield(L, -2, "async_bind");
  lua_pop(L, 1);
  lua_getfield(L, -1, "loaded");

  /* boot.lua (rt, exe, noenv) */
  if (luaL_loadbuffer(L, asyncrt_boot_lua, ASYNCRT_BOOT_LUA_LEN, "=[asyncrt boot]"))
    return lua_error(L);
  lua_newtable(L);
  lua_pushliteral(L, ASYNCRT_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, ASYNCRT_LUV_VERSION);
  lua_setfield(L, -2, "luv_version");
  lua_pushcfunction(L, rt_note_signal);
  lua_setfield(L, -2, "note_signal");
  lua_pushcfunction(L, rt_shutdown_ms);
  lua_setfield(L, -2, "shutdown_ms");
  n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) n = 0;
  exe[n] = '\0';
  lua_pushstring(L, exe);
  lua_getfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  lua_call(L, 3, 1);
  lua_getfield(L, -1, "module");
  lua_setfield(L, -3, "asyncrt");      /* package.loaded.asyncrt */
  g_boot_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 2);
  return 0;
}

lua_State *rt_open(int noenv)
{
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", ASYNCRT_NAME);
    return NULL;
  }
  g_L = L;
  lua_pushcfunction(L, rt_setup);
  lua_pushboolean(L, noenv);
  if (rt_docall(L, 1, 0) || rt_boot_call(L, "setup", 0)) {
    lua_close(L);
    g_L = NULL;
    return NULL;
  }
  /* no chain yet: libuv's handler comes with luv (rt_open_luv) */
  rt_chain_signal(SIGINT, &g_chain_int);
  rt_chain_signal(SIGTERM, &g_chain_term);
  return L;
}

/* ===== RUN AND CLOSE ===== */

void rt_run_loop(lua_State *L)
{
  (void)L;
  if (g_failed || !g_loop_ready) return;
  g_in_loop++;
  uvf.run(&g_loop, UV_RUN_DEFAULT);
  g_in_loop--;
}

int rt_repl(lua_State *L)
{
  lua_pushliteral(L, ASYNCRT_NAME);
  return rt_boot_call(L, "repl", 1);
}

int rt_close(lua_State *L, int status)
{
  int forced, i;
  g_phase = PHASE_CLOSING;
  g_in_loop++;                 /* no interrupt hook from here on */
  lua_sethook(L, NULL, 0, 0);
  /* close callbacks may open new handles: close again, a bounded number of
  ** times, one loop iteration (which finishes the closes) each */
  for (i = 0; g_loop_ready && i < 100; i++) {
    lua_pushboolean(L, 0);
    if (rt_boot_call(L, "close_all", 1)) g_failed = 1;
    uvf.run(&g_loop, UV_RUN_NOWAIT);
    if (!uvf.loop_alive(&g_loop)) break;
  }
  forced = rt_forced_status();
  if (forced) status = forced;
  lua_close(L);
  g_L = NULL;
  if (g_loop_ready && uvf.loop_close(&g_loop) != 0)
    fprintf(stderr, "%s: warning: loop still busy at exit\n", ASYNCRT_NAME);
  if (uvf.tty_reset_mode) uvf.tty_reset_mode();
  fflush(stdout);
  return status;
}
