#!/usr/bin/env bash
# Runs the smoke test (every route of the contract) against the app under
# the real Spin CLI, on the embedded default and on PostgreSQL + Redis;
# then stores that go down and come back and a mail API that refuses
# (tests/spin/faults.py), mail delivery, EdDSA tokens checked by another
# component, and the example runtime configuration.
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
scripts/build-component.sh admin

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
  if [ -n "${sink_pid:-}" ]; then kill "$sink_pid" 2> /dev/null || true; fi
  if [ -n "$database" ]; then
    for name in "$database" "${database}_faults"; do
      psql -q "$database_url" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" > /dev/null || true
      scripts/redis-forget.sh "spin-smoke:$name:" -u "$redis_url" > /dev/null || true
    done
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
# database_at NAME: $database_url with NAME as its database.
database_at() {
  python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$database_url" "$1"
}
pg_url=$(database_at "$database")
run postgres-redis \
  SPIN_VARIABLE_DATABASE_URL="$pg_url" \
  SPIN_VARIABLE_REDIS_URL="$redis_url" \
  SPIN_VARIABLE_REDIS_KEY_PREFIX="spin-smoke:$database:" \
  SPIN_VARIABLE_JWT_KEY="$(head -c 32 /dev/urandom | base64)" \
  SPIN_VARIABLE_MFA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"

# Faults where Spin's own outbound connections break: PostgreSQL and Redis
# reached through proxies that are cut and restored, and a mail API that
# refuses and then answers.
echo "==> real Spin, stores that go down and come back, mail that is refused"
psql -q "$database_url" -c "CREATE DATABASE ${database}_faults" > /dev/null
mkdir -p "$work/faults"
timeout 300 python3 tests/spin/faults.py "$spin" \
  "$(database_at "${database}_faults")" \
  "$redis_url" "spin-smoke:${database}_faults:" "$work/faults"

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
  -H 'content-type: application/json' -d '{"email": "mail@spin.example.com", "password": "correct horse battery staple"}' || true)
# Delivery runs after the response; a slow machine gets 30 s, as faults.py
# gives the same step.
for _ in $(seq 1 300); do
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

# EdDSA under real Spin, and the example component beside it: it fetches
# the JWKS over Spin's outbound HTTP, keeps it in Spin's key-value store,
# accepts a real token and refuses a tampered one.
echo "==> real Spin, EdDSA tokens checked by examples/protected"
scripts/build-component.sh protected-example
port=$(free_port)
example_port=$(free_port)
mkdir -p "$work/eddsa" "$work/example"
SPIN_VARIABLE_JWT_ALGORITHM=EdDSA \
  "$spin" up --listen "127.0.0.1:$port" --state-dir "$work/eddsa/.spin" > "$work/eddsa/spin.log" 2>&1 &
spin_pid=$!
SPIN_VARIABLE_AUTH_JWKS_URL="http://127.0.0.1:$port/.well-known/jwks.json" \
  SPIN_VARIABLE_AUTH_ALLOWED_HOST="http://127.0.0.1:$port" \
  "$spin" up -f examples/protected/spin.toml --listen "127.0.0.1:$example_port" \
  --state-dir "$work/example/.spin" > "$work/example/spin.log" 2>&1 &
example_pid=$!
for _ in $(seq 1 240); do
  curl -fs -m 5 "http://127.0.0.1:$port/health" > /dev/null 2>&1 \
    && curl -s -m 5 -o /dev/null "http://127.0.0.1:$example_port/hello" && break
  sleep 0.5
done
if ! python3 - "http://127.0.0.1:$port" "http://127.0.0.1:$example_port" <<'PY'
import base64, json, sys, urllib.error, urllib.request
service, example = sys.argv[1], sys.argv[2]
def call(url, body=None, token=None):
    headers = {"content-type": "application/json"} if body else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode() if body else None, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
user = {"email": "eddsa@spin.example.com", "password": "correct horse battery staple"}
assert call(service + "/auth/register", user)[0] == 201
status, body = call(service + "/auth/login", user)
token = json.loads(body)["access_token"]
header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
assert header["alg"] == "EdDSA" and header["kid"], header
jwks = json.loads(call(service + "/.well-known/jwks.json")[1])
assert [k["kid"] for k in jwks["keys"]] == [header["kid"]], jwks
status, body = call(example + "/hello", token=token)
assert status == 200, (status, body)
parts = token.split(".")
claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=="))
claims["sub"] = "someone-else"
forged = ".".join([parts[0], base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("="), parts[2]])
assert call(example + "/hello", token=forged)[0] == 401
assert call(example + "/hello")[0] == 401
PY
then
  echo "FAIL: the example component under Spin"
  cat "$work/eddsa/spin.log" "$work/example/spin.log" "$work/example/.spin/logs/"* 2> /dev/null || true
  kill "$example_pid" 2> /dev/null || true
  exit 1
fi
kill "$example_pid" 2> /dev/null || true
wait "$example_pid" 2> /dev/null || true
stop
# Spin kept the key set where the local host keeps it.
python3 - "$work/example/.spin/sqlite_key_value.db" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("SELECT store, key FROM spin_key_value").fetchall()
assert any(store == "default" and key.startswith("spin-auth-verifier:jwks:") for store, key in rows), rows
PY
echo "ok: the example component accepted a real EdDSA token and refused a tampered one"

# The example runtime configuration is one Spin accepts (its Vault is asked
# only when a variable is read, so Spin starts without one), pointed here
# at a Vault that refuses connections: settings that cannot be read are an
# outage (503, retried), not a misconfiguration, and the documentation,
# which reads none, still answers.
echo "==> real Spin, with the example runtime-config.toml and its Vault down"
port=$(free_port)
vault_port=$(free_port)
mkdir -p "$work/runtime-config"
sed "s|^url = .*|url = \"http://127.0.0.1:$vault_port\"|" runtime-config.toml > "$work/runtime-config/runtime-config.toml"
"$spin" up --listen "127.0.0.1:$port" --state-dir "$work/runtime-config/.spin" \
  --runtime-config-file "$work/runtime-config/runtime-config.toml" > "$work/runtime-config/spin.log" 2>&1 &
spin_pid=$!
for _ in $(seq 1 240); do
  grep -q '^Serving http' "$work/runtime-config/spin.log" && break
  kill -0 "$spin_pid" 2> /dev/null || break
  sleep 0.5
done
if ! grep -q '^Serving http' "$work/runtime-config/spin.log"; then
  echo "FAIL: Spin refuses runtime-config.toml"
  cat "$work/runtime-config/spin.log"
  exit 1
fi
health=$(curl -s -m 30 -D "$work/runtime-config/headers" "http://127.0.0.1:$port/health" || true)
docs=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/openapi.json" || true)
if ! grep -q '^HTTP/1.1 503' "$work/runtime-config/headers" \
  || ! grep -qi '^retry-after: [0-9]' "$work/runtime-config/headers" \
  || ! grep -q '"code":"service_unavailable"' <<< "$health" \
  || grep -q '127.0.0.1' <<< "$health" || [ "$docs" != 200 ]; then
  echo "FAIL: with Vault down, /health gave $(head -n 1 "$work/runtime-config/headers" 2> /dev/null) $health; /openapi.json gave $docs"
  cat "$work/runtime-config/spin.log" "$work/runtime-config/.spin/logs/"* 2> /dev/null || true
  exit 1
fi
stop
echo "ok: Spin accepts the example runtime-config.toml, and a Vault that is down gives 503"
echo "real Spin: every route answered on both backends, stores that went down came back without a restart, mail was kept and delivered, and EdDSA tokens were checked by another component"
