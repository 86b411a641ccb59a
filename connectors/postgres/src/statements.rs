//! Remote statements kept prepared on pooled connections.
//!
//! A statement sent as text is parsed, analysed and planned by PostgreSQL
//! at every run, and tokio-postgres parses its row description each time.
//! A Koios plan that runs again (a cached plan, a generic plan bound with
//! new values) sends the same text again, so the connection keeps it
//! prepared: the next runs only bind and execute, and PostgreSQL reuses its
//! plan as for any prepared statement. Preparing costs a round trip of its
//! own, so a text is prepared only once it is seen a second time: one-off
//! queries (ad-hoc texts with literals Koios does not lift) never pay it.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;

use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

/// Texts remembered as seen, per source; past this the memory starts over.
const SEEN_TEXTS: usize = 4096;

/// Statements one connection keeps prepared; past this its cache starts
/// over (dropping a statement closes it on the server).
const PREPARED_PER_CONNECTION: usize = 128;

/// Which statement texts a source has run before.
#[derive(Default)]
pub(crate) struct RepeatedStatements {
    seen: Mutex<HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for RepeatedStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepeatedStatements")
    }
}

impl RepeatedStatements {
    /// Whether `sql` with parameters of `types` ran before; notes that it
    /// runs now.
    pub(crate) fn repeated(&self, sql: &str, types: &[Type]) -> bool {
        let mut hasher = self.hasher.build_hasher();
        sql.hash(&mut hasher);
        for ty in types {
            ty.oid().hash(&mut hasher);
        }
        let key = hasher.finish();
        // A poisoned lock only means another read panicked mid-insert: the
        // set is still a valid set.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&key) {
            return true;
        }
        if seen.len() >= SEEN_TEXTS {
            seen.clear();
        }
        seen.insert(key);
        false
    }
}

/// `sql` prepared on `client`, from its cache when it was prepared before.
pub(crate) async fn prepared(
    client: &deadpool_postgres::ClientWrapper,
    sql: &str,
    types: &[Type],
) -> Result<Statement, tokio_postgres::Error> {
    let cache = &client.statement_cache;
    if cache.size() >= PREPARED_PER_CONNECTION {
        cache.clear();
    }
    client.prepare_typed_cached(sql, types).await
}

/// Whether running a kept statement failed because the statement no longer
/// fits the server: a table it reads changed its column types ("cached plan
/// must not change result type") or the statement is gone. The statement is
/// then dropped and the text sent afresh.
pub(crate) fn is_stale(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == SqlState::FEATURE_NOT_SUPPORTED || *code == SqlState::INVALID_SQL_STATEMENT_NAME
    })
}

/// Forgets `sql` on `client`, closing the statement on the server.
pub(crate) fn forget(client: &deadpool_postgres::ClientWrapper, sql: &str, types: &[Type]) {
    drop(client.statement_cache.remove(sql, types));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_repeated_from_its_second_run() {
        let statements = RepeatedStatements::default();
        assert!(!statements.repeated("SELECT 1", &[]));
        assert!(statements.repeated("SELECT 1", &[]));
        assert!(!statements.repeated("SELECT $1", &[Type::INT8]));
        assert!(!statements.repeated("SELECT $1", &[Type::TEXT]));
        assert!(statements.repeated("SELECT $1", &[Type::INT8]));
    }

    #[test]
    fn the_memory_of_texts_is_bounded() {
        let statements = RepeatedStatements::default();
        for i in 0..SEEN_TEXTS * 2 {
            statements.repeated(&format!("SELECT {i}"), &[]);
        }
        let seen = statements.seen.lock().map(|s| s.len()).unwrap_or(0);
        assert!(seen <= SEEN_TEXTS, "{seen} texts remembered");
    }
}
