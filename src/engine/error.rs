//! Koios's one error type and `Result` alias.
//!
//! Query-time errors are DataFusion errors (connectors and the engine share
//! them); this type adds what happens around queries: configuration, I/O and
//! start-up. [`sqlstate`] turns any error into the SQLSTATE a PostgreSQL
//! client expects.

use datafusion::error::DataFusionError;
use koios_connector::SqlStateError;

/// Result alias used throughout the `koios` crate.
pub type Result<T, E = KoiosError> = std::result::Result<T, E>;

/// Everything that can go wrong outside a single query.
#[derive(Debug, thiserror::Error)]
pub enum KoiosError {
    /// A problem in the configuration file; the message names file, line and key.
    #[error("{0}")]
    Config(String),
    /// A query or catalog error.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// What a running server answered a client command (`koios sources …`),
    /// or why it could not be reached.
    #[error("{0}")]
    Client(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl KoiosError {
    /// Wraps an I/O error with what Koios was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        KoiosError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A SQL error with the SQLSTATE code a PostgreSQL client expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub code: String,
    pub message: String,
    /// Extra help shown by clients on a separate `HINT:` line.
    pub hint: Option<String>,
}

impl SqlError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)
    }
}

/// SQLSTATE codes Koios emits (defined with the connector contract, so
/// connectors raise the same ones).
pub use koios_connector::sqlstate::codes;

/// Classifies an error into a SQLSTATE and a client-facing message.
///
/// Errors Koios and its connectors raise carry their code
/// ([`SqlStateError`], a backend's [`koios_connector::RemoteError`]).
/// DataFusion's own errors are typed only coarsely (a missing table and a
/// missing function are both `Plan` errors), so for those alone the text is
/// inspected as well.
pub fn sqlstate(error: &DataFusionError) -> SqlError {
    use codes::*;
    if let Some(coded) = SqlStateError::find(error) {
        return SqlError {
            code: coded.code.to_string(),
            message: coded.message.clone(),
            hint: coded.hint.clone(),
        };
    }
    let error = unwrap_context(error);
    if let Some(rewritten) = postgres_wording(error) {
        return rewritten;
    }
    if let DataFusionError::External(inner) = error
        && let Some(remote) = inner.downcast_ref::<koios_connector::RemoteError>()
    {
        return SqlError::new(
            remote.sqlstate.as_deref().unwrap_or(CONNECTION_FAILURE),
            remote.message.clone(),
        );
    }
    let message = clean_message(error);
    let code = match error {
        DataFusionError::SQL(_, _) => SYNTAX_ERROR,
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
            datafusion::common::SchemaError::AmbiguousReference { .. } => AMBIGUOUS_COLUMN,
            _ => INTERNAL_ERROR,
        },
        DataFusionError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            arrow::error::ArrowError::DivideByZero => DIVISION_BY_ZERO,
            arrow::error::ArrowError::CastError(_) | arrow::error::ArrowError::ParseError(_) => {
                INVALID_TEXT_REPRESENTATION
            }
            arrow::error::ArrowError::ArithmeticOverflow(_) => NUMERIC_VALUE_OUT_OF_RANGE,
            // Inserting NULL into a NOT NULL column is caught by Arrow's checks.
            other if other.to_string().contains("non-nullable") => NOT_NULL_VIOLATION,
            _ => INTERNAL_ERROR,
        },
        DataFusionError::Plan(m) => classify_plan_message(m),
        DataFusionError::Execution(m) => classify_execution_message(m),
        DataFusionError::Configuration(_) => INVALID_PARAMETER_VALUE,
        _ => INTERNAL_ERROR,
    };
    SqlError::new(code, message)
}

fn classify_plan_message(m: &str) -> &'static str {
    use codes::*;
    let lower = m.to_ascii_lowercase();
    if lower.contains("table '") && lower.contains("not found")
        || lower.starts_with("table not found")
    {
        UNDEFINED_TABLE
    } else if lower.contains("invalid function")
        || lower.contains("function") && lower.contains("not found")
    {
        UNDEFINED_FUNCTION
    } else if lower.contains("already exists") {
        DUPLICATE_TABLE
    } else if lower.contains("schema") && lower.contains("not found")
        || lower.contains("failed to resolve schema")
    {
        UNDEFINED_SCHEMA
    } else if lower.contains("no field named") {
        UNDEFINED_COLUMN
    } else if lower.contains("group by")
        || lower.contains("aggregate") && lower.contains("must appear")
    {
        GROUPING_ERROR
    } else if lower.contains("cannot infer common")
        || lower.contains("type") && lower.contains("coercion")
    {
        DATATYPE_MISMATCH
    } else if lower.contains("unsupported") || lower.contains("not supported") {
        FEATURE_NOT_SUPPORTED
    } else {
        SYNTAX_ERROR_OR_ANALYSIS
    }
}

/// PostgreSQL's class 42 catch-all for semantic errors.
const SYNTAX_ERROR_OR_ANALYSIS: &str = "42000";

fn classify_execution_message(m: &str) -> &'static str {
    use codes::*;
    let lower = m.to_ascii_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        DIVISION_BY_ZERO
    } else if lower.contains("overflow") {
        NUMERIC_VALUE_OUT_OF_RANGE
    } else if lower.contains("not supported") {
        FEATURE_NOT_SUPPORTED
    } else {
        INTERNAL_ERROR
    }
}

/// PostgreSQL's wording for the errors clients most often match on.
fn postgres_wording(error: &DataFusionError) -> Option<SqlError> {
    use codes::*;
    let text = error.to_string();
    if text.contains("already exists") {
        return Some(SqlError::new(DUPLICATE_TABLE, clean_message(error)));
    }
    if text.contains("has null but schema specifies non-nullable") {
        // Arrow's check of NOT NULL columns, e.g. INSERT of a NULL.
        return Some(SqlError::new(NOT_NULL_VIOLATION, clean_message(error)));
    }
    match error {
        DataFusionError::Plan(m) => {
            if let Some(rest) = m.strip_prefix("table '")
                && let Some(name) = rest.strip_suffix("' not found")
            {
                return Some(SqlError::new(
                    UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                ));
            }
            if let Some(rest) = m.strip_prefix("Invalid function '") {
                let (name, tail) = rest.split_once('\'').unwrap_or((rest, ""));
                let err = SqlError::new(
                    UNDEFINED_FUNCTION,
                    format!("function {name} does not exist"),
                );
                let hint = tail.trim().trim_start_matches('.').trim();
                return Some(if hint.is_empty() {
                    err
                } else {
                    err.with_hint(hint)
                });
            }
            None
        }
        DataFusionError::SchemaError(e, _) => match e.as_ref() {
            datafusion::common::SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => {
                let err = SqlError::new(
                    UNDEFINED_COLUMN,
                    format!("column \"{}\" does not exist", field.name()),
                );
                Some(if valid_fields.is_empty() {
                    err
                } else {
                    let valid: Vec<String> =
                        valid_fields.iter().map(|c| c.name().to_string()).collect();
                    err.with_hint(format!("available columns: {}", valid.join(", ")))
                })
            }
            _ => None,
        },
        DataFusionError::ArrowError(e, _)
            if matches!(e.as_ref(), arrow::error::ArrowError::DivideByZero) =>
        {
            Some(SqlError::new(DIVISION_BY_ZERO, "division by zero"))
        }
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            arrow::error::ArrowError::CastError(m) | arrow::error::ArrowError::ParseError(m) => {
                Some(SqlError::new(INVALID_TEXT_REPRESENTATION, m.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Strips `Context(...)` wrappers to reach the error that decides the code.
fn unwrap_context(error: &DataFusionError) -> &DataFusionError {
    match error {
        DataFusionError::Context(_, inner) => unwrap_context(inner),
        DataFusionError::Shared(inner) => unwrap_context(inner),
        DataFusionError::Diagnostic(_, inner) => unwrap_context(inner),
        other => other,
    }
}

/// DataFusion prefixes messages with e.g. "Error during planning: "; clients
/// want the message itself, without the backtrace placeholder.
fn clean_message(error: &DataFusionError) -> String {
    let text = match error {
        DataFusionError::Plan(m)
        | DataFusionError::Execution(m)
        | DataFusionError::NotImplemented(m)
        | DataFusionError::Configuration(m) => m.clone(),
        DataFusionError::SQL(e, _) => {
            let text = e.to_string();
            let text = text.strip_prefix("sql parser error: ").unwrap_or(&text);
            format!("syntax error: {text}")
        }
        other => other.to_string(),
    };
    text.trim().to_string()
}

/// `error` with its message rewritten by `message` (given the client-facing
/// message), keeping its SQLSTATE: for errors that happened on one part of
/// a statement, told with the part's name.
pub fn restate(error: &DataFusionError, message: impl FnOnce(&str) -> String) -> DataFusionError {
    let classified = sqlstate(error);
    koios_connector::RemoteError {
        sqlstate: Some(classified.code),
        message: message(&classified.message),
    }
    .into_datafusion()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::DataFusionError;

    #[test]
    fn maps_common_errors() {
        let missing = DataFusionError::Plan("table 'koios.public.nope' not found".into());
        assert_eq!(sqlstate(&missing).code, codes::UNDEFINED_TABLE);
        let nyi = DataFusionError::NotImplemented("x".into());
        assert_eq!(sqlstate(&nyi).code, codes::FEATURE_NOT_SUPPORTED);
        let ctx = DataFusionError::Context("while planning".into(), Box::new(missing));
        assert_eq!(sqlstate(&ctx).code, codes::UNDEFINED_TABLE);
    }
}
