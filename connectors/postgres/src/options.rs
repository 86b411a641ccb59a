//! Options of a `kind = "postgres"` source, parsed once from its
//! `[[source]]` entry:
//!
//! ```toml
//! [[source]]
//! name = "pg"
//! kind = "postgres"
//! url = "postgres://koios:${PG_PASSWORD}@db:5432/shop"
//! schemas = ["public", "sales"]  # default: every non-system schema
//! # and the options every SQL source takes (koios_connector_sql::options):
//! # pool_size, split_count, unsupported_types, tls, tls_ca_file
//! ```

use datafusion::error::Result;
use koios_connector::{OptionGroup, SourceSpec};
pub use koios_connector_sql::options::{SplitCount, SqlOptions, UnsupportedTypes};
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgOptions {
    /// Schemas to expose; `None`: every non-system schema.
    #[serde(default)]
    pub schemas: Option<Vec<String>>,
    /// The options every SQL source shares; `sql.tls.mode: None`: as the
    /// URL's `sslmode` says (libpq's default, prefer).
    #[serde(skip)]
    pub sql: SqlOptions,
}

impl OptionGroup for PgOptions {
    type Embedded = SqlOptions;

    fn embed(&mut self, sql: SqlOptions) {
        self.sql = sql;
    }
}

impl PgOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.parse_option_group()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koios_connector::TlsMode;

    fn parse(options: &str) -> Result<PgOptions> {
        PgOptions::from_spec(&SourceSpec::from_toml("pg", "postgres", options)?)
    }

    #[test]
    fn valid_configs_parse_as_before() {
        let defaults = parse("").expect("valid");
        assert_eq!(defaults.schemas, None);
        assert_eq!(defaults.sql, SqlOptions::default());
        assert_eq!(defaults.sql.pool_size, 8);
        let all = parse(
            "schemas = [\"public\", \"sales\"]\npool_size = 2\nsplit_count = 3\n\
             unsupported_types = \"skip\"\ntls = \"verify-full\"\ntls_ca_file = \"/ca.pem\"",
        )
        .expect("valid");
        assert_eq!(all.schemas, Some(vec!["public".into(), "sales".into()]));
        assert_eq!(all.sql.pool_size, 2);
        assert_eq!(all.sql.split_count, SplitCount::Fixed(3));
        assert_eq!(all.sql.unsupported_types, UnsupportedTypes::Skip);
        assert_eq!(all.sql.tls.mode, Some(TlsMode::VerifyFull));
        assert_eq!(all.sql.tls.ca_file.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn unknown_keys_and_wrong_values_name_the_key() {
        let message = |options: &str| parse(options).expect_err(options).to_string();
        let unknown = message("schema = [\"public\"]");
        assert!(
            unknown.contains(
                "source 'pg' (kind postgres): option 'schema': unknown field `schema`, expected one of \
                 `schemas`, `pool_size`, `split_count`, `unsupported_types`, `tls`, `tls_ca_file`"
            ),
            "{unknown}"
        );
        let wrong = message("schemas = \"public\"");
        assert!(
            wrong
                .contains("option 'schemas': invalid type: string \"public\", expected a sequence"),
            "{wrong}"
        );
        let wrong = message("split_count = \"two\"");
        assert!(wrong.contains("option 'split_count'"), "{wrong}");
        let wrong = message("tls = \"verify-full\"");
        assert!(
            wrong.contains("option 'tls': \"verify-full\" needs tls_ca_file"),
            "{wrong}"
        );
    }
}
