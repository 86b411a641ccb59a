//! `DELETE` and `UPDATE` text in a backend's dialect, for a statement that
//! runs remotely as one: the table's name quoted, the `WHERE` predicate and
//! the new values written by the unparser, and the finished text re-read
//! like all remote SQL. Also the statements of an upsert: rows staged in a
//! temporary table, then moved into the table with the conflict rule
//! ([`RemoteDialect::upsert_sql`]).

use datafusion::error::Result;
use datafusion::logical_expr::Expr;

use super::RemoteDialect;
use super::ddl::Ddl;
use crate::ddl::TableName;
use crate::upsert::{ConflictAction, OnConflict, UpsertValue};

/// The statements of one upsert (see [`RemoteDialect::upsert_sql`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertStatements {
    /// Creates the staging table, empty, with the table's columns.
    pub create_staging: String,
    /// Move the staged rows; their affected-row counts add up to the
    /// upsert's count (rows inserted plus rows updated).
    pub apply: Vec<String>,
    /// Drops the staging table.
    pub drop_staging: String,
}

impl RemoteDialect {
    /// `DELETE FROM table [WHERE filter]`.
    pub fn delete_sql(self, table: &TableName, filter: Option<&Expr>) -> Result<String> {
        let mut sql = Ddl::new(self);
        sql.word("DELETE FROM ").table(table);
        where_clause(&mut sql, filter)?;
        sql.finish()
    }

    /// `UPDATE table SET column = value, … [WHERE filter]`.
    pub fn update_sql(
        self,
        table: &TableName,
        assignments: &[(String, Expr)],
        filter: Option<&Expr>,
    ) -> Result<String> {
        let mut sql = Ddl::new(self);
        sql.word("UPDATE ").table(table).word(" SET ");
        for (i, (column, value)) in assignments.iter().enumerate() {
            if i > 0 {
                sql.word(", ");
            }
            let value = sql.expression(value)?;
            sql.ident(column).word(" = ").word(&value);
        }
        where_clause(&mut sql, filter)?;
        sql.finish()
    }
}

impl RemoteDialect {
    /// An upsert of the rows staged in `staged` (a temporary table Koios
    /// names) into `table`'s `columns`. PostgreSQL: `INSERT … SELECT … ON
    /// CONFLICT`. MySQL, whose `ON DUPLICATE KEY` fires on any unique key
    /// and cannot count inserted and updated rows apart: an `UPDATE … JOIN`
    /// of the conflicting rows on exactly the target columns (for `DO
    /// UPDATE`), then an `INSERT … SELECT` of the rows with no match.
    pub fn upsert_sql(
        self,
        table: &TableName,
        staged: &TableName,
        columns: &[String],
        on_conflict: &OnConflict,
    ) -> Result<UpsertStatements> {
        let mut create = Ddl::new(self);
        let mut drop = Ddl::new(self);
        match self {
            RemoteDialect::PostgreSql => {
                create
                    .word("CREATE TEMPORARY TABLE ")
                    .ident(&staged.table)
                    .word(" (LIKE ")
                    .table(table)
                    .word(")");
                drop.word("DROP TABLE ").table(staged);
            }
            _ => {
                create
                    .word("CREATE TEMPORARY TABLE ")
                    .table(staged)
                    .word(" AS SELECT ");
                column_list(&mut create, None, columns);
                create.word(" FROM ").table(table).word(" LIMIT 0");
                drop.word("DROP TEMPORARY TABLE ").table(staged);
            }
        }
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
        Ok(UpsertStatements {
            create_staging: create.finish()?,
            apply,
            drop_staging: drop.finish()?,
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
                            let text = sql.expression(&datafusion::logical_expr::lit(v.clone()))?;
                            sql.word(&text);
                        }
                    }
                }
            }
        }
        sql.finish()
    }

    /// `UPDATE table AS d JOIN staged AS s ON d.k = s.k … SET d.c = s.c …`.
    fn update_joined(
        self,
        table: &TableName,
        staged: &TableName,
        target: &[String],
        assignments: &[(String, UpsertValue)],
    ) -> Result<String> {
        let mut sql = Ddl::new(self);
        sql.word("UPDATE ")
            .table(table)
            .word(" AS ")
            .ident("d")
            .word(" JOIN ");
        sql.table(staged).word(" AS ").ident("s").word(" ON ");
        key_match(&mut sql, target);
        sql.word(" SET ");
        for (i, (column, value)) in assignments.iter().enumerate() {
            if i > 0 {
                sql.word(", ");
            }
            sql.ident("d").word(".").ident(column).word(" = ");
            match value {
                UpsertValue::Proposed(from) => {
                    sql.ident("s").word(".").ident(from);
                }
                UpsertValue::Constant(v) => {
                    let text = sql.expression(&datafusion::logical_expr::lit(v.clone()))?;
                    sql.word(&text);
                }
            }
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
        target: &[String],
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
        key_match(&mut sql, target);
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
fn key_match(sql: &mut Ddl, target: &[String]) {
    for (i, column) in target.iter().enumerate() {
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

fn where_clause(sql: &mut Ddl, filter: Option<&Expr>) -> Result<()> {
    if let Some(filter) = filter {
        let text = sql.expression(filter)?;
        sql.word(" WHERE ").word(&text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn writes_deletes_and_updates() {
        let table = TableName {
            schema: "public".into(),
            table: "it's".into(),
        };
        let filter = col("id").eq(lit(3)).and(col("label").eq(lit("a'b")));
        assert_eq!(
            RemoteDialect::PostgreSql
                .delete_sql(&table, Some(&filter))
                .expect("renders"),
            "DELETE FROM \"public\".\"it's\" WHERE ((\"id\" = 3) AND (\"label\" = 'a''b'))"
        );
        assert_eq!(
            RemoteDialect::MySql
                .update_sql(&table, &[("label".into(), lit("x\\y"))], None)
                .expect("renders"),
            "UPDATE `public`.`it's` SET `label` = _utf8mb4 X'785C79'"
        );
    }

    #[test]
    fn writes_upserts() {
        let table = TableName {
            schema: "s".into(),
            table: "t\"x".into(),
        };
        let staged = TableName {
            schema: "pg_temp".into(),
            table: "koios_upsert_1".into(),
        };
        let columns = ["id".to_string(), "v".to_string()];
        let on_conflict = OnConflict {
            target: vec!["id".into()],
            action: ConflictAction::Update(vec![("v".into(), UpsertValue::Proposed("v".into()))]),
        };
        let pg = RemoteDialect::PostgreSql
            .upsert_sql(&table, &staged, &columns, &on_conflict)
            .expect("renders");
        assert_eq!(
            pg.create_staging,
            "CREATE TEMPORARY TABLE \"koios_upsert_1\" (LIKE \"s\".\"t\"\"x\")"
        );
        assert_eq!(
            pg.apply,
            [
                "INSERT INTO \"s\".\"t\"\"x\" (\"id\", \"v\") SELECT \"id\", \"v\" FROM \"pg_temp\".\"koios_upsert_1\" ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""
            ]
        );
        let staged = TableName {
            schema: "s".into(),
            table: "koios_upsert_1".into(),
        };
        let nothing = OnConflict {
            target: vec!["id".into()],
            action: ConflictAction::Nothing,
        };
        let my = RemoteDialect::MySql
            .upsert_sql(&table, &staged, &columns, &nothing)
            .expect("renders");
        assert_eq!(
            my.apply,
            [
                "INSERT INTO `s`.`t\"x` (`id`, `v`) SELECT `s`.`id`, `s`.`v` FROM `s`.`koios_upsert_1` AS `s` WHERE NOT EXISTS (SELECT 1 FROM `s`.`t\"x` AS `d` WHERE `d`.`id` = `s`.`id`)"
            ]
        );
        assert_eq!(my.drop_staging, "DROP TEMPORARY TABLE `s`.`koios_upsert_1`");
    }
}
