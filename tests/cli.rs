//! The `koios` command as a user runs it: configuration errors, `koios query`,
//! and a source that is down at start.

mod support;

use std::process::Command;

use support::test_data_dir;

fn koios() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_koios"));
    command
        .env("KOIOS_DATA_DIR", test_data_dir())
        .env("RUST_LOG", "warn");
    command
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes `config` to a fresh file and runs `koios <command> --config FILE [sql]`.
fn run_with_config(
    name: &str,
    config: &str,
    command: &str,
    sql: Option<&str>,
) -> (Option<i32>, String, String) {
    let path = scratch_dir(name).join("koios.toml");
    std::fs::write(&path, config).expect("writes the config");
    let mut cmd = koios();
    cmd.arg(command).arg("--config").arg(&path);
    if let Some(sql) = sql {
        cmd.arg(sql);
    }
    let output = cmd.output().expect("runs koios");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_name_file_line_and_key() {
    let config = "[server]\nlisten = \"127.0.0.1:5433\"\nbatch_size = -3\n";
    let (code, _, stderr) = run_with_config("bad-batch", config, "serve", None);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("bad-batch") && stderr.contains("koios.toml:3"),
        "{stderr}"
    );
    assert!(stderr.contains("server.batch_size"), "{stderr}");

    let config =
        "[[source]]\nname = \"x\"\nkind = \"files\"\nurl = \"${KOIOS_TEST_UNSET_VARIABLE}\"\n";
    let (code, _, stderr) = run_with_config("unset-env", config, "query", Some("SELECT 1"));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("KOIOS_TEST_UNSET_VARIABLE is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":4:") && stderr.contains("source.url"),
        "{stderr}"
    );

    let config = "[[source]]\nname = \"x\"\nkind = \"warp_drive\"\nurl = \"/tmp\"\n";
    let (code, _, stderr) = run_with_config("bad-kind", config, "query", Some("SELECT 1"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown kind 'warp_drive'"), "{stderr}");

    // A connector's own options: a mistyped key or a wrong value stops the
    // start, naming the file, the line and the key.
    let config = "[[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://127.0.0.1:1/x\"\n\
                  pool_size = 4\nsplit_cuont = 2\n";
    let (code, _, stderr) = run_with_config("bad-option", config, "query", Some("SELECT 1"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("koios.toml:6") && stderr.contains("split_cuont"),
        "{stderr}"
    );
    assert!(
        stderr.contains("split_count"),
        "lists the known keys: {stderr}"
    );
    let config =
        "[[source]]\nname = \"lake\"\nkind = \"files\"\nurl = \"/tmp\"\ncsv_has_header = \"yes\"\n";
    let (code, _, stderr) = run_with_config("bad-value", config, "query", Some("SELECT 1"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("koios.toml:5") && stderr.contains("csv_has_header"),
        "{stderr}"
    );
}

#[test]
fn query_prints_like_psql() {
    let output = koios()
        .args(["query", "--demo-scale", "0.01", "-d", "demo"])
        .arg("SELECT n_name, count(*) FROM nation JOIN region ON n_regionkey = r_regionkey WHERE r_name = 'EUROPE' GROUP BY n_name ORDER BY n_name LIMIT 2")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        " n_name  | count\n---------+-------\n FRANCE  |     1\n GERMANY |     1\n(2 rows)\n"
    );
}

#[test]
fn a_source_down_at_start_does_not_stop_the_others() {
    let dir = scratch_dir("downsource");
    std::fs::write(dir.join("numbers.csv"), "n,word\n1,one\n2,two\n3,three\n").expect("csv");
    let config = format!(
        r#"
startup_sql = ["CREATE VIEW koios.public.big AS SELECT * FROM local.public.numbers WHERE n > 1"]

[[source]]
name = "local"
kind = "files"
url = "{}"

[[source]]
name = "gone"
kind = "files"
url = "./does-not-exist"
"#,
        dir.display()
    );
    let sql = "SELECT word FROM big ORDER BY n";
    let (code, stdout, stderr) = run_with_config("downsource", &config, "query", Some(sql));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, " word\n-------\n two\n three\n(2 rows)\n");
    assert!(
        stderr.contains("source unavailable") && stderr.contains("gone"),
        "{stderr}"
    );

    let sql = "SELECT * FROM gone.public.t";
    let (code, _, stderr) = run_with_config("downsource", &config, "query", Some(sql));
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("source 'gone' is unavailable") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

/// `koios serve` in the background with its log in a file; killed on drop.
struct Served {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Served {
    fn start(name: &str, config: &str) -> Served {
        let dir = scratch_dir(name);
        let path = dir.join("koios.toml");
        std::fs::write(&path, config).expect("writes the config");
        let port = support::free_port();
        let log = dir.join("server.log");
        let child = koios()
            .env("RUST_LOG", "debug")
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::fs::File::create(dir.join("server.out")).expect("out file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("starts koios serve");
        let shown = log.clone();
        support::wait_for_port(port, std::time::Duration::from_secs(120), move || {
            std::fs::read_to_string(&shown).unwrap_or_default()
        });
        Served { child, port, log }
    }

    /// Runs `koios <args> --server 127.0.0.1:PORT`.
    fn client(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = koios()
            .args(args)
            .arg("--server")
            .arg(format!("127.0.0.1:{}", self.port))
            .env_remove("PGPASSWORD")
            .env_remove("PGUSER")
            .output()
            .expect("runs koios");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sources_and_status_manage_a_running_server() {
    let pg = support::PgTestDatabase::create();
    let dir = scratch_dir("manage");
    let config = format!(
        "[server]\nmetadata = \"{}\"\nhealth_interval = \"1s\"\nadmin_listen = \"\"\n",
        dir.join("koios.db").display()
    );
    let served = Served::start("manage", &config);
    // A password in the URL (PostgreSQL here trusts loopback and ignores
    // it): it must never come back, nor reach the server's log.
    let secret = "cli-secret-pw";
    let url = format!("postgres://postgres:{secret}@127.0.0.1:5432/{}", pg.name);
    let (code, stdout, stderr) = served.client(&[
        "sources",
        "add",
        "pg_cli",
        "--kind",
        "postgres",
        "--url",
        &url,
        "-o",
        "pool_size=2",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "CREATE SOURCE pg_cli\n");

    let (code, stdout, stderr) = served.client(&["sources", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("  name  |   kind   | origin |"),
        "{stdout}"
    );
    assert!(
        lines[2]
            .starts_with(" pg_cli | postgres | sql    | postgres://postgres:***@127.0.0.1:5432/"),
        "{stdout}"
    );
    assert!(lines[2].contains("| ready "), "{stdout}");
    assert_eq!(lines.last(), Some(&"(1 row)"));

    let (code, stdout, stderr) = served.client(&["status"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("uptime_seconds"), "{stdout}");
    assert!(stdout.contains(" pg_cli "), "{stdout}");

    let (code, _, stderr) = served.client(&[
        "sources", "add", "pg_cli", "--kind", "postgres", "--url", &url,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("source 'pg_cli' already exists") && stderr.contains("42710"),
        "{stderr}"
    );
    let (code, stdout, stderr) = served.client(&["sources", "refresh", "pg_cli"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "REFRESH SOURCE pg_cli\n"),
        "{stderr}"
    );
    let (code, stdout, stderr) = served.client(&["sources", "drop", "pg_cli"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "DROP SOURCE pg_cli\n"),
        "{stderr}"
    );
    let (_, stdout, _) = served.client(&["sources", "list"]);
    assert!(stdout.ends_with("(0 rows)\n"), "{stdout}");

    let log = std::fs::read_to_string(&served.log).expect("server log");
    assert!(log.contains("source created"), "{log}");
    assert!(
        !log.contains(secret),
        "the password reached the log:\n{log}"
    );
}

#[test]
fn jobs_lists_and_watches_a_migration_until_it_ends() {
    let pg = support::PgTestDatabase::create();
    let my = support::MyTestDatabase::create();
    my.execute(
        "CREATE TABLE moved (id bigint PRIMARY KEY, v bigint); \
         INSERT INTO moved SELECT seq, seq % 97 FROM seq_1_to_200000",
    )
    .expect("fills the source");
    let dir = scratch_dir("jobs");
    let config = format!(
        "[server]\nmetadata = \"{}\"\nadmin_listen = \"\"\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n\n\
         [[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{}\"\n",
        dir.join("koios.db").display(),
        pg.name,
        my.name
    );
    let served = Served::start("jobs", &config);
    let (code, stdout, stderr) = served.client(&["jobs"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.ends_with("(0 rows)\n"), "{stdout}");

    let started = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &served.port.to_string(),
            "-U",
            "koios",
            "-d",
            "koios",
            "-tA",
            "-c",
        ])
        .arg(format!(
            "MIGRATE TABLE my.{}.moved TO pg.public.moved WITH (chunk_rows = 20000)",
            my.name
        ))
        .output()
        .expect("psql runs");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    // --watch returns once the job has ended, then prints the table.
    let (code, stdout, stderr) = served.client(&["jobs", "--watch"]);
    assert_eq!(code, Some(0), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains(" migrate "))
        .unwrap_or_else(|| panic!("no migrate job listed: {stdout}"));
    assert!(
        line.contains(" done ") && line.contains(" 200000 "),
        "{stdout}"
    );
    assert_eq!(
        psql_value(&pg.name, "SELECT count(*) FROM public.moved"),
        "200000"
    );

    // Waited for (wait = true), a migration tells its progress as NOTICEs
    // every two seconds while it runs (small chunks one at a time: long
    // enough to be seen), then answers with the ended job.
    let waited = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &served.port.to_string(), "-U", "koios", "-d", "koios", "-tA", "-c"])
        .arg(format!(
            "MIGRATE TABLE my.{}.moved TO pg.public.moved WITH (mode = 'replace', chunk_rows = 500, parallel = 1, wait = true)",
            my.name
        ))
        .output()
        .expect("psql runs");
    let (answer, notices) = (
        String::from_utf8_lossy(&waited.stdout).into_owned(),
        String::from_utf8_lossy(&waited.stderr).into_owned(),
    );
    assert!(waited.status.success(), "{notices}");
    assert!(answer.trim().ends_with("|done|200000"), "{answer}");
    let progress = notices
        .lines()
        .find(|l| l.starts_with("NOTICE:  migrate job "))
        .unwrap_or_else(|| panic!("no progress NOTICE: {notices}"));
    assert!(progress.contains(" of 200000 rows ("), "{progress}");

    // Over either protocol the progress comes while the statement runs,
    // not with its answer (tokio-postgres prepares what `query` sends).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for extended in [false, true] {
        let ahead = runtime.block_on(async {
            let (client, mut notices) = connect_with_notices(served.port).await;
            let sql = format!(
                "MIGRATE TABLE my.{}.moved TO pg.public.moved WITH (mode = 'replace', chunk_rows = 500, parallel = 1, wait = true)",
                my.name
            );
            if extended {
                let rows = client.query(&sql, &[]).await.expect("the migration runs");
                assert_eq!(rows.len(), 1);
            } else {
                client.simple_query(&sql).await.expect("the migration runs");
            }
            let answered = std::time::Instant::now();
            let (at, message) = notices.recv().await.expect("a progress NOTICE");
            assert!(message.starts_with("migrate job "), "{message}");
            answered.duration_since(at)
        });
        assert!(
            ahead >= std::time::Duration::from_millis(500),
            "extended protocol {extended}: the first progress notice came {ahead:?} before the answer"
        );
    }
}

/// A connection to Koios on `port`, and the times and texts of the
/// notices it receives.
async fn connect_with_notices(
    port: u16,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<(std::time::Instant, String)>,
) {
    use futures::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=koios dbname=koios"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connects to Koios");
    let (sender, notices) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = sender.send((std::time::Instant::now(), notice.message().to_string()));
            }
        }
    });
    (client, notices)
}

/// What psql prints for one value of `sql` in `database` (no header).
fn psql_value(database: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-X",
            "-tA",
            "-d",
            database,
            "-c",
            sql,
        ])
        .output()
        .expect("runs psql");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Polls `check` every 100 ms until it holds, for at most `seconds`.
fn wait_until(what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `CREATE TABLE … AS` into PostgreSQL runs in one remote transaction: while
/// it streams, nobody else sees the table, and when Koios itself is killed
/// half-way PostgreSQL rolls it all back — no table, no rows, no session
/// left in a transaction.
#[test]
fn a_create_table_as_killed_half_way_leaves_nothing_in_postgresql() {
    let pg = support::PgTestDatabase::create();
    let dir = scratch_dir("ctas-kill");
    let config = format!(
        "[server]\nmetadata = \"{}\"\nadmin_listen = \"\"\n\n[[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        dir.join("koios.db").display(),
        pg.name
    );
    let mut served = Served::start("ctas-kill", &config);
    let mut client = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "koios", "-X", "-d", "koios"])
        .arg("-p")
        .arg(served.port.to_string())
        .arg("-c")
        .arg("CREATE TABLE pg.public.halfway AS SELECT value AS n, 'some text' AS s FROM generate_series(1, 50000000)")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts psql");
    let copying = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%halfway%'";
    wait_until("the CREATE TABLE AS streams rows", 120, || {
        psql_value(&pg.name, copying) == "1"
    });
    // Rows are going in, inside a transaction no one else sees.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        psql_value(&pg.name, "SELECT to_regclass('public.halfway') IS NULL"),
        "t",
        "the table is not visible outside the transaction"
    );
    served.child.kill().expect("kills koios");
    let _ = served.child.wait();
    let _ = client.kill();
    let _ = client.wait();
    wait_until("PostgreSQL ends Koios's sessions", 30, || {
        psql_value(
            &pg.name,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ) == "0"
    });
    assert_eq!(
        psql_value(&pg.name, "SELECT to_regclass('public.halfway') IS NULL"),
        "t",
        "no table is left behind"
    );
    assert!(
        !std::fs::read_to_string(&served.log)
            .unwrap_or_default()
            .contains("panicked"),
        "the server did not panic"
    );
}
