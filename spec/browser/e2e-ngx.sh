#!/usr/bin/env bash
# The browser end-to-end scenarios (e2e.mjs) against nginx: the counter and
# product examples served by require("async.ngx") with
# examples/openresty/nginx.conf (2 workers), on a free loopback port. Ends
# with "N passed, N failed"; an [error], [alert] or [crit] line in nginx's
# error log is one more failure.
set -u
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
if [ ! -x /usr/sbin/nginx ] || [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
  echo "e2e under nginx: nginx or its Lua module missing"; echo "0 passed, 1 failed"; exit 1
fi
if [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null; then
  echo "e2e under nginx: chromium or node missing (make deps installs them)"; echo "0 passed, 1 failed"; exit 1
fi
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --loglevel=error >&2 || {
  echo "e2e under nginx: npm install failed"; echo "0 passed, 1 failed"; exit 1; }
port=$(( 20000 + RANDOM % 20000 ))
log=$(mktemp /tmp/asyncrt-e2e-ngx.XXXXXX)
PORT=$port "$root/examples/openresty/run.sh" > "$log" 2>&1 &
pid=$!
trap 'kill -QUIT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
prefix=$(sed -n 's/^  prefix \([^ ]*\) .*/\1/p' "$log")
out=$(ASYNC_BASE_URL="http://127.0.0.1:$port" ASYNC_E2E_ONLY=${ASYNC_E2E_ONLY:-client-asset,counter,product} \
  timeout 300 node e2e.mjs 2>&1); rc=$?
printf '%s\n' "$out" | tail -20
line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
p=$(printf '%s' "$line" | grep -Eo '^[0-9]+'); f=$(printf '%s' "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
if [ -z "$p" ]; then p=0; f=1; fi
[ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
if [ -n "$prefix" ] && grep -E '\[(error|alert|crit|emerg)\]' "$prefix/error.log"; then
  echo "nginx error log has errors"; f=$((f + 1))
fi
[ -n "$prefix" ] && rm -rf "$prefix"
echo "$p passed, $f failed"
[ "$f" = 0 ]
