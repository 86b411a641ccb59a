//! Runs every `sql-tests/**/*.slt` file against an in-process Koios server,
//! once through the simple query protocol and once through the extended
//! protocol with binary results.
//!
//! `cargo test --test sqllogictest [-- FILTER...]` runs the files whose path
//! contains one of the filters. With `KOIOS_SLT_COMPLETE=1` the expected
//! results of the selected files are rewritten from what Koios returns (the
//! extended-protocol run, which also records column types): review the diff.

mod support;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sqllogictest::{Runner, default_column_validator, strict_column_validator};
use support::slt::{KoiosDb, Mode, SqlError};
use support::{TestServer, workspace_root};

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

/// Opens a fresh Koios connection in `mode` each time the runner asks.
fn connector(
    conn: String,
    mode: Mode,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<KoiosDb, SqlError>> + Send>>
+ Clone {
    move || {
        let conn = conn.clone();
        Box::pin(async move {
            let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .map_err(|e| SqlError(format!("cannot connect: {e}")))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(KoiosDb { client, mode })
        })
    }
}

/// `$pg_database`, `$my_database` and `$mongo_database` name this run's
/// scratch databases; `$mongo_url` is where the MongoDB one lives;
/// `$koios_port` is the Koios server's port (for `psql` in a `system`
/// command that needs a value Koios answered, such as a job's id).
fn set_database_vars<M: sqllogictest::MakeConnection<Conn = KoiosDb>>(
    runner: &mut Runner<KoiosDb, M>,
    server: &TestServer,
) {
    runner.set_var("koios_port".into(), server.addr.port().to_string());
    if let Some(pg) = &server.pg {
        runner.set_var("pg_database".into(), pg.name.clone());
    }
    if let Some(my) = &server.my {
        runner.set_var("my_database".into(), my.name.clone());
    }
    if let Some(mongo) = &server.mongo {
        runner.set_var("mongo_database".into(), mongo.name.clone());
        runner.set_var("mongo_url".into(), support::mongodb_url());
    }
}

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(filters))
}

async fn run(filters: Vec<String>) -> ExitCode {
    let root = workspace_root();
    let mut files = Vec::new();
    slt_files(&root.join("sql-tests"), &mut files);
    files.sort();
    files.retain(|f| {
        filters.is_empty()
            || filters
                .iter()
                .any(|p| f.to_string_lossy().contains(p.as_str()))
    });
    if files.is_empty() {
        eprintln!("no .slt files match {filters:?}");
        return ExitCode::FAILURE;
    }

    let server = TestServer::start_test().await;
    let complete = std::env::var("KOIOS_SLT_COMPLETE").is_ok_and(|v| v == "1");
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        if complete {
            let mut runner = Runner::new(connector(server.conn_string("koios"), Mode::Extended));
            runner.add_label(Mode::Extended.label());
            set_database_vars(&mut runner, &server);
            if let Err(e) = runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    strict_column_validator,
                )
                .await
            {
                println!("cannot complete {name}: {e}");
            }
        }
        for mode in [Mode::Simple, Mode::Extended] {
            let mut runner = Runner::new(connector(server.conn_string("koios"), mode));
            runner.add_label(mode.label());
            set_database_vars(&mut runner, &server);
            runner.with_column_validator(match mode {
                Mode::Simple => default_column_validator,
                Mode::Extended => strict_column_validator,
            });
            let started = std::time::Instant::now();
            match runner.run_file_async(file).await {
                Ok(()) => {
                    passed += 1;
                    println!(
                        "ok   {name} [{}] ({} ms)",
                        mode.label(),
                        started.elapsed().as_millis()
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("FAIL {name} [{}]\n{}\n", mode.label(), e.display(false));
                }
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
