#!/usr/bin/env bash
# Makes sure the database servers the tests use are running on this machine:
# PostgreSQL on 127.0.0.1:5432 (trust auth) and MariaDB on 127.0.0.1:3306
# (root, no password), and a MongoDB-compatible server on 127.0.0.1:27017.
# Starts stopped ones and installs missing ones with
# apt-get; exits non-zero with a clear message when that is impossible.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"
  fi
}

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null || die "apt-get update failed"
  as_root apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 150); do port_open "$1" && return 0; sleep 0.2; done
  return 1
}

ensure_postgres() {
  if port_open 5432 && psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    as_root pg_createcluster "$version" main >/dev/null || die "cannot create a PostgreSQL cluster"
  fi
  # Trust auth on loopback, as the test machines are configured.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
  wait_port 5432 || die "PostgreSQL did not open 127.0.0.1:5432 (see /var/log/postgresql)"
  psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null \
    || die "PostgreSQL is up but refuses user postgres without a password on 127.0.0.1"
}

ensure_mariadb() {
  if port_open 3306 && mariadb -h 127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    apt_install mariadb-server mariadb-client
  fi
  log "starting MariaDB"
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    >/dev/null 2>&1 || true
  wait_port 3306 || die "MariaDB did not open 127.0.0.1:3306"
  for _ in $(seq 1 50); do
    mariadb -h 127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "MariaDB is up but refuses root without a password on 127.0.0.1"
}

# MongoDB: no genuine server can be installed here, so the tests use the
# wire-compatible SecantusDB (an external GPL server, never linked), in
# memory on 127.0.0.1:27017. KOIOS_TEST_MONGODB_URL points them at a real
# MongoDB instead.
ensure_mongodb() {
  if [ -n "${KOIOS_TEST_MONGODB_URL:-}" ]; then
    log "MongoDB: using KOIOS_TEST_MONGODB_URL"
    return 0
  fi
  port_open 27017 && return 0
  if ! command -v secantusd-py >/dev/null; then
    log "installing the MongoDB-compatible test server (pip: secantusdb)"
    python3 -m pip install -q --pre "secantusdb==0.7.0b3" >/dev/null 2>&1 \
      || die "pip install secantusdb failed (is PyPI reachable?)"
  fi
  command -v secantusd-py >/dev/null || die "secantusd-py is not on PATH after pip install"
  log "starting the MongoDB-compatible test server on 127.0.0.1:27017"
  nohup secantusd-py --host 127.0.0.1 --port 27017 --storage-path :memory: \
    >/tmp/koios-secantusd.log 2>&1 &
  wait_port 27017 || die "the MongoDB test server did not open 127.0.0.1:27017 (see /tmp/koios-secantusd.log)"
}

ensure_postgres
ensure_mariadb
ensure_mongodb
log "PostgreSQL 127.0.0.1:5432, MariaDB 127.0.0.1:3306 and MongoDB are ready"
