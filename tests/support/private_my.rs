//! A private MariaDB server (its own data directory and port) a test may
//! kill and start again; root over TCP without a password.

use std::sync::Mutex;
use std::time::Duration;

use super::run;

/// A throwaway `mariadbd`; killed and removed on drop.
pub struct PrivateMariaDb {
    dir: std::path::PathBuf,
    port: u16,
    child: Mutex<Option<std::process::Child>>,
}

impl PrivateMariaDb {
    /// Installs a data directory, starts the server and creates `database`.
    pub fn start(database: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "koios-privmy-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server directory");
        let server = Self {
            port: super::free_port(),
            dir,
            child: Mutex::new(None),
        };
        run(
            "mariadb-install-db",
            &[
                "--no-defaults",
                &format!("--datadir={}", server.path("data")),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
        );
        server.start_server();
        server.sql(&format!("CREATE DATABASE {database}"));
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again, after [`PrivateMariaDb::kill`]) and waits
    /// until it accepts connections.
    pub fn start_server(&self) {
        let child = std::process::Command::new("mariadbd")
            .args([
                "--no-defaults".to_string(),
                format!("--datadir={}", self.path("data")),
                format!("--socket={}", self.path("sock")),
                format!("--port={}", self.port),
                "--bind-address=127.0.0.1".to_string(),
                "--user=root".to_string(),
                "--skip-log-bin".to_string(),
                "--innodb-flush-log-at-trx-commit=1".to_string(),
                format!("--log-error={}", self.path("error.log")),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        super::wait_for_port(self.port, Duration::from_secs(60), || {
            format!(
                "the private MariaDB did not start: {}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            )
        });
        // The port opens before the server takes queries (crash recovery).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private MariaDB does not answer queries"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server at once (SIGKILL: a crash, not a shutdown).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs SQL through the `mariadb` client on the server's socket; its
    /// output (tab-separated, no headers).
    pub fn sql(&self, sql: &str) -> String {
        let output = std::process::Command::new("mariadb")
            .args([
                &format!("--socket={}", self.path("sock")),
                "-uroot",
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .output()
            .expect("runs the mariadb client");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn answers(&self) -> bool {
        std::process::Command::new("mariadb")
            .args([
                &format!("--socket={}", self.path("sock")),
                "-uroot",
                "-e",
                "SELECT 1",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
