//! PostgreSQL as a [`SqlBackend`]: the connection pool (TLS, session
//! settings) and the trait implementation, which hands each question to
//! the module that answers it — discovery ([`crate::catalog`]), pushdown
//! rules ([`crate::pushdown`]), reads ([`crate::scan`], [`crate::rows`]),
//! inserts ([`crate::write`]) and transaction blocks
//! ([`crate::transaction`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use koios_connector::ddl::{ColumnDefinition, SchemaChange};
use koios_connector::pgtext::StartDataRows;
use koios_connector::remote_sql::StagedStatements;
use koios_connector::transaction::RemoteTransaction;
use koios_connector::{RemoteDialect, TlsMode};
use koios_connector_sql::{
    RemoteColumn, RemoteQuery, RemoteTable, RemoteTableName, Semantics, SqlBackend,
};
use tokio_postgres::NoTls;

use crate::error::{pool_error, remote_error};
use crate::options::PgOptions;
use crate::pushdown;
use crate::statements::RepeatedStatements;
use crate::types::PgCodec;

/// One attached PostgreSQL database.
pub struct PgBackend {
    pub(crate) source: String,
    pub(crate) pool: Pool,
    /// Which texts ran before, so connections keep them prepared.
    pub(crate) statements: Arc<RepeatedStatements>,
    pub(crate) options: PgOptions,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgBackend({})", self.source)
    }
}

impl PgBackend {
    /// Builds the pool and checks that the server answers.
    pub async fn connect(source: &str, url: &str, options: PgOptions) -> Result<PgBackend> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            DataFusionError::Configuration(format!(
                "source '{source}': invalid PostgreSQL URL: {e}"
            ))
        })?;
        // Literals written by the unparser assume standard strings; results
        // are decoded from binary, so date styles do not matter.
        let mut server_options = config.get_options().unwrap_or_default().to_string();
        server_options.push_str(" -c standard_conforming_strings=on -c TimeZone=UTC");
        config.options(server_options.trim());
        if config.get_application_name().is_none() {
            config.application_name("koios");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let tls = options.sql.tls.mode.unwrap_or(match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => TlsMode::Disable,
            tokio_postgres::config::SslMode::Require => TlsMode::Require,
            _ => TlsMode::Prefer,
        });
        config.ssl_mode(crate::tls::ssl_mode(tls));
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match crate::tls::connector(source, tls, options.sql.tls.ca_file.as_deref())?
        {
            Some(tls) => Manager::from_config(config, tls, manager_config()),
            None => Manager::from_config(config, NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(options.sql.pool_size)
            // The connection used last serves next: one warm connection
            // (with its prepared statements and the server process's
            // caches) takes a stream of lookups, instead of each lookup
            // going to the one idle longest.
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(Duration::from_secs(120)))
            .build()
            .map_err(|e| DataFusionError::Configuration(format!("source '{source}': {e}")))?;
        let backend = PgBackend {
            source: source.to_string(),
            pool,
            statements: Default::default(),
            options,
        };
        drop(backend.client().await?);
        Ok(backend)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| self.error(format!("cannot connect: {}", pool_error(&e))))
    }

    pub(crate) fn error(&self, message: impl std::fmt::Display) -> DataFusionError {
        DataFusionError::Execution(format!("source '{}': {message}", self.source))
    }

    pub(crate) fn db_error(&self, what: &str, e: tokio_postgres::Error) -> DataFusionError {
        remote_error(&format!("source '{}': {what}", self.source), &e)
    }
}

#[async_trait]
impl SqlBackend for PgBackend {
    type Codec = PgCodec;

    fn source_name(&self) -> &str {
        &self.source
    }

    fn dialect(&self) -> RemoteDialect {
        RemoteDialect::PostgreSql
    }

    fn pool_status(&self) -> Option<koios_connector::PoolStatus> {
        let status = self.pool.status();
        Some(koios_connector::PoolStatus {
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
        })
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        self.list_schemas().await
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        self.list_tables(schema).await
    }

    async fn describe(&self, name: &RemoteTableName) -> Result<Option<RemoteTable<PgCodec>>> {
        self.describe_table(name, None).await
    }

    async fn describe_in(
        &self,
        name: &RemoteTableName,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<Option<RemoteTable<PgCodec>>> {
        let pinned = self.pinned(pinned)?;
        self.describe_table(name, pinned).await
    }

    fn transactional_ddl(&self) -> bool {
        true
    }

    fn filter_pushdown(
        &self,
        table: &RemoteTable<PgCodec>,
        filter: &Expr,
    ) -> TableProviderFilterPushDown {
        pushdown::filter_pushdown(table, filter)
    }

    fn select_expr(&self, column: &RemoteColumn<PgCodec>) -> Expr {
        self.column_select(column)
    }

    async fn split_predicates(
        &self,
        table: &RemoteTable<PgCodec>,
        max_partitions: usize,
    ) -> Result<Vec<Option<Expr>>> {
        self.block_splits(table, max_partitions).await
    }

    async fn row_positions(&self, table: &RemoteTable<PgCodec>) -> Result<Option<u64>> {
        self.heap_blocks(table).await
    }

    fn row_position_range(
        &self,
        table: &RemoteTable<PgCodec>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Option<Expr> {
        self.heap_range(table, from, to)
    }

    fn execute(
        &self,
        query: RemoteQuery<PgCodec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<SendableRecordBatchStream> {
        let pinned = self.pinned(pinned)?;
        self.read_query(query, sql, params, batch_size, pinned)
    }

    fn column_semantics(&self, column: &RemoteColumn<PgCodec>) -> Semantics {
        pushdown::column_semantics(column)
    }

    fn computed_semantics(&self, data_type: &DataType) -> Semantics {
        pushdown::computed_semantics(data_type)
    }

    fn like_pattern_pushable(&self, pattern: &str) -> bool {
        pushdown::like_pattern_pushable(pattern)
    }

    fn literal_pushable(&self, value: &ScalarValue) -> bool {
        pushdown::literal_pushable(value)
    }

    fn result_codec(&self, data_type: &DataType) -> Option<PgCodec> {
        pushdown::result_codec(data_type)
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        pushdown::supports_join(join_type)
    }

    fn execute_sql(
        &self,
        sql: String,
        codecs: Vec<PgCodec>,
        schema: SchemaRef,
        batch_size: usize,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<SendableRecordBatchStream> {
        let pinned = self.pinned(pinned)?;
        self.read_sql(sql, codecs, schema, batch_size, pinned)
    }

    fn execute_data_rows(
        &self,
        sql: koios_connector_sql::DeferredSql,
        params: Vec<ScalarValue>,
        codecs: Vec<PgCodec>,
        schema: &SchemaRef,
        columns: Vec<usize>,
        what: String,
    ) -> Option<StartDataRows> {
        self.data_rows(sql, params, codecs, schema, columns, what)
    }

    fn column_type_sql(&self, column: &ColumnDefinition) -> Result<String> {
        self.declared_type(column)
    }

    async fn execute_ddl(&self, change: &SchemaChange, sql: String) -> Result<()> {
        self.run_ddl(change, sql).await
    }

    async fn execute_ddl_in(
        &self,
        change: &SchemaChange,
        sql: String,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<()> {
        let pinned = self.pinned(pinned)?;
        self.run_ddl_in(change, sql, pinned).await
    }

    async fn execute_statement(
        &self,
        sql: String,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<u64> {
        let pinned = self.pinned(pinned)?;
        self.run_statement(sql, pinned).await
    }

    async fn insert(
        &self,
        table: Arc<RemoteTable<PgCodec>>,
        rows: SendableRecordBatchStream,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<u64> {
        let pinned = self.pinned(pinned)?;
        self.insert_rows(table, rows, pinned).await
    }

    async fn stage_and_apply(
        &self,
        staging: Arc<RemoteTable<PgCodec>>,
        rows: SendableRecordBatchStream,
        statements: StagedStatements,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<u64> {
        let pinned = self.pinned(pinned)?;
        self.stage_rows(staging, rows, statements, pinned).await
    }

    async fn begin(&self) -> Result<Arc<dyn RemoteTransaction>> {
        self.begin_transaction().await
    }
}
