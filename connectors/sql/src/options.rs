//! Options every SQL source accepts (`pool_size`, `split_count`,
//! `unsupported_types`, and the TLS pair it embeds), declared once for all
//! backends: each SQL connector's options struct embeds [`SqlOptions`] as
//! its [`OptionGroup`].

use std::fmt;

use datafusion::error::{DataFusionError, Result};
use koios_connector::options::non_negative;
use koios_connector::{OptionGroup, TlsOptions};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// What to do with columns of types the backend does not map
/// (`unsupported_types = "text" | "skip" | "error"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsupportedTypes {
    /// Fail when the table is used, naming table, column and type.
    Error,
    /// Leave the column out.
    Skip,
    /// Read it through a cast to text (the default).
    #[default]
    Text,
}

/// How many partitions a scan reads (`split_count = N | "auto"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SplitCount {
    /// One per [`ROWS_PER_PARTITION`] estimated rows, up to the session's
    /// parallelism (the default).
    #[default]
    Auto,
    /// Always this many (at least 1).
    Fixed(usize),
}

impl<'de> Deserialize<'de> for SplitCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SplitCountVisitor)
    }
}

struct SplitCountVisitor;

impl Visitor<'_> for SplitCountVisitor {
    type Value = SplitCount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer or \"auto\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SplitCount, E> {
        match usize::try_from(v) {
            Ok(n) if n >= 1 => Ok(SplitCount::Fixed(n)),
            _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SplitCount, E> {
        match usize::try_from(v) {
            Ok(n) if n >= 1 => Ok(SplitCount::Fixed(n)),
            _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SplitCount, E> {
        match v {
            "auto" => Ok(SplitCount::Auto),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

/// Options shared by SQL sources.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlOptions {
    /// Connections kept in the pool (default 8; 0 is read as 1).
    #[serde(default = "default_pool_size", deserialize_with = "pool_size")]
    pub pool_size: usize,
    #[serde(default)]
    pub split_count: SplitCount,
    #[serde(default)]
    pub unsupported_types: UnsupportedTypes,
    /// `tls` and `tls_ca_file`; `mode: None` lets the connector fall back to
    /// what its URL says.
    #[serde(skip)]
    pub tls: TlsOptions,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            pool_size: default_pool_size(),
            split_count: SplitCount::Auto,
            unsupported_types: UnsupportedTypes::Text,
            tls: TlsOptions::default(),
        }
    }
}

impl OptionGroup for SqlOptions {
    type Embedded = TlsOptions;

    fn embed(&mut self, tls: TlsOptions) {
        self.tls = tls;
    }
}

fn default_pool_size() -> usize {
    8
}

/// A pool of no connections could never run a query: 0 means the smallest
/// pool, as it always has.
fn pool_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    non_negative(d).map(|n| n.max(1))
}

/// Estimated rows per partition when the split count is automatic.
pub const ROWS_PER_PARTITION: u64 = 500_000;

impl SqlOptions {
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
            SplitCount::Fixed(n) => n,
            SplitCount::Auto => {
                ((rows.unwrap_or(0) / ROWS_PER_PARTITION) as usize).clamp(1, max_partitions.max(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koios_connector::{SourceSpec, TlsMode};

    fn parse(options: &str) -> Result<SqlOptions> {
        SourceSpec::from_toml("db", "postgres", options)?.parse_option_group()
    }

    #[test]
    fn defaults_and_every_accepted_spelling() {
        let defaults = parse("").expect("valid");
        assert_eq!(defaults, SqlOptions::default());
        assert_eq!(defaults.pool_size, 8);
        assert_eq!(defaults.split_count, SplitCount::Auto);
        assert_eq!(defaults.unsupported_types, UnsupportedTypes::Text);
        assert_eq!(parse("pool_size = 0").expect("valid").pool_size, 1);
        assert_eq!(parse("pool_size = 3").expect("valid").pool_size, 3);
        assert_eq!(
            parse("split_count = \"auto\"").expect("valid").split_count,
            SplitCount::Auto
        );
        assert_eq!(
            parse("split_count = 4").expect("valid").split_count,
            SplitCount::Fixed(4)
        );
        for (written, parsed) in [
            ("text", UnsupportedTypes::Text),
            ("skip", UnsupportedTypes::Skip),
            ("error", UnsupportedTypes::Error),
        ] {
            let options = parse(&format!("unsupported_types = \"{written}\"")).expect("valid");
            assert_eq!(options.unsupported_types, parsed);
        }
        let tls = parse("tls = \"require\"").expect("valid").tls;
        assert_eq!(tls.mode, Some(TlsMode::Require));
    }

    #[test]
    fn errors_name_the_key() {
        let message = |options: &str| parse(options).expect_err(options).to_string();
        assert!(
            message("split_count = 0")
                .contains("option 'split_count': invalid value: integer `0`, expected a positive integer or \"auto\""),
            "{}",
            message("split_count = 0")
        );
        assert!(message("split_count = \"many\"").contains("option 'split_count'"));
        assert!(
            message("unsupported_types = \"drop\"").contains(
                "option 'unsupported_types': unknown variant `drop`, expected one of `error`, `skip`, `text`"
            )
        );
        assert!(message("pool_size = -1").contains(
            "option 'pool_size': invalid value: integer `-1`, expected a non-negative integer"
        ));
        assert!(message("pool_sise = 1").contains(
            "option 'pool_sise': unknown field `pool_sise`, expected one of `pool_size`, \
             `split_count`, `unsupported_types`, `tls`, `tls_ca_file`"
        ));
    }

    #[test]
    fn automatic_split_follows_the_row_estimate() {
        let auto = SqlOptions::default();
        assert_eq!(auto.partitions(None, 8), 1);
        assert_eq!(auto.partitions(Some(3 * ROWS_PER_PARTITION), 8), 3);
        assert_eq!(auto.partitions(Some(100 * ROWS_PER_PARTITION), 8), 8);
        let fixed = SqlOptions {
            split_count: SplitCount::Fixed(5),
            ..SqlOptions::default()
        };
        assert_eq!(fixed.partitions(None, 2), 5);
    }
}
