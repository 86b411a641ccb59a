//! The functions over the engine's sessions: `pg_backend_pid()` (this
//! session's pid, the one its cancel key carries and `pg_stat_activity`
//! lists), `pg_cancel_backend(pid)` and `pg_terminate_backend(pid)`
//! (refused: Koios does not end other clients' connections).

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::Volatility;
use datafusion::prelude::SessionContext;
use koios_connector::sql_error;

use super::{function, oids};
use crate::engine::activity::ActivityRegistry;
use crate::engine::error::codes;
use crate::engine::extension::SessionIdentity;

/// Registers the functions on the session `session`.
pub(super) fn register(ctx: &SessionContext, session: &SessionIdentity) {
    let pid = session.activity.pid();
    ctx.register_udf(function(
        "pg_backend_pid",
        vec![vec![]],
        DataType::Int32,
        Volatility::Stable,
        move |_, rows| Ok(Arc::new(Int32Array::from(vec![pid; rows]))),
    ));

    let canceller = Canceller {
        sessions: Arc::clone(&session.sessions),
        user: session.user.clone(),
        is_admin: session.is_admin,
    };
    ctx.register_udf(function(
        "pg_cancel_backend",
        vec![vec![DataType::Int32]],
        DataType::Boolean,
        Volatility::Volatile,
        move |args, _| {
            let cancelled = oids(&args[0])?
                .into_iter()
                .map(|pid| pid.map(|pid| canceller.cancel(pid)).transpose())
                .collect::<datafusion::error::Result<BooleanArray>>()?;
            Ok(Arc::new(cancelled))
        },
    ));

    ctx.register_udf(function(
        "pg_terminate_backend",
        vec![
            vec![DataType::Int32],
            vec![DataType::Int32, DataType::Int64],
        ],
        DataType::Boolean,
        Volatility::Volatile,
        |_, _| {
            Err(sql_error!(
                codes::FEATURE_NOT_SUPPORTED,
                "pg_terminate_backend is not supported: Koios does not end other clients' \
                 connections; pg_cancel_backend(pid) stops a session's running statement"
            ))
        },
    ));
}

/// What `pg_cancel_backend` may do in one session.
struct Canceller {
    sessions: Arc<ActivityRegistry>,
    user: String,
    is_admin: bool,
}

impl Canceller {
    /// Cancels the statement of session `pid`: false if there is no such
    /// session (as PostgreSQL, which only warns); another user's session
    /// only for an admin (42501 otherwise).
    fn cancel(&self, pid: i32) -> datafusion::error::Result<bool> {
        let Some(session) = self.sessions.session(pid) else {
            tracing::info!(pid, "pg_cancel_backend: no such session");
            return Ok(false);
        };
        if !self.is_admin && session.info().user != self.user {
            return Err(sql_error!(
                codes::INSUFFICIENT_PRIVILEGE,
                "permission denied to cancel query: session {pid} belongs to another user; \
                 only admin users (admin = true in [[user]]) may cancel other users' queries"
            ));
        }
        Ok(session.cancel())
    }
}
