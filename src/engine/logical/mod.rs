//! Logical tables: tables of the built-in `koios` catalog whose rows live in
//! tables of the sources (its *members*), possibly of different engines.
//! Two layouts: **striped** — each row on one member, placed by a stable
//! hash of its key or in round-robin batches — and **mirrored** — every
//! row on every member (its *copies*).
//!
//! * [`definition`]: what a logical table is (columns, layout, members), as
//!   stored in the metadata store;
//! * [`statement`]: `CREATE TABLE … STRIPED …` read;
//! * [`ddl`]: creating (members created or checked) and dropping;
//!   [`declared`]: the tables of the configuration file (`[[table]]`);
//! * [`placement`]: which member holds a row — the stable hash, the
//!   round-robin pointer, pruning by key;
//! * [`provider`]: the table clients see and the schema holding it: each
//!   lookup resolves the members through their sources;
//! * [`expand`]: the optimizer rule turning a scan of a striped table into
//!   a `UNION ALL` of its members' scans, so that everything Koios pushes
//!   into one table is pushed into each member; [`gate`]: the members of
//!   a prepared lookup chosen by the values of each execution;
//! * [`write`]: inserts routed to members; [`upsert`]: inserts with
//!   `ON CONFLICT`; [`change`]: `UPDATE`/`DELETE` fanned out;
//! * [`mirror`]: reads from one current copy, failing over; [`journal`]:
//!   a mirrored write's turn, quorum and journal of missed writes;
//!   [`keys`]: rows named by key, as journal texts and as filters;
//!   [`stopped`]: a write cancelled mid-way, its copies put in doubt;
//!   [`catchup`] and [`resync`]: stale copies brought back by key;
//!   [`fill`]: a new copy filled as a background job, then verified;
//!   [`verify`]: `VERIFY`/`REPAIR TABLE`; [`alter`]: `ADD`/`DROP MIRROR`;
//! * [`members`]: `ADD`/`DROP`/`MOVE MEMBER`, and [`rebalance`]: the job
//!   moving a hash-striped table's rows to their new members.
//!
//! Partial aggregates and top-N over the union are general rules of the
//! planner ([`crate::engine::union_pushdown`]), correct for any `UNION ALL`.

pub mod alter;
pub mod catchup;
pub mod change;
pub mod ddl;
pub mod declared;
pub mod definition;
pub mod expand;
pub mod fill;
pub mod gate;
pub mod journal;
pub mod keys;
pub mod members;
pub mod mirror;
pub mod owned;
pub mod placement;
pub mod provider;
pub mod rebalance;
pub mod resync;
pub mod statement;
pub mod stopped;
pub mod upsert;
pub mod verify;
pub mod write;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arrow::datatypes::SchemaRef;
use datafusion::error::Result;

use crate::engine::Engine;
use crate::engine::metadata::MetadataStore;

pub use definition::{Layout, LogicalTableDef, MemberName};

/// Where a logical table was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOrigin {
    /// `CREATE TABLE … STRIPED` (kept in the metadata store).
    Sql,
    /// `[[table]]` in the configuration file (kept in the store too).
    File,
}

impl TableOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            TableOrigin::Sql => "sql",
            TableOrigin::File => "file",
        }
    }
}

/// A logical table the engine serves.
#[derive(Debug)]
pub struct LogicalTable {
    pub definition: LogicalTableDef,
    /// The declared columns as Arrow types (used where members disagree).
    pub declared: SchemaRef,
    /// Rows inserted so far: a round-robin table's insertion pointer.
    pub position: AtomicI64,
    pub origin: TableOrigin,
    pub created_at: String,
    /// A mirrored table's copies: current or stale, and its write turn.
    pub mirror: journal::MirrorState,
    /// Where the pointer and the journal are kept.
    store: Arc<dyn MetadataStore>,
    /// Set when another definition of the table took this one's place
    /// with other members or placement: a write planned with this one is
    /// refused (it runs again when retried).
    pub(crate) replaced: std::sync::atomic::AtomicBool,
}

impl LogicalTable {
    pub fn new(
        definition: LogicalTableDef,
        position: i64,
        origin: TableOrigin,
        created_at: String,
        store: Arc<dyn MetadataStore>,
    ) -> Result<LogicalTable> {
        let declared = definition.arrow_schema()?;
        Ok(LogicalTable {
            mirror: journal::MirrorState::new(definition.members.len()),
            definition,
            declared,
            position: AtomicI64::new(position),
            origin,
            created_at,
            store,
            replaced: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether writes follow the write rules of tables with copies (turn,
    /// keys journalled): a table with copies, or one whose members are
    /// changing (the keys it writes are journalled for the rebalance).
    pub fn journalled(&self) -> bool {
        self.definition.layout.has_copies() || self.definition.rebalance.is_some()
    }

    /// Lets a write in: held until it ends, so that members change only
    /// between writes. Refused (40001) if the table's members or
    /// placement changed since the write was planned.
    pub(crate) async fn admit_write(&self) -> Result<tokio::sync::OwnedRwLockReadGuard<()>> {
        let admitted = Arc::clone(&self.mirror.writers).read_owned().await;
        if self.replaced.load(Ordering::Acquire) {
            return koios_connector::sql_err!(
                crate::engine::error::codes::SERIALIZATION_FAILURE,
                "the members of {} changed while this statement was planned: run it again",
                self.definition.described()
            );
        }
        Ok(admitted)
    }

    /// `koios.schema.table`, for messages.
    pub fn display_name(&self) -> String {
        self.definition.display_name()
    }

    /// Reserves `rows` positions of the round-robin pointer; the first.
    pub(crate) fn reserve(&self, rows: i64) -> i64 {
        self.position.fetch_add(rows, Ordering::AcqRel)
    }

    /// Writes the pointer to the metadata store (before an `INSERT` reports
    /// success), so placement continues where it stopped after a restart.
    pub(crate) async fn persist_position(&self) -> Result<()> {
        let position = self.position.load(Ordering::Acquire);
        self.store
            .advance_position(&self.definition.key(), position)
            .await
    }
}

impl Engine {
    /// The logical tables, by `schema.table`.
    pub fn logical_tables(&self) -> BTreeMap<String, Arc<LogicalTable>> {
        self.logical
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The logical table `schema.table` of the `koios` catalog, if any.
    pub fn logical_table(&self, schema: &str, table: &str) -> Option<Arc<LogicalTable>> {
        self.logical
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{schema}.{table}"))
            .cloned()
    }

    /// Brings the logical tables in line with the metadata store: tables
    /// another server sharing it created, changed or dropped; a round-robin
    /// pointer another server moved further.
    pub(crate) async fn reconcile_logical_tables(&self) {
        let stored = match self.store.logical_tables().await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(store = %self.store.location(), error = %e, "metadata store unreadable");
                return;
            }
        };
        let _ddl = self.ddl.lock().await;
        let mut changed = false;
        let mut tables = self.logical.write().unwrap_or_else(|p| p.into_inner());
        // Dropped elsewhere (the file's tables are this server's own).
        tables.retain(|name, table| {
            let keep = table.origin == TableOrigin::File || stored.iter().any(|s| &s.name == name);
            changed |= !keep;
            keep
        });
        for entry in stored {
            let Ok(definition) = LogicalTableDef::from_json(&entry.definition) else {
                tracing::warn!(table = %entry.name, "a logical table's definition Koios cannot read");
                continue;
            };
            match tables.get(&entry.name) {
                Some(table) if table.definition == definition => {
                    table.position.fetch_max(entry.position, Ordering::AcqRel);
                }
                Some(table) if table.origin == TableOrigin::File => {}
                _ => match LogicalTable::new(
                    definition,
                    entry.position,
                    TableOrigin::Sql,
                    entry.created_at,
                    Arc::clone(&self.store),
                ) {
                    Ok(table) => {
                        tables.insert(entry.name, Arc::new(table));
                        changed = true;
                    }
                    Err(e) => {
                        tracing::warn!(table = %entry.name, error = %e, "logical table not served")
                    }
                },
            }
        }
        drop(tables);
        if changed {
            self.catalog_changed();
        }
    }

    /// Loads the logical tables of the metadata store (at start).
    pub(crate) async fn load_logical_tables(&self) -> crate::engine::error::Result<()> {
        let stored = self.store.logical_tables().await?;
        let mut loaded = BTreeMap::new();
        for table in stored {
            let definition = LogicalTableDef::from_json(&table.definition).map_err(|e| {
                crate::engine::error::KoiosError::Config(format!(
                    "metadata store {}: logical table {}: {e}",
                    self.store.location(),
                    table.name
                ))
            })?;
            let logical = LogicalTable::new(
                definition,
                table.position,
                TableOrigin::Sql,
                table.created_at,
                Arc::clone(&self.store),
            )?;
            loaded.insert(table.name, Arc::new(logical));
        }
        *self.logical.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }
}
