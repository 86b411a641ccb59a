//! `INSERT INTO` a PostgreSQL table: rows encoded in the binary COPY format
//! and sent with `COPY … FROM STDIN` inside one transaction (its own, or a
//! session's transaction block's).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::*;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::{SinkExt, StreamExt};
use koios_connector::remote_sql::StagedStatements;
use koios_connector_sql::RemoteTable;

use crate::backend::PgBackend;
use crate::error::{pool_error, remote_error};
use crate::transaction::Pinned;
use crate::types::{PG_EPOCH_DAYS, PG_EPOCH_MICROS, PgCodec, TextKind};
use koios_connector::RemoteDialect;
use koios_connector::pgbinary::write_numeric;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Send COPY data in chunks of about this size.
const CHUNK: usize = 1 << 20;

/// Sends `rows` to `table` with one `COPY … FROM STDIN`: in its own
/// transaction on a pooled connection, or inside `pinned` (a session's
/// open transaction, which a failure aborts).
pub(crate) async fn copy_in(
    pool: &deadpool_postgres::Pool,
    source: &str,
    table: &Arc<RemoteTable<PgCodec>>,
    rows: SendableRecordBatchStream,
    pinned: Option<Arc<Pinned>>,
) -> Result<u64> {
    let context = format!("source '{source}': inserting into {}", table.name);
    let fail = |message: String| DataFusionError::Execution(format!("{context}: {message}"));
    let fail_pg = |e: tokio_postgres::Error| remote_error(&context, &e);
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| RemoteDialect::PostgreSql.quote_identifier(&c.name))
        .collect();
    let statement = format!(
        "COPY {}.{} ({}) FROM STDIN (FORMAT binary)",
        RemoteDialect::PostgreSql.quote_identifier(&table.name.schema),
        RemoteDialect::PostgreSql.quote_identifier(&table.name.table),
        columns.join(", ")
    );
    if let Some(pinned) = pinned {
        let sink = pinned
            .client()?
            .copy_in(statement.as_str())
            .await
            .map_err(fail_pg)?;
        return send_rows(sink, table, rows, &fail, &fail_pg).await;
    }
    let mut client = pool
        .get()
        .await
        .map_err(|e| fail(format!("cannot connect: {}", pool_error(&e))))?;
    let transaction = client.transaction().await.map_err(fail_pg)?;
    let sink = transaction
        .copy_in(statement.as_str())
        .await
        .map_err(fail_pg)?;
    let count = send_rows(sink, table, rows, &fail, &fail_pg).await?;
    transaction.commit().await.map_err(fail_pg)?;
    Ok(count)
}

/// Encodes `rows` in the binary COPY format into `sink`; the row count.
async fn send_rows(
    sink: tokio_postgres::CopyInSink<bytes::Bytes>,
    table: &RemoteTable<PgCodec>,
    mut rows: SendableRecordBatchStream,
    fail: &(dyn Fn(String) -> DataFusionError + Sync),
    fail_pg: &(dyn Fn(tokio_postgres::Error) -> DataFusionError + Sync),
) -> Result<u64> {
    futures::pin_mut!(sink);

    let mut buf = BytesMut::with_capacity(CHUNK + 1024);
    buf.put_slice(SIGNATURE);
    buf.put_i32(0);
    buf.put_i32(0);
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        if batch.num_columns() != table.columns.len() {
            return Err(fail(format!(
                "{} values per row given, the table has {} columns",
                batch.num_columns(),
                table.columns.len()
            )));
        }
        for row in 0..batch.num_rows() {
            buf.put_i16(table.columns.len() as i16);
            for (column, remote) in batch.columns().iter().zip(&table.columns) {
                write_field(&mut buf, column.as_ref(), row, &remote.codec)
                    .map_err(|e| fail(format!("column {}: {e}", remote.name)))?;
            }
            if buf.len() >= CHUNK {
                sink.send(buf.split().freeze()).await.map_err(fail_pg)?;
            }
        }
    }
    buf.put_i16(-1);
    sink.send(buf.split().freeze()).await.map_err(fail_pg)?;
    sink.finish().await.map_err(fail_pg)
}

impl PgBackend {
    /// `rows` appended to `table` (see [`copy_in`]).
    pub(crate) async fn insert_rows(
        &self,
        table: Arc<RemoteTable<PgCodec>>,
        rows: SendableRecordBatchStream,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<u64> {
        copy_in(&self.pool, &self.source, &table, rows, pinned).await
    }

    /// A staged change (`koios_connector_sql::staged`): the staging table
    /// created, filled with binary `COPY`, applied and dropped, in one
    /// transaction (`pinned`'s, else one of its own).
    pub(crate) async fn stage_rows(
        &self,
        staging: Arc<RemoteTable<PgCodec>>,
        rows: SendableRecordBatchStream,
        statements: StagedStatements,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<u64> {
        let what = "changing rows through a staging table";
        let (pinned, own) = match pinned {
            Some(pinned) => (pinned, false),
            None => (self.begin_pinned().await?, true),
        };
        pinned.execute(what, &statements.create_staging).await?;
        copy_in(
            &self.pool,
            &self.source,
            &staging,
            rows,
            Some(Arc::clone(&pinned)),
        )
        .await?;
        let mut count = 0;
        for statement in &statements.apply {
            count += pinned.execute(what, statement).await?;
        }
        pinned.execute(what, &statements.drop_staging).await?;
        if own {
            pinned.commit().await?;
        }
        Ok(count)
    }
}

fn write_field(
    out: &mut BytesMut,
    array: &dyn Array,
    row: usize,
    codec: &PgCodec,
) -> std::result::Result<(), String> {
    if array.is_null(row) {
        out.put_i32(-1);
        return Ok(());
    }
    let at = out.len();
    out.put_i32(0);
    write_value(out, array, row, codec)?;
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn mismatch(array: &dyn Array, codec: &PgCodec) -> String {
    format!("cannot write {} values as {codec:?}", array.data_type())
}

fn write_value(
    out: &mut BytesMut,
    array: &dyn Array,
    row: usize,
    codec: &PgCodec,
) -> std::result::Result<(), String> {
    match (codec, array.data_type()) {
        (PgCodec::Bool, DataType::Boolean) => out.put_u8(array.as_boolean().value(row) as u8),
        (PgCodec::Int2, DataType::Int16) => {
            out.put_i16(array.as_primitive::<Int16Type>().value(row))
        }
        (PgCodec::Int4, DataType::Int32) => {
            out.put_i32(array.as_primitive::<Int32Type>().value(row))
        }
        (PgCodec::Int8, DataType::Int64) => {
            out.put_i64(array.as_primitive::<Int64Type>().value(row))
        }
        (PgCodec::Oid, DataType::Int64) => {
            let v = array.as_primitive::<Int64Type>().value(row);
            out.put_u32(u32::try_from(v).map_err(|_| format!("{v} is not a valid oid"))?)
        }
        (PgCodec::Float4, DataType::Float32) => {
            out.put_f32(array.as_primitive::<Float32Type>().value(row))
        }
        (PgCodec::Float8, DataType::Float64) => {
            out.put_f64(array.as_primitive::<Float64Type>().value(row))
        }
        (PgCodec::Numeric { .. }, DataType::Decimal128(_, scale)) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            write_numeric(
                out,
                &koios_connector::decimal_string(&v.to_string(), *scale),
            )
        }
        (PgCodec::Numeric { .. }, DataType::Decimal256(_, scale)) => {
            let v = array.as_primitive::<Decimal256Type>().value(row);
            write_numeric(
                out,
                &koios_connector::decimal_string(&v.to_string(), *scale),
            )
        }
        (PgCodec::Money, DataType::Decimal128(_, 2)) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            out.put_i64(i64::try_from(v).map_err(|_| "money value out of range".to_string())?)
        }
        (PgCodec::Text { kind, .. }, DataType::Utf8) => {
            let v = array.as_string::<i32>().value(row);
            match kind {
                TextKind::Plain | TextKind::Name | TextKind::Padded | TextKind::Other => {
                    out.put_slice(v.as_bytes())
                }
                TextKind::Jsonb => {
                    out.put_u8(1);
                    out.put_slice(v.as_bytes())
                }
                TextKind::Uuid => out.put_slice(&parse_uuid(v)?),
                TextKind::Inet | TextKind::MacAddr | TextKind::MacAddr8 | TextKind::Cast => {
                    return Err("inserting into columns of this type is not supported yet".into());
                }
            }
        }
        (PgCodec::Bytea, DataType::Binary) => out.put_slice(array.as_binary::<i32>().value(row)),
        (PgCodec::Date, DataType::Date32) => {
            out.put_i32(array.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS)
        }
        (PgCodec::Time, DataType::Time64(TimeUnit::Microsecond)) => {
            out.put_i64(array.as_primitive::<Time64MicrosecondType>().value(row))
        }
        (
            PgCodec::Timestamp | PgCodec::TimestampTz,
            DataType::Timestamp(TimeUnit::Microsecond, _),
        ) => out
            .put_i64(array.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS),
        (PgCodec::Interval, DataType::Interval(IntervalUnit::MonthDayNano)) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            out.put_i64(v.nanoseconds / 1000);
            out.put_i32(v.days);
            out.put_i32(v.months);
        }
        (
            PgCodec::Array {
                element,
                element_oid,
            },
            DataType::List(_),
        ) => {
            let values = array.as_list::<i32>().value(row);
            out.put_i32(1);
            out.put_i32((values.null_count() > 0) as i32);
            out.put_u32(*element_oid);
            out.put_i32(values.len() as i32);
            out.put_i32(1);
            for i in 0..values.len() {
                write_field(out, values.as_ref(), i, element)?;
            }
        }
        _ => return Err(mismatch(array, codec)),
    }
    Ok(())
}

fn parse_uuid(text: &str) -> std::result::Result<[u8; 16], String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return Err(format!("invalid uuid: {text}"));
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("invalid uuid: {text}"))?;
    }
    Ok(out)
}
