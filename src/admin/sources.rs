//! `GET /sources`: `koios.system.sources` as JSON.
//!
//! Nothing here may carry a secret: a source's URL is shown with its
//! password replaced by `***`, and a failure's message is the one the
//! connector made (which never holds a password).

use serde_json::{Value, json};

use crate::engine::Engine;

/// `[{"name", "kind", "origin", "url", "state": "ready"|"down", "since",
/// "last_error", "latency_ms", "tables"}]`, by name.
pub fn sources_json(engine: &Engine) -> Value {
    let sources = engine
        .source_statuses()
        .into_iter()
        .map(|s| {
            let since = chrono::DateTime::<chrono::Utc>::from(s.since)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            json!({
                "name": s.name,
                "kind": s.kind,
                "origin": s.origin,
                "url": s.url,
                "state": s.state,
                "since": since,
                "last_error": s.last_error,
                "latency_ms": s.latency_ms,
                "tables": s.tables,
            })
        })
        .collect();
    Value::Array(sources)
}
