//! Mirrored tables (issue: logical tables mirrored on several backends).
//!
//! One million synthetic rows (`generate_series`) through a `koios serve`
//! of this build, mirrored on PostgreSQL and MariaDB:
//!
//! * bulk `INSERT … SELECT` into the mirrored table against the slower
//!   copy's own bulk load of the same rows (`psql \copy … FROM` and
//!   `LOAD DATA LOCAL INFILE` of a CSV written by `psql \copy … TO`) —
//!   target ≥ 0.8× of that rate;
//! * a key lookup (`id = $1`) on the mirrored table (`read = 'first'`, the
//!   PostgreSQL copy first) against the same lookup on a plain copy of the
//!   table in that PostgreSQL database through Koios (mean of 300 prepared
//!   lookups of different keys, the two taking turns) — target ≤ 1.1×; and
//!   the same for a second mirrored table whose copies are both PostgreSQL
//!   (two databases), whose plan binds each lookup's key without planning
//!   (MariaDB scans take no bound parameters yet, so a table with a
//!   MariaDB copy is planned at each lookup).
//!
//! Run: `cargo bench --bench mirrored` (PostgreSQL and MariaDB running,
//! `scripts/services.sh`). Uses the database `koios_bench_mirrored` on both
//! servers and `koios_bench_mirrored2` on PostgreSQL, dropped and made again
//! each run.

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::pg_connect_at;
use common::serve::{Server, drop_databases, fresh_databases, mariadb, psql};

const DATABASE: &str = "koios_bench_mirrored";
const SECOND: &str = "koios_bench_mirrored2";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs benches as tests: nothing to do
    }
    // `KOIOS_BENCH_ROWS` makes a quick run.
    let rows: i64 = std::env::var("KOIOS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir: PathBuf = std::env::temp_dir().join("koios-bench-mirrored");
    std::fs::create_dir_all(&dir).expect("the bench directory");
    fresh_databases(&[DATABASE, SECOND], &[DATABASE]);
    let store = dir.join("koios-bench-mirrored.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let config = format!(
        "[server]\nadmin_listen = \"\"\nmetadata = \"{}\"\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{DATABASE}\"\n\n\
         [[source]]\nname = \"pg2\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{SECOND}\"\n\n\
         [[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{DATABASE}\"\n",
        store.display(),
    );
    let server = Server::start(&config, &dir);
    let koios = pg_connect_at(server.port, "koios").await;

    koios
        .batch_execute(&format!(
            "CREATE TABLE koios.public.accounts (id bigint PRIMARY KEY, owner text, \
               balance numeric(12,2), note text) \
             MIRRORED ON (pg.public.accounts, my.{DATABASE}.accounts) WITH (read = 'first')"
        ))
        .await
        .expect("creates the mirrored table");
    let started = Instant::now();
    let inserted = koios
        .execute(
            &format!(
                "INSERT INTO koios.public.accounts \
                 SELECT value, 'owner ' || (value % 1000), CAST(value % 100000 AS numeric(12,2)) / 100, \
                        'a note of some length for row ' || value \
                 FROM generate_series(1, {rows})"
            ),
            &[],
        )
        .await
        .expect("fills the mirrored table");
    let insert_seconds = started.elapsed().as_secs_f64();
    assert_eq!(inserted, rows as u64);
    psql(DATABASE, "ANALYZE accounts");

    // The copies' own bulk loads of every row, from one CSV file.
    let csv = dir.join("accounts.csv");
    psql(
        DATABASE,
        &format!(
            "\\copy (SELECT * FROM accounts) TO '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    );
    psql(
        DATABASE,
        "CREATE TABLE accounts_peer (LIKE accounts INCLUDING ALL)",
    );
    let started = Instant::now();
    psql(
        DATABASE,
        &format!(
            "\\copy accounts_peer FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    );
    let pg_load = started.elapsed().as_secs_f64();
    mariadb(&format!(
        "CREATE TABLE {DATABASE}.accounts_peer LIKE {DATABASE}.accounts"
    ));
    let started = Instant::now();
    mariadb(&format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {DATABASE}.accounts_peer \
         FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'",
        csv.display()
    ));
    let my_load = started.elapsed().as_secs_f64();
    let slowest = pg_load.max(my_load);
    let _ = std::fs::remove_file(&csv);

    // A plain table with the same rows and key, in the same PostgreSQL,
    // and a mirrored table over two PostgreSQL databases.
    psql(
        DATABASE,
        "CREATE TABLE accounts_plain AS SELECT * FROM accounts; ALTER TABLE accounts_plain ADD PRIMARY KEY (id); ANALYZE accounts_plain",
    );
    koios
        .batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refresh");
    koios
        .batch_execute(
            "CREATE TABLE koios.public.accounts_pg (id bigint PRIMARY KEY, owner text, \
               balance numeric(12,2), note text) \
             MIRRORED ON (pg.public.accounts_pg, pg2.public.accounts_pg) WITH (read = 'first'); \
             INSERT INTO koios.public.accounts_pg SELECT * FROM pg.public.accounts_plain",
        )
        .await
        .expect("fills the second mirrored table");
    psql(DATABASE, "ANALYZE accounts_pg");
    psql(SECOND, "ANALYZE accounts_pg");
    koios
        .batch_execute("REFRESH SOURCE pg; REFRESH SOURCE pg2; REFRESH SOURCE my")
        .await
        .expect("refresh");

    let lookups = 300;
    let mut lookup_ratios = Vec::new();
    for table in ["koios.public.accounts", "koios.public.accounts_pg"] {
        // Key lookups, the two tables taking turns.
        let lookup = |table: &str| format!("SELECT * FROM {table} WHERE id = $1");
        let plain = koios
            .prepare(&lookup("pg.public.accounts_plain"))
            .await
            .expect("prepares");
        let mirrored = koios.prepare(&lookup(table)).await.expect("prepares");
        let (mut plain_total, mut mirrored_total) = (Duration::ZERO, Duration::ZERO);
        for i in 0..(lookups + 20) {
            let key = (i * 7919) % rows + 1;
            let started = Instant::now();
            let a = koios.query(&plain, &[&key]).await.expect("looks up");
            let plain_time = started.elapsed();
            let started = Instant::now();
            let b = koios.query(&mirrored, &[&key]).await.expect("looks up");
            let mirrored_time = started.elapsed();
            assert_eq!((a.len(), b.len()), (1, 1), "lookup of {key}");
            if i >= 20 {
                plain_total += plain_time;
                mirrored_total += mirrored_time;
            }
        }
        lookup_ratios.push((
            table,
            plain_total.as_secs_f64() * 1000.0 / lookups as f64,
            mirrored_total.as_secs_f64() * 1000.0 / lookups as f64,
        ));
    }

    let rate = inserted as f64 / insert_seconds;
    let peer_rate = inserted as f64 / slowest;
    println!("\nMirrored table, {rows} rows, copies on PostgreSQL and MariaDB\n");
    println!("| measurement | Koios | peer | Koios ÷ peer | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| INSERT … SELECT into the mirrored table | {insert_seconds:.1} s ({rate:.0} rows/s) | slower copy's own bulk load: {slowest:.1} s ({peer_rate:.0} rows/s; PostgreSQL \\copy {pg_load:.1} s, MariaDB LOAD DATA {my_load:.1} s) | {:.2} (rate) | ≥ 0.8 |",
        rate / peer_rate
    );
    for (table, plain_lookup, mirrored_lookup) in lookup_ratios {
        let copies = if table.ends_with("_pg") {
            "PostgreSQL + PostgreSQL"
        } else {
            "PostgreSQL + MariaDB"
        };
        println!(
            "| key lookup, copies {copies} (mean of {lookups}) | {mirrored_lookup:.2} ms | same lookup on a plain PostgreSQL table through Koios: {plain_lookup:.2} ms | {:.2} | ≤ 1.1 |",
            mirrored_lookup / plain_lookup
        );
    }
    drop(koios);
    drop(server);
    drop_databases(&[DATABASE, SECOND], &[DATABASE]);
}
