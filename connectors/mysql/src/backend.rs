//! MySQL/MariaDB as a [`SqlBackend`]: the connection pool (TLS, session
//! settings) and the trait implementation, which hands each question to
//! the module that answers it — discovery ([`crate::catalog`]), pushdown
//! rules ([`crate::pushdown`]), reads ([`crate::scan`], and `rows` for
//! rows written straight for a client), inserts
//! ([`crate::write`]) and transaction blocks ([`crate::transaction`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::*;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use koios_connector::ddl::{ColumnDefinition, ColumnType, SchemaChange};
use koios_connector::pgtext::StartDataRows;
use koios_connector::remote_sql::StagedStatements;
use koios_connector::transaction::RemoteTransaction;
use koios_connector::{RemoteDialect, TlsMode};
use koios_connector_sql::{
    RemoteColumn, RemoteQuery, RemoteTable, RemoteTableName, Semantics, SqlBackend,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use crate::error::remote_error;
use crate::load::InfileStreams;
use crate::options::MyOptions;
use crate::pushdown;
use crate::types::MyCodec;

/// How long an idle pooled connection is kept before it is closed.
const IDLE_CONNECTION_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// One attached MySQL or MariaDB server.
pub struct MyBackend {
    pub(crate) source: String,
    pub(crate) pool: Pool,
    /// The pool's connection options, for the separate connection that
    /// sends a KILL (the pool may have no connection to spare).
    pub(crate) opts: Opts,
    pub(crate) url_database: Option<String>,
    pub(crate) options: MyOptions,
    /// The collation text columns Koios creates get (see `ddl.rs`).
    pub(crate) text_collation: &'static str,
    /// Row streams `LOAD DATA LOCAL INFILE` statements wait to send
    /// (see `load.rs`); the pool's handler serves only these.
    pub(crate) infile: Arc<InfileStreams>,
    /// Whether the server takes `LOAD DATA LOCAL` (its `local_infile`).
    pub(crate) load_data: bool,
}

impl std::fmt::Debug for MyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MyBackend({})", self.source)
    }
}

/// Why a pool could not be opened: the server lacks TLS (which `prefer`
/// tolerates), or anything else.
enum OpenError {
    NoTlsOnServer,
    Other(DataFusionError),
}
use OpenError::{NoTlsOnServer, Other};

/// mysql_async's TLS settings for `mode` (never called for `disable`).
fn ssl_opts(mode: TlsMode, ca_file: Option<&str>) -> Option<SslOpts> {
    match mode {
        TlsMode::Disable => None,
        TlsMode::Prefer | TlsMode::Require => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        TlsMode::VerifyFull => Some(match ca_file {
            Some(path) => SslOpts::default()
                .with_root_certs(vec![std::path::PathBuf::from(path).into()])
                .with_disable_built_in_roots(true),
            None => SslOpts::default(),
        }),
    }
}

impl MyBackend {
    pub async fn connect(source: &str, url: &str, options: MyOptions) -> Result<MyBackend> {
        let opts = Opts::from_url(url).map_err(|e| {
            // The URL error may quote the URL; say only what kind of error it is.
            let kind = match e {
                mysql_async::UrlError::Parse(_) => "the URL does not parse".to_string(),
                mysql_async::UrlError::UnsupportedScheme { .. } => {
                    "the URL must start with mysql://".to_string()
                }
                other => format!("{:?}", std::mem::discriminant(&other)),
            };
            DataFusionError::Configuration(format!("source '{source}': invalid MySQL URL: {kind}"))
        })?;
        let url_database = opts.db_name().map(str::to_string);
        let url_has_tls = opts.ssl_opts().is_some();
        let constraints = PoolConstraints::new(0, options.sql.pool_size).unwrap_or_default();
        let infile = Arc::new(InfileStreams::default());
        let base = OptsBuilder::from_opts(opts)
            .local_infile_handler(Some(infile.handler()))
            // Idle connections stay pooled (up to pool_size) for a while:
            // with mysql_async's default TTL of zero its pool keeps only
            // `min` (here 0) idle, so every statement would open, set up
            // and close a connection of its own.
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_inactive_connection_ttl(IDLE_CONNECTION_TTL),
            )
            // UPDATE counts the rows it matched, as PostgreSQL does.
            .client_found_rows(true)
            // Literals written by the unparser must mean the same whatever the
            // server's sql_mode: backslashes are ordinary characters, times UTC.
            .setup(vec![
                "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES')",
                "SET SESSION time_zone = '+00:00'",
                "SET NAMES utf8mb4",
            ]);
        let mode = match options.sql.tls.mode {
            Some(mode) => mode,
            // The URL's own TLS parameters (`require_ssl=true`, …) stand.
            None if url_has_tls => TlsMode::Require,
            None => TlsMode::Prefer,
        };
        let with_tls = if url_has_tls && options.sql.tls.mode.is_none() {
            base.clone()
        } else {
            // Over TCP, or the driver would move local connections to the
            // (unencrypted) Unix socket.
            base.clone()
                .prefer_socket(false)
                .ssl_opts(ssl_opts(mode, options.sql.tls.ca_file.as_deref()))
        };
        let opened = match mode {
            TlsMode::Disable => Self::open(source, base, url_database, options, infile).await,
            _ => match Self::open(
                source,
                with_tls,
                url_database.clone(),
                options.clone(),
                Arc::clone(&infile),
            )
            .await
            {
                // `prefer`: a server without TLS is spoken to in plain text.
                Err(NoTlsOnServer) if mode == TlsMode::Prefer => {
                    Self::open(source, base, url_database, options, infile).await
                }
                other => other,
            },
        };
        opened.map_err(|e| match e {
            Other(e) => e,
            NoTlsOnServer => koios_connector::RemoteError {
                sqlstate: Some("08001".into()),
                message: format!(
                    "source '{source}': cannot connect: the server does not offer TLS, which the source's tls setting demands"
                ),
            }
            .into_datafusion(),
        })
    }

    /// A pool for `opts`, checked by taking one connection.
    async fn open(
        source: &str,
        opts: OptsBuilder,
        url_database: Option<String>,
        options: MyOptions,
        infile: Arc<InfileStreams>,
    ) -> std::result::Result<MyBackend, OpenError> {
        let opts = Opts::from(opts);
        let mut backend = MyBackend {
            source: source.to_string(),
            pool: Pool::new(opts.clone()),
            opts,
            url_database,
            options,
            text_collation: crate::types::FALLBACK_COLLATION,
            infile,
            load_data: false,
        };
        match backend.pool.get_conn().await {
            Ok(mut conn) => {
                // Literals are quoted for these modes (see RemoteDialect::MySql):
                // a server or proxy that does not keep them gets no SQL.
                let mode: Option<String> = conn
                    .query_first("SELECT @@SESSION.sql_mode")
                    .await
                    .map_err(|e| {
                        OpenError::Other(remote_error(
                            &format!("source '{source}': reading sql_mode"),
                            &e,
                        ))
                    })?;
                let mode = mode.unwrap_or_default();
                let has = |m: &str| mode.split(',').any(|x| x.eq_ignore_ascii_case(m));
                if !has("NO_BACKSLASH_ESCAPES") || !has("ANSI_QUOTES") {
                    return Err(OpenError::Other(DataFusionError::Configuration(format!(
                        "source '{source}': the server did not keep sql_mode NO_BACKSLASH_ESCAPES and ANSI_QUOTES for Koios's sessions (it has '{mode}'); Koios quotes values for those modes"
                    ))));
                }
                backend.text_collation = backend
                    .exact_text_collation(&mut conn)
                    .await
                    .map_err(OpenError::Other)?;
                // MySQL 8 ships with it off; then bulk rows go as INSERTs.
                let local_infile: Option<i64> = conn
                    .query_first("SELECT @@GLOBAL.local_infile")
                    .await
                    .unwrap_or(None);
                backend.load_data = local_infile == Some(1);
                drop(conn);
                Ok(backend)
            }
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) => Err(OpenError::NoTlsOnServer),
            Err(e) => Err(OpenError::Other(remote_error(
                &format!("source '{source}': cannot connect"),
                &e,
            ))),
        }
    }

    pub(crate) async fn conn(&self) -> Result<mysql_async::Conn> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| remote_error(&format!("source '{}': cannot connect", self.source), &e))
    }

    pub(crate) fn context(&self, what: &str) -> String {
        format!("source '{}': {what}", self.source)
    }
}

#[async_trait]
impl SqlBackend for MyBackend {
    type Codec = MyCodec;

    fn source_name(&self) -> &str {
        &self.source
    }

    fn dialect(&self) -> RemoteDialect {
        RemoteDialect::MySql
    }

    fn binds_parameters(&self) -> bool {
        // Reads run as prepared statements without parameters: a
        // parameter's value is written into the query, escaped.
        false
    }

    fn pool_status(&self) -> Option<koios_connector::PoolStatus> {
        // The pool's own gauges (atomics): connections checked out, and
        // those waiting in the pool.
        let metrics = self.pool.metrics();
        let load = |gauge: &std::sync::atomic::AtomicUsize| {
            gauge.load(std::sync::atomic::Ordering::Relaxed)
        };
        Some(koios_connector::PoolStatus {
            in_use: load(&metrics.connections_in_use),
            idle: load(&metrics.connections_in_pool),
        })
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        self.list_schemas().await
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        self.list_tables(schema).await
    }

    async fn describe(&self, name: &RemoteTableName) -> Result<Option<RemoteTable<MyCodec>>> {
        self.describe_table(name).await
    }

    fn filter_pushdown(
        &self,
        table: &RemoteTable<MyCodec>,
        filter: &Expr,
    ) -> TableProviderFilterPushDown {
        pushdown::filter_pushdown(table, filter)
    }

    fn select_expr(&self, column: &RemoteColumn<MyCodec>) -> Expr {
        self.column_select(column)
    }

    async fn split_predicates(
        &self,
        table: &RemoteTable<MyCodec>,
        max_partitions: usize,
    ) -> Result<Vec<Option<Expr>>> {
        self.range_splits(table, max_partitions).await
    }

    fn execute(
        &self,
        query: RemoteQuery<MyCodec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<SendableRecordBatchStream> {
        let pinned = self.pinned(pinned)?;
        self.read_query(query, sql, params, batch_size, pinned)
    }

    fn execute_data_rows(
        &self,
        sql: koios_connector_sql::DeferredSql,
        params: Vec<ScalarValue>,
        codecs: Vec<MyCodec>,
        schema: &SchemaRef,
        columns: Vec<usize>,
        what: String,
    ) -> Option<StartDataRows> {
        self.data_rows(sql, params, codecs, schema, columns, what)
    }

    fn column_semantics(&self, column: &RemoteColumn<MyCodec>) -> Semantics {
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

    fn result_codec(&self, data_type: &DataType) -> Option<MyCodec> {
        pushdown::result_codec(data_type)
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        pushdown::supports_join(join_type)
    }

    fn execute_sql(
        &self,
        sql: String,
        codecs: Vec<MyCodec>,
        schema: SchemaRef,
        batch_size: usize,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<SendableRecordBatchStream> {
        let pinned = self.pinned(pinned)?;
        self.read_sql(sql, codecs, schema, batch_size, pinned)
    }

    fn column_type_sql(&self, column: &ColumnDefinition) -> Result<String> {
        self.declared_type(column)
    }

    fn storable_type(&self, ty: &ColumnType) -> ColumnType {
        crate::types::storable_type(ty)
    }

    async fn execute_ddl(&self, change: &SchemaChange, sql: String) -> Result<()> {
        self.run_ddl(change, sql).await
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
        table: Arc<RemoteTable<MyCodec>>,
        rows: SendableRecordBatchStream,
        pinned: Option<Arc<dyn RemoteTransaction>>,
    ) -> Result<u64> {
        let pinned = self.pinned(pinned)?;
        self.insert_rows(table, rows, pinned).await
    }

    async fn stage_and_apply(
        &self,
        staging: Arc<RemoteTable<MyCodec>>,
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
