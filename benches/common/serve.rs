//! A `koios serve` child process of this build and the servers' own
//! command-line clients, for benchmarks that measure Koios as deployed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `koios serve` of this build, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(config: &str, dir: &std::path::Path) -> Server {
        let path = dir.join("koios-bench.toml");
        std::fs::write(&path, config).expect("writes the configuration");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_koios"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("koios serve starts");
        let deadline = Instant::now() + Duration::from_secs(600);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "koios serve did not listen");
            std::thread::sleep(Duration::from_millis(200));
        }
        Server { child, port }
    }

    /// Forgets the peak resident memory so far.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("resets VmHWM (Linux)");
    }

    /// Peak resident memory since the last reset, in MiB.
    pub fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reads /proc/PID/status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kib / 1024.0
    }
}

pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn mariadb(sql: &str) {
    run(
        "mariadb",
        &[
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--local-infile=1",
            "-e",
            sql,
        ],
    );
}

pub fn psql(database: &str, sql: &str) {
    run(
        "psql",
        &[
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
    );
}

/// Drops and creates `pg` databases in the local PostgreSQL and `my` ones
/// in the local MariaDB.
pub fn fresh_databases(pg: &[&str], my: &[&str]) {
    drop_databases(pg, my);
    for database in pg {
        psql("postgres", &format!("CREATE DATABASE {database}"));
    }
    for database in my {
        mariadb(&format!("CREATE DATABASE {database}"));
    }
}

/// Drops the benchmark's databases again.
pub fn drop_databases(pg: &[&str], my: &[&str]) {
    for database in pg {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        );
    }
    for database in my {
        mariadb(&format!("DROP DATABASE IF EXISTS {database}"));
    }
}
