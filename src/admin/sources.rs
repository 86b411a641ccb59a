//! `GET /sources`: the engine's sources as JSON.
//!
//! One function builds it, so it can follow the engine's source status as
//! that grows (origin, since, latency, table count). Nothing here may carry
//! a secret: a source's URL is not shown, and a failure's message is the one
//! the connector made (which never holds a password).

use serde_json::{Value, json};

use crate::engine::{Engine, SourceState};

/// `[{"name", "kind", "state": "ready"|"down", "error"}]`, by name.
pub fn sources_json(engine: &Engine) -> Value {
    let sources = engine
        .sources()
        .into_iter()
        .map(|(name, kind, state)| match state {
            SourceState::Ready(_) => json!({
                "name": name,
                "kind": kind,
                "state": "ready",
                "error": Value::Null,
            }),
            SourceState::Unavailable(reason) => json!({
                "name": name,
                "kind": kind,
                "state": "down",
                "error": reason,
            }),
        })
        .collect();
    Value::Array(sources)
}
