//! Mirrored tables with a copy's server killed: queries started after the
//! kill are answered by another copy, correctly and within two health
//! intervals; a write while a copy is down is refused and applied nowhere
//! when every copy must apply it (the default `write_quorum`); once the
//! server is back, reads and writes work with no command issued. And the
//! write journal kept in a PostgreSQL metadata store.

mod support;

use std::time::{Duration, Instant};

use support::TestServer;
use support::private_pg::PrivatePostgres;

const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fail_over_to_a_live_copy_and_writes_wait_for_every_copy() {
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
    let (client, connection) =
        tokio_postgres::connect(&server.conn_string("koios"), tokio_postgres::NoTls)
            .await
            .expect("connects to Koios");
    tokio::spawn(connection);
    // The private server is listed first: with read = 'first' it answers
    // every read until it is killed.
    client
        .batch_execute(
            "CREATE TABLE koios.public.accounts (id bigint PRIMARY KEY, balance bigint) \
               MIRRORED ON (pg2.public.accounts, pg.public.accounts) WITH (read = 'first');
             INSERT INTO koios.public.accounts SELECT value, value * 10 FROM generate_series(1, 100);",
        )
        .await
        .expect("creates and fills the mirrored table");
    for database in [None, Some(port)] {
        let count: i64 = match database {
            None => support::postgres_client(&pg.name)
                .await
                .query_one("SELECT count(*) FROM public.accounts", &[])
                .await
                .expect("counts the shared copy")
                .get(0),
            Some(_) => cluster
                .connect()
                .await
                .query_one("SELECT count(*) FROM public.accounts", &[])
                .await
                .expect("counts the private copy")
                .get(0),
        };
        assert_eq!(count, 100, "every copy holds every row");
    }

    // Ten clients query without pause; the first copy's server is killed
    // while they run.
    let stop_at = Instant::now() + Duration::from_secs(8);
    let mut clients = Vec::new();
    for worker in 0..10i64 {
        let (client, connection) =
            tokio_postgres::connect(&server.conn_string("koios"), tokio_postgres::NoTls)
                .await
                .expect("connects to Koios");
        tokio::spawn(connection);
        clients.push(tokio::spawn(async move {
            let lookup = client
                .prepare("SELECT balance FROM koios.public.accounts WHERE id = $1")
                .await
                .expect("prepares");
            let mut answered = Vec::new();
            let mut n = 0i64;
            while Instant::now() < stop_at {
                n += 1;
                let id = (worker * 7 + n) % 100 + 1;
                let started = Instant::now();
                let outcome = if n % 2 == 0 {
                    client
                        .query_one(&lookup, &[&id])
                        .await
                        .map(|row| row.get::<_, i64>(0) == id * 10)
                } else {
                    client
                        .query_one("SELECT sum(balance) FROM koios.public.accounts", &[])
                        .await
                        .map(|row| row.get::<_, i64>(0) == 50_500)
                };
                answered.push((
                    started,
                    started.elapsed(),
                    outcome.map_err(|e| match e.as_db_error() {
                        Some(db) => format!("{}: {}", db.code().code(), db.message()),
                        None => e.to_string(),
                    }),
                ));
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    cluster.stop();
    let mut after_kill = 0;
    for worker in clients {
        for (started, took, outcome) in worker.await.expect("a client ran") {
            if started < killed_at {
                // Started before the kill: may fail, with an error.
                continue;
            }
            after_kill += 1;
            assert_eq!(outcome, Ok(true), "a query started after the kill");
            assert!(
                took <= 2 * HEALTH_INTERVAL,
                "a query started after the kill took {took:?}"
            );
        }
    }
    assert!(after_kill > 50, "{after_kill} queries after the kill");
    println!("{after_kill} queries started after the kill, all answered by the live copy");

    // A write with a copy down is refused, and applied on no copy.
    let error = client
        .execute("INSERT INTO koios.public.accounts VALUES (1000, 1)", &[])
        .await
        .expect_err("a write with a copy down");
    let message = error
        .as_db_error()
        .map(|db| db.message().to_string())
        .unwrap_or_else(|| error.to_string());
    assert!(message.contains("pg2.public.accounts"), "{message}");
    let on_live: i64 = support::postgres_client(&pg.name)
        .await
        .query_one("SELECT count(*) FROM public.accounts WHERE id = 1000", &[])
        .await
        .expect("reads the live copy")
        .get(0);
    assert_eq!(on_live, 0, "the refused write reached no copy");

    // Back up: writes reach both copies again, with no command issued.
    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client
            .execute("INSERT INTO koios.public.accounts VALUES (1000, 1)", &[])
            .await
        {
            Ok(rows) => {
                assert_eq!(rows, 1);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the copy did not come back: {e}"),
        }
    }
    let on_private: i64 = cluster
        .connect()
        .await
        .query_one("SELECT count(*) FROM public.accounts", &[])
        .await
        .expect("counts the private copy")
        .get(0);
    assert_eq!(on_private, 101);
    client
        .batch_execute("DROP TABLE koios.public.accounts CASCADE")
        .await
        .expect("drops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_table_of_the_configuration_file_is_created_and_kept() {
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
name = "copies"
columns = ["id bigint PRIMARY KEY", "v text"]
mirrored = true
read = "first"
members = ["pg.public.copies", "my.{}.copies"]
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
                "SELECT layout, placement, members, origin FROM koios.system.logical_tables WHERE name = 'koios.public.copies'",
                &[],
            )
            .await
            .expect("the declared table is listed");
        assert_eq!(row.get::<_, String>(0), "mirrored");
        assert_eq!(row.get::<_, String>(1), "mirrored");
        assert_eq!(row.get::<_, i64>(2), 2);
        assert_eq!(row.get::<_, String>(3), "file");
        let inserted = client
            .execute(
                "INSERT INTO koios.public.copies SELECT value, 'v' FROM generate_series(1, 20)",
                &[],
            )
            .await
            .expect("inserts");
        assert_eq!(inserted, 20);
    }
    // Both copies hold every row; after a restart the table reads them.
    let on_my = support::mariadb_output(Some(&my.name), "SELECT count(*) FROM copies");
    assert_eq!(on_my.trim(), "20");
    let on_pg: i64 = support::postgres_client(&pg.name)
        .await
        .query_one("SELECT count(*) FROM public.copies", &[])
        .await
        .expect("counts")
        .get(0);
    assert_eq!(on_pg, 20);
    let server = TestServer::start_toml(&text, &|_| None).await;
    let client = server.connect("koios").await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM koios.public.copies", &[])
        .await
        .expect("reads after the restart")
        .get(0);
    assert_eq!(count, 20);
}

#[test]
fn a_malformed_mirrored_entry_is_refused_with_its_line() {
    for (entry, expected) in [
        (
            "striped = \"hash\"\nkey = \"id\"\nmirrored = true",
            "k.toml:3: table: give either striped",
        ),
        (
            "mirrored = true\nkey = \"id\"",
            "k.toml:3: table.key: a mirrored table takes no key",
        ),
        (
            "striped = \"hash\"\nkey = \"id\"\nread = \"first\"",
            "k.toml:3: table: write_quorum and read are options of mirrored tables",
        ),
    ] {
        let text = format!(
            "\n[[table]]\nname = \"t\"\ncolumns = [\"id bigint PRIMARY KEY\"]\n{entry}\nmembers = [\"pg.public.t\"]\n"
        );
        let err = koios::config::Config::parse(&text, std::path::Path::new("k.toml"), &|_| None)
            .expect_err("refused");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

/// The write journal in a PostgreSQL metadata store: a copy that fails a
/// write (a CHECK constraint added behind Koios's back) is journalled and
/// stale, never read; a second Koios server on the same store sees the
/// copy stale at its start; once the copy can take the rows it catches up
/// and is current; dropping the table forgets its journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_lives_in_a_postgresql_metadata_store() {
    let data = support::PgTestDatabase::create();
    let other = support::PgTestDatabase::create();
    let store = support::PgTestDatabase::create();
    let text = format!(
        "[server]\nmetadata = \"postgres://postgres@127.0.0.1:5432/{}\"\nhealth_interval = \"1s\"\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n\n\
         [[source]]\nname = \"pg2\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        store.name, data.name, other.name
    );
    let server = TestServer::start_toml(&text, &|_| None).await;
    let client = server.connect("koios").await;
    client
        .batch_execute(
            "CREATE TABLE koios.public.acct (id bigint PRIMARY KEY, balance bigint) \
               MIRRORED ON (pg.public.acct, pg2.public.acct) WITH (write_quorum = 1, read = 'first'); \
             INSERT INTO koios.public.acct SELECT value AS id, value AS balance FROM generate_series(1, 20);",
        )
        .await
        .expect("creates and fills the mirrored table");
    data.execute("ALTER TABLE acct ADD CONSTRAINT positive CHECK (balance > 0)")
        .expect("adds the constraint");
    let inserted = client
        .execute(
            "INSERT INTO koios.public.acct VALUES (21, -1), (22, -2)",
            &[],
        )
        .await
        .expect("one copy is enough");
    assert_eq!(inserted, 2);
    let updated = client
        .execute(
            "UPDATE koios.public.acct SET balance = -5 WHERE id <= 3",
            &[],
        )
        .await
        .expect("one copy is enough");
    assert_eq!(updated, 3);
    let states = |client: tokio_postgres::Client| async move {
        let rows = client
            .query(
                "SELECT member, copy_state, journal_length FROM koios.system.members \
                 WHERE \"table\" = 'koios.public.acct' ORDER BY position",
                &[],
            )
            .await
            .expect("reads koios.system.members");
        let states: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2)
                )
            })
            .collect();
        (client, states)
    };
    let (client, now) = states(client).await;
    assert_eq!(now, ["pg.public.acct stale 2", "pg2.public.acct current 0"]);
    // The stale copy, though listed first with read = 'first', is not read.
    let sum: i64 = client
        .query_one("SELECT sum(balance) FROM koios.public.acct", &[])
        .await
        .expect("reads")
        .get(0);
    assert_eq!(sum, 210 - 6 - 3 - 15);
    // Another server on the same store sees the copy stale from its start.
    let second = TestServer::start_toml(&text, &|_| None).await;
    let (_, seen) = states(second.connect("koios").await).await;
    assert_eq!(seen[0], "pg.public.acct stale 2");
    drop(second);

    data.execute("ALTER TABLE acct DROP CONSTRAINT positive")
        .expect("drops the constraint");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = client;
    loop {
        let (back, now) = states(client).await;
        client = back;
        if now == ["pg.public.acct current 0", "pg2.public.acct current 0"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the copy did not catch up: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let on_copy: i64 = support::postgres_client(&data.name)
        .await
        .query_one("SELECT sum(balance)::bigint FROM public.acct", &[])
        .await
        .expect("reads the caught-up copy")
        .get(0);
    assert_eq!(on_copy, 210 - 6 - 3 - 15);
    client
        .batch_execute("DROP TABLE koios.public.acct CASCADE")
        .await
        .expect("drops");
    let left: i64 = support::postgres_client(&store.name)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM koios_mirror_journal) + (SELECT count(*) FROM koios_mirror_stale) \
                  + (SELECT count(*) FROM koios_mirror_writes)",
            &[],
        )
        .await
        .expect("reads the store")
        .get(0);
    assert_eq!(left, 0, "the dropped table's journal is forgotten");
}
