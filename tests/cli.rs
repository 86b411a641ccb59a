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

#[test]
fn configuration_errors_name_file_line_and_key() {
    let dir = scratch_dir("badconfig");
    let path = dir.join("koios.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:5433\"\nbatch_size = -3\n",
    )
    .expect("write");
    let output = koios()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:3", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("server.batch_size"), "{stderr}");

    std::fs::write(
        &path,
        "[[source]]\nname = \"x\"\nkind = \"files\"\nurl = \"${KOIOS_TEST_UNSET_VARIABLE}\"\n",
    )
    .expect("write");
    let output = koios()
        .args(["query", "--config"])
        .arg(&path)
        .arg("SELECT 1")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("KOIOS_TEST_UNSET_VARIABLE is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains(":4:") && stderr.contains("source.url"),
        "{stderr}"
    );

    std::fs::write(
        &path,
        "[[source]]\nname = \"x\"\nkind = \"warp_drive\"\nurl = \"/tmp\"\n",
    )
    .expect("write");
    let output = koios()
        .args(["query", "--config"])
        .arg(&path)
        .arg("SELECT 1")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown kind 'warp_drive'"));
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
    let path = dir.join("koios.toml");
    std::fs::write(
        &path,
        r#"
startup_sql = ["CREATE VIEW koios.public.big AS SELECT * FROM local.public.numbers WHERE n > 1"]

[[source]]
name = "local"
kind = "files"
url = "."

[[source]]
name = "gone"
kind = "files"
url = "./does-not-exist"
"#,
    )
    .expect("config");
    let output = koios()
        .args(["query", "--config"])
        .arg(&path)
        .arg("SELECT word FROM big ORDER BY n")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        " word\n-------\n two\n three\n(2 rows)\n"
    );
    assert!(
        stderr.contains("source unavailable") && stderr.contains("gone"),
        "{stderr}"
    );

    let output = koios()
        .args(["query", "--config"])
        .arg(&path)
        .arg("SELECT * FROM gone.public.t")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("source 'gone' is unavailable") && stderr.contains("does not exist"),
        "{stderr}"
    );
}
