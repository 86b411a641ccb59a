//! The `koios` binary serving a configuration file, as a process a test
//! can kill (SIGKILL) and start again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Koios server process.
pub struct KoiosProcess {
    pub config: PathBuf,
    /// Its standard error, appended to across restarts.
    pub log: PathBuf,
    pub port: u16,
    /// Environment variables it gets (secrets the configuration names).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl KoiosProcess {
    pub fn new(config: PathBuf, log: PathBuf, port: u16, env: Vec<(String, String)>) -> Self {
        KoiosProcess {
            config,
            log,
            port,
            env,
            child: None,
        }
    }

    /// Starts it and waits (up to a minute) until it listens.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_koios"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("koios starts");
        self.child = Some(child);
        super::wait_for_port(self.port, Duration::from_secs(60), || {
            format!(
                "Koios did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
    }

    /// Kills it at once (no shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn conn_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=koios dbname=koios connect_timeout=2",
            self.port
        )
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for KoiosProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A connection to `conn`, retried until `until`.
pub async fn connect_until(conn: &str, until: Instant) -> Option<tokio_postgres::Client> {
    while Instant::now() < until {
        if let Ok((client, connection)) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            return Some(client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A `koios` process (not started) in a fresh scratch folder `name` under
/// the test target's temporary directory, with the local PostgreSQL
/// database `pg` and MariaDB database `my` as sources `pg` and `my`, and
/// that folder (remove it when done).
pub fn with_pg_and_my(name: &str, pg: &str, my: &str) -> (KoiosProcess, std::path::PathBuf) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let port = super::free_port();
    let config = dir.join("koios.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = ""
data_dir = "{data}"

[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{pg}"

[[source]]
name = "my"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{my}"
"#,
            data = dir.join("data").display(),
        ),
    )
    .expect("writes the configuration");
    let koios = KoiosProcess::new(config, dir.join("koios.log"), port, Vec::new());
    (koios, dir)
}
