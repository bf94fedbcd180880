#!/usr/bin/env bash
# HTTP/2 vs HTTP/1.1 throughput through Portcullis's TLS listener, measured with h2load
# (Debian package nghttp2-client) for both protocols, so the client is the same.
# See bench/http2/README.md. Not run in CI.
#
#   bash bench/http2/run.sh
#   H2_DURATION=5 H2_CLIENTS=50 bash bench/http2/run.sh
set -euo pipefail

bench=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$bench/.." && pwd)
here=$bench/http2
H2_DURATION=${H2_DURATION:-10}  # seconds measured per scenario
H2_WARMUP=${H2_WARMUP:-3}       # seconds of unmeasured load before each
H2_CLIENTS=${H2_CLIENTS:-50}    # requests in flight in every scenario

missing=()
for tool in h2load nginx openssl taskset; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]} > 0)); then
  echo "missing: ${missing[*]} (apt-get install -y nghttp2-client nginx-light openssl util-linux)" >&2
  exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Portcullis on CPU 0 alone; nginx and h2load share CPU 1 (as bench/run.sh does).
if (($(nproc) >= 2)); then
  pin_test=(taskset -c 0)
  pin_load=(taskset -c 1)
else
  echo "fewer than 2 CPUs: nothing is pinned, the numbers mix the client's and the gateway's work" >&2
  pin_test=()
  pin_load=()
fi

read -r port_nginx port_gw port_admin < <(node "$bench/free-ports.mjs" 3)

# --- upstream: nginx answering GET /bench with a fixed 1 KB JSON body ---
prefix='{"id":"bench","ok":true,"data":"'
suffix='"}'
pad=$((1024 - ${#prefix} - ${#suffix}))
body=$prefix$(printf 'x%.0s' $(seq "$pad"))$suffix
user_line=
[[ $EUID -eq 0 ]] && user_line="user $(id -un);"
cat >"$tmp/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx-body;
  proxy_temp_path $tmp/nginx-proxy;
  fastcgi_temp_path $tmp/nginx-fastcgi;
  uwsgi_temp_path $tmp/nginx-uwsgi;
  scgi_temp_path $tmp/nginx-scgi;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port_nginx;
    location /bench { default_type application/json; return 200 '$body'; }
    location / { return 404; }
  }
}
EOF
"${pin_load[@]}" nginx -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" 2>"$tmp/nginx.stderr" &
pids+=($!)
node "$bench/wait-http.mjs" "http://127.0.0.1:$port_nginx/bench" 10 $! || {
  cat "$tmp/nginx.stderr" "$tmp/nginx-error.log" >&2 2>/dev/null || true
  exit 1
}

# --- Portcullis over TLS, HTTP/2 on (the default), a self-signed certificate made here ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$tmp/gw.key" -out "$tmp/gw.crt" 2>/dev/null
chmod 600 "$tmp/gw.key"
cat >"$tmp/portcullis.yaml" <<EOF
listen:
  host: 127.0.0.1
  port: $port_gw
  tls:
    certificates: [{ cert: $tmp/gw.crt, key: $tmp/gw.key }]
    watch: false
admin: { host: 127.0.0.1, port: $port_admin }
log: { level: warn }
upstreams:
  backend: { url: "http://127.0.0.1:$port_nginx" }
routes:
  - path: /bench
    methods: [GET]
    upstream: backend
    auth: none
EOF
mkdir -p "$tmp/data"
# The sources through tsx: no build step, and what is measured is the working tree.
(cd "$root" && PORTCULLIS_DATA=$tmp/data exec "${pin_test[@]}" node --import tsx src/cli/main.ts start --config "$tmp/portcullis.yaml") \
  >"$tmp/portcullis.stdout" 2>"$tmp/portcullis.stderr" &
pids+=($!)
gw_pid=$!
node "$bench/wait-http.mjs" "http://127.0.0.1:$port_admin/readyz" 30 $! || {
  tail -n 30 "$tmp/portcullis.stdout" "$tmp/portcullis.stderr" >&2
  exit 1
}

mkdir -p "$here/results"
results=$here/results/latest.jsonl
: >"$results"
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# scenario NAME h2load-arguments…: warm-up, then a measured run; CPU of the gateway per request.
scenario() {
  local name=$1
  shift
  echo "== $name: h2load $* (warm-up ${H2_WARMUP}s, then ${H2_DURATION}s)" >&2
  "${pin_load[@]}" h2load -D "$H2_WARMUP" "$@" "https://127.0.0.1:$port_gw/bench" >/dev/null 2>&1 || true
  local c0 c1 out=$here/results/h2load-$name.txt
  c0=$(cpu_ticks "$gw_pid")
  "${pin_load[@]}" h2load -D "$H2_DURATION" "$@" "https://127.0.0.1:$port_gw/bench" >"$out" 2>&1
  c1=$(cpu_ticks "$gw_pid")
  node --input-type=module -e '
    import { readFileSync } from "node:fs";
    const [name, file, ticks, hz] = process.argv.slice(1);
    const text = readFileSync(file, "utf8");
    const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(text)?.[1] ?? NaN);
    const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(text);
    const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
    const lat = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(text);
    const proto = /Application protocol: (\S+)/.exec(text)?.[1];
    const done = Number(m?.[3] ?? 0);
    const cpu = done > 0 ? (Number(ticks) * 1e6) / Number(hz) / done : null;
    console.log(JSON.stringify({ name, protocol: proto, rps, done, failed: Number(m?.[5] ?? 0), errored: Number(m?.[6] ?? 0),
      non2xx: status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : null,
      latency_mean: lat?.[3], latency_sd: lat?.[4], cpu_us_per_request: cpu === null ? null : Number(cpu.toFixed(1)) }));
  ' "$name" "$out" "$((c1 - c0))" "$clk_tck" >>"$results"
}

# The same number of requests in flight (H2_CLIENTS) in every scenario.
scenario h1 --h1 -c "$H2_CLIENTS" -m 1 -t 1
scenario h2-one-stream-per-connection -c "$H2_CLIENTS" -m 1 -t 1
scenario h2-multiplexed-10-streams -c "$((H2_CLIENTS / 10))" -m 10 -t 1

node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  const [file, json] = process.argv.slice(1);
  const rows = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const pad = (s, n) => String(s).padEnd(n);
  console.log(pad("scenario", 32) + pad("proto", 10) + pad("req/s", 10) + pad("mean", 10) + pad("non2xx", 8) + pad("failed", 8) + "CPU µs/req");
  for (const r of rows) console.log(pad(r.name, 32) + pad(r.protocol, 10) + pad(Math.round(r.rps), 10) + pad(r.latency_mean, 10) + pad(r.non2xx, 8) + pad(r.failed + r.errored, 8) + r.cpu_us_per_request);
  const h1 = rows.find((r) => r.name === "h1");
  for (const r of rows.filter((r) => r !== h1)) {
    console.log(`${r.name} vs h1: ${(r.rps / h1.rps).toFixed(2)}x throughput, ${(r.cpu_us_per_request / h1.cpu_us_per_request).toFixed(2)}x CPU per request`);
  }
  writeFileSync(json, JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2));
  if (rows.some((r) => r.non2xx > 0 || r.failed + r.errored > 0)) { console.log("FLAGGED: some requests failed"); process.exit(1); }
' "$results" "$here/results/latest.json"
