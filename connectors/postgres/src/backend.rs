//! PostgreSQL as a [`SqlBackend`]: discovery from `pg_catalog`, pushdown
//! rules, split scans, binary-COPY reads and writes over a connection pool.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{Column, JoinType, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, cast, col, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use futures::{StreamExt, TryStreamExt};
use koios_connector::{RemoteDialect, TlsMode};
use koios_connector_sql::pushdown::{Comparison, ExactColumns, Safety, is_exact};
use koios_connector_sql::{
    RemoteColumn, RemoteQuery, RemoteTable, RemoteTableName, Semantics, SqlBackend,
};
use tokio_postgres::NoTls;

use crate::copy::CopyDecoder;
use crate::error::{pool_error, remote_error};
use crate::options::PgOptions;
use crate::statements::RepeatedStatements;
use crate::types::{PgCodec, TextKind, put_value};
use koios_connector::pgtext::{DataRowStream, StartDataRows};

/// One attached PostgreSQL database.
pub struct PgBackend {
    source: String,
    pool: Pool,
    /// Which texts ran before, so connections keep them prepared.
    statements: Arc<RepeatedStatements>,
    options: PgOptions,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgBackend({})", self.source)
    }
}

/// Collations under which PostgreSQL orders text as DataFusion does (by bytes).
const BYTEWISE_COLLATIONS: &[&str] = &["C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"];

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

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| self.error(format!("cannot connect: {}", pool_error(&e))))
    }

    fn error(&self, message: impl std::fmt::Display) -> DataFusionError {
        DataFusionError::Execution(format!("source '{}': {message}", self.source))
    }

    fn db_error(&self, what: &str, e: tokio_postgres::Error) -> DataFusionError {
        remote_error(&format!("source '{}': {what}", self.source), &e)
    }

    async fn database_collation_bytewise(&self, client: &tokio_postgres::Client) -> Result<bool> {
        let row = client
            .query_one(
                "SELECT datcollate FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| self.db_error("reading the database collation", e))?;
        let collate: String = row.get(0);
        Ok(BYTEWISE_COLLATIONS.contains(&collate.as_str()))
    }
}

/// Pushdown rules per column, from the codecs.
struct PgColumns<'a>(&'a RemoteTable<PgCodec>);

impl ExactColumns for PgColumns<'_> {
    fn safety(
        &self,
        column: &str,
        comparison: Comparison,
        literal: Option<&ScalarValue>,
    ) -> Safety {
        self.exact(column, comparison, literal).into()
    }

    /// Parameters are sent typed as the column (booleans, integers and
    /// text), so a value compares remotely as a literal of that type would.
    fn parameter_safety(
        &self,
        column: &str,
        comparison: Comparison,
        data_type: &DataType,
    ) -> Safety {
        let Some(remote) = self.0.column(column) else {
            return Safety::No;
        };
        let sendable = matches!(
            remote.codec,
            PgCodec::Bool | PgCodec::Int2 | PgCodec::Int4 | PgCodec::Int8 | PgCodec::Text { .. }
        ) && remote.field.data_type() == data_type
            && parameter_type(data_type).is_some();
        // A pattern's validity depends on its value (a trailing escape is
        // an error in PostgreSQL): LIKE with a parameter stays local.
        if !sendable || comparison == Comparison::Like {
            return Safety::No;
        }
        // What `exact` decides for these codecs depends on the value's type
        // only (and on text holding no NUL, which binding checks).
        match ScalarValue::new_default(data_type) {
            Ok(sample) => self.exact(column, comparison, Some(&sample)).into(),
            Err(_) => Safety::No,
        }
    }
}

impl PgColumns<'_> {
    /// PostgreSQL reports no supersets: a comparison is exact or not pushed.
    fn exact(&self, column: &str, comparison: Comparison, literal: Option<&ScalarValue>) -> bool {
        let Some(column) = self.0.column(column) else {
            return false;
        };
        if comparison == Comparison::NullTest {
            return true;
        }
        // NULL literals compare to NULL on both sides.
        if literal.is_some_and(|l| l.is_null()) {
            return true;
        }
        match &column.codec {
            PgCodec::Bool | PgCodec::Int2 | PgCodec::Int4 | PgCodec::Int8 | PgCodec::Oid => {
                comparison != Comparison::Like
            }
            PgCodec::Numeric { .. } | PgCodec::Date | PgCodec::Time | PgCodec::Timestamp => {
                comparison != Comparison::Like && literal.is_some_and(|l| !has_sub_micros(l))
            }
            // Float comparisons differ on NaN and -0; money depends on locale;
            // intervals compare by justified length in PostgreSQL.
            PgCodec::Float4 | PgCodec::Float8 | PgCodec::Money | PgCodec::Interval => false,
            PgCodec::TimestampTz => false,
            PgCodec::Text {
                kind,
                bytewise_order,
                deterministic,
            } => {
                let plain = matches!(kind, TextKind::Plain | TextKind::Name);
                let is_text_literal = literal.is_some_and(|l| {
                    matches!(
                        l,
                        ScalarValue::Utf8(_) | ScalarValue::Utf8View(_) | ScalarValue::LargeUtf8(_)
                    )
                });
                // PostgreSQL text cannot hold NUL; such a literal is an error there.
                let text = literal.and_then(|l| l.try_as_str().flatten());
                let nul_free = text.is_none_or(|t| !t.contains('\0'));
                plain
                    && *deterministic
                    && is_text_literal
                    && nul_free
                    && match comparison {
                        Comparison::Equality => true,
                        Comparison::Like => text.is_some_and(like_pattern_pushable),
                        Comparison::Ordering => *bytewise_order,
                        Comparison::NullTest => true,
                    }
            }
            PgCodec::Bytea | PgCodec::Array { .. } => false,
        }
    }
}

/// PostgreSQL's LIKE escapes with `\\` as DataFusion's does, but refuses a
/// pattern ending in an unpaired one, which DataFusion reads as a literal
/// backslash: such patterns stay local.
fn like_pattern_pushable(pattern: &str) -> bool {
    let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
    trailing.is_multiple_of(2) && !pattern.contains('\0')
}

/// Timestamps PostgreSQL would round (it keeps microseconds).
fn has_sub_micros(value: &ScalarValue) -> bool {
    matches!(value, ScalarValue::TimestampNanosecond(Some(ns), _) if ns % 1000 != 0)
        || matches!(value, ScalarValue::Time64Nanosecond(Some(ns)) if ns % 1000 != 0)
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

    async fn schema_names(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT nspname::text FROM pg_catalog.pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                   AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| self.db_error("listing schemas", e))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|s| {
                self.options
                    .schemas
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(s))
            })
            .collect())
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1",
                &[&schema],
            )
            .await
            .map_err(|e| self.db_error("listing tables", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn describe(&self, name: &RemoteTableName) -> Result<Option<RemoteTable<PgCodec>>> {
        let client = self.client().await?;
        let Some(relation) = client
            .query_opt(
                "SELECT c.oid, c.relkind::text, greatest(c.reltuples, 0)::float8 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
                &[&name.schema, &name.table],
            )
            .await
            .map_err(|e| self.db_error(&format!("describing {name}"), e))?
        else {
            return Ok(None);
        };
        let oid: u32 = relation.get(0);
        let kind: String = relation.get(1);
        let estimate: f64 = relation.get(2);
        let database_bytewise = self.database_collation_bytewise(&client).await?;
        let rows = client
            .query(
                "SELECT a.attname::text, \
                        CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END AS type_oid, \
                        CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod, \
                        format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                        coalesce(bt.typtype, t.typtype)::text, coalesce(bt.typname, t.typname)::text, \
                        coalesce(bt.typcategory, t.typcategory)::text, coalesce(bt.typelem, t.typelem), \
                        coalesce(et.typname::text, ''), coalesce(et.typtype::text, ''), \
                        coalesce(co.collname::text, ''), coalesce(co.collisdeterministic, true) \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
                 LEFT JOIN pg_catalog.pg_type et ON et.oid = coalesce(bt.typelem, t.typelem) AND coalesce(bt.typcategory, t.typcategory) = 'A' \
                 LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&oid],
            )
            .await
            .map_err(|e| self.db_error(&format!("describing {name}"), e))?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in &rows {
            let column: String = row.get(0);
            let type_oid: u32 = row.get(1);
            let typmod: i32 = row.get(2);
            let written: String = row.get(3);
            let not_null: bool = row.get(4);
            let typtype: String = row.get(5);
            let typname: String = row.get(6);
            let category: String = row.get(7);
            let element_oid: u32 = row.get(8);
            let element_name: String = row.get(9);
            let element_typtype: String = row.get(10);
            let collation: String = row.get(11);
            let deterministic: bool = row.get(12);
            let bytewise = match collation.as_str() {
                "" | "default" => database_bytewise,
                c => BYTEWISE_COLLATIONS.contains(&c),
            };
            let codec = if category == "A" && element_oid != 0 {
                PgCodec::for_type(
                    element_oid,
                    &element_name,
                    &element_typtype,
                    -1,
                    bytewise,
                    deterministic,
                )
                .map(|e| PgCodec::Array {
                    element: Box::new(e),
                    element_oid,
                })
            } else {
                PgCodec::for_type(
                    type_oid,
                    &typname,
                    &typtype,
                    typmod,
                    bytewise,
                    deterministic,
                )
            };
            let Some(codec) = self.options.sql.column_codec(
                codec,
                PgCodec::as_text,
                &self.source,
                &name.to_string(),
                &column,
                &written,
            )?
            else {
                continue;
            };
            let field = Arc::new(Field::new(&column, codec.data_type(), !not_null));
            columns.push(RemoteColumn {
                name: column,
                remote_type: written,
                field,
                codec,
            });
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Arc::clone(&c.field))
                .collect::<Vec<_>>(),
        ));
        let is_view = kind == "v";
        let primary_key = client
            .query(
                "SELECT a.attname::text FROM pg_catalog.pg_index i \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND i.indisprimary",
                &[&oid],
            )
            .await
            .map_err(|e| self.db_error(&format!("describing {name}"), e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Some(RemoteTable {
            source: self.source.clone(),
            name: name.clone(),
            columns,
            schema,
            pseudo_columns: if is_view {
                Vec::new()
            } else {
                vec![Field::new("ctid", DataType::Utf8, false)]
            },
            // reltuples is -1 until the table is first vacuumed or analyzed.
            row_estimate: (!is_view && estimate >= 0.0).then_some(estimate as u64),
            split_column: None,
            primary_key,
            is_view,
        }))
    }

    fn filter_pushdown(
        &self,
        table: &RemoteTable<PgCodec>,
        filter: &Expr,
    ) -> TableProviderFilterPushDown {
        if is_exact(filter, &PgColumns(table)) {
            TableProviderFilterPushDown::Exact
        } else {
            TableProviderFilterPushDown::Unsupported
        }
    }

    fn select_expr(&self, column: &RemoteColumn<PgCodec>) -> Expr {
        let reference = Expr::Column(Column::new_unqualified(&column.name));
        match &column.codec {
            PgCodec::Text {
                kind: TextKind::Cast,
                ..
            } => cast(reference, DataType::Utf8),
            _ => reference,
        }
    }

    async fn split_predicates(
        &self,
        table: &RemoteTable<PgCodec>,
        max_partitions: usize,
    ) -> Result<Vec<Option<Expr>>> {
        if table.is_view || table.pseudo_columns.is_empty() {
            return Ok(vec![None]);
        }
        let wanted = self
            .options
            .sql
            .partitions(table.row_estimate, max_partitions);
        if wanted <= 1 {
            return Ok(vec![None]);
        }
        // Block ranges of the heap: disjoint, complete, and cheap for
        // PostgreSQL 14+ (TID range scans).
        let client = self.client().await?;
        let qualified = format!(
            "{}.{}",
            RemoteDialect::PostgreSql.quote_identifier(&table.name.schema),
            RemoteDialect::PostgreSql.quote_identifier(&table.name.table)
        );
        let row = client
            .query_one(
                "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::int8)::int8",
                &[&qualified],
            )
            .await
            .map_err(|e| self.db_error(&format!("sizing {}", table.name), e))?;
        let blocks: i64 = row.get(0);
        if blocks < wanted as i64 {
            return Ok(vec![None]);
        }
        let step = blocks / wanted as i64;
        let bound = |block: i64| lit(format!("({block},0)"));
        Ok((0..wanted as i64)
            .map(|i| {
                let low = col_ctid().gt_eq(bound(i * step));
                Some(if i + 1 == wanted as i64 {
                    // Open-ended, so rows in blocks added since sizing are read too.
                    low
                } else {
                    low.and(col_ctid().lt(bound((i + 1) * step)))
                })
            })
            .collect())
    }

    fn execute(
        &self,
        query: RemoteQuery<PgCodec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
    ) -> Result<SendableRecordBatchStream> {
        let schema = query.output_schema();
        let codecs: Vec<PgCodec> = query
            .projection
            .iter()
            .map(|i| query.table.columns[*i].codec.clone())
            .collect();
        let context = format!("source '{}': reading {}", self.source, query.table.name);
        if query.is_point_read() || !params.is_empty() {
            self.read_out(Read::Rows(sql, params), codecs, schema, batch_size, context)
        } else {
            self.copy_out(sql, codecs, schema, batch_size, context)
        }
    }

    fn column_semantics(&self, column: &RemoteColumn<PgCodec>) -> Semantics {
        match &column.codec {
            PgCodec::Bool
            | PgCodec::Int2
            | PgCodec::Int4
            | PgCodec::Int8
            | PgCodec::Oid
            | PgCodec::Numeric { .. }
            | PgCodec::Date
            | PgCodec::Time
            | PgCodec::Timestamp => Semantics::EXACT,
            PgCodec::Text {
                kind: TextKind::Plain | TextKind::Name,
                bytewise_order,
                deterministic: true,
            } => Semantics {
                equality: true,
                ordering: *bytewise_order,
            },
            // Floats (NaN, -0), money, intervals, time zones, padded and
            // case-insensitive text, arrays: compared differently.
            _ => Semantics::NONE,
        }
    }

    fn computed_semantics(&self, data_type: &DataType) -> Semantics {
        match data_type {
            t if t.is_integer() => Semantics::EXACT,
            DataType::Boolean | DataType::Decimal128(..) | DataType::Date32 => Semantics::EXACT,
            // The database's default collation is deterministic; its order
            // is not known here.
            DataType::Utf8 => Semantics {
                equality: true,
                ordering: false,
            },
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
            ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
                // PostgreSQL text cannot hold NUL.
                s.as_ref().is_none_or(|s| !s.contains('\0'))
            }
            ScalarValue::TimestampMicrosecond(_, None) => true,
            _ => false,
        }
    }

    fn result_codec(&self, data_type: &DataType) -> Option<PgCodec> {
        let codec = match data_type {
            DataType::Boolean => PgCodec::Bool,
            DataType::Int16 => PgCodec::Int2,
            DataType::Int32 => PgCodec::Int4,
            DataType::Int64 => PgCodec::Int8,
            DataType::Float32 => PgCodec::Float4,
            DataType::Float64 => PgCodec::Float8,
            DataType::Decimal128(precision, scale) => PgCodec::Numeric {
                precision: *precision,
                scale: *scale,
            },
            DataType::Utf8 => PgCodec::Text {
                kind: TextKind::Plain,
                bytewise_order: false,
                deterministic: true,
            },
            DataType::Date32 => PgCodec::Date,
            DataType::Timestamp(TimeUnit::Microsecond, None) => PgCodec::Timestamp,
            _ => return None,
        };
        (codec.data_type() == *data_type).then_some(codec)
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        matches!(
            join_type,
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
        )
    }

    fn execute_sql(
        &self,
        sql: String,
        codecs: Vec<PgCodec>,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Result<SendableRecordBatchStream> {
        let context = format!("source '{}': running a pushed-down query", self.source);
        self.copy_out(sql, codecs, schema, batch_size, context)
    }

    fn execute_data_rows(
        &self,
        sql: String,
        params: Vec<ScalarValue>,
        codecs: Vec<PgCodec>,
        schema: &SchemaRef,
        columns: Vec<usize>,
        what: String,
    ) -> Option<StartDataRows> {
        let names = schema.fields();
        let mut written = columns
            .into_iter()
            .map(|i| {
                let codec = codecs.get(i).filter(|c| c.writes_directly())?;
                Some(RowColumn {
                    index: i,
                    codec: codec.clone(),
                    name: names.get(i)?.name().clone(),
                    binary: false,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let context = format!("source '{}': {what}", self.source);
        let pool = self.pool.clone();
        let statements = Arc::clone(&self.statements);
        Some(Box::new(move |binary: Vec<bool>| {
            for (column, binary) in written.iter_mut().zip(binary) {
                column.binary = binary;
            }
            read_rows(pool, statements, sql, params, written, context)
        }))
    }

    async fn insert(
        &self,
        table: Arc<RemoteTable<PgCodec>>,
        rows: SendableRecordBatchStream,
    ) -> Result<u64> {
        crate::write::copy_in(&self.pool, &self.source, &table, rows).await
    }
}

/// How rows are read from the server.
enum Read {
    /// `COPY (sql) TO STDOUT (FORMAT binary)`: the fastest for many rows, but
    /// tokio-postgres prepares it first (a second round trip).
    Copy(String),
    /// The query itself, parsed, bound and executed in one round trip with
    /// binary results: for the few rows of an index lookup, and for queries
    /// with parameters (which COPY cannot take).
    Rows(String, Vec<ScalarValue>),
}

/// The PostgreSQL type a statement parameter of `data_type` is sent as.
fn parameter_type(data_type: &DataType) -> Option<tokio_postgres::types::Type> {
    use tokio_postgres::types::Type;
    Some(match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int16 => Type::INT2,
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Type::TEXT,
        _ => return None,
    })
}

/// A parameter value, written in the binary format of its [`parameter_type`].
#[derive(Debug)]
struct ParameterValue(ScalarValue);

impl tokio_postgres::types::ToSql for ParameterValue {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use tokio_postgres::types::IsNull;
        match &self.0 {
            ScalarValue::Boolean(Some(v)) => v.to_sql(ty, out),
            ScalarValue::Int16(Some(v)) => v.to_sql(ty, out),
            ScalarValue::Int32(Some(v)) => v.to_sql(ty, out),
            ScalarValue::Int64(Some(v)) => v.to_sql(ty, out),
            ScalarValue::Utf8(Some(v))
            | ScalarValue::Utf8View(Some(v))
            | ScalarValue::LargeUtf8(Some(v)) => {
                // PostgreSQL text cannot hold NUL (sessions do not bind such
                // values into a generic plan; this is the last guard).
                if v.contains('\0') {
                    return Err("a text parameter contains a NUL character".into());
                }
                v.as_str().to_sql(ty, out)
            }
            v if v.is_null() => Ok(IsNull::Yes),
            v => Err(format!("cannot send a parameter of type {}", v.data_type()).into()),
        }
    }

    fn accepts(_ty: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A binary result value as it arrived (the encoding COPY binary uses).
struct RawValue<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for RawValue<'a> {
    fn from_sql(
        _ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw))
    }

    fn accepts(_ty: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// Rows the builders of a query's (not a COPY's) result first hold.
const ROWS_INITIAL_CAPACITY: usize = 64;

/// The open result of a [`Read`].
enum Source {
    Copy(std::pin::Pin<Box<tokio_postgres::CopyOutStream>>),
    Rows(std::pin::Pin<Box<tokio_postgres::RowStream>>),
}

impl PgBackend {
    /// Streams `COPY (sql) TO STDOUT (FORMAT binary)`, decoding each result
    /// column with its codec.
    fn copy_out(
        &self,
        sql: String,
        codecs: Vec<PgCodec>,
        schema: SchemaRef,
        batch_size: usize,
        context: String,
    ) -> Result<SendableRecordBatchStream> {
        let copy = format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
        self.read_out(Read::Copy(copy), codecs, schema, batch_size, context)
    }

    /// Runs a [`Read`] on a pooled connection and decodes what it returns
    /// into record batches of `batch_size` rows.
    fn read_out(
        &self,
        read: Read,
        codecs: Vec<PgCodec>,
        schema: SchemaRef,
        batch_size: usize,
        context: String,
    ) -> Result<SendableRecordBatchStream> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let pool = self.pool.clone();
        let statements = Arc::clone(&self.statements);
        let fail = {
            let context = context.clone();
            move |message: String| DataFusionError::Execution(format!("{context}: {message}"))
        };
        let fail_pg = move |e: tokio_postgres::Error| remote_error(&context, &e);
        // Builders start at full batch size only for COPY scans, which fill
        // batches; a query's rows (mostly an index lookup's few) start
        // small and grow, instead of allocating a whole batch per lookup.
        let capacity = match &read {
            Read::Copy(_) => batch_size,
            Read::Rows(..) => batch_size.min(ROWS_INITIAL_CAPACITY),
        };
        let decoder = CopyDecoder::new(Arc::clone(&schema), &codecs, names, batch_size, capacity);

        struct State {
            read: ActiveRead,
            decoder: CopyDecoder,
            ready: std::collections::VecDeque<datafusion::arrow::array::RecordBatch>,
            done: bool,
        }
        let start = {
            let fail = fail.clone();
            let fail_pg = fail_pg.clone();
            async move {
                let active = start_read(&pool, &statements, read)
                    .await
                    .map_err(|e| match e {
                        StartError::Pool(message) => fail(message),
                        StartError::Statement(e) => fail_pg(e),
                    })?;
                Ok::<_, DataFusionError>(State {
                    read: active,
                    decoder,
                    ready: Default::default(),
                    done: false,
                })
            }
        };
        let batches = futures::stream::once(start)
            .map_ok(move |state| {
                let fail = fail.clone();
                let fail_pg = fail_pg.clone();
                futures::stream::try_unfold(state, move |mut state| {
                    let fail = fail.clone();
                    let fail_pg = fail_pg.clone();
                    async move {
                        loop {
                            if let Some(batch) = state.ready.pop_front() {
                                return Ok(Some((batch, state)));
                            }
                            if state.done {
                                return Ok(None);
                            }
                            let Some(rows) = state.read.rows.as_mut() else {
                                return Ok(None);
                            };
                            let more = match rows {
                                Source::Copy(chunks) => match chunks.next().await {
                                    Some(chunk) => {
                                        let chunk = chunk.map_err(|e| {
                                            // The server ended the statement.
                                            state.read.finished();
                                            fail_pg(e)
                                        })?;
                                        state
                                            .ready
                                            .extend(state.decoder.push(&chunk).map_err(&fail)?);
                                        true
                                    }
                                    None => false,
                                },
                                Source::Rows(rows) => match rows.next().await {
                                    Some(row) => {
                                        let row = row.map_err(|e| {
                                            state.read.finished();
                                            fail_pg(e)
                                        })?;
                                        let fields = (0..row.len()).map(|i| {
                                            row.try_get::<_, Option<RawValue>>(i)
                                                .ok()
                                                .flatten()
                                                .map(|v| v.0)
                                        });
                                        state
                                            .ready
                                            .extend(state.decoder.push_row(fields).map_err(&fail)?);
                                        true
                                    }
                                    None => false,
                                },
                            };
                            if !more {
                                // The server has ended the statement: from
                                // here a drop has nothing to cancel.
                                state.read.finished();
                                state.done = true;
                                state.ready.extend(state.decoder.finish().map_err(&fail)?);
                            }
                        }
                    }
                })
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// Why a [`Read`] did not start.
enum StartError {
    /// No connection: the pool's message.
    Pool(String),
    /// The server refused the statement.
    Statement(tokio_postgres::Error),
}

/// Takes a pooled connection and starts `read` on it: as a statement the
/// connection keeps prepared when the same text ran before
/// ([`crate::statements`]), else as text.
async fn start_read(
    pool: &Pool,
    statements: &RepeatedStatements,
    read: Read,
) -> std::result::Result<ActiveRead, StartError> {
    let client = pool
        .get()
        .await
        .map_err(|e| StartError::Pool(format!("cannot connect: {}", pool_error(&e))))?;
    // Armed before the statement starts: PostgreSQL may run it for long
    // before the first row, and a drop then must cancel too.
    let mut active = ActiveRead {
        token: Some(client.cancel_token()),
        rows: None,
        client: Some(client),
    };
    let Some(client) = active.client.as_deref() else {
        return Err(StartError::Pool("no connection".into()));
    };
    let (sql, types) = match &read {
        Read::Copy(copy) => (copy.as_str(), Vec::new()),
        Read::Rows(sql, params) => (
            sql.as_str(),
            params
                .iter()
                .map(|value| {
                    parameter_type(&value.data_type())
                        .unwrap_or(tokio_postgres::types::Type::UNKNOWN)
                })
                .collect(),
        ),
    };
    let mut opened = None;
    if statements.repeated(sql, &types) {
        let run = match crate::statements::prepared(client, sql, &types).await {
            Ok(statement) => open(client, &read, Some(&statement), &types).await,
            Err(e) => Err(e),
        };
        match run {
            Err(e) if crate::statements::is_stale(&e) => {
                crate::statements::forget(client, sql, &types);
            }
            run => opened = Some(run),
        }
    }
    let opened = match opened {
        Some(opened) => opened,
        None => open(client, &read, None, &types).await,
    };
    match opened {
        Ok(rows) => {
            active.rows = Some(rows);
            Ok(active)
        }
        Err(e) => {
            // The server refused or ended the statement: nothing to cancel.
            active.finished();
            Err(StartError::Statement(e))
        }
    }
}

/// Starts `read` on `client`: as `statement` when it is prepared, else as
/// text (COPY is then prepared by tokio-postgres; a query, its parameters
/// sent as `types`, is parsed, bound and run in one round trip).
async fn open(
    client: &tokio_postgres::Client,
    read: &Read,
    statement: Option<&tokio_postgres::Statement>,
    types: &[tokio_postgres::types::Type],
) -> std::result::Result<Source, tokio_postgres::Error> {
    Ok(match (read, statement) {
        (Read::Copy(_), Some(statement)) => {
            Source::Copy(Box::pin(client.copy_out(statement).await?))
        }
        (Read::Copy(copy), None) => Source::Copy(Box::pin(client.copy_out(copy.as_str()).await?)),
        (Read::Rows(_, params), Some(statement)) => Source::Rows(Box::pin(
            client
                .query_raw(statement, parameter_values(params))
                .await?,
        )),
        (Read::Rows(sql, params), None) => Source::Rows(Box::pin(
            client
                .query_typed_raw(
                    sql.as_str(),
                    parameter_values(params).zip(types.iter().cloned()),
                )
                .await?,
        )),
    })
}

/// A statement's parameters, as sent.
fn parameter_values(params: &[ScalarValue]) -> impl ExactSizeIterator<Item = ParameterValue> + '_ {
    params.iter().cloned().map(ParameterValue)
}

/// A result column written into `DataRow` bodies: where it is in the
/// result, how to read it, its name for errors, and whether the client
/// reads it in binary.
struct RowColumn {
    index: usize,
    codec: PgCodec,
    name: String,
    binary: bool,
}

/// Bytes a row buffer grows by when a row may not fit: rows are split off
/// one shared allocation instead of each allocating its own.
const ROW_BUFFER_CHUNK: usize = 8 * 1024;

/// Runs `sql` in one round trip (binary results, as [`Read::Rows`]) and
/// writes each row's values as Koios writes them to a client
/// ([`put_value`]): the same values, checks and errors as decoding into
/// Arrow and writing that, without the batches in between.
fn read_rows(
    pool: Pool,
    statements: Arc<RepeatedStatements>,
    sql: String,
    params: Vec<ScalarValue>,
    columns: Vec<RowColumn>,
    context: String,
) -> DataRowStream {
    let start = {
        let context = context.clone();
        async move {
            start_read(&pool, &statements, Read::Rows(sql, params))
                .await
                .map_err(|e| match e {
                    StartError::Pool(message) => {
                        DataFusionError::Execution(format!("{context}: {message}"))
                    }
                    StartError::Statement(e) => remote_error(&context, &e),
                })
        }
    };
    Box::pin(DataRows {
        phase: RowsPhase::Starting(Box::pin(start)),
        columns,
        context,
        buffer: bytes::BytesMut::new(),
        scratch: String::new(),
    })
}

/// The rows of [`read_rows`]: a stream written out by hand, as a lookup's
/// few rows made the state moves of stream combinators show in profiles.
struct DataRows {
    phase: RowsPhase,
    columns: Vec<RowColumn>,
    context: String,
    /// Rows are split off this shared allocation.
    buffer: bytes::BytesMut,
    /// Reused while writing a value as text.
    scratch: String,
}

// The stream lives boxed and its phase changes twice: boxing the large
// variant would only add an allocation per lookup.
#[allow(clippy::large_enum_variant)]
enum RowsPhase {
    Starting(std::pin::Pin<Box<dyn Future<Output = Result<ActiveRead>> + Send>>),
    Reading(ActiveRead),
    Done,
}

impl DataRows {
    /// `row`'s values as one `DataRow` body.
    fn write(&mut self, row: &tokio_postgres::Row) -> Result<bytes::BytesMut> {
        if self.buffer.capacity() - self.buffer.len() < ROW_BUFFER_CHUNK / 4 {
            self.buffer.reserve(ROW_BUFFER_CHUNK);
        }
        for column in &self.columns {
            let raw = row
                .try_get::<_, Option<RawValue>>(column.index)
                .ok()
                .flatten()
                .map(|v| v.0);
            put_value(
                &column.codec,
                raw,
                column.binary,
                &mut self.buffer,
                &mut self.scratch,
            )
            .map_err(|e| {
                DataFusionError::Execution(format!("{}: column {}: {e}", self.context, column.name))
            })?;
        }
        Ok(self.buffer.split())
    }
}

impl futures::Stream for DataRows {
    type Item = Result<bytes::BytesMut>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                RowsPhase::Starting(start) => match start.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(read)) => this.phase = RowsPhase::Reading(read),
                    Poll::Ready(Err(e)) => {
                        this.phase = RowsPhase::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                RowsPhase::Reading(read) => {
                    let Some(Source::Rows(rows)) = read.rows.as_mut() else {
                        this.phase = RowsPhase::Done;
                        continue;
                    };
                    return match rows.as_mut().poll_next(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Some(Ok(row))) => {
                            let body = this.write(&row);
                            if body.is_err() {
                                // Dropping the read cancels the statement.
                                this.phase = RowsPhase::Done;
                            }
                            Poll::Ready(Some(body))
                        }
                        Poll::Ready(Some(Err(e))) => {
                            read.finished();
                            let error = remote_error(&this.context, &e);
                            this.phase = RowsPhase::Done;
                            Poll::Ready(Some(Err(error)))
                        }
                        Poll::Ready(None) => {
                            // The server has ended the statement.
                            read.finished();
                            this.phase = RowsPhase::Done;
                            Poll::Ready(None)
                        }
                    };
                }
                RowsPhase::Done => return Poll::Ready(None),
            }
        }
    }
}

/// A statement running on a pooled connection. Dropped before its end (a
/// LIMIT reached, a client cancel, an error elsewhere in the plan), it
/// cancels the statement on the server instead of letting it run on.
///
/// A connection a cancel was sent for is closed, never pooled again: the
/// server handles a cancel request some time after the request was sent,
/// so it could otherwise stop whatever statement the connection runs next
/// for another query (tokio-postgres cannot wait for it to be handled).
struct ActiveRead {
    /// `Some` while the statement may still be running.
    token: Option<tokio_postgres::CancelToken>,
    rows: Option<Source>,
    client: Option<deadpool_postgres::Object>,
}

impl ActiveRead {
    /// The statement ran to its end: the connection can be pooled as it is.
    fn finished(&mut self) {
        self.token = None;
    }
}

impl Drop for ActiveRead {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        self.rows = None;
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = token.cancel_query(NoTls).await;
            });
        }
    }
}

fn col_ctid() -> Expr {
    col("ctid")
}
