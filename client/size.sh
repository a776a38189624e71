#!/bin/sh
# Prints the size of client/async.js minified (terser) and gzipped (-9), and
# fails when that is over the budget of 8192 bytes (docs/client.md).
#   sh client/size.sh            (terser from spec/browser/node_modules)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
terser="$here/../spec/browser/node_modules/.bin/terser"
if [ ! -x "$terser" ]; then
  echo "size.sh: terser is missing; run: (cd spec/browser && npm install)" >&2
  exit 2
fi
budget=${ASYNC_CLIENT_BUDGET:-8192}
raw=$(wc -c < "$here/async.js")
min=$("$terser" "$here/async.js" --compress --mangle | wc -c)
gz=$("$terser" "$here/async.js" --compress --mangle | gzip -9 -n | wc -c)
echo "client/async.js: $raw bytes, $min minified, $gz minified+gzipped (budget $budget)"
if [ "$gz" -gt "$budget" ]; then
  echo "size.sh: over budget by $((gz - budget)) bytes" >&2
  exit 1
fi
