//! Security of the endpoint through a real client (tokio-postgres, rustls):
//! SCRAM-SHA-256 users, password-less access on loopback only when no users
//! are configured, TLS (optional and required, verified against a CA the test
//! generates), the connection limit and `statement_timeout`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use koios::config::Config;
use koios::engine::Engine;
use koios::server::Server;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::TestServer;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

const ALICE_PASSWORD: &str = "correct horse battery staple";
/// PostgreSQL 15's verifier of the password `pencil` (`pg_authid.rolpassword`).
const BOB_VERIFIER: &str = "SCRAM-SHA-256$4096:vuOqja/MVYGZ6gK+WcoIag==$ieky1+nzbb2Bhe3Q5bMMFx2vTcI6m6SVhlP5bNXnlks=:Z9pw0r4mmQ7/nyxieAppY1uXc3OrWJcPi2ZFGf/bKP4=";

/// Two users: alice's password comes from the environment, bob's is a verifier.
fn users_toml() -> String {
    format!(
        r#"
[[user]]
name = "alice"
password = "${{ALICE_PASSWORD}}"

[[user]]
name = "bob"
password = "{BOB_VERIFIER}"
"#
    )
}

fn env(name: &str) -> Option<String> {
    (name == "ALICE_PASSWORD").then(|| ALICE_PASSWORD.to_string())
}

fn conn(server: &TestServer, host: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user={user} password='{password}' dbname=koios {extra}",
        server.addr.port()
    )
}

async fn connect(conn: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `sslmode=require` with rustls verifying the chain and the host name
/// against `ca`: libpq's `verify-full`.
async fn connect_tls(
    conn: &str,
    ca: &Path,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots
            .add(cert.expect("CA certificate"))
            .expect("adds the CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (client, connection) = tokio_postgres::connect(
        &format!("{conn} sslmode=require"),
        MakeRustlsConnect::new(config),
    )
    .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn select_one(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT 1::bigint", &[])
        .await
        .expect("SELECT 1")
        .get(0)
}

/// The SQLSTATE and message of a refused connection, checked to be FATAL.
fn fatal(err: &tokio_postgres::Error) -> (String, String) {
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    assert_eq!(db.severity(), "FATAL", "{err}");
    (db.code().code().to_string(), db.message().to_string())
}

/// A CA and a server certificate it signs for `localhost` and `127.0.0.1`,
/// plus an unrelated CA, made with the openssl command.
struct TestCerts {
    dir: PathBuf,
}

impl TestCerts {
    fn generate(name: &str) -> TestCerts {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("koios-security-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let at = |file: &str| dir.join(file).to_string_lossy().into_owned();
        std::fs::write(
            at("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extension file");
        let openssl = |args: String| {
            let output = std::process::Command::new("openssl")
                .args(args.split(' '))
                .output()
                .expect("the openssl command runs");
            assert!(
                output.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(format!(
                "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=koios-test-{ca} -keyout {} -out {}",
                at(&format!("{ca}.key")),
                at(&format!("{ca}.pem"))
            ));
        }
        openssl(format!(
            "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout {} -out {}",
            at("server.key"),
            at("server.csr")
        ));
        openssl(format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 2 -extfile {} -out {}",
            at("server.csr"),
            at("ca.pem"),
            at("ca.key"),
            at("server.ext"),
            at("server.pem")
        ));
        TestCerts { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// `[server]` keys serving this certificate.
    fn server_toml(&self, required: bool) -> String {
        format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_required = {required}\n",
            self.path("server.pem").display(),
            self.path("server.key").display()
        )
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_users_log_in_and_wrong_passwords_are_refused() {
    let server = TestServer::start_toml(&users_toml(), &env).await;

    // A password from the configuration, and a verifier made by PostgreSQL.
    for (user, password) in [("alice", ALICE_PASSWORD), ("bob", "pencil")] {
        let client = connect(&conn(&server, "127.0.0.1", user, password, ""))
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        assert_eq!(select_one(&client).await, 1);
        let row = client
            .query_one("SELECT current_database()", &[])
            .await
            .expect("current_database()");
        assert_eq!(row.get::<_, String>(0), "koios");
    }

    // Wrong passwords and an unknown user get the same answer, without the
    // password and without saying which part was wrong.
    for (user, password) in [
        ("alice", "wrong horse"),
        ("alice", "pencil"),
        ("bob", ALICE_PASSWORD),
        ("mallory", ALICE_PASSWORD),
        ("mallory", ""),
    ] {
        let err = connect(&conn(&server, "127.0.0.1", user, password, ""))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user}/{password} is refused"));
        let (code, message) = fatal(&err);
        assert_eq!(code, "28P01", "{err}");
        assert_eq!(
            message,
            format!("password authentication failed for user \"{user}\"")
        );
        if !password.is_empty() {
            assert!(!format!("{err} {err:?}").contains(password), "{err:?}");
        }
    }

    // Authenticated, the database is checked as before.
    let err = connect(&format!(
        "host=127.0.0.1 port={} user=alice password='{ALICE_PASSWORD}' dbname=nope",
        server.addr.port()
    ))
    .await
    .expect_err("unknown database");
    assert_eq!(fatal(&err).0, "3D000", "{err}");

    // With users configured nobody gets in without a password, loopback or
    // not: the server answers a startup packet with the SASL challenge, and
    // a client that cannot follow it is refused (not panicked on).
    let addr = server.addr;
    let replies = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut socket = std::net::TcpStream::connect(addr).expect("connects");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        socket
            .write_all(&support::startup_packet("alice", "koios"))
            .expect("startup");
        let mut challenge = [0u8; 9];
        socket.read_exact(&mut challenge).expect("a reply");
        // SASLInitialResponse naming a mechanism that was not offered.
        let mut sasl = b"PLAIN\0".to_vec();
        sasl.extend_from_slice(&(-1i32).to_be_bytes());
        socket
            .write_all(&support::frontend_message(b'p', &sasl))
            .expect("SASL response");
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
        (challenge, rest)
    })
    .await
    .expect("raw client");
    let (challenge, rest) = replies;
    assert_eq!(challenge[0], b'R', "an authentication request");
    assert_eq!(&challenge[5..9], &10i32.to_be_bytes(), "AuthenticationSASL");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.starts_with(b"SCRAM-SHA-256\0\0"),
        "only SCRAM is offered: {text}"
    );
    assert!(
        text.contains("FATAL") && text.contains("08P01") && text.contains("mechanism"),
        "{text}"
    );
    // The server keeps serving.
    let client = connect(&conn(&server, "127.0.0.1", "alice", ALICE_PASSWORD, ""))
        .await
        .expect("alice again");
    assert_eq!(select_one(&client).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_users_koios_listens_on_loopback_only() {
    let config = Config::parse("", Path::new("inline.toml"), &|_| None).expect("valid");
    let engine = Engine::start(&config).await.expect("engine starts");
    for address in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let err = Server::bind(Arc::clone(&engine), address.parse().expect("address"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{address} is refused"))
            .to_string();
        assert!(
            err.contains("no users are configured") && err.contains("loopback"),
            "{err}"
        );
    }
    Server::bind(engine, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("loopback is fine");

    // With users, any address may be used (here: all of them, briefly).
    let config =
        Config::parse(&users_toml(), Path::new("inline.toml"), &env).expect("valid config");
    let engine = Engine::start(&config).await.expect("engine starts");
    let server = Server::bind(engine, "0.0.0.0:0".parse().expect("address"))
        .await
        .expect("binds every address when users are configured");
    assert_ne!(server.local_addr().expect("bound").port(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_offered_verified_and_can_be_required() {
    let certs = TestCerts::generate("tls");
    let ca = certs.path("ca.pem");

    // TLS offered, not required; no users (loopback, password-less).
    let server = TestServer::start_toml(&certs.server_toml(false), &|_| None).await;
    let plain = server.conn_string("koios");
    assert_eq!(
        select_one(&connect(&plain).await.expect("plain text")).await,
        1
    );
    for host in ["localhost", "127.0.0.1"] {
        let tls = format!(
            "host={host} port={} user=koios dbname=koios",
            server.addr.port()
        );
        let client = connect_tls(&tls, &ca)
            .await
            .unwrap_or_else(|e| panic!("TLS to {host}: {e}"));
        assert_eq!(select_one(&client).await, 1);
    }
    // The certificate really is verified: another CA does not vouch for it.
    let tls = format!(
        "host=localhost port={} user=koios dbname=koios",
        server.addr.port()
    );
    let err = connect_tls(&tls, &certs.path("other-ca.pem"))
        .await
        .expect_err("an unknown issuer is refused");
    assert!(err.as_db_error().is_none(), "{err}");

    // TLS required, with users.
    let text = format!("{}{}", certs.server_toml(true), users_toml());
    let server = TestServer::start_toml(&text, &env).await;
    let err = connect(&conn(&server, "127.0.0.1", "alice", ALICE_PASSWORD, ""))
        .await
        .expect_err("plain text is refused");
    let (code, message) = fatal(&err);
    assert_eq!(code, "28000", "{err}");
    assert!(message.contains("TLS is required"), "{message}");
    assert!(!format!("{err:?}").contains(ALICE_PASSWORD));

    let client = connect_tls(
        &conn(&server, "localhost", "alice", ALICE_PASSWORD, ""),
        &ca,
    )
    .await
    .expect("TLS and SCRAM");
    assert_eq!(select_one(&client).await, 1);
    let err = connect_tls(&conn(&server, "localhost", "alice", "nope", ""), &ca)
        .await
        .expect_err("wrong password over TLS");
    assert_eq!(fatal(&err).0, "28P01", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    let server = TestServer::start_toml("[server]\nmax_connections = 2\n", &|_| None).await;
    let conn = server.conn_string("koios");
    let first = connect(&conn).await.expect("first");
    let second = connect(&conn).await.expect("second");

    let err = connect(&conn).await.expect_err("third is refused");
    let (code, message) = fatal(&err);
    assert_eq!(code, "53300", "{err}");
    assert_eq!(message, "sorry, too many clients already");
    // A refused client does not hold a slot.
    let err = connect(&conn).await.expect_err("fourth is refused");
    assert_eq!(fatal(&err).0, "53300");

    assert_eq!(select_one(&first).await, 1);
    assert_eq!(select_one(&second).await, 1);

    // A slot is given back when its connection ends.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let third = loop {
        match connect(&conn).await {
            Ok(client) => break client,
            Err(e) => {
                assert_eq!(fatal(&e).0, "53300");
                assert!(Instant::now() < deadline, "the slot was never given back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(select_one(&third).await, 1);
    assert_eq!(select_one(&second).await, 1);
}

/// Runs `sql` (simple protocol) and expects the statement timeout, in well
/// under the statement's natural time.
async fn times_out(client: &tokio_postgres::Client, sql: &str) -> Duration {
    let started = Instant::now();
    let err = client
        .simple_query(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql} times out"));
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err}"));
    assert_eq!(db.code().code(), "57014", "{err}");
    assert_eq!(db.message(), "canceling statement due to statement timeout");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_stops_the_query_and_the_remote_statement() {
    let server = TestServer::start_test().await;
    let pg = server.pg.as_ref().expect("test database");
    pg.execute(
        "CREATE VIEW slow AS SELECT pg_sleep(60)::text AS s; \
         CREATE VIEW slowish AS SELECT pg_sleep(0.5)::text AS s",
    )
    .expect("creates the slow views");
    let client = server.connect("koios").await;
    client
        .batch_execute("REFRESH SOURCE pg")
        .await
        .expect("refresh");

    // A remote scan that would take a minute.
    client
        .batch_execute("SET statement_timeout = 100")
        .await
        .expect("SET");
    let took = times_out(&client, "SELECT * FROM pg.public.slow").await;
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // PostgreSQL stops the statement too, soon after.
    support::wait_until_remote_scans_stop(&pg.name).await;

    // The session keeps working; fast statements finish under the timeout.
    assert_eq!(select_one(&client).await, 1);
    let row = client
        .query_one("SELECT count(*) FROM pg.public.nation_stats", &[])
        .await
        .expect("a fast remote query");
    assert_eq!(row.get::<_, i64>(0), 5);

    // Work on Koios's own side is bounded too, in both protocols; the
    // setting takes units and applies to the statements after it.
    let endless = "SELECT count(*) FROM generate_series(1, 100000000000) AS t(x) WHERE x % 7 = 3";
    let took = times_out(
        &client,
        &format!("SET statement_timeout = '300ms'; {endless}"),
    )
    .await;
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let err = client
        .query(endless, &[])
        .await
        .expect_err("extended protocol times out");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    assert_eq!(
        err.as_db_error().map(|d| d.message()),
        Some("canceling statement due to statement timeout")
    );

    // 0 disables it: a statement longer than the old timeout completes.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .expect("SET");
    let rows = client
        .query("SELECT * FROM pg.public.slowish", &[])
        .await
        .expect("no timeout");
    assert_eq!(rows.len(), 1);

    // A CancelRequest still says "user request".
    client
        .batch_execute("SET statement_timeout = '1min'")
        .await
        .expect("SET");
    let cancel = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel_query(NoTls).await
    });
    let err = client
        .simple_query("SELECT * FROM pg.public.slow")
        .await
        .expect_err("cancelled");
    canceller.await.expect("task").expect("cancel sent");
    assert_eq!(
        err.as_db_error().map(|d| d.message()),
        Some("canceling statement due to user request")
    );
}
