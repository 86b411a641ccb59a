//! Options of a `kind = "postgres"` source.

use datafusion::error::Result;
use koios_connector::{SourceSpec, TlsOptions};
pub use koios_connector_sql::options::{SqlOptions, UnsupportedTypes};

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Schemas to expose; `None`: every non-system schema.
    pub schemas: Option<Vec<String>>,
    /// `mode: None`: as the URL's `sslmode` says (libpq's default, prefer).
    pub tls: TlsOptions,
    pub sql: SqlOptions,
}

pub const OWN_OPTIONS: &[&str] = &["schemas"];

impl PgOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        let known: Vec<&str> = OWN_OPTIONS
            .iter()
            .chain(TlsOptions::NAMES)
            .chain(koios_connector_sql::options::SQL_OPTIONS)
            .copied()
            .collect();
        spec.reject_unknown_options(&known)?;
        Ok(Self {
            schemas: spec.option_string_list("schemas")?,
            tls: TlsOptions::from_spec(spec)?,
            sql: SqlOptions::from_spec(spec)?,
        })
    }
}
