//! A striped table keeping each row on 2 of its 4 members, declared in the
//! configuration file (`[[table]]` with `copies`), with one copy of the
//! first group on a private PostgreSQL server that is stopped and started
//! again: a prepared lookup asks one copy of one group; with the server
//! down every read still answers at once from the other copy of its
//! group; writes succeed (write_quorum = 1) and are journalled for the
//! stopped copy, which catches up by itself once its server is back and
//! then holds what the other copy holds (checked with each backend's own
//! client). And a write stopped mid-way (its statement timed out) ends
//! applied on every copy or on none.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::TestServer;
use support::private_pg::PrivatePostgres;

/// Each copy's state and journal length, by member.
async fn copy_states(client: &tokio_postgres::Client) -> Vec<(String, String, i64)> {
    client
        .query(
            "SELECT member, copy_state, journal_length FROM koios.system.members \
             WHERE \"table\" = 'koios.public.orders' ORDER BY position",
            &[],
        )
        .await
        .expect("reads koios.system.members")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_keeps_serving_and_writing_while_one_copy_is_down() {
    let pg = support::PgTestDatabase::create();
    let my = support::MyTestDatabase::create();
    let cluster = PrivatePostgres::start();
    let text = format!(
        r#"
[server]
health_interval = "1s"

[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{pg}"

[[source]]
name = "pg2"
kind = "postgres"
url = "postgres://postgres:${{PG_TEST_PASSWORD}}@127.0.0.1:{port}/postgres"

[[source]]
name = "my"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{my}"

[[table]]
name = "orders"
columns = ["id bigint PRIMARY KEY", "v text"]
striped = "hash"
key = "id"
copies = 2
write_quorum = 1
read = "first"
members = ["pg2.public.orders0", "my.{my}.orders0", "pg.public.orders1", "my.{my}.orders1"]
"#,
        pg = pg.name,
        my = my.name,
        port = cluster.port(),
    );
    let env =
        |name: &str| (name == "PG_TEST_PASSWORD").then(|| PrivatePostgres::PASSWORD.to_string());
    let server = TestServer::start_toml(&text, &env).await;
    let client = server.connect("koios").await;
    let row = client
        .query_one(
            "SELECT placement, members, copies, write_quorum, origin FROM koios.system.logical_tables \
             WHERE name = 'koios.public.orders'",
            &[],
        )
        .await
        .expect("the declared table is listed");
    assert_eq!(row.get::<_, String>(0), "hash");
    assert_eq!(row.get::<_, i64>(1), 4);
    assert_eq!(row.get::<_, i64>(2), 2);
    assert_eq!(row.get::<_, Option<i64>>(3), Some(1));
    assert_eq!(row.get::<_, String>(4), "file");
    let inserted = client
        .execute(
            "INSERT INTO koios.public.orders SELECT value, 'v' || value FROM generate_series(1, 100)",
            &[],
        )
        .await
        .expect("inserts");
    assert_eq!(inserted, 100);

    // The groups' rows, as each backend holds them.
    let second_group: BTreeSet<i64> = support::postgres_client(&pg.name)
        .await
        .query("SELECT id FROM public.orders1", &[])
        .await
        .expect("reads the second group's PostgreSQL copy")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let first_group: BTreeSet<i64> = cluster
        .connect()
        .await
        .query("SELECT id FROM public.orders0", &[])
        .await
        .expect("reads the first group's PostgreSQL copy")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(first_group.len() + second_group.len(), 100);
    assert!(first_group.is_disjoint(&second_group));
    let my_counts = support::mariadb_output(
        Some(&my.name),
        "SELECT (SELECT count(*) FROM orders0), (SELECT count(*) FROM orders1)",
    );
    assert_eq!(
        my_counts.trim(),
        format!("{}\t{}", first_group.len(), second_group.len()),
        "MariaDB holds the second copy of each group"
    );
    // Keys the later DELETE (ids up to 10) keeps.
    let key_first = *first_group
        .iter()
        .find(|&&k| k > 10)
        .expect("a key in the first group");
    let key_second = *second_group
        .iter()
        .find(|&&k| k > 10)
        .expect("a key in the second group");

    // A prepared lookup asks one copy of one group: keys of the second
    // group never reach the first group's first copy (read = 'first').
    let lookup = client
        .prepare("SELECT v FROM koios.public.orders WHERE id = $1")
        .await
        .expect("prepares");
    for key in [key_first, key_second] {
        let row = client.query_one(&lookup, &[&key]).await.expect("looks up");
        assert_eq!(row.get::<_, String>(0), format!("v{key}"));
    }
    let before = support::remote_statements_to(&server, "pg2");
    for _ in 0..5 {
        client
            .query_one(&lookup, &[&key_second])
            .await
            .expect("looks up");
    }
    assert_eq!(support::remote_statements_to(&server, "pg2"), before);
    client
        .query_one(&lookup, &[&key_first])
        .await
        .expect("looks up");
    assert_eq!(support::remote_statements_to(&server, "pg2"), before + 1);

    // The first group's first copy stops: every read still answers, at
    // once, from the other copy.
    cluster.stop();
    let started = Instant::now();
    let count: i64 = client
        .query_one("SELECT count(*) FROM koios.public.orders", &[])
        .await
        .expect("the table answers with a copy down")
        .get(0);
    assert_eq!(count, 100);
    let row = client
        .query_one(&lookup, &[&key_first])
        .await
        .expect("a key of the group with a copy down is read from the other copy");
    assert_eq!(row.get::<_, String>(0), format!("v{key_first}"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "reads waited for the stopped copy: {:?}",
        started.elapsed()
    );

    // Writes succeed on the copies that are up and are journalled for the
    // stopped one.
    let written = client
        .execute(
            "INSERT INTO koios.public.orders SELECT value, 'w' || value FROM generate_series(101, 140)",
            &[],
        )
        .await
        .expect("inserts with a copy down");
    assert_eq!(written, 40);
    let updated = client
        .execute(
            "UPDATE koios.public.orders SET v = 'changed' WHERE id = $1",
            &[&key_first],
        )
        .await
        .expect("updates with a copy down");
    assert_eq!(updated, 1);
    let deleted = client
        .execute("DELETE FROM koios.public.orders WHERE id <= 10", &[])
        .await
        .expect("deletes with a copy down");
    assert_eq!(deleted, 10);
    let states = copy_states(&client).await;
    assert_eq!(states[0].1, "stale", "{states:?}");
    assert!(states[0].2 >= 1, "{states:?}");
    assert!(
        states[1..].iter().all(|(_, state, _)| state == "current"),
        "{states:?}"
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM koios.public.orders", &[])
        .await
        .expect("counts")
        .get(0);
    assert_eq!(count, 130);

    // Back: the stale copy catches up by itself from the other copy of its
    // group and holds the same rows.
    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states = copy_states(&client).await;
        if states
            .iter()
            .all(|(_, state, length)| state == "current" && *length == 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped copy did not catch up: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let on_pg2: Vec<String> = cluster
        .connect()
        .await
        .query(
            "SELECT id::text || ' ' || v FROM public.orders0 ORDER BY id",
            &[],
        )
        .await
        .expect("reads the caught-up copy")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let on_my: Vec<String> = support::mariadb_output(
        Some(&my.name),
        "SELECT concat(id, ' ', v) FROM orders0 ORDER BY id",
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert!(on_pg2.len() > 30, "{}", on_pg2.len());
    assert_eq!(
        on_pg2, on_my,
        "the caught-up copy differs from the other copy of its group"
    );
    assert!(on_pg2.contains(&format!("{key_first} changed")));
    println!(
        "first group: {} rows on each copy after catching up",
        on_pg2.len()
    );
}

/// A copy's `(count, checksum)` as PostgreSQL computes it.
async fn pg_summary(database: &str, table: &str) -> String {
    support::postgres_client(database)
        .await
        .query_one(
            &format!(
                "SELECT count(*)::text || ' ' || coalesce(sum(id * 7 + length(v)), 0)::text FROM {table}"
            ),
            &[],
        )
        .await
        .expect("sums a PostgreSQL copy")
        .get(0)
}

/// How many documents a MongoDB copy holds, by MongoDB's own client.
fn mongo_count(database: &str, collection: &str) -> String {
    let output = std::process::Command::new("python3")
        .arg(support::workspace_root().join("tests/clients/mongo_fixture.py"))
        .args([&support::mongodb_url(), database, "--count", collection])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The same as MariaDB computes it.
fn my_summary(database: &str, table: &str) -> String {
    support::mariadb_output(
        Some(database),
        &format!("SELECT concat(count(*), ' ', coalesce(sum(id * 7 + length(v)), 0)) FROM {table}"),
    )
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stopped_mid_way_ends_on_every_copy_or_none() {
    let server = TestServer::start_test().await;
    let pg = server
        .pg
        .as_ref()
        .expect("a PostgreSQL test database")
        .name
        .clone();
    let my = server
        .my
        .as_ref()
        .expect("a MariaDB test database")
        .name
        .clone();
    let mongo = server
        .mongo
        .as_ref()
        .expect("a MongoDB test database")
        .name
        .clone();
    let client = server.connect("koios").await;
    // MongoDB's insert_many keeps what it inserted before it was stopped:
    // only the journal brings its copy back to the other.
    client
        .batch_execute(&format!(
            "CREATE TABLE koios.public.bulk (id bigint PRIMARY KEY, v text) STRIPED BY HASH (id) \
               ACROSS (pg.public.bulk0, mongo.{mongo}.bulk0, my.{my}.bulk1, pg.public.bulk1) \
               WITH (copies = 2)"
        ))
        .await
        .expect("creates the table");
    // The insert is cut off by statement_timeout while the copies write.
    client
        .batch_execute("SET statement_timeout = '1s'")
        .await
        .expect("sets");
    let error = client
        .execute(
            "INSERT INTO koios.public.bulk SELECT value, repeat('x', 40) FROM generate_series(1, 3000000)",
            &[],
        )
        .await
        .expect_err("the insert runs longer than the timeout");
    let code = error.as_db_error().map(|e| e.code().code().to_string());
    assert_eq!(code.as_deref(), Some("57014"), "{error}");
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .expect("sets");

    // The copies other than the first each group's rows reached are put in
    // doubt (stale, journalled for the keys sent) ...
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen_stale = false;
    while Instant::now() < deadline && !seen_stale {
        let states = client
            .query(
                "SELECT copy_state FROM koios.system.members WHERE \"table\" = 'koios.public.bulk'",
                &[],
            )
            .await
            .expect("reads koios.system.members");
        seen_stale = states.iter().any(|r| r.get::<_, String>(0) == "stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_stale, "no copy was put in doubt by the stopped insert");
    // ... and brought back to it by themselves.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let states = client
            .query(
                "SELECT member, copy_state, journal_length FROM koios.system.members \
                 WHERE \"table\" = 'koios.public.bulk' ORDER BY position",
                &[],
            )
            .await
            .expect("reads koios.system.members");
        let states: Vec<(String, String, i64)> = states
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if states.iter().all(|(_, s, n)| s == "current" && *n == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the copies did not come back: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each group's copies hold the same rows: the insert is on both or on
    // neither, never half.
    let first = (
        pg_summary(&pg, "public.bulk0")
            .await
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string(),
        mongo_count(&mongo, "bulk0"),
    );
    let second = (
        my_summary(&my, "bulk1"),
        pg_summary(&pg, "public.bulk1").await,
    );
    println!("first group {first:?} (rows), second group {second:?} (rows, checksum)");
    assert_eq!(first.0, first.1, "the first group's copies differ");
    assert_eq!(second.0, second.1, "the second group's copies differ");
    let through_koios: i64 = client
        .query_one("SELECT count(*) FROM koios.public.bulk", &[])
        .await
        .expect("counts")
        .get(0);
    let rows = |summary: &str| -> i64 {
        summary
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count")
    };
    assert_eq!(through_koios, rows(&first.0) + rows(&second.0));
    client
        .batch_execute("DROP TABLE koios.public.bulk CASCADE")
        .await
        .expect("drops");
}
