#!/usr/bin/env bash
# Runs the smoke test against the local host on its embedded default, as a
# first-time user would start it (`cargo run`, nothing configured).
set -euo pipefail
cd "$(dirname "$0")/../.."
state=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin="admin@smoke.example.com"
SPIN_VARIABLE_ADMIN_EMAILS="$admin" \
  target/debug/spin-auth --no-build --state-dir "$state/.spin" --listen "127.0.0.1:$port" > "$state/host.log" 2>&1 &
host=$!
trap 'kill $host 2>/dev/null || true; wait $host 2>/dev/null || true; rm -rf "$state"' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  sleep 0.5
done
SMOKE_ADMIN_EMAIL="$admin" SMOKE_LOG="$state/host.log" \
  python3 tests/smoke/smoke.py "http://127.0.0.1:$port" || { cat "$state/host.log"; exit 1; }
