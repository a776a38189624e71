#!/usr/bin/env bash
# The browser specs of client/async.js: Debian's Chromium driven by
# playwright-core (no browser download). Ends with "N passed, N failed".
# The size budget of the client (8 KB minified + gzipped) is one more check.
set -u
cd "$(dirname "$0")"
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
echo "$p passed, $f failed"
[ "$f" = 0 ]
