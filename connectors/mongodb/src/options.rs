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

use datafusion::error::{DataFusionError, Result};
use koios_connector::SourceSpec;

use crate::schema::Shape;

/// What to do with a value that does not fit its column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidValues {
    /// Fail the query, naming collection, field and types (the default: a
    /// sample can miss rare shapes, and silent NULLs would hide that).
    Error,
    /// Read the value as NULL.
    Null,
}

#[derive(Debug, Clone)]
pub struct MongoOptions {
    pub databases: Option<Vec<String>>,
    pub sample_size: usize,
    pub max_depth: usize,
    pub invalid_values: InvalidValues,
    /// Declared columns per `database.collection` (or `collection`, in any
    /// exposed database), in order.
    pub schemas: HashMap<String, Vec<(String, Shape)>>,
}

pub const OPTIONS: &[&str] = &[
    "databases",
    "sample_size",
    "max_depth",
    "invalid_values",
    "schema",
];

impl MongoOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.reject_unknown_options(OPTIONS)?;
        let fail =
            |m: String| DataFusionError::Configuration(format!("source '{}': {m}", spec.name));
        let invalid_values = match spec.option_str("invalid_values")? {
            None | Some("error") => InvalidValues::Error,
            Some("null") => InvalidValues::Null,
            Some(_) => {
                return Err(fail(
                    "option 'invalid_values' must be \"error\" or \"null\"".into(),
                ));
            }
        };
        let sample_size = spec.option_usize("sample_size")?.unwrap_or(1000);
        if sample_size == 0 {
            return Err(fail("option 'sample_size' must be at least 1".into()));
        }
        let mut schemas = HashMap::new();
        match spec.options.get("schema") {
            None => {}
            Some(toml::Value::Table(entries)) => {
                for (collection, columns) in entries {
                    let Some(columns) = columns.as_str() else {
                        return Err(fail(format!(
                            "schema.\"{collection}\" must be a string of \"name type\" pairs separated by commas"
                        )));
                    };
                    let parsed = Shape::parse_columns(columns)
                        .map_err(|m| fail(format!("schema.\"{collection}\": {m}")))?;
                    schemas.insert(collection.clone(), parsed);
                }
            }
            Some(_) => {
                return Err(fail(
                    "option 'schema' must be a table of \"database.collection\" = \"columns\""
                        .into(),
                ));
            }
        }
        Ok(Self {
            databases: spec.option_string_list("databases")?,
            sample_size,
            max_depth: spec.option_usize("max_depth")?.unwrap_or(4),
            invalid_values,
            schemas,
        })
    }
}
