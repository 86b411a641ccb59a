//! What a migration is and how far it got: its spec, kept in the metadata
//! store as its job's checkpoint (the tables, the options, the planned
//! chunks, the chunks started and done), and the lookup of a source's
//! table it names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::error::{DataFusionError, Result};
use serde::{Deserialize, Serialize};

use super::chunk::Chunk;
use super::row_order::ChunkSum;
use super::statement::MigrateOptions;
use crate::engine::Engine;

/// A table of a source: `source.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    pub source: String,
    pub schema: String,
    pub table: String,
}

impl SourceTable {
    /// `source.schema.table` as a reference.
    pub fn reference(&self) -> datafusion::common::TableReference {
        datafusion::common::TableReference::full(
            self.source.as_str(),
            self.schema.as_str(),
            self.table.as_str(),
        )
    }
}

impl std::fmt::Display for SourceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.schema, self.table)
    }
}

/// A migration and its checkpoints: the job's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    pub source: SourceTable,
    pub destination: SourceTable,
    pub options: MigrateOptions,
    /// The destination is ready (created, emptied or checked).
    #[serde(default)]
    pub prepared: bool,
    /// The integer key the chunks are ranges of (`None`: one chunk).
    #[serde(default)]
    pub key: Option<String>,
    /// The chunks, once planned.
    #[serde(default)]
    pub chunks: Option<Vec<Chunk>>,
    /// Chunks a run began writing.
    #[serde(default)]
    pub started: BTreeSet<usize>,
    /// Chunks copied and verified.
    #[serde(default)]
    pub done: BTreeSet<usize>,
    /// The chunks are ranges of the source's physical row order (it has no
    /// integer key: see [`super::row_order`]).
    #[serde(default)]
    pub row_order: bool,
    /// Each finished chunk of the row order, its source rows summed.
    #[serde(default)]
    pub sums: BTreeMap<usize, ChunkSum>,
}

impl Migration {
    /// A migration not yet begun.
    pub fn new(source: SourceTable, destination: SourceTable, options: MigrateOptions) -> Self {
        Migration {
            source,
            destination,
            options,
            prepared: false,
            key: None,
            chunks: None,
            started: BTreeSet::new(),
            done: BTreeSet::new(),
            row_order: false,
            sums: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| DataFusionError::Internal(format!("migration spec: {e}")))
    }

    pub fn from_json(text: &str) -> Result<Migration> {
        serde_json::from_str(text).map_err(|e| {
            DataFusionError::Execution(format!("a migration's spec Koios cannot read: {e}"))
        })
    }
}

/// A source's table, or why it cannot be reached.
pub async fn table_of(
    engine: &Engine,
    name: &SourceTable,
) -> Result<Option<Arc<dyn TableProvider>>> {
    let source = engine.live_source(&name.source)?;
    match source.catalog().schema(&name.schema) {
        Some(schema) => schema.table(&name.table).await,
        None => Ok(None),
    }
}
