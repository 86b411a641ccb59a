//! What sessions are doing, seen from another session: a slow query on
//! PostgreSQL shows in `koios.system.queries` with the statement it has
//! open in the source, `pg_cancel_backend` stops it (57014 at once), and
//! with `[[user]]` entries only admins may cancel other users' queries.

mod support;

use std::time::{Duration, Instant};

use support::TestServer;
use tokio_postgres::NoTls;

/// Waits (up to 10 s) until `pid`'s statement shows in
/// `koios.system.queries`; returns its query text and remote statements.
async fn running(observer: &tokio_postgres::Client, pid: i32) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = observer
            .query(
                "SELECT query, remote_statements FROM koios.system.queries WHERE pid = $1",
                &[&pid],
            )
            .await
            .expect("koios.system.queries");
        if let Some(row) = rows.first() {
            let remote: Vec<String> = row.get(1);
            // The plan is recorded once planned: wait for it.
            if !remote.is_empty() {
                return (row.get(0), remote);
            }
        }
        assert!(Instant::now() < deadline, "the slow query never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_query_is_listed_and_cancelled_by_pid() {
    let server = TestServer::start_test().await;
    let pg = server.pg.as_ref().expect("test database");
    pg.execute("CREATE VIEW slow AS SELECT pg_sleep(60)::text AS s")
        .expect("creates the slow view");
    let busy = server.connect("koios").await;
    busy.batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refresh");
    let busy_pid: i32 = support::query_row(&busy, "SELECT pg_backend_pid()")
        .await
        .get(0);
    let observer = server.connect("koios").await;

    // The same session in both listings, idle.
    let row = support::query_row(
        &observer,
        &format!(
            "SELECT s.state, a.state, a.usename, a.datname FROM koios.system.sessions s \
             JOIN pg_catalog.pg_stat_activity a ON a.pid = s.pid WHERE s.pid = {busy_pid}"
        ),
    )
    .await;
    assert_eq!(row.get::<_, String>(0), "idle");
    assert_eq!(row.get::<_, String>(1), "idle");
    assert_eq!(row.get::<_, String>(2), "koios");
    assert_eq!(row.get::<_, String>(3), "koios");

    let slow = tokio::spawn(async move {
        let result = busy.simple_query("SELECT * FROM pg.public.slow").await;
        (result, Instant::now(), busy)
    });
    let (query, remote) = running(&observer, busy_pid).await;
    assert_eq!(query, "SELECT * FROM pg.public.slow");
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert!(
        remote[0].starts_with("pg: SELECT") && remote[0].contains("slow"),
        "the source and the SQL sent: {remote:?}"
    );
    let state: String = support::query_row(
        &observer,
        &format!("SELECT state FROM pg_stat_activity WHERE pid = {busy_pid}"),
    )
    .await
    .get(0);
    assert_eq!(state, "active");

    let cancelled_at = Instant::now();
    let cancelled: bool =
        support::query_row(&observer, &format!("SELECT pg_cancel_backend({busy_pid})"))
            .await
            .get(0);
    assert!(cancelled);
    let (result, ended, busy) = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .expect("the cancelled query ends")
        .expect("query task");
    let err = result.expect_err("cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    assert!(
        ended.duration_since(cancelled_at) < Duration::from_secs(2),
        "cancelled promptly: {:?}",
        ended.duration_since(cancelled_at)
    );
    // The remote statement stops too, and the session is idle again and
    // usable.
    support::wait_until_remote_scans_stop(&pg.name).await;
    let state: String = support::query_row(
        &observer,
        &format!("SELECT state FROM koios.system.sessions WHERE pid = {busy_pid}"),
    )
    .await
    .get(0);
    assert_eq!(state, "idle");
    let one: i32 = support::query_row(&busy, "SELECT 1::int4").await.get(0);
    assert_eq!(one, 1);
    let still: i64 = support::query_row(
        &observer,
        "SELECT count(*) FROM koios.system.queries \
         WHERE query LIKE '%pg.public.slow%' AND pid <> pg_backend_pid()",
    )
    .await
    .get(0);
    assert_eq!(still, 0, "no longer a running query");

    // A closed session leaves the listings.
    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: i64 = support::query_row(
            &observer,
            &format!("SELECT count(*) FROM koios.system.sessions WHERE pid = {busy_pid}"),
        )
        .await
        .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed session is still listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ADMIN_PASSWORD: &str = "admin secret";
const USER_PASSWORD: &str = "user secret";

async fn connect_as(server: &TestServer, user: &str, password: &str) -> tokio_postgres::Client {
    let conn = format!(
        "host=127.0.0.1 port={} user={user} password='{password}' dbname=koios",
        server.addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn pid_of(client: &tokio_postgres::Client) -> i32 {
    support::query_row(client, "SELECT pg_backend_pid()")
        .await
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_cancel_other_users_queries() {
    let server = TestServer::start_toml(
        r#"
[[user]]
name = "root"
password = "${ADMIN_PASSWORD}"
admin = true

[[user]]
name = "carol"
password = "${USER_PASSWORD}"

[[user]]
name = "dave"
password = "${USER_PASSWORD}"
"#,
        &|name| match name {
            "ADMIN_PASSWORD" => Some(ADMIN_PASSWORD.to_string()),
            "USER_PASSWORD" => Some(USER_PASSWORD.to_string()),
            _ => None,
        },
    )
    .await;
    let root = connect_as(&server, "root", ADMIN_PASSWORD).await;
    let carol = connect_as(&server, "carol", USER_PASSWORD).await;
    let carol_again = connect_as(&server, "carol", USER_PASSWORD).await;
    let dave = connect_as(&server, "dave", USER_PASSWORD).await;
    let (root_pid, carol_pid) = (pid_of(&root).await, pid_of(&carol).await);

    // A user may not cancel another user's query …
    let err = carol
        .simple_query(&format!("SELECT pg_cancel_backend({root_pid})"))
        .await
        .expect_err("carol may not cancel root's query");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
    let err = dave
        .simple_query(&format!("SELECT pg_cancel_backend({carol_pid})"))
        .await
        .expect_err("dave may not cancel carol's query");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
    // … but may cancel their own sessions', and an admin anyone's.
    let own: bool = support::query_row(
        &carol_again,
        &format!("SELECT pg_cancel_backend({carol_pid})"),
    )
    .await
    .get(0);
    assert!(own);
    let by_admin: bool =
        support::query_row(&root, &format!("SELECT pg_cancel_backend({carol_pid})"))
            .await
            .get(0);
    assert!(by_admin);

    // Every user sees every session, with its user.
    let users: Vec<String> = root
        .query(
            "SELECT user_name FROM koios.system.sessions ORDER BY user_name",
            &[],
        )
        .await
        .expect("sessions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, ["carol", "carol", "dave", "root"]);
}
