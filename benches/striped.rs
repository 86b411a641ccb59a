//! Striped tables (issue: logical tables striped over several backends).
//!
//! TPC-H `lineitem` (`KOIOS_BENCH_SF`, default 1: 6 M rows) twice, through a
//! `koios serve` of this build:
//!
//! * unstriped, in one PostgreSQL database (`CREATE TABLE … AS` from the
//!   demo's Parquet, then the TPC-H primary key added);
//! * hash-striped on `l_orderkey` over that PostgreSQL, MariaDB and a
//!   second PostgreSQL database (`INSERT INTO striped SELECT * FROM` the
//!   demo's Parquet).
//!
//! Measured:
//!
//! * (a) TPC-H Q1 and Q6 over the striped table against the same queries
//!   over the unstriped PostgreSQL table, both through Koios (best of 3;
//!   the answers must be equal) — target ≤ 1.0× — and against each
//!   member running the same query over its third directly (its own
//!   client, one at a time), which bounds what Koios can reach on a machine
//!   where all the servers share the same cores;
//! * (b) a key lookup (`l_orderkey = $1`, one member) against the same
//!   lookup on the unstriped table (mean of 300 prepared lookups of
//!   different keys, taking turns) — target ≤ 1.2× — and the same lookups
//!   on the PostgreSQL and MariaDB members' own tables through Koios;
//! * (c) the bulk `INSERT … SELECT` into the striped table against the
//!   slowest member's own bulk load of all the rows (`psql \copy … FROM`
//!   and `LOAD DATA LOCAL INFILE` of a CSV written by `psql \copy … TO`) —
//!   target ≥ 0.8× of that rate.
//!
//! Run: `cargo bench --bench striped` (PostgreSQL and MariaDB running,
//! `scripts/services.sh`). Uses the databases `koios_bench_striped` (both
//! servers) and `koios_bench_striped2` (PostgreSQL), dropped and made again
//! each run.

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::serve::{Server, drop_databases, fresh_databases, mariadb, psql};
use common::{pg_connect, pg_connect_at};

const DATABASE: &str = "koios_bench_striped";
const SECOND: &str = "koios_bench_striped2";

const COLUMNS: &str = "l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber integer, \
     l_quantity numeric(15,2), l_extendedprice numeric(15,2), l_discount numeric(15,2), \
     l_tax numeric(15,2), l_returnflag text, l_linestatus text, l_shipdate date, \
     l_commitdate date, l_receiptdate date, l_shipinstruct text, l_shipmode text, l_comment text, \
     PRIMARY KEY (l_orderkey, l_linenumber)";

fn q1(table: &str) -> String {
    format!(
        "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, \
         sum(l_extendedprice) AS sum_base_price, \
         sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, \
         sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, \
         avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, \
         avg(l_discount) AS avg_disc, count(*) AS count_order \
         FROM {table} WHERE l_shipdate <= DATE '1998-09-02' \
         GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"
    )
}

fn q6(table: &str) -> String {
    format!(
        "SELECT sum(l_extendedprice * l_discount) AS revenue FROM {table} \
         WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
         AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24"
    )
}

/// The rows of `sql` as text, and the best time of three runs.
async fn best_of_3(koios: &tokio_postgres::Client, sql: &str) -> (Duration, Vec<String>) {
    let mut best = Duration::MAX;
    let mut rows = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let messages = koios
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        best = best.min(started.elapsed());
        rows = messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect();
    }
    (best, rows)
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
    let dir: PathBuf = std::env::temp_dir().join(format!("koios-bench-striped-sf{sf}"));
    std::fs::create_dir_all(&dir).expect("the bench directory");
    fresh_databases(&[DATABASE, SECOND], &[DATABASE]);
    // A metadata store of the run's own (the striped table's definition).
    let store = dir.join("koios-bench-striped.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let config = format!(
        "[server]\nadmin_listen = \"\"\nmetadata = \"{}\"\n\n\
         [[source]]\nname = \"demo\"\nkind = \"demo\"\nurl = \"{}\"\nscale_factor = {sf:?}\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{DATABASE}\"\n\n\
         [[source]]\nname = \"pg2\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{SECOND}\"\n\n\
         [[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{DATABASE}\"\n",
        store.display(),
        dir.join("demo").display()
    );
    eprintln!("starting koios serve (the demo data at SF {sf} is generated once) ...");
    drop(Server::start(&config, &dir));
    let server = Server::start(&config, &dir);
    let koios = pg_connect_at(server.port, "koios").await;

    // The unstriped table, with the same key as the striped one's members.
    koios
        .batch_execute("CREATE TABLE pg.public.lineitem AS SELECT * FROM demo.public.lineitem")
        .await
        .expect("copies lineitem into PostgreSQL");
    psql(
        DATABASE,
        "ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber); ANALYZE lineitem",
    );
    koios
        .batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refresh");

    // (c) The striped table, filled by one INSERT … SELECT.
    koios
        .batch_execute(&format!(
            "CREATE TABLE koios.public.lineitem_s ({COLUMNS}) STRIPED BY HASH (l_orderkey) \
             ACROSS (pg.public.lineitem_s, my.{DATABASE}.lineitem_s, pg2.public.lineitem_s)"
        ))
        .await
        .expect("creates the striped table");
    let started = Instant::now();
    let inserted = koios
        .execute(
            "INSERT INTO koios.public.lineitem_s SELECT * FROM demo.public.lineitem",
            &[],
        )
        .await
        .expect("fills the striped table");
    let insert_seconds = started.elapsed().as_secs_f64();
    psql(DATABASE, "ANALYZE lineitem_s");
    psql(SECOND, "ANALYZE lineitem_s");
    koios
        .batch_execute("REFRESH SOURCE pg; REFRESH SOURCE pg2; REFRESH SOURCE my")
        .await
        .expect("refresh");

    // The members' own bulk loads of every row, from one CSV file.
    let csv = dir.join("lineitem.csv");
    psql(
        DATABASE,
        &format!(
            "\\copy (SELECT * FROM lineitem) TO '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    );
    psql(
        DATABASE,
        "CREATE TABLE lineitem_peer (LIKE lineitem INCLUDING ALL)",
    );
    let started = Instant::now();
    psql(
        DATABASE,
        &format!(
            "\\copy lineitem_peer FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ),
    );
    let pg_load = started.elapsed().as_secs_f64();
    mariadb(&format!(
        "CREATE TABLE {DATABASE}.lineitem_peer LIKE {DATABASE}.lineitem_s"
    ));
    let started = Instant::now();
    mariadb(&format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {DATABASE}.lineitem_peer \
         FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"'",
        csv.display()
    ));
    let my_load = started.elapsed().as_secs_f64();
    let slowest = pg_load.max(my_load);
    let _ = std::fs::remove_file(&csv);

    // (a) Q1 and Q6; and each member running the same query over its own
    // third, directly (its own client), one member at a time.
    let mut query_rows = Vec::new();
    let first = pg_connect(DATABASE).await;
    let second = pg_connect(SECOND).await;
    for (name, make) in [("Q1", q1 as fn(&str) -> String), ("Q6", q6)] {
        let (plain, plain_rows) = best_of_3(&koios, &make("pg.public.lineitem")).await;
        let (striped, striped_rows) = best_of_3(&koios, &make("koios.public.lineitem_s")).await;
        assert_eq!(plain_rows, striped_rows, "{name} answers differ");
        let (on_first, _) = best_of_3(&first, &make("lineitem_s")).await;
        let (on_second, _) = best_of_3(&second, &make("lineitem_s")).await;
        let mut on_my = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            mariadb(&format!("USE {DATABASE}; {}", make("lineitem_s")));
            on_my = on_my.min(started.elapsed());
        }
        query_rows.push((name, plain, striped, [on_first, on_my, on_second]));
    }

    // (b) Key lookups, the tables taking turns: the unstriped table, the
    // striped one, and two of its members alone through Koios (where a
    // third of the keys live on MariaDB, its own lookups bound the mean).
    let lookup = |table: &str| format!("SELECT * FROM {table} WHERE l_orderkey = $1");
    let tables = [
        "pg.public.lineitem".to_string(),
        "koios.public.lineitem_s".to_string(),
        "pg.public.lineitem_s".to_string(),
        format!("my.{DATABASE}.lineitem_s"),
    ];
    let mut statements = Vec::new();
    for table in &tables {
        statements.push(koios.prepare(&lookup(table)).await.expect("prepares"));
    }
    let orders = (1_500_000.0 * sf) as i64;
    let mut totals = [Duration::ZERO; 4];
    let lookups = 300;
    for i in 0..(lookups + 20) {
        // Order keys of TPC-H are sparse: 1–7, 33–39, …
        let key = ((i * 7919) % (orders / 4).max(1)) * 32 + 1;
        let mut found = Vec::new();
        for (statement, total) in statements.iter().zip(totals.iter_mut()) {
            let started = Instant::now();
            let rows = koios.query(statement, &[&key]).await.expect("looks up");
            if i >= 20 {
                *total += started.elapsed();
            }
            found.push(rows.len());
        }
        assert_eq!(found[0], found[1], "lookup of {key}");
    }
    let [
        plain_lookup,
        striped_lookup,
        pg_member_lookup,
        my_member_lookup,
    ] = totals.map(|t| t.as_secs_f64() * 1000.0 / lookups as f64);

    println!(
        "\nStriped lineitem, SF {sf} ({inserted} rows): PostgreSQL + MariaDB + PostgreSQL (second database)\n"
    );
    println!(
        "| measurement | unstriped (PostgreSQL through Koios) | striped | striped ÷ unstriped | members alone, directly (pg, my, pg2) | striped ÷ slowest member |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, plain, striped, members) in &query_rows {
        let slowest = members.iter().max().copied().unwrap_or_default();
        println!(
            "| (a) TPC-H {name} | {:.2} s | {:.2} s | {:.2} | {:.2} s, {:.2} s, {:.2} s | {:.2} |",
            plain.as_secs_f64(),
            striped.as_secs_f64(),
            striped.as_secs_f64() / plain.as_secs_f64(),
            members[0].as_secs_f64(),
            members[1].as_secs_f64(),
            members[2].as_secs_f64(),
            striped.as_secs_f64() / slowest.as_secs_f64()
        );
    }
    println!(
        "| (b) key lookup (mean of {lookups}) | {plain_lookup:.2} ms | {striped_lookup:.2} ms | {:.2} | | |",
        striped_lookup / plain_lookup
    );
    println!(
        "\n(b) the members' own tables through Koios, same keys: PostgreSQL member {pg_member_lookup:.2} ms ({:.2}× unstriped), \
         MariaDB member {my_member_lookup:.2} ms ({:.2}× unstriped)",
        pg_member_lookup / plain_lookup,
        my_member_lookup / plain_lookup
    );
    let rate = inserted as f64 / insert_seconds;
    let peer_rate = inserted as f64 / slowest;
    println!(
        "\n(c) INSERT … SELECT into the striped table: {insert_seconds:.1} s, {rate:.0} rows/s; \
         members' own bulk loads of all rows: PostgreSQL \\copy {pg_load:.1} s, MariaDB LOAD DATA {my_load:.1} s; \
         slowest {peer_rate:.0} rows/s; Koios ÷ slowest rate = {:.2}",
        rate / peer_rate
    );
    drop(koios);
    drop(server);
    drop_databases(&[DATABASE, SECOND], &[DATABASE]);
}
