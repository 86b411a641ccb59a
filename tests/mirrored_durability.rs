//! Durability of tables with copies under faults — a mirrored table, and a
//! striped table keeping each row on 2 of its 4 members: 20 clients insert
//! and update for 30 s through a Koios server (the `koios` binary, so it
//! can be killed) while a copy's server is killed and restarted twice (a
//! private MariaDB, then a private PostgreSQL) and Koios itself is killed
//! once and restarted, at random moments. Afterwards, once the copies have
//! caught up: the copies of each row hold exactly the same rows (count and
//! checksum computed by each backend, and row by row), every acknowledged
//! write is there, and every row's value is either its last acknowledged
//! one or that of a later write whose answer never came (an
//! unacknowledged write is applied on every copy or on none). The two
//! tests run one after the other (each starts its own servers).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::private_my::PrivateMariaDb;
use support::private_pg::PrivatePostgres;
use support::process::KoiosProcess;

const CLIENTS: i64 = 20;
const RUN: Duration = Duration::from_secs(30);

/// What one client knows of one of its rows.
#[derive(Debug, Default, Clone)]
struct Known {
    /// The last acknowledged version (0 for the acknowledged insert).
    acked: Option<i64>,
    /// Versions written after it whose answer never came (or came as an
    /// error): each may or may not have been applied.
    unanswered: Vec<i64>,
    /// The insert itself was never answered.
    insert_unanswered: bool,
}

#[derive(Debug, Default)]
struct Tally {
    acked_inserts: u64,
    acked_updates: u64,
    unanswered: u64,
    /// Why writes were not acknowledged (the start of each message).
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn failed(&mut self, error: &tokio_postgres::Error) {
        self.unanswered += 1;
        let message = match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => error.to_string(),
        };
        let short: String = message.chars().take(90).collect();
        *self.errors.entry(short).or_default() += 1;
    }
}

/// A small deterministic generator (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn between(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(low_ms + self.next() % (high_ms - low_ms + 1))
    }
}

use support::process::connect_until as connect;

/// One client: inserts its own rows and updates them (absolute values, so
/// an unanswered write has one possible effect), until `until`.
async fn client(koios: String, id: i64, until: Instant) -> (BTreeMap<i64, Known>, Tally) {
    let mut rows: BTreeMap<i64, Known> = BTreeMap::new();
    let mut tally = Tally::default();
    let mut client = None;
    let mut n: i64 = 0;
    let mut version: i64 = 0;
    while Instant::now() < until {
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            client = connect(&koios, until).await;
        }
        let Some(session) = client.as_ref() else {
            break;
        };
        n += 1;
        let acked: Vec<i64> = rows
            .iter()
            .filter(|(_, k)| k.acked.is_some())
            .map(|(row, _)| *row)
            .collect();
        if n % 2 == 0 && !acked.is_empty() {
            let row = acked[(n as usize * 7) % acked.len()];
            version += 1;
            let outcome = session
                .execute(
                    "UPDATE koios.public.ledger SET version = $1 WHERE id = $2",
                    &[&version, &row],
                )
                .await;
            let known = rows.entry(row).or_default();
            match outcome {
                Ok(1) => {
                    known.acked = Some(version);
                    known.unanswered.clear();
                    tally.acked_updates += 1;
                }
                Ok(other) => panic!("an update of row {row} changed {other} rows"),
                Err(e) => {
                    known.unanswered.push(version);
                    tally.failed(&e);
                }
            }
        } else {
            let row = id * 1_000_000 + n;
            let outcome = session
                .execute(
                    "INSERT INTO koios.public.ledger VALUES ($1, $2, 0)",
                    &[&row, &id],
                )
                .await;
            let known = rows.entry(row).or_default();
            match outcome {
                Ok(1) => {
                    known.acked = Some(0);
                    tally.acked_inserts += 1;
                }
                Ok(other) => panic!("an insert of row {row} reported {other} rows"),
                Err(e) => {
                    known.insert_unanswered = true;
                    tally.failed(&e);
                }
            }
        }
    }
    (rows, tally)
}

/// One test at a time: each runs two private servers and 20 clients.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_copies_and_koios_being_killed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    survives_faults(
        "CREATE TABLE koios.public.ledger (id bigint PRIMARY KEY, client bigint, version bigint) \
           MIRRORED ON (pgc.public.ledger, myc.bank.ledger) WITH (write_quorum = 1)",
        &[("public.ledger", "bank.ledger")],
    )
    .await;
}

/// The same with a striped table of two groups, each with one copy on
/// each server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_on_striped_copies() {
    let _alone = ONE_AT_A_TIME.lock().await;
    survives_faults(
        "CREATE TABLE koios.public.ledger (id bigint PRIMARY KEY, client bigint, version bigint) \
           STRIPED BY HASH (id) \
           ACROSS (pgc.public.ledger0, myc.bank.ledger0, myc.bank.ledger1, pgc.public.ledger1) \
           WITH (copies = 2, write_quorum = 1)",
        &[
            ("public.ledger0", "bank.ledger0"),
            ("public.ledger1", "bank.ledger1"),
        ],
    )
    .await;
}

/// Runs the clients and the faults against `koios.public.ledger` made by
/// `create`, whose copies are the pairs of `copies` (PostgreSQL table,
/// MariaDB table), each pair holding the same rows and the pairs
/// together every row once.
async fn survives_faults(create: &str, copies: &[(&str, &str)]) {
    let pg = PrivatePostgres::start();
    let my = PrivateMariaDb::start("bank");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mirror-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let port = support::free_port();
    let config = dir.join("koios.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = ""
data_dir = "{data}"
health_interval = "1s"

[[source]]
name = "pgc"
kind = "postgres"
url = "postgres://postgres:${{PG_COPY_PASSWORD}}@127.0.0.1:{pg_port}/postgres"

[[source]]
name = "myc"
kind = "mysql"
url = "mysql://root@127.0.0.1:{my_port}/bank"
"#,
            data = dir.join("data").display(),
            pg_port = pg.port(),
            my_port = my.port(),
        ),
    )
    .expect("writes the configuration");
    let mut koios = KoiosProcess::new(
        config,
        dir.join("koios.log"),
        port,
        vec![(
            "PG_COPY_PASSWORD".to_string(),
            PrivatePostgres::PASSWORD.to_string(),
        )],
    );
    koios.start();
    let admin = connect(
        &koios.conn_string(),
        Instant::now() + Duration::from_secs(10),
    )
    .await
    .expect("connects to Koios");
    admin
        .batch_execute(create)
        .await
        .expect("creates the table with copies");
    drop(admin);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut random = Lcg(seed);
    let started = Instant::now();
    let until = started + RUN;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(koios.conn_string(), id, until)))
        .collect();

    // The faults, at random moments.
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let note = |events: &Arc<Mutex<Vec<String>>>, what: &str| {
        let line = format!("{:>5.1}s {what}", started.elapsed().as_secs_f64());
        println!("{line}");
        events.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    };
    println!("seed {seed}");
    tokio::time::sleep(random.between(3_000, 6_000)).await;
    note(&events, "MariaDB copy killed");
    my.kill();
    tokio::time::sleep(random.between(2_000, 4_000)).await;
    my.start_server();
    note(&events, "MariaDB copy restarted");
    tokio::time::sleep(random.between(500, 3_000)).await;
    note(&events, "Koios killed");
    koios.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    koios.start();
    note(&events, "Koios restarted");
    tokio::time::sleep(random.between(3_000, 6_000)).await;
    note(&events, "PostgreSQL copy killed");
    pg.kill();
    tokio::time::sleep(random.between(2_000, 4_000)).await;
    pg.start_server();
    note(&events, "PostgreSQL copy restarted");

    let mut known: HashMap<i64, Known> = HashMap::new();
    let mut tally = Tally::default();
    for worker in workers {
        let (rows, counts) = worker.await.expect("a client ran");
        known.extend(rows);
        tally.acked_inserts += counts.acked_inserts;
        tally.acked_updates += counts.acked_updates;
        tally.unanswered += counts.unanswered;
        for (error, n) in counts.errors {
            *tally.errors.entry(error).or_default() += n;
        }
    }
    println!(
        "acknowledged: {} inserts, {} updates; unanswered or refused: {}",
        tally.acked_inserts, tally.acked_updates, tally.unanswered
    );
    for (error, n) in &tally.errors {
        println!("  {n:>5} × {error}");
    }
    assert!(
        tally.acked_inserts > 100 && tally.acked_updates > 100,
        "too few writes to prove anything: {tally:?}"
    );

    // Both copies current again, their journals replayed.
    let admin = connect(
        &koios.conn_string(),
        Instant::now() + Duration::from_secs(10),
    )
    .await
    .expect("connects to Koios");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = admin
            .query(
                "SELECT member, copy_state, journal_length FROM koios.system.members \
                 WHERE \"table\" = 'koios.public.ledger' ORDER BY position",
                &[],
            )
            .await
            .expect("reads koios.system.members");
        let states: Vec<(String, String, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if states
            .iter()
            .all(|(_, state, length)| state == "current" && *length == 0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the copies did not catch up: {states:?}\n{}",
            std::fs::read_to_string(&koios.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each copy as its own backend sees it: count and checksum; then row
    // by row. The pairs hold different rows.
    let pg_client = pg.connect().await;
    let mut pg_rows: BTreeMap<i64, i64> = BTreeMap::new();
    for (pg_table, my_table) in copies {
        let pg_summary = pg_client
            .query_one(
                &format!(
                    "SELECT count(*)::text || ' ' || coalesce(sum(id % 1000003 * 31 + version), 0)::text \
                     FROM {pg_table}"
                ),
                &[],
            )
            .await
            .expect("sums the PostgreSQL copy")
            .get::<_, String>(0);
        let my_summary = my.sql(&format!(
            "SELECT concat(count(*), ' ', coalesce(sum(id % 1000003 * 31 + version), 0)) FROM {my_table}"
        ));
        println!(
            "PostgreSQL copy {pg_table}: {pg_summary} (rows, checksum); MariaDB copy {my_table}: {my_summary}"
        );
        assert_eq!(
            pg_summary, my_summary,
            "the copies differ in count or checksum"
        );
        let pg_pair: BTreeMap<i64, i64> = pg_client
            .query(&format!("SELECT id, version FROM {pg_table}"), &[])
            .await
            .expect("reads the PostgreSQL copy")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let my_pair: BTreeMap<i64, i64> = my
            .sql(&format!("SELECT id, version FROM {my_table}"))
            .lines()
            .map(|line| {
                let mut parts = line.split('\t');
                let id = parts.next().and_then(|v| v.parse().ok()).expect("an id");
                let version = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("a version");
                (id, version)
            })
            .collect();
        assert_eq!(pg_pair.len(), my_pair.len(), "row counts of the copies");
        assert!(
            pg_pair == my_pair,
            "the copies hold different rows (an unacknowledged write half-applied?)"
        );
        if copies.len() > 1 {
            assert!(
                pg_pair.len() > 10,
                "a group of copies holds {} rows: rows are not spread",
                pg_pair.len()
            );
        }
        for (row, version) in pg_pair {
            assert!(
                pg_rows.insert(row, version).is_none(),
                "row {row} is in two groups of copies"
            );
        }
    }

    // Every acknowledged write is there; nothing else than the writes made.
    let mut unanswered_applied = 0;
    for (row, what) in &known {
        match (pg_rows.get(row), what.acked) {
            (Some(&version), Some(acked)) => {
                assert!(
                    version == acked || what.unanswered.contains(&version),
                    "row {row} holds version {version}, acknowledged {acked}, unanswered {:?}",
                    what.unanswered
                );
                if version != acked {
                    unanswered_applied += 1;
                }
            }
            (None, Some(_)) => panic!("the acknowledged insert of row {row} is missing"),
            (Some(&version), None) => {
                assert!(what.insert_unanswered, "row {row} was never written");
                assert!(version == 0 || what.unanswered.contains(&version));
                unanswered_applied += 1;
            }
            (None, None) => {}
        }
    }
    for row in pg_rows.keys() {
        assert!(known.contains_key(row), "row {row} appeared from nowhere");
    }
    println!(
        "{} rows on each copy, equal row by row; every acknowledged write present; {unanswered_applied} unanswered writes applied on both copies, the rest on neither",
        pg_rows.len()
    );

    // Koios answers the same.
    let through_koios = admin
        .query_one("SELECT count(*) FROM koios.public.ledger", &[])
        .await
        .expect("counts through Koios")
        .get::<_, i64>(0);
    assert_eq!(through_koios as usize, pg_rows.len());
    drop(admin);
    koios.kill();
    // What Koios said about the copies (its warnings, shortened).
    let log = std::fs::read_to_string(&koios.log).unwrap_or_default();
    for line in log.lines().filter(|l| l.contains("koios::engine")).take(40) {
        println!("  koios: {}", line.chars().take(240).collect::<String>());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
