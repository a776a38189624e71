#!/usr/bin/env bash
# OpenResty benchmark (docs/performance.md, "OpenResty"): wrk against
#   (a) the counter page rendered by asyncrt (Async.serve, one process)
#   (b) the same page rendered under nginx by require("async.ngx") (2 workers)
#   (c) the same bytes from ngx.print of a constant string (2 workers): the
#       floor of nginx's Lua module on this machine
# and prints requests/s, p99 latency and the ratios (goals: (b) >= 0.60 of
# (c), and close to 2x (a)). The page is the suite's counter at "/"
# (spec/support/suite_apps.lua), production mode, as bench/http.sh uses.
#
#   bench/ngx.sh                  (from the checkout, after make)
#   DURATION=10 CONNECTIONS=100 THREADS=2 WORKERS=2 bench/ngx.sh
#
# Each server runs alone with wrk on the same machine (wrk takes CPU from
# the servers: on 2 cores, 2 nginx workers and wrk share them); every run
# is preceded by a 1 s warm-up that is not counted.
set -u
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
NGINX=${NGINX:-/usr/sbin/nginx}
root=$(pwd)
tmp=$(mktemp -d /tmp/asyncrt-bench-ngx.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

for t in wrk curl; do
  command -v "$t" >/dev/null || { echo "ngx.sh: $t is missing (tools/deps.sh core bench)" >&2; exit 2; }
done
[ -x build/asyncrt ] || { echo "ngx.sh: build/asyncrt is missing (make)" >&2; exit 2; }
[ -x "$NGINX" ] && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || {
  echo "ngx.sh: nginx or its Lua module is missing (tools/deps.sh ngx)" >&2; exit 2; }

free_port() { luajit -e 'math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  print(20000 + math.random(0, 20000))'; }
wait_up() {
  for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "ngx.sh: $1 did not come up" >&2; return 1
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# CPU ticks (user + system) of the processes in $CPU_PIDS
cpu_ticks() { local t=0; for p in $CPU_PIDS; do t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done; echo $t; }

measure() {  # url: prints "rps p99_ms non2xx errors cpu_us_per_request"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "$1" > /dev/null 2>&1
  local c0; c0=$(cpu_ticks)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$1" > "$tmp/wrk.out" 2>&1
  local c1; c1=$(cpu_ticks)
  CPU_US=$(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) ))
  luajit -e '
    local s = io.read("*a")
    local rps = tonumber(s:match("Requests/sec:%s*([%d.]+)")) or 0
    local v, unit = s:match("\n%s*99%%%s+([%d.]+)(%a+)")
    local p99 = tonumber(v) or -1
    if unit == "us" then p99 = p99 / 1000 elseif unit == "s" then p99 = p99 * 1000 end
    local non2xx = tonumber(s:match("Non%-2xx or 3xx responses: (%d+)")) or 0
    local errs = 0
    for n in (s:match("Socket errors:([^\n]*)") or ""):gmatch("%d+") do errs = errs + tonumber(n) end
    local n = tonumber(s:match("(%d+) requests in")) or 0
    print(string.format("%.0f %.2f %d %d %.1f", rps, p99, non2xx, errs, n > 0 and '"$CPU_US"' / n or 0))' < "$tmp/wrk.out"
}
declare -A RPS P99 BAD CPU
run_case() {
  local key=$1; shift
  read -r rps p99 non2xx errs cpu < <(measure "$@")
  RPS[$key]=$rps; P99[$key]=$p99; BAD[$key]=$((non2xx + errs)); CPU[$key]=$cpu
}

echo "== OpenResty: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores, nginx $WORKERS workers" \
  "(load average $(cut -d' ' -f1-3 /proc/loadavg))"

# (a) asyncrt, one process
port=$(free_port)
build/asyncrt bench/http_server.lua "$port" > "$tmp/asyncrt.log" 2>&1 &
apid=$!; pids+=("$apid")
wait_up "http://127.0.0.1:$port/" || exit 1
curl -s "http://127.0.0.1:$port/" > "$tmp/page.html"
CPU_PIDS=$apid
run_case asyncrt "http://127.0.0.1:$port/"
stop "$apid"
bytes=$(wc -c < "$tmp/page.html")

# nginx with a server block; $1 = the content_by_lua_block body
start_nginx() {
  local dir=$tmp/nginx-$1 body=$2
  mkdir -p "$dir"
  port=$(free_port)
  cat > "$dir/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes $WORKERS;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  keepalive_requests 1000000;
  server_tokens off;
  lua_package_path "$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;$root/spec/?.lua;;";
  lua_package_cpath "$root/build/?.so;;";
  lua_check_client_abort on;
  init_by_lua_block {
    bench_opts = { apps = require("support.suite_apps").apps(), env = "production" }
    local f = io.open("$tmp/page.html", "rb"); page = f:read("*a"); f:close()
  }
  server {
    listen 127.0.0.1:$port reuseport;
    location / { content_by_lua_block { $body } }
  }
}
EOF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" 2> "$dir/stderr" &
  npid=$!; pids+=("$npid")
  wait_up "http://127.0.0.1:$port/" || return 1
  CPU_PIDS=$(pgrep -P "$npid" | tr '\n' ' ')
}

# (b) the counter page under nginx
start_nginx async 'require("async.ngx").handle(nil, bench_opts)' || exit 1
curl -s "http://127.0.0.1:$port/" > "$tmp/page-ngx.html"
if ! cmp -s "$tmp/page.html" "$tmp/page-ngx.html"; then echo "ngx.sh: nginx and asyncrt pages differ" >&2; fi
run_case ngx "http://127.0.0.1:$port/"
stop "$npid"
errors=$(grep -cE '\[(error|alert|crit)\]' "$tmp/nginx-async/error.log")

# (c) the floor: the same bytes from ngx.print of a constant string
start_nginx floor 'ngx.header["Content-Type"] = "text/html; charset=utf-8"; ngx.header["Content-Length"] = #page; ngx.print(page)' || exit 1
run_case floor "http://127.0.0.1:$port/"
stop "$npid"

ratio() { luajit -e "local a, b = tonumber('${1:-0}'), tonumber('${2:-0}'); print(b and b > 0 and string.format('%.2f', a / b) or '-')"; }

printf '\n%-54s %9s %8s %7s %12s\n' "server ($bytes-byte counter page)" "req/s" "p99 ms" "errors" "CPU us/req"
printf '%-54s %9s %8s %7s %12s\n' "(a) asyncrt: Async.serve, 1 process" "${RPS[asyncrt]}" "${P99[asyncrt]}" "${BAD[asyncrt]}" "${CPU[asyncrt]}"
printf '%-54s %9s %8s %7s %12s\n' "(b) nginx: require(\"async.ngx\").handle, $WORKERS workers" "${RPS[ngx]}" "${P99[ngx]}" "${BAD[ngx]}" "${CPU[ngx]}"
printf '%-54s %9s %8s %7s %12s\n' "(c) nginx: ngx.print of the same bytes, $WORKERS workers" "${RPS[floor]}" "${P99[floor]}" "${BAD[floor]}" "${CPU[floor]}"
echo
echo "nginx page / ngx.print floor: $(ratio "${RPS[ngx]}" "${RPS[floor]}")   (goal >= 0.60)"
echo "nginx page / asyncrt page:    $(ratio "${RPS[ngx]}" "${RPS[asyncrt]}")   (goal ~ 2.00)"
echo "CPU per request, asyncrt / nginx page: $(ratio "${CPU[asyncrt]}" "${CPU[ngx]}")   (1.00: a worker does what asyncrt does per core)"
echo "error lines in nginx's log during (b): $errors"
