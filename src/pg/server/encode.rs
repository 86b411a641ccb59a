//! Record batches to `DataRow` messages, in text or binary per column.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use bytes::{BufMut, BytesMut};
use datafusion::error::Result;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;

use crate::pg::types::binary::write_binary;
use crate::pg::types::text::{TextContext, write_text};
use crate::pg::types::{pg_type, type_size};

/// Row description of `schema`, each column in the format the client asked for.
pub fn field_infos(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let ty = pg_type(field.data_type());
            let size = type_size(&ty);
            FieldInfo::new(field.name().clone(), None, None, ty, format.format_for(i))
                .with_type_size(size)
        })
        .collect()
}

/// Encodes every row of `batch`. Dictionary columns are unpacked first so
/// each value is encoded once per distinct type, not per dictionary layout.
pub fn encode_batch(
    batch: &RecordBatch,
    fields: &[FieldInfo],
    ctx: &TextContext,
) -> Result<Vec<DataRow>> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Dictionary(_, value) => arrow::compute::cast(c, value),
            _ => Ok(Arc::clone(c)),
        })
        .collect::<std::result::Result<_, _>>()?;
    let binary: Vec<bool> = (0..columns.len())
        .map(|i| {
            fields
                .get(i)
                .is_some_and(|f| f.format() == FieldFormat::Binary)
        })
        .collect();
    let nulls: Vec<Option<arrow::buffer::NullBuffer>> =
        columns.iter().map(|c| c.logical_nulls()).collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut buf = BytesMut::with_capacity(batch.num_rows().min(1024) * 64);
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for ((column, is_binary), nulls) in columns.iter().zip(&binary).zip(&nulls) {
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                buf.put_i32(-1);
                continue;
            }
            if *is_binary {
                let at = buf.len();
                buf.put_i32(0);
                write_binary(&mut buf, column.as_ref(), row, ctx)?;
                let len = (buf.len() - at - 4) as i32;
                buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
            } else {
                text.clear();
                write_text(&mut text, column.as_ref(), row, ctx)?;
                buf.put_i32(text.len() as i32);
                buf.put_slice(text.as_bytes());
            }
        }
        rows.push(DataRow::new(buf.split(), columns.len() as i16));
    }
    Ok(rows)
}

/// Casts `batch` to `schema` where column types differ, so rows match the
/// row description a client received earlier (extended protocol Describe).
pub fn conform(batch: RecordBatch, schema: &Arc<Schema>) -> Result<RecordBatch> {
    if batch.schema().fields().len() != schema.fields().len()
        || batch
            .schema()
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.data_type() == b.data_type())
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() || f.data_type() == &DataType::Null {
                Ok(Arc::clone(c))
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let fields: Vec<_> = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            f.as_ref()
                .clone()
                .with_data_type(c.data_type().clone())
                .with_nullable(true)
        })
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
