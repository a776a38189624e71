#!/usr/bin/env bash
# The browser stage of make test, in Debian's Chromium driven by
# playwright-core (no browser download). Ends with "N passed, N failed":
#   client.test.mjs   the browser client's specs (each test one count)
#   client/size.sh    the client's size budget (8 KB minified + gzipped), one
#   e2e.mjs           the examples' main interactions against a real server:
#                     build/asyncrt examples/gallery.lua on a free loopback
#                     port (each scenario one count), then again with
#                     JavaScript off (--no-js: the counter page as rendered)
#   the server's log  its stderr holds no error and no warning line, one
# Screenshots of the e2e runs go to build/screenshots/.
set -u
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"
if [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null; then
  echo "browser specs: chromium or node missing (make deps installs them)"; echo "0 passed, 1 failed"; exit 1
fi
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --loglevel=error >&2 || {
  echo "browser specs: npm install failed"; echo "0 passed, 1 failed"; exit 1; }
out=$(timeout 600 node --test --test-reporter=spec client.test.mjs 2>&1); rc=$?
printf '%s\n' "$out" | tail -40
p=$(printf '%s\n' "$out" | grep -Eo '^ℹ pass [0-9]+' | grep -Eo '[0-9]+$' | tail -1)
f=$(printf '%s\n' "$out" | grep -Eo '^ℹ fail [0-9]+' | grep -Eo '[0-9]+$' | tail -1)
if [ -z "$p" ]; then p=0; f=1; fi
[ "$rc" = 0 ] || [ "${f:-0}" != 0 ] || f=1
if sh ../../client/size.sh; then p=$((p + 1)); else f=$((f + 1)); fi

# ===== end to end: the gallery served by build/asyncrt =====
echo
echo "== e2e: build/asyncrt examples/gallery.lua"
SERVER_OUT=$LOGS/gallery.out
SERVER_ERR=$LOGS/gallery.err
pid=
stop_server() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null   # graceful: in-flight requests finish
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "  the server did not stop on SIGTERM: killed"; kill -KILL "$pid"; fi
  wait "$pid" 2>/dev/null
  pid=
}
trap stop_server EXIT

# runs e2e.mjs with its arguments against $url; adds its scenarios to p/f
run_e2e() {
  local log=$LOGS/e2e${1:-}.log
  ASYNC_BASE_URL=$url ASYNC_E2E_SCREENSHOTS=$ROOT/build/screenshots timeout 600 node e2e.mjs "$@" > "$log" 2>&1
  local erc=$?
  sed 's/^/  /' "$log" | tail -30
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "  e2e.mjs $*: no result line (exit $erc): counted as failed"; f=$((f + 1)); return
  fi
  local ep=${line%% passed*} ef=${line#*, }
  ef=${ef%% failed*}
  p=$((p + ep)); f=$((f + ef))
  [ "$erc" = 0 ] || [ "$ef" != 0 ] || { echo "  e2e.mjs $*: exit $erc with no failure counted"; f=$((f + 1)); }
}

if [ ! -x "$ROOT/build/asyncrt" ]; then
  echo "  build/asyncrt is not built: e2e counted as failed"; f=$((f + 1))
else
  # PORT=0: the transport takes a free port and the "serving" line names it
  (cd "$ROOT" && HOST=127.0.0.1 PORT=0 ASYNC_ENV=development exec build/asyncrt examples/gallery.lua) \
    > "$SERVER_OUT" 2> "$SERVER_ERR" &
  pid=$!
  url=
  for _ in $(seq 100); do
    url=$(sed -n 's#^asyncrt: serving \(http://127\.0\.0\.1:[0-9]*\)/$#\1#p' "$SERVER_OUT")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "  the gallery did not start (no serving line):"; sed 's/^/    /' "$SERVER_OUT" "$SERVER_ERR" | tail -20
    f=$((f + 1)); stop_server
  else
    echo "  serving at $url"
    run_e2e
    run_e2e --no-js
    stop_server
    # the server's stderr (its access log): no error line (a 5xx, a Lua
    # error, a traceback) and no warning line (dropped client signals...)
    bad=$(grep -nE '^[^ ]+ "[A-Z]+ [^"]*" 5[0-9][0-9] |^  (error|warning): |stack traceback|^asyncrt: |PANIC' \
      "$SERVER_ERR")
    if [ -z "$bad" ]; then
      p=$((p + 1)); echo "  server log: $(grep -c '' "$SERVER_ERR") lines, no error or warning line"
    else
      f=$((f + 1)); echo "  server log ($SERVER_ERR) has error or warning lines:"; printf '%s\n' "$bad" | head -20 | sed 's/^/    /'
    fi
  fi
fi

echo "$p passed, $f failed"
[ "$f" = 0 ]
