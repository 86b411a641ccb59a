//! Errors a MySQL or MariaDB server reports, as Koios errors that keep the
//! server's SQLSTATE and say which source and what Koios was doing.

use datafusion::error::DataFusionError;

/// A MySQL error as a Koios error, keeping the server's SQLSTATE.
pub(crate) fn remote_error(context: &str, e: &mysql_async::Error) -> DataFusionError {
    let (sqlstate, message) = match e {
        mysql_async::Error::Server(server) => (
            Some(server.state.clone()),
            format!("MySQL said: {}", server.message),
        ),
        other => (None, other.to_string()),
    };
    koios_connector::RemoteError {
        sqlstate,
        message: format!("{context}: {message}"),
    }
    .into_datafusion()
}
