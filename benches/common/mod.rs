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
