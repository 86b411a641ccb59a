//! A session's transaction block: `BEGIN`, `COMMIT`, `ROLLBACK` and
//! savepoints on the session's [`TransactionBlock`] (which connectors see
//! through the session's configuration, see
//! [`koios_connector::transaction`]), and what a block allows.
//!
//! As in PostgreSQL, a statement that fails inside a block fails the block:
//! from then on only `ROLLBACK`, `COMMIT` (which rolls back) and `ROLLBACK
//! TO SAVEPOINT` run; anything else gets 25P02. The front end reports the
//! failures it sent ([`Session::statement_failed`]), since some happen
//! while rows stream, after the engine handed them over.
//!
//! DDL is not part of a block's remote transaction (Koios's catalog is
//! shared by all sessions and would show another session's uncommitted
//! tables): it commits at once, like MySQL's, and is refused in a block
//! that has already written, whose writes it could not join.

use datafusion::error::Result;
use koios_connector::transaction::{BlockEnd, BlockState};
use koios_connector::{sql_err, sql_error};

use super::Session;
use super::execute::Output;
use super::prepare::Prepared;
use super::statement::Command;
use crate::engine::error::codes;

impl Session {
    /// Where the session's block stands.
    pub fn transaction_state(&self) -> BlockState {
        self.transaction.state_now()
    }

    /// A statement failed (its error was sent to the client): inside a
    /// block, the block now only ends.
    pub fn statement_failed(&self) {
        self.transaction.fail();
    }

    /// Whether plans may serve rows straight from one remote query
    /// ([`crate::engine::passthrough`]): not once the block wrote to a
    /// source, whose reads must go through the block's transaction.
    pub(super) fn direct_rows_allowed(&self) -> bool {
        self.transaction.written_source().is_none()
    }

    /// Refuses `prepared` in a failed block, unless it ends the block or
    /// goes back to a savepoint.
    pub(super) fn admit(&self, prepared: &Prepared) -> Result<()> {
        if self.transaction.state_now() != BlockState::Failed {
            return Ok(());
        }
        match prepared {
            Prepared::Command(Command::Commit | Command::Rollback | Command::RollbackTo(_)) => {
                Ok(())
            }
            _ => sql_err!(
                codes::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block"
            ),
        }
    }

    /// Refuses a change of a source's tables inside a block that wrote.
    pub(super) fn admit_ddl(&self, tag: &str) -> Result<()> {
        match self.transaction.written_source() {
            Some(source) => sql_err!(
                codes::ACTIVE_SQL_TRANSACTION,
                "{tag} cannot run in this transaction block: it has written to source '{source}', and Koios runs DDL in a transaction of its own (COMMIT or ROLLBACK first)"
            ),
            None => Ok(()),
        }
    }

    /// Runs a transaction command.
    pub(super) async fn run_transaction_command(&self, command: &Command) -> Result<Output> {
        let done = |tag: &str| Output::Done {
            tag: tag.to_string(),
            rows: None,
        };
        match command {
            Command::Begin => {
                // Already in a block: PostgreSQL warns and carries on.
                self.transaction.begin();
                Ok(Output::TransactionStart)
            }
            Command::Commit => Ok(Output::TransactionEnd(
                match self.transaction.commit().await? {
                    BlockEnd::Committed => "COMMIT",
                    BlockEnd::RolledBack => "ROLLBACK",
                }
                .into(),
            )),
            Command::Rollback => {
                self.transaction.rollback().await?;
                Ok(Output::TransactionEnd("ROLLBACK".into()))
            }
            Command::Savepoint(name) => {
                self.transaction.savepoint(name).await?;
                Ok(done("SAVEPOINT"))
            }
            Command::RollbackTo(name) => {
                self.transaction.rollback_to(name).await?;
                Ok(done("ROLLBACK"))
            }
            Command::Release(name) => {
                self.transaction.release(name).await?;
                Ok(done("RELEASE"))
            }
            other => Err(sql_error!(
                codes::INTERNAL_ERROR,
                "not a transaction command: {other:?}"
            )),
        }
    }
}
