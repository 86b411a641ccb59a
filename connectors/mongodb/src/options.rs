//! Options of a `kind = "mongodb"` source.
//!
//! ```toml
//! [[source]]
//! name = "mongo"
//! kind = "mongodb"
//! url = "mongodb://user:${MONGO_PASSWORD}@host:27017/?directConnection=true"
//! databases = ["shop"]          # default: the URL's database, else all but admin/local/config
//! sample_size = 1000            # documents sampled per collection to infer its columns
//! max_depth = 4                 # nested documents deeper than this are read as JSON text
//! invalid_values = "error"      # or "null": a value that does not fit its column
//! [source.schema]               # explicit columns, no sampling: "database.collection"
//! "shop.orders" = "_id objectid, total decimal(12,2), customer json, items json"
//! events = "_id objectid, at timestamp"   # a bare name: that collection in any database
//! ```

use std::collections::HashMap;
use std::fmt;

use datafusion::error::Result;
use koios_connector::SourceSpec;
use koios_connector::options::{non_negative, positive};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::types::schema::Shape;

/// What to do with a value that does not fit its column's type
/// (`invalid_values = "error" | "null"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidValues {
    /// Fail the query, naming collection, field and types (the default: a
    /// sample can miss rare shapes, and silent NULLs would hide that).
    #[default]
    Error,
    /// Read the value as NULL.
    Null,
}

/// Declared columns, in order, by `database.collection` (or `collection`).
pub type DeclaredSchemas = HashMap<String, Vec<(String, Shape)>>;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoOptions {
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    #[serde(default = "default_sample_size", deserialize_with = "positive")]
    pub sample_size: usize,
    #[serde(default = "default_max_depth", deserialize_with = "non_negative")]
    pub max_depth: usize,
    #[serde(default)]
    pub invalid_values: InvalidValues,
    /// Declared columns per `database.collection` (or `collection`, in any
    /// exposed database), in order: the `[source.schema]` table.
    #[serde(rename = "schema", default, deserialize_with = "declared_columns")]
    pub schemas: DeclaredSchemas,
}

impl Default for MongoOptions {
    fn default() -> Self {
        Self {
            databases: None,
            sample_size: default_sample_size(),
            max_depth: default_max_depth(),
            invalid_values: InvalidValues::Error,
            schemas: HashMap::new(),
        }
    }
}

fn default_sample_size() -> usize {
    1000
}

fn default_max_depth() -> usize {
    4
}

impl MongoOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.parse_options()
    }
}

/// The `schema` table: `"database.collection" = "name type, …"`, each
/// string parsed into columns so a mistake is reported at start.
fn declared_columns<'de, D: Deserializer<'de>>(d: D) -> Result<DeclaredSchemas, D::Error> {
    d.deserialize_map(DeclaredColumns)
}

struct DeclaredColumns;

impl<'de> Visitor<'de> for DeclaredColumns {
    type Value = DeclaredSchemas;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of \"database.collection\" = \"columns\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut schemas = HashMap::new();
        while let Some(collection) = map.next_key::<String>()? {
            let columns: toml::Value = map.next_value()?;
            let Some(columns) = columns.as_str() else {
                return Err(de::Error::custom(format!(
                    "schema.\"{collection}\" must be a string of \"name type\" pairs separated by commas"
                )));
            };
            let parsed = Shape::parse_columns(columns)
                .map_err(|m| de::Error::custom(format!("schema.\"{collection}\": {m}")))?;
            schemas.insert(collection, parsed);
        }
        Ok(schemas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<MongoOptions> {
        MongoOptions::from_spec(&SourceSpec::from_toml("mongo", "mongodb", options)?)
    }

    #[test]
    fn valid_configs_parse_as_before() {
        let defaults = parse("").expect("valid");
        assert_eq!(defaults, MongoOptions::default());
        assert_eq!((defaults.sample_size, defaults.max_depth), (1000, 4));
        assert_eq!(defaults.invalid_values, InvalidValues::Error);
        let all = parse(
            "databases = [\"shop\"]\nsample_size = 10\nmax_depth = 0\ninvalid_values = \"null\"\n\
             [schema]\n\"shop.orders\" = \"_id objectid, total decimal(12,2)\"",
        )
        .expect("valid");
        assert_eq!(all.databases, Some(vec!["shop".into()]));
        assert_eq!((all.sample_size, all.max_depth), (10, 0));
        assert_eq!(all.invalid_values, InvalidValues::Null);
        let orders = &all.schemas["shop.orders"];
        assert_eq!(
            orders
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>(),
            ["_id", "total"]
        );
        assert_eq!(
            parse("invalid_values = \"error\"")
                .expect("valid")
                .invalid_values,
            InvalidValues::Error
        );
    }

    #[test]
    fn unknown_keys_and_wrong_values_name_the_key() {
        let message = |options: &str| parse(options).expect_err(options).to_string();
        let unknown = message("sample = 5");
        assert!(
            unknown.contains(
                "source 'mongo' (kind mongodb): option 'sample': unknown field `sample`, expected one of \
                 `databases`, `sample_size`, `max_depth`, `invalid_values`, `schema`"
            ),
            "{unknown}"
        );
        let zero = message("sample_size = 0");
        assert!(
            zero.contains(
                "option 'sample_size': invalid value: integer `0`, expected a positive integer"
            ),
            "{zero}"
        );
        let wrong = message("invalid_values = \"skip\"");
        assert!(
            wrong.contains(
                "option 'invalid_values': unknown variant `skip`, expected `error` or `null`"
            ),
            "{wrong}"
        );
        let wrong = message("[schema]\norders = 3");
        assert!(
            wrong.contains("option 'schema': schema.\"orders\" must be a string"),
            "{wrong}"
        );
        let wrong = message("schema = \"orders\"");
        assert!(
            wrong.contains("option 'schema': invalid type: string \"orders\", expected a table"),
            "{wrong}"
        );
    }
}
