//! Where the time of a small query goes (issue: PostgreSQL connector, the
//! selective-query target).
//!
//! Runs one index-served query (`l_orderkey` range, ~40 rows, on the
//! `koios_bench.lineitem` table `postgres_scan` loads) many times and
//! reports the median of:
//!
//! * PostgreSQL directly (tokio-postgres, simple protocol) — the baseline;
//! * the remote statement Koios used to send (`COPY (SELECT …) TO STDOUT
//!   (FORMAT binary)` through `copy_out`, which prepares it first) and the
//!   one it sends now for an index lookup (the query, parse/bind/execute in
//!   one round trip, binary rows);
//! * Koios planning only: SQL → logical → optimized → physical plan;
//! * Koios executing an already planned query;
//! * Koios in-process: plan and execute, record batches collected;
//! * Koios over pgwire (simple protocol), as a client sees it.
//!
//! Run: `cargo bench --bench postgres_scan` once (loads the data), then
//! `cargo bench --bench query_latency`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use koios::config::Config;
use koios::engine::Engine;
use koios::server::Server;
use koios::session::{Output, Session};
use tokio_postgres::NoTls;

const RUNS: usize = 200;
const QUERY: &str = "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode FROM public.lineitem \
                     WHERE l_orderkey BETWEEN 3000000 AND 3000040";

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn timed<F, Fut>(mut run: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..10 {
        run().await; // warm up
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        run().await;
        times.push(started.elapsed());
    }
    median(times)
}

async fn connect(conn: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client
}

#[tokio::main]
async fn main() {
    let config = r#"
[[source]]
name = "pg"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/koios_bench"
split_count = 1
"#;
    let config =
        Config::parse(config, std::path::Path::new("bench.toml"), &|_| None).expect("config");
    let engine = Engine::start(&config).await.expect("engine");
    let direct = connect("host=127.0.0.1 port=5432 user=postgres dbname=koios_bench").await;
    let rows = direct
        .simple_query(QUERY)
        .await
        .expect("the table is loaded")
        .len();

    let direct_time = timed(|| async {
        direct.simple_query(QUERY).await.expect("direct");
    })
    .await;
    let copy = format!("COPY ({QUERY}) TO STDOUT (FORMAT binary)");
    let copy_time = timed(|| async {
        let stream = direct.copy_out(copy.as_str()).await.expect("copy");
        let chunks: Vec<_> = stream.try_collect().await.expect("chunks");
        std::hint::black_box(chunks);
    })
    .await;

    // What Koios sends for an index lookup since it reads those in one
    // round trip: the query itself, parse/bind/execute pipelined, binary rows.
    let one_trip_time = timed(|| async {
        let rows = direct
            .query_typed_raw(
                QUERY,
                std::iter::empty::<(&str, tokio_postgres::types::Type)>(),
            )
            .await
            .expect("query");
        let rows: Vec<_> = rows.try_collect().await.expect("rows");
        std::hint::black_box(rows);
    })
    .await;

    let session = Session::new(Arc::clone(&engine), "pg");
    let plan_time = timed(|| async {
        let frame = session.context().sql(QUERY).await.expect("plans");
        let plan = frame.create_physical_plan().await.expect("physical plan");
        std::hint::black_box(plan);
    })
    .await;
    let plan = session
        .context()
        .sql(QUERY)
        .await
        .expect("plans")
        .create_physical_plan()
        .await
        .expect("physical plan");
    let task = session.context().task_ctx();
    let execute_time = timed(|| async {
        let stream =
            datafusion::physical_plan::execute_stream(Arc::clone(&plan), Arc::clone(&task))
                .expect("executes");
        let batches: Vec<_> = stream.try_collect().await.expect("batches");
        std::hint::black_box(batches);
    })
    .await;
    let in_process_time = timed(|| async {
        for output in session.run_sql(QUERY).await.expect("runs") {
            if let Output::Rows { mut stream, .. } = output {
                while let Some(batch) = stream.next().await {
                    std::hint::black_box(batch.expect("batch"));
                }
            }
        }
    })
    .await;

    let server = Server::bind(Arc::clone(&engine), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let port = server.local_addr().expect("addr").port();
    tokio::spawn(server.run());
    let koios = connect(&format!("host=127.0.0.1 port={port} user=koios dbname=pg")).await;
    assert_eq!(koios.simple_query(QUERY).await.expect("koios").len(), rows);
    let wire_time = timed(|| async {
        koios.simple_query(QUERY).await.expect("koios");
    })
    .await;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("median of {RUNS} runs, {} result messages", rows);
    println!("| step | time | × direct |");
    println!("|---|---|---|");
    for (name, t) in [
        ("PostgreSQL directly (simple protocol)", direct_time),
        (
            "the remote COPY Koios sent before (prepare + copy out)",
            copy_time,
        ),
        (
            "the remote read Koios sends now (one round trip, binary rows)",
            one_trip_time,
        ),
        ("Koios planning only (SQL → physical plan)", plan_time),
        ("Koios executing a planned query", execute_time),
        ("Koios in-process (plan + execute)", in_process_time),
        ("Koios over pgwire", wire_time),
    ] {
        println!(
            "| {name} | {:.3} ms | {:.2} |",
            ms(t),
            t.as_secs_f64() / direct_time.as_secs_f64()
        );
    }
}
