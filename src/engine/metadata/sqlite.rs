//! The embedded metadata store: one SQLite file (its bundled library) under
//! `data_dir`, in WAL mode with full sync, so a committed write survives a
//! crash of Koios or of the machine. The file is created readable by its
//! owner only (mode 0600): it may hold a literal password of a source.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::schema;
use super::{
    JournalEntry, MetadataStore, Missed, StaleCopy, StoredJob, StoredLogicalTable, StoredSource,
    duplicate_source, duplicate_table, missing_source, now_text,
};
use crate::engine::error::{KoiosError, Result as KoiosResult};

/// A SQLite file holding Koios's metadata.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens `path`, creating it (mode 0600) and its folder if needed, and
    /// migrates it to this build's schema.
    pub fn open(path: &Path) -> KoiosResult<SqliteStore> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                KoiosError::io(
                    format!("cannot create the metadata folder {}", dir.display()),
                    e,
                )
            })?;
        }
        create_private(path)
            .map_err(|e| KoiosError::io(format!("cannot create the metadata store {shown}"), e))?;
        let config_error =
            |e: rusqlite::Error| KoiosError::Config(format!("metadata store {shown}: {e}"));
        let mut connection = Connection::open(path).map_err(config_error)?;
        // WAL: readers never block the writer; FULL: a commit is on disk
        // before it returns. Another process (a second server on the same
        // file) waits for the lock instead of failing at once.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(config_error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(config_error)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(config_error)?;
        migrate(&mut connection, &shown).map_err(KoiosError::Config)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection off the async runtime.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("metadata store task failed: {e}")))?
    }
}

/// Creates the file with mode 0600 if it does not exist yet (SQLite gives
/// its WAL and shared-memory files the same mode).
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn migrate(connection: &mut Connection, location: &str) -> Result<(), String> {
    let failed = |e: rusqlite::Error| format!("metadata store {location}: migration failed: {e}");
    // IMMEDIATE: two servers opening a fresh file migrate one after the other.
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(failed)?;
    tx.execute(schema::VERSION_TABLE, []).map_err(failed)?;
    let current: Option<i64> = tx
        .query_row("SELECT max(version) FROM koios_schema_version", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(failed)?
        .flatten();
    let current = current.unwrap_or(0);
    let pending = schema::pending(current, location)?;
    for migration in pending {
        tx.execute_batch(migration).map_err(failed)?;
    }
    if !pending.is_empty() {
        tx.execute("DELETE FROM koios_schema_version", [])
            .map_err(failed)?;
        tx.execute(
            "INSERT INTO koios_schema_version (version) VALUES (?1)",
            params![schema::latest()],
        )
        .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

fn store_error(e: rusqlite::Error) -> DataFusionError {
    DataFusionError::Execution(format!("metadata store: {e}"))
}

#[async_trait]
impl MetadataStore for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn sources(&self) -> Result<Vec<StoredSource>> {
        self.with(|c| {
            let mut statement = c
                .prepare(
                    "SELECT name, kind, url, options, created_at FROM koios_sources ORDER BY name",
                )
                .map_err(store_error)?;
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(store_error)?;
            let mut sources = Vec::new();
            for row in rows {
                let (name, kind, url, options, created_at) = row.map_err(store_error)?;
                sources.push(StoredSource {
                    name,
                    kind,
                    url,
                    options: StoredSource::parse_options_text(&options)?,
                    created_at,
                });
            }
            Ok(sources)
        })
        .await
    }

    async fn insert_source(&self, source: &StoredSource) -> Result<()> {
        let source = source.clone();
        self.with(move |c| {
            let inserted = c.execute(
                "INSERT INTO koios_sources (name, kind, url, options, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                params![
                    source.name,
                    source.kind,
                    source.url,
                    source.options_text(),
                    source.created_at
                ],
            );
            match inserted.map_err(store_error)? {
                0 => Err(duplicate_source(&source.name)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn update_source(&self, source: &StoredSource) -> Result<()> {
        let source = source.clone();
        self.with(move |c| {
            let updated = c
                .execute(
                    "UPDATE koios_sources SET kind = ?2, url = ?3, options = ?4 WHERE name = ?1",
                    params![source.name, source.kind, source.url, source.options_text()],
                )
                .map_err(store_error)?;
            match updated {
                0 => Err(missing_source(&source.name)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn delete_source(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            let deleted = c
                .execute("DELETE FROM koios_sources WHERE name = ?1", params![name])
                .map_err(store_error)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn logical_tables(&self) -> Result<Vec<StoredLogicalTable>> {
        self.with(|c| {
            let mut statement = c
                .prepare(
                    "SELECT name, definition, position, created_at FROM koios_logical_tables \
                     ORDER BY name",
                )
                .map_err(store_error)?;
            let rows = statement
                .query_map([], |r| {
                    Ok(StoredLogicalTable {
                        name: r.get(0)?,
                        definition: r.get(1)?,
                        position: r.get(2)?,
                        created_at: r.get(3)?,
                    })
                })
                .map_err(store_error)?;
            rows.map(|r| r.map_err(store_error)).collect()
        })
        .await
    }

    async fn insert_logical_table(&self, table: &StoredLogicalTable) -> Result<()> {
        let table = table.clone();
        self.with(move |c| {
            let inserted = c
                .execute(
                    "INSERT INTO koios_logical_tables (name, definition, position, created_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                    params![
                        table.name,
                        table.definition,
                        table.position,
                        table.created_at
                    ],
                )
                .map_err(store_error)?;
            match inserted {
                0 => Err(duplicate_table(&table.name)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn update_definition(&self, name: &str, definition: &str) -> Result<()> {
        let (name, definition) = (name.to_string(), definition.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE koios_logical_tables SET definition = ?2 WHERE name = ?1",
                params![name, definition],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn forget_copy(&self, table: &str, copy: &str) -> Result<()> {
        let (table, copy) = (table.to_string(), copy.to_string());
        self.with(move |c| {
            let tx = c.transaction().map_err(store_error)?;
            for statement in [
                "DELETE FROM koios_mirror_stale WHERE table_name = ?1 AND copy = ?2",
                "DELETE FROM koios_mirror_journal WHERE table_name = ?1 AND copy = ?2",
            ] {
                tx.execute(statement, params![table, copy])
                    .map_err(store_error)?;
            }
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn delete_logical_table(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.with(move |c| {
            let deleted = c
                .execute(
                    "DELETE FROM koios_logical_tables WHERE name = ?1",
                    params![name],
                )
                .map_err(store_error)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn advance_position(&self, name: &str, position: i64) -> Result<()> {
        let name = name.to_string();
        self.with(move |c| {
            c.execute(
                "UPDATE koios_logical_tables SET position = ?2 WHERE name = ?1 AND position < ?2",
                params![name, position],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn stale_copies(&self) -> Result<Vec<StaleCopy>> {
        self.with(|c| {
            let mut statement = c
                .prepare(
                    "SELECT s.table_name, s.copy, s.since, \
                       (SELECT count(*) FROM koios_mirror_journal j \
                         WHERE j.table_name = s.table_name AND j.copy = s.copy) \
                     FROM koios_mirror_stale s ORDER BY s.table_name, s.copy",
                )
                .map_err(store_error)?;
            let rows = statement
                .query_map([], |r| {
                    Ok(StaleCopy {
                        table: r.get(0)?,
                        copy: r.get(1)?,
                        since: r.get(2)?,
                        entries: r.get(3)?,
                    })
                })
                .map_err(store_error)?;
            rows.map(|r| r.map_err(store_error)).collect()
        })
        .await
    }

    async fn begin_write(&self, table: &str) -> Result<i64> {
        let table = table.to_string();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(store_error)?;
            let id: i64 = tx
                .query_row(
                    "SELECT coalesce(max(id), 0) + 1 FROM koios_mirror_writes WHERE table_name = ?1",
                    params![table],
                    |r| r.get(0),
                )
                .map_err(store_error)?;
            tx.execute(
                "INSERT INTO koios_mirror_writes (table_name, id, started_at) VALUES (?1, ?2, ?3)",
                params![table, id, now_text()],
            )
            .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(id)
        })
        .await
    }

    async fn end_writes(&self, table: &str, writes: &[i64], missed: &[Missed]) -> Result<()> {
        let table = table.to_string();
        let writes = writes.to_vec();
        let missed = missed.to_vec();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(store_error)?;
            let now = now_text();
            for entry in &missed {
                let seq: i64 = tx
                    .query_row(
                        "SELECT coalesce(max(seq), 0) + 1 FROM koios_mirror_journal \
                         WHERE table_name = ?1 AND copy = ?2",
                        params![table, entry.copy],
                        |r| r.get(0),
                    )
                    .map_err(store_error)?;
                tx.execute(
                    "INSERT INTO koios_mirror_journal (table_name, copy, seq, keys, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![table, entry.copy, seq, entry.keys, now],
                )
                .map_err(store_error)?;
                tx.execute(
                    "INSERT INTO koios_mirror_stale (table_name, copy, since) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (table_name, copy) DO NOTHING",
                    params![table, entry.copy, now],
                )
                .map_err(store_error)?;
            }
            for id in &writes {
                tx.execute(
                    "DELETE FROM koios_mirror_writes WHERE table_name = ?1 AND id = ?2",
                    params![table, id],
                )
                .map_err(store_error)?;
            }
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn unfinished_writes(&self, table: &str) -> Result<Vec<i64>> {
        let table = table.to_string();
        self.with(move |c| {
            let mut statement = c
                .prepare("SELECT id FROM koios_mirror_writes WHERE table_name = ?1 ORDER BY id")
                .map_err(store_error)?;
            let rows = statement
                .query_map(params![table], |r| r.get(0))
                .map_err(store_error)?;
            rows.map(|r| r.map_err(store_error)).collect()
        })
        .await
    }

    async fn journal(&self, table: &str, copy: &str, limit: i64) -> Result<Vec<JournalEntry>> {
        let (table, copy) = (table.to_string(), copy.to_string());
        self.with(move |c| {
            let mut statement = c
                .prepare(
                    "SELECT seq, keys FROM koios_mirror_journal \
                     WHERE table_name = ?1 AND copy = ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(store_error)?;
            let rows = statement
                .query_map(params![table, copy, limit], |r| {
                    Ok(JournalEntry {
                        seq: r.get(0)?,
                        keys: r.get(1)?,
                    })
                })
                .map_err(store_error)?;
            rows.map(|r| r.map_err(store_error)).collect()
        })
        .await
    }

    async fn journal_done(&self, table: &str, copy: &str, seq: i64) -> Result<()> {
        let (table, copy) = (table.to_string(), copy.to_string());
        self.with(move |c| {
            c.execute(
                "DELETE FROM koios_mirror_journal WHERE table_name = ?1 AND copy = ?2 AND seq <= ?3",
                params![table, copy, seq],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn mark_current(&self, table: &str, copy: &str) -> Result<bool> {
        let (table, copy) = (table.to_string(), copy.to_string());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(store_error)?;
            let left: i64 = tx
                .query_row(
                    "SELECT count(*) FROM koios_mirror_journal WHERE table_name = ?1 AND copy = ?2",
                    params![table, copy],
                    |r| r.get(0),
                )
                .map_err(store_error)?;
            if left > 0 {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM koios_mirror_stale WHERE table_name = ?1 AND copy = ?2",
                params![table, copy],
            )
            .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(true)
        })
        .await
    }

    async fn forget_mirror(&self, table: &str) -> Result<()> {
        let table = table.to_string();
        self.with(move |c| {
            let tx = c.transaction().map_err(store_error)?;
            for statement in [
                "DELETE FROM koios_mirror_stale WHERE table_name = ?1",
                "DELETE FROM koios_mirror_journal WHERE table_name = ?1",
                "DELETE FROM koios_mirror_writes WHERE table_name = ?1",
            ] {
                tx.execute(statement, params![table]).map_err(store_error)?;
            }
            tx.commit().map_err(store_error)
        })
        .await
    }

    async fn jobs(&self) -> Result<Vec<StoredJob>> {
        self.with(|c| {
            let mut statement = c
                .prepare(
                    "SELECT id, kind, source, destination, state, rows_done, rows_total, bytes, \
                       spec, error, started_at, updated_at, finished_at FROM koios_jobs ORDER BY id",
                )
                .map_err(store_error)?;
            let rows = statement
                .query_map([], |r| {
                    Ok(StoredJob {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        source: r.get(2)?,
                        destination: r.get(3)?,
                        state: r.get(4)?,
                        rows_done: r.get(5)?,
                        rows_total: r.get(6)?,
                        bytes: r.get(7)?,
                        spec: r.get(8)?,
                        error: r.get(9)?,
                        started_at: r.get(10)?,
                        updated_at: r.get(11)?,
                        finished_at: r.get(12)?,
                    })
                })
                .map_err(store_error)?;
            rows.map(|r| r.map_err(store_error)).collect()
        })
        .await
    }

    async fn insert_job(&self, job: &StoredJob) -> Result<i64> {
        let job = job.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(store_error)?;
            let id: i64 = tx
                .query_row("SELECT coalesce(max(id), 0) + 1 FROM koios_jobs", [], |r| {
                    r.get(0)
                })
                .map_err(store_error)?;
            tx.execute(
                "INSERT INTO koios_jobs (id, kind, source, destination, state, rows_done, \
                   rows_total, bytes, spec, error, started_at, updated_at, finished_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    id,
                    job.kind,
                    job.source,
                    job.destination,
                    job.state,
                    job.rows_done,
                    job.rows_total,
                    job.bytes,
                    job.spec,
                    job.error,
                    job.started_at,
                    job.updated_at,
                    job.finished_at
                ],
            )
            .map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            Ok(id)
        })
        .await
    }

    async fn update_job(&self, job: &StoredJob) -> Result<()> {
        let job = job.clone();
        self.with(move |c| {
            c.execute(
                "UPDATE koios_jobs SET state = ?2, rows_done = ?3, rows_total = ?4, bytes = ?5, \
                   error = ?6, updated_at = ?7, finished_at = ?8, spec = ?9 WHERE id = ?1",
                params![
                    job.id,
                    job.state,
                    job.rows_done,
                    job.rows_total,
                    job.bytes,
                    job.error,
                    job.updated_at,
                    job.finished_at,
                    job.spec
                ],
            )
            .map_err(store_error)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> StoredSource {
        let mut options = std::collections::BTreeMap::new();
        options.insert("pool_size".into(), toml::Value::Integer(2));
        options.insert(
            "databases".into(),
            toml::Value::Array(vec![toml::Value::String("a'b".into())]),
        );
        StoredSource {
            name: name.into(),
            kind: "postgres".into(),
            url: "postgres://u:${PW}@h/db".into(),
            options,
            created_at: "2026-12-06T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn sources_survive_reopening_and_names_are_unique() {
        let dir = std::env::temp_dir().join(format!("koios-meta-{}", std::process::id()));
        let path = dir.join("nested/koios.db");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = SqliteStore::open(&path).expect("opens");
            store.insert_source(&source("b")).await.expect("insert");
            store.insert_source(&source("a")).await.expect("insert");
            let err = store.insert_source(&source("a")).await.expect_err("dup");
            assert!(err.to_string().contains("already exists"), "{err}");
            let mut changed = source("b");
            changed.url = "postgres://other/db".into();
            store.update_source(&changed).await.expect("update");
            assert!(store.delete_source("a").await.expect("delete"));
            assert!(!store.delete_source("a").await.expect("delete"));
            store.insert_source(&source("c")).await.expect("insert");
        }
        let store = SqliteStore::open(&path).expect("reopens");
        let sources = store.sources().await.expect("reads");
        let names: Vec<_> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(sources[0].url, "postgres://other/db");
        assert_eq!(
            sources[1],
            source("c"),
            "options and ${{VAR}} kept as written"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
