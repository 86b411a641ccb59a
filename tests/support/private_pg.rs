//! A private PostgreSQL cluster (initdb) a test may stop and start, with
//! SCRAM passwords (the machine's own server trusts loopback connections).

use super::run;

/// A throwaway PostgreSQL cluster that demands SCRAM passwords: the machine's
/// own server trusts loopback connections, so a wrong password can only be
/// tested against a server of our own, and only a server of our own may be
/// stopped and started again. Stopped and removed on drop.
pub struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    pub const PASSWORD: &'static str = "the-right-one";

    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(format!(
            "koios-pwpg-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        std::fs::write(dir.join("pw"), Self::PASSWORD).expect("password file");
        let cluster = Self {
            bin,
            dir,
            port: super::free_port(),
        };
        // PostgreSQL refuses to run as root: hand the directory to `postgres`.
        if Self::as_root() {
            run("chown", &["-R", "postgres:postgres", &cluster.path("")]);
        }
        cluster.run_pg(
            "initdb",
            &[
                "-D",
                &cluster.path("data"),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", cluster.path("pw")),
                "-E",
                "UTF8",
            ],
        );
        cluster.start_server();
        cluster
    }

    /// A superuser connection with the password.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname=postgres",
                self.port,
                Self::PASSWORD
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("the private cluster accepts its password");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again, after [`PrivatePostgres::stop`]).
    pub fn start_server(&self) {
        self.run_pg(
            "pg_ctl",
            &[
                "-D",
                &self.path("data"),
                "-l",
                &self.path("log"),
                "-w",
                "-o",
                &format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    self.port,
                    self.path("")
                ),
                "start",
            ],
        );
    }

    /// Stops the server at once (clients are disconnected).
    pub fn stop(&self) {
        self.run_pg(
            "pg_ctl",
            &["-D", &self.path("data"), "-m", "fast", "-w", "stop"],
        );
    }

    /// Kills the server (immediate shutdown: no checkpoint, as a crash).
    pub fn kill(&self) {
        self.run_pg(
            "pg_ctl",
            &["-D", &self.path("data"), "-m", "immediate", "-w", "stop"],
        );
    }

    fn as_root() -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// Runs a PostgreSQL tool, as user `postgres` when we are root.
    fn pg_command(&self, tool: &str, args: &[&str]) -> (String, Vec<String>) {
        let tool = self.bin.join(tool).to_string_lossy().into_owned();
        let mut full: Vec<String> = if Self::as_root() {
            vec!["-u".into(), "postgres".into(), "--".into(), tool]
        } else {
            vec![tool]
        };
        full.extend(args.iter().map(|a| a.to_string()));
        if Self::as_root() {
            ("runuser".into(), full)
        } else {
            let program = full.remove(0);
            (program, full)
        }
    }

    fn run_pg(&self, tool: &str, args: &[&str]) {
        let (program, args) = self.pg_command(tool, args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&program, &args);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.path("data");
        let (program, args) = self.pg_command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
        let _ = std::process::Command::new(program).args(args).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
