"""Checks Koios with a real Python driver: psycopg 3, binary mode, parameters.

Usage: python3 psycopg_client.py HOST PORT
Prints one line per check and a closing 'N passed, N failed' line; exits
non-zero when a check fails.
"""

import datetime
import decimal
import sys

import psycopg

HOST, PORT = sys.argv[1], int(sys.argv[2])
results = []


def check(name, fn):
    try:
        fn()
        results.append(True)
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        results.append(False)
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def connect(dbname="koios"):
    return psycopg.connect(host=HOST, port=PORT, user="koios", dbname=dbname, autocommit=False)


def binary_parameterized_query():
    with connect("demo") as conn, conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT n_nationkey, n_name, n_regionkey FROM nation WHERE n_nationkey = %s",
            (7,),
        )
        assert cur.fetchall() == [(7, "GERMANY", 3)], cur.fetchall()
        # Many value types, decoded from their binary form by psycopg.
        cur.execute(
            "SELECT %s::bigint + 1, %s::double precision, %s::text, %s::bool, %s::date,"
            " 12.50::decimal(10,2), TIMESTAMP '2024-01-02 03:04:05.5', [1, 2, 3], NULL::int",
            (41, 2.5, "héllo", True, datetime.date(2024, 2, 29)),
        )
        row = cur.fetchone()
        expected = (
            42,
            2.5,
            "héllo",
            True,
            datetime.date(2024, 2, 29),
            decimal.Decimal("12.50"),
            datetime.datetime(2024, 1, 2, 3, 4, 5, 500000),
            [1, 2, 3],
            None,
        )
        assert row == expected, row


def prepared_many_times():
    with connect("demo") as conn, conn.cursor(binary=True) as cur:
        for key in range(10):
            cur.execute(
                "SELECT count(*) FROM orders WHERE o_custkey = %s", (key,), prepare=True
            )
            (count,) = cur.fetchone()
            assert isinstance(count, int) and count >= 0


def text_mode_values():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1.5::double precision, 'x', true, DATE '2024-01-01', x'00ff'::bytea")
        assert cur.fetchone() == (1.5, "x", True, datetime.date(2024, 1, 1), b"\x00\xff")


def error_then_recover():
    with connect() as conn:
        conn.autocommit = True
        try:
            conn.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected an error")
        except psycopg.errors.UndefinedTable as e:
            assert e.sqlstate == "42P01"
        assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        try:
            conn.execute("SELECT 1/0")
            raise AssertionError("expected an error")
        except psycopg.errors.DivisionByZero:
            pass
        assert conn.execute("SELECT 'fine'").fetchone() == ("fine",)


def transactions_and_server_version():
    with connect() as conn:
        # autocommit=False: psycopg sends BEGIN before the first statement.
        conn.execute("SELECT 1").fetchone()
        conn.commit()
        assert conn.info.server_version >= 150000, conn.info.server_version
        assert conn.info.parameter_status("standard_conforming_strings") == "on"


def unknown_database_refused():
    try:
        connect("no_such_db")
        raise AssertionError("expected a refusal")
    except psycopg.OperationalError as e:
        assert "does not exist" in str(e), e



def parameters_stay_values():
    """The SQL-injection issue's reproduction: a bound parameter with a
    backslash before a quote used to end PostgreSQL's literal and run as SQL
    (every row came back); doubled quotes were merged."""
    injection = "\\' OR 1=1) --"
    for binary in (False, True):
        for prepare in (False, True):
            with connect("pg") as conn, conn.cursor(binary=binary) as cur:
                cur.execute("SELECT count(*) FROM quote_traps WHERE s = %s", (injection,), prepare=prepare)
                assert cur.fetchone() == (0,), (binary, prepare)
                cur.execute("SELECT id FROM quote_traps WHERE s = %s", ("O'Reilly''s",), prepare=prepare)
                assert cur.fetchall() == [(1,)], (binary, prepare)
                cur.execute("SELECT count(*) FROM sentinel")
                assert cur.fetchone() == (1,)


for name, fn in [
    ("binary parameterized query", binary_parameterized_query),
    ("prepared statement reused", prepared_many_times),
    ("text mode values", text_mode_values),
    ("error then recover", error_then_recover),
    ("transactions and server version", transactions_and_server_version),
    ("unknown database refused", unknown_database_refused),
    ("parameters stay values (no SQL injection)", parameters_stay_values),
]:
    check(name, fn)

passed = sum(results)
failed = len(results) - passed
print(f"psycopg: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
