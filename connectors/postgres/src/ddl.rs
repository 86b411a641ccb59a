//! Creating and changing tables in PostgreSQL: Koios's declared column
//! types as PostgreSQL's (the reverse of [`crate::types`]), the DDL
//! statements run in a transaction of their own, and the `DELETE`/`UPDATE`
//! statements run remotely as one (PostgreSQL's DDL is
//! transactional, so a failed statement leaves nothing behind).

use datafusion::error::Result;
use koios_connector::ddl::{ColumnDefinition, ColumnType, SchemaChange};
use koios_connector::sql_error;
use koios_connector::sqlstate::codes;

use std::sync::Arc;

use crate::backend::PgBackend;
use crate::transaction::Pinned;

fn type_name(ty: &ColumnType) -> std::result::Result<String, &'static str> {
    Ok(match ty {
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Int(8) | ColumnType::Int(16) => "smallint".into(),
        ColumnType::Int(32) => "integer".into(),
        ColumnType::Int(_) => "bigint".into(),
        // No unsigned types: the next wider signed one holds every value.
        ColumnType::UInt(8) => "smallint".into(),
        ColumnType::UInt(16) => "integer".into(),
        ColumnType::UInt(32) => "bigint".into(),
        ColumnType::UInt(_) => "numeric(20,0)".into(),
        ColumnType::Real => "real".into(),
        ColumnType::Double => "double precision".into(),
        ColumnType::Numeric(None) => "numeric".into(),
        ColumnType::Numeric(Some((precision, scale))) => {
            if *precision == 0 || *precision > 76 {
                return Err("Koios reads numeric precision 1 to 76 exactly");
            }
            format!("numeric({precision},{scale})")
        }
        ColumnType::Text => "text".into(),
        ColumnType::Varchar(None) => "varchar".into(),
        ColumnType::Varchar(Some(n)) => format!("varchar({n})"),
        ColumnType::Char(n) => format!("char({n})"),
        ColumnType::Bytea => "bytea".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Time => "time".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::TimestampTz => "timestamptz".into(),
        ColumnType::Interval => "interval".into(),
        ColumnType::Json => "json".into(),
        ColumnType::Jsonb => "jsonb".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Array(element) => match element.as_ref() {
            ColumnType::Array(_) => return Err("arrays of arrays are not supported"),
            element => format!("{}[]", type_name(element)?),
        },
    })
}

impl PgBackend {
    /// PostgreSQL's type for a declared column.
    pub(crate) fn declared_type(&self, column: &ColumnDefinition) -> Result<String> {
        type_name(&column.data_type).map_err(|why| {
            sql_error!(
                codes::FEATURE_NOT_SUPPORTED,
                "source '{}' cannot create column \"{}\" of type {}: {why}",
                self.source,
                column.name,
                column.data_type
            )
        })
    }

    /// Runs a `DELETE` or `UPDATE` Koios wrote; returns the rows it matched.
    /// `pinned`: the session's open transaction to run it in.
    pub(crate) async fn run_statement(
        &self,
        sql: String,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<u64> {
        let connection = self.connection(pinned).await?;
        connection
            .client()?
            .execute(sql.as_str(), &[])
            .await
            .map_err(|e| self.db_error("changing rows", e))
    }

    /// Runs one statement Koios wrote for `change` inside `pinned`'s open
    /// transaction (a table created and filled as one).
    pub(crate) async fn run_ddl_in(
        &self,
        change: &SchemaChange,
        sql: String,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<()> {
        let what = change.tag().to_ascii_lowercase();
        let connection = self.connection(pinned).await?;
        connection
            .client()?
            .execute(sql.as_str(), &[])
            .await
            .map(drop)
            .map_err(|e| self.db_error(&what, e))
    }

    /// Runs one statement Koios wrote for `change`, in its own transaction.
    pub(crate) async fn run_ddl(&self, change: &SchemaChange, sql: String) -> Result<()> {
        let mut client = self.client().await?;
        let what = change.tag().to_ascii_lowercase();
        let transaction = client
            .transaction()
            .await
            .map_err(|e| self.db_error(&what, e))?;
        transaction
            .execute(sql.as_str(), &[])
            .await
            .map_err(|e| self.db_error(&what, e))?;
        transaction
            .commit()
            .await
            .map_err(|e| self.db_error(&what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_declared_types() {
        let name = |ty: ColumnType| type_name(&ty).expect("maps");
        assert_eq!(name(ColumnType::UInt(64)), "numeric(20,0)");
        assert_eq!(
            name(ColumnType::Array(Box::new(ColumnType::Numeric(Some((
                10, 2
            )))))),
            "numeric(10,2)[]"
        );
        assert!(
            type_name(&ColumnType::Array(Box::new(ColumnType::Array(Box::new(
                ColumnType::Int(32)
            )))))
            .is_err()
        );
    }
}
