//! An `INSERT` Koios plans itself rather than through DataFusion's sink: one
//! naming only some of the table's columns, so the backend fills the others
//! with defaults it computes (a `serial` or `AUTO_INCREMENT` key, `now()`),
//! and one with `RETURNING`, which hands back the rows as the backend stored
//! them. The engine reads it from the statement; a connector that can carry
//! it out plans it ([`crate::Connector::plan_insert`]).

/// An insert of the input's rows into some of a table's columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct ColumnInsert {
    /// The columns written, in the input's order; the backend gives the
    /// table's other columns their defaults.
    pub columns: Vec<String>,
    /// Whether the plan's output is the inserted rows (every column of the
    /// table, in its order, as stored) instead of one `count` row.
    pub returning: bool,
}

impl ColumnInsert {
    /// The insert as `EXPLAIN` shows it.
    pub fn describe(&self) -> String {
        let returning = if self.returning { " RETURNING *" } else { "" };
        format!("INSERT ({}){returning}", self.columns.join(", "))
    }
}
