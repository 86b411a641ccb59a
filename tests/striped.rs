//! Striped tables across a restart of Koios and with a member's server
//! down: placement is the same after a restart (hash and round robin), a
//! down member fails reads with 08006 naming it — or, with
//! `koios.allow_partial_results`, the live members answer with a WARNING —
//! and reads work again once the server is back, with no command issued.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use koios::engine::metadata::MetadataLocation;
use support::TestServer;
use support::private_pg::PrivatePostgres;
use tokio_postgres::AsyncMessage;

/// The ids each member of `striped_test.events` holds, read with each
/// backend's own client.
fn member_ids(
    pg: &support::PgTestDatabase,
    my: &support::MyTestDatabase,
) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let pg_ids = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &pg.name,
            "-tA",
            "-c",
        ])
        .arg("SELECT id FROM public.stable ORDER BY id")
        .output()
        .expect("psql runs");
    let parse = |text: &[u8]| -> BTreeSet<i64> {
        String::from_utf8_lossy(text)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    let my_ids = support::mariadb_output(Some(&my.name), "SELECT id FROM stable ORDER BY id");
    (parse(&pg_ids.stdout), parse(my_ids.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_is_the_same_after_a_restart() {
    let (config, databases) = support::test_config();
    let mut config = config;
    config.server.metadata = MetadataLocation::Sqlite(databases.metadata.path.clone());
    let my_db = databases.my.name.clone();

    let (before, rr_before) = {
        let server = TestServer::start(config.clone()).await;
        let client = server.connect("koios").await;
        client
            .batch_execute(&format!(
                "CREATE TABLE koios.public.stable (id bigint PRIMARY KEY, v text) \
                   STRIPED BY HASH (id) ACROSS (pg.public.stable, my.{my_db}.stable);
                 INSERT INTO koios.public.stable SELECT value, 'v' || value FROM generate_series(1, 200);
                 CREATE TABLE koios.public.rr (n bigint) \
                   STRIPED ROUND ROBIN ACROSS (pg.public.rr, my.{my_db}.rr);
                 INSERT INTO koios.public.rr SELECT value FROM generate_series(1, 1500);"
            ))
            .await
            .expect("creates and fills the striped tables");
        let rr: i64 = client
            .query_one("SELECT inserted_rows FROM koios.system.logical_tables WHERE name = 'koios.public.rr'", &[])
            .await
            .expect("reads the pointer")
            .get(0);
        (member_ids(&databases.pg, &databases.my), rr)
    };
    assert_eq!(before.0.len() + before.1.len(), 200);
    assert!(
        !before.0.is_empty() && !before.1.is_empty(),
        "both members hold rows: {before:?}"
    );
    assert_eq!(rr_before, 1500);

    // A new Koios on the same metadata store: the tables are there, and
    // the same keys go to the same members.
    let server = TestServer::start(config).await;
    let client = server.connect("koios").await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM koios.public.stable", &[])
        .await
        .expect("the striped table survived the restart")
        .get(0);
    assert_eq!(count, 200);
    client
        .batch_execute(
            "DELETE FROM koios.public.stable WHERE id > 0;
             INSERT INTO koios.public.stable SELECT value, 'again' FROM generate_series(1, 200);",
        )
        .await
        .expect("refills");
    assert_eq!(member_ids(&databases.pg, &databases.my), before);

    // Round robin continues where it stopped: 1 000 on the first member,
    // 500 on the second, then the next 500 on the second.
    client
        .batch_execute("INSERT INTO koios.public.rr SELECT value FROM generate_series(1501, 2000)")
        .await
        .expect("inserts after the restart");
    let counts = support::mariadb_output(Some(&my_db), "SELECT count(*) FROM rr");
    assert_eq!(
        counts.trim(),
        "1000",
        "the second member got the next batch"
    );
    client
        .batch_execute("DROP TABLE koios.public.stable CASCADE; DROP TABLE koios.public.rr CASCADE")
        .await
        .expect("drops");
}

/// A Koios connection whose notices (WARNINGs) are collected.
async fn connect_with_notices(
    server: &TestServer,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut connection) =
        tokio_postgres::connect(&server.conn_string("koios"), tokio_postgres::NoTls)
            .await
            .expect("connects to Koios");
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = sender.send(format!("{}: {}", notice.severity(), notice.message()));
            }
        }
    });
    (client, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_fails_reads_or_answers_partially_and_recovers_by_itself() {
    let pg = support::PgTestDatabase::create();
    let cluster = PrivatePostgres::start();
    let port = cluster.port();
    let text = format!(
        r#"
[server]
health_interval = "1s"

[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{}"

[[source]]
name = "pg2"
kind = "postgres"
url = "postgres://postgres:${{PG_TEST_PASSWORD}}@127.0.0.1:{port}/postgres"
"#,
        pg.name
    );
    let env =
        |name: &str| (name == "PG_TEST_PASSWORD").then(|| PrivatePostgres::PASSWORD.to_string());
    let server = TestServer::start_toml(&text, &env).await;
    let (client, mut notices) = connect_with_notices(&server).await;
    client
        .batch_execute(
            "CREATE TABLE koios.public.spread (id bigint PRIMARY KEY, v text) \
               STRIPED BY HASH (id) ACROSS (pg.public.spread, pg2.public.spread);
             INSERT INTO koios.public.spread SELECT value, 'v' || value FROM generate_series(1, 100);",
        )
        .await
        .expect("creates and fills the striped table");
    let on_pg: i64 = support::postgres_client(&pg.name)
        .await
        .query_one("SELECT count(*) FROM public.spread", &[])
        .await
        .expect("counts the first member")
        .get(0);
    assert!(on_pg > 0 && on_pg < 100, "{on_pg}");
    // A key on each member, and a prepared lookup run once while both are
    // up (its plan is kept for later values, every member behind a gate).
    let on_pg_ids: Vec<i64> = support::postgres_client(&pg.name)
        .await
        .query("SELECT id FROM public.spread ORDER BY id", &[])
        .await
        .expect("lists the first member")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let key_on_pg = on_pg_ids[0];
    let key_on_pg2 = (1..=100)
        .find(|id| !on_pg_ids.contains(id))
        .expect("a key on the second member");
    let lookup = client
        .prepare("SELECT v FROM koios.public.spread WHERE id = $1")
        .await
        .expect("prepares");
    for key in [key_on_pg, key_on_pg2] {
        let row = client.query_one(&lookup, &[&key]).await.expect("looks up");
        assert_eq!(row.get::<_, String>(0), format!("v{key}"));
    }
    // Lookups of keys on one member send nothing to the other: as the
    // prepared statement's later executions and as literals.
    let before = support::remote_statements_to(&server, "pg2");
    for _ in 0..5 {
        client
            .query_one(&lookup, &[&key_on_pg])
            .await
            .expect("looks up");
        client
            .query_one(
                &format!("SELECT v FROM koios.public.spread WHERE id = {key_on_pg}"),
                &[],
            )
            .await
            .expect("looks up");
    }
    assert_eq!(support::remote_statements_to(&server, "pg2"), before);
    client
        .query_one(&lookup, &[&key_on_pg2])
        .await
        .expect("looks up");
    assert_eq!(support::remote_statements_to(&server, "pg2"), before + 1);

    cluster.stop();
    // Once the health check has seen it (every second here), reads fail at
    // once with 08006 naming the member.
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        match client
            .query_one("SELECT count(*) FROM koios.public.spread", &[])
            .await
        {
            Ok(_) => panic!("a read with a member down answered"),
            Err(e) => {
                let db = e.as_db_error().expect("a server error");
                if db.message().contains("member pg2.public.spread") || Instant::now() > deadline {
                    break e;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "08006", "{}", db.message());
    assert!(
        db.message()
            .contains("member pg2.public.spread is unavailable"),
        "{}",
        db.message()
    );
    let started = Instant::now();
    let _ = client
        .query_one("SELECT count(*) FROM koios.public.spread", &[])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed at once: {:?}",
        started.elapsed()
    );

    // A lookup of a key on the live member needs only that member, as a
    // literal and as the prepared statement's next execution.
    let row = client
        .query_one(
            &format!("SELECT v FROM koios.public.spread WHERE id = {key_on_pg}"),
            &[],
        )
        .await
        .expect("a key on the live member is read from it alone");
    assert_eq!(row.get::<_, String>(0), format!("v{key_on_pg}"));
    let row = client
        .query_one(&lookup, &[&key_on_pg])
        .await
        .expect("the prepared lookup reads only the live member");
    assert_eq!(row.get::<_, String>(0), format!("v{key_on_pg}"));
    assert!(
        client.query_one(&lookup, &[&key_on_pg2]).await.is_err(),
        "a key on the stopped member cannot be read"
    );

    // Partial results: the live member answers, a WARNING names the other.
    client
        .batch_execute("SET koios.allow_partial_results = on")
        .await
        .expect("sets");
    let partial: i64 = client
        .query_one("SELECT count(*) FROM koios.public.spread", &[])
        .await
        .expect("the live member answers")
        .get(0);
    assert_eq!(partial, on_pg);
    let warning = tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("a notice arrives")
        .expect("the connection is open");
    assert!(warning.starts_with("WARNING: "), "{warning}");
    assert!(
        warning.contains("member pg2.public.spread is unavailable"),
        "{warning}"
    );
    client
        .batch_execute("SET koios.allow_partial_results = off")
        .await
        .expect("sets");

    // Back up: reads succeed again without any command.
    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = loop {
        match client
            .query_one("SELECT count(*) FROM koios.public.spread", &[])
            .await
        {
            Ok(row) => break row.get::<_, i64>(0),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the member did not come back: {e}"),
        }
    };
    assert_eq!(total, 100);
    client
        .batch_execute("DROP TABLE koios.public.spread CASCADE")
        .await
        .expect("drops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_configuration_file_is_created_and_kept() {
    let pg = support::PgTestDatabase::create();
    let my = support::MyTestDatabase::create();
    let metadata = support::ScratchMetadata::create();
    let text = format!(
        r#"
[server]
metadata = "{}"

[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{}"

[[source]]
name = "my"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{}"

[[table]]
name = "declared"
columns = ["id bigint", "v text", "PRIMARY KEY (id)"]
striped = "hash"
key = "id"
members = ["pg.public.declared", "my.{}.declared"]
"#,
        metadata.path.display(),
        pg.name,
        my.name,
        my.name
    );
    {
        let server = TestServer::start_toml(&text, &|_| None).await;
        let client = server.connect("koios").await;
        let row = client
            .query_one(
                "SELECT placement, key, members, origin FROM koios.system.logical_tables WHERE name = 'koios.public.declared'",
                &[],
            )
            .await
            .expect("the declared table is listed");
        assert_eq!(row.get::<_, String>(0), "hash");
        assert_eq!(row.get::<_, String>(1), "id");
        assert_eq!(row.get::<_, i64>(2), 2);
        assert_eq!(row.get::<_, String>(3), "file");
        let inserted = client
            .execute(
                "INSERT INTO koios.public.declared SELECT value, 'v' FROM generate_series(1, 50)",
                &[],
            )
            .await
            .expect("inserts");
        assert_eq!(inserted, 50);
        let message = support::query_error(&client, "DROP TABLE koios.public.declared").await;
        assert!(
            message.contains("declared in the configuration file"),
            "{message}"
        );
    }
    // Its members were created in their backends; after a restart the
    // rows are there and new ones land where the hash says.
    let on_my = support::mariadb_output(Some(&my.name), "SELECT count(*) FROM declared");
    let on_pg: i64 = support::postgres_client(&pg.name)
        .await
        .query_one("SELECT count(*) FROM public.declared", &[])
        .await
        .expect("counts")
        .get(0);
    assert_eq!(on_pg + on_my.trim().parse::<i64>().expect("a count"), 50);
    let server = TestServer::start_toml(&text, &|_| None).await;
    let client = server.connect("koios").await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM koios.public.declared", &[])
        .await
        .expect("reads after the restart")
        .get(0);
    assert_eq!(count, 50);
}

#[test]
fn a_malformed_table_entry_is_refused_with_its_line() {
    let text = r#"
[[table]]
name = "t"
columns = ["id bigint"]
striped = "diagonal"
members = ["pg.public.t"]
"#;
    let err = koios::config::Config::parse(text, std::path::Path::new("k.toml"), &|_| None)
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("k.toml:5: table.striped: 'diagonal'"),
        "{err}"
    );
    let text = r#"
[[table]]
name = "t"
columns = ["id bigint"]
striped = "hash"
members = ["pg.public.t"]
"#;
    let err = koios::config::Config::parse(text, std::path::Path::new("k.toml"), &|_| None)
        .expect_err("refused");
    assert!(
        err.to_string().contains("hash striping needs a key"),
        "{err}"
    );
}

/// Two servers on one PostgreSQL metadata store: a striped table created
/// on one is served by the other within a health interval (same rows,
/// same placement), and dropped on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_striped_table_is_shared_by_servers_on_one_store() {
    let data = support::PgTestDatabase::create();
    let store = support::PgTestDatabase::create();
    let text = format!(
        "[server]\nmetadata = \"postgres://postgres@127.0.0.1:5432/{}\"\nhealth_interval = \"1s\"\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        store.name, data.name
    );
    let a = TestServer::start_toml(&text, &|_| None).await;
    let b = TestServer::start_toml(&text, &|_| None).await;
    let on_a = a.connect("koios").await;
    let on_b = b.connect("koios").await;
    on_a.batch_execute(
        "CREATE SCHEMA pg.s2; \
         CREATE TABLE koios.public.shared (id bigint PRIMARY KEY) STRIPED BY HASH (id) ACROSS (pg.public.shared, pg.s2.shared); \
         INSERT INTO koios.public.shared SELECT value FROM generate_series(1, 40);",
    )
    .await
    .expect("creates on A");
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = loop {
        match on_b
            .query_one("SELECT count(*) FROM koios.public.shared", &[])
            .await
        {
            Ok(row) => break row.get::<_, i64>(0),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("B never saw the table: {e}"),
        }
    };
    assert_eq!(count, 40);
    // B places new keys where A would: its rows land on the same members.
    on_b.batch_execute("INSERT INTO koios.public.shared SELECT value FROM generate_series(41, 80)")
        .await
        .expect("inserts on B");
    on_a.batch_execute("DELETE FROM koios.public.shared WHERE id > 40; INSERT INTO koios.public.shared SELECT value FROM generate_series(41, 80)")
        .await
        .expect("A re-inserts the same keys");
    let direct = support::postgres_client(&data.name).await;
    let first: i64 = direct
        .query_one("SELECT count(*) FROM public.shared", &[])
        .await
        .expect("counts")
        .get(0);
    let second: i64 = direct
        .query_one("SELECT count(*) FROM s2.shared", &[])
        .await
        .expect("counts")
        .get(0);
    assert_eq!(first + second, 80);
    on_a.batch_execute("DROP TABLE koios.public.shared CASCADE")
        .await
        .expect("drops on A");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed: i64 = on_b
            .query_one("SELECT count(*) FROM koios.system.logical_tables", &[])
            .await
            .expect("lists")
            .get(0);
        if listed == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still serves the dropped table"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
