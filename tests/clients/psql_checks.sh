#!/usr/bin/env bash
# Drives a running Koios with the real psql client, as the README shows.
# Usage: KOIOS_TEST_MY_DATABASE=db KOIOS_TEST_MONGO_DATABASE=db psql_checks.sh HOST PORT
# (the server serves the demo at SF 0.01 and the test fixtures as `pg`, `my` and `mongo`)
set -uo pipefail
HOST=$1 PORT=$2
passed=0 failed=0

check() { # name, expected output, psql args...
  local name=$1 expected=$2; shift 2
  local actual
  actual=$(psql -h "$HOST" -p "$PORT" -U koios -X -At "$@" 2>&1)
  if [ "$actual" = "$expected" ]; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); printf 'FAIL %s\n--- expected\n%s\n--- actual\n%s\n' "$name" "$expected" "$actual"
  fi
}

check "count over the demo" "60175" -c "SELECT count(*) FROM demo.public.lineitem"

check "TPC-H Q6 over the demo" "1193053.2253" -d demo -c "SELECT sum(l_extendedprice * l_discount) FROM lineitem
  WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'
  AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24"

# A bad statement, then a good one on the same connection.
check "error then next statement" "ERROR:  relation \"koios.public.nope\" does not exist
42" -c "SELECT * FROM nope" -c "SELECT 42"

check "SQLSTATE shown verbosely" "ERROR:  42601: syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1" \
  -v VERBOSITY=verbose -c "SELEC 1"

check "multi-statement query" "1
2" -c "SELECT 1; SELECT 2"

check "unknown database" "psql: error: connection to server at \"$HOST\", port $PORT failed: FATAL:  database \"nope\" does not exist" -d nope -c "SELECT 1"

# Federation through psql: PostgreSQL × Parquet, and MariaDB × PostgreSQL × Parquet.
check "PostgreSQL joined with Parquet" "FRANCE|Paris
GERMANY|Berlin
INDIA|New Delhi
JAPAN|Tokyo" -c "SELECT n.n_name, s.capital FROM demo.public.nation n
  JOIN pg.public.nation_stats s ON s.n_nationkey = n.n_nationkey ORDER BY 1"

check "MariaDB x PostgreSQL x Parquet" "FRANCE|FR|Paris
GERMANY|DE|Berlin
INDIA|IN|New Delhi
JAPAN|JP|Tokyo" -c "SELECT n.n_name, c.iso, s.capital FROM demo.public.nation n
  JOIN my.${KOIOS_TEST_MY_DATABASE}.nation_codes c ON c.n_nationkey = n.n_nationkey
  JOIN pg.public.nation_stats s ON s.n_nationkey = n.n_nationkey ORDER BY 1"

check "MongoDB x PostgreSQL x Parquet" "Brendan|FRANCE|Paris
Chloé|FRANCE|Paris
Ada|GERMANY|Berlin
Eve|GERMANY|Berlin
|JAPAN|Tokyo" -c "SELECT p.name, n.n_name, s.capital FROM mongo.${KOIOS_TEST_MONGO_DATABASE}.people p
  JOIN demo.public.nation n ON n.n_nationkey = p.nation
  JOIN pg.public.nation_stats s ON s.n_nationkey = p.nation ORDER BY n.n_name, p.name"

echo "psql: $passed passed, $failed failed"
[ "$failed" = 0 ]
