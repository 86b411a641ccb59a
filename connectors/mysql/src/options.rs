//! Options of a `kind = "mysql"` source (MySQL and MariaDB).

use datafusion::error::{DataFusionError, Result};
use koios_connector::SourceSpec;

use crate::types::InvalidDates;

/// What to do with columns of types Koios does not map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedTypes {
    Error,
    Skip,
    Text,
}

#[derive(Debug, Clone)]
pub struct MyOptions {
    /// Databases exposed as schemas; `None`: the URL's database, or all.
    pub databases: Option<Vec<String>>,
    pub pool_size: usize,
    /// Fixed partition count, or `None` for automatic.
    pub split_count: Option<usize>,
    pub unsupported_types: UnsupportedTypes,
    pub invalid_dates: InvalidDates,
}

pub const KNOWN_OPTIONS: &[&str] = &[
    "databases",
    "pool_size",
    "split_count",
    "unsupported_types",
    "invalid_dates",
    "tls",
];

impl MyOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.reject_unknown_options(KNOWN_OPTIONS)?;
        let bad = |key: &str, expected: &str| {
            DataFusionError::Configuration(format!(
                "source '{}': option '{key}' must be {expected}",
                spec.name
            ))
        };
        let databases = match spec.options.get("databases") {
            None => None,
            Some(toml::Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| bad("databases", "a list of strings"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => return Err(bad("databases", "a list of strings")),
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
        let invalid_dates = match spec.option_str("invalid_dates")? {
            None | Some("null") => InvalidDates::Null,
            Some("error") => InvalidDates::Error,
            Some(_) => return Err(bad("invalid_dates", "\"null\" or \"error\"")),
        };
        match spec.option_str("tls")? {
            None | Some("disable") | Some("prefer") => {}
            Some("require") | Some("verify-full") => {
                return Err(DataFusionError::NotImplemented(format!(
                    "source '{}': tls = \"require\" / \"verify-full\" is not implemented yet",
                    spec.name
                )));
            }
            Some(_) => {
                return Err(bad(
                    "tls",
                    "\"disable\", \"prefer\", \"require\" or \"verify-full\"",
                ));
            }
        }
        Ok(Self {
            databases,
            pool_size: spec.option_usize("pool_size")?.unwrap_or(8).max(1),
            split_count,
            unsupported_types,
            invalid_dates,
        })
    }
}
