/*
** asyncrt: the command line. Behaves like luajit for scripts (arg table,
** -e, -l, -i, -j, -O, -E, -v, "-" for stdin, a REPL on a terminal), then runs
** the libuv loop until no active handle is left.
**
** Exit status: os.exit(n); else 1 after an uncaught error; else 128+signal
** after a SIGINT/SIGTERM shutdown; else the number returned by the main
** chunk; else 0.
*/
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>

#include "rt.h"

#define F_E 1  /* -e seen */
#define F_I 2  /* -i */
#define F_V 4  /* -v */
#define F_NOENV 8  /* -E */
#define F_BAD 16

static void usage(FILE *out)
{
  fputs(
    "usage: " ASYNCRT_NAME " [options]... [script [args]...]\n"
    "Runs a Lua script under LuaJIT with a libuv loop (luv), then runs the loop\n"
    "until no active handle is left.\n"
    "Options:\n"
    "  -e chunk  Execute string 'chunk'.\n"
    "  -l name   Require library 'name'.\n"
    "  -j cmd    Perform LuaJIT control command.\n"
    "  -O[opt]   Control LuaJIT optimizations.\n"
    "  -i        Enter interactive mode after executing 'script'.\n"
    "  -v        Show version information (asyncrt, LuaJIT, libuv, luv).\n"
    "  -E        Ignore environment variables (LUA_INIT).\n"
    "  -h        Show this help.\n"
    "  --        Stop handling options.\n"
    "  -         Execute stdin and stop handling options.\n"
    "Exit status: os.exit(n); 1 after an uncaught error; 128+N after signal N;\n"
    "a number returned by the script; else 0.\n", out);
}

/* Scans the options; returns the index of the script (or argc) and sets
** *flags. Unknown options and missing arguments set F_BAD. */
static int collectargs(int argc, char **argv, int *flags)
{
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') return i;
    switch (a[1]) {
    case '-':
      if (a[2]) { *flags |= F_BAD; return i; }
      return i + 1 < argc ? i + 1 : argc;
    case '\0':
      return i;
    case 'i': *flags |= F_I | F_V; break;  /* -i implies -v, like luajit */
    case 'v': *flags |= F_V; break;
    case 'E': *flags |= F_NOENV; break;
    case 'h': *flags |= F_BAD; return -1;
    case 'e': *flags |= F_E; /* fallthrough */
    case 'l':
    case 'j':
      if (a[2] == '\0') {
        i++;
        if (i >= argc) { *flags |= F_BAD; return i; }
      }
      break;
    case 'O': break;
    default:
      *flags |= F_BAD;
      return i;
    }
  }
  return argc;
}

/* arg table: arg[0] = script, arg[-n] = interpreter and options, arg[1..]
** = script arguments. Pushes the script arguments too; returns their count. */
static int createargs(lua_State *L, int argc, char **argv, int script)
{
  int i, narg = argc - script - 1;
  if (narg < 0) narg = 0;
  lua_createtable(L, narg, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
  if (script >= argc) return 0;
  luaL_checkstack(L, narg + 3, "too many arguments to script");
  for (i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  return narg;
}

static int dochunk(lua_State *L, int status)
{
  if (status == 0) return rt_docall(L, 0, 0);
  rt_report(L, status);
  return status;
}

static int dolibrary(lua_State *L, const char *name)
{
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  return rt_docall(L, 1, 0);
}

/* -j cmd[=a,b] and -O[opts], as luajit does them. */
static int dojit(lua_State *L, const char *cmd, int opt)
{
  static const char code[] =
    "local cmd, opt = ...\n"
    "if opt then\n"
    "  local args = {}\n"
    "  for a in cmd:gmatch('[^,]+') do args[#args + 1] = a end\n"
    "  if #args == 0 then args[1] = '3' end\n"
    "  require('jit.opt').start(unpack(args))\n"
    "  return\n"
    "end\n"
    "local name, rest = cmd:match('^([%w_]+)=?(.*)$')\n"
    "if not name then error('bad -j command: ' .. cmd, 0) end\n"
    "if jit[name] and name ~= 'opt' then return jit[name]() end\n"
    "local m = require('jit.' .. name)\n"
    "local args = {}\n"
    "for a in rest:gmatch('[^,]+') do args[#args + 1] = a end\n"
    "m.start(unpack(args))\n";
  if (luaL_loadbuffer(L, code, sizeof code - 1, "=-j")) return dochunk(L, 1);
  lua_pushstring(L, cmd);
  lua_pushboolean(L, opt);
  return rt_docall(L, 2, 0);
}

static int runargs(lua_State *L, char **argv, int n)
{
  int i;
  for (i = 1; i < n; i++) {
    const char *a = argv[i];
    const char *v;
    if (a[0] != '-') continue;
    switch (a[1]) {
    case 'e':
      v = a[2] ? a + 2 : argv[++i];
      if (dochunk(L, luaL_loadbuffer(L, v, strlen(v), "=(command line)"))) return 1;
      break;
    case 'l':
      v = a[2] ? a + 2 : argv[++i];
      if (dolibrary(L, v)) return 1;
      break;
    case 'j':
      v = a[2] ? a + 2 : argv[++i];
      if (dojit(L, v, 0)) return 1;
      break;
    case 'O':
      if (dojit(L, a + 2, 1)) return 1;
      break;
    default: break;
    }
  }
  return 0;
}

static int handle_luainit(lua_State *L)
{
  const char *init = getenv("LUA_INIT");
  if (init == NULL) return 0;
  if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
  return dochunk(L, luaL_loadbuffer(L, init, strlen(init), "=LUA_INIT"));
}

static int printversion(lua_State *L)
{
  static const char code[] =
    "local rt, uv = require('asyncrt'), require('luv')\n"
    "io.write('asyncrt ', rt.version, '\\n', jit.version, '\\n',\n"
    "  'libuv ', uv.version_string(), '\\n', 'luv ', rt.luv_version, '\\n')\n";
  if (luaL_loadbuffer(L, code, sizeof code - 1, "=-v")) return dochunk(L, 1);
  return rt_docall(L, 0, 0);
}

/* Runs the script (argv[script], "-" = stdin); its first result, when a
** number, becomes *exit_status. */
static int handle_script(lua_State *L, char **argv, int argc, int script, int *exit_status)
{
  const char *fname = argv[script];
  int status, narg, top;
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL;
  status = luaL_loadfile(L, fname);
  if (status) { rt_report(L, status); return status; }
  narg = createargs(L, argc, argv, script);
  top = lua_gettop(L) - narg - 1;
  status = rt_docall(L, narg, LUA_MULTRET);
  if (status == 0 && lua_gettop(L) > top && lua_type(L, top + 1) == LUA_TNUMBER)
    *exit_status = (int)lua_tointeger(L, top + 1) & 0xff;
  lua_settop(L, top);
  return status;
}

int main(int argc, char **argv)
{
  lua_State *L;
  int flags = 0, script, status = 0, exit_status = 0;

  atexit(rt_atexit);  /* os.exit() skips rt_close */
  script = collectargs(argc, argv, &flags);
  if (flags & F_BAD) {
    if (script < 0) { usage(stdout); return 0; }
    fprintf(stderr, "%s: bad option '%s'\n", ASYNCRT_NAME,
            script < argc ? argv[script] : argv[argc - 1]);
    usage(stderr);
    return 1;
  }
  L = rt_open(flags & F_NOENV);
  if (L == NULL) return 1;
  if (script >= argc) createargs(L, argc, argv, argc);  /* arg without script */
  if (flags & F_V) status = printversion(L);
  if (!status && !(flags & F_NOENV)) status = handle_luainit(L);
  if (!status) status = runargs(L, argv, script < argc ? script : argc);
  if (!status && script < argc)
    status = handle_script(L, argv, argc, script, &exit_status);
  if (!status && script >= argc && !(flags & (F_E | F_V))) {
    if (isatty(STDIN_FILENO)) {
      status = printversion(L);
      if (!status) status = rt_repl(L);
    } else {
      status = dochunk(L, luaL_loadfile(L, NULL));
    }
  }
  if (!status && (flags & F_I)) status = rt_repl(L);
  if (!status) rt_run_loop(L);
  return rt_close(L, status ? 1 : exit_status);
}
