//! Reads: split predicates over the heap's block ranges, and the two ways
//! a query's rows arrive — `COPY (…) TO STDOUT (FORMAT binary)` for many
//! rows, one bound statement with binary results for few rows or a query
//! with parameters — decoded into Arrow batches; a read dropped before its
//! end cancels its statement on the server.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, cast, col, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deadpool_postgres::Pool;
use futures::{StreamExt, TryStreamExt};
use koios_connector::RemoteDialect;
use koios_connector_sql::{RemoteColumn, RemoteQuery, RemoteTable};
use tokio_postgres::NoTls;

use crate::backend::PgBackend;
use crate::copy::CopyDecoder;
use crate::error::{connect_error, pool_error, pool_sqlstate, remote_error};
use crate::statements::RepeatedStatements;
use crate::transaction::{Connection, Pinned};
use crate::types::{PgCodec, TextKind, parameter_type};

impl PgBackend {
    /// The expression selecting a column: a cast for columns read as text.
    pub(crate) fn column_select(&self, column: &RemoteColumn<PgCodec>) -> Expr {
        let reference = Expr::Column(Column::new_unqualified(&column.name));
        match &column.codec {
            PgCodec::Text {
                kind: TextKind::Cast,
                ..
            } => cast(reference, DataType::Utf8),
            _ => reference,
        }
    }

    pub(crate) async fn block_splits(
        &self,
        table: &RemoteTable<PgCodec>,
        max_partitions: usize,
    ) -> Result<Vec<Option<Expr>>> {
        let wanted = self
            .options
            .sql
            .partitions(table.row_estimate, max_partitions);
        if wanted <= 1 {
            return Ok(vec![None]);
        }
        let Some(blocks) = self.heap_blocks(table).await? else {
            return Ok(vec![None]);
        };
        let wanted = wanted as i64;
        let blocks = blocks as i64;
        if blocks < wanted {
            return Ok(vec![None]);
        }
        let step = blocks / wanted;
        Ok((0..wanted)
            .map(|i| {
                // The last open-ended, so rows in blocks added since sizing
                // are read too.
                let to = (i + 1 < wanted).then_some((i + 1) * step);
                block_range(Some(i * step), to)
            })
            .collect())
    }

    /// The rows of `table` in heap blocks `from <= block < to`; `None` for
    /// a view. With neither end, a predicate that holds for every row, so
    /// the range still reads as one query.
    pub(crate) fn heap_range(
        &self,
        table: &RemoteTable<PgCodec>,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Option<Expr> {
        if table.is_view || table.pseudo_columns.is_empty() {
            return None;
        }
        block_range(from, to).or_else(|| block_range(Some(0), None))
    }

    /// How many blocks `table`'s heap has now; `None` for a view (no heap
    /// Koios reads by `ctid`).
    pub(crate) async fn heap_blocks(&self, table: &RemoteTable<PgCodec>) -> Result<Option<u64>> {
        if table.is_view || table.pseudo_columns.is_empty() {
            return Ok(None);
        }
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
        Ok(Some(blocks.max(0) as u64))
    }

    pub(crate) fn read_query(
        &self,
        query: RemoteQuery<PgCodec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = query.output_schema();
        let codecs: Vec<PgCodec> = query
            .projection
            .iter()
            .map(|i| query.table.columns[*i].codec.clone())
            .collect();
        let context = format!("source '{}': reading {}", self.source, query.table.name);
        if query.is_point_read() || !params.is_empty() {
            let read = Read::Rows(sql, params);
            self.read_out(read, codecs, schema, batch_size, context, pinned)
        } else {
            self.copy_out(sql, codecs, schema, batch_size, context, pinned)
        }
    }

    pub(crate) fn read_sql(
        &self,
        sql: String,
        codecs: Vec<PgCodec>,
        schema: SchemaRef,
        batch_size: usize,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<SendableRecordBatchStream> {
        let context = format!("source '{}': running a pushed-down query", self.source);
        self.copy_out(sql, codecs, schema, batch_size, context, pinned)
    }
}

pub(crate) enum Read {
    /// `COPY (sql) TO STDOUT (FORMAT binary)`: the fastest for many rows, but
    /// tokio-postgres prepares it first (a second round trip).
    Copy(String),
    /// The query itself, parsed, bound and executed in one round trip with
    /// binary results: for the few rows of an index lookup, and for queries
    /// with parameters (which COPY cannot take).
    Rows(String, Vec<ScalarValue>),
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
pub(crate) struct RawValue<'a>(pub(crate) &'a [u8]);

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
pub(crate) enum Source {
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
        pinned: Option<Arc<Pinned>>,
    ) -> Result<SendableRecordBatchStream> {
        let copy = format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
        self.read_out(
            Read::Copy(copy),
            codecs,
            schema,
            batch_size,
            context,
            pinned,
        )
    }

    /// Runs a [`Read`] on a pooled connection (or `pinned`, a session's
    /// open transaction) and decodes what it returns into record batches
    /// of `batch_size` rows.
    fn read_out(
        &self,
        read: Read,
        codecs: Vec<PgCodec>,
        schema: SchemaRef,
        batch_size: usize,
        context: String,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<SendableRecordBatchStream> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let pool = self.pool.clone();
        let statements = Arc::clone(&self.statements);
        let fail = {
            let context = context.clone();
            move |message: String| DataFusionError::Execution(format!("{context}: {message}"))
        };
        let context_for_start = context.clone();
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
            let fail_pg = fail_pg.clone();
            async move {
                let active =
                    start_read(&pool, &statements, read, pinned)
                        .await
                        .map_err(|e| match e {
                            StartError::Pool(message, sqlstate) => {
                                connect_error(&context_for_start, &message, sqlstate)
                            }
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
pub(crate) enum StartError {
    /// No connection: the pool's message and the server's SQLSTATE, if
    /// it refused.
    Pool(String, Option<String>),
    /// The server refused the statement.
    Statement(tokio_postgres::Error),
}

/// Takes a pooled connection (or `pinned`'s) and starts `read` on it: as
/// a statement the connection keeps prepared when the same text ran before
/// ([`crate::statements`]), else as text.
pub(crate) async fn start_read(
    pool: &Pool,
    statements: &RepeatedStatements,
    read: Read,
    pinned: Option<Arc<Pinned>>,
) -> std::result::Result<ActiveRead, StartError> {
    let connection = match pinned {
        Some(pinned) => Connection::Pinned(pinned),
        None => Connection::Pooled(pool.get().await.map_err(|e| {
            StartError::Pool(
                format!("cannot connect: {}", pool_error(&e)),
                pool_sqlstate(&e),
            )
        })?),
    };
    // Armed before the statement starts: PostgreSQL may run it for long
    // before the first row, and a drop then must cancel too. Not inside a
    // transaction block: a cancel would abort the block's transaction, so
    // an abandoned read there runs to its end and its rows are discarded.
    let token = match &connection {
        Connection::Pooled(client) => Some(client.cancel_token()),
        Connection::Pinned(_) => None,
    };
    let mut active = ActiveRead {
        token,
        rows: None,
        client: Some(connection),
    };
    let Some(client) = active.client.as_ref().and_then(|c| c.client().ok()) else {
        return Err(StartError::Pool("no connection".into(), None));
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

/// A statement running on a pooled connection. Dropped before its end (a
/// LIMIT reached, a client cancel, an error elsewhere in the plan), it
/// cancels the statement on the server instead of letting it run on.
///
/// A connection a cancel was sent for is closed, never pooled again: the
/// server handles a cancel request some time after the request was sent,
/// so it could otherwise stop whatever statement the connection runs next
/// for another query (tokio-postgres cannot wait for it to be handled).
pub(crate) struct ActiveRead {
    /// `Some` while the statement may still be running.
    pub(crate) token: Option<tokio_postgres::CancelToken>,
    pub(crate) rows: Option<Source>,
    pub(crate) client: Option<Connection>,
}

impl ActiveRead {
    /// The statement ran to its end: the connection can be pooled as it is.
    pub(crate) fn finished(&mut self) {
        self.token = None;
    }
}

impl Drop for ActiveRead {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        self.rows = None;
        if let Some(Connection::Pooled(client)) = self.client.take() {
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

/// The rows in heap blocks `from <= block < to` (an open end where
/// `None`): disjoint, complete, and cheap for PostgreSQL 14+ (TID range
/// scans).
fn block_range(from: Option<i64>, to: Option<i64>) -> Option<Expr> {
    let bound = |block: i64| lit(format!("({block},0)"));
    let low = from.map(|block| col_ctid().gt_eq(bound(block)));
    let high = to.map(|block| col_ctid().lt(bound(block)));
    match (low, high) {
        (Some(low), Some(high)) => Some(low.and(high)),
        (low, high) => low.or(high),
    }
}
