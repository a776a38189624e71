#!/usr/bin/env bash
# HTTP serving benchmark (docs/performance.md, "Serving"): wrk against
#   (a) the counter page rendered by asyncrt (Async.serve, one process)
#   (b) the counter's handler POST on the same server
#   (c) nginx (Debian's nginx-light, one worker, access_log off) serving the
#       same page bytes as a static file: the floor of this machine
#   (d) node's http module serving the same bytes from memory
# and prints requests/s, p99 latency and the ratios, then the browser
# client's size minified+gzipped beside the seed's and its peers'.
#
#   bench/http.sh                 (from the checkout, after make)
#   DURATION=10 CONNECTIONS=50 THREADS=2 bench/http.sh
#
# Each server runs alone (the others are stopped) with wrk on the same
# machine; every run is preceded by a 1 s warm-up that is not counted.
set -u
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
NGINX=${NGINX:-/usr/sbin/nginx}
tmp=$(mktemp -d /tmp/asyncrt-bench-http.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

for t in wrk curl; do
  command -v "$t" >/dev/null || { echo "http.sh: $t is missing (tools/deps.sh core bench)" >&2; exit 2; }
done
[ -x build/asyncrt ] || { echo "http.sh: build/asyncrt is missing (make)" >&2; exit 2; }

free_port() { luajit -e 'math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  print(20000 + math.random(0, 20000))'; }

wait_up() {  # url
  for _ in $(seq 1 100); do curl -s -o /dev/null -H 'Host: suite.test' "$1" && return 0; sleep 0.05; done
  echo "http.sh: $1 did not come up" >&2; return 1
}

stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# wrk: prints "rps p99_ms non2xx errors" for one run
measure() {  # url [script]
  local url=$1 script=${2:-} args=()
  [ -n "$script" ] && args=(-s "$script")
  wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "${args[@]}" "$url" > /dev/null 2>&1
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${args[@]}" "$url" > "$tmp/wrk.out" 2>&1
  luajit -e '
    local s = io.read("*a")
    local rps = tonumber(s:match("Requests/sec:%s*([%d.]+)")) or 0
    local v, unit = s:match("\n%s*99%%%s+([%d.]+)(%a+)")
    local p99 = tonumber(v) or -1
    if unit == "us" then p99 = p99 / 1000 elseif unit == "s" then p99 = p99 * 1000 end
    local non2xx = tonumber(s:match("Non%-2xx or 3xx responses: (%d+)")) or 0
    local errs = 0
    for n in (s:match("Socket errors:([^\n]*)") or ""):gmatch("%d+") do errs = errs + tonumber(n) end
    print(string.format("%.0f %.2f %d %d", rps, p99, non2xx, errs))' < "$tmp/wrk.out"
}

declare -A RPS P99 BAD
run_case() {  # key url [script]
  local key=$1; shift
  read -r rps p99 non2xx errs < <(measure "$@")
  RPS[$key]=$rps; P99[$key]=$p99; BAD[$key]=$((non2xx + errs))
}

echo "== HTTP serving: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores (load average $(cut -d' ' -f1-3 /proc/loadavg))"

# (a) and (b): asyncrt
port=$(free_port)
build/asyncrt bench/http_server.lua "$port" > "$tmp/asyncrt.log" 2>&1 &
apid=$!; pids+=("$apid")
wait_up "http://127.0.0.1:$port/" || exit 1
curl -s -H 'Host: suite.test' "http://127.0.0.1:$port/" > "$tmp/page.html"
run_case page "http://127.0.0.1:$port/"
run_case post "http://127.0.0.1:$port/" bench/wrk/post.lua
rss=$(awk '/VmRSS/ {print $2}' /proc/"$apid"/status 2>/dev/null)
stop "$apid"
bytes=$(wc -c < "$tmp/page.html")

# (c) nginx: the same bytes as a static file
if [ -x "$NGINX" ]; then
  port=$(free_port)
  mkdir -p "$tmp/nginx/html"
  cp "$tmp/page.html" "$tmp/nginx/html/index.html"
  cat > "$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $tmp/nginx/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  default_type "text/html; charset=utf-8";
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $tmp/nginx/html;
    location = / { try_files /index.html =404; }
  }
}
EOF
  "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2> "$tmp/nginx/stderr" &
  npid=$!; pids+=("$npid")
  if wait_up "http://127.0.0.1:$port/"; then run_case nginx "http://127.0.0.1:$port/"; fi
  stop "$npid"
fi

# (d) node: the same bytes from memory
if command -v node >/dev/null; then
  port=$(free_port)
  node -e '
    const http = require("http"), fs = require("fs");
    const body = fs.readFileSync(process.argv[1]);
    http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Length": body.length });
      res.end(body);
    }).listen(+process.argv[2], "127.0.0.1");' "$tmp/page.html" "$port" &
  dpid=$!; pids+=("$dpid")
  if wait_up "http://127.0.0.1:$port/"; then run_case node "http://127.0.0.1:$port/"; fi
  stop "$dpid"
fi

ratio() { luajit -e "local a, b = tonumber('${1:-0}'), tonumber('${2:-0}'); print(b and b > 0 and string.format('%.2f', a / b) or '-')"; }

printf '\n%-44s %10s %10s %8s\n' "server ($bytes-byte page)" "req/s" "p99 ms" "errors"
printf '%-44s %10s %10s %8s\n' "(a) asyncrt: the counter page, rendered" "${RPS[page]}" "${P99[page]}" "${BAD[page]}"
printf '%-44s %10s %10s %8s\n' "(b) asyncrt: the handler POST" "${RPS[post]}" "${P99[post]}" "${BAD[post]}"
printf '%-44s %10s %10s %8s\n' "(c) nginx: the same bytes, static file" "${RPS[nginx]:--}" "${P99[nginx]:--}" "${BAD[nginx]:--}"
printf '%-44s %10s %10s %8s\n' "(d) node http: the same bytes from memory" "${RPS[node]:--}" "${P99[node]:--}" "${BAD[node]:--}"
echo
echo "asyncrt page / nginx static: $(ratio "${RPS[page]}" "${RPS[nginx]:-0}")   (goal >= 0.50)"
echo "asyncrt page / node static:  $(ratio "${RPS[page]}" "${RPS[node]:-0}")   (goal >= 1.00)"
echo "asyncrt POST / nginx static: $(ratio "${RPS[post]}" "${RPS[nginx]:-0}")"
echo "asyncrt RSS after the runs: ${rss:-?} kB"

echo
echo "== the browser client, minified + gzipped (client/size.sh)"
if out=$(sh client/size.sh 2>&1); then :; fi
echo "$out"
gz=$(printf '%s' "$out" | sed -n 's/.* \([0-9]*\) minified+gzipped.*/\1/p')
if [ -n "$gz" ]; then
  luajit -e "print(string.format('asyncrt %.1f KB   seed 34.6 KB   Datastar 12.7 KB   htmx 16.8 KB', $gz / 1000))"
fi
