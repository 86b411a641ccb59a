//! Background jobs: a copy added to a mirrored table is filled by a job
//! that `koios.system.jobs` shows with its progress, that `PAUSE JOB`
//! holds, `RESUME JOB` lets go on and `CANCEL JOB` stops (dropping the
//! copy again), and whose row outlives a restart of Koios.

mod support;

use std::time::{Duration, Instant};

use support::TestServer;

/// The newest job's id, state, rows done and rows in all.
async fn newest_job(client: &tokio_postgres::Client) -> (i64, String, i64, Option<i64>) {
    let row = client
        .query_one(
            "SELECT id, state, rows_done, rows_total FROM koios.system.jobs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("reads koios.system.jobs");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// Each copy of `koios.public.big` and its state.
async fn copies(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT member, copy_state FROM koios.system.members \
             WHERE \"table\" = 'koios.public.big' ORDER BY position",
            &[],
        )
        .await
        .expect("reads koios.system.members")
        .iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect()
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_filled_by_a_job_that_pauses_resumes_and_cancels() {
    let first = support::PgTestDatabase::create();
    let second = support::PgTestDatabase::create();
    let third = support::PgTestDatabase::create();
    let metadata = support::ScratchMetadata::create();
    let text = format!(
        "[server]\nmetadata = \"{}\"\nhealth_interval = \"1s\"\n\n\
         [[source]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n\n\
         [[source]]\nname = \"pg2\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n\n\
         [[source]]\nname = \"pg3\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        metadata.path.display(),
        first.name,
        second.name,
        third.name
    );
    let server = TestServer::start_toml(&text, &|_| None).await;
    let client = server.connect("koios").await;
    let rows = 200_000i64;
    client
        .batch_execute(&format!(
            "CREATE TABLE koios.public.big (id bigint PRIMARY KEY, v text) MIRRORED ON (pg.public.big); \
             INSERT INTO koios.public.big SELECT value, 'v' || value FROM generate_series(1, {rows})"
        ))
        .await
        .expect("creates and fills the mirrored table");

    // A new copy: its job is listed at once; paused before (or while) it
    // copies, it stays where it is.
    client
        .batch_execute("ALTER TABLE koios.public.big ADD MIRROR pg2.public.big")
        .await
        .expect("adds a copy");
    let (job, _, _, _) = newest_job(&client).await;
    client
        .batch_execute(&format!("PAUSE JOB {job}"))
        .await
        .expect("pauses");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, state, done, _) = newest_job(&client).await;
    assert_eq!(state, "paused");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, state, still, _) = newest_job(&client).await;
    assert_eq!(
        (state.as_str(), still),
        ("paused", done),
        "a paused job copies nothing"
    );
    assert_eq!(
        copies(&client).await,
        ["pg.public.big current", "pg2.public.big stale"]
    );
    // Writes go on meanwhile; the new copy gets them through its journal.
    client
        .batch_execute(&format!(
            "INSERT INTO koios.public.big VALUES ({}, 'during'); UPDATE koios.public.big SET v = 'changed' WHERE id = 1",
            rows + 1
        ))
        .await
        .expect("writes while the copy is filled");

    client
        .batch_execute(&format!("RESUME JOB {job}"))
        .await
        .expect("resumes");
    wait_for("the new copy to be current", || async {
        copies(&client).await == ["pg.public.big current", "pg2.public.big current"]
    })
    .await;
    wait_for("the job to be done", || async {
        newest_job(&client).await.1 == "done"
    })
    .await;
    // The fill read the rows as they were when it ran (with or without the
    // row inserted meanwhile, by when it got past the pause).
    let (_, _, done, total) = newest_job(&client).await;
    assert_eq!(total, Some(done), "rows done and in all");
    assert!(done == rows || done == rows + 1, "{done} rows done");
    let filled = support::postgres_client(&second.name)
        .await
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE v = 'changed') FROM public.big",
            &[],
        )
        .await
        .expect("reads the new copy");
    assert_eq!(
        (filled.get::<_, i64>(0), filled.get::<_, i64>(1)),
        (rows + 1, 1)
    );
    let error = support::query_error(&client, &format!("CANCEL JOB {job}")).await;
    assert!(
        error.contains(&format!(
            "job {job} is done: only a running or paused job can be cancelled"
        )),
        "{error}"
    );

    // A cancelled fill drops its copy again; the copy's table stays.
    client
        .batch_execute("ALTER TABLE koios.public.big ADD MIRROR pg3.public.big")
        .await
        .expect("adds a third copy");
    let (cancelled, _, _, _) = newest_job(&client).await;
    client
        .batch_execute(&format!("PAUSE JOB {cancelled}; CANCEL JOB {cancelled}"))
        .await
        .expect("cancels");
    wait_for("the cancelled copy to be dropped", || async {
        copies(&client).await == ["pg.public.big current", "pg2.public.big current"]
    })
    .await;
    assert_eq!(newest_job(&client).await.1, "cancelled");
    let kept = support::postgres_client(&third.name)
        .await
        .query_one("SELECT to_regclass('public.big') IS NOT NULL", &[])
        .await
        .expect("reads the third database");
    assert!(kept.get::<_, bool>(0), "the dropped copy's table stays");

    // The jobs' rows outlive the server.
    drop(client);
    drop(server);
    let server = TestServer::start_toml(&text, &|_| None).await;
    let client = server.connect("koios").await;
    let states: Vec<String> = client
        .query("SELECT state FROM koios.system.jobs ORDER BY id", &[])
        .await
        .expect("reads the jobs after a restart")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["done", "cancelled"]);
    client
        .batch_execute("DROP TABLE koios.public.big CASCADE")
        .await
        .expect("drops");
}
