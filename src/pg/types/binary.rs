//! PostgreSQL binary (send/recv) formats for Arrow values.

use arrow::array::*;
use arrow::datatypes::*;
use bytes::{BufMut, BytesMut};
use datafusion::error::{DataFusionError, Result};
use postgres_types::Type;

use super::text::{
    TextContext, binary_value, date_days, decimal_parts, format_decimal, interval_parts,
    list_value, string_value, time_micros, timestamp_micros, value_is_null, write_text,
};
use super::{innermost, pg_type};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

/// Appends the binary form of a non-null value (without length prefix).
pub fn write_binary(
    out: &mut BytesMut,
    array: &dyn Array,
    row: usize,
    ctx: &TextContext,
) -> Result<()> {
    let dt = array.data_type();
    match dt {
        DataType::Boolean => out.put_u8(array.as_boolean().value(row) as u8),
        DataType::Int8 => out.put_i16(array.as_primitive::<Int8Type>().value(row) as i16),
        DataType::Int16 => out.put_i16(array.as_primitive::<Int16Type>().value(row)),
        DataType::UInt8 => out.put_i16(array.as_primitive::<UInt8Type>().value(row) as i16),
        DataType::Int32 => out.put_i32(array.as_primitive::<Int32Type>().value(row)),
        DataType::UInt16 => out.put_i32(array.as_primitive::<UInt16Type>().value(row) as i32),
        DataType::Int64 => out.put_i64(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => out.put_i64(array.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::Float16 => out.put_f32(array.as_primitive::<Float16Type>().value(row).to_f32()),
        DataType::Float32 => out.put_f32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => out.put_f64(array.as_primitive::<Float64Type>().value(row)),
        DataType::UInt64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => {
            let (unscaled, scale) = decimal_parts(array, row).unwrap_or_default();
            write_numeric(out, &format_decimal(&unscaled, scale));
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            out.put_slice(string_value(array, row).unwrap_or_default().as_bytes())
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            out.put_slice(binary_value(array, row).unwrap_or_default())
        }
        DataType::Date32 | DataType::Date64 => {
            let days = date_days(array, row).unwrap_or_default() - PG_EPOCH_DAYS;
            out.put_i32(days.clamp(i32::MIN as i64, i32::MAX as i64) as i32)
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            out.put_i64(time_micros(array, row).unwrap_or_default())
        }
        DataType::Timestamp(_, _) => out.put_i64(
            timestamp_micros(array, row)
                .unwrap_or_default()
                .saturating_sub(PG_EPOCH_MICROS),
        ),
        DataType::Interval(_) | DataType::Duration(_) => {
            let (months, days, micros) = interval_parts(array, row).unwrap_or_default();
            out.put_i64(micros);
            out.put_i32(days);
            out.put_i32(months);
        }
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::FixedSizeList(field, _)
        | DataType::ListView(field)
        | DataType::LargeListView(field) => {
            let values = list_value(array, row).ok_or_else(|| unsupported(dt))?;
            write_array(
                out,
                values.as_ref(),
                &pg_type(innermost(field).data_type()),
                ctx,
            )?;
        }
        DataType::Struct(_) => {
            let strukt = array.as_struct();
            out.put_i32(strukt.num_columns() as i32);
            for column in strukt.columns() {
                out.put_u32(pg_type(column.data_type()).oid());
                write_element(out, column.as_ref(), row, ctx)?;
            }
        }
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            write_binary(out, dict.values().as_ref(), key, ctx)?;
        }
        DataType::Null => {}
        _ => {
            // Types presented as text (maps, unions) send their text form.
            let mut text = String::new();
            write_text(&mut text, array, row, ctx)?;
            out.put_slice(text.as_bytes());
        }
    }
    Ok(())
}

/// A length-prefixed element (`-1` for NULL), as inside arrays and records.
fn write_element(
    out: &mut BytesMut,
    array: &dyn Array,
    row: usize,
    ctx: &TextContext,
) -> Result<()> {
    if value_is_null(array, row) {
        out.put_i32(-1);
        return Ok(());
    }
    let at = out.len();
    out.put_i32(0);
    write_binary(out, array, row, ctx)?;
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// PostgreSQL's array_send: dimensions, then the flattened elements.
fn write_array(
    out: &mut BytesMut,
    values: &dyn Array,
    element: &Type,
    ctx: &TextContext,
) -> Result<()> {
    // Walk down nested lists to find each dimension's length; PostgreSQL
    // arrays are rectangular, so ragged nests cannot be sent.
    let mut dims = vec![values.len()];
    let mut leaves: Vec<ArrayRef> = vec![make_array(values.to_data())];
    while let Some(first) = leaves.first() {
        if !matches!(
            first.data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
        ) {
            break;
        }
        let mut next = Vec::new();
        let mut width = None;
        for level in &leaves {
            for i in 0..level.len() {
                let child = list_value(level.as_ref(), i)
                    .filter(|_| !level.is_null(i))
                    .ok_or_else(ragged)?;
                if *width.get_or_insert(child.len()) != child.len() {
                    return Err(ragged());
                }
                next.push(child);
            }
        }
        match width {
            Some(w) => dims.push(w),
            None => break,
        }
        leaves = next;
    }
    let has_nulls = leaves
        .iter()
        .any(|l| (0..l.len()).any(|i| value_is_null(l.as_ref(), i)));
    let total: usize = leaves.iter().map(|l| l.len()).sum();
    if total == 0 {
        out.put_i32(0);
        out.put_i32(0);
        out.put_u32(element.oid());
        return Ok(());
    }
    out.put_i32(dims.len() as i32);
    out.put_i32(has_nulls as i32);
    out.put_u32(element.oid());
    for dim in &dims {
        out.put_i32(*dim as i32);
        out.put_i32(1);
    }
    for leaf in &leaves {
        for i in 0..leaf.len() {
            write_element(out, leaf.as_ref(), i, ctx)?;
        }
    }
    Ok(())
}

/// PostgreSQL's numeric_send from a decimal string such as `-123.4500`.
pub use koios_connector::pgbinary::write_numeric;

/// Decodes numeric_send bytes into a decimal string (used for parameters).
pub fn read_numeric(bytes: &[u8]) -> Result<String> {
    koios_connector::pgbinary::read_numeric(bytes).map_err(DataFusionError::Execution)
}

fn ragged() -> DataFusionError {
    DataFusionError::Execution(
        "cannot send a nested list with rows of different lengths as a PostgreSQL array; \
         request text format for this column"
            .into(),
    )
}

fn unsupported(dt: &DataType) -> DataFusionError {
    DataFusionError::NotImplemented(format!("cannot send values of type {dt} in binary format"))
}
