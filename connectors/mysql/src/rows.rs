//! Rows written straight into the `DataRow` bodies Koios sends a client,
//! for a plan that is one pushed-down query: the same values, checks and
//! errors as decoding into Arrow and writing that (both read a value with
//! [`decode`]), without the batches in between.

use bytes::{BufMut, BytesMut};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use futures::StreamExt;
use koios_connector::pgtext::{self, DataRowStream, StartDataRows};
use koios_connector_sql::DeferredSql;
use mysql_async::{Opts, Pool, Value};

use crate::backend::MyBackend;
use crate::options::InvalidDates;
use crate::scan::{RowSink, run_pooled};
use crate::types::{Decoded, MyCodec, decode};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Rows a read may run ahead of the client by.
const ROWS_AHEAD: usize = 64;

/// Bytes a row buffer grows by when a row may not fit: rows are split off
/// one shared allocation instead of each allocating its own.
const ROW_BUFFER_CHUNK: usize = 8 * 1024;

impl MyBackend {
    pub(crate) fn data_rows(
        &self,
        sql: DeferredSql,
        params: Vec<ScalarValue>,
        codecs: Vec<MyCodec>,
        schema: &SchemaRef,
        columns: Vec<usize>,
        what: String,
    ) -> Option<StartDataRows> {
        // Values are written into MySQL queries; none should be left.
        if !params.is_empty() {
            return None;
        }
        let names = schema.fields();
        let mut written = columns
            .into_iter()
            .map(|i| {
                let codec = codecs.get(i).filter(|c| writes_directly(c))?;
                Some(RowColumn {
                    index: i,
                    codec: codec.clone(),
                    name: names.get(i)?.name().clone(),
                    binary: false,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        // One round trip (text) unless a float's text would not give its
        // exact value back (MariaDB prints FLOAT with 6 digits).
        let text = written
            .iter()
            .all(|c| !matches!(c.codec, MyCodec::Float | MyCodec::Double));
        let context = self.context(&what);
        let pool = self.pool.clone();
        let kill_opts = self.opts.clone();
        let invalid_dates = self.options.invalid_dates;
        Some(Box::new(move |binary: Vec<bool>| {
            for (column, binary) in written.iter_mut().zip(binary) {
                column.binary = binary;
            }
            match sql() {
                Ok(sql) => read_rows(pool, kill_opts, sql, text, written, invalid_dates, context),
                Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
            }
        }))
    }
}

/// Whether values of `codec` are written straight into rows: not
/// `TIMESTAMP` (its text depends on the session's time zone) nor `TIME`
/// (an interval), which go through Arrow.
fn writes_directly(codec: &MyCodec) -> bool {
    !matches!(codec, MyCodec::Timestamp | MyCodec::Time)
}

/// A result column written into `DataRow` bodies: where it is in the
/// result, how to read it, its name for errors, and whether the client
/// reads it in binary.
struct RowColumn {
    index: usize,
    codec: MyCodec,
    name: String,
    binary: bool,
}

/// Runs `sql` on a pooled connection (direct rows are served outside
/// transaction blocks only: inside one the engine reads through the plan),
/// through the text protocol with `text`, and yields each row as a
/// `DataRow` body. Dropping the stream before its end stops the statement
/// on the server.
fn read_rows(
    pool: Pool,
    kill_opts: Opts,
    sql: String,
    text: bool,
    columns: Vec<RowColumn>,
    invalid_dates: InvalidDates,
    context: String,
) -> DataRowStream {
    let (tx, rx) = tokio::sync::mpsc::channel(ROWS_AHEAD);
    let mut sink = RowsSink {
        columns,
        invalid_dates,
        context,
        buffer: BytesMut::new(),
        scratch: String::new(),
        tx,
    };
    let read = tokio::spawn(async move {
        let context = sink.context.clone();
        if let Err(e) = run_pooled(&pool, kill_opts, &sql, &context, &mut sink, text).await {
            let _ = sink.tx.send(Err(e)).await;
        }
    });
    // Aborting the read drops its connection's `KillOnDrop` guard.
    let abort = AbortOnDrop(read.abort_handle());
    futures::stream::unfold((rx, abort), |(mut rx, abort)| async move {
        let row = rx.recv().await?;
        Some((row, (rx, abort)))
    })
    .boxed()
}

/// Aborts the read task when the rows' stream is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes each row as one `DataRow` body and sends it on.
struct RowsSink {
    columns: Vec<RowColumn>,
    invalid_dates: InvalidDates,
    context: String,
    /// Rows are split off this shared allocation.
    buffer: BytesMut,
    /// Reused while writing a value as text.
    scratch: String,
    tx: tokio::sync::mpsc::Sender<Result<BytesMut>>,
}

impl RowSink for RowsSink {
    async fn put(&mut self, values: Vec<Value>) -> Result<bool> {
        if self.buffer.capacity() - self.buffer.len() < ROW_BUFFER_CHUNK / 4 {
            self.buffer.reserve(ROW_BUFFER_CHUNK);
        }
        for column in &self.columns {
            let value = values.get(column.index).unwrap_or(&Value::NULL);
            put_value(
                &column.codec,
                value,
                column.binary,
                self.invalid_dates,
                &mut self.buffer,
                &mut self.scratch,
            )
            .map_err(|e| {
                DataFusionError::Execution(format!("{}: column {}: {e}", self.context, column.name))
            })?;
        }
        Ok(self.tx.send(Ok(self.buffer.split())).await.is_ok())
    }

    async fn end(&mut self) {}
}

/// Appends one value to a `DataRow` body as Koios writes the Arrow value
/// [`crate::types::ColumnBuilder`] makes of it to a client: in text
/// (`koios_connector::pgtext`) or in `binary` (Koios's send format of the
/// Arrow type: `tinyint` and unsigned integers widen, `bigint unsigned`
/// and `BIT` are `numeric`). `scratch` is reused between values. Only for
/// codecs that [`writes_directly`].
fn put_value(
    codec: &MyCodec,
    value: &Value,
    binary: bool,
    invalid_dates: InvalidDates,
    out: &mut BytesMut,
    scratch: &mut String,
) -> Result<(), String> {
    let scale = match codec {
        MyCodec::Decimal { scale, .. } => *scale,
        _ => 0,
    };
    scratch.clear();
    match decode(codec, value, invalid_dates)? {
        Decoded::Null => out.put_i32(-1),
        Decoded::Bool(b) if binary => put(out, &[b as u8]),
        Decoded::Bool(b) => put(out, if b { b"t" } else { b"f" }),
        Decoded::Int(v) if binary => match codec {
            // Arrow's Int8 and Int16 (and YEAR) are int2.
            MyCodec::Int { bits: 32, .. } => put(out, &(v as i32).to_be_bytes()),
            MyCodec::Int { bits: 64, .. } => put(out, &v.to_be_bytes()),
            _ => put(out, &(v as i16).to_be_bytes()),
        },
        Decoded::Int(v) => put(out, itoa::Buffer::new().format(v).as_bytes()),
        Decoded::UInt(v) if binary => match codec {
            // UInt8 is int2, UInt16 int4, UInt32 int8; UInt64 (and BIT) numeric.
            MyCodec::Int { bits: 8, .. } => put(out, &(v as i16).to_be_bytes()),
            MyCodec::Int { bits: 16, .. } => put(out, &(v as i32).to_be_bytes()),
            MyCodec::Int { bits: 32, .. } => put(out, &(v as i64).to_be_bytes()),
            _ => put_numeric(out, itoa::Buffer::new().format(v)),
        },
        Decoded::UInt(v) => put(out, itoa::Buffer::new().format(v).as_bytes()),
        Decoded::Float(f) if binary => put(out, &f.to_be_bytes()),
        Decoded::Float(f) => put(out, pgtext::format_f32(f).as_bytes()),
        Decoded::Double(f) if binary => put(out, &f.to_be_bytes()),
        Decoded::Double(f) => put(out, pgtext::format_f64(f).as_bytes()),
        Decoded::Decimal128(v) => {
            koios_connector::push_decimal_i128(scratch, v, scale);
            put_decimal(out, scratch, binary)
        }
        Decoded::Decimal256(v) => {
            koios_connector::push_decimal(scratch, &v.to_string(), scale);
            put_decimal(out, scratch, binary)
        }
        Decoded::Text(text) => put(out, text.as_bytes()),
        Decoded::Bytes(b) if binary => put(out, b),
        Decoded::Bytes(b) => put(out, pgtext::format_bytea(b).as_bytes()),
        Decoded::Days(days) if binary => put(out, &(days - PG_EPOCH_DAYS).to_be_bytes()),
        Decoded::Days(days) => put(out, pgtext::format_date(days as i64).as_bytes()),
        Decoded::Micros(micros) if binary => {
            put(out, &micros.saturating_sub(PG_EPOCH_MICROS).to_be_bytes())
        }
        Decoded::Micros(micros) => put(out, pgtext::format_timestamp(micros).as_bytes()),
    }
    Ok(())
}

/// Appends one value: its length, then its bytes.
fn put(out: &mut BytesMut, bytes: &[u8]) {
    out.put_i32(bytes.len() as i32);
    out.put_slice(bytes);
}

/// Appends a decimal string as `numeric` text or in numeric_send format.
fn put_decimal(out: &mut BytesMut, decimal: &str, binary: bool) {
    if binary {
        put_numeric(out, decimal)
    } else {
        put(out, decimal.as_bytes())
    }
}

/// Appends a decimal string in numeric_send format, length first.
fn put_numeric(out: &mut BytesMut, decimal: &str) {
    let at = out.len();
    out.put_i32(0);
    koios_connector::pgbinary::write_numeric(out, decimal);
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
