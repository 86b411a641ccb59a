//! Shared helpers for Koios's integration tests: an in-process server and
//! PostgreSQL-client adapters for the sqllogictest runner.

#![allow(dead_code)]

pub mod pgtext;
pub mod slt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use koios::config::Config;
use koios::engine::Engine;
use koios::server::Server;

/// The workspace root (where `sql-tests/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory for data the tests generate; kept between runs so the demo is
/// generated once per build directory.
pub fn test_data_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("koios-test-data")
}

/// Loads `sql-tests/koios-test.toml` with the test data directory filled in.
pub fn test_config() -> Config {
    // SAFETY-free: only this test process reads the variable, before any thread uses env.
    let data_dir = test_data_dir();
    let config_path = workspace_root().join("sql-tests/koios-test.toml");
    let env = |name: &str| match name {
        "KOIOS_TEST_DATA_DIR" => Some(data_dir.display().to_string()),
        other => std::env::var(other).ok(),
    };
    let text =
        std::fs::read_to_string(&config_path).expect("sql-tests/koios-test.toml is readable");
    Config::parse(&text, &config_path, &env).expect("the test configuration is valid")
}

/// A Koios server running inside the test process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let engine = Engine::start(&config).await.expect("engine starts");
        let server = Server::bind(Arc::clone(&engine), "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("binds an ephemeral port");
        let addr = server.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let _ = server.run().await;
        });
        TestServer { addr, engine, task }
    }

    /// A tokio-postgres connection string for `database`.
    pub fn conn_string(&self, database: &str) -> String {
        format!(
            "host={} port={} user=koios dbname={database} application_name=koios-tests",
            self.addr.ip(),
            self.addr.port()
        )
    }

    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_string(database), tokio_postgres::NoTls)
                .await
                .expect("connects to Koios");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
