//! The PostgreSQL wire-protocol front end.
//!
//! A thin layer over [`crate::session::Session`]: each TCP connection gets its
//! own handlers and session; the engine (catalog, sources) is shared. A panic
//! or error in one connection never affects another: each runs in its own task.

mod cancel;
mod encode;
mod handler;
mod startup;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::error::{KoiosError, Result};

pub use encode::{encode_batch, field_infos};
pub use handler::ConnectionHandlers;

/// A bound, not yet serving, listener.
pub struct Server {
    engine: Arc<Engine>,
    listener: TcpListener,
    cancels: Arc<cancel::CancelRegistry>,
}

impl Server {
    /// Binds the listen address. Password-less access is only safe on
    /// loopback, which is all this build accepts connections from.
    pub async fn bind(engine: Arc<Engine>, listen: SocketAddr) -> Result<Server> {
        if listen.port() == 5432 {
            return Err(KoiosError::Config(
                "port 5432 belongs to PostgreSQL; Koios listens on 5433 by default".into(),
            ));
        }
        if !listen.ip().is_loopback() {
            tracing::warn!(
                %listen,
                "no users are configured: connections from other hosts will be refused"
            );
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| KoiosError::io(format!("cannot listen on {listen}"), e))?;
        Ok(Server {
            engine,
            listener,
            cancels: Arc::new(cancel::CancelRegistry::default()),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| KoiosError::io("cannot read the listen address", e))
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) -> Result<()> {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let handlers = Arc::new(ConnectionHandlers::new(
                Arc::clone(&self.engine),
                Arc::clone(&self.cancels),
            ));
            tokio::spawn(async move {
                tracing::debug!(%peer, "connection opened");
                if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}
