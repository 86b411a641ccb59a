//! Statements over rows Koios first stages in a temporary table on the
//! backend: an upsert (`INSERT … ON CONFLICT`), and a change by primary key
//! (a `DELETE` or `UPDATE` whose rows and new values Koios worked out).
//! The backend runs them in one transaction: create the staging table,
//! fill it through its bulk path, run [`StagedStatements::apply`], drop it.
//! An insert that returns its rows (`RETURNING`, PostgreSQL and MariaDB)
//! is staged too, so every value travels through the bulk path's codecs.
//!
//! MySQL's `ON DUPLICATE KEY UPDATE` fires on any unique key and cannot
//! count inserted and updated rows apart, so there an upsert is an `UPDATE
//! … JOIN` of the rows matching exactly the key columns and an `INSERT …
//! SELECT … WHERE NOT EXISTS` of the others.

use datafusion::error::Result;
use datafusion::logical_expr::{Expr, lit};

use super::RemoteDialect;
use super::ddl::Ddl;
use crate::ddl::TableName;
use crate::upsert::{ConflictAction, OnConflict, UpsertValue};

/// The statements of one staged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedStatements {
    /// Creates the staging table, empty, with the staged columns' types.
    pub create_staging: String,
    /// Apply the staged rows; their affected-row counts add up to the
    /// change's count.
    pub apply: Vec<String>,
    /// Drops the staging table.
    pub drop_staging: String,
}

/// A change of rows by primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum KeyedChange {
    /// Delete the rows with the staged keys.
    Delete,
    /// Set these columns of the rows with the staged keys to the staged
    /// values.
    Update(Vec<String>),
}

impl RemoteDialect {
    /// The staging table number `n` of a change of `table`: a temporary
    /// table, in PostgreSQL's `pg_temp`, in MySQL beside the table.
    pub fn staging_table(self, table: &TableName, n: u64) -> TableName {
        TableName {
            schema: match self {
                RemoteDialect::PostgreSql => "pg_temp".into(),
                _ => table.schema.clone(),
            },
            table: format!("koios_staged_{n}"),
        }
    }

    /// `CREATE TEMPORARY TABLE staged AS SELECT columns FROM table LIMIT 0`
    /// and its `DROP`.
    fn staging(
        self,
        table: &TableName,
        staged: &TableName,
        columns: &[String],
    ) -> Result<(String, String)> {
        let mut create = Ddl::new(self);
        create.word("CREATE TEMPORARY TABLE ");
        match self {
            // A temporary table is named without a schema.
            RemoteDialect::PostgreSql => create.ident(&staged.table),
            _ => create.table(staged),
        };
        create.word(" AS SELECT ");
        column_list(&mut create, None, columns);
        create.word(" FROM ").table(table).word(" LIMIT 0");
        let mut drop = Ddl::new(self);
        drop.word(match self {
            RemoteDialect::PostgreSql => "DROP TABLE ",
            _ => "DROP TEMPORARY TABLE ",
        })
        .table(staged);
        Ok((create.finish()?, drop.finish()?))
    }

    /// An upsert of the rows staged in `staged` (all of `table`'s
    /// `columns`) into `table`.
    pub fn upsert_sql(
        self,
        table: &TableName,
        staged: &TableName,
        columns: &[String],
        on_conflict: &OnConflict,
    ) -> Result<StagedStatements> {
        let (create_staging, drop_staging) = self.staging(table, staged, columns)?;
        let apply = match self {
            RemoteDialect::PostgreSql => {
                vec![self.insert_on_conflict(table, staged, columns, on_conflict)?]
            }
            _ => {
                let mut apply = Vec::new();
                if let ConflictAction::Update(assignments) = &on_conflict.action {
                    apply.push(self.update_joined(
                        table,
                        staged,
                        &on_conflict.target,
                        assignments,
                    )?);
                }
                apply.push(self.insert_missing(table, staged, columns, &on_conflict.target)?);
                apply
            }
        };
        Ok(StagedStatements {
            create_staging,
            apply,
            drop_staging,
        })
    }

    /// An insert of the rows staged in `staged` into `columns` of `table`
    /// (the others left to the table's defaults), returning each stored row
    /// as `returning` reads it: `(name, expression)` per column. Its one
    /// applying statement is a query.
    pub fn insert_returning_sql(
        self,
        table: &TableName,
        staged: &TableName,
        columns: &[String],
        returning: &[(String, Expr)],
    ) -> Result<StagedStatements> {
        let (create_staging, drop_staging) = self.staging(table, staged, columns)?;
        let mut sql = Ddl::new(self);
        sql.word("INSERT INTO ").table(table).word(" (");
        column_list(&mut sql, None, columns);
        sql.word(") SELECT ");
        column_list(&mut sql, None, columns);
        sql.word(" FROM ").table(staged).word(" RETURNING ");
        for (i, (name, expr)) in returning.iter().enumerate() {
            if i > 0 {
                sql.word(", ");
            }
            let text = sql.expression(expr)?;
            sql.word(&text).word(" AS ").ident(name);
        }
        Ok(StagedStatements {
            create_staging,
            apply: vec![sql.finish()?],
            drop_staging,
        })
    }

    /// A change of the rows of `table` whose `key` is staged in `staged`
    /// (with the new values of an update's columns).
    pub fn keyed_change_sql(
        self,
        table: &TableName,
        staged: &TableName,
        key: &[String],
        change: &KeyedChange,
    ) -> Result<StagedStatements> {
        let mut columns = key.to_vec();
        if let KeyedChange::Update(set) = change {
            columns.extend(set.iter().cloned());
        }
        let (create_staging, drop_staging) = self.staging(table, staged, &columns)?;
        let apply = match change {
            KeyedChange::Update(set) => {
                let assignments: Vec<(String, UpsertValue)> = set
                    .iter()
                    .map(|c| (c.clone(), UpsertValue::Proposed(c.clone())))
                    .collect();
                self.update_joined(table, staged, key, &assignments)?
            }
            KeyedChange::Delete => {
                let mut sql = Ddl::new(self);
                match self {
                    RemoteDialect::PostgreSql => {
                        sql.word("DELETE FROM ")
                            .table(table)
                            .word(" AS ")
                            .ident("d");
                        sql.word(" USING ").table(staged).word(" AS ").ident("s");
                        sql.word(" WHERE ");
                    }
                    _ => {
                        sql.word("DELETE ").ident("d").word(" FROM ").table(table);
                        sql.word(" AS ").ident("d").word(" JOIN ").table(staged);
                        sql.word(" AS ").ident("s").word(" ON ");
                    }
                }
                key_match(&mut sql, key);
                sql.finish()?
            }
        };
        Ok(StagedStatements {
            create_staging,
            apply: vec![apply],
            drop_staging,
        })
    }

    fn insert_on_conflict(
        self,
        table: &TableName,
        staged: &TableName,
        columns: &[String],
        on_conflict: &OnConflict,
    ) -> Result<String> {
        let mut sql = Ddl::new(self);
        sql.word("INSERT INTO ").table(table).word(" (");
        column_list(&mut sql, None, columns);
        sql.word(") SELECT ");
        column_list(&mut sql, None, columns);
        sql.word(" FROM ").table(staged).word(" ON CONFLICT (");
        column_list(&mut sql, None, &on_conflict.target);
        sql.word(")");
        match &on_conflict.action {
            ConflictAction::Nothing => {
                sql.word(" DO NOTHING");
            }
            ConflictAction::Update(assignments) => {
                sql.word(" DO UPDATE SET ");
                for (i, (column, value)) in assignments.iter().enumerate() {
                    if i > 0 {
                        sql.word(", ");
                    }
                    sql.ident(column).word(" = ");
                    match value {
                        UpsertValue::Proposed(from) => {
                            sql.word("EXCLUDED.").ident(from);
                        }
                        UpsertValue::Constant(v) => {
                            let text = sql.expression(&lit(v.clone()))?;
                            sql.word(&text);
                        }
                    }
                }
            }
        }
        sql.finish()
    }

    /// The rows of `table` matching staged rows on `key`, updated:
    /// PostgreSQL `UPDATE table AS d SET c = s.c FROM staged AS s WHERE
    /// d.k = s.k`, MySQL `UPDATE table AS d JOIN staged AS s ON d.k = s.k
    /// SET d.c = s.c`.
    fn update_joined(
        self,
        table: &TableName,
        staged: &TableName,
        key: &[String],
        assignments: &[(String, UpsertValue)],
    ) -> Result<String> {
        let mut sql = Ddl::new(self);
        let postgres = self == RemoteDialect::PostgreSql;
        sql.word("UPDATE ").table(table).word(" AS ").ident("d");
        if !postgres {
            sql.word(" JOIN ")
                .table(staged)
                .word(" AS ")
                .ident("s")
                .word(" ON ");
            key_match(&mut sql, key);
        }
        sql.word(" SET ");
        for (i, (column, value)) in assignments.iter().enumerate() {
            if i > 0 {
                sql.word(", ");
            }
            if !postgres {
                sql.ident("d").word(".");
            }
            sql.ident(column).word(" = ");
            match value {
                UpsertValue::Proposed(from) => {
                    sql.ident("s").word(".").ident(from);
                }
                UpsertValue::Constant(v) => {
                    let text = sql.expression(&lit(v.clone()))?;
                    sql.word(&text);
                }
            }
        }
        if postgres {
            sql.word(" FROM ")
                .table(staged)
                .word(" AS ")
                .ident("s")
                .word(" WHERE ");
            key_match(&mut sql, key);
        }
        sql.finish()
    }

    /// `INSERT INTO table (…) SELECT s.… FROM staged AS s WHERE NOT EXISTS
    /// (SELECT 1 FROM table AS d WHERE d.k = s.k …)`.
    fn insert_missing(
        self,
        table: &TableName,
        staged: &TableName,
        columns: &[String],
        key: &[String],
    ) -> Result<String> {
        let mut sql = Ddl::new(self);
        sql.word("INSERT INTO ").table(table).word(" (");
        column_list(&mut sql, None, columns);
        sql.word(") SELECT ");
        column_list(&mut sql, Some("s"), columns);
        sql.word(" FROM ").table(staged).word(" AS ").ident("s");
        sql.word(" WHERE NOT EXISTS (SELECT 1 FROM ")
            .table(table)
            .word(" AS ")
            .ident("d");
        sql.word(" WHERE ");
        key_match(&mut sql, key);
        sql.word(")");
        sql.finish()
    }
}

/// `a, b` (or `s.a, s.b`).
fn column_list(sql: &mut Ddl, alias: Option<&str>, columns: &[String]) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.word(", ");
        }
        if let Some(alias) = alias {
            sql.ident(alias).word(".");
        }
        sql.ident(column);
    }
}

/// `d.k1 = s.k1 AND d.k2 = s.k2`.
fn key_match(sql: &mut Ddl, key: &[String]) {
    for (i, column) in key.iter().enumerate() {
        if i > 0 {
            sql.word(" AND ");
        }
        sql.ident("d")
            .word(".")
            .ident(column)
            .word(" = ")
            .ident("s")
            .word(".")
            .ident(column);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (TableName, [String; 2]) {
        (
            TableName {
                schema: "s".into(),
                table: "t\"x".into(),
            },
            ["id".to_string(), "v".to_string()],
        )
    }

    #[test]
    fn writes_upserts() {
        let (table, columns) = names();
        let on_conflict = OnConflict {
            target: vec!["id".into()],
            action: ConflictAction::Update(vec![("v".into(), UpsertValue::Proposed("v".into()))]),
        };
        let dialect = RemoteDialect::PostgreSql;
        let staged = dialect.staging_table(&table, 1);
        let pg = dialect
            .upsert_sql(&table, &staged, &columns, &on_conflict)
            .expect("renders");
        assert_eq!(
            pg.create_staging,
            "CREATE TEMPORARY TABLE \"koios_staged_1\" AS SELECT \"id\", \"v\" FROM \"s\".\"t\"\"x\" LIMIT 0"
        );
        assert_eq!(
            pg.apply,
            [
                "INSERT INTO \"s\".\"t\"\"x\" (\"id\", \"v\") SELECT \"id\", \"v\" FROM \"pg_temp\".\"koios_staged_1\" ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""
            ]
        );
        let nothing = OnConflict {
            target: vec!["id".into()],
            action: ConflictAction::Nothing,
        };
        let dialect = RemoteDialect::MySql;
        let staged = dialect.staging_table(&table, 1);
        let my = dialect
            .upsert_sql(&table, &staged, &columns, &nothing)
            .expect("renders");
        assert_eq!(
            my.apply,
            [
                "INSERT INTO `s`.`t\"x` (`id`, `v`) SELECT `s`.`id`, `s`.`v` FROM `s`.`koios_staged_1` AS `s` WHERE NOT EXISTS (SELECT 1 FROM `s`.`t\"x` AS `d` WHERE `d`.`id` = `s`.`id`)"
            ]
        );
        assert_eq!(my.drop_staging, "DROP TEMPORARY TABLE `s`.`koios_staged_1`");
    }

    #[test]
    fn writes_inserts_returning_rows() {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{cast, col};
        let (table, _) = names();
        let dialect = RemoteDialect::PostgreSql;
        let staged = dialect.staging_table(&table, 3);
        let returning = [
            ("id".to_string(), col("id")),
            ("v".to_string(), cast(col("v"), DataType::Utf8)),
        ];
        let sql = dialect
            .insert_returning_sql(&table, &staged, &["v".to_string()], &returning)
            .expect("renders");
        assert_eq!(
            sql.apply,
            [
                "INSERT INTO \"s\".\"t\"\"x\" (\"v\") SELECT \"v\" FROM \"pg_temp\".\"koios_staged_3\" RETURNING \"id\" AS \"id\", CAST(\"v\" AS VARCHAR) AS \"v\""
            ]
        );
    }

    #[test]
    fn writes_changes_by_key() {
        let (table, _) = names();
        let key = ["id".to_string()];
        let update = KeyedChange::Update(vec!["v".into()]);
        let dialect = RemoteDialect::PostgreSql;
        let staged = dialect.staging_table(&table, 2);
        assert_eq!(
            dialect
                .keyed_change_sql(&table, &staged, &key, &update)
                .expect("renders")
                .apply,
            [
                "UPDATE \"s\".\"t\"\"x\" AS \"d\" SET \"v\" = \"s\".\"v\" FROM \"pg_temp\".\"koios_staged_2\" AS \"s\" WHERE \"d\".\"id\" = \"s\".\"id\""
            ]
        );
        assert_eq!(
            dialect
                .keyed_change_sql(&table, &staged, &key, &KeyedChange::Delete)
                .expect("renders")
                .apply,
            [
                "DELETE FROM \"s\".\"t\"\"x\" AS \"d\" USING \"pg_temp\".\"koios_staged_2\" AS \"s\" WHERE \"d\".\"id\" = \"s\".\"id\""
            ]
        );
        let dialect = RemoteDialect::MySql;
        let staged = dialect.staging_table(&table, 2);
        assert_eq!(
            dialect
                .keyed_change_sql(&table, &staged, &key, &KeyedChange::Delete)
                .expect("renders")
                .apply,
            [
                "DELETE `d` FROM `s`.`t\"x` AS `d` JOIN `s`.`koios_staged_2` AS `s` ON `d`.`id` = `s`.`id`"
            ]
        );
    }
}
