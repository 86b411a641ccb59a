//! The admin HTTP endpoint against a real engine and PostgreSQL: `/health`,
//! `/ready` before and after the catalog loads, `/sources` without secrets,
//! the bearer token, and `/metrics` read by Prometheus' own parser
//! (`tests/clients/metrics_check.py`) moving by exactly the queries run.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use koios::admin::AdminServer;
use koios::config::Config;
use koios::engine::Engine;
use koios::engine::credentials::AdminToken;
use koios::server::Server;
use support::{PgTestDatabase, workspace_root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The password in the source URL: PostgreSQL here trusts local clients, so
/// it is ignored there, but it must show nowhere Koios answers.
const PASSWORD: &str = "sekret";

/// An HTTP/1.1 GET: the status code and the body.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects to the admin endpoint");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: koios\r\nConnection: close\r\n{auth}\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sends the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("reads the response");
    let response = String::from_utf8(response).expect("a UTF-8 response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("headers end with a blank line");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

fn config(pg: &PgTestDatabase) -> Config {
    let text = format!(
        r#"
[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres:{PASSWORD}@127.0.0.1:5432/{db}"

[[source]]
name = "gone"
kind = "postgres"
url = "postgres://postgres:{PASSWORD}@127.0.0.1:1/nowhere?connect_timeout=2"
"#,
        db = pg.name,
    );
    Config::parse(&text, Path::new("admin.toml"), &|_| None).expect("valid config")
}

/// The admin endpoint bound and serving, then the engine started and the
/// PostgreSQL front end bound: what `koios serve` does. Returns the admin
/// address, the pgwire address and the engine.
async fn start(
    pg: &PgTestDatabase,
    token: Option<AdminToken>,
) -> (SocketAddr, SocketAddr, Arc<Engine>) {
    let admin = AdminServer::bind("127.0.0.1:0".parse().expect("address"), token)
        .await
        .expect("binds the admin endpoint");
    let admin_addr = admin.local_addr().expect("admin address");
    let readiness = admin.readiness();
    tokio::spawn(admin.run());
    // Not ready before the catalog is loaded; alive all the same.
    let (status, _) = get(admin_addr, "/ready", Some("t0ken")).await;
    assert_eq!(status, 503);
    let (status, body) = get(admin_addr, "/health", Some("t0ken")).await;
    assert_eq!((status, body.trim()), (200, "ok"));

    let engine = Engine::start(&config(pg)).await.expect("engine starts");
    let server = Server::bind(Arc::clone(&engine), "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("binds pgwire");
    let pg_addr = server.local_addr().expect("pgwire address");
    tokio::spawn(server.run());
    readiness.ready(Arc::clone(&engine));
    (admin_addr, pg_addr, engine)
}

async fn connect(addr: SocketAddr) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=koios dbname=pg",
            addr.ip(),
            addr.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connects to Koios");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_and_show_no_secret() {
    let pg = PgTestDatabase::create();
    let (admin, pg_addr, _engine) = start(&pg, Some(AdminToken::new("t0ken"))).await;
    let client = connect(pg_addr).await;
    client
        .simple_query("SELECT capital FROM public.nation_stats")
        .await
        .expect("a query through the pg source");

    let (status, body) = get(admin, "/ready", Some("t0ken")).await;
    assert_eq!((status, body.trim()), (200, "ready"));

    let (status, body) = get(admin, "/sources", Some("t0ken")).await;
    assert_eq!(status, 200, "{body}");
    let sources: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let sources = sources.as_array().expect("an array");
    let find = |name: &str| {
        sources
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no source {name} in {body}"))
    };
    assert_eq!(find("pg")["kind"], "postgres");
    assert_eq!(find("pg")["state"], "ready");
    assert_eq!(find("gone")["state"], "down");
    assert!(
        find("gone")["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(find("gone")["origin"], "file");
    assert!(
        find("pg")["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("postgres://postgres:***@127.0.0.1:5432/")),
        "{body}"
    );
    assert!(
        find("pg")["tables"].as_u64().is_some_and(|n| n > 0),
        "{body}"
    );

    let (status, metrics) = get(admin, "/metrics", Some("t0ken")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("koios_source_remote_statements_total{source=\"pg\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("koios_source_errors_total{source=\"gone\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("koios_source_pool_connections_idle{source=\"pg\"}"),
        "{metrics}"
    );
    for path in ["/health", "/ready", "/sources", "/metrics"] {
        let (_, body) = get(admin, path, Some("t0ken")).await;
        assert!(
            !body.contains(PASSWORD),
            "{path} shows the password: {body}"
        );
    }

    // The token is required: none or a wrong one is refused.
    for (token, expected) in [(None, 401), (Some("wrong"), 401), (Some("t0ken"), 200)] {
        let (status, body) = get(admin, "/metrics", token).await;
        assert_eq!(status, expected, "{token:?}: {body}");
    }
    for path in ["/health", "/sources", "/nowhere"] {
        let (status, _) = get(admin, path, None).await;
        assert_eq!(status, 401, "{path} without a token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_off_loopback() {
    let err = Config::parse(
        "[server]\nadmin_listen = \"0.0.0.0:9433\"\n",
        Path::new("admin.toml"),
        &|_| None,
    )
    .expect_err("no token")
    .to_string();
    assert!(
        err.contains("admin.toml:2") && err.contains("server.admin_token"),
        "{err}"
    );
    let err = AdminServer::bind("0.0.0.0:0".parse().expect("address"), None)
        .await
        .err()
        .expect("refused without a token")
        .to_string();
    assert!(err.contains("admin_token"), "{err}");
    // A port already taken: the error names the address.
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = taken.local_addr().expect("address");
    let err = AdminServer::bind(addr, None)
        .await
        .err()
        .expect("the port is taken")
        .to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_the_queries_run() {
    let pg = PgTestDatabase::create();
    let (admin, pg_addr, _engine) = start(&pg, None).await;
    let client = connect(pg_addr).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");

    let (status, before) = get(admin, "/metrics", None).await;
    assert_eq!(status, 200);
    // Three scans of 5 rows each, one pushed-down count (1 row), one
    // parameterized lookup (1 row), an UPDATE, one error, a SET and a
    // statement that times out.
    for _ in 0..3 {
        let rows = client
            .simple_query("SELECT n_nationkey, capital FROM public.nation_stats")
            .await
            .expect("scan");
        let rows = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(rows, 5);
    }
    client
        .simple_query("SELECT count(*) FROM public.numbers WHERE m = 3")
        .await
        .expect("count");
    // The extended protocol (Parse/Bind/Execute) is counted alike.
    let rows = client
        .query(
            "SELECT capital FROM public.nation_stats WHERE n_nationkey = $1",
            &[&6i64],
        )
        .await
        .expect("a parameterized query");
    assert_eq!(rows.len(), 1);
    // An UPDATE runs in PostgreSQL as one statement (its one row: the count).
    let updated = client
        .execute(
            "UPDATE public.nation_stats SET capital = 'Paris' WHERE n_nationkey = 6",
            &[],
        )
        .await
        .expect("an update");
    assert_eq!(updated, 1);
    client
        .simple_query("SELECT * FROM public.no_such_table")
        .await
        .expect_err("an unknown table");
    // A statement stopped by statement_timeout counts as cancelled (the
    // SET before it is a statement too, and succeeds).
    let err = client
        .simple_query(
            "SET statement_timeout = '200ms'; \
             SELECT count(*) FROM generate_series(1, 100000000000) AS t(x) WHERE x % 7 = 3",
        )
        .await
        .expect_err("times out");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
    let (status, after) = get(admin, "/metrics", None).await;
    assert_eq!(status, 200);
    std::fs::write(dir.join("before.txt"), &before).expect("writes");
    std::fs::write(dir.join("after.txt"), &after).expect("writes");

    let output = std::process::Command::new("python3")
        .arg(workspace_root().join("tests/clients/metrics_check.py"))
        .arg("deltas")
        .arg(dir.join("before.txt"))
        .arg(dir.join("after.txt"))
        .args([
            "koios_queries_total{outcome=ok}=7",
            "koios_queries_total{outcome=error}=1",
            "koios_queries_total{outcome=cancelled}=1",
            "koios_errors_total{class=42}=1",
            "koios_errors_total{class=57}=1",
            "koios_query_duration_seconds_count=9",
            "koios_query_duration_seconds_sum>=0.2",
            "koios_rows_sent_total=17",
            "koios_bytes_sent_total>=17",
            "koios_client_connections_accepted_total=0",
            "koios_source_remote_statements_total{source=pg}=6",
            "koios_source_rows_received_total{source=pg}=18",
            "koios_source_errors_total{source=pg}=0",
        ])
        .output()
        .expect("runs python3 (with prometheus_client: pip install prometheus_client)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("koios_rows_sent_total=17"), "{stdout}");
    assert!(after.contains("koios_client_connections 1"), "{after}");
}
