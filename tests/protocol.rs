//! Wire-protocol behaviour that `.slt` files cannot express: typed and
//! binary parameters, portals with row limits, databases chosen at connect,
//! malformed messages, concurrent sessions.

mod support;

use std::io::{Read, Write};

use support::{TestServer, frontend_message};
use tokio_postgres::types::Type;

async fn server() -> TestServer {
    TestServer::start_test().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_typed_and_bound() {
    let server = server().await;
    let client = server.connect("koios").await;

    // The server infers $1 from the column it is compared with.
    let statement = client
        .prepare("SELECT n_name FROM demo.public.nation WHERE n_nationkey = $1")
        .await
        .expect("prepares");
    assert_eq!(statement.params(), &[Type::INT8]);
    assert_eq!(statement.columns()[0].type_(), &Type::TEXT);
    // One prepared statement, executed many times with different values.
    for (key, name) in [(0i64, "ALGERIA"), (7, "GERMANY"), (24, "UNITED STATES")] {
        let rows = client.query(&statement, &[&key]).await.expect("runs");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), name);
    }

    // Declared parameter types are honoured and converted to the column type.
    let statement = client
        .prepare_typed(
            "SELECT count(*) FROM demo.public.lineitem WHERE l_quantity > $1 AND l_shipmode = $2",
            &[Type::INT4, Type::TEXT],
        )
        .await
        .expect("prepares");
    let rows = client
        .query(&statement, &[&45i32, &"AIR"])
        .await
        .expect("runs");
    let via_params: i64 = rows[0].get(0);
    let literal = client
        .query_one(
            "SELECT count(*) FROM demo.public.lineitem WHERE l_quantity > 45 AND l_shipmode = 'AIR'",
            &[],
        )
        .await
        .expect("runs");
    assert_eq!(via_params, literal.get::<_, i64>(0));
    assert!(via_params > 0);

    // NULL parameters, and several value types in binary form.
    let row = client
        .query_one(
            "SELECT $1::bigint IS NULL, $2::double precision * 2, $3::text || '!', $4::bool, $5::date",
            &[
                &None::<i64>,
                &1.25f64,
                &"hi",
                &true,
                &chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"),
            ],
        )
        .await
        .expect("runs");
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, f64>(1), 2.5);
    assert_eq!(row.get::<_, String>(2), "hi!");
    assert!(row.get::<_, bool>(3));
    assert_eq!(
        row.get::<_, chrono::NaiveDate>(4),
        chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("date")
    );

    // Statements without result rows take parameters too.
    client
        .execute(
            "CREATE TABLE koios.public.param_t (k BIGINT, v VARCHAR)",
            &[],
        )
        .await
        .expect("creates");
    let insert = client
        .prepare("INSERT INTO koios.public.param_t VALUES ($1, $2)")
        .await
        .expect("prepares");
    assert!(insert.columns().is_empty());
    for (k, v) in [(1i64, "one"), (2, "two")] {
        assert_eq!(
            client.execute(&insert, &[&k, &v]).await.expect("inserts"),
            1
        );
    }
    let row = client
        .query_one(
            "SELECT string_agg(v, ',' ORDER BY k) FROM koios.public.param_t",
            &[],
        )
        .await
        .expect("reads back");
    assert_eq!(row.get::<_, String>(0), "one,two");
    client
        .execute("DROP TABLE koios.public.param_t", &[])
        .await
        .expect("drops");

    // Wrong parameter count is an error, and the connection survives it.
    let err = client
        .query("SELECT $1::int", &[])
        .await
        .expect_err("missing parameter");
    assert!(
        err.to_string().contains("parameter") || err.as_db_error().is_some(),
        "{err}"
    );
    let row = client
        .query_one("SELECT 41 + 1", &[])
        .await
        .expect("still usable");
    assert_eq!(row.get::<_, i64>(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_return_rows_in_chunks() {
    let server = server().await;
    let mut client = server.connect("koios").await;
    let transaction = client.transaction().await.expect("begins");
    let statement = transaction
        .prepare("SELECT n_nationkey FROM demo.public.nation ORDER BY n_nationkey")
        .await
        .expect("prepares");
    let portal = transaction.bind(&statement, &[]).await.expect("binds");
    let mut seen = Vec::new();
    loop {
        let chunk = transaction
            .query_portal(&portal, 10)
            .await
            .expect("fetches");
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 10);
        seen.extend(chunk.iter().map(|r| r.get::<_, i64>(0)));
    }
    assert_eq!(seen, (0..25).collect::<Vec<i64>>());
    transaction.commit().await.expect("commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_name_sets_the_default_catalog() {
    let server = server().await;
    let demo = server.connect("demo").await;
    let row = demo
        .query_one("SELECT count(*) FROM nation", &[])
        .await
        .expect("unqualified names resolve in demo.public");
    assert_eq!(row.get::<_, i64>(0), 25);

    // Three-part names reach other catalogs from any session.
    let row = demo
        .query_one("SELECT count(*) FROM koios.public.asia_nations", &[])
        .await
        .expect("three-part name");
    assert_eq!(row.get::<_, i64>(0), 5);

    let err = tokio_postgres::connect(&server.conn_string("no_such_db"), tokio_postgres::NoTls)
        .await
        .err()
        .expect("unknown database is refused");
    assert_eq!(err.code().map(|c| c.code()), Some("3D000"), "{err}");
}

/// Errors Koios raises itself carry their SQLSTATE from where they are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koios_errors_carry_their_sqlstate() {
    let server = server().await;
    let client = server.connect("koios").await;
    let cases = [
        (
            "SET no_such_setting = 1",
            "42704",
            "unrecognized configuration parameter",
        ),
        ("SET server_version = '1'", "55P02", "cannot be changed"),
        (
            "SET statement_timeout = 'soon'",
            "22023",
            "statement_timeout",
        ),
        ("SET TIME ZONE 'Mars/Olympus'", "22023", "TimeZone"),
        ("REFRESH SOURCE no_such_source", "42704", "does not exist"),
        ("FETCH 1 FROM no_such_cursor", "34000", "does not exist"),
    ];
    for (sql, code, words) in cases {
        let err = client.batch_execute(sql).await.expect_err(sql);
        let db = err.as_db_error().expect("a server error");
        assert_eq!((sql, db.code().code()), (sql, code), "{db:?}");
        assert!(db.message().contains(words), "{sql}: {}", db.message());
    }
    // The session is still usable.
    let row = client.query_one("SELECT 1", &[]).await.expect("runs");
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_do_not_disturb_other_sessions() {
    let server = server().await;
    let client = server.connect("koios").await;

    // Garbage instead of a startup packet, a truncated message after startup
    // and an absurd length: each connection is dropped, nothing else is.
    let addr = server.addr;
    let garbage = tokio::task::spawn_blocking(move || {
        let mut outcomes = Vec::new();
        for payload in [
            vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01],
            vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f], // SSLRequest then hang up
            vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        ] {
            let mut socket = std::net::TcpStream::connect(addr).expect("connects");
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .expect("timeout");
            let _ = socket.write_all(&payload);
            let mut buf = [0u8; 64];
            outcomes.push(
                socket
                    .read(&mut buf)
                    .map(|n| n <= buf.len())
                    .unwrap_or(true),
            );
        }
        outcomes
    })
    .await
    .expect("garbage task");
    assert!(garbage.iter().all(|ok| *ok));

    // A well-formed session sends a query message with a broken body.
    let row = client
        .query_one("SELECT 'still here'", &[])
        .await
        .expect("unaffected");
    assert_eq!(row.get::<_, String>(0), "still here");
    let fresh = server.connect("koios").await;
    let row = fresh
        .query_one("SELECT 2::int", &[])
        .await
        .expect("new sessions work");
    assert_eq!(row.get::<_, i32>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_independent() {
    let server = server().await;
    let a = server.connect("koios").await;
    let b = server.connect("koios").await;
    a.batch_execute("SET application_name = 'first'")
        .await
        .expect("set");
    b.batch_execute("SET application_name = 'second'")
        .await
        .expect("set");
    assert_eq!(show_application_name(&a).await.as_deref(), Some("first"));
    assert_eq!(show_application_name(&b).await.as_deref(), Some("second"));

    // Many concurrent queries over separate connections.
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let client = server.connect("demo").await;
        tasks.push(tokio::spawn(async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM orders WHERE o_orderkey % 8 = $1",
                    &[&i],
                )
                .await
                .expect("query");
            row.get::<_, i64>(0)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }
    assert_eq!(total, 15_000);
}

async fn show_application_name(client: &tokio_postgres::Client) -> Option<String> {
    let messages = client
        .simple_query("SHOW application_name")
        .await
        .expect("show");
    messages.into_iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

/// A numeric in its decimal text, sent and read in numeric's binary form.
#[derive(Debug, Clone, PartialEq)]
struct Numeric(String);

impl tokio_postgres::types::ToSql for Numeric {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        koios_connector::pgbinary::write_numeric(out, &self.0);
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for Numeric {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Numeric(koios_connector::pgbinary::read_numeric(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_parameters_in_binary_and_text() {
    let server = server().await;
    let client = server.connect("koios").await;

    // `$n::T[]` makes the parameter a T[]; drivers then send binary arrays.
    let statement = client
        .prepare(
            "SELECT $1::int[], $2::text[], $3::bigint[], $4::double precision[], \
                    $5::smallint[], $6::boolean[], $7::numeric[]",
        )
        .await
        .expect("prepares");
    assert_eq!(
        statement.params(),
        &[
            Type::INT4_ARRAY,
            Type::TEXT_ARRAY,
            Type::INT8_ARRAY,
            Type::FLOAT8_ARRAY,
            Type::INT2_ARRAY,
            Type::BOOL_ARRAY,
            Type::NUMERIC_ARRAY,
        ]
    );
    let ints = vec![Some(1i32), None, Some(3)];
    let texts = vec![
        Some("a b".to_string()),
        None,
        Some(String::new()),
        Some("x\"y,{z}\\".to_string()),
        Some("NULL".to_string()),
    ];
    let bigints = vec![Some(i64::MIN), None, Some(i64::MAX)];
    let floats = vec![Some(1.5f64), None, Some(-0.25), Some(f64::INFINITY)];
    let smallints = vec![None, Some(-7i16)];
    let bools = vec![Some(true), None, Some(false)];
    let numerics = vec![
        Some(Numeric("1.5".into())),
        None,
        Some(Numeric("-12345678901234567890.25".into())),
    ];
    let row = client
        .query_one(
            &statement,
            &[
                &ints, &texts, &bigints, &floats, &smallints, &bools, &numerics,
            ],
        )
        .await
        .expect("runs");
    assert_eq!(row.get::<_, Vec<Option<i32>>>(0), ints);
    assert_eq!(row.get::<_, Vec<Option<String>>>(1), texts);
    assert_eq!(row.get::<_, Vec<Option<i64>>>(2), bigints);
    assert_eq!(row.get::<_, Vec<Option<f64>>>(3), floats);
    assert_eq!(row.get::<_, Vec<Option<i16>>>(4), smallints);
    assert_eq!(row.get::<_, Vec<Option<bool>>>(5), bools);
    // numeric (unconstrained) is Decimal128(38, 10): the scale shows.
    assert_eq!(
        row.get::<_, Vec<Option<Numeric>>>(6),
        vec![
            Some(Numeric("1.5000000000".into())),
            None,
            Some(Numeric("-12345678901234567890.2500000000".into())),
        ]
    );

    // Empty and NULL arrays, and arrays used as values (unnest, ANY).
    let row = client
        .query_one(
            "SELECT $1::int[], $2::int[] IS NULL, cardinality($1::int[])",
            &[&Vec::<i32>::new(), &None::<Vec<i32>>],
        )
        .await
        .expect("runs");
    assert_eq!(row.get::<_, Vec<Option<i32>>>(0), Vec::<Option<i32>>::new());
    assert!(row.get::<_, bool>(1));
    let rows = client
        .query(
            "SELECT n_name FROM demo.public.nation WHERE n_nationkey = ANY($1::bigint[]) ORDER BY 1",
            &[&vec![0i64, 7]],
        )
        .await
        .expect("runs");
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["ALGERIA", "GERMANY"]);

    // Types the client declares: oid[] (as int4 OIDs), and text[] for an
    // int8 column's worth of values.
    let statement = client
        .prepare_typed("SELECT $1::int[]", &[Type::OID_ARRAY])
        .await
        .expect("prepares");
    let row = client
        .query_one(&statement, &[&vec![Some(1259u32), None]])
        .await
        .expect("runs");
    assert_eq!(row.get::<_, Vec<Option<i32>>>(0), vec![Some(1259), None]);

    // Arrays as PostgreSQL's text form in a text parameter, read as array
    // literals (not as one element).
    let statement = client
        .prepare_typed(
            "SELECT $1::int[], $2::text[], $3::bigint[]",
            &[Type::TEXT, Type::TEXT, Type::TEXT],
        )
        .await
        .expect("prepares");
    let row = client
        .query_one(
            &statement,
            &[&"{1,NULL,3}", &r#"{"a b","",NULL,"x\"y", c }"#, &"{}"],
        )
        .await
        .expect("runs");
    assert_eq!(row.get::<_, Vec<Option<i32>>>(0), ints);
    assert_eq!(
        row.get::<_, Vec<Option<String>>>(1),
        vec![
            Some("a b".to_string()),
            Some(String::new()),
            None,
            Some("x\"y".to_string()),
            Some("c".to_string()),
        ]
    );
    assert_eq!(row.get::<_, Vec<Option<i64>>>(2), Vec::<Option<i64>>::new());

    // A malformed literal is an error the session survives.
    let err = client
        .query_one(&statement, &[&"{1,2", &"{}", &"{}"])
        .await
        .expect_err("malformed");
    let db = err.as_db_error().expect("server error");
    assert_eq!(db.code().code(), "22P02", "{db:?}");
    assert!(db.message().contains("malformed array literal"), "{db:?}");
    let row = client
        .query_one("SELECT 1::int", &[])
        .await
        .expect("usable");
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamptz_is_typed_with_its_zone() {
    let server = server().await;
    let client = server.connect("koios").await;
    let statement = client
        .prepare(
            "SELECT '2024-01-02 03:04:05+02'::timestamptz, now(), TIMESTAMP '2024-01-02 03:04:05'",
        )
        .await
        .expect("prepares");
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        types,
        [Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TIMESTAMP]
    );
    let row = client.query_one(&statement, &[]).await.expect("runs");
    let instant: chrono::DateTime<chrono::Utc> = row.get(0);
    assert_eq!(instant.to_rfc3339(), "2024-01-02T01:04:05+00:00");
    let now: chrono::DateTime<chrono::Utc> = row.get(1);
    assert!((chrono::Utc::now() - now).num_seconds().abs() < 60, "{now}");

    // A timestamptz parameter compares with a timestamptz value.
    let row = client
        .query_one(
            "SELECT $1 = '2024-01-02 01:04:05+00'::timestamptz",
            &[&instant],
        )
        .await
        .expect("runs");
    assert!(row.get::<_, bool>(0));
}

/// A repeated read-only query over a remote source runs the plan its
/// session cached; anything that could change its meaning drops it, and
/// plans that would not read afresh are never cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_queries_run_their_cached_plan() {
    use koios::session::Session;
    let server = server().await;
    let session = Session::new(std::sync::Arc::clone(&server.engine), "pg");
    let point = "SELECT capital FROM public.nation_stats WHERE n_nationkey = 8";
    assert!(session.run_cached(point).is_none());
    let first = support::session_rows(&session, point).await;
    assert!(first.concat().contains("New Delhi"), "{first:?}");
    assert!(session.run_cached(point).is_some(), "cached after one run");
    assert_eq!(support::session_rows(&session, point).await, first);

    // Never cached: a folded now(), files and memory tables read when planned.
    for sql in [
        "SELECT now()",
        "SELECT capital FROM public.nation_stats WHERE random() < 2",
        "SELECT count(*) FROM demo.public.nation",
        "SELECT * FROM koios.public.kv",
    ] {
        support::session_rows(&session, sql).await;
        assert!(session.run_cached(sql).is_none(), "{sql} was cached");
    }

    // A write keeps the plan, whose next run reads what was written.
    let count = "SELECT count(*) AS n FROM public.inserts WHERE id = 9001";
    assert!(
        support::session_rows(&session, count)
            .await
            .concat()
            .contains("| 0 ")
    );
    support::session_rows(
        &session,
        "INSERT INTO public.inserts (id, label) VALUES (9001, 'kept')",
    )
    .await;
    assert!(session.run_cached(count).is_some(), "dropped after INSERT");
    assert!(
        support::session_rows(&session, count)
            .await
            .concat()
            .contains("| 1 ")
    );

    // A refresh of any source, a setting, another session's DDL: dropped.
    support::session_rows(&session, "REFRESH SOURCE pg").await;
    assert!(session.run_cached(point).is_none(), "kept after REFRESH");
    support::session_rows(&session, point).await;
    support::session_rows(&session, "SET TimeZone = 'Europe/Paris'").await;
    assert!(session.run_cached(point).is_none(), "kept after SET");
    support::session_rows(&session, point).await;
    assert!(session.run_cached(point).is_some());
    let other = Session::new(std::sync::Arc::clone(&server.engine), "koios");
    support::session_rows(&other, "CREATE VIEW plan_cache_probe AS SELECT 1 AS one").await;
    assert!(
        session.run_cached(point).is_none(),
        "kept after another session's DDL"
    );
}

/// The text of the last statement each of Koios's pooled connections sent
/// to the test database.
async fn remote_statements(server: &TestServer) -> Vec<String> {
    let database = &server.pg.as_ref().expect("a test database").name;
    support::postgres_admin()
        .await
        .query(
            "SELECT query FROM pg_stat_activity WHERE datname = $1 AND application_name = 'koios'",
            &[database],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A prepared statement with parameters runs on a generic plan: planned
/// once with its placeholders, which the remote scan sends to PostgreSQL as
/// parameters of its own query; each execution binds its values. Values or
/// statements that cannot be bound that way are planned with the values in,
/// with the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameterized_statements_bind_into_a_generic_plan() {
    let server = server().await;
    let client = server.connect("pg").await;

    let by_key = client
        .prepare("SELECT capital FROM public.nation_stats WHERE n_nationkey = $1")
        .await
        .expect("prepares");
    assert_eq!(by_key.params(), &[Type::INT8]);
    for (key, capital) in [(8i64, Some("New Delhi")), (6, Some("Paris")), (5, None)] {
        let rows = client.query(&by_key, &[&key]).await.expect("runs");
        let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            got,
            capital.into_iter().map(String::from).collect::<Vec<_>>()
        );
    }
    // The value travelled as a parameter, not spliced into the remote SQL.
    let sent = remote_statements(&server).await;
    assert!(
        sent.iter()
            .any(|q| q.contains("\"n_nationkey\" = $1") && !q.contains('8')),
        "{sent:?}"
    );
    // NULL compares as unknown, as it does locally.
    let rows = client
        .query(&by_key, &[&None::<i64>])
        .await
        .expect("runs with NULL");
    assert!(rows.is_empty());

    // Text: adversarial values are only values; NUL (which PostgreSQL text
    // cannot hold) is planned with the value in and filtered locally.
    let by_capital = client
        .prepare("SELECT n_nationkey FROM public.nation_stats WHERE capital = $1")
        .await
        .expect("prepares");
    for (capital, key) in [
        ("Tokyo", Some(12i64)),
        ("Tokyo' OR '1'='1", None),
        ("x'; DROP TABLE nation_stats; --", None),
        ("Tok\0yo", None),
        ("", None),
    ] {
        let rows = client.query(&by_capital, &[&capital]).await.expect("runs");
        let got: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, key.into_iter().collect::<Vec<_>>(), "{capital:?}");
    }

    // A range over an int4 key, against the same query with literals.
    let range = client
        .prepare("SELECT count(*), sum(m) FROM public.keyed_numbers WHERE n BETWEEN $1 AND $2")
        .await
        .expect("prepares");
    for (low, high) in [(10i32, 50i32), (199_990, 200_010), (7, 3)] {
        let row = client
            .query_one(&range, &[&low, &high])
            .await
            .expect("runs");
        let literal = client
            .query_one(
                &format!(
                    "SELECT count(*), sum(m) FROM public.keyed_numbers WHERE n BETWEEN {low} AND {high}"
                ),
                &[],
            )
            .await
            .expect("runs");
        assert_eq!(row.get::<_, i64>(0), literal.get::<_, i64>(0));
        assert_eq!(
            row.get::<_, Option<i64>>(1),
            literal.get::<_, Option<i64>>(1)
        );
    }

    // Placeholders that stay in Koios's own operators (a numeric comparison
    // not pushed, a computed column): planned with the values each time.
    let local = client
        .prepare_typed(
            "SELECT $1::text || capital FROM public.nation_stats \
             WHERE population_millions > $2 ORDER BY 1",
            &[Type::TEXT, Type::FLOAT8],
        )
        .await
        .expect("prepares");
    for (prefix, floor, expected) in [
        ("big ", 1000.0f64, vec!["big New Delhi"]),
        ("", 100.0, vec!["New Delhi", "Tokyo"]),
    ] {
        let rows = client
            .query(&local, &[&prefix, &floor])
            .await
            .expect("runs");
        let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(got, expected);
    }

    // Catalog changes drop the generic plan with the others: still right.
    client
        .batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refreshes");
    let rows = client.query(&by_key, &[&7i64]).await.expect("runs");
    assert_eq!(rows[0].get::<_, String>(0), "Berlin");
}

/// Simple-protocol texts that differ only in the literals of their column
/// comparisons run on one generic plan: the literals travel to PostgreSQL
/// as parameters, and a text seen before runs its bound plan unparsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_values_bind_into_the_generic_plan_of_their_shape() {
    use koios::session::Session;
    let server = server().await;
    let session = Session::new(std::sync::Arc::clone(&server.engine), "pg");
    for (key, capital) in [(8, "New Delhi"), (7, "Berlin"), (12, "Tokyo")] {
        let sql = format!("SELECT capital FROM public.nation_stats WHERE n_nationkey = {key}");
        let rows = support::session_rows(&session, &sql).await.concat();
        assert!(rows.contains(capital), "{sql}: {rows}");
        // The bound plan is kept for the text itself.
        assert!(session.run_cached(&sql).is_some(), "{sql} not cached");
    }
    let sent = remote_statements(&server).await;
    assert!(
        sent.iter().any(|q| q.contains("\"n_nationkey\" = $1")),
        "the key was not sent as a parameter: {sent:?}"
    );
    // A new text differing only in the value runs without being parsed,
    // on the same generic plan; one whose value does not bind is left to
    // be planned as written.
    let fresh = "SELECT capital FROM public.nation_stats WHERE n_nationkey = 6";
    let output = session
        .run_template(fresh)
        .expect("a text of a known template runs unparsed");
    let koios::session::Output::Rows { mut stream, .. } = output else {
        panic!("{fresh}: no rows");
    };
    let mut text = String::new();
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch.expect("batch");
        text += &datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
            .expect("formats")
            .to_string();
    }
    assert!(text.contains("Paris"), "{fresh}: {text}");
    assert!(
        session
            .run_template("SELECT capital FROM public.nation_stats WHERE n_nationkey = '6'")
            .is_none(),
        "a string bound to an integer column"
    );
    assert!(
        session
            .run_template("SELECT capital FROM public.nation_stats WHERE n_nationkey = 2 + 1")
            .is_none(),
        "an expression is not a template's value"
    );

    // The same through the wire, with quoting games in the strings.
    let client = server.connect("pg").await;
    for (capital, expected) in [("Paris", 1), ("Paris' OR 'a'='a", 0), ("", 0)] {
        let sql = format!(
            "SELECT n_nationkey FROM public.nation_stats WHERE capital = '{}'",
            capital.replace('\'', "''")
        );
        let rows = client
            .simple_query(&sql)
            .await
            .expect("runs")
            .into_iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(rows, expected, "{sql}");
    }
    // Served as data rows (see `single_remote_queries_are_served_as_data_rows`):
    // one round trip, the value still a parameter.
    let sent = remote_statements(&server).await;
    assert!(
        sent.iter().any(|q| q.contains("\"capital\" = $1")),
        "{sent:?}"
    );
    // Read into Arrow batches (under an expression Koios computes), a scan
    // that is not a key lookup is read as any larger scan (COPY), the value
    // written in by the unparser.
    let rows = client
        .query(
            "SELECT n_nationkey + 1 FROM public.nation_stats WHERE capital = ''",
            &[],
        )
        .await
        .expect("runs");
    assert!(rows.is_empty());
    let sent = remote_statements(&server).await;
    assert!(
        sent.iter()
            .any(|q| q.starts_with("COPY (SELECT") && q.contains("\"capital\" = ''")),
        "{sent:?}"
    );

    // Extended-protocol texts without parameters (JDBC's plain Statement).
    for n in [41, 42, 43] {
        let row = client
            .query_one(
                &format!("SELECT m FROM public.keyed_numbers WHERE n = {n}"),
                &[],
            )
            .await
            .expect("runs");
        assert_eq!(row.get::<_, i32>(0), n % 7);
    }
    let sent = remote_statements(&server).await;
    assert!(sent.iter().any(|q| q.contains("\"n\" = $1")), "{sent:?}");
}

/// A CPU-bound query neither delays other clients nor outlives its cancel:
/// plans run on a runtime apart from the connections' (`query_runtime`),
/// and a cross join yields between the batches it emits, so a cancelled
/// one stops and the session's next statement runs at once. The cancel
/// still finds its connection after another client connected and left:
/// every connection has its own backend pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_query_does_not_hold_up_other_clients() {
    use std::time::Duration;
    let server = server().await;
    let busy = server.connect("demo").await;
    let cancel = busy.cancel_token();
    let endless = tokio::spawn(async move {
        let result = busy
            .simple_query(
                "SELECT count(*) FROM generate_series(1, 100000000) a \
                 CROSS JOIN generate_series(1, 100000000) b",
            )
            .await;
        (busy, result)
    });
    // Long enough for the join to be past building its side.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let other = tokio::time::timeout(Duration::from_secs(10), async {
        let client = server.connect("demo").await;
        client
            .query_one("SELECT 40 + 2", &[])
            .await
            .expect("runs")
            .get::<_, i64>(0)
    })
    .await
    .expect("another client is served while the join runs");
    assert_eq!(other, 42);
    cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let (busy, result) = tokio::time::timeout(Duration::from_secs(10), endless)
        .await
        .expect("the cancelled join ends")
        .expect("task");
    let error = result.expect_err("cancelled");
    assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{error}");
    let next = tokio::time::timeout(Duration::from_secs(10), busy.query_one("SELECT 1", &[]))
        .await
        .expect("the session's next statement runs")
        .expect("runs");
    assert_eq!(next.get::<_, i64>(0), 1);
}

/// Reads backend messages until one of type `last` arrives; their type bytes.
fn read_until(socket: &mut std::net::TcpStream, last: u8) -> Vec<u8> {
    support::read_messages_until(socket, last)
        .into_iter()
        .map(|(kind, _)| kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_answers_wait_for_sync_or_flush() {
    let server = server().await;
    let addr = server.addr;
    // Parse, Bind, Describe and Execute are answered together at the Sync
    // or Flush after them, as PostgreSQL does: nothing before (a driver's
    // Bind/Execute/Sync then costs one write, not one per answer).
    let types = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).expect("connects");
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        socket
            .write_all(&support::startup_packet("koios", "koios"))
            .expect("startup");
        read_until(&mut socket, b'Z');

        let mut batch = frontend_message(b'P', b"\0SELECT 41 + 1 AS answer\0\0\0");
        batch.extend(frontend_message(b'B', b"\0\0\0\0\0\0\0\0"));
        batch.extend(frontend_message(b'D', b"P\0"));
        batch.extend(frontend_message(b'E', b"\0\0\0\0\0"));
        socket.write_all(&batch).expect("a batch");
        socket
            .set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        let early = socket.read(&mut byte);
        assert!(
            early.is_err(),
            "an answer came before Sync or Flush: {early:?}"
        );
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        socket
            .write_all(&frontend_message(b'H', b""))
            .expect("flush");
        let flushed = read_until(&mut socket, b'C');
        socket
            .write_all(&frontend_message(b'S', b""))
            .expect("sync");
        (flushed, read_until(&mut socket, b'Z'))
    })
    .await
    .expect("client task");
    // ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete.
    assert_eq!(types.0, b"12TDC".to_vec());
    assert_eq!(types.1, b"Z".to_vec());
}
