//! Changes made through rows Koios stages on the backend first
//! ([`koios_connector::remote_sql::StagedStatements`]): an upsert's rows, or
//! the keys and new values of a change by primary key ([`crate::keyed`]).
//! This layer names the staging table and writes the statements; the
//! backend creates, fills and applies them in one transaction
//! ([`SqlBackend::stage_and_apply`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use koios_connector::ddl::TableName;
use koios_connector::remote_sql::{KeyedChange, StagedStatements};
use koios_connector::upsert::OnConflict;

use crate::SqlBackend;
use crate::backend::Pinned;
use crate::remote::{RemoteTable, RemoteTableName};

/// Numbers staging tables (unique in the process, so two changes of one
/// transaction block never share one).
static STAGING: AtomicU64 = AtomicU64::new(0);

/// The table as Koios names it in remote SQL.
pub fn table_name<C>(table: &RemoteTable<C>) -> TableName {
    TableName {
        schema: table.name.schema.clone(),
        table: table.name.table.clone(),
    }
}

/// A staging table for `table`'s `columns`: its name and the columns'
/// codecs, for the backend's bulk path.
pub fn staging<C: Clone>(
    table: &RemoteTable<C>,
    staged: &TableName,
    columns: &[String],
) -> Result<RemoteTable<C>> {
    let name = RemoteTableName {
        schema: staged.schema.clone(),
        table: staged.table.clone(),
    };
    table.with_columns(name, columns).map_err(|column| {
        koios_connector::sql_error!(
            koios_connector::sqlstate::codes::UNDEFINED_COLUMN,
            "column \"{column}\" of {}.{} does not exist",
            table.source,
            table.name
        )
    })
}

/// A new staging table's name for a change of `table`.
pub fn next_staging_table<B: SqlBackend>(backend: &B, table: &TableName) -> TableName {
    backend
        .dialect()
        .staging_table(table, STAGING.fetch_add(1, Ordering::Relaxed))
}

/// `rows` (all of `table`'s columns) inserted with `on_conflict`.
pub async fn upsert<B: SqlBackend>(
    backend: &B,
    table: &RemoteTable<B::Codec>,
    rows: SendableRecordBatchStream,
    on_conflict: &OnConflict,
    pinned: Pinned,
) -> Result<u64> {
    let dialect = backend.dialect();
    let name = table_name(table);
    let staged = next_staging_table(backend, &name);
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let statements = dialect.upsert_sql(&name, &staged, &columns, on_conflict)?;
    let staging = Arc::new(staging(table, &staged, &columns)?);
    backend
        .stage_and_apply(staging, rows, statements, pinned)
        .await
}

/// The rows whose `key` (and, for an update, new values) `rows` holds,
/// changed.
pub async fn change_by_key<B: SqlBackend>(
    backend: &B,
    table: &RemoteTable<B::Codec>,
    rows: SendableRecordBatchStream,
    change: &KeyedChange,
    pinned: Pinned,
) -> Result<u64> {
    let dialect = backend.dialect();
    let name = table_name(table);
    let staged = next_staging_table(backend, &name);
    let key = &table.primary_key;
    let statements: StagedStatements = dialect.keyed_change_sql(&name, &staged, key, change)?;
    let mut columns = key.clone();
    if let KeyedChange::Update(set) = change {
        columns.extend(set.iter().cloned());
    }
    let staging = Arc::new(staging(table, &staged, &columns)?);
    backend
        .stage_and_apply(staging, rows, statements, pinned)
        .await
}
