#!/usr/bin/env bash
# Shows what SQL a client sends, by running it against the local PostgreSQL
# with log_statement = all (the way to learn which catalog tables, functions
# and syntax a driver or BI tool needs before it works against Koios).
#
#   scripts/client-sql.sh -- psql -c '\d t'
#   scripts/client-sql.sh -- python3 my_client.py
#
# The command runs with PGHOST/PGPORT/PGUSER/PGDATABASE pointing at a scratch
# database (loaded with sql-tests/fixtures/postgres.sql, dropped afterwards);
# the statements PostgreSQL logged while it ran are printed on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--" ] && shift
[ "$#" -gt 0 ] || { echo "usage: $0 -- COMMAND [ARGS...]" >&2; exit 2; }
db="koios_client_sql_$$"
admin=(psql -h 127.0.0.1 -U postgres -d postgres -X -q -v ON_ERROR_STOP=1)
"${admin[@]}" -c "CREATE DATABASE $db"
trap '"${admin[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
psql -h 127.0.0.1 -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 -f sql-tests/fixtures/postgres.sql >/dev/null
"${admin[@]}" -c "ALTER DATABASE $db SET log_statement = 'all'"
log=$("${admin[@]}" -Atc "SELECT coalesce(pg_current_logfile(), '')")
if [ -z "$log" ]; then
  # No logging collector: the Debian cluster logs to /var/log/postgresql.
  log=$(ls -t /var/log/postgresql/postgresql-*-main.log 2>/dev/null | head -1)
elif [ "${log:0:1}" != / ]; then
  log="$("${admin[@]}" -Atc 'SHOW data_directory')/$log"
fi
[ -r "$log" ] || { echo "$0: cannot read the PostgreSQL log ($log)" >&2; exit 1; }
start=$(wc -c <"$log")
PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres PGDATABASE="$db" "$@" >&2 || true
sleep 0.5
# A statement is its log line plus the tab-indented lines that follow it.
tail -c +"$((start + 1))" "$log" | awk '
  /LOG:  (statement|execute [^:]*): / { sub(/^.*LOG:  /, ""); print; keep = 1; next }
  /DETAIL:  parameters: / { sub(/^.*DETAIL:  /, "  "); print; keep = 0; next }
  /^\t/ && keep { print; next }
  { keep = 0 }'
