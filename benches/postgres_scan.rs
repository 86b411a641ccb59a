//! PostgreSQL scan benchmark (issue: PostgreSQL connector).
//!
//! Loads TPC-H `lineitem` at scale factor 1 (6 001 215 rows) into the local
//! PostgreSQL database `koios_bench` once, then measures in one run:
//!
//! * (a) `COPY (SELECT * FROM lineitem) TO STDOUT (FORMAT binary)` through
//!   psql into /dev/null — the practical limit for reading PostgreSQL;
//! * (b) Koios scanning the same table into Arrow record batches, with 1 and
//!   2 partitions;
//! * (c) a selective query (`l_orderkey` range, ~40 rows, served by an
//!   index) through Koios over the wire vs the same SQL sent to PostgreSQL
//!   directly — Koios's fixed per-query cost: repeated (Koios runs the plan
//!   it cached for the text), with another range each run (planned each
//!   time), and as one prepared statement with parameters (bound into its
//!   generic plan); each also through PgBouncer when it is installed, the
//!   cost of one more hop with nothing else done;
//! * (d) a selective filter no index serves, the same way — where pushing
//!   the filter down is what matters.
//!
//! Run: `cargo bench --bench postgres_scan` (PostgreSQL on 127.0.0.1:5432).
//! `KOIOS_BENCH_SF` changes the scale factor; results go to benches/README.md.

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PgBouncer, best, koios_scan, pg_connect};

use futures::SinkExt;
use koios::config::Config;
use koios::engine::Engine;
use koios::server::Server;
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;

const DATABASE: &str = "koios_bench";
const RUNS: usize = 3;
/// Runs of each index lookup (c).
const LOOKUPS: usize = 1000;

async fn load(scale_factor: f64) -> u64 {
    let admin = pg_connect("postgres").await;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .expect("pg_database")
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .expect("create database");
    }
    let db = pg_connect(DATABASE).await;
    let expected = tpchgen::generators::LineItemGenerator::new(scale_factor, 1, 1)
        .iter()
        .count() as i64;
    let loaded: i64 = db
        .query_opt("SELECT count(*) FROM lineitem", &[])
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
        .unwrap_or(-1);
    if loaded == expected {
        prepare(&db).await;
        return expected as u64;
    }
    eprintln!("loading lineitem (SF {scale_factor}, {expected} rows) into {DATABASE} ...");
    db.batch_execute(
        "DROP TABLE IF EXISTS lineitem;
         CREATE TABLE lineitem (
           l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
           l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL,
           l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
           l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
           l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
           l_shipinstruct varchar(25) NOT NULL, l_shipmode varchar(10) NOT NULL,
           l_comment varchar(44) NOT NULL)",
    )
    .await
    .expect("create table");
    let sink = db
        .copy_in("COPY lineitem FROM STDIN (FORMAT text, DELIMITER '|')")
        .await
        .expect("copy in");
    futures::pin_mut!(sink);
    let mut buf = Vec::with_capacity(1 << 22);
    for row in tpchgen::generators::LineItemGenerator::new(scale_factor, 1, 1).iter() {
        let line = row.to_string();
        buf.extend_from_slice(line.trim_end_matches('|').as_bytes());
        buf.push(b'\n');
        if buf.len() > 1 << 22 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
                .await
                .expect("send");
        }
    }
    sink.send(bytes::Bytes::from(buf)).await.expect("send");
    let n = sink.finish().await.expect("finish");
    prepare(&db).await;
    n
}

/// TPC-H's primary key of lineitem, whose index the selective query uses
/// (and by which Koios knows it for an index lookup), and fresh statistics.
async fn prepare(db: &tokio_postgres::Client) {
    db.batch_execute(
        "DROP INDEX IF EXISTS lineitem_orderkey;
         DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = 'lineitem'::regclass AND indisprimary) THEN
             ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);
           END IF;
         END $$",
    )
    .await
    .expect("primary key");
    db.batch_execute("VACUUM ANALYZE lineitem")
        .await
        .expect("vacuum");
}

fn psql_copy() -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            DATABASE,
            "-X",
            "-q",
            "-c",
        ])
        .arg("COPY (SELECT * FROM lineitem) TO STDOUT (FORMAT binary)")
        // Plain TCP, as every client in this benchmark.
        .env("PGSSLMODE", "disable")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("psql runs");
    assert!(status.success());
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let scale_factor: f64 = std::env::var("KOIOS_BENCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let rows = load(scale_factor).await;
    let config = format!(
        r#"
[[source]]
name = "pg1"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{DATABASE}"
split_count = 1
# The direct client and PgBouncer talk plain TCP: so does Koios.
tls = "disable"

[[source]]
name = "pg2"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{DATABASE}"
split_count = 2
tls = "disable"
"#
    );
    let config =
        Config::parse(&config, std::path::Path::new("bench.toml"), &|_| None).expect("config");
    let engine = Engine::start(&config).await.expect("engine");

    let copy = best((0..RUNS).map(|_| psql_copy()).collect());
    let mut one = Vec::new();
    let mut two = Vec::new();
    for _ in 0..RUNS {
        let (t, n) = koios_scan(&engine, "pg1.public.lineitem").await;
        assert_eq!(n as u64, rows);
        one.push(t);
        let (t, n) = koios_scan(&engine, "pg2.public.lineitem").await;
        assert_eq!(n as u64, rows);
        two.push(t);
    }
    let (one, two) = (best(one), best(two));

    // Selective query: Koios over the wire vs PostgreSQL directly, and vs
    // PgBouncer — a middle tier that only forwards the protocol, so the
    // least one more hop costs.
    let server = Server::bind(Arc::clone(&engine), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(server.run());
    let (koios, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=koios dbname=pg1", addr.port()),
        NoTls,
    )
    .await
    .expect("koios");
    tokio::spawn(connection);
    let direct = pg_connect(DATABASE).await;
    let bouncer = PgBouncer::start(DATABASE);
    let bounced = match &bouncer {
        Ok(bouncer) => Some(bouncer.connect(DATABASE).await),
        Err(why) => {
            eprintln!("no PgBouncer row: {why}");
            None
        }
    };
    let mut clients = vec![("direct", &direct), ("Koios", &koios)];
    if let Some(bounced) = &bounced {
        clients.push(("PgBouncer", bounced));
    }
    let selective = "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode FROM public.lineitem \
                     WHERE l_orderkey BETWEEN 3000000 AND 3000040";
    let repeated = compare(&clients, |_, _| selective.into(), LOOKUPS).await;
    let ranged = |run: usize, _: &str| {
        let low = 3_000_000 + 1000 * (run + 1);
        format!(
            "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode FROM public.lineitem \
             WHERE l_orderkey BETWEEN {low} AND {}",
            low + 40
        )
    };
    let new_range = compare(&clients, ranged, LOOKUPS).await;
    let prepared = compare_prepared(&clients, LOOKUPS).await;
    // (d) A selective filter no index serves: PostgreSQL scans the table
    // (in parallel, directly); Koios pushes the filter into both partitions.
    let unindexed = "SELECT l_orderkey, l_linenumber, l_extendedprice FROM public.lineitem \
                     WHERE l_shipdate = DATE '1995-03-15' AND l_quantity = 1 AND l_shipmode = 'AIR'";
    let scan = compare(
        &clients[..2],
        |_, client| match client {
            "Koios" => unindexed.replace("public.lineitem", "pg2.public.lineitem"),
            _ => unindexed.into(),
        },
        RUNS,
    )
    .await;

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "lineitem SF {scale_factor}: {rows} rows, best of {RUNS} runs"
    );
    let _ = writeln!(out, "| measurement | time | rows/s | ratio |");
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| (a) psql COPY binary to /dev/null | {:.2} s | {:.0} | 1.00 (baseline) |",
        copy.as_secs_f64(),
        rate(copy)
    );
    for (name, t) in [
        ("(b) Koios scan into Arrow, 1 partition", one),
        ("(b) Koios scan into Arrow, 2 partitions", two),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.2} s | {:.0} | {:.2}× the COPY rate |",
            t.as_secs_f64(),
            rate(t),
            rate(t) / rate(copy)
        );
    }
    for (what, timings) in [
        (
            "(c) index lookup, the same query each run (Koios runs the plan it cached)",
            &repeated,
        ),
        (
            "(c) index lookup, another range each run (Koios plans each text)",
            &new_range,
        ),
        (
            "(c) index lookup, one prepared statement, another range each run (Koios binds the values into its generic plan)",
            &prepared,
        ),
        (
            "(d) selective filter no index serves (Koios: pushed into 2 partitions)",
            &scan,
        ),
    ] {
        let base = timings[0].1;
        for (client, timing) in timings {
            let _ = writeln!(
                out,
                "| {what}: {client} | {:.3} ms (median {:.3} ms) | | {:.2}× direct (median {:.2}×) |",
                timing.best.as_secs_f64() * 1e3,
                timing.median.as_secs_f64() * 1e3,
                timing.best.as_secs_f64() / base.best.as_secs_f64(),
                timing.median.as_secs_f64() / base.median.as_secs_f64(),
            );
        }
    }
}

/// The best and the median of one client's runs.
#[derive(Clone, Copy)]
struct Timing {
    best: Duration,
    median: Duration,
}

fn timing(mut times: Vec<Duration>) -> Timing {
    times.sort();
    Timing {
        best: times.first().copied().unwrap_or_default(),
        median: times.get(times.len() / 2).copied().unwrap_or_default(),
    }
}

/// Runs `sql(run, client)` on each client in turn, `runs` times (after a
/// few unmeasured runs), checking that all return the same number of rows.
async fn compare(
    clients: &[(&'static str, &tokio_postgres::Client)],
    sql: impl Fn(usize, &str) -> String,
    runs: usize,
) -> Vec<(&'static str, Timing)> {
    rounds(clients, runs, async |run, (name, client)| {
        client
            .simple_query(&sql(run, name))
            .await
            .expect("runs")
            .len()
    })
    .await
}

/// Times `query(run, client)` (which returns a row count) on each client in
/// turn, `runs` times after 3 unmeasured runs, checking that all clients
/// return the same number of rows. Each run first sends its query once
/// unmeasured, so every client reads pages the server has cached (else the
/// first client of a run with new values pays for reading them), and the
/// clients take turns at going first.
async fn rounds<'a>(
    clients: &[(&'static str, &'a tokio_postgres::Client)],
    runs: usize,
    mut query: impl AsyncFnMut(usize, (&'static str, &'a tokio_postgres::Client)) -> usize,
) -> Vec<(&'static str, Timing)> {
    let mut times = vec![Vec::new(); clients.len()];
    for run in 0..runs + 3 {
        let mut rows = None;
        if let Some(&first) = clients.first() {
            query(run, first).await;
        }
        for turn in 0..clients.len() {
            let i = (run + turn) % clients.len();
            let (name, client) = clients[i];
            let started = Instant::now();
            let n = query(run, (name, client)).await;
            if run >= 3 {
                times[i].push(started.elapsed());
            }
            assert_eq!(
                *rows.get_or_insert(n),
                n,
                "{name} returned another row count"
            );
        }
    }
    clients
        .iter()
        .zip(times)
        .map(|((name, _), times)| (*name, timing(times)))
        .collect()
}

/// The lookup as one prepared statement per client, executed with another
/// range each run (extended protocol, binary parameters) — how drivers run
/// an application's queries.
async fn compare_prepared(
    clients: &[(&'static str, &tokio_postgres::Client)],
    runs: usize,
) -> Vec<(&'static str, Timing)> {
    let sql = "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode FROM public.lineitem \
               WHERE l_orderkey BETWEEN $1 AND $2";
    let mut statements = Vec::new();
    for (_, client) in clients {
        statements.push(
            client
                .prepare_typed(sql, &[Type::INT8, Type::INT8])
                .await
                .expect("prepares"),
        );
    }
    rounds(clients, runs, async |run, (name, client)| {
        let low = 2_000_000 + 1000 * run as i64;
        let high = low + 40;
        let index = clients.iter().position(|(n, _)| *n == name).unwrap_or(0);
        client
            .query(&statements[index], &[&low, &high])
            .await
            .expect("runs")
            .len()
    })
    .await
}
