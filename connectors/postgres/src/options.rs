//! Options of a `kind = "postgres"` source.

use datafusion::error::{DataFusionError, Result};
use koios_connector::SourceSpec;

/// What to do with columns of types Koios does not map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedTypes {
    /// Fail when the table is used, naming table, column and type.
    Error,
    /// Leave the column out.
    Skip,
    /// Read it through a `::text` cast (the default).
    Text,
}

/// How many partitions a scan is split into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitPolicy {
    Fixed(usize),
    /// One partition per `rows_per_partition` estimated rows, up to the
    /// session's target partitions.
    Auto {
        rows_per_partition: usize,
    },
}

#[derive(Debug, Clone)]
pub struct PgOptions {
    pub schemas: Option<Vec<String>>,
    /// `None`: as the URL's `sslmode` says (libpq's default, prefer).
    pub tls: Option<crate::tls::TlsMode>,
    pub tls_ca_file: Option<String>,
    pub pool_size: usize,
    pub split: SplitPolicy,
    pub unsupported_types: UnsupportedTypes,
}

pub const KNOWN_OPTIONS: &[&str] = &[
    "schemas",
    "pool_size",
    "split_count",
    "unsupported_types",
    "tls",
    "tls_ca_file",
];

impl PgOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.reject_unknown_options(KNOWN_OPTIONS)?;
        let bad = |key: &str, expected: &str| {
            DataFusionError::Configuration(format!(
                "source '{}': option '{key}' must be {expected}",
                spec.name
            ))
        };
        let schemas = match spec.options.get("schemas") {
            None => None,
            Some(toml::Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| bad("schemas", "a list of strings"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => return Err(bad("schemas", "a list of strings")),
        };
        let pool_size = spec.option_usize("pool_size")?.unwrap_or(8).max(1);
        let split = match spec.options.get("split_count") {
            None => SplitPolicy::Auto {
                rows_per_partition: 500_000,
            },
            Some(toml::Value::String(s)) if s == "auto" => SplitPolicy::Auto {
                rows_per_partition: 500_000,
            },
            Some(toml::Value::Integer(n)) if *n >= 1 => SplitPolicy::Fixed(*n as usize),
            Some(_) => return Err(bad("split_count", "a positive integer or \"auto\"")),
        };
        let unsupported_types = match spec.option_str("unsupported_types")? {
            None | Some("text") => UnsupportedTypes::Text,
            Some("skip") => UnsupportedTypes::Skip,
            Some("error") => UnsupportedTypes::Error,
            Some(_) => return Err(bad("unsupported_types", "\"error\", \"skip\" or \"text\"")),
        };
        let tls = match spec.option_str("tls")? {
            None => None,
            Some(mode) => Some(crate::tls::TlsMode::parse(mode).ok_or_else(|| {
                bad(
                    "tls",
                    "\"disable\", \"prefer\", \"require\" or \"verify-full\"",
                )
            })?),
        };
        let tls_ca_file = spec.option_str("tls_ca_file")?.map(str::to_string);
        Ok(Self {
            schemas,
            tls,
            tls_ca_file,
            pool_size,
            split,
            unsupported_types,
        })
    }
}
