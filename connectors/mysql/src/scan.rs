//! Reads: split predicates over key ranges, and rows streamed through the
//! binary protocol into Arrow batches; a read abandoned before its end is
//! stopped on the server with `KILL QUERY` (inside a transaction block,
//! read to its end instead).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::*;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, cast, col, lit};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use futures::StreamExt;
use koios_connector::RemoteDialect;
use koios_connector_sql::{RemoteColumn, RemoteQuery, RemoteTable};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Pool, Row, Value};

use crate::backend::MyBackend;
use crate::error::remote_error;
use crate::transaction::Pinned;
use crate::types::{ColumnBuilder, MyCodec};

impl MyBackend {
    pub(crate) fn column_select(&self, column: &RemoteColumn<MyCodec>) -> Expr {
        let reference = Expr::Column(Column::new_unqualified(&column.name));
        match column.codec {
            MyCodec::Cast => cast(reference, DataType::Utf8),
            _ => reference,
        }
    }

    pub(crate) async fn range_splits(
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

    pub(crate) fn read_query(
        &self,
        query: RemoteQuery<MyCodec>,
        sql: String,
        params: Vec<ScalarValue>,
        batch_size: usize,
        pinned: Option<Arc<Pinned>>,
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
        self.stream(sql, codecs, schema, batch_size, context, pinned)
    }

    pub(crate) fn read_sql(
        &self,
        sql: String,
        codecs: Vec<MyCodec>,
        schema: SchemaRef,
        batch_size: usize,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<SendableRecordBatchStream> {
        let context = self.context("running a pushed-down query");
        self.stream(sql, codecs, schema, batch_size, context, pinned)
    }
}

impl MyBackend {
    /// Streams the rows of `sql` through the binary protocol, decoding each
    /// result column with its codec: on a pooled connection, or in
    /// `pinned` (a session's open transaction).
    fn stream(
        &self,
        sql: String,
        codecs: Vec<MyCodec>,
        schema: SchemaRef,
        batch_size: usize,
        context: String,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<SendableRecordBatchStream> {
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&schema), 2);
        let mut sink = BatchSink {
            builders: codecs
                .iter()
                .map(|c| ColumnBuilder::new(c, batch_size, self.options.invalid_dates))
                .collect(),
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            schema,
            batch_size,
            count: 0,
            context: context.clone(),
            tx: builder.tx(),
        };
        if let Some(pinned) = pinned {
            // Not the builder's task, which a dropped stream aborts: the
            // transaction's connection must never be left mid-result (nor
            // can its statement be killed without ending the transaction),
            // so an abandoned read runs to its end, its rows discarded.
            tokio::spawn(async move {
                let result = async {
                    let mut guard = pinned.lock().await?;
                    let Some(transaction) = guard.as_mut() else {
                        return Ok(());
                    };
                    run_rows(transaction, &sql, &context, &mut sink, true, false)
                        .await
                        .map(|_| ())
                }
                .await;
                if let Err(e) = result {
                    let _ = sink.tx.send(Err(e)).await;
                }
            });
            return Ok(builder.build());
        }
        let pool = self.pool.clone();
        let kill_opts = self.opts.clone();
        builder.spawn(async move {
            run_pooled(&pool, kill_opts, &sql, &context, &mut sink, false).await
        });
        Ok(builder.build())
    }
}

/// Where a read's rows go, one at a time: Arrow batches ([`BatchSink`]),
/// or `DataRow` bodies for a client (`rows.rs`).
pub(crate) trait RowSink: Send {
    /// Takes one row's values; whether more rows are still wanted.
    fn put(&mut self, values: Vec<Value>) -> impl Future<Output = Result<bool>> + Send;

    /// The statement has ended with rows still wanted: passes on what is
    /// held back.
    fn end(&mut self) -> impl Future<Output = ()> + Send;
}

/// Runs `sql` on `conn` and hands its rows to `sink`; whether the
/// statement ran to its end. When the sink wants no more rows, stops — or,
/// with `drain`, reads the rest without decoding it, so the connection
/// ends the statement. With `text`, the query is sent as text (one round
/// trip; every value arrives as text), else prepared and executed through
/// the binary protocol (a second round trip for a statement the
/// connection has not prepared yet; exact floats).
pub(crate) async fn run_rows<Q: Queryable, S: RowSink>(
    conn: &mut Q,
    sql: &str,
    context: &str,
    sink: &mut S,
    drain: bool,
    text: bool,
) -> Result<bool> {
    if text {
        let rows = conn
            .query_stream::<Row, _>(sql)
            .await
            .map_err(|e| remote_error(context, &e))?;
        feed(rows, context, sink, drain).await
    } else {
        let rows = conn
            .exec_stream::<Row, _, _>(sql, ())
            .await
            .map_err(|e| remote_error(context, &e))?;
        feed(rows, context, sink, drain).await
    }
}

/// The rows of a running statement handed to `sink` (see [`run_rows`]).
async fn feed<R, S>(mut rows: R, context: &str, sink: &mut S, drain: bool) -> Result<bool>
where
    R: futures::Stream<Item = std::result::Result<Row, mysql_async::Error>> + Unpin,
    S: RowSink,
{
    let mut wanted = true;
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| remote_error(context, &e))?;
        if !wanted {
            continue;
        }
        wanted = sink.put(row.unwrap()).await?;
        if !wanted && !drain {
            return Ok(false);
        }
    }
    drop(rows);
    if wanted {
        sink.end().await;
    }
    Ok(true)
}

/// [`run_rows`] on a connection of `pool`, outside any transaction; the
/// statement is stopped with `KILL QUERY` (a connection of `kill_opts`)
/// if this future is dropped, or the sink stops, before its end.
pub(crate) async fn run_pooled<S: RowSink>(
    pool: &Pool,
    kill_opts: Opts,
    sql: &str,
    context: &str,
    sink: &mut S,
    text: bool,
) -> Result<()> {
    let conn = pool
        .get_conn()
        .await
        .map_err(|e| remote_error(context, &e))?;
    // Stops the statement on the server if this future is dropped early.
    let mut running = KillOnDrop {
        opts: kill_opts,
        id: conn.id(),
        conn: Some(conn),
    };
    let Some(conn) = running.conn.as_mut() else {
        return Ok(());
    };
    if run_rows(conn, sql, context, sink, false, text).await? {
        running.finished();
    }
    Ok(())
}

/// Decodes one query's rows into batches of `batch_size` rows.
struct BatchSink {
    builders: Vec<ColumnBuilder>,
    names: Vec<String>,
    schema: SchemaRef,
    batch_size: usize,
    /// Rows in the builders.
    count: usize,
    context: String,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
}

impl RowSink for BatchSink {
    async fn put(&mut self, values: Vec<Value>) -> Result<bool> {
        for (i, value) in values.into_iter().enumerate().take(self.builders.len()) {
            self.builders[i].append(value).map_err(|e| {
                DataFusionError::Execution(format!(
                    "{}: column {}: {e}",
                    self.context, self.names[i]
                ))
            })?;
        }
        self.count += 1;
        if self.count < self.batch_size {
            return Ok(true);
        }
        let batch = finish(&self.schema, &mut self.builders, self.count)?;
        self.count = 0;
        Ok(self.tx.send(Ok(batch)).await.is_ok())
    }

    async fn end(&mut self) {
        if self.count > 0 {
            let batch = finish(&self.schema, &mut self.builders, self.count);
            self.count = 0;
            let _ = self.tx.send(batch).await;
        }
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
