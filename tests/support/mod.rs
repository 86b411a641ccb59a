//! Shared helpers for Koios's integration tests: an in-process server and
//! PostgreSQL-client adapters for the sqllogictest runner.

#![allow(dead_code)]

pub mod jobs;
pub mod pgtext;
pub mod private_my;
pub mod private_pg;
pub mod process;
pub mod slt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use koios::config::Config;
use koios::engine::Engine;
use koios::engine::metadata::MetadataLocation;
use koios::server::Server;

/// Runs a command a test's setup needs (initdb, openssl …) and fails the
/// test with its stderr if it does not succeed.
pub fn run(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The workspace root (where `sql-tests/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory for data the tests generate; kept between runs so the demo is
/// generated once per build directory.
pub fn test_data_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("koios-test-data")
}

/// A scratch PostgreSQL database on 127.0.0.1:5432, loaded with
/// `sql-tests/fixtures/postgres.sql`, dropped when this value is.
pub struct PgTestDatabase {
    pub name: String,
}

fn psql(database: &str, args: &[&str]) -> Result<(), String> {
    let output = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-X",
            "-q",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-d", database])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl PgTestDatabase {
    pub fn create() -> PgTestDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("koios_test_{}_{nanos}", std::process::id());
        psql("postgres", &["-c", &format!("CREATE DATABASE {name}")]).unwrap_or_else(|e| {
            panic!("cannot create a PostgreSQL test database (run scripts/services.sh): {e}")
        });
        let database = PgTestDatabase { name };
        let fixture = workspace_root().join("sql-tests/fixtures/postgres.sql");
        let fixture = fixture.display().to_string();
        psql(&database.name, &["-f", &fixture])
            .unwrap_or_else(|e| panic!("loading {fixture}: {e}"));
        database
    }

    /// Runs SQL directly on the test database (as another client would).
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        psql(&self.name, &["-c", sql])
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = psql("postgres", &["-c", &drop]);
    }
}

/// A scratch MariaDB/MySQL database on 127.0.0.1:3306, loaded with
/// `sql-tests/fixtures/mysql.sql`, dropped when this value is.
pub struct MyTestDatabase {
    pub name: String,
}

fn mariadb(database: Option<&str>, sql: &str) -> Result<(), String> {
    use std::io::Write;
    let mut command = std::process::Command::new("mariadb");
    command.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"]);
    if let Some(database) = database {
        command.arg(database);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the mariadb client: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(sql.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl MyTestDatabase {
    pub fn create() -> MyTestDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("koios_test_{}_{nanos}", std::process::id());
        mariadb(None, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!("cannot create a MariaDB test database (run scripts/services.sh): {e}")
        });
        let database = MyTestDatabase { name };
        let fixture = workspace_root().join("sql-tests/fixtures/mysql.sql");
        let sql = std::fs::read_to_string(&fixture).expect("mysql fixture");
        mariadb(Some(&database.name), &sql)
            .unwrap_or_else(|e| panic!("loading {}: {e}", fixture.display()));
        database
    }

    /// Runs SQL directly on the test database.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        mariadb(Some(&self.name), sql)
    }
}

impl Drop for MyTestDatabase {
    fn drop(&mut self) {
        let _ = mariadb(None, &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// The MongoDB the tests use: `KOIOS_TEST_MONGODB_URL` (a genuine MongoDB),
/// else the wire-compatible server `scripts/services.sh` starts on 27017.
pub fn mongodb_url() -> String {
    std::env::var("KOIOS_TEST_MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into())
}

/// Runs `work` with a MongoDB client on a thread of its own, so the sync
/// helpers here can be used from inside the tests' async runtimes.
pub fn with_mongo<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce(mongodb::Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = mongodb::Client::with_uri_str(mongodb_url())
                .await
                .expect("a valid KOIOS_TEST_MONGODB_URL");
            work(client).await
        })
    })
    .join()
    .expect("MongoDB helper thread")
}

/// A scratch MongoDB database loaded with `sql-tests/fixtures/mongodb.json`
/// (`{"collection": [extended JSON documents]}`), dropped when this value is.
pub struct MongoTestDatabase {
    pub name: String,
}

impl MongoTestDatabase {
    pub fn create() -> MongoTestDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("koios_test_{}_{nanos}", std::process::id());
        let fixture = workspace_root().join("sql-tests/fixtures/mongodb.json");
        let text = std::fs::read_to_string(&fixture).expect("mongodb fixture");
        let collections: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).expect("the MongoDB fixture is a JSON object");
        let database = name.clone();
        with_mongo(move |client| async move {
            let db = client.database(&database);
            for (collection, documents) in collections {
                let documents: Vec<mongodb::bson::Document> = documents
                    .as_array()
                    .expect("a list of documents")
                    .iter()
                    .map(|d| {
                        match mongodb::bson::Bson::try_from(d.clone()).expect("extended JSON") {
                            mongodb::bson::Bson::Document(doc) => doc,
                            other => panic!("not a document: {other}"),
                        }
                    })
                    .collect();
                db.collection::<mongodb::bson::Document>(&collection)
                    .insert_many(documents)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("cannot load the MongoDB fixture (run scripts/services.sh): {e}")
                    });
            }
        });
        MongoTestDatabase { name }
    }
}

impl Drop for MongoTestDatabase {
    fn drop(&mut self) {
        let database = self.name.clone();
        with_mongo(move |client| async move {
            let _ = client.database(&database).drop().await;
        });
    }
}

/// The scratch databases of one test configuration.
pub struct TestDatabases {
    pub pg: PgTestDatabase,
    pub my: MyTestDatabase,
    pub mongo: MongoTestDatabase,
    pub metadata: ScratchMetadata,
}

/// A metadata-store file of one test server, removed (with its WAL files)
/// when this value is dropped.
pub struct ScratchMetadata {
    pub path: PathBuf,
}

impl ScratchMetadata {
    pub fn create() -> ScratchMetadata {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = test_data_dir().join("metadata");
        let _ = std::fs::create_dir_all(&dir);
        ScratchMetadata {
            path: dir.join(format!("koios-{}-{nanos}.db", std::process::id())),
        }
    }
}

impl Drop for ScratchMetadata {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `sql-tests/koios-test.toml` with the test data directory and fresh
/// PostgreSQL and MariaDB databases filled in; keep the databases alive while
/// the configuration is in use.
pub fn test_config() -> (Config, TestDatabases) {
    let data_dir = test_data_dir();
    let database = PgTestDatabase::create();
    let my = MyTestDatabase::create();
    let mongo = MongoTestDatabase::create();
    let metadata = ScratchMetadata::create();
    let config_path = workspace_root().join("sql-tests/koios-test.toml");
    let env = |name: &str| match name {
        "KOIOS_TEST_DATA_DIR" => Some(data_dir.display().to_string()),
        "KOIOS_TEST_PG_DATABASE" => Some(database.name.clone()),
        "KOIOS_TEST_MY_DATABASE" => Some(my.name.clone()),
        "KOIOS_TEST_MONGO_DATABASE" => Some(mongo.name.clone()),
        "KOIOS_TEST_MONGODB_URL" => Some(mongodb_url()),
        "KOIOS_TEST_METADATA" => Some(metadata.path.display().to_string()),
        other => std::env::var(other).ok(),
    };
    let text =
        std::fs::read_to_string(&config_path).expect("sql-tests/koios-test.toml is readable");
    let config = Config::parse(&text, &config_path, &env).expect("the test configuration is valid");
    (
        config,
        TestDatabases {
            pg: database,
            my,
            mongo,
            metadata,
        },
    )
}

/// The server's message for a statement that must fail.
pub async fn query_error(client: &tokio_postgres::Client, sql: &str) -> String {
    let err = client
        .simple_query(sql)
        .await
        .expect_err("the statement fails");
    err.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| err.to_string())
}

/// The one row `sql` returns; a failure panics with the server's message.
pub async fn query_row(client: &tokio_postgres::Client, sql: &str) -> tokio_postgres::Row {
    client.query_one(sql, &[]).await.unwrap_or_else(|e| {
        panic!(
            "{sql}: {e} {:?}",
            e.as_db_error().map(|d| d.message().to_string())
        )
    })
}

/// Runs `sql` and cancels it from another task (CancelRequest) after
/// 700 ms; asserts Koios answers with SQLSTATE 57014. Returns when the
/// query started.
pub async fn cancel_mid_query(client: &tokio_postgres::Client, sql: &str) -> std::time::Instant {
    let cancel = client.cancel_token();
    let started = std::time::Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client
        .simple_query(sql)
        .await
        .expect_err("the query is cancelled");
    canceller
        .await
        .expect("cancel task")
        .expect("cancel request sent");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    started
}

/// A loopback port nothing listens on (for servers the tests start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something listens on `port`; `why` says what failed if not.
pub fn wait_for_port(port: u16, timeout: std::time::Duration, why: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", why());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A Koios server running inside the test process on an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub pg: Option<PgTestDatabase>,
    pub my: Option<MyTestDatabase>,
    pub mongo: Option<MongoTestDatabase>,
    /// The server's own metadata store, when the configuration named none.
    pub metadata: Option<ScratchMetadata>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// A server with the test configuration and its own PostgreSQL database.
    pub async fn start_test() -> TestServer {
        TestServer::start_test_with(|_| {}).await
    }

    /// [`TestServer::start_test`] with the test configuration changed first.
    pub async fn start_test_with(change: impl FnOnce(&mut Config)) -> TestServer {
        let (mut config, databases) = test_config();
        change(&mut config);
        let mut server = TestServer::start(config).await;
        server.pg = Some(databases.pg);
        server.my = Some(databases.my);
        server.mongo = Some(databases.mongo);
        server.metadata = Some(databases.metadata);
        server
    }

    /// A server for a configuration written inline; `env` expands `${VAR}`.
    pub async fn start_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> TestServer {
        let config = Config::parse(text, Path::new("inline.toml"), env).expect("valid test config");
        TestServer::start(config).await
    }

    /// A server for `config`; unless it names a metadata store, the server
    /// gets a scratch one (tests never write to the user's data folder).
    pub async fn start(mut config: Config) -> TestServer {
        let mut metadata = None;
        if config.server.metadata == MetadataLocation::default_in(&config.server.data_dir) {
            let scratch = ScratchMetadata::create();
            config.server.metadata = MetadataLocation::Sqlite(scratch.path.clone());
            metadata = Some(scratch);
        }
        let engine = Engine::start(&config).await.expect("engine starts");
        let server = Server::bind(Arc::clone(&engine), "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("binds an ephemeral port");
        let addr = server.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let _ = server.run().await;
        });
        TestServer {
            addr,
            engine,
            pg: None,
            my: None,
            mongo: None,
            metadata,
            task,
        }
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

/// A superuser connection to the local PostgreSQL (to watch `pg_stat_activity`).
pub async fn postgres_admin() -> tokio_postgres::Client {
    postgres_client("postgres").await
}

/// A superuser connection to `database` on the local PostgreSQL: what
/// PostgreSQL's own client sees, to check what Koios wrote.
pub async fn postgres_client(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connects to PostgreSQL");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The output of `sql` run by MariaDB's own client (`-N -B`: tab-separated
/// rows, no header) in `database`, if given; panics with its error.
pub fn mariadb_output(database: Option<&str>, sql: &str) -> String {
    let output = std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"])
        .args(database)
        .args(["-e", sql])
        .output()
        .expect("the mariadb client runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits (up to 10 s) until no `SELECT … slow …` statement Koios sent (a
/// query or a `COPY (SELECT …)`) is still active in `database`: a cancelled
/// or timed-out query must stop on the server too.
pub async fn wait_until_remote_scans_stop(database: &str) {
    let admin = postgres_admin().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let active: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
                 AND query ~ '^(COPY \\()?SELECT.*slow' AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if active == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the remote statement is still running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Two clients sharing a source's one pooled connection: one abandons scans
/// early (LIMIT over a volatile filter, so neither is pushed) on the views
/// `many` (its statement has ended, the end of its result unread) and
/// `streaming` (still sending rows), while the other runs `SELECT count(*)`
/// over the view `nap` (one row, a short pause). The cancel of an abandoned
/// statement must never stop the other client's statement that the
/// connection runs next. `schema` qualifies the views (`pg.public`).
pub async fn abandon_scans_beside_another_client(server: &TestServer, schema: &str) {
    let abandoning = server.connect("koios").await;
    let counting = server.connect("koios").await;
    // One partition: no repartitioning task reads the scan to its end
    // after the LIMIT is met.
    abandoning
        .batch_execute("SET datafusion.execution.target_partitions = 1")
        .await
        .expect("one partition");
    let abandon = async {
        for round in 0..40 {
            let view = if round % 2 == 0 { "many" } else { "streaming" };
            let first = abandoning
                .query(
                    &format!("SELECT n FROM {schema}.{view} WHERE random() < 2 LIMIT 1"),
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("round {round}: abandoned scan: {e}"));
            assert_eq!(first.len(), 1);
        }
    };
    let count = async {
        for round in 0..40 {
            let row = counting
                .query_one(&format!("SELECT count(*) FROM {schema}.nap"), &[])
                .await
                .unwrap_or_else(|e| panic!("round {round}: the next statement: {e}"));
            assert_eq!(row.get::<_, i64>(0), 1);
        }
    };
    tokio::join!(abandon, count);
}

/// A startup packet (protocol 3.0) for `user` and `database`, as a raw
/// client sends it.
pub fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Reads backend messages until one of type `last` arrives: each one's
/// type byte and body.
pub fn read_messages_until(socket: &mut std::net::TcpStream, last: u8) -> Vec<(u8, Vec<u8>)> {
    use std::io::Read;
    let mut messages = Vec::new();
    loop {
        let mut header = [0u8; 5];
        socket.read_exact(&mut header).expect("a message header");
        let length = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let mut body = vec![0u8; (length as usize).saturating_sub(4)];
        socket.read_exact(&mut body).expect("a message body");
        messages.push((header[0], body));
        if header[0] == last {
            return messages;
        }
    }
}

/// One frontend message: its type byte, length and body.
pub fn frontend_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut message = vec![tag];
    message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    message.extend_from_slice(body);
    message
}

/// What a session answers to `sql`, each batch pretty-printed (for
/// tests that compare answers or read EXPLAIN output).
pub async fn session_rows(session: &koios::session::Session, sql: &str) -> Vec<String> {
    use futures::StreamExt;
    let mut rows = Vec::new();
    for output in session.run_sql(sql).await.expect("runs") {
        if let koios::session::Output::Rows { mut stream, .. } = output {
            while let Some(batch) = stream.next().await {
                let batch = batch.expect("batch");
                let text = datafusion::arrow::util::pretty::pretty_format_batches(&[batch])
                    .expect("formats")
                    .to_string();
                rows.push(text);
            }
        }
    }
    rows
}

/// Remote statements Koios sent to `source` so far (its metric).
pub fn remote_statements_to(server: &TestServer, source: &str) -> u64 {
    let metrics = server
        .engine
        .metrics()
        .render(&koios::engine::metrics::Scraped {
            memory_reserved: 0,
            spilled: 0,
            pools: Vec::new(),
            jobs: Vec::new(),
        });
    let name = format!("koios_source_remote_statements_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}
