//! DDL text in a backend's dialect: `CREATE TABLE`, `ALTER TABLE`, `DROP`,
//! `TRUNCATE`, `CREATE SCHEMA`. Every name is quoted by
//! [`RemoteDialect::quote_identifier`], every default value is written by
//! the unparser and [`RemoteDialect::render`], and the finished text is
//! re-read with the backend's lexical rules like any other remote SQL: its
//! quoted names and strings must be exactly the ones written.
//!
//! Column types come from the backend (`column_type`), which maps Koios's
//! [`ColumnType`](crate::ddl::ColumnType) to its own type names — words
//! and numbers Koios chose, never user text.

use datafusion::error::Result;
use datafusion::logical_expr::{Expr, lit};

use super::{Quoted, RemoteDialect, lex, unsafe_sql};
use crate::ddl::{ColumnDefinition, SchemaChange, TableName};

/// Accumulates one statement's text and what its quoted tokens must read
/// back as (DDL here, DML in `dml.rs`).
pub(super) struct Ddl {
    dialect: RemoteDialect,
    sql: String,
    written: Vec<Quoted>,
}

impl Ddl {
    pub(super) fn new(dialect: RemoteDialect) -> Self {
        Self {
            dialect,
            sql: String::new(),
            written: Vec::new(),
        }
    }

    pub(super) fn word(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    pub(super) fn ident(&mut self, name: &str) -> &mut Self {
        self.sql.push_str(&self.dialect.quote_identifier(name));
        self.written.push(Quoted::Identifier(name.to_string()));
        self
    }

    /// A plain string literal ([`RemoteDialect::quote_plain_string`]).
    pub(super) fn plain_string(&mut self, value: &str) -> Result<&mut Self> {
        self.sql.push_str(&self.dialect.quote_plain_string(value)?);
        self.written.push(Quoted::String(value.to_string()));
        Ok(self)
    }

    pub(super) fn table(&mut self, name: &TableName) -> &mut Self {
        self.ident(&name.schema).word(".").ident(&name.table)
    }

    fn column(
        &mut self,
        column: &ColumnDefinition,
        column_type: &dyn Fn(&ColumnDefinition) -> Result<String>,
    ) -> Result<&mut Self> {
        let ty = column_type(column)?;
        self.ident(&column.name).word(" ").word(&ty);
        if !column.nullable {
            self.word(" NOT NULL");
        }
        if let Some(value) = &column.default {
            let text = self.default_value(lit(value.clone()))?;
            self.word(" DEFAULT ").word(&text);
        }
        Ok(self)
    }

    /// A constant default, as the unparser writes it (parenthesised: MySQL
    /// takes an expression default only in parentheses).
    pub(super) fn default_value(&mut self, value: Expr) -> Result<String> {
        Ok(format!("({})", self.expression(&value)?))
    }

    /// An expression as the unparser writes it and [`RemoteDialect::render`]
    /// checks it; its quoted tokens join the statement's.
    pub(super) fn expression(&mut self, value: &Expr) -> Result<String> {
        let text = self.dialect.expr_to_sql(value)?;
        let mut read = lex(self.dialect, &text).map_err(|why| unsafe_sql(&text, &why))?;
        self.written.append(&mut read);
        Ok(text)
    }

    /// The finished statement, re-read and checked.
    pub(super) fn finish(self) -> Result<String> {
        let mut read = lex(self.dialect, &self.sql).map_err(|why| unsafe_sql(&self.sql, &why))?;
        let mut written = self.written;
        written.sort();
        read.sort();
        if written != read {
            return Err(unsafe_sql(
                &self.sql,
                "its quoted literals and identifiers are not the ones written",
            ));
        }
        Ok(self.sql)
    }
}

impl RemoteDialect {
    /// The statement that makes `change` in this dialect. `column_type`
    /// is the backend's type for a declared column; it refuses a type the
    /// backend cannot hold.
    pub fn schema_change_sql(
        self,
        change: &SchemaChange,
        column_type: &dyn Fn(&ColumnDefinition) -> Result<String>,
    ) -> Result<String> {
        let mut ddl = Ddl::new(self);
        match change {
            SchemaChange::CreateTable(definition) => {
                ddl.word("CREATE TABLE ");
                if definition.if_not_exists {
                    ddl.word("IF NOT EXISTS ");
                }
                ddl.table(&definition.name).word(" (");
                for (i, column) in definition.columns.iter().enumerate() {
                    if i > 0 {
                        ddl.word(", ");
                    }
                    ddl.column(column, column_type)?;
                }
                if !definition.primary_key.is_empty() {
                    ddl.word(", PRIMARY KEY (");
                    for (i, key) in definition.primary_key.iter().enumerate() {
                        if i > 0 {
                            ddl.word(", ");
                        }
                        ddl.ident(key);
                    }
                    ddl.word(")");
                }
                ddl.word(")");
            }
            SchemaChange::DropTable { name, if_exists } => {
                ddl.word("DROP TABLE ");
                if *if_exists {
                    ddl.word("IF EXISTS ");
                }
                ddl.table(name);
            }
            SchemaChange::Truncate(name) => {
                ddl.word("TRUNCATE TABLE ").table(name);
            }
            SchemaChange::AddColumn {
                table,
                column,
                if_not_exists,
            } => {
                ddl.word("ALTER TABLE ").table(table).word(" ADD COLUMN ");
                if *if_not_exists {
                    ddl.word("IF NOT EXISTS ");
                }
                ddl.column(column, column_type)?;
            }
            SchemaChange::DropColumn {
                table,
                column,
                if_exists,
            } => {
                ddl.word("ALTER TABLE ").table(table).word(" DROP COLUMN ");
                if *if_exists {
                    ddl.word("IF EXISTS ");
                }
                ddl.ident(column);
            }
            SchemaChange::RenameColumn { table, from, to } => {
                ddl.word("ALTER TABLE ")
                    .table(table)
                    .word(" RENAME COLUMN ")
                    .ident(from)
                    .word(" TO ")
                    .ident(to);
            }
            SchemaChange::RenameTable { table, to } => {
                ddl.word("ALTER TABLE ").table(table).word(" RENAME TO ");
                match self {
                    // PostgreSQL keeps the table in its schema.
                    RemoteDialect::PostgreSql => ddl.ident(to),
                    // MySQL would move it to the session's database.
                    RemoteDialect::MySql => ddl.ident(&table.schema).word(".").ident(to),
                };
            }
            SchemaChange::CreateSchema {
                name,
                if_not_exists,
            } => {
                ddl.word("CREATE SCHEMA ");
                if *if_not_exists {
                    ddl.word("IF NOT EXISTS ");
                }
                ddl.ident(name);
            }
            SchemaChange::DropSchema { name, if_exists } => {
                ddl.word("DROP SCHEMA ");
                if *if_exists {
                    ddl.word("IF EXISTS ");
                }
                ddl.ident(name);
            }
        }
        ddl.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::{ColumnType, TableDefinition};
    use datafusion::common::ScalarValue;

    fn names(column: &ColumnDefinition) -> Result<String> {
        Ok(column.data_type.to_string())
    }

    fn table(name: &str) -> TableName {
        TableName {
            schema: "public".into(),
            table: name.into(),
        }
    }

    #[test]
    fn quotes_every_name_and_default() {
        let change = SchemaChange::CreateTable(TableDefinition {
            name: table("a\"b`c; DROP TABLE x --"),
            columns: vec![
                ColumnDefinition {
                    name: "select".into(),
                    data_type: ColumnType::Int(64),
                    nullable: false,
                    default: None,
                },
                ColumnDefinition {
                    name: "note".into(),
                    data_type: ColumnType::Text,
                    nullable: true,
                    default: Some(ScalarValue::Utf8(Some("it's \\ here".into()))),
                },
            ],
            primary_key: vec!["select".into()],
            if_not_exists: true,
        });
        assert_eq!(
            RemoteDialect::PostgreSql
                .schema_change_sql(&change, &names)
                .expect("renders"),
            "CREATE TABLE IF NOT EXISTS \"public\".\"a\"\"b`c; DROP TABLE x --\" \
             (\"select\" bigint NOT NULL, \"note\" text DEFAULT (E'it''s \\\\ here'), \
             PRIMARY KEY (\"select\"))"
        );
        assert_eq!(
            RemoteDialect::MySql
                .schema_change_sql(&change, &names)
                .expect("renders"),
            "CREATE TABLE IF NOT EXISTS `public`.`a\"b``c; DROP TABLE x --` \
             (`select` bigint NOT NULL, `note` text DEFAULT (_utf8mb4 X'69742773205C2068657265'), \
             PRIMARY KEY (`select`))"
        );
    }

    #[test]
    fn renames_keep_the_schema() {
        let change = SchemaChange::RenameTable {
            table: table("t"),
            to: "u".into(),
        };
        assert_eq!(
            RemoteDialect::MySql
                .schema_change_sql(&change, &names)
                .expect("renders"),
            "ALTER TABLE `public`.`t` RENAME TO `public`.`u`"
        );
        assert_eq!(
            RemoteDialect::PostgreSql
                .schema_change_sql(&change, &names)
                .expect("renders"),
            "ALTER TABLE \"public\".\"t\" RENAME TO \"u\""
        );
    }

    #[test]
    fn a_type_the_backend_refuses_stops_the_statement() {
        let change = SchemaChange::AddColumn {
            table: table("t"),
            column: ColumnDefinition {
                name: "c".into(),
                data_type: ColumnType::Interval,
                nullable: true,
                default: None,
            },
            if_not_exists: false,
        };
        let refuse = |_: &ColumnDefinition| -> Result<String> {
            Err(datafusion::error::DataFusionError::Plan("no".into()))
        };
        assert!(
            RemoteDialect::PostgreSql
                .schema_change_sql(&change, &refuse)
                .is_err()
        );
    }
}
