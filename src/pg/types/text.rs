//! PostgreSQL text output format for Arrow values.
//!
//! Each function renders what PostgreSQL 15 prints for the corresponding type
//! with default settings (`DateStyle = ISO`, `IntervalStyle = postgres`,
//! `extra_float_digits = 1`), so clients parsing text results see no difference.

use std::fmt::Write;

use arrow::array::timezone::Tz;
use arrow::array::*;
use arrow::datatypes::*;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};

/// Settings that change how values render.
#[derive(Debug, Clone)]
pub struct TextContext {
    /// Session time zone for `timestamptz`.
    pub time_zone: Tz,
}

impl Default for TextContext {
    fn default() -> Self {
        Self {
            time_zone: crate::engine::settings::parse_time_zone("UTC")
                .expect("UTC is a valid zone"),
        }
    }
}

pub use koios_connector::decimal_string as format_decimal;
pub use koios_connector::pgtext::{
    format_bytea, format_date, format_f32, format_f64, format_interval, format_time,
    format_timestamp, format_timestamptz,
};

/// Rounds a value in `unit` to microseconds (PostgreSQL's resolution).
pub fn to_micros(value: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1_000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => (value as i128 + 500).div_euclid(1_000) as i64,
    }
}

/// Months, days and microseconds of an interval-like value.
pub fn interval_parts(array: &dyn Array, row: usize) -> Option<(i32, i32, i64)> {
    Some(match array.data_type() {
        DataType::Interval(IntervalUnit::YearMonth) => (
            array.as_primitive::<IntervalYearMonthType>().value(row),
            0,
            0,
        ),
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            (0, v.days, v.milliseconds as i64 * 1000)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            (
                v.months,
                v.days,
                to_micros(v.nanoseconds, TimeUnit::Nanosecond),
            )
        }
        DataType::Duration(unit) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
            };
            (0, 0, to_micros(raw, *unit))
        }
        _ => return None,
    })
}

/// Microseconds since the epoch of a timestamp value.
pub fn timestamp_micros(array: &dyn Array, row: usize) -> Option<i64> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return None;
    };
    let raw = match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    };
    Some(to_micros(raw, *unit))
}

/// Microseconds since midnight of a time value.
pub fn time_micros(array: &dyn Array, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Time32(TimeUnit::Second) => {
            array.as_primitive::<Time32SecondType>().value(row) as i64 * 1_000_000
        }
        DataType::Time32(_) => {
            array.as_primitive::<Time32MillisecondType>().value(row) as i64 * 1000
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            array.as_primitive::<Time64MicrosecondType>().value(row)
        }
        DataType::Time64(_) => to_micros(
            array.as_primitive::<Time64NanosecondType>().value(row),
            TimeUnit::Nanosecond,
        ),
        _ => return None,
    })
}

/// Days since the epoch of a date value.
pub fn date_days(array: &dyn Array, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Date32 => array.as_primitive::<Date32Type>().value(row) as i64,
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .value(row)
            .div_euclid(86_400_000),
        _ => return None,
    })
}

/// The unscaled integer text and scale of a decimal value.
pub fn decimal_parts(array: &dyn Array, row: usize) -> Option<(String, i8)> {
    Some(match array.data_type() {
        DataType::Decimal32(_, s) => (
            array.as_primitive::<Decimal32Type>().value(row).to_string(),
            *s,
        ),
        DataType::Decimal64(_, s) => (
            array.as_primitive::<Decimal64Type>().value(row).to_string(),
            *s,
        ),
        DataType::Decimal128(_, s) => (
            array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string(),
            *s,
        ),
        DataType::Decimal256(_, s) => (
            array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string(),
            *s,
        ),
        DataType::UInt64 => (array.as_primitive::<UInt64Type>().value(row).to_string(), 0),
        _ => return None,
    })
}

/// The bytes of a binary value.
pub fn binary_value(array: &dyn Array, row: usize) -> Option<&[u8]> {
    Some(match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().value(row),
        DataType::LargeBinary => array.as_binary::<i64>().value(row),
        DataType::BinaryView => array.as_binary_view().value(row),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(row),
        _ => return None,
    })
}

/// The text of a string value.
pub fn string_value(array: &dyn Array, row: usize) -> Option<&str> {
    Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row),
        DataType::Utf8View => array.as_string_view().value(row),
        _ => return None,
    })
}

/// The child array of a list value at `row`.
pub fn list_value(array: &dyn Array, row: usize) -> Option<ArrayRef> {
    Some(match array.data_type() {
        DataType::List(_) => array.as_list::<i32>().value(row),
        DataType::LargeList(_) => array.as_list::<i64>().value(row),
        DataType::FixedSizeList(_, _) => array.as_fixed_size_list().value(row),
        DataType::ListView(_) => array.as_list_view::<i32>().value(row),
        DataType::LargeListView(_) => array.as_list_view::<i64>().value(row),
        _ => return None,
    })
}

/// Whether a value is NULL, including in arrays without a validity buffer of
/// their own (`NullArray`, dictionaries whose values are null).
pub fn value_is_null(array: &dyn Array, row: usize) -> bool {
    match array.data_type() {
        DataType::Null => true,
        DataType::Dictionary(_, _) | DataType::RunEndEncoded(_, _) => {
            array.logical_nulls().is_some_and(|n| n.is_null(row))
        }
        _ => array.is_null(row),
    }
}

/// Appends the text form of a non-null value.
pub fn write_text(
    out: &mut String,
    array: &dyn Array,
    row: usize,
    ctx: &TextContext,
) -> Result<()> {
    let dt = array.data_type();
    match dt {
        DataType::Boolean => out.push(if array.as_boolean().value(row) {
            't'
        } else {
            'f'
        }),
        DataType::Int8 => push_display(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push_display(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push_display(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push_display(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => push_display(out, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => push_display(out, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => push_display(out, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => push_display(out, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => out.push_str(&format_f32(
            array.as_primitive::<Float16Type>().value(row).to_f32(),
        )),
        DataType::Float32 => {
            out.push_str(&format_f32(array.as_primitive::<Float32Type>().value(row)))
        }
        DataType::Float64 => {
            out.push_str(&format_f64(array.as_primitive::<Float64Type>().value(row)))
        }
        // The common decimals without an intermediate string.
        DataType::Decimal128(_, scale) => koios_connector::push_decimal_i128(
            out,
            array.as_primitive::<Decimal128Type>().value(row),
            *scale,
        ),
        DataType::Decimal64(_, scale) => koios_connector::push_decimal_i128(
            out,
            array.as_primitive::<Decimal64Type>().value(row).into(),
            *scale,
        ),
        DataType::Decimal32(_, _) | DataType::Decimal256(_, _) => {
            let (unscaled, scale) = decimal_parts(array, row).unwrap_or_default();
            out.push_str(&format_decimal(&unscaled, scale));
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            out.push_str(string_value(array, row).unwrap_or_default())
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            out.push_str(&format_bytea(binary_value(array, row).unwrap_or_default()))
        }
        DataType::Date32 | DataType::Date64 => {
            out.push_str(&format_date(date_days(array, row).unwrap_or_default()))
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            out.push_str(&format_time(time_micros(array, row).unwrap_or_default()))
        }
        DataType::Timestamp(_, None) => out.push_str(&format_timestamp(
            timestamp_micros(array, row).unwrap_or_default(),
        )),
        DataType::Timestamp(_, Some(_)) => out.push_str(&format_timestamptz(
            timestamp_micros(array, row).unwrap_or_default(),
            &ctx.time_zone,
        )),
        DataType::Interval(_) | DataType::Duration(_) => {
            let (months, days, micros) = interval_parts(array, row).unwrap_or_default();
            out.push_str(&format_interval(months, days, micros));
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => {
            let values = list_value(array, row).ok_or_else(|| unsupported(dt))?;
            write_array_literal(out, values.as_ref(), ctx)?;
        }
        DataType::Struct(_) => {
            let strukt = array.as_struct();
            out.push('(');
            for (i, column) in strukt.columns().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if value_is_null(column.as_ref(), row) {
                    continue;
                }
                let mut element = String::new();
                write_text(&mut element, column.as_ref(), row, ctx)?;
                push_quoted_if_needed(
                    out,
                    &element,
                    |c| matches!(c, '"' | '\\' | '(' | ')' | ',') || is_pg_space(c),
                    false,
                    '"',
                );
            }
            out.push(')');
        }
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            let values = dict.values();
            if values.is_null(key) {
                out.push_str("");
            } else {
                write_text(out, values.as_ref(), key, ctx)?;
            }
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            let _ = write!(out, "{}", formatter.value(row));
        }
    }
    Ok(())
}

/// `{a,b,NULL}` with PostgreSQL's quoting of array elements.
fn write_array_literal(out: &mut String, values: &dyn Array, ctx: &TextContext) -> Result<()> {
    out.push('{');
    let nested = matches!(
        values.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    );
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        if value_is_null(values, i) {
            out.push_str("NULL");
        } else if nested {
            let inner = list_value(values, i).ok_or_else(|| unsupported(values.data_type()))?;
            write_array_literal(out, inner.as_ref(), ctx)?;
        } else {
            let mut element = String::new();
            write_text(&mut element, values, i, ctx)?;
            let is_null_word = element.eq_ignore_ascii_case("null");
            push_quoted_if_needed(
                out,
                &element,
                |c| matches!(c, '{' | '}' | '"' | '\\' | ',') || is_pg_space(c),
                is_null_word,
                '\\',
            );
        }
    }
    out.push('}');
    Ok(())
}

/// Quotes `element` when empty, when `must_quote` matches a character, or when
/// forced. Inside quotes, `"` and `\` are escaped: arrays use a backslash, records
/// double the character (`escape_with = '"'`) except for backslash, which doubles too.
fn push_quoted_if_needed(
    out: &mut String,
    element: &str,
    must_quote: impl Fn(char) -> bool,
    force: bool,
    escape_with: char,
) {
    if !(force || element.is_empty() || element.chars().any(&must_quote)) {
        out.push_str(element);
        return;
    }
    out.push('"');
    for c in element.chars() {
        if c == '"' || c == '\\' {
            out.push(if escape_with == '\\' { '\\' } else { c });
        }
        out.push(c);
    }
    out.push('"');
}

fn push_display(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn unsupported(dt: &DataType) -> DataFusionError {
    DataFusionError::NotImplemented(format!("cannot render values of type {dt} as text"))
}

/// The white space PostgreSQL quotes array and record elements for: C's
/// `isspace` in ASCII, so a non-breaking space (U+00A0) is not quoted.
fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_postgres() {
        assert_eq!(format_f64(1.0), "1");
        assert_eq!(format_f64(0.1), "0.1");
        assert_eq!(format_f64(-2.5), "-2.5");
        assert_eq!(format_f64(1e15), "1e+15");
        assert_eq!(format_f64(123456789012345.0), "123456789012345");
        assert_eq!(format_f64(0.0001), "0.0001");
        assert_eq!(format_f64(0.00001), "1e-05");
        assert_eq!(format_f64(1.5e-7), "1.5e-07");
        assert_eq!(format_f64(f64::NAN), "NaN");
        assert_eq!(format_f64(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(format_f64(-0.0), "-0");
        assert_eq!(format_f64(1.0 / 3.0), "0.3333333333333333");
        assert_eq!(format_f64(1e100), "1e+100");
        assert_eq!(format_f32(1234567.0), "1.234567e+06");
        assert_eq!(format_f32(123456.0), "123456");
        assert_eq!(format_f32(0.1), "0.1");
    }

    #[test]
    fn decimals_keep_scale() {
        assert_eq!(format_decimal("12345", 2), "123.45");
        assert_eq!(format_decimal("-5", 3), "-0.005");
        assert_eq!(format_decimal("0", 2), "0.00");
        assert_eq!(format_decimal("12", 0), "12");
        assert_eq!(format_decimal("12", -2), "1200");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(-719_528), "0001-01-01 BC");
        assert_eq!(format_time(3_723_500_000), "01:02:03.5");
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(format_timestamp(1_500_000), "1970-01-01 00:00:01.5");
        let paris = crate::engine::settings::parse_time_zone("Europe/Paris").expect("zone");
        assert_eq!(format_timestamptz(0, &paris), "1970-01-01 01:00:00+01");
        let utc = crate::engine::settings::parse_time_zone("UTC").expect("zone");
        assert_eq!(format_timestamptz(0, &utc), "1970-01-01 00:00:00+00");
        let india = crate::engine::settings::parse_time_zone("+05:30").expect("zone");
        assert_eq!(format_timestamptz(0, &india), "1970-01-01 05:30:00+05:30");
    }

    #[test]
    fn intervals_match_postgres() {
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(format_interval(0, 1, 0), "1 day");
        assert_eq!(format_interval(14, 3, 0), "1 year 2 mons 3 days");
        assert_eq!(format_interval(0, -1, 7_200_000_000), "-1 days +02:00:00");
        assert_eq!(format_interval(0, 0, -90_000_000_000), "-25:00:00");
        assert_eq!(format_interval(1, 0, 1_500_000), "1 mon 00:00:01.5");
    }

    #[test]
    fn arrays_quote_like_postgres() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![
            Some(1),
            None,
            Some(3),
        ])]);
        let mut out = String::new();
        write_text(&mut out, &list, 0, &TextContext::default()).expect("renders");
        assert_eq!(out, "{1,NULL,3}");

        let strings = StringArray::from(vec![
            Some("a b"),
            Some(""),
            Some("NULL"),
            Some("x\"y"),
            Some("z"),
        ]);
        let offsets = arrow::buffer::OffsetBuffer::from_lengths([5]);
        let field = std::sync::Arc::new(Field::new_list_field(DataType::Utf8, true));
        let list = ListArray::new(field, offsets, std::sync::Arc::new(strings), None);
        let mut out = String::new();
        write_text(&mut out, &list, 0, &TextContext::default()).expect("renders");
        assert_eq!(out, r#"{"a b","","NULL","x\"y",z}"#);
    }
}
