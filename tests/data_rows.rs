//! Plans that are one remote query are served as rows the connector
//! writes straight from the server's values (`DataRow` bodies), skipping
//! Arrow: for each SQL backend, the same bytes in text and in binary as
//! writing the Arrow batches of the same plan, the same errors, and Arrow
//! for everything else.

mod support;

use support::TestServer;

async fn server() -> TestServer {
    TestServer::start_test().await
}

/// The first row of `sql` over the simple protocol, as the text it sent.
async fn first_row_as_text(client: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    let messages = client.simple_query(sql).await.expect("runs");
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .expect("a row");
    (0..row.len())
        .map(|i| row.get(i).map(str::to_string))
        .collect()
}

/// The rows of `sql` twice, as DataRow bodies in text or `binary`: once as
/// the connector wrote them straight (which must be offered), once written
/// from the Arrow batches the same plan yields, as every other plan's rows
/// are.
async fn direct_and_arrow_rows(
    session: &koios::session::Session,
    sql: &str,
    binary: bool,
) -> (Vec<Result<Vec<u8>, String>>, Vec<Result<Vec<u8>, String>>) {
    use futures::StreamExt;
    use koios::server::encode::{encode_batch, field_infos};
    use pgwire::api::portal::Format;
    let output = || async move {
        let mut outputs = session.run_sql(sql).await.expect("runs");
        let koios::session::Output::Rows {
            schema,
            stream,
            data_rows,
            ..
        } = outputs.remove(0)
        else {
            panic!("{sql}: no rows");
        };
        (schema, stream, data_rows)
    };
    let (schema, _, data_rows) = output().await;
    if data_rows.is_none() {
        eprintln!(
            "{}",
            support::session_rows(session, &format!("EXPLAIN {sql}"))
                .await
                .concat()
        );
    }
    let start = data_rows.unwrap_or_else(|| panic!("{sql}: not served as data rows"));
    let direct: Vec<_> = start(vec![binary; schema.fields().len()])
        .map(|row| row.map(|b| b.to_vec()).map_err(|e| e.to_string()))
        .collect()
        .await;
    let (schema, mut stream, _) = output().await;
    let format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let fields = field_infos(&schema, &format);
    let context = koios::pgtypes::text::TextContext::default();
    let mut arrow = Vec::new();
    while let Some(batch) = stream.next().await {
        match batch.and_then(|b| encode_batch(&b, &fields, &context)) {
            Ok(rows) => arrow.extend(rows.into_iter().map(|r| Ok(r.data.to_vec()))),
            Err(e) => arrow.push(Err(e.to_string())),
        }
    }
    (direct, arrow)
}

/// A query whose plan is one PostgreSQL query — a scan with its filters
/// and limit, or a whole pushed-down subplan — is served as rows the
/// connector writes straight from the server's values: in text and in
/// binary, the same bytes as writing the Arrow batches, the same errors.
/// Plans that are more than one remote query, and columns whose text
/// depends on the session (timestamptz) or that are arrays or intervals,
/// are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_remote_queries_are_served_as_data_rows() {
    use koios::session::Session;
    let server = server().await;
    let pg = server.pg.as_ref().expect("a test database");
    pg.execute(
        "CREATE TABLE edge_values (id int PRIMARY KEY, d date, ts timestamp, n numeric(12,3), \
         nf numeric, nw numeric(60,5), f8 float8, f4 real, t time, b bytea, m money, o oid, \
         c char(4), u uuid, j jsonb, e mood, mac macaddr, ip inet);
         INSERT INTO edge_values VALUES
           (1, '0044-03-15 BC', '0001-01-01 00:00:00 BC', -0.5, 1e-10, -123456789012345678901234567890.12345,
            'Infinity', '-0', '24:00:00', '\\x', '-1.5', 4294967295, 'ab', \
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[1, {\"a\": null}]', 'sad', '08:00:2b:01:02:03', '::1/128'),
           (2, '9999-12-31', '2024-01-02 03:04:05.5', 0, 123456789.123456789, 0,
            1e300, 3.4e38, '00:00:00.000001', '\\x00ff', '0', 0, '', NULL, 'null', 'ok', NULL, '10.1.2.3/8'),
           (3, NULL, NULL, NULL, NULL, NULL, 'NaN', 1.5e-7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (4, '2024-02-29', '1999-12-31 23:59:59.999999', 999999999.999, -0.000001, 1, \
            -1.2345678901234567e-300, 0.1, '12:34:56', '\\x7f', '1234567.89', 26, 'abcd', NULL, '{}', 'happy', NULL, NULL);
         CREATE TABLE infinite_dates (id int PRIMARY KEY, d date);
         INSERT INTO infinite_dates VALUES (1, '2024-01-01'), (2, 'infinity');",
    )
    .expect("creates the tables");
    let session = Session::new(std::sync::Arc::clone(&server.engine), "pg");
    for sql in [
        "SELECT * FROM public.edge_values",
        "SELECT id, n, nw, d FROM public.edge_values WHERE id BETWEEN 2 AND 4",
        "SELECT e, id, c, id AS again FROM public.edge_values WHERE id >= 2 LIMIT 2",
        "SELECT id, c_bool, c_int2, c_int4, c_int8, c_float4, c_float8, c_numeric, \
         c_numeric_wide, c_numeric_free, c_text, c_varchar, c_char, c_name, c_date, c_time, \
         c_timestamp, c_uuid, c_json, c_jsonb, c_bytea, c_enum, c_inet, c_cidr, c_macaddr, \
         c_money, c_point FROM public.all_types",
        "SELECT * FROM public.adversarial WHERE s <> 'plain'",
        // Pushed down whole: an aggregate, a sort.
        "SELECT count(*), sum(n), max(d) FROM public.edge_values",
        "SELECT count(*) AS n, capital FROM public.nation_stats GROUP BY capital HAVING count(*) > 0",
        // Rows arrive in the order pushed: no local sort.
        "SELECT n_nationkey, capital FROM public.nation_stats ORDER BY n_nationkey DESC LIMIT 5",
    ] {
        for binary in [false, true] {
            let (direct, arrow) = direct_and_arrow_rows(&session, sql, binary).await;
            assert!(!direct.is_empty(), "{sql}: no rows");
            assert_eq!(direct, arrow, "{sql} (binary: {binary})");
        }
    }
    // An infinite date has no Arrow value: both end in the same error,
    // naming the column (the rows before it were already written,
    // as PostgreSQL may send rows before an error).
    for binary in [false, true] {
        let sql = "SELECT id, d FROM public.infinite_dates";
        let (direct, arrow) = direct_and_arrow_rows(&session, sql, binary).await;
        assert_eq!(direct.last(), arrow.last());
        let error = direct
            .last()
            .and_then(|r| r.as_ref().err())
            .expect("an error");
        assert!(error.contains("column d: infinite dates"), "{error}");
    }

    // Not one remote query, or not writable directly: Arrow only.
    for sql in [
        "SELECT n.capital, r.r_name FROM public.nation_stats n \
         JOIN demo.public.region r ON n.n_nationkey % 5 = r.r_regionkey",
        "SELECT c_timestamptz FROM public.all_types",
        "SELECT c_interval FROM public.all_types",
        "SELECT c_int_arr FROM public.all_types",
        "SELECT upper(capital) FROM public.nation_stats",
        // char(n) compares ignoring trailing spaces: filtered in Koios.
        "SELECT e, id FROM public.edge_values WHERE c = 'ab'",
    ] {
        let outputs = session.run_sql(sql).await.expect("runs");
        let Some(koios::session::Output::Rows { data_rows, .. }) = outputs.into_iter().next()
        else {
            panic!("{sql}: no rows");
        };
        assert!(data_rows.is_none(), "{sql}: served as data rows");
    }

    // Through the wire: text for the simple protocol, binary for the
    // extended protocol.
    let client = server.connect("pg").await;
    let sql = "SELECT id, n, d, c FROM public.edge_values WHERE id = 1";
    assert_eq!(
        first_row_as_text(&client, sql).await,
        [
            Some("1"),
            Some("-0.500"),
            Some("0044-03-15 BC"),
            Some("ab  ")
        ]
        .map(|v| v.map(String::from))
    );
    let binary = client.query_one(sql, &[]).await.expect("runs");
    assert_eq!(binary.get::<_, String>(3), "ab  ");
}

/// The MySQL/MariaDB connector writes its rows straight too: every type it
/// maps but `TIMESTAMP` (whose text follows the session's time zone) and
/// `TIME` (an interval), the same bytes in text and binary as the Arrow
/// path, the same error for a zero date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_queries_are_served_as_data_rows() {
    use koios::session::Session;
    // The test configuration splits MySQL scans (`split_count`), and a
    // split scan is more than one query: a source of its own.
    let my = support::MyTestDatabase::create();
    let server = TestServer::start_toml(
        &format!(
            "[[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{db}\"\n\
             [[source]]\nname = \"my_strict\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{db}\"\n\
             invalid_dates = \"error\"\n",
            db = my.name
        ),
        &|_| None,
    )
    .await;
    my.execute(
        "CREATE TABLE edge_values (id int PRIMARY KEY, d date, dt datetime(6), n decimal(12,3), \
         f float, x double, b varbinary(4), t varchar(10), y year, u bigint unsigned, bo tinyint(1), \
         i8 tinyint, w decimal(50,4));
         INSERT INTO edge_values VALUES
           (1, '1000-01-01', '1000-01-01 00:00:00', -0.5, -0, 1e300, x'', '', 1901, 0, 5, -128, \
            -1234567890123456789012345678901234567890123456.5),
           (2, '9999-12-31', '9999-12-31 23:59:59.999999', 999999999.999, 3.4e38, -1.2345678901234567e-300, \
            x'00ff', 'it''s', 2155, 18446744073709551615, 0, 127, 0),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (4, '2024-02-29', '1999-12-31 23:59:59.000001', 0.001, 1.5e-7, 0.1, x'7f', 'é✓', 2024, 1, 1, 0, 1);",
    )
    .expect("creates the table");
    let db = &my.name;
    let session = Session::new(std::sync::Arc::clone(&server.engine), "my");
    let all_types = "id, c_tinyint, c_tinyint_u, c_smallint, c_smallint_u, c_mediumint, c_int, \
         c_int_u, c_bigint, c_bigint_u, c_decimal, c_decimal_max, c_float, c_double, c_bit, c_char, \
         c_varchar, c_text, c_latin1, c_binary, c_varbinary, c_blob, c_date, c_datetime0, \
         c_datetime6, c_year, c_json, c_enum, c_set";
    // Without FLOAT and DOUBLE columns the query goes as text (one round
    // trip); with them, through the binary protocol: both checked.
    let exact_types = all_types.replace(" c_float, c_double,", "");
    for sql in [
        format!("SELECT {all_types} FROM {db}.all_types"),
        format!("SELECT {exact_types} FROM {db}.all_types"),
        format!("SELECT * FROM {db}.edge_values"),
        format!("SELECT id, d, dt, n, b, t, y, u, bo, i8, w FROM {db}.edge_values"),
        // A key lookup; a projection that reorders and repeats; a limit.
        format!("SELECT t, n, id FROM {db}.edge_values WHERE id = 2"),
        format!("SELECT w, id, t, id AS again FROM {db}.edge_values WHERE id >= 2 LIMIT 2"),
        // Zero dates read as NULL (the source's default).
        format!("SELECT * FROM {db}.zero_dates"),
        // Pushed down whole: an aggregate.
        format!("SELECT count(*), sum(n), max(d), min(y) FROM {db}.edge_values"),
    ] {
        for binary in [false, true] {
            let (direct, arrow) = direct_and_arrow_rows(&session, &sql, binary).await;
            assert!(!direct.is_empty(), "{sql}: no rows");
            assert_eq!(direct, arrow, "{sql} (binary: {binary})");
        }
    }
    // A zero date is an error on both paths where the source says so.
    for binary in [false, true] {
        let sql = format!("SELECT id, d FROM my_strict.{db}.zero_dates WHERE id = 1");
        let (direct, arrow) = direct_and_arrow_rows(&session, &sql, binary).await;
        assert_eq!(direct.last(), arrow.last());
        let error = direct
            .last()
            .and_then(|r| r.as_ref().err())
            .expect("an error");
        assert!(
            error.contains("column d: invalid date 0000-00-00"),
            "{error}"
        );
    }
    // Not writable directly: Arrow only.
    for sql in [
        format!("SELECT id, c_timestamp3 FROM {db}.all_types"),
        format!("SELECT c_time FROM {db}.all_types"),
        format!("SELECT upper(t) FROM {db}.edge_values"),
    ] {
        let outputs = session.run_sql(&sql).await.expect("runs");
        let Some(koios::session::Output::Rows { data_rows, .. }) = outputs.into_iter().next()
        else {
            panic!("{sql}: no rows");
        };
        assert!(data_rows.is_none(), "{sql}: served as data rows");
    }

    // Through the wire: text for the simple protocol, binary for the
    // extended protocol.
    let client = server.connect("my").await;
    let sql = format!("SELECT id, n, d, t, u FROM {db}.edge_values WHERE id = 2");
    assert_eq!(
        first_row_as_text(&client, &sql).await,
        [
            Some("2"),
            Some("999999999.999"),
            Some("9999-12-31"),
            Some("it's"),
            Some("18446744073709551615")
        ]
        .map(|v| v.map(String::from))
    );
    let binary = client.query_one(&sql, &[]).await.expect("runs");
    assert_eq!(binary.get::<_, String>(3), "it's");
    assert_eq!(binary.get::<_, i32>(0), 2);

    // Lookups reuse pooled connections: one left idle after them (each
    // lookup used to open, set up and close a connection of its own).
    for key in 1..=5 {
        client
            .query(
                &format!("SELECT t FROM {db}.edge_values WHERE id = $1"),
                &[&key],
            )
            .await
            .expect("looks up");
    }
    // A connection goes back to the pool through the driver's recycler
    // task, a moment after its statement ends.
    let idle = || {
        server
            .engine
            .render_metrics()
            .lines()
            .find_map(|l| l.strip_prefix("koios_source_pool_connections_idle{source=\"my\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while idle() < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no idle pooled connection after lookups"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
