//! Query cancellation: PostgreSQL's CancelRequest, honoured while a query is
//! planned, executed *and* while its rows stream to the client.
//!
//! Each connection owns a [`QueryCanceller`]; every query gets a fresh
//! token. A CancelRequest (on a new socket, identified by the backend pid and
//! secret key handed out at start-up) fires the current token. The query's
//! future and row stream stop at once, dropping the remote scans, whose
//! connectors then cancel the statement on the backend server too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio_util::sync::CancellationToken;

/// The cancellation state of one connection.
#[derive(Debug, Default)]
pub struct QueryCanceller {
    current: Mutex<CancellationToken>,
}

impl QueryCanceller {
    /// A token for the query about to run (replacing the previous one).
    pub fn start_query(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = token.clone();
        token
    }

    fn cancel(&self) {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cancel();
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
