//! Errors a backend reports, with the SQLSTATE it gave.

use std::fmt;

use datafusion::error::DataFusionError;

/// An error reported by a backend server, carrying its SQLSTATE when the
/// server has one, so clients see e.g. 23505 for a duplicate key.
///
/// Wrap it as `DataFusionError::External`; the message must already name the
/// source and must not contain secrets.
#[derive(Debug, Clone)]
pub struct RemoteError {
    pub sqlstate: Option<String>,
    pub message: String,
}

impl RemoteError {
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}
