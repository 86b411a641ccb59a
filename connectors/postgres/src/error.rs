//! PostgreSQL errors as Koios errors: the server's SQLSTATE kept as data,
//! the driver's causes spelled out, connection details left out.

use datafusion::error::DataFusionError;

/// A pool error with the driver's causes (TLS and authentication details).
pub(crate) fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => error_chain(pg),
        other => other.to_string(),
    }
}

/// An error with its causes (`… TLS handshake: invalid peer certificate: …`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The server's message for an error, without connection details.
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL said: {}", db.message()),
        None => e.to_string(),
    }
}

/// The SQLSTATE of a pool's failure to connect: the server's, when it
/// refused (a wrong password, a server shutting down), else `None` — a
/// connection failure (08006) to the engine.
pub(crate) fn pool_sqlstate(e: &deadpool_postgres::PoolError) -> Option<String> {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => {
            pg.as_db_error().map(|db| db.code().code().to_string())
        }
        _ => None,
    }
}

/// A failure to get a connection as a Koios error: the server's SQLSTATE
/// if it refused, else a connection failure.
pub(crate) fn connect_error(
    context: &str,
    message: &str,
    sqlstate: Option<String>,
) -> DataFusionError {
    koios_connector::RemoteError {
        sqlstate,
        message: format!("{context}: {message}"),
    }
    .into_datafusion()
}

/// A PostgreSQL error as a Koios error keeping the server's SQLSTATE.
pub(crate) fn remote_error(context: &str, e: &tokio_postgres::Error) -> DataFusionError {
    koios_connector::RemoteError {
        sqlstate: e.as_db_error().map(|db| db.code().code().to_string()),
        message: format!("{context}: {}", pg_message(e)),
    }
    .into_datafusion()
}
