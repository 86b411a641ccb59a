//! Creating and changing tables in MySQL/MariaDB: Koios's declared column
//! types as MySQL's (the reverse of [`crate::types`]), the DDL statements,
//! and the `DELETE`/`UPDATE` statements run remotely as one. MySQL commits
//! DDL as it runs, one statement at a time, so each change is one
//! statement.
//!
//! Text columns are created `utf8mb4` with a binary collation that does
//! not pad (`utf8mb4_nopad_bin` in MariaDB, `utf8mb4_0900_bin` in MySQL 8;
//! `utf8mb4_bin`, which ignores trailing spaces, where neither exists):
//! every character is kept, and comparisons, sorting and grouping are by
//! code point, as in DataFusion — so filters on them are pushed down.

use datafusion::error::Result;
use koios_connector::ddl::{ColumnDefinition, ColumnType, SchemaChange};
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;
use mysql_async::prelude::Queryable;
use std::sync::Arc;

use crate::backend::MyBackend;
use crate::error::remote_error;
use crate::transaction::Pinned;
use crate::types::{EXACT_COLLATIONS, FALLBACK_COLLATION};

fn type_name(ty: &ColumnType, collation: &str) -> std::result::Result<String, &'static str> {
    let text = format!("CHARACTER SET utf8mb4 COLLATE {collation}");
    Ok(match ty {
        // MySQL's BOOLEAN; Koios reads tinyint(1) back as boolean.
        ColumnType::Boolean => "tinyint(1)".into(),
        ColumnType::Int(8) => "tinyint".into(),
        ColumnType::Int(16) => "smallint".into(),
        ColumnType::Int(32) => "int".into(),
        ColumnType::Int(_) => "bigint".into(),
        ColumnType::UInt(8) => "tinyint unsigned".into(),
        ColumnType::UInt(16) => "smallint unsigned".into(),
        ColumnType::UInt(32) => "int unsigned".into(),
        ColumnType::UInt(_) => "bigint unsigned".into(),
        ColumnType::Real => "float".into(),
        ColumnType::Double => "double".into(),
        ColumnType::Numeric(None) => {
            return Err("MySQL's decimal holds at most 65 digits: declare numeric(p,s)");
        }
        ColumnType::Numeric(Some((precision, scale))) => {
            if *precision == 0 || *precision > 65 || *scale < 0 || *scale > 30 {
                return Err("MySQL's decimal takes a precision of 1 to 65 and a scale of 0 to 30");
            }
            format!("decimal({precision},{scale})")
        }
        ColumnType::Text | ColumnType::Varchar(None) => format!("longtext {text}"),
        ColumnType::Varchar(Some(n)) => format!("varchar({n}) {text}"),
        ColumnType::Char(_) => {
            return Err("MySQL's char drops trailing spaces: declare varchar(n) or text");
        }
        ColumnType::Bytea => "longblob".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Time => {
            return Err(
                "MySQL's time is a duration, read back as an interval: declare a timestamp or text",
            );
        }
        ColumnType::Timestamp => "datetime(6)".into(),
        // Koios's sessions run at time zone +00:00: stored and read in UTC.
        ColumnType::TimestampTz => "timestamp(6)".into(),
        ColumnType::Interval => return Err("MySQL has no interval type"),
        ColumnType::Json | ColumnType::Jsonb => "json".into(),
        ColumnType::Uuid => "char(36) CHARACTER SET ascii COLLATE ascii_bin".into(),
        ColumnType::Array(_) => return Err("MySQL has no array type: declare json"),
    })
}

impl MyBackend {
    /// The collation for text columns Koios creates on this server: the
    /// first of [`EXACT_COLLATIONS`] it has, else [`FALLBACK_COLLATION`].
    pub(crate) async fn exact_text_collation(
        &self,
        conn: &mut mysql_async::Conn,
    ) -> Result<&'static str> {
        let found: Vec<String> = conn
            .exec(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN (?, ?)",
                (EXACT_COLLATIONS[0], EXACT_COLLATIONS[1]),
            )
            .await
            .map_err(|e| remote_error(&self.context("reading the server's collations"), &e))?;
        Ok(EXACT_COLLATIONS
            .into_iter()
            .find(|c| found.iter().any(|f| f == c))
            .unwrap_or(FALLBACK_COLLATION))
    }

    /// MySQL's type for a declared column.
    pub(crate) fn declared_type(&self, column: &ColumnDefinition) -> Result<String> {
        type_name(&column.data_type, self.text_collation).map_err(|why| {
            koios_connector::sql_error!(
                codes::FEATURE_NOT_SUPPORTED,
                "source '{}' cannot create column \"{}\" of type {}: {why}",
                self.source,
                column.name,
                column.data_type
            )
        })
    }

    /// Runs a `DELETE` or `UPDATE` Koios wrote; returns the rows it matched
    /// (connections report found rows, not changed ones, as PostgreSQL does).
    /// `pinned`: the session's open transaction to run it in.
    pub(crate) async fn run_statement(
        &self,
        sql: String,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<u64> {
        let context = self.context("changing rows");
        if let Some(pinned) = pinned {
            let mut guard = pinned.lock().await?;
            let Some(transaction) = guard.as_mut() else {
                return Ok(0);
            };
            transaction
                .query_drop(sql)
                .await
                .map_err(|e| remote_error(&context, &e))?;
            return Ok(transaction.affected_rows());
        }
        let mut conn = self.conn().await?;
        conn.query_drop(sql)
            .await
            .map_err(|e| remote_error(&context, &e))?;
        Ok(conn.affected_rows())
    }

    /// Runs one statement Koios wrote for `change`. `DROP SCHEMA` in MySQL
    /// drops every table in it; like PostgreSQL's without `CASCADE`, it is
    /// refused unless the schema is empty.
    pub(crate) async fn run_ddl(&self, change: &SchemaChange, sql: String) -> Result<()> {
        let mut conn = self.conn().await?;
        let context = self.context(&change.tag().to_ascii_lowercase());
        if let SchemaChange::DropSchema { name, .. } = change {
            let tables: Option<u64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                    (name,),
                )
                .await
                .map_err(|e| remote_error(&context, &e))?;
            if tables.unwrap_or(0) > 0 {
                return sql_err!(
                    codes::DEPENDENT_OBJECTS_STILL_EXIST,
                    "source '{}': cannot drop schema \"{name}\" because it holds tables (drop them first)",
                    self.source
                );
            }
        }
        conn.query_drop(sql)
            .await
            .map_err(|e| remote_error(&context, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_declared_types() {
        let name = |ty: ColumnType| type_name(&ty, "utf8mb4_nopad_bin").expect("maps");
        assert_eq!(name(ColumnType::UInt(64)), "bigint unsigned");
        assert_eq!(
            name(ColumnType::Varchar(Some(20))),
            "varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
        );
        assert!(type_name(&ColumnType::Numeric(None), "utf8mb4_bin").is_err());
        assert!(
            type_name(
                &ColumnType::Array(Box::new(ColumnType::Int(32))),
                "utf8mb4_bin"
            )
            .is_err()
        );
    }
}
