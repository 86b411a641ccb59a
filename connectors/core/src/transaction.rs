//! Transaction blocks: what a session's `BEGIN … COMMIT` asks of its
//! sources.
//!
//! The engine gives every session one [`TransactionBlock`] and carries it
//! to connectors' plan nodes in the session configuration's extensions
//! ([`block_of`]). Outside `BEGIN … COMMIT` it does nothing and every
//! statement takes pooled connections. Inside, the first write to a source
//! opens a remote transaction on a connection taken from that source's
//! pool ([`TransactionBlock::writing`], with the connector's opener); later
//! writes *and reads* of that source run on that connection
//! ([`TransactionBlock::reading`]), so the block sees its own writes;
//! `COMMIT` or `ROLLBACK` ends it and the connection goes back to the pool.
//! A connection dropped while its transaction is open is closed, never
//! pooled, so the server undoes the transaction.
//!
//! A write to a second source inside the same block is refused with 0A000
//! naming both: Koios has no two-phase commit, and committing one source
//! while the other fails would lose atomicity silently. Reads of other
//! sources stay allowed (on their pools).
//!
//! Savepoints are Koios's: a user's `SAVEPOINT name` becomes a generated
//! `koios_savepoint_N` in the backend (no user text reaches remote SQL), or
//! only a mark when no remote transaction is open yet — rolling back to
//! such a mark ends whatever remote transaction was opened after it.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use datafusion::error::Result;
use datafusion::execution::TaskContext;

use crate::sqlstate::codes;
use crate::{sql_err, sql_error};

/// A remote transaction a connector opened on one of its connections.
///
/// Dropped without [`commit`](Self::commit) or [`rollback`](Self::rollback)
/// (the client disconnected), it must make sure the backend undoes it:
/// close the connection rather than pool it.
#[async_trait]
pub trait RemoteTransaction: Send + Sync + Debug {
    /// The connector's own type, for its plan nodes to reach the
    /// connection (only the connector that opened it downcasts it).
    fn as_any(&self) -> &dyn Any;

    async fn commit(&self) -> Result<()>;

    async fn rollback(&self) -> Result<()>;

    /// `SAVEPOINT name` (a name Koios generated).
    async fn savepoint(&self, name: &str) -> Result<()>;

    /// `ROLLBACK TO SAVEPOINT name`: undoes what ran since, keeps the mark.
    async fn rollback_to(&self, name: &str) -> Result<()>;

    /// `RELEASE SAVEPOINT name`.
    async fn release(&self, name: &str) -> Result<()>;
}

/// The block a plan node runs in: its session's, if the engine gave one.
pub fn block_of(task: &TaskContext) -> Option<Arc<TransactionBlock>> {
    task.session_config().get_extension::<TransactionBlock>()
}

/// Where a session stands, as the wire protocol reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    /// No block: every statement commits on its own.
    Idle,
    /// Inside `BEGIN … COMMIT`.
    Open,
    /// Inside a block in which a statement failed: only `ROLLBACK`,
    /// `COMMIT` (which rolls back) and `ROLLBACK TO SAVEPOINT` run.
    Failed,
}

/// How a block ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEnd {
    Committed,
    RolledBack,
}

/// One session's transaction block (see the module documentation).
#[derive(Debug, Default)]
pub struct TransactionBlock {
    state: Mutex<State>,
    /// A statement's own block ([`TransactionBlock::for_statement`]): its
    /// reads never need its writes, so they stay on pooled connections.
    reads_pooled: bool,
}

#[derive(Debug, Default)]
struct State {
    open: bool,
    failed: bool,
    remote: Option<Remote>,
    savepoints: Vec<Savepoint>,
    /// Numbers the generated savepoint names.
    next_savepoint: u64,
}

#[derive(Debug)]
struct Remote {
    source: String,
    transaction: Arc<dyn RemoteTransaction>,
}

#[derive(Debug)]
struct Savepoint {
    /// The user's name.
    name: String,
    /// The backend's savepoint, when a remote transaction was open at the
    /// mark; `None`: the mark came before any remote write.
    remote: Option<String>,
}

impl TransactionBlock {
    pub fn new() -> TransactionBlock {
        TransactionBlock::default()
    }

    /// The block of one statement that writes `source` inside
    /// `transaction`, already open (a `CREATE TABLE AS` whose table was
    /// created in it): its writes run there; its reads, which cannot need
    /// them, stream from the pool meanwhile. The caller commits it.
    pub fn for_statement(
        source: &str,
        transaction: Arc<dyn RemoteTransaction>,
    ) -> TransactionBlock {
        TransactionBlock {
            state: Mutex::new(State {
                open: true,
                remote: Some(Remote {
                    source: source.to_string(),
                    transaction,
                }),
                ..State::default()
            }),
            reads_pooled: true,
        }
    }

    /// Whether a read may run on the connection of the block's remote
    /// transaction (so a write's rows must be read to their end before the
    /// write starts on it).
    pub fn reads_share_connection(&self) -> bool {
        !self.reads_pooled
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state_now(&self) -> BlockState {
        let state = self.state();
        match (state.open, state.failed) {
            (false, _) => BlockState::Idle,
            (true, false) => BlockState::Open,
            (true, true) => BlockState::Failed,
        }
    }

    /// The source this block has written to, if any.
    pub fn written_source(&self) -> Option<String> {
        self.state().remote.as_ref().map(|r| r.source.clone())
    }

    /// `BEGIN`; `false` when a block was already open (PostgreSQL warns
    /// and carries on).
    pub fn begin(&self) -> bool {
        let mut state = self.state();
        if state.open {
            return false;
        }
        *state = State {
            open: true,
            ..State::default()
        };
        true
    }

    /// A statement in the block failed: the block now only ends.
    pub fn fail(&self) {
        let mut state = self.state();
        if state.open {
            state.failed = true;
        }
    }

    /// Takes the block's state, leaving it idle.
    fn end(&self) -> State {
        std::mem::take(&mut *self.state())
    }

    /// `COMMIT`: commits the remote transaction, or rolls it back when the
    /// block failed. A commit the backend refuses is an error (the backend
    /// has then undone it), and the block is over either way.
    pub async fn commit(&self) -> Result<BlockEnd> {
        let state = self.end();
        let Some(remote) = state.remote else {
            return Ok(if state.failed {
                BlockEnd::RolledBack
            } else {
                BlockEnd::Committed
            });
        };
        if state.failed {
            remote.transaction.rollback().await?;
            return Ok(BlockEnd::RolledBack);
        }
        remote.transaction.commit().await?;
        Ok(BlockEnd::Committed)
    }

    /// `ROLLBACK`.
    pub async fn rollback(&self) -> Result<()> {
        match self.end().remote {
            Some(remote) => remote.transaction.rollback().await,
            None => Ok(()),
        }
    }

    /// `SAVEPOINT name`.
    pub async fn savepoint(&self, name: &str) -> Result<()> {
        let (transaction, remote_name) = {
            let mut state = self.state();
            if !state.open {
                return sql_err!(
                    codes::NO_ACTIVE_SQL_TRANSACTION,
                    "SAVEPOINT can only be used in transaction blocks"
                );
            }
            let transaction = state.remote.as_ref().map(|r| Arc::clone(&r.transaction));
            let remote_name = transaction.as_ref().map(|_| {
                state.next_savepoint += 1;
                format!("koios_savepoint_{}", state.next_savepoint)
            });
            (transaction, remote_name)
        };
        if let (Some(transaction), Some(remote_name)) = (&transaction, &remote_name) {
            transaction.savepoint(remote_name).await?;
        }
        self.state().savepoints.push(Savepoint {
            name: name.to_string(),
            remote: remote_name,
        });
        Ok(())
    }

    /// Index of the latest savepoint called `name`.
    fn find(state: &State, name: &str) -> Result<usize> {
        state
            .savepoints
            .iter()
            .rposition(|s| s.name == name)
            .ok_or_else(|| {
                sql_error!(
                    codes::INVALID_SAVEPOINT_SPECIFICATION,
                    "savepoint \"{name}\" does not exist"
                )
            })
    }

    /// `ROLLBACK TO SAVEPOINT name`: undoes what ran since the mark, which
    /// stays; the block is usable again.
    pub async fn rollback_to(&self, name: &str) -> Result<()> {
        let (index, remote_name, transaction) = {
            let state = self.state();
            if !state.open {
                return sql_err!(
                    codes::NO_ACTIVE_SQL_TRANSACTION,
                    "ROLLBACK TO SAVEPOINT can only be used in transaction blocks"
                );
            }
            let index = Self::find(&state, name)?;
            let remote_name = state.savepoints[index].remote.clone();
            let transaction = state.remote.as_ref().map(|r| Arc::clone(&r.transaction));
            (index, remote_name, transaction)
        };
        match (remote_name, transaction) {
            (Some(remote_name), Some(transaction)) => {
                transaction.rollback_to(&remote_name).await?;
            }
            (None, Some(transaction)) => {
                // The remote transaction began after the mark: all of it goes.
                transaction.rollback().await?;
                self.state().remote = None;
            }
            _ => {}
        }
        let mut state = self.state();
        state.savepoints.truncate(index + 1);
        state.failed = false;
        Ok(())
    }

    /// `RELEASE SAVEPOINT name`: forgets the mark and those after it.
    pub async fn release(&self, name: &str) -> Result<()> {
        let (index, remote_name, transaction) = {
            let state = self.state();
            if !state.open {
                return sql_err!(
                    codes::NO_ACTIVE_SQL_TRANSACTION,
                    "RELEASE SAVEPOINT can only be used in transaction blocks"
                );
            }
            let index = Self::find(&state, name)?;
            let remote_name = state.savepoints[index].remote.clone();
            let transaction = state.remote.as_ref().map(|r| Arc::clone(&r.transaction));
            (index, remote_name, transaction)
        };
        if let (Some(remote_name), Some(transaction)) = (remote_name, transaction) {
            transaction.release(&remote_name).await?;
        }
        self.state().savepoints.truncate(index);
        Ok(())
    }

    /// The remote transaction reads of `source` run in: the block's, when
    /// it wrote to `source`; `None` reads from the pool.
    pub fn reading(&self, source: &str) -> Option<Arc<dyn RemoteTransaction>> {
        if self.reads_pooled {
            return None;
        }
        let state = self.state();
        state
            .remote
            .as_ref()
            .filter(|r| r.source == source)
            .map(|r| Arc::clone(&r.transaction))
    }

    /// The remote transaction a write to `source` runs in: `None` outside a
    /// block (the write commits on its own); inside one, the block's,
    /// opened by `open` at the block's first write. `kind` names the
    /// source's engine in the refusal of a second source.
    pub async fn writing<F, Fut>(
        &self,
        source: &str,
        open: F,
    ) -> Result<Option<Arc<dyn RemoteTransaction>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<dyn RemoteTransaction>>>,
    {
        {
            let state = self.state();
            if !state.open {
                return Ok(None);
            }
            if let Some(remote) = &state.remote {
                if remote.source == source {
                    return Ok(Some(Arc::clone(&remote.transaction)));
                }
                return second_source(source, &remote.source);
            }
        }
        let opened = open().await?;
        let mut state = self.state();
        match &state.remote {
            // Another write of the same statement opened one meanwhile; the
            // extra transaction is dropped (and undone).
            Some(remote) if remote.source == source => Ok(Some(Arc::clone(&remote.transaction))),
            Some(remote) => second_source(source, &remote.source),
            None if !state.open => Ok(None),
            None => {
                state.remote = Some(Remote {
                    source: source.to_string(),
                    transaction: Arc::clone(&opened),
                });
                Ok(Some(opened))
            }
        }
    }
}

fn second_source<T>(source: &str, written: &str) -> Result<T> {
    sql_err!(
        codes::FEATURE_NOT_SUPPORTED,
        "cannot write to source '{source}' in this transaction block: it already wrote to source '{written}', and Koios cannot commit two sources atomically (COMMIT first, or write to '{source}' outside the block)"
    )
}

/// The refusal of a connector whose backend has no transactions.
pub fn no_transactions(source: &str, kind: &str) -> datafusion::error::DataFusionError {
    sql_error!(
        codes::FEATURE_NOT_SUPPORTED,
        "source '{source}' ({kind}) cannot be written inside a transaction block: Koios cannot undo its writes (run the write outside BEGIN … COMMIT)"
    )
}

/// A connector's own transaction behind the engine's handle, through
/// `extract`: `None` for none; an internal error for another connector's
/// (the engine hands each source only the transaction its source opened).
pub fn own<T: 'static, R>(
    source: &str,
    transaction: Option<Arc<dyn RemoteTransaction>>,
    extract: impl FnOnce(&T) -> R,
) -> Result<Option<R>> {
    transaction
        .map(|t| {
            t.as_any().downcast_ref::<T>().map(extract).ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!(
                    "source '{source}' was handed another source's transaction"
                ))
            })
        })
        .transpose()
}

/// For a connector whose backend has no transactions, before a write:
/// `Ok` outside a block (the write commits on its own), the refusal inside
/// one.
pub async fn write_outside_blocks(task: &TaskContext, source: &str, kind: &str) -> Result<()> {
    if let Some(block) = block_of(task) {
        block
            .writing(source, || async { Err(no_transactions(source, kind)) })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<String>>);

    #[async_trait]
    impl RemoteTransaction for Recorded {
        fn as_any(&self) -> &dyn Any {
            self
        }
        async fn commit(&self) -> Result<()> {
            self.0.lock().unwrap().push("COMMIT".into());
            Ok(())
        }
        async fn rollback(&self) -> Result<()> {
            self.0.lock().unwrap().push("ROLLBACK".into());
            Ok(())
        }
        async fn savepoint(&self, name: &str) -> Result<()> {
            self.0.lock().unwrap().push(format!("SAVEPOINT {name}"));
            Ok(())
        }
        async fn rollback_to(&self, name: &str) -> Result<()> {
            self.0.lock().unwrap().push(format!("ROLLBACK TO {name}"));
            Ok(())
        }
        async fn release(&self, name: &str) -> Result<()> {
            self.0.lock().unwrap().push(format!("RELEASE {name}"));
            Ok(())
        }
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn outside_a_block_writes_commit_on_their_own() {
        let block = TransactionBlock::new();
        let opened = run(block.writing("pg", || async {
            panic!("no transaction is opened outside a block")
        }));
        assert!(opened.unwrap().is_none());
        assert!(block.reading("pg").is_none());
    }

    #[test]
    fn one_source_per_block_and_reads_follow_the_write() {
        let block = TransactionBlock::new();
        assert!(block.begin());
        let remote = Arc::new(Recorded::default());
        let first = Arc::clone(&remote);
        let opened = run(block.writing(
            "pg",
            || async move { Ok(first as Arc<dyn RemoteTransaction>) },
        ));
        assert!(opened.unwrap().is_some());
        assert!(block.reading("pg").is_some());
        assert!(block.reading("my").is_none());
        let refused = run(block.writing("my", || async {
            panic!("the second source is refused before opening")
        }))
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("'my'") && refused.contains("'pg'"),
            "{refused}"
        );
        assert_eq!(run(block.commit()).unwrap(), BlockEnd::Committed);
        assert_eq!(remote.0.lock().unwrap().as_slice(), ["COMMIT"]);
        assert_eq!(block.state_now(), BlockState::Idle);
    }

    #[test]
    fn a_failed_block_rolls_back_on_commit_and_savepoints_map_to_generated_names() {
        let block = TransactionBlock::new();
        block.begin();
        run(block.savepoint("before")).unwrap();
        let remote = Arc::new(Recorded::default());
        let first = Arc::clone(&remote);
        run(block.writing(
            "pg",
            || async move { Ok(first as Arc<dyn RemoteTransaction>) },
        ))
        .unwrap();
        run(block.savepoint("a; DROP TABLE x")).unwrap();
        block.fail();
        assert_eq!(block.state_now(), BlockState::Failed);
        run(block.rollback_to("a; DROP TABLE x")).unwrap();
        assert_eq!(block.state_now(), BlockState::Open);
        // Back before the first write: the whole remote transaction goes.
        run(block.rollback_to("before")).unwrap();
        assert!(block.written_source().is_none());
        assert!(run(block.rollback_to("nope")).is_err());
        block.fail();
        assert_eq!(run(block.commit()).unwrap(), BlockEnd::RolledBack);
        assert_eq!(
            remote.0.lock().unwrap().as_slice(),
            [
                "SAVEPOINT koios_savepoint_1",
                "ROLLBACK TO koios_savepoint_1",
                "ROLLBACK"
            ]
        );
    }
}
