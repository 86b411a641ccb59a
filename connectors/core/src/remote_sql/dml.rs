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

    /// MySQL's `LOAD DATA LOCAL INFILE 'stream' INTO TABLE table …
    /// (columns)`: rows as tab-separated fields, lines ended by a newline,
    /// backslash escapes (`\N` for NULL), bytes as given (`CHARACTER SET
    /// binary`). `stream` names what the client sends, not a file.
    pub fn load_data_sql(
        self,
        table: &TableName,
        stream: &str,
        columns: &[String],
    ) -> Result<String> {
        let mut sql = Ddl::new(self);
        sql.word("LOAD DATA LOCAL INFILE ").plain_string(stream)?;
        sql.word(" INTO TABLE ").table(table);
        sql.word(" CHARACTER SET binary FIELDS TERMINATED BY ")
            .plain_string("\t")?;
        sql.word(" ESCAPED BY ").plain_string("\\")?;
        sql.word(" LINES TERMINATED BY ").plain_string("\n")?;
        sql.word(" (");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                sql.word(", ");
            }
            sql.ident(column);
        }
        sql.word(")");
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

    #[test]
    fn writes_load_data() {
        let table = TableName {
            schema: "db".into(),
            table: "t`x".into(),
        };
        assert_eq!(
            RemoteDialect::MySql
                .load_data_sql(&table, "koios_rows_1", &["a".into(), "b'c".into()])
                .expect("renders"),
            "LOAD DATA LOCAL INFILE 'koios_rows_1' INTO TABLE `db`.`t``x` CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (`a`, `b'c`)"
        );
    }
}
