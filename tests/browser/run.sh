#!/usr/bin/env bash
# Browser test of /docs: starts the app on its embedded default and drives
# Swagger UI in headless Chromium (Debian's package) with playwright-core.
# The screenshot is kept in target/screenshots/ as a CI artifact.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  apt-get install -y -q chromium > /dev/null 2>&1 \
    || { apt-get update -q > /dev/null && apt-get install -y -q chromium > /dev/null; }
fi
npm ci --no-audit --no-fund --silent

root=$(cd ../.. && pwd)
state=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$root/target/screenshots"
admin="admin-$(date +%s)@example.com"
(cd "$state" && SPIN_VARIABLE_ADMIN_EMAILS="$admin" exec "$root/target/debug/spin-auth" --from "$root/spin.toml" --state-dir "$state/.spin" \
  --no-build --listen "127.0.0.1:$port") \
  > "$root/target/browser-host.log" 2>&1 &
host=$!
trap 'kill $host 2>/dev/null || true; wait $host 2>/dev/null || true; rm -rf "$state"' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  sleep 1
done
timeout 300 node docs.mjs "http://127.0.0.1:$port" "$root/target/screenshots/docs.png" \
  "$admin" "$root/target/browser-host.log"
