//! PostgreSQL faults: a server that is down at start, connections killed
//! under Koios, and statements cancelled by the client (which must stop the
//! statement on PostgreSQL too).

mod support;

use std::time::Duration;

use koios::config::Config;
use support::TestServer;
use support::private_pg::PrivatePostgres;

/// Koios with `pg` on `database` and one pooled connection, so that a
/// connection left busy or cancelled would hold up the next statement.
async fn one_connection_server(database: &support::PgTestDatabase) -> TestServer {
    let text = format!(
        r#"
[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{}"
pool_size = 1
"#,
        database.name
    );
    TestServer::start_toml(&text, &|_| None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_remote_statement() {
    let server = TestServer::start_test().await;
    let pg = server.pg.as_ref().expect("test database");
    pg.execute("CREATE VIEW slow AS SELECT pg_sleep(60)::text AS s")
        .expect("creates the slow view");
    let client = server.connect("koios").await;
    client
        .batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refresh");

    let started = support::cancel_mid_query(&client, "SELECT * FROM pg.public.slow").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancel took {:?}",
        started.elapsed()
    );

    // PostgreSQL stops the statement too, soon after.
    support::wait_until_remote_scans_stop(&pg.name).await;

    // The session and the source keep working.
    let row = client
        .query_one("SELECT count(*) FROM pg.public.nation_stats", &[])
        .await
        .expect("still usable");
    assert_eq!(row.get::<_, i64>(0), 5);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "follow-up waited {:?}",
        started.elapsed()
    );
}

/// An index lookup (a point read: the query itself in one round trip, its
/// rows written straight to the client) stopped mid-statement, here by
/// `statement_timeout`, must cancel the remote statement, and the source's
/// one pooled connection must serve every lookup after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_stopped_midway_leaves_the_pool_usable() {
    let pg = support::PgTestDatabase::create();
    pg.execute("CREATE VIEW slow AS SELECT pg_sleep(60)::text AS s")
        .expect("creates the slow view");
    pg.execute("CREATE TABLE keyed (id integer PRIMARY KEY, v text)")
        .expect("creates the table");
    pg.execute("INSERT INTO keyed SELECT g, 'v' || g FROM generate_series(1, 100) g")
        .expect("fills the table");
    let server = one_connection_server(&pg).await;
    let client = server.connect("koios").await;
    // A pushed LIMIT makes it a point read: rows, not COPY.
    let plan = client
        .simple_query("EXPLAIN SELECT s FROM pg.public.slow LIMIT 1")
        .await
        .expect("explain");
    let plan = format!("{plan:?}");
    assert!(plan.contains("LIMIT 1"), "{plan}");
    for round in 0..3_i32 {
        client
            .batch_execute("SET statement_timeout = 200")
            .await
            .expect("set");
        let err = client
            .query("SELECT s FROM pg.public.slow LIMIT 1", &[])
            .await
            .expect_err("times out");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "round {round}: {err}"
        );
        client
            .batch_execute("SET statement_timeout = 0")
            .await
            .expect("reset");
        support::wait_until_remote_scans_stop(&pg.name).await;
        for id in [round + 1, 50, 100] {
            let row = client
                .query_one("SELECT v FROM pg.public.keyed WHERE id = $1", &[&id])
                .await
                .unwrap_or_else(|e| panic!("round {round}: lookup {id}: {e}"));
            assert_eq!(row.get::<_, String>(0), format!("v{id}"));
        }
    }
}

/// A scan abandoned early cancels its remote statement; that cancel must
/// never reach the statement the pooled connection runs next for another
/// query (it did when the connection went back to the pool before the
/// cancel request was delivered). One pooled connection and a second client
/// waiting for it make the handover immediate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_scans_cancel_never_hits_the_next_statement() {
    let pg = support::PgTestDatabase::create();
    // Small: its remote statement has ended by the time the LIMIT drops the
    // scan, though Koios has not yet read the end of its result. The pause
    // holds the one connection long enough for the other client to be
    // waiting for it at the handover.
    pg.execute(
        "CREATE VIEW many AS SELECT g AS n FROM generate_series(1, 100) g \
         CROSS JOIN (SELECT pg_sleep(0.03)) AS pause",
    )
    .expect("creates the view");
    // And one still streaming when the LIMIT drops it.
    pg.execute(
        "CREATE VIEW streaming AS SELECT g AS n FROM generate_series(1, 300000) g \
         CROSS JOIN (SELECT pg_sleep(0.03)) AS pause",
    )
    .expect("creates the view");
    // The next statement runs long enough for a late cancel to land in it.
    pg.execute("CREATE VIEW nap AS SELECT pg_sleep(0.02)::text AS slept")
        .expect("creates the view");
    let server = one_connection_server(&pg).await;
    support::abandon_scans_beside_another_client(&server, "pg.public").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_fail_clearly_then_recover() {
    let server = TestServer::start_test().await;
    let pg = server.pg.as_ref().expect("test database");
    let client = server.connect("koios").await;
    let count = "SELECT count(*) FROM pg.public.nation_stats";
    assert_eq!(
        client
            .query_one(count, &[])
            .await
            .expect("first")
            .get::<_, i64>(0),
        5
    );

    let admin = support::postgres_admin().await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&pg.name],
        )
        .await
        .expect("terminates Koios's connections");

    // The pool notices dead connections; at worst one query reports it.
    let mut recovered = false;
    for _ in 0..3 {
        match client.query_one(count, &[]).await {
            Ok(row) => {
                assert_eq!(row.get::<_, i64>(0), 5);
                recovered = true;
                break;
            }
            Err(e) => {
                // Koios's ErrorResponse (tokio-postgres displays only "db error").
                let message = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                assert!(message.contains("source 'pg'"), "{message}");
            }
        }
    }
    assert!(
        recovered,
        "the source did not recover after its connections were killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_reported_without_secrets() {
    let text = r#"
[[source]]
name = "pg_down"
kind = "postgres"
url = "postgres://app:hunter2-secret@127.0.0.1:1/nothing"

[[source]]
name = "bad_url"
kind = "postgres"
url = "postgres://app:hunter2-secret@127.0.0.1:notaport/x"
"#;
    let config =
        Config::parse(text, std::path::Path::new("down.toml"), &|_| None).expect("valid config");
    let server = TestServer::start(config).await;
    let client = server.connect("koios").await;
    for sql in [
        "SELECT * FROM pg_down.public.t",
        "SELECT * FROM bad_url.public.t",
    ] {
        let err = client.simple_query(sql).await.expect_err("source is down");
        let db = err.as_db_error().expect("a server error");
        let source = sql.split(['.', ' ']).nth(3).unwrap_or_default();
        assert!(
            db.message()
                .contains(&format!("source '{source}' is unavailable")),
            "{}",
            db.message()
        );
        assert!(
            !db.message().contains("hunter2"),
            "password leaked: {}",
            db.message()
        );
    }
    // Everything else still works.
    let row = client.query_one("SELECT 1 + 1", &[]).await.expect("works");
    assert_eq!(row.get::<_, i64>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_encrypt_and_verify() {
    let admin = support::postgres_admin().await;
    let ssl: String = admin
        .query_one("SHOW ssl", &[])
        .await
        .expect("show ssl")
        .get(0);
    let ca = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    assert!(
        ssl == "on" && std::path::Path::new(ca).exists(),
        "this test needs the local PostgreSQL to serve TLS with Debian's snakeoil certificate (ssl = {ssl})"
    );
    let pg = support::PgTestDatabase::create();
    let db = &pg.name;
    let text = format!(
        r#"
[[source]]
name = "plain"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{db}"
tls = "disable"

[[source]]
name = "required"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{db}"
tls = "require"

# The certificate is issued to "localhost": verified when connecting by that name.
[[source]]
name = "verified"
kind = "postgres"
url = "postgres://postgres@localhost:5432/{db}?hostaddr=127.0.0.1"
tls = "verify-full"
tls_ca_file = "{ca}"

[[source]]
name = "wrong_name"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{db}"
tls = "verify-full"
tls_ca_file = "{ca}"
"#
    );
    let config = Config::parse(&text, std::path::Path::new("tls.toml"), &|_| None).expect("valid");
    let server = TestServer::start(config).await;
    let client = server.connect("koios").await;
    for (source, expected) in [("plain", false), ("required", true), ("verified", true)] {
        let row = support::query_row(
            &client,
            &format!("SELECT ssl FROM {source}.public.connection_ssl"),
        )
        .await;
        assert_eq!(row.get::<_, bool>(0), expected, "{source}");
    }
    let err = client
        .simple_query("SELECT ssl FROM wrong_name.public.connection_ssl")
        .await
        .expect_err("certificate name mismatch is refused");
    let message = err
        .as_db_error()
        .expect("server error")
        .message()
        .to_string();
    assert!(
        message.contains("source 'wrong_name' is unavailable"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_types_error_or_skip_by_option() {
    let pg = support::PgTestDatabase::create();
    let db = &pg.name;
    let text = format!(
        r#"
[[source]]
name = "strict"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{db}"
unsupported_types = "error"

[[source]]
name = "lenient"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{db}"
unsupported_types = "skip"
"#
    );
    let config =
        Config::parse(&text, std::path::Path::new("types.toml"), &|_| None).expect("valid");
    let server = TestServer::start(config).await;
    let client = server.connect("koios").await;
    let err = client
        .simple_query("SELECT id FROM strict.public.all_types")
        .await
        .expect_err("point is not mapped");
    let message = err
        .as_db_error()
        .expect("server error")
        .message()
        .to_string();
    assert!(
        message.contains(
            "source 'strict': table public.all_types, column c_point: type point is not supported"
        ),
        "{message}"
    );
    // Other tables of the strict source still work.
    let row = client
        .query_one("SELECT count(*) FROM strict.public.nation_stats", &[])
        .await
        .expect("works");
    assert_eq!(row.get::<_, i64>(0), 5);
    // "skip" leaves the column out.
    let err = client
        .simple_query("SELECT c_point FROM lenient.public.all_types")
        .await
        .expect_err("the column is skipped");
    assert_eq!(err.code().map(|c| c.code()), Some("42703"), "{err}");
    let row = client
        .query_one("SELECT count(*) FROM lenient.public.all_types", &[])
        .await
        .expect("the rest is readable");
    assert_eq!(row.get::<_, i64>(0), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_without_leaking_it() {
    let cluster = PrivatePostgres::start();
    let port = cluster.port();
    let password = PrivatePostgres::PASSWORD;
    let direct = cluster.connect().await;
    direct
        .batch_execute("CREATE TABLE t AS SELECT generate_series(1, 5) AS n")
        .await
        .expect("table");

    let text = format!(
        r#"
[[source]]
name = "pg_wrong_pw"
kind = "postgres"
url = "postgres://postgres:hunter2-wrong@127.0.0.1:{port}/postgres"

[[source]]
name = "pg_right_pw"
kind = "postgres"
url = "postgres://postgres:${{PG_TEST_PASSWORD}}@127.0.0.1:{port}/postgres"
"#
    );
    let env = |name: &str| (name == "PG_TEST_PASSWORD").then(|| password.to_string());
    let server = TestServer::start_toml(&text, &env).await;
    let client = server.connect("koios").await;

    let message = support::query_error(&client, "SELECT * FROM pg_wrong_pw.public.t").await;
    assert!(
        message.contains("source 'pg_wrong_pw' is unavailable"),
        "{message}"
    );
    assert!(
        message.contains("password authentication failed"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "password leaked: {message}");

    // The right password (from the environment) works beside it.
    let row = client
        .query_one("SELECT sum(n) FROM pg_right_pw.public.t", &[])
        .await
        .expect("SCRAM authentication with the right password");
    assert_eq!(row.get::<_, i64>(0), 15);
    drop(cluster);
}
