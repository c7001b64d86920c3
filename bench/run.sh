#!/usr/bin/env bash
# The benchmark: the release host on PostgreSQL and Redis, loaded by wrk
# from another process on 127.0.0.1, then a timed breakdown of one request,
# Argon2 natively, in a component (with and without Wasm SIMD) and by the
# reference C implementation, and peak instance memory.
# Bounded: each load run lasts BENCH_SECONDS (default 5); the whole run
# takes a few minutes. Results: target/bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${BENCH_SECONDS:-5}"
out=target/bench
mkdir -p "$out"
rm -f "$out"/wrk-*.txt "$out"/wal-*.txt "$out"/cpu-*.txt "$out"/timelines.log

command -v wrk > /dev/null || apt-get install -y -q wrk > /dev/null
echo "==> building (release)"
cargo build --release --quiet
cargo build --release --quiet --target wasm32-wasip1 -p auth -p questions -p admin -p host-fixture
cargo build --release --quiet --example argon2
cargo build --release --quiet -p spin-auth-core --example jwt

{
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB;"
  echo "PostgreSQL $(psql -V | awk '{print $3}'), Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}'), load and server on the same machine."
} > "$out/machine.txt"

database="spin_auth_bench_$$"
prefix="bench:$$:"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $database"
state=$(mktemp -d)
host=""
start_host() {
  local port=$1 timeline=$2
  env SPIN_AUTH_TIMELINE="$timeline" \
    SPIN_VARIABLE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$database?sslmode=disable" \
    SPIN_VARIABLE_REDIS_URL="redis://127.0.0.1:6379" \
    SPIN_VARIABLE_REDIS_KEY_PREFIX="$prefix" \
    SPIN_VARIABLE_JWT_KEY="benchmark-key-benchmark-key-benchmark-key" \
    SPIN_VARIABLE_LOGIN_FAILURES_PER_IP=1000000 \
    SPIN_VARIABLE_LOGIN_FAILURES_PER_ACCOUNT=1000 \
    SPIN_VARIABLE_REGISTRATIONS_PER_IP=1000000 \
    SPIN_VARIABLE_REFRESH_REUSE_GRACE=300 \
    target/release/spin-auth --no-build --state-dir "$state/.spin" --listen "127.0.0.1:$port" \
    > "$out/host-$port.log" 2>&1 &
  host=$!
  for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 && return; sleep 0.5; done
  echo "the host did not start"; cat "$out/host-$port.log"; exit 1
}
stop_host() { kill "$host" 2>/dev/null || true; wait "$host" 2>/dev/null || true; }
cleanup() {
  stop_host
  kill "${simd_host:-}" 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  scripts/redis-forget.sh "$prefix" -h 127.0.0.1 > /dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
start_host "$port" 0

export BENCH_EMAIL="bench@example.com" BENCH_PASSWORD="correct horse battery staple"
login() { curl -fs "$url/auth/login" -H 'content-type: application/json' -d "{\"email\": \"$BENCH_EMAIL\", \"password\": \"$BENCH_PASSWORD\"}" -D -; }
curl -fs "$url/auth/register" -H 'content-type: application/json' \
  -d "{\"email\": \"$BENCH_EMAIL\", \"password\": \"$BENCH_PASSWORD\"}" > /dev/null
token=$(login | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# A topic with a few questions, so the read has something to count.
psql -q -h 127.0.0.1 -U postgres -d "$database" -c "
  INSERT INTO topics (id, slug, name, created_at) VALUES ('t1', 'bench', 'Bench', 0);
  INSERT INTO questions (id, topic_id, prompt, choices, answer_index, created_at)
    SELECT 'q' || n, 't1', 'Question ' || n, '[\"a\",\"b\"]', 0, 0 FROM generate_series(1, 20) n;"

# WAL flushes of the whole PostgreSQL server (pg_stat_wal.wal_sync): the
# difference across a run, over its requests, is the flushes per request
# (the machine is otherwise quiet; anything else writing adds to it).
wal_syncs() { psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT wal_sync FROM pg_stat_wal"; }
# CPU time (user + system, in clock ticks) that processes have used so far,
# from /proc/<pid>/stat; the difference across a run, over its requests,
# is each one's CPU per request: where a request's CPU goes, and, for two
# builds timed alternately, a steadier comparison than requests/s.
cpu_ticks() {
  local total=0 stat fields
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2> /dev/null) || continue
    read -r -a fields <<< "${stat##*) }"
    total=$(( total + fields[11] + fields[12] ))
  done
  echo "$total"
}
cpu_now() {
  # shellcheck disable=SC2046 # one pid per word
  echo "$(cpu_ticks "$host") $(cpu_ticks $(pgrep -x postgres)) $(cpu_ticks $(pgrep -x redis-server))"
}
run_wrk() {
  local route=$1 connections=$2; shift 2
  local threads=$(( connections < 2 ? connections : 2 ))
  [ "$route" = refresh ] && threads=$connections
  echo "==> $route, $connections connection(s)"
  local before cpu_before
  before=$(wal_syncs)
  cpu_before=$(cpu_now)
  # wrk gives up on a response after 2 s by default and counts it as an
  # error; 32 logins queued on two cores wait about that long on a slow
  # machine (≈1.3 s at p50 on one, two "errors" a run), and wrk leaves
  # such responses out of its latencies. A generous limit keeps the
  # Errors column for what the service got wrong.
  wrk --latency --timeout 30s -t "$threads" -c "$connections" -d "${seconds}s" "$@" \
    > "$out/wrk-$route-$connections.txt"
  echo "$cpu_before $(cpu_now) $(getconf CLK_TCK)" > "$out/cpu-$route-$connections.txt"
  echo $(( $(wal_syncs) - before )) > "$out/wal-$route-$connections.txt"
}

for connections in 1 8 32; do
  # The host and a component alone: routing to the catch-all 404.
  run_wrk notfound "$connections" "$url/no/such/route"
  run_wrk health "$connections" "$url/health"
  run_wrk topics "$connections" -H "Authorization: Bearer $token" "$url/questions/topics"
  # One session per connection, each rotating its own refresh token.
  tokens="$out/refresh-tokens.txt"
  : > "$tokens"
  for _ in $(seq 1 "$connections"); do
    login | grep -i '^set-cookie:' | sed 's/.*__Secure-refresh_token=\([^;]*\).*/\1/' >> "$tokens"
  done
  BENCH_REFRESH_TOKENS="$tokens" run_wrk refresh "$connections" -s bench/refresh.lua "$url"
  run_wrk login "$connections" -s bench/login.lua "$url/auth/login"
done
stop_host

echo "==> breakdown (timelines on)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
start_host "$port" 1
token=$(login | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
for _ in $(seq 1 300); do curl -fs "$url/questions/topics" -H "Authorization: Bearer $token" > /dev/null; done
for _ in $(seq 1 20); do login > /dev/null; done
stop_host
grep '^timeline ' "$out/host-$port.log" > "$out/timelines.log"

echo "==> Argon2 natively and in a component"
target/release/examples/argon2 20 > "$out/argon2-native.txt"
# The test fixture times a hash and a verification in one instance: the
# first pays for growing linear memory, the second does not. Sets `port`
# and `host`; its log goes to fixture-<name>.log.
serve_fixture() {
  local manifest=$1 name=$2
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  SPIN_VARIABLE_SECRET_WORD=bench target/release/spin-auth --no-build --from "$manifest" \
    --state-dir "$state/fixture-$name" --listen "127.0.0.1:$port" > "$out/fixture-$name.log" 2>&1 &
  host=$!
  for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$port/argon2" > /dev/null 2>&1 && return; sleep 0.5; done
  echo "the fixture did not start"; cat "$out/fixture-$name.log"; exit 1
}
serve_fixture host/tests/fixture/spin.toml simd128
simd_port=$port simd_host=$host
echo "==> access token signing and verification, HS256 and EdDSA"
: > "$out/jwt-component.jsonl"
for _ in $(seq 1 5); do curl -fs "http://127.0.0.1:$port/jwt" >> "$out/jwt-component.jsonl"; echo >> "$out/jwt-component.jsonl"; done
target/release/examples/jwt > "$out/jwt-native.json"

echo "==> Argon2 in the same component built with and without Wasm SIMD"
# The fixture again, built without SIMD into a target folder of its own and
# served from a copy of its manifest that points there. RUSTFLAGS replaces
# .cargo/config.toml's flags (+simd128 among them), so the initial heap is
# given again.
RUSTFLAGS="-C link-arg=--initial-heap=524288" cargo build --release --quiet --target wasm32-wasip1 \
  -p host-fixture --target-dir target/bench-scalar
mkdir -p "$state/scalar"
sed "s#\.\./\.\./\.\./target/wasm32-wasip1/#$PWD/target/bench-scalar/wasm32-wasip1/#" \
  host/tests/fixture/spin.toml > "$state/scalar/spin.toml"
serve_fixture "$state/scalar/spin.toml" scalar
# Alternately, so that both builds see the machine in the same state; and
# every other time the second implementation's verification goes first.
: > "$out/argon2-component.jsonl"
: > "$out/argon2-scalar.jsonl"
for run in $(seq 1 12); do
  query=""
  [ $(( run % 2 )) = 0 ] && query="?alternative-first"
  curl -fs "http://127.0.0.1:$simd_port/argon2$query" >> "$out/argon2-component.jsonl"; echo >> "$out/argon2-component.jsonl"
  curl -fs "http://127.0.0.1:$port/argon2$query" >> "$out/argon2-scalar.jsonl"; echo >> "$out/argon2-scalar.jsonl"
done
stop_host
host=$simd_host
stop_host

echo "==> Argon2 reference: argon2-cffi (libargon2, the reference C implementation)"
[ -x "$out/venv/bin/python" ] || python3 -m venv "$out/venv"
"$out/venv/bin/pip" install -q argon2-cffi
"$out/venv/bin/python" bench/argon2_reference.py 20 > "$out/argon2-reference.txt"

python3 bench/report.py "$out" | tee "$out/results.md"
