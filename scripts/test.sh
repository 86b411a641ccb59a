#!/usr/bin/env bash
# Runs Koios's whole test suite (the README's second command; `.ci/run` calls it):
# database services, formatting, lints, unit + protocol + sqllogictest suites
# against the real backends, and real clients (psql, psycopg 2/3, asyncpg,
# SQLAlchemy, pandas, JDBC) against a running `koios serve`. Fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

# The README's first command (`cargo run -- serve`) builds into ./target;
# this uses the same build unless CARGO_TARGET_DIR says otherwise (.ci/run
# keeps its cache outside the clone).
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

step "database services (PostgreSQL, MariaDB, MongoDB)"
scripts/services.sh

step "rustfmt"
cargo fmt --all --check || die "code is not formatted: run cargo fmt --all"

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, protocol, TPC-H reference and sqllogictest suites"
# tests/admin.rs reads /metrics with Prometheus' own parser.
python3 -c 'import prometheus_client' 2>/dev/null || {
  pip install --quiet --disable-pip-version-check prometheus_client \
    || die "cannot install prometheus_client (pip install prometheus_client)"
}
cargo test --workspace --locked

step "real clients against koios serve"
python3 -c 'import psycopg' 2>/dev/null || {
  pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1" \
    || die "cannot install psycopg (pip install 'psycopg[binary]')"
}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$target_dir/koios-client-tests.log"
# Scratch PostgreSQL and MariaDB databases with the test fixtures, dropped on exit.
scratch="koios_clients_$$"
cleanup() {
  # Only servers this run started: `kill 0` would end the whole process group.
  [ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
  [ -z "${secure_server:-}" ] || kill "$secure_server" 2>/dev/null || true
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
config="$target_dir/koios-client-tests.toml"
admin_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$config" <<TOML
[server]
admin_listen = "127.0.0.1:$admin_port"

[[source]]
name = "demo"
kind = "demo"
url = "$target_dir/tmp/koios-test-data/demo"
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
# Starts `koios serve` in the background (pid in $started) and waits until
# it listens. Usage: serve CONFIG PORT LOG
serve() {
  "$target_dir/debug/koios" serve --config "$1" --listen "127.0.0.1:$2" >"$3" 2>&1 &
  started=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    kill -0 "$started" 2>/dev/null || { cat "$3"; die "koios serve ($1) exited before listening"; }
    sleep 0.2
  done
  kill "$started" 2>/dev/null || true
  die "koios serve ($1) did not listen on port $2 within a minute"
}
serve "$config" "$port" "$log"
server=$started
KOIOS_TEST_MY_DATABASE="$scratch" KOIOS_TEST_MONGO_DATABASE="$scratch" tests/clients/psql_checks.sh 127.0.0.1 "$port"
python3 tests/clients/psycopg_client.py 127.0.0.1 "$port"
python3 tests/clients/metrics_check.py url "http://127.0.0.1:$admin_port"

step "psql meta-commands, query cancel, and the drivers BI tools use"
python3 -c 'import psycopg2, asyncpg, sqlalchemy, pandas' 2>/dev/null || {
  pip install --quiet --disable-pip-version-check psycopg2-binary asyncpg "sqlalchemy>=2" pandas \
    || die "cannot install the Python drivers (pip install psycopg2-binary asyncpg 'sqlalchemy>=2' pandas)"
}
jdbc_jar=/usr/share/java/postgresql.jar
if [ ! -f "$jdbc_jar" ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
  as_root apt-get install -y -q libpostgresql-jdbc-java >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null 2>&1 && as_root apt-get install -y -q libpostgresql-jdbc-java >/dev/null; } \
    || die "cannot install the PostgreSQL JDBC driver (apt-get install libpostgresql-jdbc-java)"
fi
command -v javac >/dev/null || die "javac is missing (apt-get install default-jdk-headless)"
export KOIOS_TEST_MY_DATABASE="$scratch" KOIOS_TEST_PG_DATABASE="$scratch"
tests/clients/psql_meta.sh 127.0.0.1 "$port"
tests/clients/cancel.sh 127.0.0.1 "$port"
python3 tests/clients/drivers.py 127.0.0.1 "$port"
jdbc_classes="$target_dir/koios-jdbc-classes"
rm -rf "$jdbc_classes" && mkdir -p "$jdbc_classes"
javac -cp "$jdbc_jar" -d "$jdbc_classes" tests/clients/jdbc/KoiosJdbc.java
java -cp "$jdbc_jar:$jdbc_classes" KoiosJdbc 127.0.0.1 "$port"

step "psql against a koios serve with users and TLS required"
# A CA and a server certificate it signs for localhost and 127.0.0.1.
tls="$target_dir/koios-client-tls"
rm -rf "$tls" && mkdir -p "$tls"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=koios-test-ca \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || die "openssl cannot make the test CA"
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
  -days 2 -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null || die "openssl cannot sign the test certificate"
cat >"$tls/koios.toml" <<'TOML'
[server]
admin_listen = ""
tls_cert = "server.pem"
tls_key = "server.key"
tls_required = true

[[user]]
name = "alice"
password = "${KOIOS_TEST_ALICE_PASSWORD}"
TOML
secure_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KOIOS_TEST_ALICE_PASSWORD="alice-$$-$RANDOM"
export KOIOS_TEST_ALICE_PASSWORD
serve "$tls/koios.toml" "$secure_port" "$tls/koios.log"
secure_server=$started
tests/clients/psql_security.sh "$secure_port" "$tls/ca.pem"
! grep -qF "$KOIOS_TEST_ALICE_PASSWORD" "$tls/koios.log" || die "the server log contains a password"

printf '\nkoios: every test step passed\n'
