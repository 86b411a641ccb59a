//! The metadata store's schema and its forward migrations, shared by the
//! SQLite and PostgreSQL stores (the SQL is the subset both accept).
//!
//! A store records the version it is at in `koios_schema_version`; opening
//! it applies every later migration in one transaction. A store written by
//! a newer Koios (a version this build does not know) is refused rather
//! than misread.

/// Migrations in order: the store is at version `n` once the first `n` ran.
pub const MIGRATIONS: &[&str] = &[
    // 1: sources created by SQL. `url` and `options` (a TOML table body) are
    // as written, `${VAR}` references unexpanded.
    "CREATE TABLE koios_sources (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        options TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
    // 2: logical tables (striped today). `definition` is the table's JSON
    // (columns, layout, members); `position` is a round-robin table's
    // insertion pointer: rows inserted so far.
    "CREATE TABLE koios_logical_tables (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        position BIGINT NOT NULL,
        created_at TEXT NOT NULL
    )",
    // 3: mirrored tables' copies that missed writes. A copy listed in
    // `koios_mirror_stale` is stale (never read) until its journal is
    // replayed; each journal entry names the keys (JSON lines of the key
    // columns) whose rows the copy must take from a current copy, or NULL
    // for every row. `koios_mirror_writes` holds the writes in flight: one
    // left behind by a crash of Koios marks the table's copies in doubt.
    "CREATE TABLE koios_mirror_stale (
        table_name TEXT NOT NULL,
        copy TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (table_name, copy)
    );
    CREATE TABLE koios_mirror_journal (
        table_name TEXT NOT NULL,
        copy TEXT NOT NULL,
        seq BIGINT NOT NULL,
        keys TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (table_name, copy, seq)
    );
    CREATE TABLE koios_mirror_writes (
        table_name TEXT NOT NULL,
        id BIGINT NOT NULL,
        started_at TEXT NOT NULL,
        PRIMARY KEY (table_name, id)
    )",
    // 4: background jobs (a copy being filled, migrations): what they do
    // (`kind`, `source`, `destination`, and `spec`, the kind's own JSON),
    // where they are (`state`: running, paused, done, failed, cancelled)
    // and how far (rows and bytes done, rows in all when known).
    "CREATE TABLE koios_jobs (
        id BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        destination TEXT NOT NULL,
        state TEXT NOT NULL,
        rows_done BIGINT NOT NULL,
        rows_total BIGINT,
        bytes BIGINT NOT NULL,
        spec TEXT NOT NULL,
        error TEXT,
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    )",
];

/// The version table, created before anything else.
pub const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS koios_schema_version (version BIGINT NOT NULL)";

/// The version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// The migrations to run on a store at `current`; an error if the store is
/// newer than this build.
pub fn pending(current: i64, location: &str) -> Result<&'static [&'static str], String> {
    if current > latest() {
        return Err(format!(
            "metadata store {location} is at schema version {current}, newer than this \
             Koios knows ({}); run a newer Koios or point [server] metadata elsewhere",
            latest()
        ));
    }
    Ok(&MIGRATIONS[current.max(0) as usize..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_migrations_follow_the_stored_version() {
        assert_eq!(pending(0, "x").expect("fresh").len(), MIGRATIONS.len());
        assert!(pending(latest(), "x").expect("current").is_empty());
        let err = pending(latest() + 1, "f.db").expect_err("newer");
        assert!(err.contains("newer than this Koios knows"), "{err}");
    }
}
