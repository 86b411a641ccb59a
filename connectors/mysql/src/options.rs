//! Options of a `kind = "mysql"` source (MySQL and MariaDB).

use datafusion::error::{DataFusionError, Result};
use koios_connector::{SourceSpec, TlsOptions};
pub use koios_connector_sql::options::{SqlOptions, UnsupportedTypes};

use crate::types::InvalidDates;

#[derive(Debug, Clone)]
pub struct MyOptions {
    /// Databases exposed as schemas; `None`: the URL's database, or all.
    pub databases: Option<Vec<String>>,
    pub invalid_dates: InvalidDates,
    /// `mode: None`: TLS settings in the URL if any, else `prefer`.
    pub tls: TlsOptions,
    pub sql: SqlOptions,
}

pub const OWN_OPTIONS: &[&str] = &["databases", "invalid_dates"];

impl MyOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        let known: Vec<&str> = OWN_OPTIONS
            .iter()
            .chain(TlsOptions::NAMES)
            .chain(koios_connector_sql::options::SQL_OPTIONS)
            .copied()
            .collect();
        spec.reject_unknown_options(&known)?;
        let config_error =
            |m: String| DataFusionError::Configuration(format!("source '{}': {m}", spec.name));
        let invalid_dates = match spec.option_str("invalid_dates")? {
            None | Some("null") => InvalidDates::Null,
            Some("error") => InvalidDates::Error,
            Some(_) => {
                return Err(config_error(
                    "option 'invalid_dates' must be \"null\" or \"error\"".into(),
                ));
            }
        };
        Ok(Self {
            databases: spec.option_string_list("databases")?,
            invalid_dates,
            tls: TlsOptions::from_spec(spec)?,
            sql: SqlOptions::from_spec(spec)?,
        })
    }
}
