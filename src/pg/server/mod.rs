//! The PostgreSQL wire-protocol front end.
//!
//! A thin layer over [`crate::engine::session::Session`]: each TCP connection gets its
//! own handlers and session; the engine (catalog, sources) is shared. A panic
//! or error in one connection never affects another: each runs in its own task.
//!
//! Security (`[server]` and `[[user]]` of the configuration): TLS with rustls
//! ([`tls`]), SCRAM-SHA-256 users ([`scram`], checked in [`startup`]) or,
//! without users, password-less connections from loopback only — and then
//! [`Server::bind`] refuses any other listen address; a connection limit;
//! `statement_timeout` ([`timeout`]) and CancelRequest ([`cancel`]).

mod cancel;
mod cancellable;
mod deferred;
pub mod encode;
mod errors;
mod handler;
mod metered;
mod scram;
mod startup;
mod transaction;

mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::engine::config::ServerConfig;
use crate::engine::error::{KoiosError, Result};

pub use encode::{encode_batch, field_infos};
pub use handler::ConnectionHandlers;

pub use crate::engine::credentials::ScramVerifier;
pub use crate::engine::timeout::parse_statement_timeout;

/// A bound, not yet serving, listener.
pub struct Server {
    engine: Arc<Engine>,
    listener: TcpListener,
    cancels: Arc<cancel::CancelRegistry>,
    access: Arc<startup::Access>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    max_connections: usize,
    active: Arc<AtomicUsize>,
}

/// One of the `max_connections` slots, given back when the connection's task
/// ends (normally, with an error, or by panicking).
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn acquire(active: &Arc<AtomicUsize>, max: usize) -> Option<ConnectionSlot> {
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(Arc::clone(active)))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What [`Server::bind`] refuses, checked before the engine starts: port
/// 5432, and a non-loopback address without users.
fn check_listen(config: &ServerConfig, listen: SocketAddr) -> Result<()> {
    if listen.port() == 5432 {
        return Err(KoiosError::Config(
            "port 5432 belongs to PostgreSQL; Koios listens on 5433 by default".into(),
        ));
    }
    if config.users.is_empty() && !listen.ip().to_canonical().is_loopback() {
        return Err(KoiosError::Config(format!(
            "no users are configured, so Koios only accepts password-less connections \
             from loopback and will not listen on {listen}: add [[user]] entries \
             (SCRAM-SHA-256) or listen on 127.0.0.1"
        )));
    }
    Ok(())
}

/// Checks the listen address and loads the TLS files, so `koios serve`
/// fails at once (before sources are attached) on what `bind` would refuse.
pub fn check_config(config: &ServerConfig, listen: SocketAddr) -> Result<()> {
    check_listen(config, listen)?;
    if let Some(files) = &config.tls {
        tls::acceptor(files)?;
    }
    Ok(())
}

impl Server {
    /// Binds the listen address, with the security settings of the engine's
    /// `[server]` configuration. Without users, password-less access is only
    /// safe on loopback, so any other address is refused.
    pub async fn bind(engine: Arc<Engine>, listen: SocketAddr) -> Result<Server> {
        let config = engine.server_config();
        check_listen(config, listen)?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let access = Arc::new(startup::Access::new(&config.users, config.tls_required));
        let max_connections = config.max_connections;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| KoiosError::io(format!("cannot listen on {listen}"), e))?;
        Ok(Server {
            engine,
            listener,
            cancels: Arc::new(cancel::CancelRegistry::default()),
            access,
            tls,
            max_connections,
            active: Arc::new(AtomicUsize::new(0)),
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
            // Beyond the limit a client is still served up to its startup
            // message (TLS negotiated, a CancelRequest honoured) and then
            // refused with 53300; it holds no slot meanwhile.
            let slot = ConnectionSlot::acquire(&self.active, self.max_connections);
            if slot.is_none() {
                tracing::info!(%peer, max = self.max_connections, "connection limit reached");
            }
            let handlers = Arc::new(ConnectionHandlers::new(
                Arc::clone(&self.engine),
                Arc::clone(&self.cancels),
                Arc::clone(&self.access),
                slot.is_some(),
            ));
            let tls = self.tls.clone();
            // Counted while open, if it holds a slot (a client refused at
            // the limit is not counted).
            let connection = slot.as_ref().map(|_| self.engine.metrics().connection());
            tokio::spawn(async move {
                let _slot = slot;
                let _connection = connection;
                tracing::debug!(%peer, "connection opened");
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_given_back() {
        let active = Arc::new(AtomicUsize::new(0));
        let first = ConnectionSlot::acquire(&active, 2).expect("first");
        let second = ConnectionSlot::acquire(&active, 2).expect("second");
        assert!(ConnectionSlot::acquire(&active, 2).is_none());
        drop(first);
        let third = ConnectionSlot::acquire(&active, 2).expect("a freed slot");
        drop((second, third));
        assert_eq!(active.load(Ordering::Acquire), 0);
        // Also when the task holding it panics.
        let held = ConnectionSlot::acquire(&active, 2);
        let _ = std::thread::spawn(move || {
            let _slot = held;
            panic!("connection task panics");
        })
        .join();
        assert_eq!(active.load(Ordering::Acquire), 0);
    }
}
