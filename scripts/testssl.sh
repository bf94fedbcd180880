#!/usr/bin/env bash
# Scans a running HTTPS listener with testssl.sh and fails on any finding
# rated MEDIUM or above.
#
#   scripts/testssl.sh [--ca FILE] [--accept ID]... [--fast] HOST:PORT
#
#   --ca FILE    also trust this CA (e.g. data/tls/ca.crt from `portcullis cert dev`),
#                so the chain of trust is judged as a client that trusts it would
#   --accept ID  report this finding id (e.g. cert_revocation) but do not fail on it:
#                for what belongs to a development certificate, not to the listener
#   --fast       testssl's --fast (fewer cipher probes); default: the full scan
#
# Prints every finding rated MEDIUM, HIGH or CRITICAL, and testssl's own
# warnings about the scan; exits 0 when there is no such finding (other than
# accepted ones), 1 when there is, 2 on bad usage or when the scan could not
# run. testssl.sh is the Debian package of that name (its command is
# `testssl`); it is installed with apt-get when missing and this runs as root.
set -euo pipefail

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

ca=""
accept=""
fast=()
target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ca) [ $# -ge 2 ] || usage; ca="$2"; shift 2 ;;
    --accept)
      [ $# -ge 2 ] && [[ "$2" =~ ^[A-Za-z0-9_.-]+$ ]] || usage
      accept="$accept,$2"; shift 2 ;;
    --fast) fast=(--fast); shift ;;
    -h|--help) usage ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [ -z "$target" ] || usage; target="$1"; shift ;;
  esac
done
[ -n "$target" ] || usage
if ! [[ "$target" =~ ^[A-Za-z0-9.:-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:]+\]:[0-9]{1,5}$ ]]; then
  echo "expected HOST:PORT, got: $target" >&2
  exit 2
fi
if [ -n "$ca" ] && [ ! -r "$ca" ]; then
  echo "cannot read the CA file $ca" >&2
  exit 2
fi

testssl=""
for candidate in testssl testssl.sh; do
  if command -v "$candidate" >/dev/null 2>&1; then testssl="$candidate"; break; fi
done
if [ -z "$testssl" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing testssl.sh (apt-get)..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh >&2
    testssl=testssl
  else
    echo "testssl.sh is not installed (Debian: apt-get install testssl.sh)" >&2
    exit 2
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
json="$work/findings.json"

args=(--quiet --color 0 --warnings batch --nodns min --jsonfile "$json" "${fast[@]}")
if [ -n "$ca" ]; then args+=(--add-ca "$ca"); fi

version="$("$testssl" --version 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep -m1 -oE 'testssl(\.sh)? +[0-9][0-9.]*' | tr -s ' ' || true)"
echo "${version:-testssl} against $target..." >&2
set +e
"$testssl" "${args[@]}" "$target" >"$work/stdout.txt" 2>&1
status=$?
set -e
if [ ! -s "$json" ]; then
  echo "the scan produced no findings file (testssl exit $status):" >&2
  tail -n 20 "$work/stdout.txt" >&2
  exit 2
fi

# testssl writes one JSON object per finding: id, severity, finding (and ip, port, cve).
node - "$json" "$accept" <<'EOF'
const fs = require('node:fs');
const findings = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accepted = new Set(process.argv[3].split(',').filter(Boolean));
const rank = { CRITICAL: 4, HIGH: 3, MEDIUM: 2 };
const serious = findings.filter((f) => rank[f.severity] !== undefined);
const bad = serious.filter((f) => !accepted.has(f.id));
const warn = findings.filter((f) => f.severity === 'WARN' || f.severity === 'FATAL');
const counts = {};
for (const f of findings) counts[f.severity] = (counts[f.severity] ?? 0) + 1;
console.log(`findings by severity: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
for (const f of warn) console.log(`scan ${f.severity}: ${f.id}: ${f.finding}`);
serious.sort((a, b) => rank[b.severity] - rank[a.severity]);
for (const f of serious) {
  console.log(`${f.severity.padEnd(8)} ${f.id}: ${f.finding}${accepted.has(f.id) ? '  (accepted with --accept)' : ''}`);
}
if (findings.some((f) => f.severity === 'FATAL')) process.exit(2);
console.log(bad.length === 0 ? 'no finding rated MEDIUM or above' : `${bad.length} finding(s) rated MEDIUM or above`);
process.exit(bad.length === 0 ? 0 : 1);
EOF
