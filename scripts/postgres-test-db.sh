#!/usr/bin/env bash
# Start the Debian PostgreSQL cluster and create a throw-away test database.
# Prints the SQLAlchemy URL for SITEGUARD_TEST_POSTGRES_URL on its last line.
set -euo pipefail
cluster=$(pg_lsclusters --no-header | head -n 1)
[ -n "$cluster" ] || { echo "no PostgreSQL cluster found (apt-get install postgresql)" >&2; exit 1; }
read -r version name port status _ <<<"$cluster"
[ "$status" = "online" ] || pg_ctlcluster "$version" "$name" start
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
as_postgres "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='siteguard'\" | grep -q 1 \
  || psql -p $port -qc \"CREATE ROLE siteguard LOGIN PASSWORD 'siteguard' CREATEDB\"" >&2
as_postgres "psql -p $port -qtAc \"SELECT 1 FROM pg_database WHERE datname='siteguard_test'\" | grep -q 1 \
  || createdb -p $port -O siteguard siteguard_test" >&2
echo "postgresql+psycopg://siteguard:siteguard@127.0.0.1:$port/siteguard_test"
