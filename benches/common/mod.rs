//! Helpers the benchmarks share: timing and an in-process Koios scan.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use koios::engine::Engine;
use koios::session::{Output, Session};

/// The fastest of several runs.
pub fn best(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.first().copied().unwrap_or_default()
}

/// Runs `SELECT * FROM <table>` in-process and consumes every record batch;
/// returns the elapsed time and the row count.
pub async fn koios_scan(engine: &Arc<Engine>, table: &str) -> (Duration, usize) {
    let session = Session::new(Arc::clone(engine), "koios");
    let started = Instant::now();
    let mut rows = 0;
    for output in session
        .run_sql(&format!("SELECT * FROM {table}"))
        .await
        .expect("scan plans")
    {
        if let Output::Rows { mut stream, .. } = output {
            while let Some(batch) = stream.next().await {
                rows += batch.expect("batch").num_rows();
            }
        }
    }
    (started.elapsed(), rows)
}

/// A client of the local PostgreSQL (127.0.0.1:5432, trust), the connection
/// driven in the background.
#[allow(dead_code)] // not every benchmark reads PostgreSQL directly
pub async fn pg_connect(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/services.sh)");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
