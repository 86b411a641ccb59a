#!/usr/bin/env bash
# Drives a running Koios that has users and requires TLS with the real psql:
# SCRAM-SHA-256 logins, sslmode=require and verify-full, refusals.
# Usage: KOIOS_TEST_ALICE_PASSWORD=pw psql_security.sh PORT CA_FILE
# (the server has the user `alice` with that password, `tls_required = true`
# and a certificate for localhost and 127.0.0.1 signed by CA_FILE)
set -uo pipefail
PORT=$1 CA=$2
PASSWORD=$KOIOS_TEST_ALICE_PASSWORD
passed=0 failed=0

check() { # name, expected output, password, connection string, psql args...
  local name=$1 expected=$2 password=$3 conninfo=$4; shift 4
  local actual
  actual=$(PGPASSWORD=$password psql "port=$PORT dbname=koios connect_timeout=10 $conninfo" -X -At "$@" 2>&1)
  if [ "$actual" = "$expected" ]; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); printf 'FAIL %s\n--- expected\n%s\n--- actual\n%s\n' "$name" "$expected" "$actual"
  fi
}

check "SCRAM login with sslmode=verify-full" "1" "$PASSWORD" \
  "host=localhost user=alice sslmode=verify-full sslrootcert=$CA" -c "SELECT 1"

check "sslmode=require" "1" "$PASSWORD" "host=127.0.0.1 user=alice sslmode=require" -c "SELECT 1"

conninfo=$(PGPASSWORD=$PASSWORD psql "host=localhost port=$PORT dbname=koios user=alice sslmode=verify-full sslrootcert=$CA" -X -c '\conninfo' 2>&1)
case "$conninfo" in
  *"SSL connection (protocol: TLSv1."*) passed=$((passed + 1)); echo "ok   \\conninfo reports TLS" ;;
  *) failed=$((failed + 1)); printf 'FAIL \\conninfo reports TLS\n%s\n' "$conninfo" ;;
esac

refused="psql: error: connection to server at \"127.0.0.1\", port $PORT failed"
check "wrong password refused" "$refused: FATAL:  password authentication failed for user \"alice\"" \
  "not-the-password" "host=127.0.0.1 user=alice sslmode=require" -c "SELECT 1"

check "unknown user refused like a wrong password" \
  "$refused: FATAL:  password authentication failed for user \"mallory\"" \
  "$PASSWORD" "host=127.0.0.1 user=mallory sslmode=require" -c "SELECT 1"

check "plain text refused when TLS is required" \
  "$refused: FATAL:  TLS is required: plain-text connection from host \"127.0.0.1\" refused
HINT:  Connect with sslmode=require (or verify-full)." \
  "$PASSWORD" "host=127.0.0.1 user=alice sslmode=disable" -c "SELECT 1"

check "verify-full checks the host name" \
  "psql: error: connection to server at \"127.0.0.1\", port $PORT failed: server certificate for \"localhost\" (and 1 other name) does not match host name \"koios.invalid\"" \
  "$PASSWORD" "host=koios.invalid hostaddr=127.0.0.1 user=alice sslmode=verify-full sslrootcert=$CA" -c "SELECT 1"

echo "psql security: $passed passed, $failed failed"
[ "$failed" = 0 ]
