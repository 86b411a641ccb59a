//! The metadata store in a PostgreSQL database (`[server] metadata =
//! "postgres://…"`), so several Koios servers share one catalog. Same schema
//! as the SQLite store; migrations run under an advisory lock, so servers
//! starting together migrate one after the other. The connection is made
//! again when it was lost.

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use koios_connector::redact_url;
use tokio_postgres::{Client, NoTls};

use super::schema;
use super::{
    JournalEntry, MetadataStore, Missed, StaleCopy, StoredJob, StoredLogicalTable, StoredSource,
    duplicate_source, duplicate_table, missing_source, now_text,
};
use crate::engine::error::{KoiosError, Result as KoiosResult};

/// Any number: the advisory lock the migrations take.
const MIGRATION_LOCK: i64 = 0x6b6f_696f_735f_6d64;

/// Any number: the advisory lock under which journal sequence numbers and
/// write ids are taken (servers sharing the store take them in turn).
const JOURNAL_LOCK: i64 = 0x6b6f_696f_735f_6a6c;
/// The advisory lock under which a job gets its id (servers sharing a
/// store never give two jobs one id).
const JOBS_LOCK: i64 = 0x6b6f_696f_735f_6a62;

/// A PostgreSQL database holding Koios's metadata.
pub struct PgStore {
    url: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

async fn connect(url: &str) -> std::result::Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "metadata store connection ended");
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects and migrates the store to this build's schema.
    pub async fn open(url: &str) -> KoiosResult<PgStore> {
        let shown = redact_url(url);
        let failed = |e: tokio_postgres::Error| {
            KoiosError::Config(format!("metadata store {shown}: {}", describe(&e)))
        };
        let mut client = connect(url).await.map_err(failed)?;
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(failed)?;
        tx.batch_execute(schema::VERSION_TABLE)
            .await
            .map_err(failed)?;
        let current: Option<i64> = tx
            .query_one("SELECT max(version) FROM koios_schema_version", &[])
            .await
            .map_err(failed)?
            .get(0);
        let pending = schema::pending(current.unwrap_or(0), &shown).map_err(KoiosError::Config)?;
        for migration in pending {
            tx.batch_execute(migration).await.map_err(failed)?;
        }
        if !pending.is_empty() {
            tx.execute("DELETE FROM koios_schema_version", &[])
                .await
                .map_err(failed)?;
            tx.execute(
                "INSERT INTO koios_schema_version (version) VALUES ($1)",
                &[&schema::latest()],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(PgStore {
            url: url.to_string(),
            client: tokio::sync::Mutex::new(Some(client)),
        })
    }

    /// The connection, made again if it was lost.
    async fn client(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Client>> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.url).await.map_err(store_error)?);
        }
        tokio::sync::MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| DataFusionError::Execution("metadata store: no connection".into()))
    }
}

/// The server's message when there is one (tokio-postgres' own `Display`
/// says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

fn store_error(e: tokio_postgres::Error) -> DataFusionError {
    DataFusionError::Execution(format!("metadata store: {}", describe(&e)))
}

#[async_trait]
impl MetadataStore for PgStore {
    fn location(&self) -> String {
        redact_url(&self.url)
    }

    async fn sources(&self) -> Result<Vec<StoredSource>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, kind, url, options, created_at FROM koios_sources ORDER BY name",
                &[],
            )
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|r| {
                Ok(StoredSource {
                    name: r.get(0),
                    kind: r.get(1),
                    url: r.get(2),
                    options: StoredSource::parse_options_text(r.get(3))?,
                    created_at: r.get(4),
                })
            })
            .collect()
    }

    async fn insert_source(&self, source: &StoredSource) -> Result<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO koios_sources (name, kind, url, options, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                &[
                    &source.name,
                    &source.kind,
                    &source.url,
                    &source.options_text(),
                    &source.created_at,
                ],
            )
            .await
            .map_err(store_error)?;
        match inserted {
            0 => Err(duplicate_source(&source.name)),
            _ => Ok(()),
        }
    }

    async fn update_source(&self, source: &StoredSource) -> Result<()> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE koios_sources SET kind = $2, url = $3, options = $4 WHERE name = $1",
                &[
                    &source.name,
                    &source.kind,
                    &source.url,
                    &source.options_text(),
                ],
            )
            .await
            .map_err(store_error)?;
        match updated {
            0 => Err(missing_source(&source.name)),
            _ => Ok(()),
        }
    }

    async fn delete_source(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let deleted = client
            .execute("DELETE FROM koios_sources WHERE name = $1", &[&name])
            .await
            .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn logical_tables(&self) -> Result<Vec<StoredLogicalTable>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, definition, position, created_at FROM koios_logical_tables \
                 ORDER BY name",
                &[],
            )
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|r| StoredLogicalTable {
                name: r.get(0),
                definition: r.get(1),
                position: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }

    async fn insert_logical_table(&self, table: &StoredLogicalTable) -> Result<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO koios_logical_tables (name, definition, position, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[
                    &table.name,
                    &table.definition,
                    &table.position,
                    &table.created_at,
                ],
            )
            .await
            .map_err(store_error)?;
        match inserted {
            0 => Err(duplicate_table(&table.name)),
            _ => Ok(()),
        }
    }

    async fn update_definition(&self, name: &str, definition: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE koios_logical_tables SET definition = $2 WHERE name = $1",
                &[&name, &definition],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn forget_copy(&self, table: &str, copy: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        for statement in [
            "DELETE FROM koios_mirror_stale WHERE table_name = $1 AND copy = $2",
            "DELETE FROM koios_mirror_journal WHERE table_name = $1 AND copy = $2",
        ] {
            tx.execute(statement, &[&table, &copy])
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn delete_logical_table(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let deleted = client
            .execute("DELETE FROM koios_logical_tables WHERE name = $1", &[&name])
            .await
            .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn advance_position(&self, name: &str, position: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE koios_logical_tables SET position = $2 WHERE name = $1 AND position < $2",
                &[&name, &position],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn stale_copies(&self) -> Result<Vec<StaleCopy>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT s.table_name, s.copy, s.since, \
                   (SELECT count(*) FROM koios_mirror_journal j \
                     WHERE j.table_name = s.table_name AND j.copy = s.copy) \
                 FROM koios_mirror_stale s ORDER BY s.table_name, s.copy",
                &[],
            )
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|r| StaleCopy {
                table: r.get(0),
                copy: r.get(1),
                since: r.get(2),
                entries: r.get(3),
            })
            .collect())
    }

    async fn begin_write(&self, table: &str) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])
            .await
            .map_err(store_error)?;
        let id: i64 = tx
            .query_one(
                "SELECT coalesce(max(id), 0) + 1 FROM koios_mirror_writes WHERE table_name = $1",
                &[&table],
            )
            .await
            .map_err(store_error)?
            .get(0);
        tx.execute(
            "INSERT INTO koios_mirror_writes (table_name, id, started_at) VALUES ($1, $2, $3)",
            &[&table, &id, &now_text()],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(id)
    }

    async fn end_writes(&self, table: &str, writes: &[i64], missed: &[Missed]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])
            .await
            .map_err(store_error)?;
        let now = now_text();
        for entry in missed {
            let seq: i64 = tx
                .query_one(
                    "SELECT coalesce(max(seq), 0) + 1 FROM koios_mirror_journal \
                     WHERE table_name = $1 AND copy = $2",
                    &[&table, &entry.copy],
                )
                .await
                .map_err(store_error)?
                .get(0);
            tx.execute(
                "INSERT INTO koios_mirror_journal (table_name, copy, seq, keys, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&table, &entry.copy, &seq, &entry.keys, &now],
            )
            .await
            .map_err(store_error)?;
            tx.execute(
                "INSERT INTO koios_mirror_stale (table_name, copy, since) VALUES ($1, $2, $3) \
                 ON CONFLICT (table_name, copy) DO NOTHING",
                &[&table, &entry.copy, &now],
            )
            .await
            .map_err(store_error)?;
        }
        tx.execute(
            "DELETE FROM koios_mirror_writes WHERE table_name = $1 AND id = ANY($2)",
            &[&table, &writes],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn unfinished_writes(&self, table: &str) -> Result<Vec<i64>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM koios_mirror_writes WHERE table_name = $1 ORDER BY id",
                &[&table],
            )
            .await
            .map_err(store_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn journal(&self, table: &str, copy: &str, limit: i64) -> Result<Vec<JournalEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, keys FROM koios_mirror_journal \
                 WHERE table_name = $1 AND copy = $2 ORDER BY seq LIMIT $3",
                &[&table, &copy, &limit],
            )
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|r| JournalEntry {
                seq: r.get(0),
                keys: r.get(1),
            })
            .collect())
    }

    async fn journal_done(&self, table: &str, copy: &str, seq: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM koios_mirror_journal WHERE table_name = $1 AND copy = $2 AND seq <= $3",
                &[&table, &copy, &seq],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn mark_current(&self, table: &str, copy: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])
            .await
            .map_err(store_error)?;
        let left: i64 = tx
            .query_one(
                "SELECT count(*) FROM koios_mirror_journal WHERE table_name = $1 AND copy = $2",
                &[&table, &copy],
            )
            .await
            .map_err(store_error)?
            .get(0);
        if left > 0 {
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM koios_mirror_stale WHERE table_name = $1 AND copy = $2",
            &[&table, &copy],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn forget_mirror(&self, table: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        for statement in [
            "DELETE FROM koios_mirror_stale WHERE table_name = $1",
            "DELETE FROM koios_mirror_journal WHERE table_name = $1",
            "DELETE FROM koios_mirror_writes WHERE table_name = $1",
        ] {
            tx.execute(statement, &[&table])
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn jobs(&self) -> Result<Vec<StoredJob>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, kind, source, destination, state, rows_done, rows_total, bytes, \
                   spec, error, started_at, updated_at, finished_at FROM koios_jobs ORDER BY id",
                &[],
            )
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|r| StoredJob {
                id: r.get(0),
                kind: r.get(1),
                source: r.get(2),
                destination: r.get(3),
                state: r.get(4),
                rows_done: r.get(5),
                rows_total: r.get(6),
                bytes: r.get(7),
                spec: r.get(8),
                error: r.get(9),
                started_at: r.get(10),
                updated_at: r.get(11),
                finished_at: r.get(12),
            })
            .collect())
    }

    async fn insert_job(&self, job: &StoredJob) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOBS_LOCK])
            .await
            .map_err(store_error)?;
        let id: i64 = tx
            .query_one("SELECT coalesce(max(id), 0) + 1 FROM koios_jobs", &[])
            .await
            .map_err(store_error)?
            .get(0);
        tx.execute(
            "INSERT INTO koios_jobs (id, kind, source, destination, state, rows_done, \
               rows_total, bytes, spec, error, started_at, updated_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &id,
                &job.kind,
                &job.source,
                &job.destination,
                &job.state,
                &job.rows_done,
                &job.rows_total,
                &job.bytes,
                &job.spec,
                &job.error,
                &job.started_at,
                &job.updated_at,
                &job.finished_at,
            ],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(id)
    }

    async fn update_job(&self, job: &StoredJob) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE koios_jobs SET state = $2, rows_done = $3, rows_total = $4, bytes = $5, \
                   error = $6, updated_at = $7, finished_at = $8, spec = $9 WHERE id = $1",
                &[
                    &job.id,
                    &job.state,
                    &job.rows_done,
                    &job.rows_total,
                    &job.bytes,
                    &job.error,
                    &job.updated_at,
                    &job.finished_at,
                    &job.spec,
                ],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
