#!/usr/bin/env bash
# Starts nginx in the foreground with examples/openresty/nginx.conf on
# 127.0.0.1:$PORT (default 8081), its prefix (logs, temp files) in a temp
# folder; Ctrl-C stops it. `make openresty-demo` runs this.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-8081}
prefix=$(mktemp -d /tmp/asyncrt-openresty.XXXXXX)
mkdir -p "$prefix"/{body,proxy,fastcgi,uwsgi,scgi,logs}
sed -e "s#@ROOT@#$root#g" -e "s#@PORT@#$port#g" -e "s#@PREFIX@#$prefix#g" \
  "$root/examples/openresty/nginx.conf" > "$prefix/nginx.conf"
# as root, nginx runs its workers as nobody, who may not read the checkout
if [ "$(id -u)" = 0 ]; then sed -i '1i user root;' "$prefix/nginx.conf"; fi
/usr/sbin/nginx -t -q -p "$prefix" -c "$prefix/nginx.conf"
echo "asyncrt under nginx: http://127.0.0.1:$port/  (counter: /counter/, product: /product/products/sku-1)"
echo "  prefix $prefix (error.log there); Ctrl-C stops"
exec /usr/sbin/nginx -p "$prefix" -c "$prefix/nginx.conf" -g "daemon off; master_process on;"
