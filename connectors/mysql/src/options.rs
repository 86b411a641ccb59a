//! Options of a `kind = "mysql"` source (MySQL and MariaDB), parsed once
//! from its `[[source]]` entry:
//!
//! ```toml
//! [[source]]
//! name = "my"
//! kind = "mysql"
//! url = "mysql://koios:${MY_PASSWORD}@db:3306/shop"
//! databases = ["shop"]        # default: the URL's database, else all
//! invalid_dates = "null"      # or "error": a zero date such as 0000-00-00
//! # and the options every SQL source takes (koios_connector_sql::options):
//! # pool_size, split_count, unsupported_types, tls, tls_ca_file
//! ```

use datafusion::error::Result;
use koios_connector::{OptionGroup, SourceSpec};
pub use koios_connector_sql::options::{SplitCount, SqlOptions, UnsupportedTypes};
use serde::Deserialize;

/// What to do with a zero or otherwise invalid date (`0000-00-00`)
/// (`invalid_dates = "null" | "error"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidDates {
    /// Read it as NULL (the default: MySQL's own zero dates are common).
    #[default]
    Null,
    /// Fail the query, naming the column.
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyOptions {
    /// Databases exposed as schemas; `None`: the URL's database, or all.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    #[serde(default)]
    pub invalid_dates: InvalidDates,
    /// The options every SQL source shares; `sql.tls.mode: None`: TLS
    /// settings in the URL if any, else `prefer`.
    #[serde(skip)]
    pub sql: SqlOptions,
}

impl OptionGroup for MyOptions {
    type Embedded = SqlOptions;

    fn embed(&mut self, sql: SqlOptions) {
        self.sql = sql;
    }
}

impl MyOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.parse_option_group()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koios_connector::TlsMode;

    fn parse(options: &str) -> Result<MyOptions> {
        MyOptions::from_spec(&SourceSpec::from_toml("my", "mysql", options)?)
    }

    #[test]
    fn valid_configs_parse_as_before() {
        let defaults = parse("").expect("valid");
        assert_eq!(defaults.databases, None);
        assert_eq!(defaults.invalid_dates, InvalidDates::Null);
        assert_eq!(defaults.sql, SqlOptions::default());
        assert_eq!(
            parse("invalid_dates = \"null\"")
                .expect("valid")
                .invalid_dates,
            InvalidDates::Null
        );
        let all = parse(
            "databases = [\"shop\"]\ninvalid_dates = \"error\"\npool_size = 0\n\
             split_count = \"auto\"\nunsupported_types = \"error\"\ntls = \"disable\"",
        )
        .expect("valid");
        assert_eq!(all.databases, Some(vec!["shop".into()]));
        assert_eq!(all.invalid_dates, InvalidDates::Error);
        assert_eq!(all.sql.pool_size, 1);
        assert_eq!(all.sql.split_count, SplitCount::Auto);
        assert_eq!(all.sql.unsupported_types, UnsupportedTypes::Error);
        assert_eq!(all.sql.tls.mode, Some(TlsMode::Disable));
    }

    #[test]
    fn unknown_keys_and_wrong_values_name_the_key() {
        let message = |options: &str| parse(options).expect_err(options).to_string();
        let unknown = message("database = \"shop\"");
        assert!(
            unknown.contains(
                "source 'my' (kind mysql): option 'database': unknown field `database`, expected one of \
                 `databases`, `invalid_dates`, `pool_size`"
            ),
            "{unknown}"
        );
        let wrong = message("invalid_dates = \"zero\"");
        assert!(
            wrong.contains(
                "option 'invalid_dates': unknown variant `zero`, expected `null` or `error`"
            ),
            "{wrong}"
        );
        let wrong = message("pool_size = \"8\"");
        assert!(
            wrong.contains(
                "option 'pool_size': invalid type: string \"8\", expected a non-negative integer"
            ),
            "{wrong}"
        );
    }
}
