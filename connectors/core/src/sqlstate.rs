//! Errors Koios raises itself, with the SQLSTATE a client should see.
//!
//! DataFusion's own errors carry only a coarse kind (a missing table and a
//! missing function are both `Plan` errors), so the front end has to read
//! their text. Errors Koios and its connectors make are never classified
//! that way: they are made with their code ([`sql_err!`], [`sql_error!`])
//! and travel as data inside `DataFusionError::External`.

use std::fmt;

use datafusion::error::DataFusionError;

/// SQLSTATE codes Koios emits.
pub mod codes {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_SCHEMA: &str = "3F000";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const GROUPING_ERROR: &str = "42803";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const CONFIG_FILE_ERROR: &str = "F0000";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const DATA_CORRUPTED: &str = "XX001";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const DUPLICATE_CURSOR: &str = "42P03";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const UNABLE_TO_CONNECT: &str = "08001";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const SERIALIZATION_FAILURE: &str = "40001";
}

/// An error with its SQLSTATE, message and optional hint. The message
/// names the object and, where it can, says what to do; it never holds a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStateError {
    pub code: &'static str,
    pub message: String,
    /// Extra help clients show on a separate `HINT:` line.
    pub hint: Option<String>,
}

impl SqlStateError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The error as DataFusion carries it (`External`), so it crosses
    /// DataFusion's APIs with its code intact.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// The coded error inside `error`, looking through DataFusion's
    /// context wrappers.
    pub fn find(error: &DataFusionError) -> Option<&SqlStateError> {
        match error {
            DataFusionError::External(inner) => inner.downcast_ref::<SqlStateError>(),
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                Self::find(inner)
            }
            DataFusionError::Shared(inner) => Self::find(inner),
            _ => None,
        }
    }
}

impl fmt::Display for SqlStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqlStateError {}

impl From<SqlStateError> for DataFusionError {
    fn from(error: SqlStateError) -> Self {
        error.into_datafusion()
    }
}

/// A `DataFusionError` with a SQLSTATE: `sql_error!(codes::UNDEFINED_OBJECT,
/// "source '{name}' does not exist")`.
#[macro_export]
macro_rules! sql_error {
    ($code:expr, $($arg:tt)*) => {
        $crate::sqlstate::SqlStateError::new($code, format!($($arg)*)).into_datafusion()
    };
}

/// `Err` of [`sql_error!`], like DataFusion's `plan_err!`.
#[macro_export]
macro_rules! sql_err {
    ($code:expr, $($arg:tt)*) => {
        Err($crate::sql_error!($code, $($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_survives_context() {
        let error: DataFusionError =
            sql_error!(codes::UNDEFINED_OBJECT, "source '{}' does not exist", "x");
        let wrapped = error.context("while planning");
        let found = SqlStateError::find(&wrapped).expect("coded");
        assert_eq!(found.code, "42704");
        assert_eq!(found.message, "source 'x' does not exist");
    }
}
