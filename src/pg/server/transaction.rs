//! The transaction status each ReadyForQuery reports, kept in step with
//! the engine's transaction block.
//!
//! pgwire tracks the status itself (a block's start and end from the
//! responses, `E` after any error inside a block) but cannot leave `E`
//! short of the block's end, while `ROLLBACK TO SAVEPOINT` makes a failed
//! block usable again. So before each statement the engine learns of the
//! error pgwire saw since the last one (the block fails), and pgwire's
//! status is set from the engine's: the statement's own outcome then moves
//! it as usual — an error (such as the 25P02 a failed block answers) to
//! `E`, `ROLLBACK TO` stays `T`.

use pgwire::api::ClientInfo;
use pgwire::messages::response::TransactionStatus;

use koios_connector::transaction::BlockState;

use crate::engine::session::Session;

/// Before a statement runs for `client`.
pub(super) fn before_statement<C: ClientInfo>(
    session: Option<&std::sync::Arc<Session>>,
    client: &mut C,
) {
    let Some(session) = session else {
        return;
    };
    if client.transaction_status() == TransactionStatus::Error {
        session.statement_failed();
    }
    client.set_transaction_status(match session.transaction_state() {
        BlockState::Idle => TransactionStatus::Idle,
        BlockState::Open | BlockState::Failed => TransactionStatus::Transaction,
    });
}
