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
//! * Koios planning only: SQL → logical → optimized → physical plan, and
//!   each step alone on one reused state (as a session plans), plus the
//!   session's own parse / prepare / uncached execute and a freshly planned
//!   plan run;
//! * Koios executing an already planned query;
//! * Koios in-process, as a session runs a statement: repeated (the session
//!   runs the plan it cached for the text) and with a new text each run (a
//!   comment that differs: planned each time);
//! * Koios over pgwire (simple protocol), as a client sees it, both ways;
//! * a prepared statement with parameters (extended protocol), directly and
//!   through Koios (which binds each execution's values into the generic
//!   plan it made at the first: the remote scan sends them as parameters).
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

// Koios runs in-process here: with the `koios` binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 200;
const QUERY: &str = "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode FROM public.lineitem \
                     WHERE l_orderkey BETWEEN 3000000 AND 3000040";
const PARAMETERIZED: &str = "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode \
                             FROM public.lineitem WHERE l_orderkey BETWEEN $1 AND $2";

/// The query with a comment that makes each run's text new.
fn new_text(run: &std::cell::Cell<usize>) -> String {
    run.set(run.get() + 1);
    format!("{QUERY} /* run {} */", run.get())
}

/// The median and the best of a step's runs.
#[derive(Clone, Copy)]
struct Timing {
    median: Duration,
    best: Duration,
}

async fn timed<F, Fut>(mut run: F) -> Timing
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
    times.sort();
    Timing {
        median: times[times.len() / 2],
        best: times[0],
    }
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
    let row_count = direct.query(QUERY, &[]).await.expect("rows").len();

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
    // The planning steps on one state, as a session now plans.
    let state = session.context().state();
    let logical_time = timed(|| async {
        let plan = state.create_logical_plan(QUERY).await.expect("logical");
        std::hint::black_box(plan);
    })
    .await;
    let logical = state.create_logical_plan(QUERY).await.expect("logical");
    let optimize_time = timed(|| async {
        std::hint::black_box(state.optimize(&logical).expect("optimizes"));
    })
    .await;
    let optimized = state.optimize(&logical).expect("optimizes");
    let physical_time = timed(|| async {
        let plan = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await
            .expect("physical");
        std::hint::black_box(plan);
    })
    .await;
    // A session's own steps for a new text.
    let parse_time = timed(|| async {
        std::hint::black_box(koios::session::parse_sql(QUERY).expect("parses"));
    })
    .await;
    let statement = koios::session::parse_sql(QUERY)
        .expect("parses")
        .pop()
        .expect("one statement");
    let prepare_time = timed(|| async {
        let prepared = session
            .prepare_text(&statement, QUERY)
            .await
            .expect("prepares");
        std::hint::black_box(prepared);
    })
    .await;
    // Executing a prepared statement the cache does not serve: optimize,
    // plan physically, run.
    let mut uncached = session
        .prepare_text(&statement, QUERY)
        .await
        .expect("prepares");
    if let koios::session::Prepared::Plan { cache_key, .. } = &mut uncached {
        *cache_key = None;
    }
    let uncached_time = timed(|| async {
        if let Output::Rows { mut stream, .. } = session
            .execute(&uncached, Vec::new())
            .await
            .expect("executes")
        {
            while let Some(batch) = stream.next().await {
                std::hint::black_box(batch.expect("batch"));
            }
        }
    })
    .await;
    let task_ctx = state.task_ctx();
    let fresh_time = timed(|| async {
        let plan = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await
            .expect("physical");
        let stream = datafusion::physical_plan::execute_stream(plan, Arc::clone(&task_ctx))
            .expect("executes");
        let batches: Vec<_> = stream.try_collect().await.expect("batches");
        std::hint::black_box(batches);
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
    let run_in_process = |sql: String| {
        let session = &session;
        async move {
            for output in session.run_sql(&sql).await.expect("runs") {
                if let Output::Rows { mut stream, .. } = output {
                    while let Some(batch) = stream.next().await {
                        std::hint::black_box(batch.expect("batch"));
                    }
                }
            }
        }
    };
    let in_process_time = timed(|| run_in_process(QUERY.to_string())).await;
    let run = std::cell::Cell::new(0);
    let in_process_new_time = timed(|| run_in_process(new_text(&run))).await;

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
    let wire_new_time = timed(|| async {
        let sql = new_text(&run);
        koios.simple_query(&sql).await.expect("koios");
    })
    .await;
    let ranged = |run: &std::cell::Cell<usize>| {
        run.set(run.get() + 1);
        let low = 3_000_000 + 1000 * (run.get() % 1000);
        format!(
            "SELECT l_orderkey, l_linenumber, l_extendedprice, l_shipmode FROM public.lineitem \
             WHERE l_orderkey BETWEEN {low} AND {}",
            low + 40
        )
    };
    let direct_range_time = timed(|| async {
        let sql = ranged(&run);
        direct.simple_query(&sql).await.expect("direct");
    })
    .await;
    let wire_range_time = timed(|| async {
        let sql = ranged(&run);
        koios.simple_query(&sql).await.expect("koios");
    })
    .await;
    // The front ends alone: a query no table serves.
    let direct_one_time = timed(|| async {
        direct.simple_query("SELECT 1").await.expect("direct");
    })
    .await;
    let wire_one_time = timed(|| async {
        koios.simple_query("SELECT 1").await.expect("koios");
    })
    .await;
    let bounds = (3_000_000i64, 3_000_040i64);
    let direct_statement = direct.prepare(PARAMETERIZED).await.expect("prepares");
    let direct_prepared_time = timed(|| async {
        let rows = direct
            .query(&direct_statement, &[&bounds.0, &bounds.1])
            .await
            .expect("direct");
        assert_eq!(rows.len(), row_count);
    })
    .await;
    let koios_statement = koios.prepare(PARAMETERIZED).await.expect("prepares");
    let koios_prepared_time = timed(|| async {
        let rows = koios
            .query(&koios_statement, &[&bounds.0, &bounds.1])
            .await
            .expect("koios");
        assert_eq!(rows.len(), row_count);
    })
    .await;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("median of {RUNS} runs, {} result messages", rows);
    println!("| step | median | × direct | best | × direct |");
    println!("|---|---|---|---|---|");
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
        ("… of which SQL → logical plan", logical_time),
        ("… of which logical optimization", optimize_time),
        (
            "… of which physical planning (incl. physical optimizers)",
            physical_time,
        ),
        ("session: parse_sql", parse_time),
        ("session: prepare (SQL AST → logical plan)", prepare_time),
        ("session: execute, not cached (plan + run)", uncached_time),
        ("physical planning + run of a fresh plan", fresh_time),
        ("Koios executing a planned query", execute_time),
        (
            "Koios in-process, repeated query (cached plan)",
            in_process_time,
        ),
        (
            "Koios in-process, new text each run (planned)",
            in_process_new_time,
        ),
        ("Koios over pgwire, repeated query", wire_time),
        ("Koios over pgwire, new text each run", wire_new_time),
        (
            "PostgreSQL directly, another range each run",
            direct_range_time,
        ),
        ("Koios over pgwire, another range each run", wire_range_time),
        ("PostgreSQL directly, SELECT 1", direct_one_time),
        ("Koios over pgwire, SELECT 1 (cached plan)", wire_one_time),
        (
            "PostgreSQL directly, prepared statement with parameters",
            direct_prepared_time,
        ),
        (
            "Koios over pgwire, prepared statement with parameters",
            koios_prepared_time,
        ),
    ] {
        println!(
            "| {name} | {:.3} ms | {:.2} | {:.3} ms | {:.2} |",
            ms(t.median),
            t.median.as_secs_f64() / direct_time.median.as_secs_f64(),
            ms(t.best),
            t.best.as_secs_f64() / direct_time.best.as_secs_f64()
        );
    }
}
