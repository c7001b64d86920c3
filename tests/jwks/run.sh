#!/usr/bin/env bash
# Tokens checked by an independent client: PyJWT's PyJWKClient fetches the
# service's JWKS (found through its discovery document) and verifies EdDSA
# access tokens with it, across a key rotation; the service itself refuses
# an HS256 token and a token from an unknown key. The real components on
# the local host, embedded SQLite.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/jwks-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jwt, cryptography' 2> /dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyjwt[crypto]==2.10.1"
fi
python="$venv/bin/python"

# target/debug/spin-auth as the test command builds it (its tests start
# it): after `cargo test` this compiles nothing, where `cargo build` would
# resolve the dependencies' features without the tests' dev-dependencies
# and compile the host's dependencies a second time (minutes).
cargo test --quiet --no-run --test startup
state=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SPIN_AUTH_URL="http://127.0.0.1:$port"
host=""
stop_host() {
  if [ -n "$host" ]; then
    kill "$host" 2> /dev/null || true
    wait "$host" 2> /dev/null || true
    host=""
  fi
}
cleanup() {
  stop_host
  rm -rf "$state"
}
trap cleanup EXIT

# start_host CURRENT_PEM [PREVIOUS_PEM]: serves the app with EdDSA keys.
start_host() {
  env SPIN_VARIABLE_JWT_ALGORITHM=EdDSA \
      SPIN_VARIABLE_JWT_PRIVATE_KEY="$(cat "$1")" \
      SPIN_VARIABLE_JWT_PREVIOUS_PRIVATE_KEY="$(if [ -n "${2:-}" ]; then cat "$2"; fi)" \
      SPIN_VARIABLE_JWT_KEY="$(cat "$state/hmac")" \
    target/debug/spin-auth --listen "127.0.0.1:$port" --state-dir "$state/.spin" \
    >> target/jwks-host.log 2>&1 &
  host=$!
  for _ in $(seq 1 120); do
    curl -fs "$SPIN_AUTH_URL/health" > /dev/null 2>&1 && return 0
    sleep 1
  done
  echo "the app did not start; see target/jwks-host.log" >&2
  return 1
}

: > target/jwks-host.log
"$python" tests/jwks/check.py keys "$state"
start_host "$state/old.pem"
"$python" tests/jwks/check.py before-rotation "$state"
stop_host
start_host "$state/new.pem" "$state/old.pem"
"$python" tests/jwks/check.py after-rotation "$state"
echo "PyJWT verified the service's EdDSA tokens across a rotation."
