//! MariaDB/MySQL scan benchmark (issue: MySQL connector).
//!
//! Loads about 1 M rows of TPC-H `lineitem` (scale factor 1/6) into the local
//! MariaDB database `koios_bench` once, then measures in one run:
//!
//! * (a) `mariadb --quick -e 'SELECT * FROM lineitem' > /dev/null` — the
//!   command-line client streaming every row, the baseline;
//! * (b) Koios scanning the same table into Arrow record batches, with 1 and
//!   2 partitions.
//!
//! Run: `cargo bench --bench mysql_scan` (MariaDB on 127.0.0.1:3306).

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::time::{Duration, Instant};

use common::{best, koios_scan};

use koios::config::Config;
use koios::engine::Engine;

const DATABASE: &str = "koios_bench";
const SCALE_FACTOR: f64 = 1.0 / 6.0;
const RUNS: usize = 3;

fn mariadb(args: &[&str]) -> std::process::Output {
    std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"])
        .args(args)
        .output()
        .expect("the mariadb client runs (scripts/services.sh)")
}

fn load() -> u64 {
    let expected = tpchgen::generators::LineItemGenerator::new(SCALE_FACTOR, 1, 1)
        .iter()
        .count() as u64;
    let counted = mariadb(&[
        "-N",
        "-B",
        "-e",
        &format!("SELECT count(*) FROM {DATABASE}.lineitem"),
    ]);
    if String::from_utf8_lossy(&counted.stdout).trim() == expected.to_string() {
        return expected;
    }
    eprintln!("loading {expected} lineitem rows into MariaDB {DATABASE} ...");
    let path = std::env::temp_dir().join("koios-bench-lineitem.tbl");
    let mut data = String::with_capacity(150 * expected as usize);
    for row in tpchgen::generators::LineItemGenerator::new(SCALE_FACTOR, 1, 1).iter() {
        data.push_str(row.to_string().trim_end_matches('|'));
        data.push('\n');
    }
    std::fs::write(&path, data).expect("writes the data file");
    let script = format!(
        "CREATE DATABASE IF NOT EXISTS {DATABASE}; USE {DATABASE}; DROP TABLE IF EXISTS lineitem;
         CREATE TABLE lineitem (
           l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
           l_linenumber int NOT NULL, l_quantity decimal(15,2) NOT NULL, l_extendedprice decimal(15,2) NOT NULL,
           l_discount decimal(15,2) NOT NULL, l_tax decimal(15,2) NOT NULL, l_returnflag char(1) NOT NULL,
           l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
           l_receiptdate date NOT NULL, l_shipinstruct varchar(25) NOT NULL, l_shipmode varchar(10) NOT NULL,
           l_comment varchar(44) NOT NULL, id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY);
         LOAD DATA LOCAL INFILE '{}' INTO TABLE lineitem FIELDS TERMINATED BY '|'
           (l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax,
            l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, l_comment);
         ANALYZE TABLE lineitem;",
        path.display()
    );
    let out = mariadb(&["--local-infile=1", "-e", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(path);
    expected
}

fn client_quick() -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "--quick",
            "-e",
        ])
        .arg(format!("SELECT * FROM {DATABASE}.lineitem"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("mariadb runs");
    assert!(status.success());
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let rows = load();
    let config = format!(
        r#"
[[source]]
name = "my1"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{DATABASE}"
split_count = 1

[[source]]
name = "my2"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{DATABASE}"
split_count = 2
"#
    );
    let config =
        Config::parse(&config, std::path::Path::new("bench.toml"), &|_| None).expect("config");
    let engine = Engine::start(&config).await.expect("engine");
    let baseline = best((0..RUNS).map(|_| client_quick()).collect());
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (t, n) = koios_scan(&engine, &format!("my1.{DATABASE}.lineitem")).await;
        assert_eq!(n as u64, rows);
        one.push(t);
        let (t, n) = koios_scan(&engine, &format!("my2.{DATABASE}.lineitem")).await;
        assert_eq!(n as u64, rows);
        two.push(t);
    }
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("lineitem SF 1/6 in MariaDB: {rows} rows, best of {RUNS} runs");
    println!("| measurement | time | rows/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| (a) mariadb --quick to /dev/null | {:.2} s | {:.0} | 1.00 (baseline) |",
        baseline.as_secs_f64(),
        rate(baseline)
    );
    for (name, t) in [
        ("(b) Koios scan into Arrow, 1 partition", best(one)),
        ("(b) Koios scan into Arrow, 2 partitions", best(two)),
    ] {
        println!(
            "| {name} | {:.2} s | {:.0} | {:.2}× the client's rate |",
            t.as_secs_f64(),
            rate(t),
            rate(t) / rate(baseline)
        );
    }
}
