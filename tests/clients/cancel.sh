#!/usr/bin/env bash
# Query cancel with the real psql against a running Koios: SIGINT (Ctrl-C)
# makes psql send a CancelRequest on a second connection; the server must stop
# the query with "canceling statement due to user request" (SQLSTATE 57014),
# keep the session usable, and stop the remote queries the statement started.
# Also statement_timeout, which ends a statement the same way.
# Usage: [KOIOS_TEST_PG_DATABASE=db] cancel.sh HOST PORT
# KOIOS_TEST_PG_DATABASE is the PostgreSQL database behind the `pg` source
# (on 127.0.0.1:5432, user postgres); without it the remote check is skipped.
# Needs script(1) (util-linux) to give psql a terminal.
set -uo pipefail
HOST=$1 PORT=$2
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n%s\n' "$1" "$2"; }

# 10^16 rows: runs for ever unless stopped.
LONG="SELECT count(*) FROM generate_series(1, 100000000) a CROSS JOIN generate_series(1, 100000000) b"
CANCELED="ERROR:  canceling statement due to user request"

# Waits up to $2 seconds for process $1 to end; kills it (it is ours) if it does not.
wait_for() {
  local pid=$1 limit=$2 i
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; return $?; }
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  return 124
}

# 1. psql -c: SIGINT while the query runs.
out=$(mktemp)
psql -h "$HOST" -p "$PORT" -U koios -X -At -d demo -c "$LONG" >"$out" 2>&1 &
pid=$!
sleep 2
kill -INT "$pid"
start=$SECONDS
wait_for "$pid" 15; rc=$?
expected="Cancel request sent
$CANCELED"
if [ "$rc" = 1 ] && [ "$(cat "$out")" = "$expected" ]; then
  ok "SIGINT cancels a running query ($((SECONDS - start)) s)"
else
  fail "SIGINT cancels a running query" "exit $rc (124: still running 15 s after SIGINT); output:
$(cat "$out")"
fi

# 2. The same session goes on after the cancel: an interactive psql on a
# terminal (script(1)); ^C typed on the terminal reaches psql as SIGINT.
{
  echo "$LONG;"; sleep 2; printf '\003'; sleep 2
  echo "SELECT 40 + 2 AS after_cancel;"; sleep 1; echo '\q'
} | timeout 30 script -q -e -c "psql -h $HOST -p $PORT -U koios -X -n -At -P pager=off -d demo" /dev/null >"$out" 2>&1
rc=$?
# Drop carriage returns and psql's prompts.
clean=$(tr -d '\r' <"$out" | sed -E 's/^[a-z_]+=[#>] ?//')
if printf '%s\n' "$clean" | grep -qx "$CANCELED" \
  && printf '%s\n' "$clean" | sed -n "/^$CANCELED\$/,\$p" | grep -qx '42'; then
  ok "the session runs the next statement after a cancel"
else
  fail "the session runs the next statement after a cancel" "exit $rc; terminal output:
$clean"
fi

# 3. A cancelled statement's remote queries stop too.
if [ -n "${KOIOS_TEST_PG_DATABASE:-}" ]; then
  remote_active() {
    psql -h 127.0.0.1 -U postgres -d postgres -X -At -c "SELECT count(*) FROM pg_stat_activity
      WHERE datname = '$KOIOS_TEST_PG_DATABASE' AND state = 'active' AND pid <> pg_backend_pid()"
  }
  # A join of two tables of the pg source that takes minutes wherever it runs.
  psql -h "$HOST" -p "$PORT" -U koios -X -At -d pg \
    -c "SELECT count(*) FROM numbers a JOIN numbers b ON a.m = b.m WHERE a.n * b.n < 0" >"$out" 2>&1 &
  pid=$!
  seen=0
  for _ in $(seq 1 30); do
    sleep 0.2
    [ "$(remote_active)" -gt 0 ] 2>/dev/null && { seen=1; break; }
  done
  sleep 1
  kill -INT "$pid"
  wait_for "$pid" 15; rc=$?
  if [ "$seen" = 0 ]; then
    echo "skip remote queries stop on cancel: no query of the statement was running in PostgreSQL"
  else
    left=1
    for _ in $(seq 1 50); do
      left=$(remote_active); [ "$left" = 0 ] && break; sleep 0.2
    done
    if [ "$rc" = 1 ] && grep -qx "$CANCELED" "$out" && [ "$left" = 0 ]; then
      ok "remote queries stop on cancel"
    else
      fail "remote queries stop on cancel" "psql exit $rc, $left PostgreSQL backends still active 10 s after the cancel; psql output:
$(cat "$out")"
    fi
  fi
else
  echo "skip remote queries stop on cancel: KOIOS_TEST_PG_DATABASE is not set"
fi

# 4. statement_timeout ends a statement like a cancel, then the session goes on.
actual=$(timeout 30 psql -h "$HOST" -p "$PORT" -U koios -X -At -d demo \
  -c "SET statement_timeout = '1s'" -c "$LONG" -c "SELECT 42" 2>&1)
expected="SET
ERROR:  canceling statement due to statement timeout
42"
if [ "$actual" = "$expected" ]; then
  ok "statement_timeout"
else
  fail "statement_timeout" "--- expected
$expected
--- actual
$actual"
fi

rm -f "$out"
echo "cancel: $passed passed, $failed failed"
[ "$failed" = 0 ]
