#!/usr/bin/env bash
# psql's meta-commands (\l, \dn, \dt, \d, \d+, \df) against a running Koios:
# psql runs its own pg_catalog queries (see what it sends by running it against
# a PostgreSQL with log_statement = all), so these check the catalog emulation.
# Usage: KOIOS_TEST_MY_DATABASE=db psql_meta.sh HOST PORT
# (the server serves the demo and the test fixtures as `pg` and `my`, as
# scripts/test.sh starts it; psql -d SOURCE makes that source the database)
#
# The expected texts are what PostgreSQL 15's psql prints for the same tables
# created in PostgreSQL by a role named koios (the oracle for the format), with
# Koios's type mapping. Where Koios's answer is a design choice rather than
# PostgreSQL's format, the expectation is a BEST GUESS and says so:
#  - owner: every object is owned by the connected user `koios` (there are no
#    other roles without configured users);
#  - views of a source (pg's big_nations/connection_ssl, my's fr_de) are
#    relkind 'v', so \dt leaves them out and \dv lists them;
#  - a primary key the connector knows appears as an index and constraint
#    named <table>_pkey ("… PRIMARY KEY, btree (col)"), for MySQL too;
#  - Parquet (demo) columns written as required are `not null`;
#  - MySQL char(2) is presented as text (Koios maps it to Utf8);
#  - attstorage follows the presented type (bigint plain, numeric main, text
#    extended); HIDE_TABLEAM / HIDE_TOAST_COMPRESSION keep the access method
#    and compression out of \d+.
set -uo pipefail
HOST=$1 PORT=$2
MYDB=${KOIOS_TEST_MY_DATABASE:?set KOIOS_TEST_MY_DATABASE to the MariaDB database of the my source}
passed=0 failed=0

psql_k() {
  psql -h "$HOST" -p "$PORT" -U koios -X -P pager=off -v HIDE_TABLEAM=on -v HIDE_TOAST_COMPRESSION=on "$@" 2>&1
}

report() { # name, expected, actual
  if [ "$3" = "$2" ]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); printf 'FAIL %s\n--- expected\n%s\n--- actual\n%s\n' "$1" "$2" "$3"
  fi
}

check() { # name, expected output, psql args...
  local name=$1 expected=$2; shift 2
  report "$name" "$expected" "$(psql_k "$@")"
}

# ---- \l: the sources (and the built-in koios catalog) are the databases.
# Only name, owner and encoding are compared: Collate/Ctype/ICU/provider/ACL
# are Koios's choice. BEST GUESS: no postgres/template databases, owner koios.
actual=$(psql_k -d koios -A -c '\l' | awk -F'|' 'NF > 1 { print $1 "|" $2 "|" $3 }')
report '\l lists the sources as databases' 'Name|Owner|Encoding
demo|koios|UTF8
koios|koios|UTF8
mongo|koios|UTF8
my|koios|UTF8
pg|koios|UTF8' "$actual"

# ---- \dn
check '\dn in pg' '  List of schemas
    Name    | Owner 
------------+-------
 Mixed Case | koios
 public     | koios
(2 rows)' -d pg -c '\dn'

check '\dn in demo' 'List of schemas
  Name  | Owner 
--------+-------
 public | koios
(1 row)' -d demo -c '\dn'

# The MariaDB source's schemas are its databases: just the test database here
# (BEST GUESS: no `public` schema is invented for it). Unaligned (-A) because
# the database name, hence the column widths, changes from run to run.
check '\dn in my' "List of schemas
Name|Owner
$MYDB|koios
(1 row)" -d my -A -c '\dn'

# ---- \dt
check '\dt in pg (search_path public)' '           List of relations
 Schema |     Name      | Type  | Owner 
--------+---------------+-------+-------
 public | adversarial   | table | koios
 public | all_types     | table | koios
 public | collated      | table | koios
 public | inserts       | table | koios
 public | keyed_numbers | table | koios
 public | nation_stats  | table | koios
 public | numbers       | table | koios
 public | quote_traps   | table | koios
 public | sentinel      | table | koios
 public | we"ird\ tåble | table | koios
(10 rows)' -d pg -c '\dt'

check '\dt in demo' '         List of relations
 Schema |   Name   | Type  | Owner 
--------+----------+-------+-------
 public | customer | table | koios
 public | lineitem | table | koios
 public | nation   | table | koios
 public | orders   | table | koios
 public | part     | table | koios
 public | partsupp | table | koios
 public | region   | table | koios
 public | supplier | table | koios
(8 rows)' -d demo -c '\dt'

check '\dt with a quoted schema pattern' '             List of relations
   Schema   |     Name      | Type  | Owner 
------------+---------------+-------+-------
 Mixed Case | Weird "Table" | table | koios
(1 row)' -d pg -c '\dt "Mixed Case".*'

check '\dt SCHEMA.* in my' "List of relations
Schema|Name|Type|Owner
$MYDB|all_types|table|koios
$MYDB|collation_traps|table|koios
$MYDB|inserts|table|koios
$MYDB|nation_codes|table|koios
$MYDB|numbers|table|koios
$MYDB|quote_traps|table|koios
$MYDB|sentinel|table|koios
$MYDB|we\"ird\\ t\`åble|table|koios
$MYDB|zero_dates|table|koios
(9 rows)" -d my -A -c "\\dt \"$MYDB\".*"

# BEST GUESS (views as relkind 'v'): \dv lists the PostgreSQL source's views.
check '\dv in pg' "List of relations
Schema|Name|Type|Owner
public|big_nations|view|koios
public|connection_ssl|view|koios
(2 rows)" -d pg -A -c '\dv'

# ---- \d and \d+
nation_stats='                     Table "public.nation_stats"
       Column        |     Type     | Collation | Nullable | Default 
---------------------+--------------+-----------+----------+---------
 n_nationkey         | bigint       |           | not null | 
 population_millions | numeric(8,1) |           |          | 
 capital             | text         |           |          | 
Indexes:
    "nation_stats_pkey" PRIMARY KEY, btree (n_nationkey)'
check '\d table (PostgreSQL source)' "$nation_stats" -d pg -c '\d nation_stats'
check '\d schema.table' "$nation_stats" -d pg -c '\d public.nation_stats'

check '\d+ table (PostgreSQL source)' '                                         Table "public.nation_stats"
       Column        |     Type     | Collation | Nullable | Default | Storage  | Stats target | Description 
---------------------+--------------+-----------+----------+---------+----------+--------------+-------------
 n_nationkey         | bigint       |           | not null |         | plain    |              | 
 population_millions | numeric(8,1) |           |          |         | main     |              | 
 capital             | text         |           |          |         | extended |              | 
Indexes:
    "nation_stats_pkey" PRIMARY KEY, btree (n_nationkey)' -d pg -c '\d+ nation_stats'

check '\d quoted identifiers' '         Table "Mixed Case.Weird "Table""
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 Col A  | integer |           |          | 
 select | text    |           |          | ' -d pg -c '\d "Mixed Case"."Weird ""Table"""'

# A striped table of Koios's own catalog looks like any table: its
# declared columns, NOT NULL on the key, the key as an index.
psql_k -d koios -q -c "DROP TABLE IF EXISTS koios.public.striped_meta CASCADE" \
  -c "CREATE TABLE koios.public.striped_meta (id bigint PRIMARY KEY, v text) STRIPED BY HASH (id) ACROSS (pg.public.striped_meta, my.\"$MYDB\".striped_meta)" >/dev/null
check '\d striped table' '           Table "public.striped_meta"
 Column |  Type  | Collation | Nullable | Default 
--------+--------+-----------+----------+---------
 id     | bigint |           | not null | 
 v      | text   |           |          | 
Indexes:
    "striped_meta_pkey" PRIMARY KEY, btree (id)' -d koios -c '\d public.striped_meta'
psql_k -d koios -q -c "DROP TABLE koios.public.striped_meta CASCADE" >/dev/null

check '\d table (Parquet source)' '                 Table "public.nation"
   Column    |  Type  | Collation | Nullable | Default 
-------------+--------+-----------+----------+---------
 n_nationkey | bigint |           | not null | 
 n_name      | text   |           | not null | 
 n_regionkey | bigint |           | not null | 
 n_comment   | text   |           | not null | ' -d demo -c '\d nation'

check '\d table (MariaDB source)' "Table \"$MYDB.nation_codes\"
Column|Type|Collation|Nullable|Default
n_nationkey|bigint||not null|
iso|text||not null|
Indexes:
    \"nation_codes_pkey\" PRIMARY KEY, btree (n_nationkey)" -d my -A -c "\\d \"$MYDB\".nation_codes"

check '\d+ table (MariaDB source)' "Table \"$MYDB.nation_codes\"
Column|Type|Collation|Nullable|Default|Storage|Stats target|Description
n_nationkey|bigint||not null||plain||
iso|text||not null||extended||
Indexes:
    \"nation_codes_pkey\" PRIMARY KEY, btree (n_nationkey)" -d my -A -c "\\d+ \"$MYDB\".nation_codes"

check '\d of a missing table' 'Did not find any relation named "no_such_table".' -d pg -c '\d no_such_table'

# ---- \df must merely work (which functions Koios lists is its choice).
out=$(psql_k -d pg -v ON_ERROR_STOP=1 -c '\df'); rc=$?
if [ $rc = 0 ] && printf '%s' "$out" | head -1 | grep -q 'List of functions' && ! printf '%s' "$out" | grep -q 'ERROR'; then
  passed=$((passed + 1)); echo 'ok   \df does not fail'
else
  failed=$((failed + 1)); printf 'FAIL \\df does not fail (exit %s)\n%s\n' "$rc" "$out"
fi

echo "psql meta-commands: $passed passed, $failed failed"
[ "$failed" = 0 ]
