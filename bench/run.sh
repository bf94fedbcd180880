#!/usr/bin/env bash
# End-to-end benchmark: wrk -> {nginx directly | bare node:http proxy | Portcullis} -> nginx.
# See bench/README.md for the knobs and how to read the output.
# Starters and *_state variables are reached indirectly through ensure() and the traps.
# shellcheck disable=SC2317,SC2034
set -euo pipefail

bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$bench")
export BENCH_DURATION=${BENCH_DURATION:-10s}
export BENCH_WARMUP=${BENCH_WARMUP:-3s}
export BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-50}
export BENCH_SCENARIOS=${BENCH_SCENARIOS:-}
# nginx lives in /usr/sbin, which a non-root PATH often lacks.
export PATH=$PATH:/usr/sbin

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  echo "installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y "${missing[@]}"
fi

tmp=$(mktemp -d -t portcullis-bench.XXXXXX)
# nginx workers may run as another user when started by root; they need to reach the temp dir.
chmod 755 "$tmp"
pids=()
wrk_pid=

cleanup() {
  local pid
  [[ -z $wrk_pid ]] || pids+=("$wrk_pid")
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in {1..50}; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The process under test gets CPU 0 to itself; nginx and wrk share CPU 1.
if (($(nproc) >= 2)); then
  pin_test=(taskset -c 0)
  pin_load=(taskset -c 1)
  export BENCH_PINNED=1
else
  echo "warning: fewer than 2 CPUs, running unpinned; numbers will be noisy" >&2
  pin_test=()
  pin_load=()
  export BENCH_PINNED=0
fi

read -r port_nginx port_bare port_gw port_admin port_undici < <(node "$bench/free-ports.mjs" 5)
results=$tmp/results.jsonl
: >"$results"
mkdir -p "$bench/results"

# --- upstream: nginx answering GET /bench with a fixed 1 KB JSON body ---

prefix='{"id":"bench","ok":true,"data":"'
suffix='"}'
pad=$((1024 - ${#prefix} - ${#suffix}))
body=$prefix$(printf 'x%.0s' $(seq "$pad"))$suffix
user_line=
# As root, nginx would switch its worker to nobody, which cannot use temp paths owned by us.
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
  # The default (1000) makes nginx close pooled connections every 1000 requests, measuring reconnects.
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port_nginx;
    location /bench {
      default_type application/json;
      return 200 '$body';
    }
    location / { return 404; }
  }
}
EOF

"${pin_load[@]}" nginx -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" 2>"$tmp/nginx.stderr" &
pids+=($!)
if ! node "$bench/wait-http.mjs" "http://127.0.0.1:$port_nginx/bench" 10 $!; then
  cat "$tmp/nginx.stderr" "$tmp/nginx-error.log" >&2 2>/dev/null || true
  echo "nginx failed to start" >&2
  exit 1
fi

# --- processes under test, started on first use so BENCH_SCENARIOS can leave them out ---

bare_state=new
start_bare() {
  "${pin_test[@]}" node "$bench/bare-proxy.mjs" "$port_bare" "$port_nginx" 2>"$tmp/bare.stderr" &
  pids+=($!)
  bare_pid=$!
  node "$bench/wait-http.mjs" "http://127.0.0.1:$port_bare/bench" 10 $! || {
    cat "$tmp/bare.stderr" >&2
    return 1
  }
}

undici_state=new
start_undici() {
  "${pin_test[@]}" node "$bench/bare-undici-proxy.mjs" "$port_undici" "$port_nginx" 2>"$tmp/undici.stderr" &
  pids+=($!)
  undici_pid=$!
  node "$bench/wait-http.mjs" "http://127.0.0.1:$port_undici/bench" 10 $! || {
    cat "$tmp/undici.stderr" >&2
    return 1
  }
}

portcullis_state=new
start_portcullis() {
  local main=$root/dist/cli/main.js
  # Build when dist is missing or older than the sources, so we never measure stale code.
  if [[ ! -f $main ]] || [[ -n $(find "$root/src" -newer "$main" -name '*.ts' -print -quit) ]]; then
    echo "building Portcullis (npm run build)" >&2
    if ! (cd "$root" && npm run build) >"$tmp/build.log" 2>&1; then
      tail -n 30 "$tmp/build.log" >&2
      [[ -f $main ]] || return 1
      echo "build reported errors; trying dist/ as emitted" >&2
    fi
  fi
  if [[ ! -f $main ]]; then
    echo "dist/cli/main.js does not exist after npm run build (is src/cli/main.ts written yet?)" >&2
    return 1
  fi
  # Add a route here for each new Portcullis scenario.
  cat >"$tmp/portcullis.yaml" <<EOF
listen: { host: 127.0.0.1, port: $port_gw }
admin: { host: 127.0.0.1, port: $port_admin }
log: { level: warn }
auth:
  jwt:
    providers:
      - { name: bench, issuer: "urn:bench", audience: [bench], algorithms: [HS256], hmac_secret: "\${env:BENCH_JWT_SECRET}" }
  api_keys: {}
upstreams:
  backend: { url: "http://127.0.0.1:$port_nginx" }
routes:
  - path: /bench
    methods: [GET]
    upstream: backend
    auth: none
  - path: /bench-jwt
    methods: [GET]
    upstream: backend
    auth: [jwt]
    authorize: { scopes: [bench] }
  - path: /bench-key
    methods: [GET]
    upstream: backend
    auth: [api_key]
    authorize: { scopes: [bench] }
EOF
  mkdir -p "$tmp/portcullis-data"
  export BENCH_JWT_SECRET=bench-secret-of-at-least-thirty-two-bytes
  PORTCULLIS_DATA=$tmp/portcullis-data "${pin_test[@]}" node "$main" start --config "$tmp/portcullis.yaml" \
    >"$tmp/portcullis.stdout" 2>"$tmp/portcullis.stderr" &
  pids+=($!)
  portcullis_pid=$!
  node "$bench/wait-http.mjs" "http://127.0.0.1:$port_admin/readyz" 20 $! || {
    echo "--- Portcullis stdout/stderr (last lines) ---" >&2
    tail -n 20 "$tmp/portcullis.stdout" >&2
    tail -n 50 "$tmp/portcullis.stderr" >&2
    echo "---------------------------------------------" >&2
    return 1
  }
}

# ensure NAME STARTER: start a process under test once; later calls reuse the outcome.
ensure() {
  local var=${1}_state
  if [[ ${!var} == new ]]; then
    if "$2"; then printf -v "$var" up; else printf -v "$var" down; fi
  fi
  [[ ${!var} == up ]]
}

wanted() {
  [[ -z $BENCH_SCENARIOS ]] && return 0
  local pattern patterns
  # Split on commas without pathname expansion: an entry such as 'portcullis*'
  # must stay a pattern, not become the files of the current folder it matches.
  IFS=, read -ra patterns <<<"$BENCH_SCENARIOS"
  for pattern in "${patterns[@]}"; do
    # shellcheck disable=SC2053
    [[ $1 == $pattern ]] && return 0
  done
  return 1
}

record() { # record NAME URL STATUS REASON
  printf '{"name":"%s","url":"%s","status":"%s","reason":"%s"}\n' "$1" "$2" "$3" "$4" >>"$results"
}

# wrk runs in the background and we wait for it: a signal interrupts `wait` at once, whereas bash defers
# its traps until a foreground child exits, so `kill <this script>` would otherwise sit out the whole run.
run_wrk() {
  "${pin_load[@]}" wrk -t1 -c"$BENCH_CONNECTIONS" -s "$bench/report.lua" "$@" &
  wrk_pid=$!
  local rc=0
  wait "$wrk_pid" || rc=$?
  wrk_pid=
  return "$rc"
}

# scenario NAME URL [extra wrk args, e.g. -H 'Authorization: Bearer ...']
# Names starting with "portcullis" run against Portcullis, "bare-proxy" against the bare proxy.
# cpu_ticks PID: user + system CPU time of a process (all its threads), in clock ticks; empty if gone.
cpu_ticks() {
  [[ -n ${1:-} && -r /proc/$1/stat ]] || return 0
  # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
  local stat rest
  stat=$(</proc/"$1"/stat)
  rest=${stat##*) }
  read -ra fields <<<"$rest"
  echo $((fields[11] + fields[12]))
}
clk_tck=$(getconf CLK_TCK)

scenario() {
  local name=$1 url=$2
  shift 2
  wanted "$name" || return 0
  case $name in
  portcullis*)
    if ! ensure portcullis start_portcullis; then
      echo "SKIPPING $name: Portcullis did not start (see above)" >&2
      record "$name" "$url" skipped "Portcullis did not start"
      return 0
    fi
    ;;
  bare-undici*)
    if ! ensure undici start_undici; then
      record "$name" "$url" failed "bare undici proxy did not start"
      return 0
    fi
    ;;
  bare-proxy*)
    if ! ensure bare start_bare; then
      record "$name" "$url" failed "bare proxy did not start"
      return 0
    fi
    ;;
  esac

  echo "== $name: $url (warm-up $BENCH_WARMUP, then $BENCH_DURATION)" >&2
  local warm run out=$bench/results/wrk-$name.txt pid= cpu0 cpu1
  case $name in
  portcullis*) pid=${portcullis_pid:-} ;;
  bare-undici*) pid=${undici_pid:-} ;;
  bare-proxy*) pid=${bare_pid:-} ;;
  esac
  if ! BENCH_CHECK_STATUS=1 run_wrk -d"$BENCH_WARMUP" "$@" "$url" >"$tmp/warmup.txt" ||
    ! warm=$(grep '^{"rps"' "$tmp/warmup.txt") ||
    ! cpu0=$(cpu_ticks "$pid") ||
    ! run_wrk -d"$BENCH_DURATION" --latency "$@" "$url" >"$out" ||
    ! cpu1=$(cpu_ticks "$pid") ||
    ! run=$(grep '^{"rps"' "$out"); then
    cat "$tmp/warmup.txt" >>"$out"
    record "$name" "$url" failed "wrk failed, see bench/results/wrk-$name.txt"
    return 0
  fi
  # CPU time of the process under test over the measured run, per request: steadier than req/s
  # on a shared machine, since it does not count the time the process waited for a core.
  local cpu=null
  [[ -n $cpu0 && -n $cpu1 ]] && cpu=$(node -e 'const [t, hz, r] = process.argv.slice(1).map(Number); console.log(r > 0 ? ((t * 1e6) / hz / r).toFixed(1) : "null")' \
    "$((cpu1 - cpu0))" "$clk_tck" "$(node -e 'console.log(JSON.parse(process.argv[1]).requests)' "$run")")
  printf '{"name":"%s","url":"%s","status":"ok",%s,"cpu_us_per_request":%s,"warmup":%s}\n' "$name" "$url" "${run:1:-1}" "$cpu" "$warm" \
    >>"$results"
}

scenario direct "http://127.0.0.1:$port_nginx/bench"
scenario bare-proxy "http://127.0.0.1:$port_bare/bench"
scenario bare-undici "http://127.0.0.1:$port_undici/bench"
scenario portcullis "http://127.0.0.1:$port_gw/bench"
if wanted 'portcullis-*' && ensure portcullis start_portcullis; then
  # One token and one key, reused by every request: the caches are warm, as for a busy client.
  bench_token=$(cd "$root" && node --input-type=module -e "
    import { SignJWT } from 'jose';
    process.stdout.write(await new SignJWT({ scope: 'bench' }).setProtectedHeader({ alg: 'HS256' })
      .setIssuer('urn:bench').setAudience('bench').setSubject('bench').setExpirationTime('1h')
      .sign(new TextEncoder().encode(process.env.BENCH_JWT_SECRET)));")
  bench_key=$(PORTCULLIS_DATA=$tmp/portcullis-data node "$root/dist/cli/main.js" keys create \
    --config "$tmp/portcullis.yaml" --name bench --scopes bench 2>/dev/null)
  scenario portcullis-jwt "http://127.0.0.1:$port_gw/bench-jwt" -H "Authorization: Bearer $bench_token"
  scenario portcullis-apikey "http://127.0.0.1:$port_gw/bench-key" -H "X-API-Key: $bench_key"
fi

export BENCH_NGINX_VERSION BENCH_WRK_VERSION
BENCH_NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*/||')
BENCH_WRK_VERSION=$({ wrk -v 2>&1 || true; } | head -n 1 | awk '{print $2}')
echo >&2
status=0
node "$bench/summarize.mjs" "$results" "$bench/results/latest.json" || status=$?
echo "results: bench/results/latest.json"
exit "$status"
