//! One `[[source]]` entry of the configuration, as a connector receives it,
//! and the typed readers of its options.

use std::collections::BTreeMap;
use std::fmt;

use datafusion::error::{DataFusionError, Result};

/// One `[[source]]` entry from the configuration, after `${ENV}` expansion.
#[derive(Clone, PartialEq)]
pub struct SourceSpec {
    /// Catalog name clients use (`<name>.<schema>.<table>`).
    pub name: String,
    /// Connector kind, e.g. `files`.
    pub kind: String,
    /// Where the data lives; may carry credentials, so it is never printed.
    pub url: String,
    /// Every other key of the entry, interpreted by the connector.
    pub options: BTreeMap<String, toml::Value>,
}

impl fmt::Debug for SourceSpec {
    // Hand-written so a URL with a password never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SourceSpec {
    /// A string option, or `None` when absent.
    pub fn option_str(&self, key: &str) -> Result<Option<&str>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.option_error(key, "a string", other)),
        }
    }

    /// A boolean option, or `None` when absent.
    pub fn option_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.option_error(key, "true or false", other)),
        }
    }

    /// A non-negative integer option, or `None` when absent.
    pub fn option_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as usize)),
            Some(other) => Err(self.option_error(key, "a non-negative integer", other)),
        }
    }

    /// A list-of-strings option, or `None` when absent.
    pub fn option_string_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::Array(items)) if items.iter().all(|v| v.is_str()) => Ok(Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            )),
            Some(other) => Err(self.option_error(key, "a list of strings", other)),
        }
    }

    /// Fails on any option the connector does not know, so typos are caught
    /// at start instead of being silently ignored.
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<()> {
        for key in self.options.keys() {
            if !known.contains(&key.as_str()) {
                return Err(DataFusionError::Configuration(format!(
                    "source '{}' (kind {}): unknown option '{key}'; known options: {}",
                    self.name,
                    self.kind,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    fn option_error(&self, key: &str, expected: &str, got: &toml::Value) -> DataFusionError {
        DataFusionError::Configuration(format!(
            "source '{}': option '{key}' must be {expected}, got {}",
            self.name,
            got.type_str()
        ))
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://bob:s3cr@t@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("file:///data/demo"), "file:///data/demo");
    }
}
