//! Migrations between backends (issue: migration as resumable, verified
//! jobs) against the established tools, in the same run.
//!
//! TPC-H `lineitem` (`KOIOS_BENCH_SF`, default 1: 6 M rows, primary key
//! `(l_orderkey, l_linenumber)`) is loaded once into MariaDB and once into
//! PostgreSQL, then copied through a `koios serve` of this build:
//!
//! * MariaDB → PostgreSQL: `MIGRATE TABLE … WITH (wait = true)` (verify on,
//!   the default), the same with `verify = false` (so verification's share
//!   of the time shows), and `pgloader` (Debian's package) of the same
//!   table into a PostgreSQL database of its own;
//! * PostgreSQL → MariaDB: `MIGRATE TABLE` (verify on and off) and
//!   `psql -c "COPY … TO STDOUT" | mariadb -e "LOAD DATA LOCAL INFILE
//!   '/dev/stdin' …"` into a table of the same definition.
//!
//! Printed: seconds and rows/s of each, Koios ÷ peer in rows/s (target:
//! above 1 with verification on), Koios's peak resident memory during each
//! migration, and verification's share of the time. Every destination is
//! checked to hold all the rows.
//!
//! Run: `cargo bench --bench migrate` (PostgreSQL and MariaDB running,
//! `scripts/services.sh`; `apt-get install pgloader` for the first peer —
//! without it that line is skipped). Uses the databases
//! `koios_bench_migrate` (both servers) and `koios_bench_migrate_pgl`
//! (PostgreSQL, pgloader's target), dropped and made again each run.

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::serve::{Server, drop_databases, fresh_databases, mariadb, psql};
use common::{pg_connect, pg_connect_at};

const DATABASE: &str = "koios_bench_migrate";
const PGLOADER_TARGET: &str = "koios_bench_migrate_pgl";

const MARIADB_LINEITEM: &str = "l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, \
     l_suppkey bigint NOT NULL, l_linenumber int NOT NULL, l_quantity decimal(15,2) NOT NULL, \
     l_extendedprice decimal(15,2) NOT NULL, l_discount decimal(15,2) NOT NULL, \
     l_tax decimal(15,2) NOT NULL, l_returnflag varchar(1) NOT NULL, \
     l_linestatus varchar(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL, \
     l_receiptdate date NOT NULL, l_shipinstruct varchar(25) NOT NULL, \
     l_shipmode varchar(10) NOT NULL, l_comment varchar(44) NOT NULL, \
     PRIMARY KEY (l_orderkey, l_linenumber)";

/// One measured copy.
struct Copied {
    what: String,
    seconds: f64,
    rows: i64,
    peak_mib: Option<f64>,
}

impl Copied {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.seconds
    }
}

/// `MIGRATE TABLE from TO to` through `koios`, waiting; its time and
/// Koios's peak memory meanwhile.
async fn migrate(
    server: &Server,
    koios: &tokio_postgres::Client,
    from: &str,
    to: &str,
    verify: bool,
    rows: i64,
) -> Copied {
    server.reset_peak();
    let started = Instant::now();
    koios
        .simple_query(&format!(
            "MIGRATE TABLE {from} TO {to} WITH (verify = {verify}, wait = true)"
        ))
        .await
        .unwrap_or_else(|e| panic!("MIGRATE {from} TO {to}: {e}"));
    Copied {
        what: format!("Koios MIGRATE, verify = {verify}",),
        seconds: started.elapsed().as_secs_f64(),
        rows,
        peak_mib: Some(server.peak_mib()),
    }
}

fn shell(script: &str) {
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mariadb_count(table: &str) -> i64 {
    let out = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-u", "root", "-N", "-B", DATABASE, "-e"])
        .arg(format!("SELECT count(*) FROM {table}"))
        .output()
        .expect("mariadb runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

async fn pg_count(database: &str, table: &str) -> i64 {
    pg_connect(database)
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("counts")
        .get(0)
}

fn print_pair(title: &str, koios: &Copied, unverified: &Copied, peer: Option<&Copied>) {
    println!("\n{title}");
    println!("| copy | seconds | rows/s | Koios peak RSS |");
    println!("|---|---|---|---|");
    for copied in [Some(koios), Some(unverified), peer].into_iter().flatten() {
        println!(
            "| {} | {:.1} | {:.0} | {} |",
            copied.what,
            copied.seconds,
            copied.rate(),
            copied
                .peak_mib
                .map(|m| format!("{m:.0} MiB"))
                .unwrap_or_default()
        );
    }
    let share = (koios.seconds - unverified.seconds).max(0.0) / koios.seconds;
    println!("verification's share of the time: {:.0}%", share * 100.0);
    if let Some(peer) = peer {
        println!(
            "Koios (verify on) ÷ {} in rows/s: {:.2} (target > 1)",
            peer.what,
            koios.rate() / peer.rate()
        );
    }
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
    let dir: PathBuf = std::env::temp_dir().join(format!("koios-bench-migrate-sf{sf}"));
    std::fs::create_dir_all(&dir).expect("the bench directory");
    fresh_databases(&[DATABASE, PGLOADER_TARGET], &[DATABASE]);
    let store = dir.join("koios-bench-migrate.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let config = format!(
        "[server]\nadmin_listen = \"\"\nmetadata = \"{}\"\n\n\
         [[source]]\nname = \"demo\"\nkind = \"demo\"\nurl = \"{}\"\nscale_factor = {sf:?}\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{DATABASE}\"\n\n\
         [[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{DATABASE}\"\n",
        store.display(),
        dir.join("demo").display()
    );
    eprintln!("starting koios serve (the demo data at SF {sf} is generated once) ...");
    drop(Server::start(&config, &dir));
    let server = Server::start(&config, &dir);
    let koios = pg_connect_at(server.port, "koios").await;

    // The sources: lineitem in MariaDB and in PostgreSQL, with its key.
    eprintln!("loading lineitem into MariaDB and PostgreSQL ...");
    mariadb(&format!(
        "CREATE TABLE {DATABASE}.lineitem ({MARIADB_LINEITEM})"
    ));
    koios
        .batch_execute(&format!(
            "REFRESH SOURCE my; INSERT INTO my.{DATABASE}.lineitem SELECT * FROM demo.public.lineitem; \
             CREATE TABLE pg.public.lineitem AS SELECT * FROM demo.public.lineitem"
        ))
        .await
        .expect("loads the sources");
    psql(
        DATABASE,
        "ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber); ANALYZE lineitem",
    );
    mariadb(&format!("ANALYZE TABLE {DATABASE}.lineitem"));
    koios
        .batch_execute("REFRESH SOURCE pg; REFRESH SOURCE my")
        .await
        .expect("refresh");
    let rows = pg_count(DATABASE, "lineitem").await;
    assert_eq!(mariadb_count("lineitem"), rows);

    // MariaDB → PostgreSQL.
    let verified = migrate(
        &server,
        &koios,
        &format!("my.{DATABASE}.lineitem"),
        "pg.public.from_my",
        true,
        rows,
    )
    .await;
    assert_eq!(pg_count(DATABASE, "public.from_my").await, rows);
    let unverified = migrate(
        &server,
        &koios,
        &format!("my.{DATABASE}.lineitem"),
        "pg.public.from_my_unverified",
        false,
        rows,
    )
    .await;
    assert_eq!(pg_count(DATABASE, "public.from_my_unverified").await, rows);
    let pgloader = if Command::new("pgloader").arg("--version").output().is_ok() {
        let started = Instant::now();
        shell(&format!(
            "pgloader --quiet mysql://root@127.0.0.1:3306/{DATABASE} \
             postgresql://postgres@127.0.0.1:5432/{PGLOADER_TARGET}"
        ));
        let copied = Copied {
            what: "pgloader".into(),
            seconds: started.elapsed().as_secs_f64(),
            rows,
            peak_mib: None,
        };
        assert_eq!(
            pg_count(PGLOADER_TARGET, &format!("{DATABASE}.lineitem")).await,
            rows
        );
        Some(copied)
    } else {
        eprintln!("pgloader is not installed: its line is skipped");
        None
    };

    // PostgreSQL → MariaDB.
    let back = migrate(
        &server,
        &koios,
        "pg.public.lineitem",
        &format!("my.{DATABASE}.from_pg"),
        true,
        rows,
    )
    .await;
    assert_eq!(mariadb_count("from_pg"), rows);
    let back_unverified = migrate(
        &server,
        &koios,
        "pg.public.lineitem",
        &format!("my.{DATABASE}.from_pg_unverified"),
        false,
        rows,
    )
    .await;
    assert_eq!(mariadb_count("from_pg_unverified"), rows);
    mariadb(&format!(
        "CREATE TABLE {DATABASE}.by_copy ({MARIADB_LINEITEM})"
    ));
    let started = Instant::now();
    shell(&format!(
        "psql -h 127.0.0.1 -U postgres -d {DATABASE} -X -q -c 'COPY lineitem TO STDOUT' | \
         mariadb -h 127.0.0.1 -u root --local-infile=1 {DATABASE} \
         -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE by_copy\""
    ));
    let piped = Copied {
        what: "psql COPY | mariadb LOAD DATA".into(),
        seconds: started.elapsed().as_secs_f64(),
        rows,
        peak_mib: None,
    };
    assert_eq!(mariadb_count("by_copy"), rows);

    println!("TPC-H lineitem SF {sf}: {rows} rows");
    print_pair(
        "MariaDB → PostgreSQL",
        &verified,
        &unverified,
        pgloader.as_ref(),
    );
    print_pair(
        "PostgreSQL → MariaDB",
        &back,
        &back_unverified,
        Some(&piped),
    );
    drop(koios);
    drop(server);
    drop_databases(&[DATABASE, PGLOADER_TARGET], &[DATABASE]);
}
