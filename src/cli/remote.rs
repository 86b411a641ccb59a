//! The connection to a running Koios and the statements each command
//! sends. The user and password come from `--user`/`--password`, else
//! `PGUSER`/`PGPASSWORD` as with every PostgreSQL client; the password is
//! never printed.

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::engine::error::{KoiosError, Result};
use crate::engine::settings::quote_ident;
use crate::pg::types::table::{TextTable, is_numeric_type};

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub server: String,
    pub user: String,
    pub password: Option<String>,
}

/// A connection to a running server.
pub struct Remote {
    client: Client,
}

impl Remote {
    pub async fn connect(target: &Target) -> Result<Remote> {
        let (host, port) = target.server.rsplit_once(':').ok_or_else(|| {
            KoiosError::Config(format!(
                "--server {}: expected HOST:PORT, e.g. 127.0.0.1:5433",
                target.server
            ))
        })?;
        let port: u16 = port.parse().map_err(|_| {
            KoiosError::Config(format!(
                "--server {}: '{port}' is not a port",
                target.server
            ))
        })?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&target.user)
            .dbname(crate::engine::KOIOS_CATALOG)
            .application_name("koios-cli");
        if let Some(password) = &target.password {
            config.password(password);
        }
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            KoiosError::Client(format!(
                "cannot connect to Koios at {}: {}",
                target.server,
                describe(&e)
            ))
        })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Remote { client })
    }

    /// The rows of one statement, with numeric columns marked as psql
    /// marks them (the simple protocol's answer carries no types, so the
    /// statement is described first).
    pub async fn rows(&self, sql: &str) -> Result<TextTable> {
        let described = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| KoiosError::Client(describe(&e)))?;
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| KoiosError::Client(describe(&e)))?;
        let mut out = TextTable {
            columns: described
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            right_aligned: described
                .columns()
                .iter()
                .map(|c| is_numeric_type(c.type_()))
                .collect(),
            rows: Vec::new(),
        };
        for message in messages {
            if let SimpleQueryMessage::Row(row) = message {
                out.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    /// Runs a statement that returns no rows.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client
            .simple_query(sql)
            .await
            .map(|_| ())
            .map_err(|e| KoiosError::Client(describe(&e)))
    }
}

/// The server's message and SQLSTATE, or the client's error.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// What `koios sources list` prints.
pub const LIST_SOURCES: &str = "SELECT name, kind, origin, url, state, round(latency_ms::numeric, 1) AS latency_ms, \
     tables, last_error FROM koios.system.sources ORDER BY name";

/// What `koios status` prints about the server.
pub const SERVER_STATUS: &str = "SELECT started_at, round(uptime_seconds) AS uptime_seconds, \
     sources, sources_down, metadata_store FROM koios.system.server";

/// What `koios status` prints about connections.
pub const CONNECTIONS: &str = "SELECT count(*) AS connections FROM pg_stat_activity";

/// `CREATE SOURCE name USING kind WITH (url = …, key = value …)` from the
/// command line's words: a value that reads as a number or true/false goes
/// as one, `[a,b]` as an array of strings, anything else as a string.
pub fn create_source_sql(
    name: &str,
    kind: &str,
    url: &str,
    options: &[(String, String)],
    validate: bool,
) -> String {
    let mut with = vec![format!("url = {}", literal(url))];
    for (key, value) in options {
        with.push(format!("{} = {}", quote_ident(key), value_sql(value)));
    }
    if !validate {
        with.push("validate = false".into());
    }
    format!(
        "CREATE SOURCE {} USING {} WITH ({})",
        quote_ident(name),
        quote_ident(kind),
        with.join(", ")
    )
}

/// One command-line option value as SQL.
fn value_sql(value: &str) -> String {
    if value.parse::<i64>().is_ok() || value.parse::<f64>().is_ok_and(f64::is_finite) {
        return value.to_string();
    }
    if value == "true" || value == "false" {
        return value.to_string();
    }
    if let Some(items) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        let items: Vec<String> = items
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(literal)
            .collect();
        return format!("ARRAY[{}]", items.join(", "));
    }
    literal(value)
}

/// A SQL string literal (PostgreSQL's standard strings: only `'` doubles).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `DROP SOURCE [IF EXISTS] name`.
pub fn drop_source_sql(name: &str, if_exists: bool) -> String {
    format!(
        "DROP SOURCE {}{}",
        if if_exists { "IF EXISTS " } else { "" },
        quote_ident(name)
    )
}

/// `REFRESH SOURCE name`.
pub fn refresh_source_sql(name: &str) -> String {
    format!("REFRESH SOURCE {}", quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_statements_from_command_line_words() {
        assert_eq!(
            create_source_sql(
                "pg2",
                "postgres",
                "postgres://u@h/d'b",
                &[
                    ("pool_size".into(), "4".into()),
                    ("split_count".into(), "auto".into()),
                    ("databases".into(), "[a, b]".into()),
                    ("Odd".into(), "true".into()),
                ],
                false
            ),
            "CREATE SOURCE pg2 USING postgres WITH (url = 'postgres://u@h/d''b', pool_size = 4, \
             split_count = 'auto', databases = ARRAY['a', 'b'], \"Odd\" = true, validate = false)"
        );
        assert_eq!(drop_source_sql("pg2", true), "DROP SOURCE IF EXISTS pg2");
        assert_eq!(refresh_source_sql("x"), "REFRESH SOURCE x");
        assert_eq!(value_sql("NaN"), "'NaN'");
    }
}
