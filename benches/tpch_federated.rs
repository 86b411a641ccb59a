//! TPC-H across three engines (issue: federated planning).
//!
//! The 22 TPC-H queries (`benches/tpch-federated/queries/`) run through Koios
//! over pgwire against TPC-H data split as the issue describes:
//!
//! * PostgreSQL (database `koios_tpch`): lineitem, orders, partsupp;
//! * MariaDB (database `koios_tpch`): customer, nation, region, supplier;
//! * Parquet: part.
//!
//! Data comes from the `tpchgen` generator (the library behind
//! `tpchgen-cli`): rows are loaded with `COPY … FROM STDIN` into PostgreSQL
//! and `LOAD DATA LOCAL INFILE` into MariaDB (once; later runs reuse them),
//! Parquet is the Koios demo's. Unqualified table names resolve through views
//! in the `koios` catalog.
//!
//! In the same run, every query also runs through a second Koios whose views
//! read all eight tables from local Parquet (DataFusion alone, no remote
//! server): its answers are the reference every federated answer is checked
//! against, and its times are the single-engine reference. When the
//! `mysql_fdw` extension is installed (`postgresql-15-mysql-fdw`), each query
//! also runs once on the peer setup: a PostgreSQL database with postgres_fdw,
//! mysql_fdw and file_fdw (part as a text file) over the same split. When
//! `KOIOS_BENCH_DUCKDB_PYTHON` names the Python of a virtual environment
//! with DuckDB 1.4 and its scanners (`duckdb==1.4.4 duckdb-ext==0.1.2
//! duckdb-ext-postgres==1.4.4.20260205 duckdb-ext-mysql==1.4.4.20260205`),
//! each query also runs on DuckDB over the same split (best of the same
//! number of runs), its answer compared with the reference.
//!
//! Run: `cargo bench --bench tpch_federated` (PostgreSQL and MariaDB running,
//! `scripts/services.sh`). `KOIOS_BENCH_SF` changes the scale factor
//! (default 1), `KOIOS_BENCH_QUERIES=1,9` runs a subset.

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;
#[path = "tpch-federated/duckdb.rs"]
mod duckdb;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{best, pg_connect};
use futures::SinkExt;
use koios::config::Config;
use koios::engine::Engine;
use koios::server::Server;
use tokio_postgres::{NoTls, SimpleQueryMessage};

const DATABASE: &str = "koios_tpch";
const RUNS: usize = 2;

const PG_TABLES: [&str; 3] = ["lineitem", "orders", "partsupp"];
const MY_TABLES: [&str; 4] = ["customer", "nation", "region", "supplier"];

const PG_DDL: &str = "
CREATE TABLE orders (
  o_orderkey bigint PRIMARY KEY, o_custkey bigint NOT NULL, o_orderstatus varchar(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority varchar(15) NOT NULL,
  o_clerk varchar(15) NOT NULL, o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL);
CREATE TABLE partsupp (
  ps_partkey bigint NOT NULL, ps_suppkey bigint NOT NULL, ps_availqty integer NOT NULL,
  ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar(199) NOT NULL,
  PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE lineitem (
  l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
  l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL,
  l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
  l_tax numeric(15,2) NOT NULL, l_returnflag varchar(1) NOT NULL, l_linestatus varchar(1) NOT NULL,
  l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
  l_shipinstruct varchar(25) NOT NULL, l_shipmode varchar(10) NOT NULL,
  l_comment varchar(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber));
";

const MY_DDL: &str = "
CREATE TABLE region (r_regionkey bigint PRIMARY KEY, r_name varchar(25) NOT NULL, r_comment varchar(152) NOT NULL);
CREATE TABLE nation (n_nationkey bigint PRIMARY KEY, n_name varchar(25) NOT NULL, n_regionkey bigint NOT NULL,
  n_comment varchar(152) NOT NULL);
CREATE TABLE supplier (s_suppkey bigint PRIMARY KEY, s_name varchar(25) NOT NULL, s_address varchar(40) NOT NULL,
  s_nationkey bigint NOT NULL, s_phone varchar(15) NOT NULL, s_acctbal decimal(15,2) NOT NULL,
  s_comment varchar(101) NOT NULL);
CREATE TABLE customer (c_custkey bigint PRIMARY KEY, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL,
  c_nationkey bigint NOT NULL, c_phone varchar(15) NOT NULL, c_acctbal decimal(15,2) NOT NULL,
  c_mktsegment varchar(10) NOT NULL, c_comment varchar(117) NOT NULL);
";

/// `.tbl` lines of one generated table (without tpchgen's trailing `|`).
fn rows(table: &str, sf: f64) -> Box<dyn Iterator<Item = String>> {
    use tpchgen::generators::*;
    let trim = |line: String| line.trim_end_matches('|').to_string();
    match table {
        "lineitem" => Box::new(
            LineItemGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "orders" => Box::new(
            OrderGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "partsupp" => Box::new(
            PartSuppGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "customer" => Box::new(
            CustomerGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "supplier" => Box::new(
            SupplierGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "nation" => Box::new(
            NationGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "region" => Box::new(
            RegionGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        "part" => Box::new(
            PartGenerator::new(sf, 1, 1)
                .iter()
                .map(move |r| trim(r.to_string())),
        ),
        other => panic!("no generator for {other}"),
    }
}

/// Loads PostgreSQL's share unless a previous run left it complete.
async fn load_postgres(sf: f64) {
    let admin = pg_connect("postgres").await;
    let marker = format!("sf={sf}");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .expect("pg_database")
        .is_some();
    if exists {
        let db = pg_connect(DATABASE).await;
        let loaded: Option<String> = db
            .query_opt("SELECT marker FROM koios_bench_loaded", &[])
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if loaded.as_deref() == Some(marker.as_str()) {
            return;
        }
        drop(db);
        admin
            .batch_execute(&format!("DROP DATABASE {DATABASE} WITH (FORCE)"))
            .await
            .expect("drop database");
    }
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .expect("create database");
    let db = pg_connect(DATABASE).await;
    db.batch_execute(PG_DDL).await.expect("PostgreSQL DDL");
    for table in PG_TABLES {
        let started = Instant::now();
        let sink = db
            .copy_in(&format!(
                "COPY {table} FROM STDIN (FORMAT text, DELIMITER '|')"
            ))
            .await
            .expect("copy in");
        futures::pin_mut!(sink);
        let mut buf = Vec::with_capacity(1 << 22);
        for line in rows(table, sf) {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            if buf.len() > 1 << 22 {
                sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
                    .await
                    .expect("send");
            }
        }
        sink.send(bytes::Bytes::from(buf)).await.expect("send");
        let n = sink.finish().await.expect("finish");
        eprintln!(
            "PostgreSQL: {table}: {n} rows in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    db.batch_execute("VACUUM ANALYZE").await.expect("analyze");
    db.batch_execute(&format!(
        "CREATE TABLE koios_bench_loaded (marker text); \
         INSERT INTO koios_bench_loaded VALUES ('{marker}')"
    ))
    .await
    .expect("marker");
}

const FDW_DATABASE: &str = "koios_tpch_fdw";

/// The peer: PostgreSQL with postgres_fdw (lineitem, orders, partsupp),
/// mysql_fdw (customer, nation, region, supplier) and file_fdw (part);
/// `None` when mysql_fdw is not installed.
async fn fdw_peer(sf: f64) -> Option<tokio_postgres::Client> {
    let admin = pg_connect("postgres").await;
    let available = admin
        .query_opt(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'mysql_fdw'",
            &[],
        )
        .await
        .ok()
        .flatten()
        .is_some();
    if !available {
        return None;
    }
    // file_fdw reads as the server's user: a file it can open.
    let part = std::env::temp_dir().join(format!("koios-tpch-part-sf{sf}.tbl"));
    if !part.exists() {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&part).expect("part file"));
        for line in rows("part", sf) {
            writeln!(file, "{line}").expect("write part");
        }
        file.flush().expect("flush");
    }
    // Separate statements: DROP/CREATE DATABASE refuse a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {FDW_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {FDW_DATABASE}"),
    ] {
        admin.batch_execute(&statement).await.expect("fdw database");
    }
    let db = pg_connect(FDW_DATABASE).await;
    db.batch_execute(&format!(
        "CREATE EXTENSION postgres_fdw; CREATE EXTENSION mysql_fdw; CREATE EXTENSION file_fdw;
         CREATE SERVER pg FOREIGN DATA WRAPPER postgres_fdw
           OPTIONS (host '127.0.0.1', port '5432', dbname '{DATABASE}', use_remote_estimate 'true');
         CREATE USER MAPPING FOR CURRENT_USER SERVER pg OPTIONS (user 'postgres');
         IMPORT FOREIGN SCHEMA public LIMIT TO (lineitem, orders, partsupp) FROM SERVER pg INTO public;
         CREATE SERVER my FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port '3306');
         CREATE USER MAPPING FOR CURRENT_USER SERVER my OPTIONS (username 'root');
         IMPORT FOREIGN SCHEMA {DATABASE} LIMIT TO (customer, nation, region, supplier) FROM SERVER my INTO public;
         CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
         CREATE FOREIGN TABLE part (p_partkey bigint, p_name varchar(55), p_mfgr varchar(25),
           p_brand varchar(10), p_type varchar(25), p_size integer, p_container varchar(10),
           p_retailprice numeric(15,2), p_comment varchar(23))
           SERVER files OPTIONS (filename '{}', format 'text', delimiter '|');
         ANALYZE part;",
        part.display()
    ))
    .await
    .expect("fdw setup");
    // Some plans take hours through the wrappers; each query gets this long.
    db.batch_execute(&format!(
        "SET statement_timeout = '{}s'",
        FDW_TIMEOUT.as_secs()
    ))
    .await
    .expect("statement_timeout");
    Some(db)
}

/// Longest a peer query may run; slower ones count as this long.
const FDW_TIMEOUT: Duration = Duration::from_secs(60);

fn mariadb(database: Option<&str>, sql: &str) -> String {
    let mut command = std::process::Command::new("mariadb");
    command.args([
        "-h",
        "127.0.0.1",
        "-u",
        "root",
        "--local-infile=1",
        "-N",
        "-B",
    ]);
    if let Some(db) = database {
        command.arg(db);
    }
    let output = command
        .arg("-e")
        .arg(sql)
        .output()
        .expect("the mariadb client runs");
    assert!(
        output.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Loads MariaDB's share unless a previous run left it complete.
fn load_mariadb(sf: f64, scratch: &Path) {
    let marker = format!("sf={sf}");
    let loaded = std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-u", "root", "-N", "-B", DATABASE, "-e"])
        .arg("SELECT marker FROM koios_bench_loaded")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if loaded.as_deref() == Some(marker.as_str()) {
        return;
    }
    mariadb(
        None,
        &format!("DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE}"),
    );
    mariadb(Some(DATABASE), MY_DDL);
    std::fs::create_dir_all(scratch).expect("scratch dir");
    for table in MY_TABLES {
        let started = Instant::now();
        let path = scratch.join(format!("{table}.tbl"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("tbl file"));
        for line in rows(table, sf) {
            writeln!(file, "{line}").expect("write tbl");
        }
        file.flush().expect("flush");
        drop(file);
        mariadb(
            Some(DATABASE),
            &format!(
                "LOAD DATA LOCAL INFILE '{}' INTO TABLE {table} FIELDS TERMINATED BY '|'",
                path.display()
            ),
        );
        let _ = std::fs::remove_file(&path);
        eprintln!(
            "MariaDB: {table} loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    mariadb(
        Some(DATABASE),
        &format!(
            "ANALYZE TABLE {}; CREATE TABLE koios_bench_loaded (marker text); \
             INSERT INTO koios_bench_loaded VALUES ('{marker}')",
            MY_TABLES.join(", ")
        ),
    );
}

/// A Koios server on a free port, with views naming each table unqualified.
async fn koios(config: String) -> tokio_postgres::Client {
    let config =
        Config::parse(&config, Path::new("tpch-bench.toml"), &|_| None).expect("config parses");
    let engine = Engine::start(&config).await.expect("engine starts");
    let server = Server::bind(Arc::clone(&engine), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(server.run());
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=koios dbname=koios",
            addr.port()
        ),
        NoTls,
    )
    .await
    .expect("connect to Koios");
    tokio::spawn(connection);
    client
}

fn views(tables: &[(&str, String)]) -> String {
    let views: Vec<String> = tables
        .iter()
        .map(|(table, source)| {
            format!("  \"CREATE VIEW koios.public.{table} AS SELECT * FROM {source}.{table}\",")
        })
        .collect();
    format!("startup_sql = [\n{}\n]\n", views.join("\n"))
}

/// Runs a query; returns its time and its rows as text.
async fn run(client: &tokio_postgres::Client, sql: &str) -> (Duration, Vec<Vec<String>>) {
    let started = Instant::now();
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| {
        let message = e.as_db_error().map(|d| d.message().to_string());
        panic!("query failed: {}\n{sql}", message.unwrap_or(e.to_string()))
    });
    let elapsed = started.elapsed();
    let rows = messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    (elapsed, rows)
}

fn queries() -> Vec<(usize, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/tpch-federated/queries");
    let wanted: Option<Vec<usize>> = std::env::var("KOIOS_BENCH_QUERIES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    (1..=22)
        .filter(|n| wanted.as_ref().is_none_or(|w| w.contains(n)))
        .map(|n| {
            let sql = std::fs::read_to_string(dir.join(format!("q{n}.sql"))).expect("query file");
            (n, sql)
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let sf: f64 = std::env::var("KOIOS_BENCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let cache = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(".cache/koios-bench/tpch-sf{sf}"));
    let parquet = cache.join("parquet");
    let started = Instant::now();
    koios_connector_demo::ensure_demo(&parquet, sf).expect("Parquet data");
    load_postgres(sf).await;
    load_mariadb(sf, &cache.join("tbl"));
    eprintln!(
        "data ready (SF {sf}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let files = format!(
        "[[source]]\nname = \"files\"\nkind = \"demo\"\nurl = \"{}\"\nscale_factor = {sf:?}\n",
        parquet.display()
    );
    let federated = koios(format!(
        "{}{files}\n[[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{DATABASE}\"\n\n\
         [[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{DATABASE}\"\n",
        views(
            &PG_TABLES
                .iter()
                .map(|t| (*t, "pg.public".to_string()))
                .chain(MY_TABLES.iter().map(|t| (*t, format!("my.{DATABASE}"))))
                .chain([("part", "files.public".to_string())])
                .collect::<Vec<_>>()
        )
    ))
    .await;
    let local = koios(format!(
        "{}{files}",
        views(
            &koios_connector_demo::TABLES
                .iter()
                .map(|t| (*t, "files.public".to_string()))
                .collect::<Vec<_>>()
        )
    ))
    .await;

    let fdw = fdw_peer(sf).await;
    let duck = duckdb::DuckDb::from_env(parquet.join("part.parquet"), DATABASE);
    let query_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/tpch-federated/queries");

    println!(
        "TPC-H SF {sf}: PostgreSQL (lineitem, orders, partsupp) + MariaDB (customer, nation, region, supplier) + Parquet (part)"
    );
    println!(
        "query   federated   local Parquet   ratio   rows   answer    DuckDB (answer, Koios ÷ DuckDB)   postgres_fdw+mysql_fdw"
    );
    let (mut total_duck, mut slower_than_duck, mut duck_equal) = (Duration::ZERO, 0, 0);
    let (mut total_fed, mut total_local, mut correct, mut count) =
        (Duration::ZERO, Duration::ZERO, 0, 0);
    let (mut total_fdw, mut faster_than_fdw) = (Duration::ZERO, 0);
    for (n, sql) in queries() {
        let (mut fed_times, mut local_times) = (Vec::new(), Vec::new());
        let (mut fed_rows, mut local_rows) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (t, rows) = run(&local, &sql).await;
            local_times.push(t);
            local_rows = rows;
            let (t, rows) = run(&federated, &sql).await;
            fed_times.push(t);
            fed_rows = rows;
        }
        let (fed, local) = (best(fed_times), best(local_times));
        // Rows tied under ORDER BY may come in another order.
        let same = fed_rows == local_rows || {
            let (mut a, mut b) = (fed_rows.clone(), local_rows.clone());
            a.sort();
            b.sort();
            a == b
        };
        count += 1;
        correct += same as usize;
        total_fed += fed;
        total_local += local;
        let duck_column = match &duck {
            Some(peer) => match peer.run(&query_dir.join(format!("q{n}.sql")), RUNS) {
                Ok((t, rows)) => {
                    total_duck += t;
                    slower_than_duck += (fed > t) as usize;
                    let equal = duckdb::same_answer(&local_rows, &rows);
                    duck_equal += equal as usize;
                    format!(
                        "{:>8.2} s {:<9} {:>5.2}x",
                        t.as_secs_f64(),
                        if equal { "ok" } else { "DIFFERENT" },
                        fed.as_secs_f64() / t.as_secs_f64().max(1e-9)
                    )
                }
                Err(e) => format!("failed: {}", e.lines().last().unwrap_or_default()),
            },
            None => "-".to_string(),
        };
        // The peer once: its answers are not compared (PostgreSQL rounds
        // averages to other scales), only timed.
        let peer = match &fdw {
            Some(client) => {
                let started = Instant::now();
                match client.simple_query(&sql).await {
                    Ok(_) => {
                        let t = started.elapsed();
                        total_fdw += t;
                        faster_than_fdw += (fed < t) as usize;
                        format!("{:>8.2} s", t.as_secs_f64())
                    }
                    Err(e)
                        if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
                    {
                        total_fdw += FDW_TIMEOUT;
                        faster_than_fdw += 1;
                        format!("> {} s (cancelled)", FDW_TIMEOUT.as_secs())
                    }
                    Err(e) => format!("failed: {e}"),
                }
            }
            None => "-".to_string(),
        };
        println!(
            "Q{n:<6} {:>8.2} s   {:>10.2} s   {:>5.2}x   {:>4}   {:<9} {duck_column:<32} {peer}",
            fed.as_secs_f64(),
            local.as_secs_f64(),
            fed.as_secs_f64() / local.as_secs_f64().max(1e-9),
            fed_rows.len(),
            if same { "ok" } else { "DIFFERENT" }
        );
        if !same {
            eprintln!(
                "Q{n}: federated {:?}\n     local {:?}",
                fed_rows.iter().take(3).collect::<Vec<_>>(),
                local_rows.iter().take(3).collect::<Vec<_>>()
            );
        }
    }
    println!(
        "sum     {:>8.2} s   {:>10.2} s   {:>5.2}x   {correct}/{count} answers equal to the local-Parquet reference",
        total_fed.as_secs_f64(),
        total_local.as_secs_f64(),
        total_fed.as_secs_f64() / total_local.as_secs_f64().max(1e-9),
    );
    if duck.is_some() {
        println!(
            "DuckDB 1.4 scanners, same split, same run: {:.2} s; Koios ÷ DuckDB {:.2}x (target <= 0.8x); Koios slower on {slower_than_duck}/{count} queries (target 0); DuckDB's answers equal to the reference on {duck_equal}/{count}",
            total_duck.as_secs_f64(),
            total_fed.as_secs_f64() / total_duck.as_secs_f64().max(1e-9)
        );
    } else {
        println!("DuckDB: not measured (set KOIOS_BENCH_DUCKDB_PYTHON)");
    }
    match fdw {
        Some(_) => println!(
            "postgres_fdw + mysql_fdw + file_fdw, same split, same run: at least {:.2} s (queries cancelled after {} s count as {} s); Koios faster on {faster_than_fdw}/{count} queries",
            total_fdw.as_secs_f64(),
            FDW_TIMEOUT.as_secs(),
            FDW_TIMEOUT.as_secs()
        ),
        None => {
            println!("postgres_fdw + mysql_fdw: not measured (install postgresql-15-mysql-fdw)")
        }
    }
    println!(
        "issue's figures for this kind of machine: postgres_fdw + mysql_fdw ~203 s (Q9 ~88 s); DuckDB 1.4 scanners ~58 s; target <= 45 s"
    );
    std::process::exit(if correct == count { 0 } else { 1 });
}
