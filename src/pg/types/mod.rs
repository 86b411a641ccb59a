//! PostgreSQL's view of Arrow data: type mapping, text and binary encodings.
//!
//! Clients parse what they receive, so values must look exactly as a
//! PostgreSQL 15 server renders them (`t`/`f`, `{1,2}`, `\x00ff`, timestamps
//! with the session time zone, floats as with `extra_float_digits = 1`), and
//! binary values must follow PostgreSQL's send/recv formats.

pub mod arrays;
pub mod binary;
pub mod params;
pub mod table;
pub mod text;

use arrow::datatypes::{DataType, Field};
use postgres_types::Type;

/// The PostgreSQL type a column of Arrow type `dt` is presented as.
pub fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Null => Type::TEXT,
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => Type::NUMERIC,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Duration(_) | DataType::Interval(_) => Type::INTERVAL,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => array_type(&pg_type(innermost(f).data_type())),
        DataType::Struct(_) => Type::RECORD,
        DataType::Dictionary(_, value) => pg_type(value),
        DataType::RunEndEncoded(_, values) => pg_type(values.data_type()),
        DataType::Map(_, _) | DataType::Union(_, _) => Type::TEXT,
    }
}

/// The element field of the deepest list in a nest of lists.
pub fn innermost(field: &Field) -> &Field {
    match field.data_type() {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => innermost(f),
        _ => field,
    }
}

/// The array type whose elements are `element` (`int8` → `int8[]`).
pub fn array_type(element: &Type) -> Type {
    match *element {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::INTERVAL => Type::INTERVAL_ARRAY,
        Type::RECORD => Type::RECORD_ARRAY,
        Type::UUID => Type::UUID_ARRAY,
        Type::JSON => Type::JSON_ARRAY,
        Type::JSONB => Type::JSONB_ARRAY,
        _ => Type::TEXT_ARRAY,
    }
}

/// The Arrow type a parameter declared as PostgreSQL type `ty` takes.
pub fn arrow_type(ty: &Type) -> Option<DataType> {
    use arrow::datatypes::{IntervalUnit, TimeUnit};
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 | Type::OID => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        // PostgreSQL's numeric is unbounded; this is the widest exact Arrow decimal
        // that still computes quickly. Wider values fail loudly when cast.
        Type::NUMERIC => DataType::Decimal128(38, 10),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::JSON
        | Type::JSONB
        | Type::UUID
        | Type::CHAR => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        // `_int4` → List(Int32). (int2vector and oidvector share the array
        // binary format but not its text form, so they are left out.)
        _ => match ty.kind() {
            postgres_types::Kind::Array(element) if ty.name().starts_with('_') => DataType::List(
                std::sync::Arc::new(Field::new_list_field(arrow_type(element)?, true)),
            ),
            _ => return None,
        },
    })
}

/// `pg_type.typlen` of a type, sent in row descriptions.
pub fn type_size(ty: &Type) -> i16 {
    match *ty {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE | Type::OID => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::INTERVAL | Type::UUID => 16,
        _ => -1,
    }
}

/// Renders batches as psql's aligned output (for `koios query`).
pub fn render_table(
    schema: &arrow::datatypes::Schema,
    batches: &[arrow::array::RecordBatch],
    settings: &crate::engine::settings::Settings,
) -> datafusion::error::Result<String> {
    let ctx = text::TextContext {
        time_zone: crate::engine::settings::parse_time_zone(settings.time_zone())
            .unwrap_or_else(|| text::TextContext::default().time_zone),
    };
    let mut table = table::TextTable {
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        right_aligned: schema
            .fields()
            .iter()
            .map(|f| table::is_numeric_type(&pg_type(f.data_type())))
            .collect(),
        rows: Vec::new(),
    };
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut cells = Vec::with_capacity(batch.num_columns());
            for column in batch.columns() {
                if text::value_is_null(column.as_ref(), row) {
                    cells.push(None);
                } else {
                    let mut cell = String::new();
                    text::write_text(&mut cell, column.as_ref(), row, &ctx)?;
                    cells.push(Some(cell));
                }
            }
            table.rows.push(cells);
        }
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn maps_types() {
        assert_eq!(pg_type(&DataType::Int64), Type::INT8);
        assert_eq!(pg_type(&DataType::Utf8View), Type::TEXT);
        let list = DataType::List(Arc::new(Field::new_list_field(
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        )));
        assert_eq!(pg_type(&list), Type::INT4_ARRAY);
        let ints = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
        assert_eq!(arrow_type(&Type::INT4_ARRAY), Some(ints.clone()));
        assert_eq!(arrow_type(&Type::OID_ARRAY), Some(ints));
        assert!(matches!(
            arrow_type(&Type::TEXT_ARRAY),
            Some(DataType::List(f)) if f.data_type() == &DataType::Utf8
        ));
        assert_eq!(arrow_type(&Type::INT2_VECTOR), None);
        assert_eq!(arrow_type(&Type::RECORD_ARRAY), None);
    }
}
