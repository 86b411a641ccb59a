//! `DELETE` and `UPDATE` text in a backend's dialect, for a statement that
//! runs remotely as one: the table's name quoted, the `WHERE` predicate and
//! the new values written by the unparser, and the finished text re-read
//! like all remote SQL. (Statements over rows Koios stages first are in
//! `staged.rs`.)

use datafusion::error::Result;
use datafusion::logical_expr::Expr;

use super::RemoteDialect;
use super::ddl::Ddl;
use crate::ddl::TableName;

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
}
