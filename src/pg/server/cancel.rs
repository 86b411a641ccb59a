//! Query cancellation: PostgreSQL's CancelRequest, honoured while a query is
//! planned, executed *and* while its rows stream to the client.
//!
//! Each connection owns a [`QueryCanceller`]; every query gets a fresh
//! token. A CancelRequest (on a new socket, identified by the backend pid and
//! secret key handed out at start-up) fires the current token. The query's
//! future and row stream stop at once, dropping the remote scans, whose
//! connectors then cancel the statement on the backend server too.
//! `statement_timeout` fires the same token from a timer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

/// The cancellation token of one query, and why it fired.
#[derive(Debug, Clone, Default)]
pub struct QueryToken {
    token: CancellationToken,
    timed_out: Arc<AtomicBool>,
}

impl QueryToken {
    /// Completes when the query is cancelled or its time is up.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Whether it fired.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Whether `statement_timeout` (rather than a CancelRequest) fired it.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }
}

/// The cancellation state of one connection.
#[derive(Debug, Default)]
pub struct QueryCanceller {
    current: Mutex<QueryToken>,
    /// The `statement_timeout` timer of the latest query.
    timer: Mutex<Option<AbortHandle>>,
}

impl QueryCanceller {
    /// A token for the query about to run (replacing the previous one). With
    /// a `timeout`, the token also fires once it has passed.
    pub fn start_query(&self, timeout: Option<Duration>) -> QueryToken {
        let query = QueryToken::default();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = query.clone();
        let mut timer = self.timer.lock().unwrap_or_else(|p| p.into_inner());
        // The previous statement is over (its rows were sent or buffered).
        if let Some(previous) = timer.take() {
            previous.abort();
        }
        if let Some(timeout) = timeout {
            let fire = query.clone();
            let task = tokio::spawn(async move {
                tokio::select! {
                    biased;
                    // Already cancelled by request: that stays the reason.
                    _ = fire.token.cancelled() => {}
                    _ = tokio::time::sleep(timeout) => {
                        fire.timed_out.store(true, Ordering::Release);
                        fire.token.cancel();
                    }
                }
            });
            *timer = Some(task.abort_handle());
        }
        query
    }

    fn cancel(&self) {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .token
            .cancel();
    }
}

/// `pg_cancel_backend` reaches a session's statement through the engine's
/// activity registry.
impl crate::engine::activity::CancelStatement for QueryCanceller {
    fn cancel_statement(&self) {
        tracing::debug!("query cancelled by pg_cancel_backend");
        self.cancel();
    }
}

impl Drop for QueryCanceller {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            timer.abort();
        }
    }
}

/// All connections that can be cancelled, by backend pid.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    connections: Mutex<HashMap<i32, (SecretKey, Arc<QueryCanceller>)>>,
}

impl CancelRegistry {
    /// Registers a connection; it is forgotten when the guard drops.
    pub fn register(
        self: &Arc<Self>,
        pid: i32,
        secret: SecretKey,
        canceller: Arc<QueryCanceller>,
    ) -> Registration {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, (secret, canceller));
        Registration {
            registry: Arc::clone(self),
            pid,
        }
    }
}

/// Removes a connection from the registry when the connection ends.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
    }
}

#[async_trait]
impl CancelHandler for CancelRegistry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let target = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&request.pid)
            .filter(|(secret, _)| secret.eq_value(&request.secret_key))
            .map(|(_, canceller)| Arc::clone(canceller));
        // Like PostgreSQL, say nothing either way: the requester learns
        // nothing about other sessions.
        if let Some(canceller) = target {
            tracing::debug!(pid = request.pid, "query cancelled by request");
            canceller.cancel();
        }
    }
}
