//! The connection pool of a PostgreSQL source, where whoever holds a
//! connection may drive its I/O.
//!
//! tokio-postgres splits a connection into a `Client`, which queues
//! requests, and a `Connection` future, which does the socket work; pools
//! usually spawn that future as a task of its own. Every request and every
//! response then crosses between two tasks — on a busy machine a thread
//! wakeup each way, which for an index lookup that PostgreSQL answers in a
//! tenth of a millisecond is a good part of what a middle tier adds.
//!
//! Pooling itself (slots, waiting, timeouts, recycling) is deadpool's; this
//! module decides who drives a connection. An idle connection is not
//! driven by anyone. A lease taken with
//! [`Pool::get_driven`] polls the connection itself, in the task that polls
//! the query ([`Lease::drive_while`], [`Lease::poll_drive`]): request,
//! response and rows stay within the task serving the client. A lease
//! taken with [`Pool::get`] (scans, writes, discovery: statements held
//! across awaits of their own) has a task drive it until it is dropped,
//! which hands the connection back to the pool.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Context;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a lease waits for one of the pool's connections to be free.
const WAIT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long opening a connection (TCP, TLS, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a closed connection gets to say goodbye (`Terminate`).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The socket half of a connection: resolves when the connection ends.
type Driver = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// One connection as the pool keeps it.
pub struct Connection {
    client: Client,
    /// `None` while a task drives it, or once it has ended (a driver that
    /// has resolved must not be polled again).
    driver: Option<Driver>,
}

/// Opens connections and checks idle ones for deadpool.
pub struct Manager {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Connection, tokio_postgres::Error> {
        let driver: Driver;
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                driver = Box::pin(connection);
                client
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                driver = Box::pin(connection);
                client
            }
        };
        Ok(Connection {
            client,
            driver: Some(driver),
        })
    }

    /// Reads whatever the server sent while the connection sat idle (a
    /// termination notice, the end of the stream) without waiting for
    /// anything: a connection that has ended is not handed out.
    async fn recycle(
        &self,
        connection: &mut Connection,
        _: &Metrics,
    ) -> RecycleResult<tokio_postgres::Error> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let open = match connection.driver.as_mut() {
            Some(driver) => driver.as_mut().poll(&mut cx).is_pending(),
            None => false,
        };
        if open && !connection.client.is_closed() {
            Ok(())
        } else {
            connection.driver = None;
            Err(RecycleError::message("the connection has ended"))
        }
    }
}

/// Why no connection could be had.
#[derive(Debug)]
pub struct PoolError(managed::PoolError<tokio_postgres::Error>);

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            managed::PoolError::Backend(e) => f.write_str(&crate::backend::error_chain(e)),
            managed::PoolError::Timeout(managed::TimeoutType::Wait) => write!(
                f,
                "every pooled connection stayed busy for {} s",
                WAIT_TIMEOUT.as_secs()
            ),
            managed::PoolError::Timeout(_) => write!(
                f,
                "the server did not accept a connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
            other => other.fmt(f),
        }
    }
}

/// Up to `size` connections to one database, opened on demand.
#[derive(Clone)]
pub struct Pool {
    pool: managed::Pool<Manager>,
}

impl Pool {
    pub fn new(
        config: tokio_postgres::Config,
        tls: Option<MakeRustlsConnect>,
        size: usize,
    ) -> Result<Pool, String> {
        let pool = managed::Pool::builder(Manager { config, tls })
            .max_size(size.max(1))
            .runtime(deadpool::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Pool { pool })
    }

    /// A connection driven by a task of its own while held.
    pub async fn get(&self) -> Result<Lease, PoolError> {
        let mut lease = self.get_driven().await?;
        lease.spawn_driver();
        Ok(lease)
    }

    /// A connection whose I/O the holder drives: nothing moves on it but
    /// while [`Lease::drive_while`] or [`Lease::poll_drive`] is polled.
    pub async fn get_driven(&self) -> Result<Lease, PoolError> {
        let object = self.pool.get().await.map_err(PoolError)?;
        Ok(Lease {
            object: Some(object),
            task: None,
            reuse: true,
        })
    }
}

/// What a dropped lease hands the task driving its connection.
enum Return {
    /// Give the connection its driver back and return it to the pool.
    Reuse(Object<Manager>),
    /// Close the connection.
    Close(Object<Manager>),
}

/// One connection of the pool, held until dropped. Dereferences to the
/// tokio-postgres `Client`.
pub struct Lease {
    /// `Some` until the lease is dropped.
    object: Option<Object<Manager>>,
    /// Set while a task drives the connection: how to hand it back.
    task: Option<oneshot::Sender<Return>>,
    reuse: bool,
}

impl Lease {
    /// Closes the connection when the lease ends instead of pooling it (a
    /// statement may still run on it).
    pub fn discard(&mut self) {
        self.reuse = false;
    }

    /// Advances the connection's I/O, registering `cx` for more: requests
    /// are written, responses read and handed to the streams waiting for
    /// them. Does nothing when a task drives the connection.
    pub fn poll_drive(&mut self, cx: &mut Context<'_>) {
        if let Some(object) = self.object.as_mut() {
            poll_driver(&mut object.driver, cx);
        }
    }

    /// Runs `start(client)` while driving the connection.
    pub async fn drive_while<'a, F: Future>(
        &'a mut self,
        start: impl FnOnce(&'a Client) -> F,
    ) -> F::Output {
        // Only `drop` takes the object out.
        let object = self
            .object
            .as_mut()
            .expect("a lease holds its connection until dropped");
        let Connection { client, driver } = &mut **object;
        let mut work = pin!(start(client));
        poll_fn(|cx| {
            poll_driver(driver, cx);
            work.as_mut().poll(cx)
        })
        .await
    }

    /// Hands the socket work to a task until the lease ends.
    fn spawn_driver(&mut self) {
        let Some(mut driver) = self.object.as_mut().and_then(|o| o.driver.take()) else {
            return;
        };
        let (hand_back, on_return) = oneshot::channel();
        tokio::spawn(async move {
            let back = tokio::select! {
                back = on_return => back,
                // The connection ended; the lease's requests fail on their
                // own, and the pool drops it (it has no driver).
                _ = &mut driver => return,
            };
            match back {
                Ok(Return::Reuse(mut object)) => object.driver = Some(driver),
                Ok(Return::Close(object)) => {
                    drop(Object::take(object));
                    close(driver);
                }
                // A lease always says; dropped unsaid, close to be safe.
                Err(_) => close(driver),
            }
        });
        self.task = Some(hand_back);
    }
}

fn poll_driver(driver: &mut Option<Driver>, cx: &mut Context<'_>) {
    if let Some(running) = driver
        && running.as_mut().poll(cx).is_ready()
    {
        // The connection ended; the streams waiting on it see why, and
        // recycling drops it.
        *driver = None;
    }
}

impl std::ops::Deref for Lease {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Only `drop` takes the object out.
        &self
            .object
            .as_ref()
            .expect("a lease holds its connection until dropped")
            .client
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self
            .object
            .as_mut()
            .expect("a lease holds its connection until dropped")
            .client
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        let reuse = self.reuse && !object.client.is_closed();
        match self.task.take() {
            Some(task) => {
                let back = if reuse {
                    Return::Reuse(object)
                } else {
                    Return::Close(object)
                };
                // A task that has ended has nothing to hand back; the
                // connection (without a driver) then fails recycling.
                let _ = task.send(back);
            }
            None if reuse => drop(object),
            None => {
                let Connection { client, driver } = Object::take(object);
                drop(client);
                if let Some(driver) = driver {
                    close(driver);
                }
            }
        }
    }
}

/// Lets a connection whose client is gone send `Terminate` and close, in
/// the background (a connection dropped unpolled would just be cut).
fn close(driver: Driver) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, driver).await;
        });
    }
}
