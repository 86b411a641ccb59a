//! Helpers the benchmarks share: timing and an in-process Koios scan;
//! [`serve`]: a `koios serve` child and the servers' own clients.

pub mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use koios::engine::Engine;
use koios::session::{Output, Session};

// Koios in these benchmarks runs in-process: with the `koios` binary's
// allocator, as deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The fastest of several runs.
pub fn best(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.first().copied().unwrap_or_default()
}

/// Runs `SELECT * FROM <table>` in-process and consumes every record batch;
/// returns the elapsed time and the row count.
pub async fn koios_scan(engine: &Arc<Engine>, table: &str) -> (Duration, usize) {
    let session = Session::new(Arc::clone(engine), "koios");
    let started = Instant::now();
    let mut rows = 0;
    for output in session
        .run_sql(&format!("SELECT * FROM {table}"))
        .await
        .expect("scan plans")
    {
        if let Output::Rows { mut stream, .. } = output {
            while let Some(batch) = stream.next().await {
                rows += batch.expect("batch").num_rows();
            }
        }
    }
    (started.elapsed(), rows)
}

/// A client of the local PostgreSQL (127.0.0.1:5432, trust), the connection
/// driven in the background.
#[allow(dead_code)] // not every benchmark reads PostgreSQL directly
pub async fn pg_connect(database: &str) -> tokio_postgres::Client {
    pg_connect_at(5432, database).await
}

/// A client of `database` as `postgres` on 127.0.0.1:`port` (PostgreSQL or
/// a PgBouncer in front of it), the connection driven in the background.
#[allow(dead_code)]
pub async fn pg_connect_at(port: u16, database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("PostgreSQL on 127.0.0.1:{port} (run scripts/services.sh): {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A PgBouncer (Debian's `pgbouncer`) in front of the local PostgreSQL, on
/// its own port, for as long as this value lives: a middle tier that only
/// forwards the protocol, so its cost is that of one more hop.
#[allow(dead_code)] // only the PostgreSQL benchmarks use it
pub struct PgBouncer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub port: u16,
}

#[allow(dead_code)]
impl PgBouncer {
    /// Starts one for `database` (session pooling, trust authentication),
    /// or says why not (`apt-get install pgbouncer` provides it).
    pub fn start(database: &str) -> Result<PgBouncer, String> {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or("pgbouncer is not installed (apt-get install pgbouncer)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir =
            std::env::temp_dir().join(format!("koios-bench-pgbouncer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let config = dir.join("pgbouncer.ini");
        let users = dir.join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").map_err(|e| e.to_string())?;
        std::fs::write(
            &config,
            format!(
                "[databases]\n{database} = host=127.0.0.1 port=5432 dbname={database} user=postgres\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = session\n",
                users.display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut command = std::process::Command::new(binary);
        // PgBouncer refuses to run as root; it can switch to postgres.
        if is_root() {
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start pgbouncer: {e}"))?;
        let bouncer = PgBouncer { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("pgbouncer did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bouncer)
    }

    /// A client of `database` through this PgBouncer.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        pg_connect_at(self.port, database).await
    }
}

/// Whether this process runs as root (its real user id, from Linux's
/// `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false)
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
