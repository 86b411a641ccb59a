#!/usr/bin/env bash
# Runs Koios's whole test suite (the README's second command; `.ci/run` calls it):
# database services, formatting, lints, unit + protocol + sqllogictest suites
# against the real backends, and real clients (psql, psycopg) against a
# running `koios serve`. Fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/koios-target}"
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

step "database services (PostgreSQL, MariaDB, MongoDB)"
scripts/services.sh

step "rustfmt"
cargo fmt --all --check || die "code is not formatted: run cargo fmt --all"

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, protocol, TPC-H reference and sqllogictest suites"
cargo test --workspace --locked

step "real clients against koios serve"
python3 -c 'import psycopg' 2>/dev/null || {
  pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1" \
    || die "cannot install psycopg (pip install 'psycopg[binary]')"
}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$CARGO_TARGET_DIR/koios-client-tests.log"
# Scratch PostgreSQL and MariaDB databases with the test fixtures, dropped on exit.
scratch="koios_clients_$$"
cleanup() {
  kill "${server:-0}" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -X -q -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null 2>&1 || true
  mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $scratch" >/dev/null 2>&1 || true
  python3 tests/clients/mongo_fixture.py "$mongo_url" "$scratch" --drop >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -d postgres -X -q -c "CREATE DATABASE $scratch"
psql -h 127.0.0.1 -U postgres -d "$scratch" -X -q -v ON_ERROR_STOP=1 -f sql-tests/fixtures/postgres.sql >/dev/null
mariadb -h 127.0.0.1 -uroot -e "CREATE DATABASE $scratch"
mariadb -h 127.0.0.1 -uroot "$scratch" < sql-tests/fixtures/mysql.sql
mongo_url="${KOIOS_TEST_MONGODB_URL:-mongodb://127.0.0.1:27017/?directConnection=true}"
python3 -c 'import pymongo' 2>/dev/null || {
  pip install --quiet --disable-pip-version-check "pymongo>=4" || die "cannot install pymongo"
}
python3 tests/clients/mongo_fixture.py "$mongo_url" "$scratch"
config="$CARGO_TARGET_DIR/koios-client-tests.toml"
cat >"$config" <<TOML
[[source]]
name = "demo"
kind = "demo"
url = "$CARGO_TARGET_DIR/tmp/koios-test-data/demo"
scale_factor = 0.01

[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$scratch"

[[source]]
name = "my"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/$scratch"

[[source]]
name = "mongo"
kind = "mongodb"
url = "$mongo_url"
databases = ["$scratch"]
TOML
"$CARGO_TARGET_DIR/debug/koios" serve --config "$config" --listen "127.0.0.1:$port" >"$log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; die "koios serve exited before listening"; }
  sleep 0.2
done
KOIOS_TEST_MY_DATABASE="$scratch" KOIOS_TEST_MONGO_DATABASE="$scratch" tests/clients/psql_checks.sh 127.0.0.1 "$port"
python3 tests/clients/psycopg_client.py 127.0.0.1 "$port"

printf '\nkoios: every test step passed\n'
