//! Rows written straight into the `DataRow` bodies Koios sends a client,
//! for a plan that is one pushed-down query: the same values, checks and
//! errors as decoding into Arrow and writing that, without the batches in
//! between.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use deadpool_postgres::Pool;
use koios_connector::pgtext::{DataRowStream, StartDataRows};
use koios_connector_sql::DeferredSql;

use crate::backend::PgBackend;
use crate::decode::put_value;
use crate::error::remote_error;
use crate::scan::{ActiveRead, RawValue, Read, Source, StartError, start_read};
use crate::statements::RepeatedStatements;
use crate::types::PgCodec;

impl PgBackend {
    pub(crate) fn data_rows(
        &self,
        sql: DeferredSql,
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
            match sql() {
                Ok(sql) => read_rows(pool, statements, sql, params, written, context),
                Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
            }
        }))
    }
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
            // Direct rows run outside transaction blocks only (the engine
            // reads through the plan inside one): always pooled.
            start_read(&pool, &statements, Read::Rows(sql, params), None)
                .await
                .map_err(|e| match e {
                    StartError::Pool(message, sqlstate) => {
                        crate::error::connect_error(&context, &message, sqlstate)
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
