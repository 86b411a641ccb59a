//! `CREATE TABLE … AS` across sources (issue: writes through Koios).
//!
//! TPC-H `lineitem` (`KOIOS_BENCH_SF`, default 1: 6 M rows) is copied three
//! times through a `koios serve` of this build, each one `CREATE TABLE … AS
//! SELECT * FROM …`:
//!
//! * (a) from the demo's Parquet files into PostgreSQL (binary `COPY`);
//! * (b) from PostgreSQL into MariaDB (`LOAD DATA LOCAL INFILE` fed from
//!   the stream);
//! * (c) from MariaDB back into PostgreSQL.
//!
//! For each: rows per second, and the server's peak resident memory during
//! the copy (`VmHWM` of the `koios serve` process, reset before each copy
//! through `/proc/PID/clear_refs`) — the issue asks for less than 1 GiB,
//! memory bounded by the batch size rather than the table. The copies are
//! checked: the same row count and the same sums in all three tables.
//!
//! Peers in the same run: the servers' own tools moving the same rows
//! through a file — `psql \copy … TO` then `mariadb LOAD DATA LOCAL INFILE`
//! from that file (PostgreSQL → MariaDB), and `mariadb --batch` then `psql
//! \copy … FROM` (MariaDB → PostgreSQL).
//!
//! Run: `cargo bench --bench ctas` (PostgreSQL and MariaDB running,
//! `scripts/services.sh`). Uses the databases `koios_bench_ctas` on both,
//! dropped and made again each run.

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::serve::{Server, drop_databases, fresh_databases, mariadb, psql};
use common::{pg_connect, pg_connect_at};

const DATABASE: &str = "koios_bench_ctas";

/// One copy: its time, rows and the server's peak memory.
struct Copy {
    what: &'static str,
    seconds: f64,
    rows: u64,
    peak_mib: f64,
}

async fn ctas(
    koios: &tokio_postgres::Client,
    server: &Server,
    what: &'static str,
    sql: &str,
) -> Copy {
    server.reset_peak();
    let started = Instant::now();
    let rows = koios
        .execute(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    Copy {
        what,
        seconds: started.elapsed().as_secs_f64(),
        rows,
        peak_mib: server.peak_mib(),
    }
}

/// Row count and sums of a copy, read through Koios.
async fn checksum(koios: &tokio_postgres::Client, table: &str) -> String {
    let row = koios
        .query_one(
            &format!(
                "SELECT count(*), CAST(sum(l_extendedprice) AS text), CAST(sum(l_quantity) AS text), \
                 CAST(sum(l_orderkey) AS text), CAST(max(l_comment) AS text) FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
    let count: i64 = row.get(0);
    let parts: Vec<String> = (1..5).map(|i| row.get::<_, String>(i)).collect();
    format!("{count} {}", parts.join(" "))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs benches as tests: nothing to do
    }
    let sf: f64 = std::env::var("KOIOS_BENCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let dir: PathBuf = std::env::temp_dir().join(format!("koios-bench-ctas-sf{sf}"));
    std::fs::create_dir_all(&dir).expect("the bench directory");
    fresh_databases(&[DATABASE], &[DATABASE]);
    let config = format!(
        "[server]\nadmin_listen = \"\"\n\n\
         [[source]]\nname = \"demo\"\nkind = \"demo\"\nurl = \"{}\"\nscale_factor = {sf:?}\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{DATABASE}\"\n\n\
         [[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{DATABASE}\"\n",
        dir.join("demo").display()
    );
    eprintln!("starting koios serve (the demo data at SF {sf} is generated once) ...");
    // A first server generates the demo's files, if not there yet; the one
    // measured starts on them, so generating leaves nothing in its memory.
    drop(Server::start(&config, &dir));
    let server = Server::start(&config, &dir);
    let koios = pg_connect_at(server.port, "koios").await;

    let copies = [
        ctas(
            &koios,
            &server,
            "(a) Parquet → PostgreSQL",
            "CREATE TABLE pg.public.lineitem AS SELECT * FROM demo.public.lineitem",
        )
        .await,
        ctas(
            &koios,
            &server,
            "(b) PostgreSQL → MariaDB",
            &format!("CREATE TABLE my.{DATABASE}.lineitem AS SELECT * FROM pg.public.lineitem"),
        )
        .await,
        ctas(
            &koios,
            &server,
            "(c) MariaDB → PostgreSQL",
            &format!(
                "CREATE TABLE pg.public.lineitem_back AS SELECT * FROM my.{DATABASE}.lineitem"
            ),
        )
        .await,
    ];
    let sums = [
        checksum(&koios, "demo.public.lineitem").await,
        checksum(&koios, "pg.public.lineitem").await,
        checksum(&koios, &format!("my.{DATABASE}.lineitem")).await,
        checksum(&koios, "pg.public.lineitem_back").await,
    ];
    assert!(
        sums.iter().all(|s| s == &sums[0]),
        "the copies differ: {sums:?}"
    );

    // The peers: each server's own tools, through a file.
    let csv = dir.join("lineitem.csv");
    let started = Instant::now();
    psql(
        DATABASE,
        &format!(
            "\\copy (SELECT * FROM lineitem) TO '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    );
    mariadb(&format!(
        "CREATE TABLE {DATABASE}.lineitem_peer LIKE {DATABASE}.lineitem; \
         LOAD DATA LOCAL INFILE '{}' INTO TABLE {DATABASE}.lineitem_peer \
         FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'",
        csv.display()
    ));
    let pg_to_my_peer = started.elapsed().as_secs_f64();
    let tsv = dir.join("lineitem.tsv");
    let started = Instant::now();
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--batch",
            "--raw",
            "-N",
            "-e",
        ])
        .arg(format!("SELECT * FROM {DATABASE}.lineitem"))
        .stdout(std::fs::File::create(&tsv).expect("the peer's file"))
        .status()
        .expect("mariadb runs");
    assert!(out.success());
    psql(DATABASE, "CREATE TABLE lineitem_peer (LIKE lineitem_back)");
    psql(
        DATABASE,
        &format!(
            "\\copy lineitem_peer FROM '{}' WITH (FORMAT text, NULL 'NULL')",
            tsv.display()
        ),
    );
    let my_to_pg_peer = started.elapsed().as_secs_f64();
    let peer_rows: i64 = pg_connect(DATABASE)
        .await
        .query_one("SELECT count(*) FROM lineitem_peer", &[])
        .await
        .expect("counts")
        .get(0);
    assert_eq!(
        peer_rows as u64, copies[0].rows,
        "the peer copied every row"
    );

    println!(
        "\nCREATE TABLE … AS, TPC-H lineitem SF {sf} ({} rows)\n",
        copies[0].rows
    );
    println!(
        "| copy | seconds | rows/s | peak RSS of koios serve (MiB) | peer (seconds) | Koios ÷ peer |"
    );
    println!("|---|---|---|---|---|---|");
    let peers = [None, Some(pg_to_my_peer), Some(my_to_pg_peer)];
    for (copy, peer) in copies.iter().zip(peers) {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {} | {} |",
            copy.what,
            copy.seconds,
            copy.rows as f64 / copy.seconds,
            copy.peak_mib,
            peer.map_or("—".into(), |p| format!("{p:.1}")),
            peer.map_or("—".into(), |p| format!("{:.2}", copy.seconds / p)),
        );
    }
    println!(
        "\npeers: PostgreSQL → MariaDB = psql \\copy TO csv + LOAD DATA LOCAL INFILE; \
         MariaDB → PostgreSQL = mariadb --batch + psql \\copy FROM"
    );
    let _ = std::fs::remove_file(csv);
    let _ = std::fs::remove_file(tsv);
    drop(koios);
    drop(server);
    drop_databases(&[DATABASE], &[DATABASE]);
}
