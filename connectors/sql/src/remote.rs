//! What Koios knows of a remote table: its name, its columns with the
//! backend's codec for each, its key and size, and how the server compares
//! values (which decides what may run there).

use datafusion::arrow::datatypes::{Field, FieldRef, SchemaRef};

/// `schema.table` on the remote server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteTableName {
    pub schema: String,
    pub table: String,
}

impl std::fmt::Display for RemoteTableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// One exposed column: its Arrow field and how the backend reads it.
#[derive(Debug, Clone)]
pub struct RemoteColumn<C> {
    pub name: String,
    /// The remote type as the server spells it (`numeric(15,2)`), for messages.
    pub remote_type: String,
    pub field: FieldRef,
    /// Backend-specific knowledge needed to decode and to push filters.
    pub codec: C,
    /// The server's default for the column, if it is a constant (see
    /// [`crate::defaults`]).
    pub default: Option<datafusion::common::ScalarValue>,
    /// Whether the server computes the column's value when an insert omits
    /// it and Koios cannot (a sequence, identity, `AUTO_INCREMENT` or
    /// generated column, a default such as `now()`).
    pub server_default: bool,
}

/// A remote table or view as Koios exposes it.
#[derive(Debug, Clone)]
pub struct RemoteTable<C> {
    pub source: String,
    pub name: RemoteTableName,
    pub columns: Vec<RemoteColumn<C>>,
    /// Arrow schema of `columns`, in order.
    pub schema: SchemaRef,
    /// Columns that exist remotely but are not exposed (PostgreSQL's `ctid`),
    /// usable in split predicates.
    pub pseudo_columns: Vec<Field>,
    /// The server's row estimate, if it keeps one.
    pub row_estimate: Option<u64>,
    /// A single-column integer primary key, usable for range splits.
    pub split_column: Option<String>,
    /// The primary key's columns (empty if none): which joins are keyed.
    pub primary_key: Vec<String>,
    pub is_view: bool,
}

impl<C> RemoteTable<C> {
    pub fn column(&self, name: &str) -> Option<&RemoteColumn<C>> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl<C: Clone> RemoteTable<C> {
    /// The table as a write of only `columns` (in that order) sees it, named
    /// `name`: what the bulk path writes when an insert leaves the other
    /// columns to the server, or rows are staged. `Err` names a column the
    /// table does not have.
    pub fn with_columns(
        &self,
        name: RemoteTableName,
        columns: &[String],
    ) -> std::result::Result<RemoteTable<C>, String> {
        let picked = columns
            .iter()
            .map(|wanted| self.column(wanted).cloned().ok_or_else(|| wanted.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(
            picked
                .iter()
                .map(|c| std::sync::Arc::clone(&c.field))
                .collect::<Vec<_>>(),
        ));
        Ok(RemoteTable {
            source: self.source.clone(),
            name,
            columns: picked,
            schema,
            pseudo_columns: Vec::new(),
            row_estimate: None,
            split_column: None,
            primary_key: Vec::new(),
            is_view: self.is_view,
        })
    }
}

/// Which comparisons the server makes on some values exactly as DataFusion
/// does (byte-wise strings, SQL NULLs, no float NaN/-0 rules): what decides
/// whether a join key, a GROUP BY, a DISTINCT, an ORDER BY or a min/max can
/// run remotely.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Semantics {
    /// `=`, joins, grouping, DISTINCT.
    pub equality: bool,
    /// `<`, ORDER BY, min/max.
    pub ordering: bool,
}

impl Semantics {
    pub const EXACT: Semantics = Semantics {
        equality: true,
        ordering: true,
    };
    pub const NONE: Semantics = Semantics {
        equality: false,
        ordering: false,
    };
}
