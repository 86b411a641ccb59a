"""Checks Koios with the Python drivers and tools BI code uses: psycopg 3
(binary cursors, prepare=True, server-side cursors), psycopg2, asyncpg (arrays,
numeric, pools), the SQLAlchemy 2 inspector and pandas.read_sql. Each runs its
own introspection SQL first (to see it: run the client against a PostgreSQL
with log_statement = all).

Usage: KOIOS_TEST_MY_DATABASE=db python3 drivers.py HOST PORT
(the server serves the demo and the test fixtures as `pg` and `my`, as
scripts/test.sh starts it; a driver's dbname picks the source)
Prints one line per check and a closing 'N passed, N failed' line; exits
non-zero when a check fails.

Where Koios's answer is a design choice, the check says BEST GUESS: remote views
are views (not tables); uuid and json values may arrive as text or as their
own types (both are accepted, the value is compared).
"""

import asyncio
import datetime
import decimal
import json
import os
import sys
import uuid
import warnings

import asyncpg
import pandas as pd
import psycopg
import psycopg2
import psycopg2.extras
import sqlalchemy as sa

HOST, PORT = sys.argv[1], int(sys.argv[2])
MYDB = os.environ.get("KOIOS_TEST_MY_DATABASE")
D = decimal.Decimal
results = []

PG_TABLES = [
    "adversarial", "all_types", "collated", "inserts", "keyed_numbers", "nation_stats", "numbers",
    "quote_traps", "sentinel", 'we"ird\\ tåble',
]
PG_VIEWS = ["big_nations", "connection_ssl"]
MY_TABLES = [
    "all_types", "collation_traps", "inserts", "nation_codes", "numbers", "quote_traps", "sentinel",
    'we"ird\\ t`åble', "zero_dates",
]
NATION_STATS = [
    (6, D("68.0"), "Paris"),
    (7, D("84.5"), "Berlin"),
    (8, D("1428.6"), "New Delhi"),
    (12, D("124.5"), "Tokyo"),
    (99, D("1.0"), "Nowhere"),
]
NATIONS = [
    "ALGERIA", "ARGENTINA", "BRAZIL", "CANADA", "EGYPT", "ETHIOPIA", "FRANCE", "GERMANY",
    "INDIA", "INDONESIA", "IRAN", "IRAQ", "JAPAN", "JORDAN", "KENYA", "MOROCCO", "MOZAMBIQUE",
    "PERU", "CHINA", "ROMANIA", "SAUDI ARABIA", "VIETNAM", "RUSSIA", "UNITED KINGDOM",
    "UNITED STATES",
]
UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
UTC = datetime.timezone.utc


def check(name, fn):
    try:
        fn()
        results.append(True)
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        results.append(False)
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def eq(actual, expected, what=""):
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"


def same_uuid(v):
    """uuid as uuid.UUID or as text."""
    eq(str(v).lower(), UUID, "uuid")


def same_json(v, expected):
    """json decoded by the driver, or its text."""
    eq(json.loads(v) if isinstance(v, str) else v, expected, "json")


def same_instant(v, expected):
    assert isinstance(v, datetime.datetime) and v.tzinfo is not None, f"timestamptz: {v!r}"
    eq(v.astimezone(UTC), expected, "timestamptz")


# ---------------------------------------------------------------- psycopg 3

def pg3(dbname="pg", **kw):
    return psycopg.connect(host=HOST, port=PORT, user="koios", dbname=dbname, **kw)


def psycopg3_binary_types():
    """Binary results of the types the issue names: numeric, timestamptz,
    interval, uuid, json and arrays, from the PostgreSQL source."""
    with pg3() as conn, conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT c_numeric, c_numeric_wide, c_timestamptz, c_interval, c_uuid, c_json,"
            " c_int_arr, c_text_arr, c_bool_arr, c_date_arr, c_bytea"
            " FROM all_types WHERE id = %s",
            (1,),
        )
        assert cur.pgresult.fformat(0) == 1, "the result is not in binary format"
        (num, wide, tstz, interval, uid, js, ints, texts, bools, dates, raw) = cur.fetchone()
        eq(num, D("1234567890123.45"), "numeric(15,2)")
        eq(wide, D("12345678901234567890123456789.0123456789"), "numeric(50,10)")
        same_instant(tstz, datetime.datetime(2024, 6, 1, 10, 0, 0, 123000, tzinfo=UTC))
        # psycopg folds years into 365 days and months into 30: 1 year 2 mons -3 days 04:05:06.5
        eq(interval, datetime.timedelta(days=365 + 2 * 30 - 3, hours=4, minutes=5, seconds=6.5), "interval")
        same_uuid(uid)
        same_json(js, {"a": [1, 2]})
        eq(ints, [1, None, 3], "int[]")
        eq(texts, ["a b", "", None, 'x"y', "z"], "text[]")
        eq(bools, [True, False, None], "bool[]")
        eq(dates, [datetime.date(2024, 1, 1), None], "date[]")
        eq(raw, b"\x00\xff\x7f", "bytea")
        cur.execute("SELECT c_numeric, c_int_arr, c_timestamptz FROM all_types WHERE id = %s", (2,))
        eq(cur.fetchone(), (None, None, None), "NULL row")


def psycopg3_prepared():
    """prepare=True: one named statement (_pg3_N), bound ten times."""
    by_key = {k: c for k, _, c in NATION_STATS}
    with pg3() as conn, conn.cursor(binary=True) as cur:
        for i in range(10):
            key = list(by_key)[i % len(by_key)]
            cur.execute(
                "SELECT capital, population_millions FROM nation_stats WHERE n_nationkey = %s",
                (key,),
                prepare=True,
            )
            rows = cur.fetchall()
            eq([r[0] for r in rows], [by_key[key]], f"key {key}")
        # Parameters of several types through a prepared statement.
        for _ in range(3):
            cur.execute(
                "SELECT %s::numeric + 1, %s::int[], %s::timestamptz",
                (D("1.5"), [1, 2], datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
                prepare=True,
            )
            a, b, c = cur.fetchone()
            eq((a, b), (D("2.5"), [1, 2]))
            same_instant(c, datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))


def psycopg3_server_side_cursor():
    """A named cursor is DECLARE … CURSOR / FETCH FORWARD n / CLOSE."""
    with pg3("demo") as conn:
        with conn.cursor(name="nations") as cur:
            cur.itersize = 4
            cur.execute("SELECT n_name FROM nation ORDER BY n_nationkey")
            eq([r[0] for r in cur], NATIONS)
        conn.rollback()


def psycopg3_session():
    """Startup parameters and search_path for unqualified names."""
    with pg3(autocommit=True) as conn:
        assert conn.info.parameter_status("server_version").startswith("15."), conn.info.parameter_status("server_version")
        eq(conn.info.parameter_status("client_encoding"), "UTF8")
        assert conn.info.parameter_status("DateStyle").startswith("ISO"), conn.info.parameter_status("DateStyle")
        eq(conn.info.parameter_status("integer_datetimes"), "on")
        eq(conn.execute("SELECT current_database(), current_schema()").fetchone(), ("pg", "public"))
        conn.execute('SET search_path TO "Mixed Case", public')
        eq(conn.execute("SHOW search_path").fetchone()[0], '"Mixed Case", public')
        eq(conn.execute('SELECT "Col A", "select" FROM "Weird ""Table"""').fetchall(), [(1, "quoted identifiers work")])
        eq(conn.execute("SELECT capital FROM nation_stats WHERE n_nationkey = 7").fetchall(), [("Berlin",)])


# ---------------------------------------------------------------- psycopg2

def pg2(dbname="pg"):
    return psycopg2.connect(host=HOST, port=PORT, user="koios", dbname=dbname)


def psycopg2_queries():
    """Client-side interpolation, simple protocol, BEGIN before the first query."""
    conn = pg2()
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT n_nationkey, population_millions, capital FROM nation_stats"
            " WHERE n_nationkey IN %s ORDER BY 1",
            ((6, 7, 99),),
        )
        eq(cur.fetchall(), [NATION_STATS[0], NATION_STATS[1], NATION_STATS[4]])
        eq([d.name for d in cur.description], ["n_nationkey", "population_millions", "capital"])
        cur.execute("SELECT c_int_arr, c_text_arr, c_timestamptz, c_uuid, c_json FROM all_types WHERE id = %(id)s", {"id": 1})
        ints, texts, tstz, uid, js = cur.fetchone()
        eq(ints, [1, None, 3], "int[]")
        eq(texts, ["a b", "", None, 'x"y', "z"], "text[]")
        same_instant(tstz, datetime.datetime(2024, 6, 1, 10, 0, 0, 123000, tzinfo=UTC))
        same_uuid(uid)
        same_json(js, {"a": [1, 2]})
        # Federated: the Parquet demo joined with the PostgreSQL source.
        cur.execute(
            "SELECT n.n_name, s.capital FROM demo.public.nation n"
            " JOIN nation_stats s ON s.n_nationkey = n.n_nationkey WHERE s.capital LIKE %s ORDER BY 1",
            ("%e%",),
        )
        eq(cur.fetchall(), [("GERMANY", "Berlin"), ("INDIA", "New Delhi")])
        conn.commit()
    finally:
        conn.close()


def psycopg2_named_cursor():
    """DECLARE "c" CURSOR WITHOUT HOLD FOR … / FETCH FORWARD n FROM "c"."""
    conn = pg2("demo")
    try:
        cur = conn.cursor("nations")
        cur.itersize = 10
        cur.execute("SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey")
        eq([r[1] for r in cur], NATIONS)
        cur.close()
        conn.rollback()
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT r_name FROM region WHERE r_regionkey = %s", (3,))
            eq(cur.fetchall(), [{"r_name": "EUROPE"}])
    finally:
        conn.close()


# ---------------------------------------------------------------- asyncpg

def asyncpg_arrays_numeric():
    async def run():
        conn = await asyncpg.connect(host=HOST, port=PORT, user="koios", database="pg")
        try:
            # Array columns make asyncpg introspect their types (pg_type, pg_range, …).
            rows = await conn.fetch(
                "SELECT id, c_numeric, c_numeric_wide, c_int_arr, c_text_arr, c_date_arr FROM all_types ORDER BY id"
            )
            eq([tuple(r) for r in rows], [
                (1, D("1234567890123.45"), D("12345678901234567890123456789.0123456789"),
                 [1, None, 3], ["a b", "", None, 'x"y', "z"], [datetime.date(2024, 1, 1), None]),
                (2, None, None, None, None, None),
            ])
            # Typed and untyped parameters (the latter typed by Describe).
            row = await conn.fetchrow("SELECT $1::numeric(10,2) * 2, $2::int[]", D("1.25"), [1, None, 3])
            eq(tuple(row), (D("2.50"), [1, None, 3]))
            keys = await conn.fetch(
                "SELECT n_nationkey FROM nation_stats WHERE population_millions > $1 ORDER BY 1", D("100")
            )
            eq([r[0] for r in keys], [8, 12])
            async with conn.transaction():
                eq(await conn.fetchval("SELECT count(*) FROM nation_stats"), 5)
            row = await conn.fetchrow("SELECT c_timestamptz, c_uuid, c_json FROM all_types WHERE id = $1", 1)
            same_instant(row[0], datetime.datetime(2024, 6, 1, 10, 0, 0, 123000, tzinfo=UTC))
            same_uuid(row[1])
            same_json(row[2], {"a": [1, 2]})
        finally:
            await conn.close()

    asyncio.run(run())


def asyncpg_pool():
    """acquire/release: each release runs the pool's reset
    (SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;)."""
    async def run():
        pool = await asyncpg.create_pool(host=HOST, port=PORT, user="koios", database="pg", min_size=1, max_size=2)
        try:
            for key, pop, _ in NATION_STATS:
                async with pool.acquire() as conn:
                    eq(await conn.fetchval(
                        "SELECT population_millions FROM nation_stats WHERE n_nationkey = $1", key), pop)
            # Two at once.
            async with pool.acquire() as a, pool.acquire() as b:
                both = await asyncio.gather(
                    a.fetchval("SELECT count(*) FROM demo.public.nation"),
                    b.fetchval("SELECT count(*) FROM nation_stats"),
                    return_exceptions=True,
                )
                for r in both:
                    if isinstance(r, BaseException):
                        raise r
                eq(tuple(both), (25, 5))
        finally:
            await asyncio.wait_for(pool.close(), 30)

    asyncio.run(run())


# ---------------------------------------------------------------- SQLAlchemy

def engine(dbname, driver="psycopg2"):
    return sa.create_engine(f"postgresql+{driver}://koios@{HOST}:{PORT}/{dbname}")


def sqlalchemy_inspector_pg():
    eng = engine("pg")
    try:
        insp = sa.inspect(eng)
        schemas = insp.get_schema_names()
        assert {"public", "Mixed Case"} <= set(schemas), schemas
        assert not any(s.startswith("pg_") for s in schemas), schemas
        assert MYDB is None or MYDB not in schemas, f"another source's schema listed: {schemas}"
        eq(sorted(insp.get_table_names()), PG_TABLES, "get_table_names()")
        eq(sorted(insp.get_table_names(schema="public")), PG_TABLES, "get_table_names(public)")
        eq(insp.get_table_names(schema="Mixed Case"), ['Weird "Table"'], "get_table_names(Mixed Case)")
        eq(sorted(insp.get_view_names()), PG_VIEWS, "get_view_names() (BEST GUESS: remote views are views)")
        cols = insp.get_columns("nation_stats")
        eq([c["name"] for c in cols], ["n_nationkey", "population_millions", "capital"])
        eq([c["nullable"] for c in cols], [False, True, True], "nullable")
        assert isinstance(cols[0]["type"], sa.BigInteger), cols[0]["type"]
        assert isinstance(cols[1]["type"], sa.Numeric) and (cols[1]["type"].precision, cols[1]["type"].scale) == (8, 1), cols[1]["type"]
        assert isinstance(cols[2]["type"], sa.Text), cols[2]["type"]
        eq(insp.get_pk_constraint("nation_stats")["constrained_columns"], ["n_nationkey"], "primary key")
        eq(insp.get_pk_constraint("adversarial", schema="public")["constrained_columns"], ["id"], "primary key")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # types SQLAlchemy does not know (point)
            types = {c["name"]: c["type"] for c in insp.get_columns("all_types")}
        assert isinstance(types["c_int_arr"], sa.ARRAY) and isinstance(types["c_int_arr"].item_type, sa.Integer), types["c_int_arr"]
        assert isinstance(types["c_timestamptz"], sa.TIMESTAMP) and types["c_timestamptz"].timezone, types["c_timestamptz"]
        assert isinstance(types["c_date"], sa.Date), types["c_date"]
        assert isinstance(types["c_bool"], sa.Boolean), types["c_bool"]
        with eng.connect() as c:
            eq(c.execute(sa.text("SELECT capital FROM nation_stats WHERE n_nationkey = :k"), {"k": 12}).all(), [("Tokyo",)])
    finally:
        eng.dispose()


def sqlalchemy_inspector_psycopg3():
    # psycopg 3 binds the inspector's patterns as parameters:
    # `nspname NOT LIKE $1::VARCHAR ESCAPE '/'`.
    eng = engine("pg", "psycopg")
    try:
        insp = sa.inspect(eng)
        schemas = insp.get_schema_names()
        assert {"public", "Mixed Case"} <= set(schemas), schemas
        assert not any(s.startswith("pg_") for s in schemas), schemas
        eq(sorted(insp.get_table_names(schema="public")), PG_TABLES, "get_table_names(public)")
        with eng.connect() as c:
            eq(c.execute(sa.text("SELECT capital FROM nation_stats WHERE n_nationkey = :k"), {"k": 12}).all(), [("Tokyo",)])
            eq(c.execute(sa.text("SELECT s FROM (VALUES ('pg_x'), ('pgx')) AS t(s) WHERE s LIKE :p ESCAPE '/'"), {"p": "pg/_%"}).all(), [("pg_x",)])
    finally:
        eng.dispose()


def sqlalchemy_inspector_my():
    assert MYDB, "set KOIOS_TEST_MY_DATABASE"
    eng = engine("my")
    try:
        insp = sa.inspect(eng)
        assert MYDB in insp.get_schema_names(), insp.get_schema_names()
        eq(sorted(insp.get_table_names(schema=MYDB)), MY_TABLES, "get_table_names")
        cols = insp.get_columns("nation_codes", schema=MYDB)
        eq([(c["name"], c["nullable"]) for c in cols], [("n_nationkey", False), ("iso", False)])
        eq(insp.get_pk_constraint("nation_codes", schema=MYDB)["constrained_columns"], ["n_nationkey"])
    finally:
        eng.dispose()


def sqlalchemy_orm(dbname, schema):
    """The ORM over a source: metadata.create_all/drop_all, then a Session's
    add/commit, a rolled-back flush (its rows seen inside the transaction,
    gone after), update and delete by primary key."""
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "orm_items"
        __table_args__ = {"schema": schema}
        id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
        label: Mapped[str] = mapped_column(sa.String(40))

    eng = engine(dbname)
    try:
        if dbname == "pg":
            with eng.begin() as c:
                c.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        Base.metadata.drop_all(eng)
        Base.metadata.create_all(eng)
        assert sa.inspect(eng).has_table("orm_items", schema=schema), "create_all made the table"
        with Session(eng) as s:
            s.add_all([Item(id=1, label="one"), Item(id=2, label="two")])
            s.commit()
        with Session(eng) as s:
            s.add(Item(id=3, label="three"))
            s.flush()
            eq(s.query(Item).count(), 3, "the flushed row, seen inside its transaction")
            s.rollback()
        with Session(eng) as s:
            eq(sorted(i.label for i in s.query(Item).all()), ["one", "two"], "after rollback")
            s.get(Item, 1).label = "ONE"
            s.delete(s.get(Item, 2))
            s.commit()
        with Session(eng) as s:
            eq([(i.id, i.label) for i in s.query(Item).order_by(Item.id)], [(1, "ONE")], "after update and delete")
        Base.metadata.drop_all(eng)
        assert not sa.inspect(eng).has_table("orm_items", schema=schema), "drop_all dropped it"
        if dbname == "pg":
            with eng.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA "{schema}"'))
    finally:
        eng.dispose()


# ---------------------------------------------------------------- pandas

def pandas_read_sql():
    eng = engine("pg")
    try:
        # A query string: pandas first asks has_table() whether it names a table.
        df = pd.read_sql(
            "SELECT n.n_name, s.population_millions, s.capital FROM demo.public.nation n"
            " JOIN nation_stats s ON s.n_nationkey = n.n_nationkey ORDER BY n.n_nationkey",
            eng,
        )
        eq(list(df.columns), ["n_name", "population_millions", "capital"])
        # read_sql's coerce_float turns numeric (Decimal) into float.
        eq(df.values.tolist(), [
            ["FRANCE", 68.0, "Paris"], ["GERMANY", 84.5, "Berlin"],
            ["INDIA", 1428.6, "New Delhi"], ["JAPAN", 124.5, "Tokyo"],
        ])
        df = pd.read_sql(sa.text("SELECT id, s FROM adversarial WHERE id <= :n ORDER BY id"), eng, params={"n": 3})
        eq(df.values.tolist(), [[1, "plain"], [2, "it's"], [3, "back\\slash"]])
        df = pd.read_sql("SELECT c_timestamptz FROM all_types ORDER BY id", eng)
        eq(df["c_timestamptz"].iloc[0], pd.Timestamp("2024-06-01 10:00:00.123", tz="UTC"))
        assert pd.isna(df["c_timestamptz"].iloc[1])
    finally:
        eng.dispose()


def pandas_read_sql_table():
    """read_sql with a table name reflects the table (columns, keys, indexes…)."""
    eng = engine("pg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = pd.read_sql("nation_stats", eng)
        eq(list(df.columns), ["n_nationkey", "population_millions", "capital"])
        eq(sorted(map(tuple, df.values.tolist())), [(k, float(p), c) for k, p, c in NATION_STATS])
    finally:
        eng.dispose()


for name, fn in [
    ("psycopg3 binary cursor: numeric, timestamptz, interval, uuid, json, arrays", psycopg3_binary_types),
    ("psycopg3 prepare=True reused", psycopg3_prepared),
    ("psycopg3 server-side cursor (DECLARE/FETCH)", psycopg3_server_side_cursor),
    ("psycopg3 session: parameters, current_database, search_path", psycopg3_session),
    ("psycopg2 queries, arrays, federated join", psycopg2_queries),
    ("psycopg2 named cursor", psycopg2_named_cursor),
    ("asyncpg arrays and numeric", asyncpg_arrays_numeric),
    ("asyncpg pool acquire/release", asyncpg_pool),
    ("SQLAlchemy inspector on the PostgreSQL source", sqlalchemy_inspector_pg),
    ("SQLAlchemy inspector with psycopg 3 (patterns bound, LIKE … ESCAPE '/')", sqlalchemy_inspector_psycopg3),
    ("SQLAlchemy inspector on the MariaDB source", sqlalchemy_inspector_my),
    ("SQLAlchemy ORM on the PostgreSQL source: create_all, add/commit/rollback", lambda: sqlalchemy_orm("pg", "orm_test")),
    ("SQLAlchemy ORM on the MariaDB source: create_all, add/commit/rollback", lambda: sqlalchemy_orm("my", MYDB)),
    ("pandas.read_sql query", pandas_read_sql),
    ("pandas.read_sql table name", pandas_read_sql_table),
]:
    check(name, fn)

passed = sum(results)
failed = len(results) - passed
print(f"drivers: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
