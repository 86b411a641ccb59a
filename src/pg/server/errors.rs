//! Koios's errors as the ErrorResponse a PostgreSQL client sees: SQLSTATE,
//! message and hint.

use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::engine::error::sqlstate;

/// Converts an engine error into the ErrorResponse the client sees.
pub fn to_pg_error(error: &DataFusionError) -> PgWireError {
    let sql = sqlstate(error);
    tracing::debug!(code = sql.code, message = %sql.message, "query failed");
    let mut info = ErrorInfo::new("ERROR".into(), sql.code, sql.message);
    info.hint = sql.hint;
    PgWireError::UserError(Box::new(info))
}

pub(super) fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}
