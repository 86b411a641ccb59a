//! MongoDB scan benchmark (issue: MongoDB connector).
//!
//! Loads 100 000 order documents (scalars, a decimal, a date, a nested
//! customer document and an array of line documents) into the database
//! `koios_bench` of the test MongoDB once, then measures in one run:
//!
//! * (a) the official Rust driver iterating a `find` cursor and decoding
//!   every document into a `bson::Document` — the plain driver loop, the
//!   baseline;
//! * (b) Koios scanning the collection into Arrow record batches.
//!
//! Run: `cargo bench --bench mongodb_scan` (MongoDB from
//! `KOIOS_TEST_MONGODB_URL`, else the test server on 127.0.0.1:27017 that
//! `scripts/services.sh` starts).

#[allow(dead_code)] // each benchmark uses part of the shared helpers
mod common;

use std::time::{Duration, Instant};

use common::{best, koios_scan};
use futures::TryStreamExt;
use koios::config::Config;
use koios::engine::Engine;
use mongodb::bson::{Decimal128, Document, doc};

const DATABASE: &str = "koios_bench";
const COLLECTION: &str = "orders";
const DOCUMENTS: i64 = 100_000;
const RUNS: usize = 3;

fn url() -> String {
    std::env::var("KOIOS_TEST_MONGODB_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27017/?directConnection=true".into())
}

fn order(i: i64) -> Document {
    let cents = (i * 7919) % 5_000_000;
    let mut total = [0u8; 16];
    // Decimal128 with exponent -2: coefficient | (6176 - 2) << 113.
    total.copy_from_slice(&((cents as u128) | ((6174u128) << 113)).to_le_bytes());
    let status = ["O", "F", "P"][(i % 3) as usize];
    doc! {
        "_id": i,
        "custkey": (i % 15_000) as i32,
        "status": status,
        "total": Decimal128::from_bytes(total),
        "date": mongodb::bson::DateTime::from_millis(694_224_000_000 + i * 60_000),
        "priority": format!("{}-PRIORITY", i % 5 + 1),
        "comment": format!("order {i} packages sleep furiously above the ideas"),
        "customer": { "name": format!("Customer#{:09}", i % 15_000), "nation": (i % 25) as i32 },
        "lines": (0..3).map(|l| doc! { "line": l, "qty": ((i + l) % 50) as i32, "price": (i % 1000) as f64 + 0.5 }).collect::<Vec<_>>(),
    }
}

async fn load(client: &mongodb::Client) {
    let collection = client.database(DATABASE).collection::<Document>(COLLECTION);
    let count = collection
        .estimated_document_count()
        .await
        .expect("MongoDB reachable (scripts/services.sh)");
    if count == DOCUMENTS as u64 {
        return;
    }
    eprintln!("loading {DOCUMENTS} documents into {DATABASE}.{COLLECTION} ...");
    collection.drop().await.expect("drop");
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..DOCUMENTS {
        batch.push(order(i));
        if batch.len() == 10_000 {
            collection
                .insert_many(std::mem::take(&mut batch))
                .await
                .expect("insert");
        }
    }
}

async fn driver_loop(client: &mongodb::Client) -> (Duration, usize) {
    let collection = client.database(DATABASE).collection::<Document>(COLLECTION);
    let started = Instant::now();
    let mut cursor = collection.find(doc! {}).await.expect("find");
    let mut n = 0;
    while let Some(document) = cursor.try_next().await.expect("document") {
        std::hint::black_box(&document);
        n += 1;
    }
    (started.elapsed(), n)
}

#[tokio::main]
async fn main() {
    let client = mongodb::Client::with_uri_str(url()).await.expect("URL");
    load(&client).await;
    let config = format!(
        r#"
[[source]]
name = "mongo"
kind = "mongodb"
url = "{}"
databases = ["{DATABASE}"]
"#,
        url()
    );
    let config =
        Config::parse(&config, std::path::Path::new("bench.toml"), &|_| None).expect("config");
    let engine = Engine::start(&config).await.expect("engine");
    let (mut direct, mut koios) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (t, n) = driver_loop(&client).await;
        assert_eq!(n as i64, DOCUMENTS);
        direct.push(t);
        let (t, n) = koios_scan(&engine, &format!("mongo.{DATABASE}.{COLLECTION}")).await;
        assert_eq!(n as i64, DOCUMENTS);
        koios.push(t);
    }
    let (direct, koios) = (best(direct), best(koios));
    let rate = |d: Duration| DOCUMENTS as f64 / d.as_secs_f64();
    println!("{DOCUMENTS} nested documents, best of {RUNS} runs");
    println!("| measurement | time | documents/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| (a) Rust driver: find + decode each document | {:.2} s | {:.0} | 1.00 (baseline) |",
        direct.as_secs_f64(),
        rate(direct)
    );
    println!(
        "| (b) Koios scan into Arrow | {:.2} s | {:.0} | {:.2}× the driver loop's rate |",
        koios.as_secs_f64(),
        rate(koios),
        rate(koios) / rate(direct)
    );
}
