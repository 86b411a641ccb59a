//! MariaDB/MySQL faults: wrong password, a server that is down, and a
//! cancelled query that must stop on the server too.

mod support;

use std::time::{Duration, Instant};

use koios::config::Config;
use support::{TestServer, run};

fn mariadb_query(sql: &str) -> String {
    support::mariadb_output(None, sql).trim().to_string()
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

    let started =
        support::cancel_mid_query(&client, &format!("SELECT * FROM my.{}.slow", my.name)).await;

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

/// The KILL of an abandoned scan never stops the statement its connection
/// runs next for another query (see the PostgreSQL test of the same name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_scans_kill_never_hits_the_next_statement() {
    let my = support::MyTestDatabase::create();
    for view in [
        "CREATE VIEW many AS SELECT seq AS n FROM seq_1_to_100 CROSS JOIN (SELECT SLEEP(0.03) AS pause) AS p",
        "CREATE VIEW streaming AS SELECT seq AS n FROM seq_1_to_300000 CROSS JOIN (SELECT SLEEP(0.03) AS pause) AS p",
        "CREATE VIEW nap AS SELECT SLEEP(0.02) AS slept",
    ] {
        my.execute(view).expect("creates the view");
    }
    let text = format!(
        r#"
[[source]]
name = "my"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{}"
pool_size = 1
"#,
        my.name
    );
    let server = TestServer::start_toml(&text, &|_| None).await;
    support::abandon_scans_beside_another_client(&server, &format!("my.{}", my.name)).await;
}

/// Whether the reading connection is encrypted (SESSION_STATUS is per
/// connection; the cipher is empty on a plain one).
const CONNECTION_TLS_VIEW: &str = "CREATE VIEW connection_tls AS SELECT VARIABLE_VALUE AS cipher FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_CIPHER'";

/// A throwaway MariaDB server that speaks TLS with a certificate for
/// `localhost` signed by a CA of its own (the machine's server has TLS off).
/// Stopped and removed on drop.
struct TlsMariaDb {
    dir: std::path::PathBuf,
    port: u16,
    child: std::process::Child,
}

impl TlsMariaDb {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("koios-tlsmy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server directory");
        let at = |name: &str| dir.join(name).to_string_lossy().into_owned();
        // A CA, and a server certificate it signs (webpki refuses a CA
        // certificate used as the server's own).
        std::fs::write(
            at("san.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .expect("extension file");
        let openssl = |args: &str| run("openssl", &args.split(' ').collect::<Vec<_>>());
        openssl(&format!(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=koios-test-ca -keyout {} -out {}",
            at("ca.key"),
            at("ca.pem")
        ));
        openssl(&format!(
            "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout {} -out {}",
            at("server.key"),
            at("server.csr")
        ));
        openssl(&format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 2 -extfile {} -out {}",
            at("server.csr"),
            at("ca.pem"),
            at("ca.key"),
            at("san.ext"),
            at("server.pem")
        ));
        run(
            "mariadb-install-db",
            &[
                "--no-defaults",
                &format!("--datadir={}", at("data")),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
        );
        let port = support::free_port();
        let child = std::process::Command::new("mariadbd")
            .args([
                "--no-defaults".to_string(),
                format!("--datadir={}", at("data")),
                format!("--socket={}", at("sock")),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".to_string(),
                "--user=root".to_string(),
                "--skip-log-bin".to_string(),
                format!("--ssl-ca={}", at("ca.pem")),
                format!("--ssl-cert={}", at("server.pem")),
                format!("--ssl-key={}", at("server.key")),
                format!("--log-error={}", at("error.log")),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        let server = Self { dir, port, child };
        support::wait_for_port(port, Duration::from_secs(60), || {
            format!(
                "the TLS MariaDB did not start: {}",
                std::fs::read_to_string(server.dir.join("error.log")).unwrap_or_default()
            )
        });
        run(
            "mariadb",
            &[
                &format!("--socket={}", server.dir.join("sock").display()),
                "-uroot",
                "-e",
                &format!("CREATE DATABASE tlsdb; USE tlsdb; {CONNECTION_TLS_VIEW}"),
            ],
        );
        server
    }

    fn ca_file(&self) -> String {
        self.dir.join("ca.pem").to_string_lossy().into_owned()
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_encrypt_verify_and_refuse() {
    let tls_server = TlsMariaDb::start();
    let port = tls_server.port;
    let ca = tls_server.ca_file();
    let local = support::MyTestDatabase::create();
    local.execute(CONNECTION_TLS_VIEW).expect("view");
    let db = &local.name;
    let text = format!(
        r#"
[[source]]
name = "plain"
kind = "mysql"
url = "mysql://root@127.0.0.1:{port}/tlsdb"
tls = "disable"

[[source]]
name = "preferred"
kind = "mysql"
url = "mysql://root@127.0.0.1:{port}/tlsdb"

[[source]]
name = "required"
kind = "mysql"
url = "mysql://root@127.0.0.1:{port}/tlsdb"
tls = "require"

# The certificate names "localhost": verified when connecting by that name.
[[source]]
name = "verified"
kind = "mysql"
url = "mysql://root@localhost:{port}/tlsdb"
tls = "verify-full"
tls_ca_file = "{ca}"

[[source]]
name = "wrong_ca"
kind = "mysql"
url = "mysql://root@localhost:{port}/tlsdb"
tls = "verify-full"
tls_ca_file = "/etc/ssl/certs/ssl-cert-snakeoil.pem"

[[source]]
name = "no_tls_here"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{db}"
tls = "require"

[[source]]
name = "plain_prefer"
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/{db}"
tls = "prefer"
"#
    );
    let server = TestServer::start_toml(&text, &|_| None).await;
    let client = server.connect("koios").await;
    for (source, encrypted) in [
        ("plain", false),
        ("preferred", true),
        ("required", true),
        ("verified", true),
        ("plain_prefer", false),
    ] {
        let schema = if source == "plain_prefer" {
            db.as_str()
        } else {
            "tlsdb"
        };
        let row = support::query_row(
            &client,
            &format!("SELECT cipher FROM {source}.{schema}.connection_tls"),
        )
        .await;
        let cipher: Option<String> = row.get(0);
        assert_eq!(
            !cipher.unwrap_or_default().is_empty(),
            encrypted,
            "{source}"
        );
    }
    for (source, expected) in [
        ("wrong_ca", "certificate"),
        ("no_tls_here", "does not offer tls"),
    ] {
        let message = support::query_error(
            &client,
            &format!("SELECT * FROM {source}.tlsdb.connection_tls"),
        )
        .await;
        assert!(
            message.contains(&format!("source '{source}' is unavailable")),
            "{message}"
        );
        assert!(message.to_lowercase().contains(expected), "{message}");
    }
}
