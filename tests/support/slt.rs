//! sqllogictest database adapters that talk to Koios through a real
//! PostgreSQL client (tokio-postgres), one per protocol mode:
//!
//! * `simple`: the simple query protocol; values arrive as text exactly as
//!   Koios renders them.
//! * `extended`: Parse/Bind/Execute with binary results; values are decoded
//!   from their binary form and rendered as PostgreSQL text, so one
//!   expectation checks both encodings. Column types are checked too.
//!
//! `.slt` files can use `onlyif simple` / `onlyif extended` for records that
//! only make sense in one mode (multi-statement strings, say).

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::pgtext::{Raw, binary_to_text};

/// Which protocol a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Simple,
    Extended,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Extended => "extended",
        }
    }
}

/// An error as the test files see it: message plus SQLSTATE, so records can
/// match either (`statement error 42P01`).
#[derive(Debug)]
pub struct SqlError(pub String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

fn describe(e: tokio_postgres::Error) -> SqlError {
    match e.as_db_error() {
        Some(db) => SqlError(format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        )),
        None => SqlError(format!("client error: {e}")),
    }
}

/// One Koios connection driven by the sqllogictest runner.
pub struct KoiosDb {
    pub client: Client,
    pub mode: Mode,
}

fn column_type(ty: &tokio_postgres::types::Type) -> DefaultColumnType {
    use tokio_postgres::types::Type;
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn cell(value: Option<&str>) -> String {
    match value {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some(v) => v.to_string(),
    }
}

#[async_trait]
impl AsyncDB for KoiosDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        match self.mode {
            Mode::Simple => {
                let messages = self.client.simple_query(sql).await.map_err(describe)?;
                let mut rows: Option<Vec<Vec<String>>> = None;
                let mut columns = 0;
                let mut count = 0;
                for message in messages {
                    match message {
                        SimpleQueryMessage::RowDescription(cols) => {
                            columns = cols.len();
                            rows = Some(Vec::new());
                        }
                        SimpleQueryMessage::Row(row) => {
                            let values = (0..row.len()).map(|i| cell(row.get(i))).collect();
                            rows.get_or_insert_with(Vec::new).push(values);
                        }
                        SimpleQueryMessage::CommandComplete(n) => count = n,
                        _ => {}
                    }
                }
                Ok(match rows {
                    // Text results carry no types; the extended run checks them.
                    Some(rows) => DBOutput::Rows {
                        types: vec![DefaultColumnType::Any; columns],
                        rows,
                    },
                    None => DBOutput::StatementComplete(count),
                })
            }
            Mode::Extended => {
                let statement = self.client.prepare(sql).await.map_err(describe)?;
                if statement.columns().is_empty() {
                    let n = self
                        .client
                        .execute(&statement, &[])
                        .await
                        .map_err(describe)?;
                    return Ok(DBOutput::StatementComplete(n));
                }
                let types: Vec<_> = statement
                    .columns()
                    .iter()
                    .map(|c| column_type(c.type_()))
                    .collect();
                let result = self.client.query(&statement, &[]).await.map_err(describe)?;
                let mut rows = Vec::with_capacity(result.len());
                for row in &result {
                    let mut values = Vec::with_capacity(row.len());
                    for (i, column) in row.columns().iter().enumerate() {
                        let raw: Raw<'_> = row.try_get(i).map_err(describe)?;
                        let text = match raw.0 {
                            None => None,
                            Some(bytes) => {
                                Some(binary_to_text(column.type_(), bytes).map_err(|e| {
                                    SqlError(format!(
                                        "column {}: cannot decode binary {}: {e}",
                                        column.name(),
                                        column.type_()
                                    ))
                                })?)
                            }
                        };
                        values.push(cell(text.as_deref()));
                    }
                    rows.push(values);
                }
                Ok(DBOutput::Rows { types, rows })
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "koios"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}
