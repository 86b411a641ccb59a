//! The demo's TPC-H answers through Koios equal PostgreSQL's answers over the
//! same rows: the tables are copied from Koios into a scratch database of the
//! local PostgreSQL (127.0.0.1:5432) and the same queries run on both.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use support::{TestServer, workspace_root};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

async fn connect(conn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to {conn}: {e} (run scripts/services.sh to start PostgreSQL)")
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Rows as text, exactly as each server rendered them.
async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn pg_type(arrow: &str) -> &'static str {
    match arrow {
        "Int64" => "bigint",
        "Int32" => "integer",
        "Date32" => "date",
        a if a.starts_with("Decimal128(15, 2)") => "numeric(15,2)",
        a if a.contains("Utf8") => "text",
        other => panic!("no PostgreSQL type for {other}"),
    }
}

fn csv_field(value: &Option<String>) -> String {
    match value {
        None => String::new(),
        Some(v) => format!("\"{}\"", v.replace('"', "\"\"")),
    }
}

/// Equal as text, or as numbers equal to the last digit of the shorter one:
/// PostgreSQL's numeric averages carry up to 20 fraction digits, while
/// DataFusion's decimal averages keep scale + 4 digits (truncated).
fn same_value(a: &Option<String>, b: &Option<String>) -> bool {
    let scale = |s: &str| s.split_once('.').map(|(_, f)| f.len() as i32).unwrap_or(0);
    match (a, b) {
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => {
                let ulp = 10f64.powi(-scale(a).min(scale(b)));
                (x - y).abs() <= ulp + 1e-12 * x.abs().max(y.abs())
            }
            _ => false,
        },
        (None, None) => true,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_answers_match_postgresql() {
    let server = TestServer::start_test().await;
    let koios = server.connect("demo").await;

    let admin = connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres").await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let database = format!("koios_test_tpch_{}_{nanos}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("creates scratch database");

    let result = std::panic::AssertUnwindSafe(compare(&koios, &database));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .expect("drops scratch database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn compare(koios: &Client, database: &str) {
    let pg = connect(&format!(
        "host=127.0.0.1 port=5432 user=postgres dbname={database}"
    ))
    .await;
    for table in TABLES {
        let columns = text_rows(
            koios,
            &format!(
                "SELECT column_name, arrow_type FROM information_schema.columns \
                 WHERE table_catalog = 'demo' AND table_name = '{table}' ORDER BY ordinal_position"
            ),
        )
        .await;
        let ddl: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c[0].as_deref().unwrap_or_default(),
                    pg_type(c[1].as_deref().unwrap_or_default())
                )
            })
            .collect();
        pg.batch_execute(&format!("CREATE TABLE {table} ({})", ddl.join(", ")))
            .await
            .expect("creates table");
        let rows = text_rows(koios, &format!("SELECT * FROM {table}")).await;
        let mut csv = String::new();
        for row in &rows {
            csv.push_str(&row.iter().map(csv_field).collect::<Vec<_>>().join(","));
            csv.push('\n');
        }
        let sink = pg
            .copy_in(&format!("COPY {table} FROM STDIN (FORMAT csv)"))
            .await
            .expect("copy in");
        futures::pin_mut!(sink);
        futures::SinkExt::send(&mut sink, bytes::Bytes::from(csv))
            .await
            .expect("sends rows");
        let loaded = sink.finish().await.expect("copy finishes");
        assert_eq!(loaded as usize, rows.len(), "{table}");
    }

    let dir = workspace_root().join("tests/tpch");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/tpch exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "the TPC-H queries are missing");
    for path in names {
        let sql = std::fs::read_to_string(&path).expect("query file");
        let ours = text_rows(koios, &sql).await;
        let theirs = text_rows(&pg, &sql).await;
        assert!(
            !theirs.is_empty(),
            "{} returned no rows on PostgreSQL",
            path.display()
        );
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{}: row counts differ",
            path.display()
        );
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.len(), b.len(), "{} row {i}", path.display());
            for (x, y) in a.iter().zip(b) {
                assert!(
                    same_value(x, y),
                    "{} row {i}: Koios {a:?} vs PostgreSQL {b:?}",
                    path.display()
                );
            }
        }
    }
}
