//! A session's transaction block on MySQL/MariaDB: one pooled connection
//! kept for the block, inside mysql_async's own transaction
//! ([`MyTransaction`]), which the reads and writes of this crate lock for
//! each statement.
//!
//! Dropped without COMMIT or ROLLBACK (the client went away), mysql_async
//! rolls the transaction back before the connection serves again.
//! Savepoint names are Koios's own (`koios_savepoint_N`), quoted anyway.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use koios_connector::RemoteDialect;
use koios_connector::transaction::RemoteTransaction;
use mysql_async::prelude::Queryable;
use tokio::sync::{Mutex, MutexGuard};

use crate::backend::MyBackend;
use crate::error::remote_error;

/// The connection of one open remote transaction.
pub(crate) struct Pinned {
    source: String,
    /// `None` once committed or rolled back.
    transaction: Mutex<Option<mysql_async::Transaction<'static>>>,
}

impl Pinned {
    fn context(&self, what: &str) -> String {
        format!("source '{}': {what}", self.source)
    }

    /// The open transaction, locked for one statement (or one read).
    pub(crate) async fn lock(
        &self,
    ) -> Result<MutexGuard<'_, Option<mysql_async::Transaction<'static>>>> {
        let guard = self.transaction.lock().await;
        if guard.is_none() {
            return Err(DataFusionError::Execution(
                self.context("the transaction block's transaction has ended"),
            ));
        }
        Ok(guard)
    }

    /// Commits (and ends) the transaction.
    pub(crate) async fn commit(&self) -> Result<()> {
        let transaction = self.lock().await?.take();
        match transaction {
            Some(transaction) => transaction
                .commit()
                .await
                .map_err(|e| remote_error(&self.context("committing"), &e)),
            None => Ok(()),
        }
    }

    async fn run(&self, what: &str, sql: String) -> Result<()> {
        let mut guard = self.lock().await?;
        let Some(transaction) = guard.as_mut() else {
            return Ok(());
        };
        transaction
            .query_drop(sql)
            .await
            .map_err(|e| remote_error(&self.context(what), &e))
    }
}

/// [`Pinned`] as the engine's [`RemoteTransaction`].
pub(crate) struct MyTransaction(pub(crate) Arc<Pinned>);

impl std::fmt::Debug for MyTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MyTransaction({})", self.0.source)
    }
}

fn savepoint_sql(verb: &str, name: &str) -> String {
    format!("{verb} {}", RemoteDialect::MySql.quote_identifier(name))
}

#[async_trait]
impl RemoteTransaction for MyTransaction {
    fn as_any(&self) -> &dyn Any {
        self
    }

    async fn commit(&self) -> Result<()> {
        self.0.commit().await
    }

    async fn rollback(&self) -> Result<()> {
        let transaction = self.0.transaction.lock().await.take();
        match transaction {
            Some(transaction) => transaction
                .rollback()
                .await
                .map_err(|e| remote_error(&self.0.context("rolling back"), &e)),
            None => Ok(()),
        }
    }

    async fn savepoint(&self, name: &str) -> Result<()> {
        self.0
            .run("setting a savepoint", savepoint_sql("SAVEPOINT", name))
            .await
    }

    async fn rollback_to(&self, name: &str) -> Result<()> {
        self.0
            .run(
                "rolling back to a savepoint",
                savepoint_sql("ROLLBACK TO SAVEPOINT", name),
            )
            .await
    }

    async fn release(&self, name: &str) -> Result<()> {
        self.0
            .run(
                "releasing a savepoint",
                savepoint_sql("RELEASE SAVEPOINT", name),
            )
            .await
    }
}

impl MyBackend {
    /// This crate's transaction behind the engine's handle (`None`:
    /// pooled).
    pub(crate) fn pinned(
        &self,
        transaction: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<Option<Arc<Pinned>>> {
        koios_connector::transaction::own(&self.source, transaction, |t: &MyTransaction| {
            Arc::clone(&t.0)
        })
    }

    /// Takes a pooled connection and starts a transaction on it.
    pub(crate) async fn begin_transaction(&self) -> Result<Arc<dyn RemoteTransaction>> {
        Ok(Arc::new(MyTransaction(self.begin_pinned().await?)))
    }

    /// [`MyBackend::begin_transaction`], for Koios's own use.
    pub(crate) async fn begin_pinned(&self) -> Result<Arc<Pinned>> {
        let transaction = self
            .pool
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| remote_error(&self.context("beginning a transaction"), &e))?;
        Ok(Arc::new(Pinned {
            source: self.source.clone(),
            transaction: Mutex::new(Some(transaction)),
        }))
    }
}
