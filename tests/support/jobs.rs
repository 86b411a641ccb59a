//! Background jobs as a test watches them in `koios.system.jobs`.

use std::time::{Duration, Instant};

/// The job's state, rows done and error.
pub async fn job_state(client: &tokio_postgres::Client, id: i64) -> (String, i64, Option<String>) {
    let row = client
        .query_one(
            "SELECT state, rows_done, error FROM koios.system.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("reads koios.system.jobs");
    (row.get(0), row.get(1), row.get(2))
}

/// Waits until job `id` is in `state` (up to `limit`).
pub async fn wait_for(client: &tokio_postgres::Client, id: i64, state: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = job_state(client, id).await;
        if now.0 == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is not {state} after {limit:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until job `id` has copied some rows but not all.
pub async fn wait_until_under_way(client: &tokio_postgres::Client, id: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (state, done, error) = job_state(client, id).await;
        assert!(
            state == "running" && error.is_none(),
            "job {id}: {state} {error:?}"
        );
        if done > 0 {
            return done;
        }
        assert!(Instant::now() < deadline, "job {id} copied nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
