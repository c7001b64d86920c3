#!/usr/bin/env bash
# Runs the smoke test (every route of the contract) against the app under
# the real Spin CLI, on the embedded default and on PostgreSQL + Redis.
#
# Spin is the reference the local host imitates; this is where a difference
# between them shows. SPIN names the CLI (default: ../shared/bin/spin, the
# Spin 4.0.2 the project is checked against); without one it says so and
# stops without failing, since Spin is not in the package registries.
set -euo pipefail
cd "$(dirname "$0")/../.."
spin="${SPIN:-../shared/bin/spin}"
if [ ! -x "$spin" ]; then
  echo "no Spin CLI at $spin (set SPIN=path/to/spin): not run"
  exit 0
fi
"$spin" --version

scripts/build-component.sh auth
scripts/build-component.sh questions

database_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
redis_url="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
admin="admin@smoke.example.com"
work=$(mktemp -d)
spin_pid=""
database=""
stop() {
  if [ -n "$spin_pid" ]; then
    kill "$spin_pid" 2> /dev/null || true
    wait "$spin_pid" 2> /dev/null || true
    spin_pid=""
  fi
}
cleanup() {
  stop
  if [ -n "$database" ]; then
    psql -q "$database_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" > /dev/null || true
    redis-cli -u "$redis_url" --scan --pattern "spin-smoke:$database:*" \
      | xargs -r redis-cli -u "$redis_url" del > /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# run NAME [VARIABLE=VALUE ...]: serves the app under Spin with those
# variables and runs the smoke test against it.
run() {
  local name="$1"
  shift
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/$name"
  echo "==> real Spin, $name, on 127.0.0.1:$port"
  env "$@" SPIN_VARIABLE_ADMIN_EMAILS="$admin" \
    "$spin" up --listen "127.0.0.1:$port" --state-dir "$work/$name/.spin" \
    > "$work/$name/spin.log" 2>&1 &
  spin_pid=$!
  for _ in $(seq 1 240); do
    curl -fs -m 5 "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
    kill -0 "$spin_pid" 2> /dev/null || break
    sleep 0.5
  done
  # Every request is bounded: a request that hangs inside Spin (as
  # spinframework/spin#3671 made them) fails the run instead of stalling it.
  # Spin keeps each component's output in the state folder's logs.
  if ! SMOKE_ADMIN_EMAIL="$admin" SMOKE_LOG="$work/$name/.spin/logs/auth_stderr.txt" \
    timeout 300 python3 tests/smoke/smoke.py "http://127.0.0.1:$port"; then
    echo "--- Spin's output"
    cat "$work/$name/spin.log"
    find "$work/$name/.spin/logs" -type f -exec sh -c 'echo "--- $1"; tail -n 50 "$1"' _ {} \; 2> /dev/null
    exit 1
  fi
  stop
}

run embedded-default

database="spin_auth_spin_$(date +%s)_$$"
psql -q "$database_url" -c "CREATE DATABASE $database" > /dev/null
pg_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$database_url" "$database")
run postgres-redis \
  SPIN_VARIABLE_DATABASE_URL="$pg_url" \
  SPIN_VARIABLE_REDIS_URL="$redis_url" \
  SPIN_VARIABLE_REDIS_KEY_PREFIX="spin-smoke:$database:" \
  SPIN_VARIABLE_JWT_KEY="$(head -c 32 /dev/urandom | base64)" \
  SPIN_VARIABLE_MFA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"

# Mail goes out through Spin's outbound HTTP after the response: a
# registration's verification link reaches a mail API stand-in.
echo "==> real Spin, mail delivery to an HTTP mail API"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sink_port=$(free_port)
port=$(free_port)
python3 tests/spin/mail_sink.py "$sink_port" "$work/mail.jsonl" &
sink_pid=$!
mkdir -p "$work/mail"
SPIN_VARIABLE_MAIL_URL="http://127.0.0.1:$sink_port/v1/send" \
  SPIN_VARIABLE_MAIL_ALLOWED_HOST="http://127.0.0.1:$sink_port" \
  SPIN_VARIABLE_MAIL_API_KEY="spin-run-key" \
  "$spin" up --listen "127.0.0.1:$port" --state-dir "$work/mail/.spin" > "$work/mail/spin.log" 2>&1 &
spin_pid=$!
for _ in $(seq 1 240); do
  curl -fs -m 5 "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
  sleep 0.5
done
status=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/auth/register" \
  -H 'content-type: application/json' -d '{"email": "mail@spin.example.com", "password": "correct horse battery staple"}')
for _ in $(seq 1 100); do
  [ -s "$work/mail.jsonl" ] && break
  sleep 0.1
done
kill "$sink_pid" 2> /dev/null || true
stop
if [ "$status" != 201 ] || ! python3 - "$work/mail.jsonl" <<'PY'
import json, sys
mail = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
assert len(mail) == 1, mail
assert mail[0]["authorization"] == "Bearer spin-run-key", mail
assert mail[0]["body"]["to"] == "mail@spin.example.com", mail
assert "/verify-email?token=" in mail[0]["body"]["text"], mail
PY
then
  echo "FAIL: registration ($status) did not deliver its mail"
  cat "$work/mail/spin.log" "$work/mail/.spin/logs/auth_stderr.txt" 2> /dev/null || true
  exit 1
fi
echo "ok: the verification mail reached the mail API"
echo "real Spin: every route answered on both backends, and mail was delivered"
