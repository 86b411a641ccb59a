//! A session's transaction block on PostgreSQL: one pooled connection kept
//! for the block ([`PgTransaction`]), and [`Connection`], the one type the
//! reads and writes of this crate run on — pooled, or that pinned one.
//!
//! Statements inside the block run on the connection as they are: a
//! failing one aborts the remote transaction, as it fails the block.
//! Savepoint names are Koios's own (`koios_savepoint_N`), quoted anyway.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use deadpool_postgres::{ClientWrapper, Object};
use koios_connector::RemoteDialect;
use koios_connector::transaction::RemoteTransaction;

use crate::backend::PgBackend;
use crate::error::remote_error;

/// The connection of one open remote transaction.
pub(crate) struct Pinned {
    source: String,
    /// `Some` until dropped.
    client: Option<Object>,
    /// Committed or rolled back: the connection may go back to the pool.
    ended: AtomicBool,
}

impl Pinned {
    pub(crate) fn client(&self) -> Result<&ClientWrapper> {
        self.client
            .as_deref()
            .ok_or_else(|| DataFusionError::Internal("a transaction without its connection".into()))
    }

    async fn run(&self, what: &str, sql: &str) -> Result<()> {
        self.client()?
            .batch_execute(sql)
            .await
            .map_err(|e| remote_error(&format!("source '{}': {what}", self.source), &e))
    }

    /// Commits a transaction Koios opened for one statement.
    pub(crate) async fn commit(&self) -> Result<()> {
        self.end("committing", "COMMIT").await
    }

    /// Runs one statement Koios wrote; the rows it affected.
    pub(crate) async fn execute(&self, what: &str, sql: &str) -> Result<u64> {
        self.client()?
            .execute(sql, &[])
            .await
            .map_err(|e| remote_error(&format!("source '{}': {what}", self.source), &e))
    }

    async fn end(&self, what: &str, sql: &str) -> Result<()> {
        self.run(what, sql).await?;
        self.ended.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for Pinned {
    /// Never pooled while its transaction may be open: the connection is
    /// closed, and PostgreSQL rolls the transaction back.
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !self.ended.load(Ordering::Acquire)
        {
            drop(Object::take(client));
        }
    }
}

/// [`Pinned`] as the engine's [`RemoteTransaction`].
#[derive(Clone)]
pub(crate) struct PgTransaction(pub(crate) Arc<Pinned>);

impl std::fmt::Debug for PgTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTransaction({})", self.0.source)
    }
}

fn savepoint_sql(verb: &str, name: &str) -> String {
    format!(
        "{verb} {}",
        RemoteDialect::PostgreSql.quote_identifier(name)
    )
}

#[async_trait]
impl RemoteTransaction for PgTransaction {
    fn as_any(&self) -> &dyn Any {
        self
    }

    async fn commit(&self) -> Result<()> {
        self.0.end("committing", "COMMIT").await
    }

    async fn rollback(&self) -> Result<()> {
        self.0.end("rolling back", "ROLLBACK").await
    }

    async fn savepoint(&self, name: &str) -> Result<()> {
        self.0
            .run("setting a savepoint", &savepoint_sql("SAVEPOINT", name))
            .await
    }

    async fn rollback_to(&self, name: &str) -> Result<()> {
        self.0
            .run(
                "rolling back to a savepoint",
                &savepoint_sql("ROLLBACK TO SAVEPOINT", name),
            )
            .await
    }

    async fn release(&self, name: &str) -> Result<()> {
        self.0
            .run(
                "releasing a savepoint",
                &savepoint_sql("RELEASE SAVEPOINT", name),
            )
            .await
    }
}

/// The connection a read or write runs on.
// Pooled is the common case (every statement outside a block); boxing it
// would add an allocation to every read.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Connection {
    Pooled(Object),
    Pinned(Arc<Pinned>),
}

impl Connection {
    pub(crate) fn client(&self) -> Result<&ClientWrapper> {
        match self {
            Connection::Pooled(object) => Ok(&**object),
            Connection::Pinned(pinned) => pinned.client(),
        }
    }
}

impl PgBackend {
    /// This crate's transaction behind the engine's handle (`None`:
    /// pooled).
    pub(crate) fn pinned(
        &self,
        transaction: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<Option<Arc<Pinned>>> {
        koios_connector::transaction::own(&self.source, transaction, |t: &PgTransaction| {
            Arc::clone(&t.0)
        })
    }

    /// Takes a pooled connection and begins a transaction on it.
    pub(crate) async fn begin_transaction(&self) -> Result<Arc<dyn RemoteTransaction>> {
        Ok(Arc::new(PgTransaction(self.begin_pinned().await?)))
    }

    /// [`PgBackend::begin_transaction`], for Koios's own use.
    pub(crate) async fn begin_pinned(&self) -> Result<Arc<Pinned>> {
        let client = self.client().await?;
        let pinned = Pinned {
            source: self.source.clone(),
            client: Some(client),
            ended: AtomicBool::new(false),
        };
        pinned.run("beginning a transaction", "BEGIN").await?;
        Ok(Arc::new(pinned))
    }

    /// The connection for a statement: `pinned`'s, else a pooled one.
    pub(crate) async fn connection(&self, pinned: Option<Arc<Pinned>>) -> Result<Connection> {
        Ok(match pinned {
            Some(pinned) => Connection::Pinned(pinned),
            None => Connection::Pooled(self.client().await?),
        })
    }
}
