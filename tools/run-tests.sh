#!/usr/bin/env bash
# Runs every test suite of asyncrt and ends with one line "N passed, N failed".
# Stages: C core tests, busted specs (LuaJIT, then under asyncrt when it is
# built), luacheck, and the rock check (luarocks make into a scratch tree).
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
logdir=build/test-logs; mkdir -p "$logdir"

add() { passed=$((passed + $1)); failed=$((failed + $2)); }
stage() { printf '\n== %s\n' "$1"; }

# busted's terminal summary: "N successes / N failures / N errors / N pending"
busted_counts() {
  local log=$1 s f e
  s=$(grep -Eo '[0-9]+ successes?' "$log" | tail -1 | grep -Eo '^[0-9]+')
  f=$(grep -Eo '[0-9]+ failures?' "$log" | tail -1 | grep -Eo '^[0-9]+')
  e=$(grep -Eo '[0-9]+ errors?' "$log" | tail -1 | grep -Eo '^[0-9]+')
  echo "${s:-0} $(( ${f:-0} + ${e:-0} ))"
}

stage "C core tests"
if build/test_core > "$logdir/core.log" 2>&1; then rc=0; else rc=$?; fi
cat "$logdir/core.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logdir/core.log" | tail -1)
if [ -n "$line" ]; then
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
  add "$p" "$f"
  [ "$rc" = 0 ] || [ "$f" != 0 ] || add 0 1
else
  add 0 1
fi

stage "C HTTP shim tests (src/http)"
if build/test_http > "$logdir/http.log" 2>&1; then rc=0; else rc=$?; fi
tail -5 "$logdir/http.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logdir/http.log" | tail -1)
if [ -n "$line" ]; then
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
  add "$p" "$f"
  [ "$rc" = 0 ] || [ "$f" != 0 ] || add 0 1
else
  add 0 1
fi

stage "busted specs (luajit)"
busted --lua=luajit -o utfTerminal --exclude-tags=loop spec > "$logdir/busted.log" 2>&1
cat "$logdir/busted.log"
read -r p f <<<"$(busted_counts "$logdir/busted.log")"
[ "$p" = 0 ] && [ "$f" = 0 ] && f=1   # busted died before running anything
add "$p" "$f"

if [ -x build/asyncrt ]; then
  stage "busted specs under asyncrt (tag: loop)"
  busted --lua=build/asyncrt -o utfTerminal --tags=loop spec > "$logdir/busted-asyncrt.log" 2>&1
  cat "$logdir/busted-asyncrt.log"
  read -r p f <<<"$(busted_counts "$logdir/busted-asyncrt.log")"
  add "$p" "$f"
fi

stage "luacheck"
if luacheck -q --no-color lua spec bench examples > "$logdir/luacheck.log" 2>&1; then
  add 1 0; tail -1 "$logdir/luacheck.log"
else
  add 0 1; cat "$logdir/luacheck.log"
fi

stage "rock check (luarocks make --deps-mode=none into a scratch tree)"
tree=$(mktemp -d)
if luarocks make --deps-mode=none --tree="$tree" asyncrt-scm-1.rockspec > "$logdir/rock.log" 2>&1 &&
   (cd / && LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;;" \
      LUA_CPATH="$tree/lib/lua/5.1/?.so;;" \
      luajit -e 'local A = require("async"); local s = A.signal(1); local c = A.computed(function() return s() + 1 end);
                 assert(c() == 2); s:set(5); assert(c() == 6); print("rock ok: " .. package.searchpath("async", package.path))') \
      >> "$logdir/rock.log" 2>&1 &&
   (cd / && env -u LUA_PATH -u LUA_CPATH TREE="$tree" "$tree/bin/asyncrt" -e 'local A = require("async")
      assert(A.signal(2)() == 2); local p = package.searchpath("async", package.path)
      assert(p:find(os.getenv("TREE"), 1, true) == 1, p); print("rock asyncrt ok: " .. p)') >> "$logdir/rock.log" 2>&1; then
  add 1 0; tail -1 "$logdir/rock.log"
else
  add 0 1; cat "$logdir/rock.log"
fi
rm -rf "$tree"

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
