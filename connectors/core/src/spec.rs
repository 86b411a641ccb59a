//! One `[[source]]` entry of the configuration, as a connector receives it,
//! and the entry points that parse its options into a connector's typed
//! struct (the machinery is in [`crate::options`]).

use std::collections::BTreeMap;
use std::fmt;

use datafusion::error::{DataFusionError, Result};
use serde::de::DeserializeOwned;

use crate::options::{EntriesDeserializer, OptionGroup};

/// One `[[source]]` entry from the configuration, after `${ENV}` expansion.
#[derive(Clone, Default, PartialEq)]
pub struct SourceSpec {
    /// Catalog name clients use (`<name>.<schema>.<table>`).
    pub name: String,
    /// Connector kind, e.g. `files`.
    pub kind: String,
    /// Where the data lives; may carry credentials, so it is never printed.
    pub url: String,
    /// Every other key of the entry, interpreted by the connector.
    pub options: BTreeMap<String, toml::Value>,
    /// Where each option was written, `"path/to/koios.toml:LINE"` by key,
    /// so option errors point at the line; empty when the spec did not
    /// come from a file.
    pub option_lines: BTreeMap<String, String>,
}

impl fmt::Debug for SourceSpec {
    // Hand-written so a URL with a password never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("option_lines", &self.option_lines)
            .finish()
    }
}

impl SourceSpec {
    /// A spec whose options are written as a TOML table body
    /// (`"pool_size = 2\nsplit_count = \"auto\""`), as in a `[[source]]`
    /// entry: for connectors' option tests and for callers that hold
    /// options as text.
    pub fn from_toml(name: &str, kind: &str, options: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(options).map_err(|e| {
            DataFusionError::Configuration(format!("options of source `{name}`: {e}"))
        })?;
        Ok(Self {
            name: name.into(),
            kind: kind.into(),
            options: table.into_iter().collect(),
            ..Default::default()
        })
    }

    /// The source's options as `T`, a serde struct that should carry
    /// `#[serde(deny_unknown_fields)]` so a mistyped key is refused. Errors
    /// name the source, the key and what was expected.
    pub fn parse_options<T: DeserializeOwned>(&self) -> Result<T> {
        self.deserialize_entries(self.entries(), None)
    }

    /// The source's options as `T` and the shared group(s) it embeds (see
    /// [`OptionGroup`]): each struct reads only its own keys and refuses
    /// unknown ones.
    pub fn parse_option_group<T: OptionGroup>(&self) -> Result<T> {
        T::parse(self, self.entries())
    }

    /// For connectors with a single option or two: fails on any option not
    /// in `known`, so typos are caught at start. Connectors with more
    /// options declare a struct and use [`SourceSpec::parse_options`].
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<()> {
        match self
            .options
            .keys()
            .find(|key| !known.contains(&key.as_str()))
        {
            None => Ok(()),
            Some(key) => Err(self.option_error(
                Some(key),
                &format!(
                    "unknown option; known options: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )),
        }
    }

    /// A configuration error about this source's options:
    /// `file:line: source.KEY: source 'NAME' (kind K): option 'KEY': message`,
    /// the location only when [`SourceSpec::option_lines`] knows the key,
    /// the key parts only when `key` is given.
    pub fn option_error(&self, key: Option<&str>, message: &str) -> DataFusionError {
        let source = format!("source '{}' (kind {})", self.name, self.kind);
        DataFusionError::Configuration(match key {
            None => format!("{source}: {message}"),
            Some(key) => match self.option_lines.get(key) {
                Some(at) => format!("{at}: source.{key}: {source}: option '{key}': {message}"),
                None => format!("{source}: option '{key}': {message}"),
            },
        })
    }

    fn entries(&self) -> Vec<(&str, &toml::Value)> {
        self.options
            .iter()
            .map(|(key, value)| (key.as_str(), value))
            .collect()
    }

    /// Deserializes some of the entries as `T`, turning serde's error into
    /// one that names the key; an unknown key is reported against `known`
    /// when given (every key the source takes), else against `T`'s fields.
    pub(crate) fn deserialize_entries<T: DeserializeOwned>(
        &self,
        entries: Vec<(&str, &toml::Value)>,
        known: Option<&[&str]>,
    ) -> Result<T> {
        T::deserialize(EntriesDeserializer::new(entries))
            .map_err(|e| self.option_error(e.key.as_deref(), &e.message(known)))
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
