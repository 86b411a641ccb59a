//! A client whose messages are written out at `Sync`, not one by one.
//!
//! pgwire's handlers for the extended protocol `send` ParseComplete,
//! BindComplete and CommandComplete, each a flush and so a syscall and a
//! wakeup of the client; a driver's Bind/Execute/Sync then got four
//! writes (BindComplete, RowDescription, the rows, ReadyForQuery).
//! PostgreSQL writes its answers out only at Sync or Flush, which pgwire's
//! handlers of those two messages do on the real client. Handing the other
//! handlers this wrapper turns their flushes into nothing: messages stay in
//! the connection's buffer (which still writes itself out when full) until
//! then.
//!
//! A NoticeResponse is the exception: a statement that runs long (a
//! migration waited for) tells its progress while it runs, so a flush after
//! one is carried out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Sink;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, SessionExtensions};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, ProtocolVersion};
use rustls::pki_types::CertificateDer;

/// `client`, with flushing left to the Sync (or Flush) that ends the batch.
pub struct Deferred<'a, C> {
    client: &'a mut C,
    /// A notice was sent since the last flush: the next flush goes out.
    notice_sent: bool,
}

impl<'a, C> Deferred<'a, C> {
    pub fn new(client: &'a mut C) -> Self {
        Deferred {
            client,
            notice_sent: false,
        }
    }
}

impl<C: ClientInfo> ClientInfo for Deferred<'_, C> {
    fn socket_addr(&self) -> SocketAddr {
        self.client.socket_addr()
    }

    fn is_secure(&self) -> bool {
        self.client.is_secure()
    }

    fn protocol_version(&self) -> ProtocolVersion {
        self.client.protocol_version()
    }

    fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.client.set_protocol_version(version)
    }

    fn pid_and_secret_key(&self) -> (i32, SecretKey) {
        self.client.pid_and_secret_key()
    }

    fn set_pid_and_secret_key(&mut self, pid: i32, secret_key: SecretKey) {
        self.client.set_pid_and_secret_key(pid, secret_key)
    }

    fn state(&self) -> PgWireConnectionState {
        self.client.state()
    }

    fn set_state(&mut self, new_state: PgWireConnectionState) {
        self.client.set_state(new_state)
    }

    fn transaction_status(&self) -> TransactionStatus {
        self.client.transaction_status()
    }

    fn set_transaction_status(&mut self, new_status: TransactionStatus) {
        self.client.set_transaction_status(new_status)
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.client.metadata()
    }

    fn metadata_mut(&mut self) -> &mut HashMap<String, String> {
        self.client.metadata_mut()
    }

    fn session_extensions(&self) -> &SessionExtensions {
        self.client.session_extensions()
    }

    fn sni_server_name(&self) -> Option<&str> {
        self.client.sni_server_name()
    }

    fn client_certificates<'a>(&self) -> Option<&[CertificateDer<'a>]> {
        self.client.client_certificates()
    }
}

impl<C: ClientPortalStore> ClientPortalStore for Deferred<'_, C> {
    type PortalStore = C::PortalStore;

    fn portal_store(&self) -> &Self::PortalStore {
        self.client.portal_store()
    }
}

impl<C> Sink<PgWireBackendMessage> for Deferred<'_, C>
where
    C: Sink<PgWireBackendMessage> + Unpin,
{
    type Error = C::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        Pin::new(&mut *self.client).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: PgWireBackendMessage) -> Result<(), C::Error> {
        if matches!(item, PgWireBackendMessage::NoticeResponse(_)) {
            self.notice_sent = true;
        }
        Pin::new(&mut *self.client).start_send(item)
    }

    /// Nothing, unless a notice waits (progress of a statement still
    /// running): the Sync or Flush that ends the batch writes it out.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        if !self.notice_sent {
            return Poll::Ready(Ok(()));
        }
        let flushed = Pin::new(&mut *self.client).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.notice_sent = false;
        }
        flushed
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        Pin::new(&mut *self.client).poll_close(cx)
    }
}
