//! Options every SQL source accepts, parsed once for all backends.

use datafusion::error::{DataFusionError, Result};
use koios_connector::SourceSpec;

/// What to do with columns of types the backend does not map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedTypes {
    /// Fail when the table is used, naming table, column and type.
    Error,
    /// Leave the column out.
    Skip,
    /// Read it through a cast to text (the default).
    Text,
}

/// Options shared by SQL sources.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Connections kept in the pool.
    pub pool_size: usize,
    /// Fixed partitions per scan; `None`: one per 500 000 estimated rows,
    /// up to the session's parallelism.
    pub split_count: Option<usize>,
    pub unsupported_types: UnsupportedTypes,
}

/// Option names [`SqlOptions`] reads.
pub const SQL_OPTIONS: &[&str] = &["pool_size", "split_count", "unsupported_types"];

/// Estimated rows per partition when the split count is automatic.
pub const ROWS_PER_PARTITION: u64 = 500_000;

impl SqlOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        let bad = |key: &str, expected: &str| {
            DataFusionError::Configuration(format!(
                "source '{}': option '{key}' must be {expected}",
                spec.name
            ))
        };
        let split_count = match spec.options.get("split_count") {
            None => None,
            Some(toml::Value::String(s)) if s == "auto" => None,
            Some(toml::Value::Integer(n)) if *n >= 1 => Some(*n as usize),
            Some(_) => return Err(bad("split_count", "a positive integer or \"auto\"")),
        };
        let unsupported_types = match spec.option_str("unsupported_types")? {
            None | Some("text") => UnsupportedTypes::Text,
            Some("skip") => UnsupportedTypes::Skip,
            Some("error") => UnsupportedTypes::Error,
            Some(_) => return Err(bad("unsupported_types", "\"error\", \"skip\" or \"text\"")),
        };
        Ok(Self {
            pool_size: spec.option_usize("pool_size")?.unwrap_or(8).max(1),
            split_count,
            unsupported_types,
        })
    }

    /// Applies `unsupported_types` to a column: its codec (`as_text` when the
    /// type is unmapped and read as text), `None` to skip it, or an error
    /// naming the source, table, column and type.
    pub fn column_codec<C>(
        &self,
        mapped: Option<C>,
        as_text: impl FnOnce() -> C,
        source: &str,
        table: &str,
        column: &str,
        remote_type: &str,
    ) -> Result<Option<C>> {
        match (mapped, self.unsupported_types) {
            (Some(codec), _) => Ok(Some(codec)),
            (None, UnsupportedTypes::Text) => Ok(Some(as_text())),
            (None, UnsupportedTypes::Skip) => Ok(None),
            (None, UnsupportedTypes::Error) => Err(DataFusionError::Execution(format!(
                "source '{source}': table {table}, column {column}: type {remote_type} is not supported \
                 (set unsupported_types = \"text\" or \"skip\" on the source)"
            ))),
        }
    }

    /// How many partitions to read a table of `rows` estimated rows in.
    pub fn partitions(&self, rows: Option<u64>, max_partitions: usize) -> usize {
        match self.split_count {
            Some(n) => n,
            None => {
                ((rows.unwrap_or(0) / ROWS_PER_PARTITION) as usize).clamp(1, max_partitions.max(1))
            }
        }
    }
}
