#!/usr/bin/env bash
# Installs the Debian packages asyncrt needs, or prints the exact command.
# Usage: tools/deps.sh [group...]   groups: core (default), ngx, browser, bench
set -u
core="build-essential pkg-config zlib1g-dev luajit2 libluajit2-5.1-dev lua-luv lua-luv-dev libuv1-dev lua-cjson lua-busted luarocks lua-check libhttp-parser-dev lua-cosmo lua-lpeg wrk"
ngx="nginx-light libnginx-mod-http-lua lua-resty-core curl"
browser="chromium nodejs npm"
bench="nodejs npm nginx-light"
groups="${*:-core}"
want=""
for g in $groups; do
  case "$g" in
    core) want="$want $core" ;;
    ngx) want="$want $ngx" ;;
    browser) want="$want $browser" ;;
    bench) want="$want $bench" ;;
    all) want="$want $core $ngx $browser" ;;
    *) echo "deps.sh: unknown group '$g' (core, ngx, browser, bench, all)" >&2; exit 2 ;;
  esac
done
missing=""
for p in $want; do
  # nodejs may come from outside Debian (a node on PATH is enough)
  if [ "$p" = nodejs ] || [ "$p" = npm ]; then
    command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
install_npm() {
  # the browser specs' node packages (playwright-core, terser) from the npm registry
  case " $groups " in *" browser "*|*" all "*)
    [ -d spec/browser/node_modules/playwright-core ] ||
      (cd spec/browser && npm install --no-audit --no-fund --loglevel=error >&2) || {
        echo "deps: npm install in spec/browser failed" >&2; exit 1; } ;;
  esac
}
cd "$(dirname "$0")/.."
if [ -z "$missing" ]; then install_npm; exit 0; fi
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >&2 || {
    echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
  install_npm
else
  echo "deps: missing Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
