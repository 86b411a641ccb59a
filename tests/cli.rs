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
