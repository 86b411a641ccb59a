//! What a SQL backend provides to the shared layer.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use koios_connector::RemoteDialect;
use koios_connector::ddl::{ColumnDefinition, SchemaChange};
use koios_connector::pgtext::StartDataRows;
use koios_connector::remote_sql::StagedStatements;
use koios_connector::transaction::RemoteTransaction;

use crate::query::RemoteQuery;
use crate::remote::{RemoteColumn, RemoteTable, RemoteTableName, Semantics};

/// The remote transaction a statement reaching a backend runs in, if any
/// (see [`crate::pinned`]).
pub type Pinned = Option<Arc<dyn RemoteTransaction>>;

/// A SQL server Koios reads from and writes to.
/// The SQL of a query served as data rows, made when its rows start: for
/// a backend that takes no statement parameters, writing an execution's
/// values into the SQL unparses the query, which a starter readied and
/// never used (a mirrored read's fallback copies) should not pay.
pub type DeferredSql = Box<dyn FnOnce() -> Result<String> + Send>;

#[async_trait]
pub trait SqlBackend: Debug + Send + Sync + 'static {
    /// Per-column information the backend keeps (type codes, collation …).
    type Codec: Clone + Debug + Send + Sync + 'static;

    /// The Koios source name, used in every message.
    fn source_name(&self) -> &str;

    /// The dialect remote SQL is written in: how the unparser writes it and
    /// how values and identifiers are quoted in it.
    fn dialect(&self) -> RemoteDialect;

    /// Whether a remote query can carry a statement's parameters, bound
    /// at each execution; a backend that cannot (MySQL's reads here) gets
    /// the values written into the query, through its dialect's escaping,
    /// each time it runs.
    fn binds_parameters(&self) -> bool {
        true
    }

    /// Schemas to expose.
    async fn schema_names(&self) -> Result<Vec<String>>;

    /// Tables and views of one schema.
    async fn table_names(&self, schema: &str) -> Result<Vec<String>>;

    /// Columns, types and statistics of a table; `None` if it does not exist.
    async fn describe(&self, name: &RemoteTableName) -> Result<Option<RemoteTable<Self::Codec>>>;

    /// Whether the server evaluates `filter` exactly as DataFusion would.
    fn filter_pushdown(
        &self,
        table: &RemoteTable<Self::Codec>,
        filter: &Expr,
    ) -> TableProviderFilterPushDown;

    /// The expression selecting a column (a cast for columns read as text).
    fn select_expr(&self, column: &RemoteColumn<Self::Codec>) -> Expr {
        Expr::Column(datafusion::common::Column::new_unqualified(&column.name))
    }

    /// Predicates splitting a scan into disjoint partitions whose union is
    /// the whole table (at most `max_partitions`, the session's parallelism,
    /// unless the source fixes a count); one `None` means "do not split".
    async fn split_predicates(
        &self,
        table: &RemoteTable<Self::Codec>,
        max_partitions: usize,
    ) -> Result<Vec<Option<Expr>>>;

    /// How many positions of the server's physical row order `table` spans
    /// now (PostgreSQL: heap blocks, read by `ctid`), for copying a table
    /// without a key in chunks; `None` when the server has no such order.
    async fn row_positions(&self, _table: &RemoteTable<Self::Codec>) -> Result<Option<u64>> {
        Ok(None)
    }

    /// The predicate reading `table`'s rows at positions `from <= p < to`
    /// (an open end where `None`); `None` when the server has no physical
    /// row order.
    fn row_position_range(
        &self,
        _table: &RemoteTable<Self::Codec>,
        _from: Option<i64>,
        _to: Option<i64>,
    ) -> Option<Expr> {
        None
    }

    /// Runs a query, streaming batches of `query.output_schema()`. `sql` is
    /// `query` rendered in this backend's dialect (the scan renders it once,
    /// when planned, not on every run); `params` are the values of its
    /// `$1`, `$2`, … (empty unless [`ExactColumns::parameter_safety`]
    /// pushed a comparison with a statement parameter).
    ///
    /// `pinned`: the session's open transaction on this source, to read
    /// through (see [`crate::pinned`]); `None` reads on a pooled connection.
    ///
    /// [`ExactColumns::parameter_safety`]: crate::pushdown::ExactColumns::parameter_safety
    fn execute(
        &self,
        query: RemoteQuery<Self::Codec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
        pinned: Pinned,
    ) -> Result<SendableRecordBatchStream>;

    /// Runs `sql` (made when the rows start: see [`DeferredSql`]; with
    /// `params`) as [`SqlBackend::execute`] does, but writes
    /// each result row straight into what Koios sends a client, one
    /// `DataRow` body per row in the client's formats
    /// ([`koios_connector::pgtext::DataRowStream`]), instead of decoding it
    /// into Arrow batches: for a plan that is this one query. Nothing runs
    /// until the returned starter is called. `codecs` read the result columns (named by
    /// `schema`'s fields in errors); `columns` are the result columns to
    /// write, in order (a projection above may reorder or repeat them);
    /// `what` says what the query does, for messages. `None` when some
    /// column cannot be written so, or the backend does not write text
    /// rows: the caller runs the plan instead.
    fn execute_data_rows(
        &self,
        _sql: DeferredSql,
        _params: Vec<ScalarValue>,
        _codecs: Vec<Self::Codec>,
        _schema: &SchemaRef,
        _columns: Vec<usize>,
        _what: String,
    ) -> Option<StartDataRows> {
        None
    }

    /// Appends rows in one transaction (`pinned`'s, when a session's block
    /// has one open on this source); returns the row count.
    async fn insert(
        &self,
        table: Arc<RemoteTable<Self::Codec>>,
        rows: SendableRecordBatchStream,
        pinned: Pinned,
    ) -> Result<u64>;

    /// Runs a staged change ([`crate::staged`]) in one transaction
    /// (`pinned`'s, when a session's block has one open on this source,
    /// else one of its own): creates the staging table, fills it with
    /// `rows` (in `staging`'s columns) through the bulk path, runs the
    /// statements that apply it, drops it. Returns the summed counts of
    /// the applying statements.
    async fn stage_and_apply(
        &self,
        _staging: Arc<RemoteTable<Self::Codec>>,
        _rows: SendableRecordBatchStream,
        _statements: StagedStatements,
        _pinned: Pinned,
    ) -> Result<u64> {
        koios_connector::sql_err!(
            koios_connector::sqlstate::codes::FEATURE_NOT_SUPPORTED,
            "source '{}' does not stage rows",
            self.source_name()
        )
    }

    /// Opens a transaction on a connection of its own for a session's
    /// transaction block ([`koios_connector::transaction`]).
    async fn begin(&self) -> Result<Arc<dyn RemoteTransaction>> {
        Err(koios_connector::transaction::no_transactions(
            self.source_name(),
            "this backend",
        ))
    }

    /// The type this backend keeps a column of type `ty` as when a table
    /// is made from another backend's columns (its `ddl.rs`; see
    /// `Source::storable_type`).
    fn storable_type(
        &self,
        ty: &koios_connector::ddl::ColumnType,
    ) -> koios_connector::ddl::ColumnType {
        ty.clone()
    }

    /// The backend's type for a declared column (its `ddl.rs`); refuses,
    /// naming the column, a type the backend cannot hold.
    fn column_type_sql(&self, column: &ColumnDefinition) -> Result<String> {
        koios_connector::sql_err!(
            koios_connector::sqlstate::codes::FEATURE_NOT_SUPPORTED,
            "source '{}' cannot create column \"{}\": it does not declare tables",
            self.source_name(),
            column.name
        )
    }

    /// Whether the server's DDL is transactional (PostgreSQL's), so a
    /// table can be created and filled in one remote transaction.
    fn transactional_ddl(&self) -> bool {
        false
    }

    /// [`SqlBackend::describe`] as `pinned`'s transaction sees the table
    /// (one it created and has not committed).
    async fn describe_in(
        &self,
        name: &RemoteTableName,
        _pinned: Pinned,
    ) -> Result<Option<RemoteTable<Self::Codec>>> {
        self.describe(name).await
    }

    /// Runs one DDL statement Koios wrote for `change` inside `pinned`'s
    /// transaction (a backend with [`SqlBackend::transactional_ddl`]).
    async fn execute_ddl_in(
        &self,
        change: &SchemaChange,
        _sql: String,
        _pinned: Pinned,
    ) -> Result<()> {
        Err(koios_connector::contract::read_only(change))
    }

    /// Runs one DDL statement Koios wrote for `change`
    /// ([`RemoteDialect::schema_change_sql`]).
    async fn execute_ddl(&self, change: &SchemaChange, _sql: String) -> Result<()> {
        Err(koios_connector::contract::read_only(change))
    }

    /// Runs one `DELETE` or `UPDATE` Koios wrote (see [`crate::dml`]) on a
    /// pooled connection, or in `pinned`; returns the rows it matched.
    async fn execute_statement(&self, _sql: String, _pinned: Pinned) -> Result<u64> {
        koios_connector::sql_err!(
            koios_connector::sqlstate::codes::FEATURE_NOT_SUPPORTED,
            "source '{}' does not change rows by statement",
            self.source_name()
        )
    }

    /// Drops pooled connections so the next use reconnects (after refresh).
    fn reset(&self) {}

    /// Connections of the backend's pool now (see `Source::pool_status`).
    fn pool_status(&self) -> Option<koios_connector::PoolStatus> {
        None
    }

    // --- Whole-subplan pushdown (see `subplan`). The defaults push nothing.

    /// How the server compares values of `column`.
    fn column_semantics(&self, _column: &RemoteColumn<Self::Codec>) -> Semantics {
        Semantics::NONE
    }

    /// How the server compares values it computed, of `data_type`.
    fn computed_semantics(&self, _data_type: &DataType) -> Semantics {
        Semantics::NONE
    }

    /// Whether `value` can be written into remote SQL and mean the same there.
    fn literal_pushable(&self, _value: &ScalarValue) -> bool {
        false
    }

    /// Whether the server reads `pattern` as a LIKE pattern exactly as
    /// DataFusion does (`%`, `_`, and `\` escaping the next character).
    fn like_pattern_pushable(&self, _pattern: &str) -> bool {
        false
    }

    /// The codec reading a computed result column that the remote query
    /// casts to `data_type`; `None` if such values cannot be read back exactly.
    fn result_codec(&self, _data_type: &DataType) -> Option<Self::Codec> {
        None
    }

    /// Whether the dialect has this join.
    fn supports_join(&self, _join_type: JoinType) -> bool {
        false
    }

    /// Runs any query whose result columns are read by `codecs`, streaming
    /// batches of `schema` (through `pinned`, as [`SqlBackend::execute`]).
    fn execute_sql(
        &self,
        _sql: String,
        _codecs: Vec<Self::Codec>,
        _schema: SchemaRef,
        _batch_size: usize,
        _pinned: Pinned,
    ) -> Result<SendableRecordBatchStream> {
        Err(datafusion::error::DataFusionError::NotImplemented(format!(
            "source '{}' cannot run pushed-down queries",
            self.source_name()
        )))
    }
}

/// Shorthand for a pushdown decision.
pub fn unsupported() -> TableProviderFilterPushDown {
    TableProviderFilterPushDown::Unsupported
}
