#!/usr/bin/env bash
# How the fixtures of this directory were made: databases of the pylee
# before versioned migrations (commit 426abfd, whose stores created their
# tables with ent's auto-migration at start), with a few rows in every
# service, for TestMigrateOld* (cmd/pylee/migrate_e2e_test.go).
#
#   git archive 426abfd | tar -x -C /tmp/pylee-old-src
#   (cd /tmp/pylee-old-src && go build -o /tmp/pylee-old ./cmd/pylee)
#   cmd/pylee/testdata/premigrations/make.sh /tmp/pylee-old
#
# It writes sqlite/ (a data directory: orgs.db, registry.db, audit.db and
# the keys and admin token that go with them) and postgres/ (dump.sql of a
# database with the schemas orgs, registry and audit, and the keys and
# admin token of that installation). Needs PostgreSQL on 127.0.0.1:5432
# (user postgres, trust auth), pg_dump and curl. Do not regenerate them
# with a newer pylee: they stand for the databases installations have.
set -euo pipefail
OLD=${1:?usage: make.sh PATH-TO-OLD-PYLEE}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYLEE_CONFIG_DIR=$WORK/config

populate() { # data-dir [database-url]
  local dir=$1; shift
  local args=(up --data-dir "$dir" --http-addr 127.0.0.1:18080 --grpc-addr 127.0.0.1:19090
    --log-level warn --relay-poll 50ms --checkpoint-interval 200ms)
  [ $# -gt 0 ] && args+=(--database-url "$1")
  "$OLD" "${args[@]}" >"$WORK/up.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -s 127.0.0.1:18080/healthz >/dev/null && break || sleep 0.2; done
  c() { PYLEE_DATA_DIR=$dir "$OLD" --api-url http://127.0.0.1:18080 "$@" >/dev/null; }
  c org create acme --display-name "Acme"
  c org create globex --display-name "Globex"
  c org update globex --description "Second org"
  c server create github --org acme --server-name com.acme/github
  c service-account create ci --org acme
  c token create --org acme --service-account ci
  c binding create orgs/acme/servers/github --role roles/user --principal orgs/acme/serviceAccounts/ci
  c invite create jane@example.com --org acme --role roles/developer
  cat >"$WORK/server.json" <<'JSON'
{"$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
 "name": "com.acme/github", "description": "GitHub tools for Acme", "version": "1.2.0",
 "packages": [{"registryType": "npm", "identifier": "@acme/github-mcp", "version": "1.2.0",
               "transport": {"type": "stdio"}}]}
JSON
  c server version create --org acme --server=github --version=1.2.0 --file "$WORK/server.json"
  c registry create staging --org acme
  c registry create production --org acme --approval-required --min-approvals 2
  c registry pin --org acme --registry staging --server github --version 1.2.0
  c registry promote --org acme --registry staging --server github --to production
  c role create approver --org acme --title Approver --permission approvals.get,approvals.approve
  c team create platform --org acme
  sleep 1.5 # the relay delivers, a checkpoint is signed
  kill -INT "$pid"
  wait "$pid" || true
}

keys=(admin.token service.token page-token.key audit-signing.key)

rm -rf "$HERE/sqlite" && mkdir -p "$HERE/sqlite"
populate "$WORK/sqlite"
for f in orgs.db registry.db audit.db "${keys[@]}"; do cp "$WORK/sqlite/$f" "$HERE/sqlite/"; done

DB=pylee_premigrations_$$
psql -qh 127.0.0.1 -U postgres -c "CREATE DATABASE $DB"
trap 'rm -rf "$WORK"; psql -qh 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB"' EXIT
populate "$WORK/postgres" "postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
rm -rf "$HERE/postgres" && mkdir -p "$HERE/postgres"
for f in "${keys[@]}"; do cp "$WORK/postgres/$f" "$HERE/postgres/"; done
# INSERTs rather than COPY, so the test restores it through database/sql;
# without pg_dump's \restrict lines, which only psql understands.
pg_dump -h 127.0.0.1 -U postgres --no-owner --no-privileges --inserts -n orgs -n registry -n audit "$DB" |
  grep -v '^\\\(un\)\?restrict ' >"$HERE/postgres/dump.sql"
