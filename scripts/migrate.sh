#!/usr/bin/env bash
# Applies pending PostgreSQL migrations with psql, for deployments that run
# schema changes as a release step instead of on the first request. It uses
# the components' bookkeeping (table schema_migrations) and their lock, so
# either may run first and neither applies a migration twice.
#
#   scripts/migrate.sh 'postgres://user:pass@host:5432/spin_auth?sslmode=require'
set -euo pipefail
url=${1:?usage: scripts/migrate.sh DATABASE_URL}
cd "$(dirname "$0")/.."
export PGOPTIONS="-c client_min_messages=warning"
# The advisory lock key the components take ("SPINAUTH" as an integer).
lock=6003378903737259080

psql "$url" -v ON_ERROR_STOP=1 -q -c \
  "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)"
applied=$(psql "$url" -v ON_ERROR_STOP=1 -qtA -c "SELECT version FROM schema_migrations")
for file in migrations/postgres/*.sql; do
  version=$((10#$(basename "$file" | cut -d_ -f1)))
  if grep -qx "$version" <<< "$applied"; then
    echo "migration $version: already applied"
    continue
  fi
  # One transaction: the lock, the migration and its bookkeeping row.
  psql "$url" -v ON_ERROR_STOP=1 -q --single-transaction \
    -c "SELECT pg_advisory_xact_lock($lock)" \
    -f "$file" \
    -c "INSERT INTO schema_migrations (version, applied_at) VALUES ($version, extract(epoch FROM now())::bigint)" \
    > /dev/null
  echo "migration $version: applied"
done
