//! Session parameters: the PostgreSQL settings a session keeps (`SET`,
//! `SHOW`, `set_config`, `pg_settings`), their defaults and how their values
//! are checked.
//!
//! These are the SQL surface of a session, not of the wire protocol: the
//! engine reads `timezone`, `statement_timeout` and `search_path` itself.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::timezone::Tz;
use datafusion::error::{DataFusionError, Result};

use koios_connector::sqlstate::codes;
use koios_connector::{sql_err, sql_error};

use crate::engine::timeout::parse_statement_timeout;

/// The PostgreSQL version Koios presents itself as; drivers parse it.
pub const SERVER_VERSION: &str = "15.0 (Koios)";
/// `server_version_num` matching [`SERVER_VERSION`].
pub const SERVER_VERSION_NUM: &str = "150000";

/// PostgreSQL session parameters Koios keeps (name → default value).
/// Names are matched case-insensitively, as PostgreSQL does.
pub const PG_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("jit", "off"),
    // Reads of a striped table answer from the members that are up.
    ("koios.allow_partial_results", "off"),
    ("default_table_access_method", "heap"),
    ("lc_messages", "C"),
    ("max_identifier_length", "63"),
    ("search_path", "public"),
    ("server_encoding", "UTF8"),
    ("server_version", SERVER_VERSION),
    ("server_version_num", SERVER_VERSION_NUM),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

/// Settings that are reported but cannot be changed.
pub(crate) const READ_ONLY_SETTINGS: &[&str] = &[
    "integer_datetimes",
    "server_encoding",
    "server_version",
    "server_version_num",
    "max_identifier_length",
];

/// Values a session holds for PostgreSQL parameters.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) values: BTreeMap<String, String>,
    /// The `search_path` schema that exists, once the session resolved it.
    pub(crate) current_schema: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            values: PG_SETTINGS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            current_schema: None,
        }
    }
}

impl Settings {
    /// The schema unqualified names resolve in, when `search_path` was set.
    pub fn current_schema(&self) -> Option<&str> {
        self.current_schema.as_deref()
    }

    /// Every parameter and its value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Changes a parameter (as `SET` and `set_config` do).
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        if READ_ONLY_SETTINGS.contains(&name.as_str()) {
            return sql_err!(
                codes::CANT_CHANGE_RUNTIME_PARAM,
                "parameter \"{name}\" cannot be changed"
            );
        }
        if !self.values.contains_key(&name) {
            return Err(unknown_setting(&name));
        }
        if name == "timezone" {
            validate_time_zone(value)?;
        }
        let value = if name == "koios.allow_partial_results" {
            match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => "on",
                "off" | "false" | "no" | "0" => "off",
                _ => {
                    return sql_err!(
                        codes::INVALID_PARAMETER_VALUE,
                        "parameter \"{name}\" requires a Boolean value"
                    );
                }
            }
        } else {
            value
        };
        if name == "statement_timeout" {
            parse_statement_timeout(value)
                .map_err(|message| sql_error!(codes::INVALID_PARAMETER_VALUE, "{message}"))?;
        }
        self.values.insert(name, value.to_string());
        Ok(())
    }

    /// The timeout a statement starting now runs under. A value the session
    /// holds but that does not parse is ignored (and logged) rather than
    /// failing every statement, `RESET` included.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let value = self.get("statement_timeout")?;
        match parse_statement_timeout(value) {
            Ok(timeout) => timeout,
            Err(message) => {
                tracing::warn!(%message, "statement_timeout ignored");
                None
            }
        }
    }

    /// The session time zone used to render `timestamptz` values.
    pub fn time_zone(&self) -> &str {
        self.get("timezone").unwrap_or("UTC")
    }
}

pub(crate) fn unknown_setting(name: &str) -> DataFusionError {
    sql_error!(
        codes::UNDEFINED_OBJECT,
        "unrecognized configuration parameter \"{name}\""
    )
}

fn validate_time_zone(value: &str) -> Result<()> {
    parse_time_zone(value).map(|_| ()).ok_or_else(|| {
        sql_error!(
            codes::INVALID_PARAMETER_VALUE,
            "invalid value for parameter \"TimeZone\": \"{value}\""
        )
    })
}

/// Parses a PostgreSQL `TimeZone` value: an IANA name (`Europe/Paris`), `UTC`,
/// or a fixed offset (`+05:30`).
pub fn parse_time_zone(value: &str) -> Option<Tz> {
    let trimmed = value.trim();
    let normalized = match trimmed.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "Z" | "ZULU" | "UCT" | "ETC/UTC" => "+00:00".to_string(),
        _ => trimmed.to_string(),
    };
    normalized.parse::<Tz>().ok()
}

/// PostgreSQL's quote_ident: quotes unless the name is a plain lowercase
/// word. For names shown to clients (setting values, `::regclass::text`),
/// never for SQL sent to a backend.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_as_postgresql_names_them() {
        assert!(parse_time_zone("Europe/Paris").is_some());
        assert!(parse_time_zone("utc").is_some());
        assert!(parse_time_zone("+05:30").is_some());
        assert!(parse_time_zone("Mars/Olympus").is_none());
    }

    #[test]
    fn quote_ident_quotes_only_what_needs_it() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
