#!/usr/bin/env python3
"""The DuckDB peer of the `tpch_federated` benchmark: DuckDB 1.4 reading the
same split through its postgres and mysql scanners and `read_parquet`.

    duckdb_peer.py PG_DSN MYSQL_DSN PART_PARQUET RUNS QUERY_FILE...

Run with the Python of a virtual environment holding `duckdb==1.4.4`,
`duckdb-ext==0.1.2` and the scanners (`duckdb-ext-postgres`,
`duckdb-ext-mysql` 1.4.4.20260205): the benchmark does when
`KOIOS_BENCH_DUCKDB_PYTHON` names it. The unqualified TPC-H names are
views over the attached databases, so the query files run unchanged.

Prints one JSON object per query file: its best time of RUNS (seconds)
and its rows as text (for the benchmark to compare with its reference).
"""
import json
import sys
import time

import duckdb
import duckdb_ext

PG_TABLES = ["lineitem", "orders", "partsupp"]
MY_TABLES = ["customer", "nation", "region", "supplier"]


def literal(text: str) -> str:
    """A DuckDB string literal (ATTACH and views take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def connect(pg_dsn: str, my_dsn: str, part: str) -> duckdb.DuckDBPyConnection:
    con = duckdb_ext.init(duckdb.connect())
    con.execute("LOAD postgres_scanner")
    con.execute("LOAD mysql_scanner")
    con.execute(f"ATTACH {literal(pg_dsn)} AS pg (TYPE postgres, READ_ONLY)")
    con.execute(f"ATTACH {literal(my_dsn)} AS my (TYPE mysql, READ_ONLY)")
    for table in PG_TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM pg.public.{table}")
    for table in MY_TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM my.{table}")
    con.execute(f"CREATE VIEW part AS SELECT * FROM read_parquet({literal(part)})")
    return con


def text(value) -> str:
    return "NULL" if value is None else str(value)


def main() -> int:
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        return 2
    pg_dsn, my_dsn, part, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    con = connect(pg_dsn, my_dsn, part)
    for path in sys.argv[5:]:
        with open(path) as f:
            sql = f.read()
        best, rows, error = None, [], None
        for _ in range(runs):
            started = time.monotonic()
            try:
                rows = con.execute(sql).fetchall()
            except duckdb.Error as e:
                error = str(e)
                break
            elapsed = time.monotonic() - started
            best = elapsed if best is None else min(best, elapsed)
        print(
            json.dumps(
                {
                    "query": path,
                    "seconds": best,
                    "rows": [[text(v) for v in row] for row in rows],
                    "error": error,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
