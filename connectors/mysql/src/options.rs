//! Options of a `kind = "mysql"` source (MySQL and MariaDB).

use datafusion::error::{DataFusionError, Result};
use koios_connector::SourceSpec;
pub use koios_connector_sql::options::{SqlOptions, UnsupportedTypes};

use crate::types::InvalidDates;

#[derive(Debug, Clone)]
pub struct MyOptions {
    /// Databases exposed as schemas; `None`: the URL's database, or all.
    pub databases: Option<Vec<String>>,
    pub invalid_dates: InvalidDates,
    pub sql: SqlOptions,
}

pub const OWN_OPTIONS: &[&str] = &["databases", "invalid_dates", "tls"];

impl MyOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        let known: Vec<&str> = OWN_OPTIONS
            .iter()
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
        match spec.option_str("tls")? {
            None | Some("disable") | Some("prefer") => {}
            Some(_) => {
                return Err(DataFusionError::NotImplemented(format!(
                    "source '{}': TLS to MySQL is not implemented yet; tls must be \"disable\" or \"prefer\" (plain)",
                    spec.name
                )));
            }
        }
        Ok(Self {
            databases: spec.option_string_list("databases")?,
            invalid_dates,
            sql: SqlOptions::from_spec(spec)?,
        })
    }
}
