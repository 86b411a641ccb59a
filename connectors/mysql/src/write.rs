//! Inserts: rows appended in one transaction — many rows streamed through
//! `LOAD DATA LOCAL INFILE` ([`crate::load`]), a few as parameterised
//! multi-row `INSERT` statements, Arrow values converted to MySQL values.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::*;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use koios_connector::RemoteDialect;
use koios_connector::remote_sql::StagedStatements;
use koios_connector_sql::RemoteTable;
use mysql_async::Value;
use mysql_async::prelude::Queryable;

use crate::backend::MyBackend;
use crate::error::remote_error;
use crate::load::InfileStreams;
use crate::transaction::Pinned;
use crate::types::{MyCodec, civil_from_days};

impl MyBackend {
    /// Appends `rows` in one transaction: its own on a pooled connection,
    /// or `pinned` (a session's open transaction).
    pub(crate) async fn insert_rows(
        &self,
        table: Arc<RemoteTable<MyCodec>>,
        rows: SendableRecordBatchStream,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<u64> {
        let context = self.context(&format!("inserting into {}", table.name));
        if let Some(pinned) = pinned {
            let mut guard = pinned.lock().await?;
            let Some(transaction) = guard.as_mut() else {
                return Ok(0);
            };
            return send_rows(transaction, self.bulk_path(), &table, rows, &context).await;
        }
        let mut conn = self.conn().await?;
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| remote_error(&context, &e))?;
        let total = send_rows(&mut tx, self.bulk_path(), &table, rows, &context).await?;
        tx.commit().await.map_err(|e| remote_error(&context, &e))?;
        Ok(total)
    }
}

impl MyBackend {
    /// A staged change (`koios_connector_sql::staged`): the staging table
    /// created, filled with multi-row `INSERT`s, applied and dropped, in
    /// one transaction (`pinned`'s, else one of its own); the applying
    /// statements' affected rows (found rows, as this connection counts).
    pub(crate) async fn stage_rows(
        &self,
        staging: Arc<RemoteTable<MyCodec>>,
        rows: SendableRecordBatchStream,
        statements: StagedStatements,
        pinned: Option<Arc<Pinned>>,
    ) -> Result<u64> {
        let context = self.context("changing rows through a staging table");
        let (pinned, own) = match pinned {
            Some(pinned) => (pinned, false),
            None => (self.begin_pinned().await?, true),
        };
        let count = {
            let mut guard = pinned.lock().await?;
            let Some(transaction) = guard.as_mut() else {
                return Ok(0);
            };
            let run = |e: mysql_async::Error| remote_error(&context, &e);
            transaction
                .query_drop(&statements.create_staging)
                .await
                .map_err(run)?;
            send_rows(transaction, self.bulk_path(), &staging, rows, &context).await?;
            let mut count = 0;
            for statement in &statements.apply {
                transaction.query_drop(statement).await.map_err(run)?;
                count += transaction.affected_rows();
            }
            transaction
                .query_drop(&statements.drop_staging)
                .await
                .map_err(run)?;
            count
        };
        if own {
            pinned.commit().await?;
        }
        Ok(count)
    }
}

/// A first batch at least this long goes through `LOAD DATA` (a bulk
/// copy); shorter ones (an `INSERT … VALUES`) as statements.
const LOAD_FROM_ROWS: usize = 1000;

impl MyBackend {
    /// The streams `LOAD DATA` is fed from, when the server takes it.
    fn bulk_path(&self) -> Option<&InfileStreams> {
        self.load_data.then_some(self.infile.as_ref())
    }
}

/// Sends `rows` on `tx`: through `LOAD DATA LOCAL INFILE` when they come
/// in bulk and the server takes it (`infile`), else as multi-row
/// `INSERT`s.
async fn send_rows(
    tx: &mut mysql_async::Transaction<'_>,
    infile: Option<&InfileStreams>,
    table: &RemoteTable<MyCodec>,
    mut rows: SendableRecordBatchStream,
    context: &str,
) -> Result<u64> {
    let Some(first) = rows.next().await.transpose()? else {
        return Ok(0);
    };
    if let Some(infile) = infile.filter(|_| first.num_rows() >= LOAD_FROM_ROWS) {
        return crate::load::load_rows(tx, infile, table, first, rows, context).await;
    }
    let schema = rows.schema();
    let rows: SendableRecordBatchStream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(async move { Ok(first) }).chain(rows),
        ),
    );
    insert_statements(tx, table, rows, context).await
}

/// Sends `rows` as parameterised multi-row `INSERT`s on `tx`.
async fn insert_statements<Q: Queryable>(
    tx: &mut Q,
    table: &RemoteTable<MyCodec>,
    mut rows: SendableRecordBatchStream,
    context: &str,
) -> Result<u64> {
    {
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| RemoteDialect::MySql.quote_identifier(&c.name))
            .collect();
        let per_statement = (60_000 / columns.len().max(1)).clamp(1, 1000);
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
                    .map_err(|e| remote_error(context, &e))?;
                total += (end - start) as u64;
                start = end;
            }
        }
        Ok(total)
    }
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
