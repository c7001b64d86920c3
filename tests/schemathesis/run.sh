#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from the
# OpenAPI document the running service serves, with every check enabled,
# against the real components on PostgreSQL and Redis. Bounded: a fixed
# seed and example count, and a time limit.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi

export SPIN_AUTH_ADMIN_EMAIL="admin@schemathesis.example"
export SPIN_AUTH_ADMIN_PASSWORD="schemathesis admin passphrase"

# admin_emails grants admin to a verified address only: verify_admin LOG
# reads the link the app printed to LOG (it has no mail_url) and uses it.
verify_admin() {
  local token
  token=$(grep -o 'verify-email?token=[A-Za-z0-9_-]*' "$1" | tail -n 1 | cut -d= -f2)
  curl -s "$SPIN_AUTH_URL/auth/verify-email" -H 'content-type: application/json' \
    -d "{\"token\": \"$token\"}" > /dev/null
}

# Against an app someone else started (real `spin up` in the GitHub
# workflow): it must have SPIN_AUTH_ADMIN_EMAIL in admin_emails, generous
# throttling limits, 127.0.0.1 as a trusted proxy, and its auth
# component's log at SPIN_AUTH_LOG.
if [ -n "${SPIN_AUTH_EXTERNAL_URL:-}" ]; then
  export SPIN_AUTH_URL="$SPIN_AUTH_EXTERNAL_URL"
  curl -s "$SPIN_AUTH_URL/auth/register" -H 'content-type: application/json' \
    -d "{\"email\": \"$SPIN_AUTH_ADMIN_EMAIL\", \"password\": \"$SPIN_AUTH_ADMIN_PASSWORD\"}" > /dev/null
  sleep 1
  verify_admin "${SPIN_AUTH_LOG:?the auth component log, for the admin verification link}"
  SCHEMATHESIS_HOOKS=tests.schemathesis.hooks PYTHONPATH=. exec timeout 900 \
    "$venv/bin/schemathesis" run "$SPIN_AUTH_URL/openapi.json" --checks all --workers 1 \
      --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" --seed "${SCHEMATHESIS_SEED:-20261125}" --no-color
fi

database="spin_auth_schemathesis_$$"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $database"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
state=$(mktemp -d)
export SPIN_AUTH_URL="http://127.0.0.1:$port"

env SPIN_VARIABLE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$database?sslmode=disable" \
    SPIN_VARIABLE_REDIS_URL="redis://127.0.0.1:6379" \
    SPIN_VARIABLE_REDIS_KEY_PREFIX="schemathesis:$$:" \
    SPIN_VARIABLE_JWT_KEY="$(head -c 32 /dev/urandom | base64)" \
    SPIN_VARIABLE_MFA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
    SPIN_VARIABLE_ADMIN_EMAILS="$SPIN_AUTH_ADMIN_EMAIL" \
    SPIN_VARIABLE_REGISTRATIONS_PER_IP=1000000 \
    SPIN_VARIABLE_LOGIN_FAILURES_PER_IP=1000000 \
    SPIN_VARIABLE_LOGIN_FAILURES_PER_ACCOUNT=1000 \
    SPIN_VARIABLE_TRUSTED_PROXIES=127.0.0.1 \
    target/debug/spin-auth --listen "127.0.0.1:$port" > target/schemathesis-host.log 2>&1 &
host=$!
cleanup() {
  kill "$host" 2>/dev/null || true
  wait "$host" 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  scripts/redis-forget.sh "schemathesis:$$:" -h 127.0.0.1 > /dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
  curl -fs "$SPIN_AUTH_URL/health" > /dev/null 2>&1 && break
  sleep 1
done
curl -fs "$SPIN_AUTH_URL/auth/register" -H 'content-type: application/json' \
  -d "{\"email\": \"$SPIN_AUTH_ADMIN_EMAIL\", \"password\": \"$SPIN_AUTH_ADMIN_PASSWORD\"}" > /dev/null
export SPIN_AUTH_LOG=target/schemathesis-host.log
sleep 1
verify_admin "$SPIN_AUTH_LOG"

SCHEMATHESIS_HOOKS=tests.schemathesis.hooks PYTHONPATH=. timeout 900 \
  "$venv/bin/schemathesis" run "$SPIN_AUTH_URL/openapi.json" \
    --checks all \
    --workers 1 \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" \
    --seed "${SCHEMATHESIS_SEED:-20261125}" \
    --no-color \
  || { echo "--- host log ---"; tail -50 target/schemathesis-host.log; exit 1; }
