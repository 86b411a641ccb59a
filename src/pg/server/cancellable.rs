//! Running a query's work and streaming its rows only until its token
//! fires (a CancelRequest or `statement_timeout`; see [`super::cancel`]).

use futures::StreamExt;
use futures::stream::BoxStream;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

use super::cancel::QueryToken;
use super::errors::{to_pg_error, user_error};
use crate::engine::activity::StatementGuard;
use crate::engine::error::codes;

pub(super) fn query_canceled(token: &QueryToken) -> PgWireError {
    let reason = if token.timed_out() {
        "statement timeout"
    } else {
        "user request"
    };
    user_error(
        codes::QUERY_CANCELED,
        format!("canceling statement due to {reason}"),
    )
}

/// Runs `work` unless `token` fires first.
pub(super) async fn cancellable<T>(
    token: &QueryToken,
    work: impl std::future::Future<Output = datafusion::error::Result<T>>,
) -> PgWireResult<T> {
    tokio::select! {
        biased;
        _ = token.cancelled() => Err(query_canceled(token)),
        result = work => result.map_err(|e| to_pg_error(&e)),
    }
}

/// A response's rows until its query's token fires, then the cancellation
/// error and no more rows: dropping the rest of the rows drops the remote
/// scans, which cancel remotely. The token is read at each row but waited
/// on only while the rows are pending: a lookup's rows are ready at once,
/// and registering for a wakeup at every row showed in profiles.
pub(super) struct UntilCancelled {
    pub(super) rows: Option<BoxStream<'static, PgWireResult<DataRow>>>,
    pub(super) token: QueryToken,
    pub(super) waiting: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// Shows the statement as running (`pg_stat_activity`) until its last
    /// row is sent or the rows are dropped.
    pub(super) statement: Option<StatementGuard>,
}

impl futures::Stream for UntilCancelled {
    type Item = PgWireResult<DataRow>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        let Some(rows) = this.rows.as_mut() else {
            this.statement = None;
            return Poll::Ready(None);
        };
        if !this.token.is_cancelled() {
            match rows.poll_next_unpin(cx) {
                Poll::Ready(None) => {
                    this.rows = None;
                    this.statement = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(row)) => return Poll::Ready(Some(row)),
                Poll::Pending => {
                    let token = this.token.clone();
                    let waiting = this
                        .waiting
                        .get_or_insert_with(|| Box::pin(async move { token.cancelled().await }));
                    if waiting.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
        this.rows = None;
        Poll::Ready(Some(Err(query_canceled(&this.token))))
    }
}
