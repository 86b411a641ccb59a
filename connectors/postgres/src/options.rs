//! Options of a `kind = "postgres"` source.

use datafusion::error::{DataFusionError, Result};
use koios_connector::SourceSpec;
pub use koios_connector_sql::options::{SqlOptions, UnsupportedTypes};

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Schemas to expose; `None`: every non-system schema.
    pub schemas: Option<Vec<String>>,
    /// `None`: as the URL's `sslmode` says (libpq's default, prefer).
    pub tls: Option<crate::tls::TlsMode>,
    pub tls_ca_file: Option<String>,
    pub sql: SqlOptions,
}

pub const OWN_OPTIONS: &[&str] = &["schemas", "tls", "tls_ca_file"];

impl PgOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        let known: Vec<&str> = OWN_OPTIONS
            .iter()
            .chain(koios_connector_sql::options::SQL_OPTIONS)
            .copied()
            .collect();
        spec.reject_unknown_options(&known)?;
        let tls = match spec.option_str("tls")? {
            None => None,
            Some(mode) => Some(crate::tls::TlsMode::parse(mode).ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "source '{}': option 'tls' must be \"disable\", \"prefer\", \"require\" or \"verify-full\"",
                    spec.name
                ))
            })?),
        };
        Ok(Self {
            schemas: spec.option_string_list("schemas")?,
            tls,
            tls_ca_file: spec.option_str("tls_ca_file")?.map(str::to_string),
            sql: SqlOptions::from_spec(spec)?,
        })
    }
}
