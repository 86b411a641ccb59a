//! Bulk inserts through `LOAD DATA LOCAL INFILE`, fed from the row stream:
//! the server asks the client for the "file" the statement names, and the
//! client sends the rows, encoded as they arrive, as tab-separated text —
//! no file, and memory bounded by one batch. It is MySQL's fastest way in
//! (about 1.5× multi-row `INSERT`s here, see benches/README.md).
//!
//! The names are Koios's own (`koios_rows_N`): the handler installed on the
//! pool serves only streams registered here, so a server asking for
//! anything else — a file of this machine — gets an error, never data.
//!
//! `LOCAL` makes the server turn refused values and duplicate keys into
//! warnings (it cannot stop the client half-way), so after each load the
//! rows it took and its warnings are checked: anything short of every row
//! without a warning is an error, and the caller's transaction is undone.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::*;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::{FutureExt, StreamExt};
use koios_connector::RemoteDialect;
use koios_connector::ddl::TableName;
use koios_connector_sql::RemoteTable;
use mysql_async::prelude::Queryable;
use mysql_async::{InfileData, LocalInfileError};

use crate::error::remote_error;
use crate::types::MyCodec;

/// Streams waiting for the server to ask for them, by name.
#[derive(Default)]
pub(crate) struct InfileStreams {
    next: AtomicU64,
    waiting: Mutex<HashMap<String, InfileData>>,
}

impl InfileStreams {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, InfileData>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `data` under a fresh name for one `LOAD DATA`.
    fn register(&self, data: InfileData) -> String {
        let name = format!("koios_rows_{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.waiting().insert(name.clone(), data);
        name
    }

    fn forget(&self, name: &str) {
        self.waiting().remove(name);
    }

    /// The pool's handler: serves registered streams, and nothing else.
    pub(crate) fn handler(
        self: &Arc<Self>,
    ) -> impl Fn(&[u8]) -> futures::future::BoxFuture<'static, Result<InfileData, LocalInfileError>>
    + Send
    + Sync
    + 'static {
        let streams = Arc::clone(self);
        move |name: &[u8]| {
            let name = String::from_utf8_lossy(name).into_owned();
            let taken = streams.waiting().remove(&name);
            async move { taken.ok_or_else(|| LocalInfileError::PathIsNotInTheWhiteList(name)) }
                .boxed()
        }
    }
}

/// Appends `first` and then `rest` to `table` with one `LOAD DATA LOCAL
/// INFILE` on `tx`; the row count.
pub(crate) async fn load_rows(
    tx: &mut mysql_async::Transaction<'_>,
    streams: &InfileStreams,
    table: &RemoteTable<MyCodec>,
    first: RecordBatch,
    rest: SendableRecordBatchStream,
    context: &str,
) -> Result<u64> {
    let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let names: Arc<Vec<String>> = Arc::new(columns.clone());
    let sent = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&sent);
    let data = futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .map(move |batch| {
            let batch = batch.map_err(std::io::Error::other)?;
            let mut out = BytesMut::with_capacity(batch.get_array_memory_size());
            encode(&batch, &names, &mut out).map_err(std::io::Error::other)?;
            counted.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok::<Bytes, std::io::Error>(out.freeze())
        })
        .boxed();
    let name = TableName {
        schema: table.name.schema.clone(),
        table: table.name.table.clone(),
    };
    let stream = streams.register(data);
    let sql = RemoteDialect::MySql.load_data_sql(&name, &stream, &columns);
    let loaded = match sql {
        Ok(sql) => tx.query_drop(sql).await,
        Err(e) => {
            streams.forget(&stream);
            return Err(e);
        }
    };
    // Unclaimed if the server refused the statement before asking.
    streams.forget(&stream);
    loaded.map_err(|e| remote_error(context, &e))?;
    let sent = sent.load(Ordering::Relaxed);
    let taken = tx.affected_rows();
    let warnings = tx.get_warnings();
    if taken != sent || warnings > 0 {
        let first_warning: Option<(String, u32, String)> = tx
            .query_first("SHOW WARNINGS LIMIT 1")
            .await
            .map_err(|e| remote_error(context, &e))?;
        let why = first_warning
            .map(|(_, _, message)| format!(": MySQL said: {message}"))
            .unwrap_or_default();
        return Err(DataFusionError::Execution(format!(
            "{context}: MySQL took {taken} of {sent} rows with {warnings} warnings{why} (nothing was written)"
        )));
    }
    Ok(sent)
}

/// `batch`'s rows as `LOAD DATA` text: fields separated by tabs, rows ended
/// by newlines, `\N` for NULL, backslash, tab, newline and NUL escaped.
fn encode(batch: &RecordBatch, names: &[String], out: &mut BytesMut) -> Result<(), String> {
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.put_u8(b'\t');
            }
            field(column.as_ref(), row, out, &mut text).map_err(|e| {
                let name = names.get(i).map(String::as_str).unwrap_or("?");
                format!("column {name}: {e}")
            })?;
        }
        out.put_u8(b'\n');
    }
    Ok(())
}

fn escaped(bytes: &[u8], out: &mut BytesMut) {
    for &b in bytes {
        match b {
            b'\\' => out.put_slice(b"\\\\"),
            b'\t' => out.put_slice(b"\\t"),
            b'\n' => out.put_slice(b"\\n"),
            0 => out.put_slice(b"\\0"),
            b => out.put_u8(b),
        }
    }
}

/// One value; `text` is scratch space.
fn field(
    array: &dyn Array,
    row: usize,
    out: &mut BytesMut,
    text: &mut String,
) -> Result<(), String> {
    if array.is_null(row) {
        out.put_slice(b"\\N");
        return Ok(());
    }
    text.clear();
    let _ = match array.data_type() {
        DataType::Boolean => write!(text, "{}", array.as_boolean().value(row) as u8),
        DataType::Int8 => write!(text, "{}", array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write!(text, "{}", array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write!(text, "{}", array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write!(text, "{}", array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write!(text, "{}", array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write!(text, "{}", array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write!(text, "{}", array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => write!(text, "{}", array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(row) as f64, text)?,
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row), text)?,
        DataType::Decimal128(_, scale) => {
            let digits = array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string();
            text.push_str(&koios_connector::decimal_string(&digits, *scale));
            Ok(())
        }
        DataType::Decimal256(_, scale) => {
            let digits = array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string();
            text.push_str(&koios_connector::decimal_string(&digits, *scale));
            Ok(())
        }
        DataType::Utf8 => {
            escaped(array.as_string::<i32>().value(row).as_bytes(), out);
            return Ok(());
        }
        DataType::LargeUtf8 => {
            escaped(array.as_string::<i64>().value(row).as_bytes(), out);
            return Ok(());
        }
        DataType::Utf8View => {
            escaped(array.as_string_view().value(row).as_bytes(), out);
            return Ok(());
        }
        DataType::Binary => {
            escaped(array.as_binary::<i32>().value(row), out);
            return Ok(());
        }
        DataType::LargeBinary => {
            escaped(array.as_binary::<i64>().value(row), out);
            return Ok(());
        }
        DataType::BinaryView => {
            escaped(array.as_binary_view().value(row), out);
            return Ok(());
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row) as i64;
            let (y, m, d) = crate::types::civil_from_days(days);
            write!(text, "{y:04}-{m:02}-{d:02}")
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let (days, rest) = (
                micros.div_euclid(86_400_000_000),
                micros.rem_euclid(86_400_000_000),
            );
            let (y, m, d) = crate::types::civil_from_days(days);
            let secs = rest / 1_000_000;
            write!(
                text,
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
                secs / 3600,
                (secs / 60) % 60,
                secs % 60,
                rest % 1_000_000
            )
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            let micros = array.as_primitive::<DurationMicrosecondType>().value(row);
            let abs = micros.unsigned_abs();
            let secs = abs / 1_000_000;
            write!(
                text,
                "{}{}:{:02}:{:02}.{:06}",
                if micros < 0 { "-" } else { "" },
                secs / 3600,
                (secs / 60) % 60,
                secs % 60,
                abs % 1_000_000
            )
        }
        other => return Err(format!("cannot write {other} values")),
    };
    out.put_slice(text.as_bytes());
    Ok(())
}

/// A float as MySQL reads it back exactly (Rust's shortest round-trip
/// form); MySQL holds no NaN or infinity.
fn float(value: f64, text: &mut String) -> Result<std::fmt::Result, String> {
    if !value.is_finite() {
        return Err(format!("MySQL cannot store {value}"));
    }
    Ok(write!(text, "{value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Int32Array, StringArray};

    #[tokio::test]
    async fn serves_only_registered_streams() {
        let streams = Arc::new(InfileStreams::default());
        let handler = streams.handler();
        assert!(
            handler(b"/etc/passwd").await.is_err(),
            "a file the server names is never read"
        );
        let name = streams.register(futures::stream::empty().boxed());
        assert!(handler(name.as_bytes()).await.is_ok());
        assert!(
            handler(name.as_bytes()).await.is_err(),
            "a stream is served once"
        );
    }

    #[test]
    fn encodes_rows_as_load_data_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), Some("\\N")])),
                Arc::new(BinaryArray::from(vec![Some(&[0u8, 255][..]), None])),
            ],
        )
        .expect("batch");
        let mut out = BytesMut::new();
        encode(&batch, &["n".into(), "s".into(), "b".into()], &mut out).expect("encodes");
        assert_eq!(&out[..], b"1\ta\\tb\\\\c\\nd\t\\0\xff\n\\N\t\\\\N\t\\N\n");
    }
}
