//! A hash-striped table over PostgreSQL and MariaDB gains a third member
//! while ten clients write to it: only the rows whose bucket changed owner
//! move (counted in each backend with its own client), and every write a
//! client was told succeeded is there afterwards — inserted rows present,
//! deleted ones gone, every acknowledged increment applied once. Then a
//! member is dropped while a client reads: no read sees a row twice or
//! misses one while the rows move. And Koios killed in the middle of
//! adding a member (the `koios` binary) finishes the job when it starts
//! again, every row on exactly one member.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::TestServer;
use support::jobs::{wait_for, wait_until_under_way};
use support::process::connect_until;

/// Rows the table starts with.
const ROWS: i64 = 30_000;
const WRITERS: i64 = 10;

/// What one writer was told succeeded.
#[derive(Default)]
struct Acknowledged {
    inserted: BTreeSet<i64>,
    deleted: BTreeSet<i64>,
    /// Increments of `n` per id.
    incremented: BTreeMap<i64, i64>,
    /// Statements refused because the members changed (run again).
    retried: u64,
}

/// Runs `sql` until it is not refused for a change of members (40001);
/// whether it succeeded, and any other error.
async fn run_until_admitted(
    client: &tokio_postgres::Client,
    sql: &str,
    retried: &mut u64,
) -> Result<u64, String> {
    loop {
        match client.execute(sql, &[]).await {
            Ok(rows) => return Ok(rows),
            Err(e) => {
                let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                if code == "40001" {
                    *retried += 1;
                    // As a client should: back off a little before trying
                    // again, rather than spinning on the refusal.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                return Err(format!("{sql}: {e:?}"));
            }
        }
    }
}

async fn writer(server_conn: String, writer: i64, stop: Arc<AtomicBool>) -> Acknowledged {
    let (client, connection) = tokio_postgres::connect(&server_conn, tokio_postgres::NoTls)
        .await
        .expect("a writer connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut acked = Acknowledged::default();
    let mut step: i64 = 0;
    while !stop.load(Ordering::Acquire) {
        step += 1;
        let id = 1_000_000 + writer * 100_000 + step;
        let sql = format!("INSERT INTO koios.public.events VALUES ({id}, 'w{writer}', 0)");
        match run_until_admitted(&client, &sql, &mut acked.retried).await {
            Ok(_) => {
                acked.inserted.insert(id);
            }
            Err(e) => panic!("writer {writer}: {e}"),
        }
        // An existing row of this writer's own, incremented.
        let existing = 1 + (writer + step * WRITERS) % ROWS;
        let sql = format!("UPDATE koios.public.events SET n = n + 1 WHERE id = {existing}");
        match run_until_admitted(&client, &sql, &mut acked.retried).await {
            Ok(1) => *acked.incremented.entry(existing).or_default() += 1,
            Ok(other) => panic!("writer {writer}: the update of {existing} changed {other} rows"),
            Err(e) => panic!("writer {writer}: {e}"),
        }
        if step % 3 == 0 {
            let gone = id - 1;
            let sql = format!("DELETE FROM koios.public.events WHERE id = {gone}");
            match run_until_admitted(&client, &sql, &mut acked.retried).await {
                Ok(_) => {
                    acked.inserted.remove(&gone);
                    acked.deleted.insert(gone);
                }
                Err(e) => panic!("writer {writer}: {e}"),
            }
        }
    }
    acked
}

/// The ids in a PostgreSQL member table.
async fn pg_ids(database: &str, table: &str) -> BTreeSet<i64> {
    let client = support::postgres_client(database).await;
    client
        .query(&format!("SELECT id FROM public.{table}"), &[])
        .await
        .expect("reads the member")
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect()
}

fn my_ids(database: &str, table: &str) -> BTreeSet<i64> {
    support::mariadb_output(Some(database), &format!("SELECT id FROM {table}"))
        .lines()
        .map(|l| l.trim().parse::<i64>().expect("an id"))
        .collect()
}

/// The tests run one at a time: ten writers, a rebalance job and a
/// 300 000-row load at once exhaust the local PostgreSQL's connection
/// slots on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_and_dropped_while_clients_write_and_read() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // A write to two members of one source holds a pooled connection for
    // each until it commits; with the default 8 connections, ten writers
    // can each hold one and all wait for a second (a known defect, to be
    // fixed in the write path: one connection per source per write). The
    // pool is made large enough for the ten writers here.
    let server = TestServer::start_test_with(|config| {
        let pg = config.sources.iter_mut().find(|s| s.name == "pg");
        pg.expect("the test configuration has a pg source")
            .options
            .insert("pool_size".into(), toml::Value::Integer(32));
    })
    .await;
    let pg = server.pg.as_ref().expect("pg database").name.clone();
    let my = server.my.as_ref().expect("my database").name.clone();
    let client = server.connect("koios").await;
    client
        .batch_execute(&format!(
            "CREATE TABLE koios.public.events (id bigint PRIMARY KEY, v text, n bigint) \
             STRIPED BY HASH (id) ACROSS (pg.public.ev_a, my.{my}.ev_b); \
             INSERT INTO koios.public.events SELECT v, 'start', 0 FROM generate_series(1, {ROWS}) AS t(v)"
        ))
        .await
        .expect("creates and fills the table");
    let before_a = pg_ids(&pg, "ev_a").await;
    let before_b = my_ids(&my, "ev_b");
    assert_eq!(before_a.len() + before_b.len(), ROWS as usize);

    // Ten clients write while the third member is added.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(server.conn_string("koios"), w, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .batch_execute(
            "ALTER TABLE koios.public.events ADD MEMBER pg.public.ev_c WITH (wait = true)",
        )
        .await
        .expect("the member is added and the rows moved");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let mut acked = Acknowledged::default();
    for handle in writers {
        let one = handle.await.expect("a writer ran to its end");
        acked.inserted.extend(one.inserted);
        acked.deleted.extend(one.deleted);
        for (id, times) in one.incremented {
            *acked.incremented.entry(id).or_default() += times;
        }
        acked.retried += one.retried;
    }
    assert!(
        acked.inserted.len() > 50,
        "the writers wrote during the move"
    );

    // Only rows whose placement changed moved: an original row is either
    // where it was or on the new member.
    let after_a = pg_ids(&pg, "ev_a").await;
    let after_b = my_ids(&my, "ev_b");
    let after_c = pg_ids(&pg, "ev_c").await;
    let original = |ids: &BTreeSet<i64>| -> BTreeSet<i64> {
        ids.iter().copied().filter(|&id| id <= ROWS).collect()
    };
    assert!(
        original(&after_a).is_subset(&before_a),
        "no original row arrived on ev_a"
    );
    assert!(
        original(&after_b).is_subset(&before_b),
        "no original row arrived on ev_b"
    );
    let moved = original(&after_c).len();
    let stayed = original(&after_a).len() + original(&after_b).len();
    assert_eq!(
        moved + stayed,
        ROWS as usize,
        "every original row is on exactly one member"
    );
    // The new member takes 1365 of 4096 buckets: about a third of the rows.
    let share = moved as f64 / ROWS as f64;
    assert!(
        (0.30..0.37).contains(&share),
        "moved {moved} of {ROWS} rows"
    );
    println!(
        "moved {moved} of {ROWS} rows ({:.1}%); {} writes retried after the switch",
        share * 100.0,
        acked.retried
    );
    // No member holds a row twice over: the members' rows add up to the
    // table's.
    let everywhere: Vec<i64> = after_a
        .iter()
        .chain(&after_b)
        .chain(&after_c)
        .copied()
        .collect();
    let distinct: BTreeSet<i64> = everywhere.iter().copied().collect();
    assert_eq!(everywhere.len(), distinct.len(), "a row is on two members");

    // Every acknowledged write is there.
    let rows = client
        .query("SELECT id, n FROM koios.public.events", &[])
        .await
        .expect("reads the table");
    let table: BTreeMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(table.len(), rows.len(), "no row read twice");
    assert_eq!(distinct.len(), table.len());
    for id in &acked.inserted {
        assert!(
            table.contains_key(id),
            "acknowledged insert {id} is missing"
        );
    }
    for id in &acked.deleted {
        assert!(
            !table.contains_key(id),
            "acknowledged delete {id} is undone"
        );
    }
    for (id, times) in &acked.incremented {
        assert_eq!(
            table.get(id),
            Some(times),
            "row {id} was incremented {times} times"
        );
    }
    assert_eq!(
        table.len(),
        ROWS as usize + acked.inserted.len(),
        "no row beyond the acknowledged ones"
    );

    // Now a member dropped while a client reads: every read sees each row
    // exactly once while its rows spread over the others.
    let expected = table.len() as i64;
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let reading = Arc::clone(&reading);
        let conn = server.conn_string("koios");
        tokio::spawn(async move {
            let (reader, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .expect("the reader connects");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut reads = 0;
            while reading.load(Ordering::Acquire) {
                let row = reader
                    .query_one(
                        "SELECT count(*), count(DISTINCT id) FROM koios.public.events",
                        &[],
                    )
                    .await
                    .expect("a read during the move");
                let (all, distinct): (i64, i64) = (row.get(0), row.get(1));
                assert_eq!(
                    (all, distinct),
                    (expected, expected),
                    "read {reads} during the move"
                );
                reads += 1;
            }
            reads
        })
    };
    client
        .batch_execute(&format!(
            "ALTER TABLE koios.public.events DROP MEMBER my.{my}.ev_b WITH (wait = true)"
        ))
        .await
        .expect("the member is dropped and its rows moved");
    reading.store(false, Ordering::Release);
    let reads = reader.await.expect("the reader saw every row once");
    assert!(reads > 0);
    let a = pg_ids(&pg, "ev_a").await;
    let c = pg_ids(&pg, "ev_c").await;
    assert_eq!(
        a.len() + c.len(),
        expected as usize,
        "ev_a and ev_c hold every row once"
    );
    assert!(a.is_disjoint(&c));
    // The dropped member's table stays in MariaDB with what it had.
    assert_eq!(my_ids(&my, "ev_b"), after_b);
    client
        .batch_execute("DROP TABLE koios.public.events")
        .await
        .expect("drops the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_goes_on_after_koios_is_killed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const BIG: i64 = 300_000;
    let pg = support::PgTestDatabase::create();
    let my = support::MyTestDatabase::create();
    my.execute(&format!(
        "CREATE TABLE rb_b (id bigint PRIMARY KEY, v bigint); \
         CREATE TABLE rb_seed (id bigint PRIMARY KEY, v bigint); \
         INSERT INTO rb_seed SELECT seq, seq * 7 % 1000 FROM seq_1_to_{BIG}"
    ))
    .expect("makes the rows");
    let (mut koios, dir) =
        support::process::with_pg_and_my("rebalance-restart", &pg.name, &my.name);
    koios.start();
    let until = || std::time::Instant::now() + Duration::from_secs(10);
    let client = connect_until(&koios.conn_string(), until())
        .await
        .expect("connects to Koios");
    client
        .batch_execute(&format!(
            "CREATE TABLE koios.public.big (id bigint PRIMARY KEY, v bigint) \
             STRIPED BY HASH (id) ACROSS (pg.public.rb_a, my.{my}.rb_b); \
             INSERT INTO koios.public.big SELECT id, v FROM my.{my}.rb_seed",
            my = my.name
        ))
        .await
        .expect("creates and fills the table");
    client
        .batch_execute("ALTER TABLE koios.public.big ADD MEMBER pg.public.rb_c")
        .await
        .expect("starts adding the member");
    let id: i64 = client
        .query_one(
            "SELECT max(id) FROM koios.system.jobs WHERE kind = 'add member'",
            &[],
        )
        .await
        .expect("the job")
        .get(0);
    let done = wait_until_under_way(&client, id).await;
    koios.kill();
    println!("Koios killed with {done} rows of the members read");
    let members = support::postgres_client(&pg.name).await;
    let partial: i64 = members
        .query_one("SELECT count(*) FROM public.rb_c", &[])
        .await
        .expect("counts the new member")
        .get(0);

    koios.start();
    let client = connect_until(&koios.conn_string(), until())
        .await
        .expect("connects to Koios again");
    wait_for(&client, id, "done", Duration::from_secs(180)).await;
    // Every row on exactly one member, as each backend counts them.
    let count = |table: &'static str| {
        let members = &members;
        async move {
            members
                .query_one(
                    &format!("SELECT count(*), coalesce(sum(v), 0)::bigint FROM public.{table}"),
                    &[],
                )
                .await
                .expect("sums a member")
        }
    };
    let (a, c) = (count("rb_a").await, count("rb_c").await);
    let b: Vec<i64> = support::mariadb_output(Some(&my.name), "SELECT count(*), sum(v) FROM rb_b")
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    let rows = a.get::<_, i64>(0) + b[0] + c.get::<_, i64>(0);
    let sum = a.get::<_, i64>(1) + b[1] + c.get::<_, i64>(1);
    let expected_sum: i64 = (1..=BIG).map(|i| i * 7 % 1000).sum();
    println!(
        "after the restart: {} + {} + {} rows ({partial} on the new member at the kill)",
        a.get::<_, i64>(0),
        b[0],
        c.get::<_, i64>(0)
    );
    assert_eq!(
        (rows, sum),
        (BIG, expected_sum),
        "every row on exactly one member"
    );
    let moved = c.get::<_, i64>(0) as f64 / BIG as f64;
    assert!(
        (0.30..0.37).contains(&moved),
        "the new member holds {moved:.3} of the rows"
    );
    let through: i64 = client
        .query_one("SELECT count(*) FROM koios.public.big", &[])
        .await
        .expect("counts through Koios")
        .get(0);
    assert_eq!(through, BIG);
    let log = koios.log_text();
    assert!(!log.contains("panicked"), "Koios panicked: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}
