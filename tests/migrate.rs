//! `MIGRATE TABLE` across faults: Koios killed in the middle of a
//! migration (the `koios` binary, so it can be killed) resumes it when it
//! starts again and ends with exactly the source's rows; a destination
//! server stopped mid-job fails the job with the reason, and `RESUME JOB`
//! finishes it once the server is back; a table without a key resumes
//! from its chunks of PostgreSQL's heap. What each side holds is read
//! with its own client.

mod support;

use std::time::{Duration, Instant};

use support::TestServer;
use support::jobs::{job_state, wait_for, wait_until_under_way};
use support::private_pg::PrivatePostgres;
use support::process::connect_until;

/// Rows of the source table: enough that a migration is still running
/// when the test strikes.
const ROWS: i64 = 300_000;

/// A MariaDB table of `ROWS` rows, and its `(count, Σid, Σv)` as MariaDB
/// computes it.
fn source_table(my: &support::MyTestDatabase) -> String {
    my.execute(&format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, v bigint, label varchar(20)); \
         INSERT INTO big SELECT seq, seq * 7 % 1000, concat('r', seq) FROM seq_1_to_{ROWS}"
    ))
    .expect("fills the source");
    support::mariadb_output(
        Some(&my.name),
        "SELECT concat(count(*), ' ', sum(id), ' ', sum(v)) FROM big",
    )
    .trim()
    .to_string()
}

/// `(count, Σid, Σv)` of a PostgreSQL copy.
async fn pg_summary(client: &tokio_postgres::Client, table: &str) -> String {
    client
        .query_one(
            &format!(
                "SELECT count(*)::text || ' ' || sum(id)::text || ' ' || sum(v)::text FROM {table}"
            ),
            &[],
        )
        .await
        .expect("sums the destination")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_resumes_after_koios_is_killed_and_copies_each_row_once() {
    let my = support::MyTestDatabase::create();
    let pg = support::PgTestDatabase::create();
    let expected = source_table(&my);
    let (mut koios, dir) = support::process::with_pg_and_my("migrate-restart", &pg.name, &my.name);
    koios.start();
    let until = || Instant::now() + Duration::from_secs(10);
    let client = connect_until(&koios.conn_string(), until())
        .await
        .expect("connects to Koios");
    let id: i64 = client
        .query_one(
            &format!(
                "MIGRATE TABLE my.{}.big TO pg.public.big WITH (chunk_rows = 20000, parallel = 2)",
                my.name
            ),
            &[],
        )
        .await
        .expect("starts the migration")
        .get(0);
    let done = wait_until_under_way(&client, id).await;
    koios.kill();
    println!("Koios killed with {done} of {ROWS} rows copied");
    let destination = support::postgres_client(&pg.name).await;
    let partial: i64 = destination
        .query_one("SELECT count(*) FROM public.big", &[])
        .await
        .expect("counts the destination")
        .get(0);
    assert!(partial < ROWS, "the migration had finished: {partial}");

    koios.start();
    let client = connect_until(&koios.conn_string(), until())
        .await
        .expect("connects to Koios again");
    wait_for(&client, id, "done", Duration::from_secs(180)).await;
    let copied = pg_summary(&destination, "public.big").await;
    println!(
        "source {expected}; destination {copied} (rows, Σid, Σv); {partial} rows were there at the kill"
    );
    assert_eq!(copied, expected, "the destination differs from the source");
    let log = koios.log_text();
    assert!(!log.contains("panicked"), "Koios panicked: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A table without a key is copied in chunks of PostgreSQL's heap blocks
/// (by `ctid`): rows of finished chunks are kept when Koios is killed (a
/// chunk is one `COPY`, so the one cut off keeps nothing), and the job,
/// started again, goes on from its checkpoints — it does not start over —
/// and ends with exactly the source's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_a_key_migrates_in_heap_chunks_and_resumes_from_them() {
    let my = support::MyTestDatabase::create();
    let pg = support::PgTestDatabase::create();
    let source = support::postgres_client(&pg.name).await;
    source
        .batch_execute(&format!(
            "CREATE TABLE public.heap (id bigint, v bigint, label text); \
             INSERT INTO public.heap SELECT g, g * 7 % 1000, 'r' || g FROM generate_series(1, {ROWS}) g; \
             CREATE SCHEMA copied"
        ))
        .await
        .expect("fills the source");
    let expected = pg_summary(&source, "public.heap").await;
    let (mut koios, dir) = support::process::with_pg_and_my("migrate-heap", &pg.name, &my.name);
    koios.start();
    let until = || Instant::now() + Duration::from_secs(10);
    let client = connect_until(&koios.conn_string(), until())
        .await
        .expect("connects to Koios");
    let id: i64 = client
        .query_one(
            "MIGRATE TABLE pg.public.heap TO pg.copied.heap WITH (chunk_rows = 20000, parallel = 2)",
            &[],
        )
        .await
        .expect("starts the migration")
        .get(0);
    let done = wait_until_under_way(&client, id).await;
    koios.kill();
    let partial: i64 = source
        .query_one("SELECT count(*) FROM copied.heap", &[])
        .await
        .expect("counts the destination")
        .get(0);
    println!("Koios killed with {done} of {ROWS} rows copied; {partial} in the destination");
    assert!(
        partial > 0 && partial < ROWS,
        "finished chunks are kept, the table is not whole: {partial}"
    );

    koios.start();
    let client = connect_until(&koios.conn_string(), until())
        .await
        .expect("connects to Koios again");
    wait_for(&client, id, "done", Duration::from_secs(180)).await;
    let copied = pg_summary(&source, "copied.heap").await;
    println!("source {expected}; destination {copied} (rows, Σid, Σv)");
    assert_eq!(copied, expected, "the destination differs from the source");
    let log = koios.log_text();
    assert!(!log.contains("panicked"), "Koios panicked: {log}");
    assert!(
        !log.contains("copying the table again"),
        "the job started over instead of going on from its checkpoints: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_stopped_mid_job_fails_it_and_resume_finishes_it() {
    let my = support::MyTestDatabase::create();
    let cluster = PrivatePostgres::start();
    let expected = source_table(&my);
    let text = format!(
        r#"
[server]
health_interval = "1s"

[[source]]
name = "pg2"
kind = "postgres"
url = "postgres://postgres:${{PG_TEST_PASSWORD}}@127.0.0.1:{port}/postgres"

[[source]]
name = "my"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{my}"
"#,
        port = cluster.port(),
        my = my.name,
    );
    let env =
        |name: &str| (name == "PG_TEST_PASSWORD").then(|| PrivatePostgres::PASSWORD.to_string());
    let server = TestServer::start_toml(&text, &env).await;
    let client = server.connect("koios").await;
    let id: i64 = client
        .query_one(
            &format!(
                "MIGRATE TABLE my.{}.big TO pg2.public.big WITH (chunk_rows = 20000)",
                my.name
            ),
            &[],
        )
        .await
        .expect("starts the migration")
        .get(0);
    wait_until_under_way(&client, id).await;
    cluster.stop();
    wait_for(&client, id, "failed", Duration::from_secs(60)).await;
    let (_, done, error) = job_state(&client, id).await;
    let error = error.expect("a failed job says why");
    println!("job failed with {done} rows copied: {error}");
    assert!(error.contains("pg2"), "the error names the source: {error}");

    // Once the server is back (and Koios has seen it), RESUME finishes
    // the job from its checkpoints.
    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state: String = client
            .query_one(
                "SELECT state FROM koios.system.sources WHERE name = 'pg2'",
                &[],
            )
            .await
            .expect("reads koios.system.sources")
            .get(0);
        if state == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "pg2 is still {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client
        .batch_execute(&format!("RESUME JOB {id}"))
        .await
        .expect("resumes");
    wait_for(&client, id, "done", Duration::from_secs(180)).await;
    let copied = pg_summary(&cluster.connect().await, "public.big").await;
    println!("source {expected}; destination {copied} (rows, Σid, Σv)");
    assert_eq!(copied, expected, "the destination differs from the source");
}
