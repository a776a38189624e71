#!/usr/bin/env bash
# Runs every test suite of asyncrt and ends with one line "N passed, N failed".
#
# Counting is honest: a suite that crashes, hangs (each run has a time limit)
# or reports nothing counts as failed; pending cases are counted and printed.
# Stages:
#   C tests            src/core and src/http, each "N passed, N failed"
#   busted, together   every spec file in one LuaJIT process: its cases are counted
#   busted, alone      each spec file in a process of its own: one check per file
#   busted, asyncrt    the specs tagged `loop`, under build/asyncrt
#   browser            client/async.js in Debian's Chromium (spec/browser), then
#                      spec/browser/e2e.mjs against build/asyncrt examples/gallery.lua
#                      (JavaScript on and off) and the server's log checked
#   sanitize, valgrind make sanitize (ASan+UBSan) and make valgrind, one check each
#   luacheck, rock     one check each
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0; pending=0
logdir=build/test-logs; mkdir -p "$logdir"
FILE_LIMIT=${FILE_LIMIT:-300}   # seconds per spec file run alone
ALL_LIMIT=${ALL_LIMIT:-900}     # seconds for all spec files together, and per make check
# the whole run ends within BUDGET seconds (a hang cannot take CI past its own
# limit): each stage's time limit is cut to what is left, and a stage that
# finds nothing left is counted as failed, with its name
BUDGET=${BUDGET:-3000}

add() { passed=$((passed + $1)); failed=$((failed + $2)); }
t0=$SECONDS
stage() { printf '\n== %s  [%ds]\n' "$1" "$((SECONDS - t0))"; }
# limit NAME SECONDS: prints the time limit for a run, at most what is left of
# BUDGET; fails (and counts the run as failed) when nothing is left
limit() {
  local left=$((BUDGET - (SECONDS - t0)))
  if [ "$left" -le 5 ]; then echo "  $1: not run, the run's budget of ${BUDGET}s is spent: counted as failed" >&2; return 1; fi
  [ "$2" -lt "$left" ] && echo "$2" || echo "$left"
}

# runs busted with a time limit through tools/busted_counts.lua, which writes
# "P F E S" (successes, failures, errors, pending) and the failures to a file of
# its own; a run without that report (a crash, a hang) counts as one failure
run_busted() {  # name limit busted-args...
  local name=$1 limit; shift
  if ! limit=$(limit "$name" "$1"); then RB_P=0; RB_F=1; RB_S=0; return; fi
  shift
  local counts_file="$logdir/$name.counts"
  rm -f "$counts_file"
  BUSTED_COUNTS="$counts_file" timeout "$limit" busted -o tools/busted_counts.lua "$@" \
    > "$logdir/$name.stdout" 2> "$logdir/$name.stderr"
  local rc=$?
  local counts=""
  [ -f "$counts_file" ] && counts=$(head -1 "$counts_file")
  if [ "$rc" = 124 ] || ! printf '%s' "$counts" | grep -Eq '^[0-9]+ [0-9]+ [0-9]+ [0-9]+$'; then
    echo "  $name: no complete report (exit $rc$( [ "$rc" = 124 ] && echo ", time limit ${limit}s")): counted as failed"
    tail -20 "$logdir/$name.stderr" "$logdir/$name.stdout" 2>/dev/null | sed 's/^/    /'
    RB_P=0; RB_F=1; RB_S=0
    return
  fi
  read -r s f e p <<<"$counts"
  tail -n +2 "$counts_file" | sed 's/^/  /'
  RB_P=$s; RB_F=$((f + e)); RB_S=$p
  [ "$rc" = 0 ] || [ "$RB_F" -gt 0 ] || { echo "  $name: busted exited $rc with no failure reported: counted as failed"; RB_F=1; }
}

# a C test program that ends with "N passed, N failed"
c_tests() {  # title binary log
  stage "$1"
  if [ ! -x "$2" ]; then echo "  $2 is not built"; add 0 1; return; fi
  local t; if ! t=$(limit "$2" "$FILE_LIMIT"); then add 0 1; return; fi
  if timeout "$t" "$2" > "$logdir/$3" 2>&1; then rc=0; else rc=$?; fi
  tail -3 "$logdir/$3"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logdir/$3" | tail -1)
  if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    add "$p" "$f"
    [ "$rc" = 0 ] || [ "$f" != 0 ] || add 0 1
  else
    add 0 1
  fi
}

c_tests "C core tests (src/core)" build/test_core core.log
c_tests "C HTTP shim tests (src/http)" build/test_http http.log

stage "busted: every spec file together, one LuaJIT process"
# every page filled by parts (plans of template source) is also read whole
# and compared byte for byte (async.ssr.render, ASYNC_VERIFY_PARTS)
ASYNC_VERIFY_PARTS=1 run_busted all "$ALL_LIMIT" --lua=luajit --exclude-tags=loop spec
echo "  $RB_P passed, $RB_F failed, $RB_S pending"
add "$RB_P" "$RB_F"; pending=$((pending + RB_S))

stage "busted: each spec file alone (one check per file)"
alone_p=0; alone_f=0
for f in spec/*_spec.lua; do
  n=$(basename "$f" .lua)
  run_busted "alone-$n" "$FILE_LIMIT" --lua=luajit --exclude-tags=loop "$f"
  if [ "$RB_F" = 0 ]; then alone_p=$((alone_p + 1)); else alone_f=$((alone_f + 1)); echo "  FAILED alone: $f"; fi
done
echo "  $alone_p files passed alone, $alone_f failed"
add "$alone_p" "$alone_f"

if [ -x build/asyncrt ]; then
  stage "busted: specs tagged loop, under build/asyncrt"
  run_busted asyncrt "$ALL_LIMIT" --lua=build/asyncrt --tags=loop spec
  echo "  $RB_P passed, $RB_F failed, $RB_S pending"
  add "$RB_P" "$RB_F"; pending=$((pending + RB_S))
fi

if [ -x spec/browser/run.sh ]; then
  stage "browser: client/async.js in Chromium, e2e against the gallery on build/asyncrt"
  if t=$(limit browser "$ALL_LIMIT") && timeout "$t" spec/browser/run.sh > "$logdir/browser.log" 2>&1; then rc=0; else rc=$?; fi
  tail -15 "$logdir/browser.log"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logdir/browser.log" | tail -1)
  if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    add "$p" "$f"
    [ "$rc" = 0 ] || [ "$f" != 0 ] || add 0 1
  else
    add 0 1
  fi
fi

if [ -x spec/browser/e2e-ngx.sh ] && [ -x /usr/sbin/nginx ] && [ -x /usr/bin/chromium ]; then
  stage "browser: the examples inside nginx (e2e.mjs against async.ngx)"
  if t=$(limit browser-ngx "$ALL_LIMIT") && timeout "$t" spec/browser/e2e-ngx.sh > "$logdir/browser-ngx.log" 2>&1; then rc=0; else rc=$?; fi
  tail -8 "$logdir/browser-ngx.log"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logdir/browser-ngx.log" | tail -1)
  if [ -n "$line" ]; then
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    add "$p" "$f"
    [ "$rc" = 0 ] || [ "$f" != 0 ] || add 0 1
  else
    add 0 1
  fi
fi

# a make target that must pass, counted as one check
make_check() {  # title target log
  stage "$1"
  local t; if ! t=$(limit "make $2" "$ALL_LIMIT"); then add 0 1; return; fi
  if timeout "$t" make -s "$2" > "$logdir/$3" 2>&1; then
    add 1 0; grep -E "passed, |successes|ERROR SUMMARY" "$logdir/$3" | tail -4
  else
    add 0 1; tail -40 "$logdir/$3"
  fi
}

make_check "memory safety: C tests and specs under ASan+UBSan (make sanitize)" sanitize sanitize.log
make_check "memory safety: C tests under valgrind (make valgrind)" valgrind valgrind.log

stage "luacheck"
if luacheck -q --no-color lua spec bench examples > "$logdir/luacheck.log" 2>&1; then
  add 1 0; tail -1 "$logdir/luacheck.log"
else
  add 0 1; cat "$logdir/luacheck.log"
fi

stage "rock check (luarocks make for LuaJIT into a scratch tree, offline: lua and luajit are provided by the VM)"
tree=$(mktemp -d)
if t=$(limit rock "$ALL_LIMIT") && LUAROCKS_CONFIG=tools/luarocks-luajit.lua timeout "$t" luarocks make --tree="$tree" asyncrt-scm-1.rockspec > "$logdir/rock.log" 2>&1 &&
   (cd / && LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;;" \
      LUA_CPATH="$tree/lib/lua/5.1/?.so;;" \
      luajit -e 'local A = require("async"); local s = A.signal(1); local c = A.computed(function() return s() + 1 end);
                 assert(c() == 2); s:set(5); assert(c() == 6)
                 assert(debug.getinfo(A.effect(function() end), "S").what == "C", "async_bind not installed")
                 print("rock ok: " .. package.searchpath("async", package.path))') \
      >> "$logdir/rock.log" 2>&1 &&
   (cd / && env -u LUA_PATH -u LUA_CPATH TREE="$tree" "$tree/bin/asyncrt" -e 'local A = require("async")
      assert(A.signal(2)() == 2); local p = package.searchpath("async", package.path)
      assert(debug.getinfo(A.effect(function() end), "S").what == "C", "async_bind not linked in")
      assert(p:find(os.getenv("TREE"), 1, true) == 1, p); print("rock asyncrt ok: " .. p)') >> "$logdir/rock.log" 2>&1; then
  add 1 0; tail -1 "$logdir/rock.log"
else
  add 0 1; cat "$logdir/rock.log"
fi
rm -rf "$tree"

echo
[ "$pending" = 0 ] || echo "($pending pending cases, listed above)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
