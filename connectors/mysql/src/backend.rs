//! MySQL/MariaDB as a [`SqlBackend`]: discovery from `information_schema`,
//! pushdown that respects MySQL's collations, streaming binary-protocol
//! scans, and inserts as parameterised multi-row statements.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::*;
use datafusion::common::{Column, JoinType, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, cast, col, lit};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use futures::StreamExt;
use koios_connector::{RemoteDialect, TlsMode};
use koios_connector_sql::pushdown::{Comparison, ExactColumns, Safety, classify};
use koios_connector_sql::{
    RemoteColumn, RemoteQuery, RemoteTable, RemoteTableName, Semantics, SqlBackend,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, SslOpts, Value};

use crate::options::MyOptions;
use crate::types::{ColumnBuilder, MyCodec};

/// Databases that hold the server's own metadata.
const SYSTEM_DATABASES: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

/// One attached MySQL or MariaDB server.
pub struct MyBackend {
    source: String,
    pool: Pool,
    /// The pool's connection options, for the separate connection that
    /// sends a KILL (the pool may have no connection to spare).
    opts: Opts,
    url_database: Option<String>,
    options: MyOptions,
}

impl std::fmt::Debug for MyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MyBackend({})", self.source)
    }
}

/// A MySQL error as a Koios error, keeping the server's SQLSTATE.
fn remote_error(context: &str, e: &mysql_async::Error) -> DataFusionError {
    let (sqlstate, message) = match e {
        mysql_async::Error::Server(server) => (
            Some(server.state.clone()),
            format!("MySQL said: {}", server.message),
        ),
        other => (None, other.to_string()),
    };
    koios_connector::RemoteError {
        sqlstate,
        message: format!("{context}: {message}"),
    }
    .into_datafusion()
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
        let base = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_constraints(constraints))
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
            TlsMode::Disable => Self::open(source, base, url_database, options).await,
            _ => match Self::open(source, with_tls, url_database.clone(), options.clone()).await {
                // `prefer`: a server without TLS is spoken to in plain text.
                Err(NoTlsOnServer) if mode == TlsMode::Prefer => {
                    Self::open(source, base, url_database, options).await
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
    ) -> std::result::Result<MyBackend, OpenError> {
        let opts = Opts::from(opts);
        let backend = MyBackend {
            source: source.to_string(),
            pool: Pool::new(opts.clone()),
            opts,
            url_database,
            options,
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

    async fn conn(&self) -> Result<mysql_async::Conn> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| remote_error(&format!("source '{}': cannot connect", self.source), &e))
    }

    fn context(&self, what: &str) -> String {
        format!("source '{}': {what}", self.source)
    }
}

/// MySQL's LIKE has no escape character under NO_BACKSLASH_ESCAPES, where
/// DataFusion's escapes with `\`: patterns with one stay local.
fn like_pattern_pushable(pattern: &str) -> bool {
    !pattern.contains('\\')
}

/// Pushdown rules per column.
struct MyColumns<'a>(&'a RemoteTable<MyCodec>);

impl ExactColumns for MyColumns<'_> {
    fn safety(
        &self,
        column: &str,
        comparison: Comparison,
        literal: Option<&ScalarValue>,
    ) -> Safety {
        let Some(column) = self.0.column(column) else {
            return Safety::No;
        };
        if comparison == Comparison::NullTest || literal.is_some_and(|l| l.is_null()) {
            return Safety::Exact;
        }
        match &column.codec {
            MyCodec::Int { .. } | MyCodec::Decimal { .. } | MyCodec::Year | MyCodec::Date => {
                (comparison != Comparison::Like).into()
            }
            MyCodec::DateTime => (comparison != Comparison::Like
                && literal.is_some_and(|l| !matches!(l, ScalarValue::TimestampNanosecond(Some(ns), _) if ns % 1000 != 0)))
            .into(),
            MyCodec::Text { .. } => {
                let Some(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text))) =
                    literal
                else {
                    return Safety::No;
                };
                // NULs are never sent; nor are LIKE patterns with a
                // backslash, which is no escape under NO_BACKSLASH_ESCAPES.
                if text.contains('\0') || (comparison == Comparison::Like && !like_pattern_pushable(text)) {
                    return Safety::No;
                }
                match comparison {
                    // Every collation treats byte-equal strings as equal, and
                    // more (case, accents, trailing spaces): a superset.
                    Comparison::Equality | Comparison::Like => Safety::Superset,
                    Comparison::Ordering | Comparison::NullTest => Safety::No,
                }
            }
            // Floats: NaN/-0 rules; bit, JSON, enums and sets compare by other
            // rules; timestamps convert through the session zone.
            _ => Safety::No,
        }
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

    async fn schema_names(&self) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        let all: Vec<String> = conn
            .exec(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1",
                (),
            )
            .await
            .map_err(|e| remote_error(&self.context("listing databases"), &e))?;
        Ok(koios_connector::catalog::exposed_databases(
            all,
            self.options.databases.as_deref(),
            self.url_database.as_deref(),
            SYSTEM_DATABASES,
        ))
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        let mut conn = self.conn().await?;
        conn.exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1",
            (schema,),
        )
        .await
        .map_err(|e| remote_error(&self.context("listing tables"), &e))
    }

    async fn describe(&self, name: &RemoteTableName) -> Result<Option<RemoteTable<MyCodec>>> {
        let mut conn = self.conn().await?;
        let context = self.context(&format!("describing {name}"));
        let table: Option<(String, Option<u64>)> = conn
            .exec_first(
                "SELECT TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&name.schema, &name.table),
            )
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let Some((table_type, rows)) = table else {
            return Ok(None);
        };
        type ColumnRow = (
            String,
            String,
            String,
            Option<u64>,
            Option<u64>,
            Option<String>,
            String,
        );
        let described: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, COLLATION_NAME, IS_NULLABLE \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&name.schema, &name.table),
            )
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let mut columns = Vec::with_capacity(described.len());
        for (column, data_type, column_type, precision, scale, collation, nullable) in described {
            let data_type = data_type.to_ascii_lowercase();
            let mapped = MyCodec::for_column(
                &data_type,
                &column_type,
                precision,
                scale,
                collation.as_deref(),
            );
            let Some(codec) = self.options.sql.column_codec(
                mapped,
                || MyCodec::Cast,
                &self.source,
                &name.to_string(),
                &column,
                &column_type,
            )?
            else {
                continue;
            };
            let field = Arc::new(Field::new(&column, codec.data_type(), nullable == "YES"));
            columns.push(RemoteColumn {
                name: column,
                remote_type: column_type,
                field,
                codec,
            });
        }
        let keys: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'",
                (&name.schema, &name.table),
            )
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let split_column = match keys.as_slice() {
            [key]
                if columns
                    .iter()
                    .any(|c| &c.name == key && matches!(c.codec, MyCodec::Int { .. })) =>
            {
                Some(key.clone())
            }
            _ => None,
        };
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Arc::clone(&c.field))
                .collect::<Vec<_>>(),
        ));
        let is_view = table_type.eq_ignore_ascii_case("VIEW");
        Ok(Some(RemoteTable {
            source: self.source.clone(),
            name: name.clone(),
            columns,
            schema,
            pseudo_columns: Vec::new(),
            row_estimate: rows,
            split_column,
            primary_key: keys,
            is_view,
        }))
    }

    fn filter_pushdown(
        &self,
        table: &RemoteTable<MyCodec>,
        filter: &Expr,
    ) -> TableProviderFilterPushDown {
        match classify(filter, &MyColumns(table)) {
            Safety::Exact => TableProviderFilterPushDown::Exact,
            Safety::Superset => TableProviderFilterPushDown::Inexact,
            Safety::No => TableProviderFilterPushDown::Unsupported,
        }
    }

    fn select_expr(&self, column: &RemoteColumn<MyCodec>) -> Expr {
        let reference = Expr::Column(Column::new_unqualified(&column.name));
        match column.codec {
            MyCodec::Cast => cast(reference, DataType::Utf8),
            _ => reference,
        }
    }

    async fn split_predicates(
        &self,
        table: &RemoteTable<MyCodec>,
        max_partitions: usize,
    ) -> Result<Vec<Option<Expr>>> {
        let Some(key) = &table.split_column else {
            return Ok(vec![None]);
        };
        let wanted = self
            .options
            .sql
            .partitions(table.row_estimate, max_partitions);
        if wanted <= 1 {
            return Ok(vec![None]);
        }
        let mut conn = self.conn().await?;
        let sql = format!(
            "SELECT CAST(MIN({k}) AS SIGNED), CAST(MAX({k}) AS SIGNED) FROM {}.{}",
            RemoteDialect::MySql.quote_identifier(&table.name.schema),
            RemoteDialect::MySql.quote_identifier(&table.name.table),
            k = RemoteDialect::MySql.quote_identifier(key)
        );
        let bounds: Option<(Option<i64>, Option<i64>)> = conn
            .query_first(sql)
            .await
            .map_err(|e| remote_error(&self.context(&format!("sizing {}", table.name)), &e))?;
        let Some((Some(low), Some(high))) = bounds else {
            return Ok(vec![None]);
        };
        let span = (high as i128 - low as i128 + 1) as u128;
        if span < wanted as u128 {
            return Ok(vec![None]);
        }
        let step = span / wanted as u128;
        let column = col(Column::new_unqualified(key));
        let boundary = |i: usize| lit((low as i128 + (i as u128 * step) as i128) as i64);
        Ok((0..wanted)
            .map(|i| {
                // First and last ranges are open so nothing is missed.
                Some(match (i, i + 1 == wanted) {
                    (0, _) => column.clone().lt(boundary(1)),
                    (_, true) => column.clone().gt_eq(boundary(i)),
                    _ => column
                        .clone()
                        .gt_eq(boundary(i))
                        .and(column.clone().lt(boundary(i + 1))),
                })
            })
            .collect())
    }

    fn execute(
        &self,
        query: RemoteQuery<MyCodec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
    ) -> Result<SendableRecordBatchStream> {
        // MySQL pushes no comparison with a statement parameter.
        if !params.is_empty() {
            return Err(DataFusionError::Internal(format!(
                "source '{}': a MySQL scan got parameters",
                self.source
            )));
        }
        let schema = query.output_schema();
        let codecs: Vec<MyCodec> = query
            .projection
            .iter()
            .map(|i| query.table.columns[*i].codec.clone())
            .collect();
        let context = self.context(&format!("reading {}", query.table.name));
        self.stream(sql, codecs, schema, batch_size, context)
    }

    fn column_semantics(&self, column: &RemoteColumn<MyCodec>) -> Semantics {
        match column.codec {
            MyCodec::Int { .. }
            | MyCodec::Decimal { .. }
            | MyCodec::Year
            | MyCodec::Date
            | MyCodec::DateTime => Semantics::EXACT,
            // Collations (case, accents, PAD SPACE), float rules, bit/JSON/
            // enum/set orders, session-zone timestamps: compared differently.
            _ => Semantics::NONE,
        }
    }

    fn computed_semantics(&self, data_type: &DataType) -> Semantics {
        match data_type {
            t if t.is_integer() => Semantics::EXACT,
            DataType::Boolean | DataType::Decimal128(..) | DataType::Date32 => Semantics::EXACT,
            _ => Semantics::NONE,
        }
    }

    fn like_pattern_pushable(&self, pattern: &str) -> bool {
        like_pattern_pushable(pattern)
    }

    fn literal_pushable(&self, value: &ScalarValue) -> bool {
        match value {
            ScalarValue::Null | ScalarValue::Boolean(_) => true,
            v if v.data_type().is_integer() => true,
            ScalarValue::Float64(_) | ScalarValue::Decimal128(..) | ScalarValue::Date32(_) => true,
            // Quoted for NO_BACKSLASH_ESCAPES, which every session runs under.
            ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
                s.as_ref().is_none_or(|s| !s.contains('\0'))
            }
            _ => false,
        }
    }

    fn result_codec(&self, data_type: &DataType) -> Option<MyCodec> {
        let codec = match data_type {
            DataType::Int8 => MyCodec::Int {
                bits: 8,
                unsigned: false,
            },
            DataType::Int16 => MyCodec::Int {
                bits: 16,
                unsigned: false,
            },
            DataType::Int32 => MyCodec::Int {
                bits: 32,
                unsigned: false,
            },
            DataType::Int64 => MyCodec::Int {
                bits: 64,
                unsigned: false,
            },
            DataType::UInt64 => MyCodec::Int {
                bits: 64,
                unsigned: true,
            },
            DataType::Float64 => MyCodec::Double,
            DataType::Decimal128(precision, scale) => MyCodec::Decimal {
                precision: *precision,
                scale: *scale,
            },
            // CAST(… AS CHAR): read as text.
            DataType::Utf8 => MyCodec::Cast,
            DataType::Date32 => MyCodec::Date,
            _ => return None,
        };
        (codec.data_type() == *data_type).then_some(codec)
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        // No FULL JOIN in MySQL.
        matches!(
            join_type,
            JoinType::Inner | JoinType::Left | JoinType::Right
        )
    }

    fn execute_sql(
        &self,
        sql: String,
        codecs: Vec<MyCodec>,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<SendableRecordBatchStream> {
        let context = self.context("running a pushed-down query");
        self.stream(sql, codecs, schema, batch_size, context)
    }

    async fn insert(
        &self,
        table: Arc<RemoteTable<MyCodec>>,
        mut rows: SendableRecordBatchStream,
    ) -> Result<u64> {
        let context = self.context(&format!("inserting into {}", table.name));
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| RemoteDialect::MySql.quote_identifier(&c.name))
            .collect();
        let per_statement = (60_000 / columns.len().max(1)).clamp(1, 1000);
        let mut conn = self.conn().await?;
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let mut total = 0u64;
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let mut start = 0;
            while start < batch.num_rows() {
                let end = (start + per_statement).min(batch.num_rows());
                let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
                let sql = format!(
                    "INSERT INTO {}.{} ({}) VALUES {}",
                    RemoteDialect::MySql.quote_identifier(&table.name.schema),
                    RemoteDialect::MySql.quote_identifier(&table.name.table),
                    columns.join(", "),
                    vec![placeholders; end - start].join(", ")
                );
                let mut params = Vec::with_capacity((end - start) * columns.len());
                for row in start..end {
                    for (column, remote) in batch.columns().iter().zip(&table.columns) {
                        params.push(to_value(column.as_ref(), row).map_err(|e| {
                            DataFusionError::Execution(format!(
                                "{context}: column {}: {e}",
                                remote.name
                            ))
                        })?);
                    }
                }
                tx.exec_drop(sql, params)
                    .await
                    .map_err(|e| remote_error(&context, &e))?;
                total += (end - start) as u64;
                start = end;
            }
        }
        tx.commit().await.map_err(|e| remote_error(&context, &e))?;
        Ok(total)
    }
}

impl MyBackend {
    /// Streams the rows of `sql` through the binary protocol, decoding each
    /// result column with its codec.
    fn stream(
        &self,
        sql: String,
        codecs: Vec<MyCodec>,
        schema: SchemaRef,
        batch_size: usize,
        context: String,
    ) -> Result<SendableRecordBatchStream> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let pool = self.pool.clone();
        let kill_opts = self.opts.clone();
        let invalid_dates = self.options.invalid_dates;
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&schema), 2);
        let tx = builder.tx();
        let out_schema = Arc::clone(&schema);
        builder.spawn(async move {
            let conn = pool
                .get_conn()
                .await
                .map_err(|e| remote_error(&context, &e))?;
            // Stops the statement on the server if this task is dropped early.
            let mut running = KillOnDrop {
                opts: kill_opts,
                id: conn.id(),
                conn: Some(conn),
            };
            let Some(conn) = running.conn.as_mut() else {
                return Ok(());
            };
            let mut rows = conn
                .exec_stream::<Row, _, _>(sql.as_str(), ())
                .await
                .map_err(|e| remote_error(&context, &e))?;
            let mut builders: Vec<ColumnBuilder> = codecs
                .iter()
                .map(|c| ColumnBuilder::new(c, batch_size, invalid_dates))
                .collect();
            let mut count = 0usize;
            let fail = |i: usize, e: String| {
                DataFusionError::Execution(format!("{context}: column {}: {e}", names[i]))
            };
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| remote_error(&context, &e))?;
                for (i, value) in row.unwrap().into_iter().enumerate().take(builders.len()) {
                    builders[i].append(value).map_err(|e| fail(i, e))?;
                }
                count += 1;
                if count == batch_size {
                    let batch = finish(&out_schema, &mut builders, count)?;
                    count = 0;
                    if tx.send(Ok(batch)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            drop(rows);
            running.finished();
            if count > 0 {
                let _ = tx.send(finish(&out_schema, &mut builders, count)).await;
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

fn finish(schema: &SchemaRef, builders: &mut [ColumnBuilder], rows: usize) -> Result<RecordBatch> {
    let columns = builders.iter_mut().map(|b| b.finish()).collect();
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// A statement running on a pooled connection: `KILL QUERY <connection>`
/// when the scan is abandoned before its end.
///
/// A connection a KILL was sent for is closed after the KILL has run, never
/// pooled again: a KILL still in flight, or one that found the statement
/// already ended, must not stop whatever statement the connection runs
/// next for another query.
struct KillOnDrop {
    opts: Opts,
    id: u32,
    /// `Some` while the statement may still be running.
    conn: Option<Conn>,
}

impl KillOnDrop {
    /// The statement ran to its end: the connection can be pooled as it is.
    fn finished(mut self) {
        self.conn = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let opts = self.opts.clone();
        let id = self.id;
        runtime.spawn(async move {
            if let Ok(mut killer) = Conn::new(opts).await {
                let _ = killer.query_drop(format!("KILL QUERY {id}")).await;
                let _ = killer.disconnect().await;
            }
            let _ = conn.disconnect().await;
        });
    }
}

/// Civil date of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// An Arrow value as a statement parameter.
fn to_value(array: &dyn Array, row: usize) -> std::result::Result<Value, String> {
    if array.is_null(row) {
        return Ok(Value::NULL);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Value::Int(array.as_boolean().value(row) as i64),
        DataType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::UInt(array.as_primitive::<UInt8Type>().value(row) as u64),
        DataType::UInt16 => Value::UInt(array.as_primitive::<UInt16Type>().value(row) as u64),
        DataType::UInt32 => Value::UInt(array.as_primitive::<UInt32Type>().value(row) as u64),
        DataType::UInt64 => Value::UInt(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => Value::Bytes(
            koios_connector::decimal_string(
                &array
                    .as_primitive::<Decimal128Type>()
                    .value(row)
                    .to_string(),
                *scale,
            )
            .into_bytes(),
        ),
        DataType::Decimal256(_, scale) => Value::Bytes(
            koios_connector::decimal_string(
                &array
                    .as_primitive::<Decimal256Type>()
                    .value(row)
                    .to_string(),
                *scale,
            )
            .into_bytes(),
        ),
        DataType::Utf8 => Value::Bytes(array.as_string::<i32>().value(row).as_bytes().to_vec()),
        DataType::Utf8View => Value::Bytes(array.as_string_view().value(row).as_bytes().to_vec()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::Date32 => {
            let (y, m, d) = civil_from_days(array.as_primitive::<Date32Type>().value(row) as i64);
            Value::Date(y as u16, m, d, 0, 0, 0, 0)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let (days, rest) = (
                micros.div_euclid(86_400_000_000),
                micros.rem_euclid(86_400_000_000),
            );
            let (y, m, d) = civil_from_days(days);
            let secs = rest / 1_000_000;
            Value::Date(
                y as u16,
                m,
                d,
                (secs / 3600) as u8,
                ((secs / 60) % 60) as u8,
                (secs % 60) as u8,
                (rest % 1_000_000) as u32,
            )
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            let micros = array.as_primitive::<DurationMicrosecondType>().value(row);
            let abs = micros.unsigned_abs();
            let secs = abs / 1_000_000;
            Value::Time(
                micros < 0,
                (secs / 86_400) as u32,
                ((secs / 3600) % 24) as u8,
                ((secs / 60) % 60) as u8,
                (secs % 60) as u8,
                (abs % 1_000_000) as u32,
            )
        }
        other => return Err(format!("cannot write {other} values")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
