//! Koios's metadata store: what Koios itself must remember across restarts
//! (sources created by SQL, logical tables, mirrored tables' write
//! journals, background jobs).
//!
//! One small trait, [`MetadataStore`], with two implementations: an embedded
//! SQLite file under `data_dir` (the default; [`sqlite`]) and a PostgreSQL
//! database several Koios servers can share (`[server] metadata =
//! "postgres://…"`; [`postgres`]). Both run the same versioned schema
//! ([`schema`]). Every write is committed before the statement that asked
//! for it reports success.

pub mod postgres;
pub mod schema;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;

use crate::engine::error::{KoiosError, Result as KoiosResult};

/// A source created by `CREATE SOURCE`, as stored: the URL and options as
/// written, `${VAR}` references unexpanded (they are expanded at each
/// connect, so a rotated secret is picked up without touching the store).
#[derive(Clone, PartialEq)]
pub struct StoredSource {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub options: BTreeMap<String, toml::Value>,
    /// When it was created, RFC 3339 in UTC.
    pub created_at: String,
}

impl fmt::Debug for StoredSource {
    // Hand-written: the URL may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSource")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &koios_connector::redact_url(&self.url))
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl StoredSource {
    /// The options as the text kept in the store (a TOML table body).
    pub fn options_text(&self) -> String {
        let table: toml::Table = self
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        toml::to_string(&table).unwrap_or_default()
    }

    /// Options read back from [`StoredSource::options_text`].
    pub fn parse_options_text(text: &str) -> Result<BTreeMap<String, toml::Value>> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            datafusion::error::DataFusionError::Execution(format!(
                "the metadata store holds options Koios cannot read: {e}"
            ))
        })?;
        Ok(table.into_iter().collect())
    }
}

/// A logical table created by SQL, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLogicalTable {
    /// `schema.table` in the `koios` catalog.
    pub name: String,
    /// The definition as JSON (see [`crate::engine::logical::LogicalTableDef`]).
    pub definition: String,
    /// Rows inserted so far (a round-robin table's insertion pointer).
    pub position: i64,
    /// When it was created, RFC 3339 in UTC.
    pub created_at: String,
}

/// A copy of a mirrored table that missed writes, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleCopy {
    /// `schema.table` of the mirrored table.
    pub table: String,
    /// The copy (`source.schema.table`).
    pub copy: String,
    /// When it became stale, RFC 3339 in UTC.
    pub since: String,
    /// Journal entries waiting to be replayed on it.
    pub entries: i64,
}

/// What a copy missed: the rows of these keys (JSON lines of the key
/// columns), or of every key when `keys` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    pub copy: String,
    pub keys: Option<String>,
}

/// One entry of a copy's journal.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Entries are replayed in this order.
    pub seq: i64,
    pub keys: Option<String>,
}

/// A background job, as stored (see [`crate::engine::jobs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    /// Given by the store at insertion (ids grow).
    pub id: i64,
    pub kind: String,
    pub source: String,
    pub destination: String,
    /// `running`, `paused`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub bytes: i64,
    /// What the job needs to go on after a restart (its kind's JSON).
    pub spec: String,
    pub error: Option<String>,
    /// RFC 3339 in UTC, as every time in the store.
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

/// Where Koios keeps what it owns. Implementations serialise their own
/// writes; each call is one committed transaction.
#[async_trait]
pub trait MetadataStore: Send + Sync + fmt::Debug {
    /// Where the store is, for messages (no password).
    fn location(&self) -> String;

    /// Every stored source, by name.
    async fn sources(&self) -> Result<Vec<StoredSource>>;

    /// Stores a new source; fails with 42710 if the name is taken.
    async fn insert_source(&self, source: &StoredSource) -> Result<()>;

    /// Replaces the stored source of the same name; fails with 42704 if
    /// there is none.
    async fn update_source(&self, source: &StoredSource) -> Result<()>;

    /// Removes a source; `false` if there was none.
    async fn delete_source(&self, name: &str) -> Result<bool>;

    /// Every stored logical table, by name.
    async fn logical_tables(&self) -> Result<Vec<StoredLogicalTable>>;

    /// Stores a new logical table; fails with 42P07 if the name is taken.
    async fn insert_logical_table(&self, table: &StoredLogicalTable) -> Result<()>;

    /// Replaces a logical table's definition (a copy added or dropped).
    async fn update_definition(&self, name: &str, definition: &str) -> Result<()>;

    /// Forgets one copy's state and journal (dropped from its table).
    async fn forget_copy(&self, table: &str, copy: &str) -> Result<()>;

    /// Removes a logical table; `false` if there was none.
    async fn delete_logical_table(&self, name: &str) -> Result<bool>;

    /// Moves a round-robin table's insertion pointer forward to `position`
    /// (never back: two servers inserting keep the larger).
    async fn advance_position(&self, name: &str, position: i64) -> Result<()>;

    /// Every stale copy of every mirrored table, with its journal length.
    async fn stale_copies(&self) -> Result<Vec<StaleCopy>>;

    /// Records that a write to the mirrored table `table` starts; its id.
    async fn begin_write(&self, table: &str) -> Result<i64>;

    /// In one transaction: journals what each copy in `missed` did not
    /// apply, marks those copies stale, and forgets the writes `writes`.
    async fn end_writes(&self, table: &str, writes: &[i64], missed: &[Missed]) -> Result<()>;

    /// The writes to `table` begun and never ended (Koios stopped in them).
    async fn unfinished_writes(&self, table: &str) -> Result<Vec<i64>>;

    /// The first `limit` journal entries of a copy, in order.
    async fn journal(&self, table: &str, copy: &str, limit: i64) -> Result<Vec<JournalEntry>>;

    /// Removes a copy's journal entries up to `seq` (replayed).
    async fn journal_done(&self, table: &str, copy: &str, seq: i64) -> Result<()>;

    /// Marks a copy current if its journal is empty; whether it did.
    async fn mark_current(&self, table: &str, copy: &str) -> Result<bool>;

    /// Forgets a mirrored table's copies' state and journals (dropped).
    async fn forget_mirror(&self, table: &str) -> Result<()>;

    /// Every job, by id.
    async fn jobs(&self) -> Result<Vec<StoredJob>>;

    /// Stores a new job (its `id` is ignored); the id it got.
    async fn insert_job(&self, job: &StoredJob) -> Result<i64>;

    /// Stores a job's state, progress and spec (its checkpoints).
    async fn update_job(&self, job: &StoredJob) -> Result<()>;
}

/// The time now, RFC 3339 in UTC, as the store keeps times.
pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The error of inserting a logical table whose name is taken (42P07).
pub(crate) fn duplicate_table(name: &str) -> datafusion::error::DataFusionError {
    koios_connector::sql_error!(
        crate::engine::error::codes::DUPLICATE_TABLE,
        "relation \"{name}\" already exists"
    )
}

/// The error of inserting a source whose name is taken (42710).
pub(crate) fn duplicate_source(name: &str) -> datafusion::error::DataFusionError {
    koios_connector::sql_error!(
        crate::engine::error::codes::DUPLICATE_OBJECT,
        "source '{name}' already exists"
    )
}

/// The error of updating a source the store does not hold (42704).
pub(crate) fn missing_source(name: &str) -> datafusion::error::DataFusionError {
    koios_connector::sql_error!(
        crate::engine::error::codes::UNDEFINED_OBJECT,
        "source '{name}' is not in the metadata store"
    )
}

/// Where `[server] metadata` says the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataLocation {
    /// A SQLite file (the default: `koios.db` under `data_dir`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://…`); the URL may hold a password.
    Postgres(String),
}

impl MetadataLocation {
    /// The default file under `data_dir`.
    pub fn default_in(data_dir: &Path) -> MetadataLocation {
        MetadataLocation::Sqlite(data_dir.join("koios.db"))
    }

    /// `postgres://…` / `postgresql://…`, else a file path (relative to
    /// `base_dir`, the configuration file's folder).
    pub fn parse(value: &str, base_dir: &Path) -> MetadataLocation {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            MetadataLocation::Postgres(value.to_string())
        } else {
            let path = value.strip_prefix("sqlite:").unwrap_or(value);
            MetadataLocation::Sqlite(base_dir.join(path))
        }
    }
}

/// Opens (creating and migrating if needed) the store at `location`.
pub async fn open(location: &MetadataLocation) -> KoiosResult<Arc<dyn MetadataStore>> {
    match location {
        MetadataLocation::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
                .await
                .map_err(|e| KoiosError::Config(format!("metadata store: {e}")))??;
            Ok(Arc::new(store))
        }
        MetadataLocation::Postgres(url) => Ok(Arc::new(postgres::PgStore::open(url).await?)),
    }
}
