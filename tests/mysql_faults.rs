//! MariaDB/MySQL faults: wrong password, a server that is down, and a
//! cancelled query that must stop on the server too.

mod support;

use std::time::{Duration, Instant};

use koios::config::Config;
use support::TestServer;
use tokio_postgres::NoTls;

fn mariadb_query(sql: &str) -> String {
    let output = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .output()
        .expect("the mariadb client runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_down_server_are_reported_without_secrets() {
    let user = format!("koios_pw_{}", std::process::id());
    mariadb_query(&format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'the-right-one'; \
         CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY 'the-right-one'"
    ));
    let text = format!(
        r#"
[[source]]
name = "wrong_pw"
kind = "mysql"
url = "mysql://{user}:hunter2-wrong@127.0.0.1:3306/"

[[source]]
name = "my_down"
kind = "mysql"
url = "mysql://root:hunter2-secret@127.0.0.1:1/x"
"#
    );
    let config =
        Config::parse(&text, std::path::Path::new("faults.toml"), &|_| None).expect("valid");
    let server = TestServer::start(config).await;
    let client = server.connect("koios").await;
    for (source, expected) in [("wrong_pw", "Access denied"), ("my_down", "cannot connect")] {
        let err = client
            .simple_query(&format!("SELECT * FROM {source}.x.t"))
            .await
            .expect_err("source is unavailable");
        let message = err
            .as_db_error()
            .expect("server error")
            .message()
            .to_string();
        assert!(
            message.contains(&format!("source '{source}' is unavailable")),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("hunter2"), "password leaked: {message}");
    }
    let row = client
        .query_one("SELECT 40 + 2", &[])
        .await
        .expect("still serving");
    assert_eq!(row.get::<_, i64>(0), 42);
    mariadb_query(&format!(
        "DROP USER IF EXISTS '{user}'@'%'; DROP USER IF EXISTS '{user}'@'localhost'"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_mysql_statement() {
    let server = TestServer::start_test().await;
    let my = server.my.as_ref().expect("test database");
    my.execute("CREATE VIEW slow AS SELECT SLEEP(60) AS s")
        .expect("creates the slow view");
    let client = server.connect("koios").await;
    client
        .batch_execute("REFRESH SOURCE my")
        .await
        .expect("refresh");

    let cancel = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        cancel.cancel_query(NoTls).await
    });
    let err = client
        .simple_query(&format!("SELECT * FROM my.{}.slow", my.name))
        .await
        .expect_err("cancelled");
    canceller.await.expect("task").expect("cancel sent");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");

    // The server stops the statement (KILL QUERY) soon after.
    let running = || {
        mariadb_query(&format!(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE '%slow%' AND COMMAND <> 'Sleep'",
            my.name
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running() != "0" {
        assert!(
            Instant::now() < deadline,
            "the MySQL statement is still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = client
        .query_one(
            &format!("SELECT count(*) FROM my.{}.nation_codes", my.name),
            &[],
        )
        .await
        .expect("still usable");
    assert_eq!(row.get::<_, i64>(0), 5);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
