//! Decoding `$n` parameter values sent with Bind into DataFusion scalars.

use std::sync::Arc;

use arrow::array::{ArrayRef, ListArray, new_empty_array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use postgres_types::{Kind, Type};

use super::arrays::{array_from_text, is_list, list_depth};
use super::binary::read_numeric;

const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// Decodes one parameter.
///
/// `wire_type` is the type the bytes are in (what the client declared, or
/// what the server described); `target` is the type the plan expects, when
/// known. `None` bytes are SQL NULL.
pub fn decode_param(
    index: usize,
    bytes: Option<&[u8]>,
    binary: bool,
    wire_type: &Type,
    target: Option<&DataType>,
) -> Result<ScalarValue> {
    let fail = |msg: String| DataFusionError::Execution(format!("parameter ${}: {msg}", index + 1));
    let target = target
        .cloned()
        .or_else(|| super::arrow_type(wire_type))
        .unwrap_or(DataType::Utf8);
    let Some(bytes) = bytes else {
        return ScalarValue::try_from(&target).or_else(|_| Ok(ScalarValue::Utf8(None)));
    };
    let value = if binary {
        decode_binary(bytes, wire_type).map_err(fail)?
    } else {
        let text =
            std::str::from_utf8(bytes).map_err(|_| fail("text value is not valid UTF-8".into()))?;
        return text_to_scalar(text, &target).map_err(|e| fail(e.to_string()));
    };
    if value.data_type() == target {
        return Ok(value);
    }
    let (from, to) = (list_depth(&value.data_type()), list_depth(&target));
    if from != to && (from > 0 || to > 0) {
        return Err(fail(format!(
            "a {from}-dimensional {} value cannot be bound where {} is expected{}",
            wire_type.name(),
            describe_param_type(Some(&target)).name(),
            if from > 1 {
                " (cast the parameter to a nested array type such as int[][])"
            } else {
                ""
            }
        )));
    }
    value.cast_to(&target).map_err(|e| {
        fail(format!(
            "cannot convert {} to {target}: {e}",
            wire_type.name()
        ))
    })
}

/// Reads a value in PostgreSQL's text form as Arrow type `target`.
pub(crate) fn text_to_scalar(text: &str, target: &DataType) -> Result<ScalarValue> {
    match target {
        // `{1,NULL,3}`: PostgreSQL's array syntax, not one element.
        dt if is_list(dt) => array_from_text(text, dt),
        // PostgreSQL spells booleans in more ways than Arrow's cast accepts.
        DataType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "y" | "on" | "1" => Ok(ScalarValue::Boolean(Some(true))),
            "f" | "false" | "no" | "n" | "off" | "0" => Ok(ScalarValue::Boolean(Some(false))),
            other => Err(DataFusionError::Execution(format!(
                "invalid input syntax for type boolean: \"{other}\""
            ))),
        },
        DataType::Null => Ok(ScalarValue::Utf8(Some(text.to_string()))),
        _ => ScalarValue::try_from_string(text.to_string(), target),
    }
}

fn decode_binary(bytes: &[u8], ty: &Type) -> std::result::Result<ScalarValue, String> {
    if let Kind::Array(element) = ty.kind()
        && ty.name().starts_with('_')
    {
        return decode_binary_array(bytes, element);
    }
    let fixed = |n: usize| -> std::result::Result<&[u8], String> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(format!(
                "binary {} value must be {n} bytes, got {}",
                ty.name(),
                bytes.len()
            ))
        }
    };
    Ok(match *ty {
        Type::BOOL => ScalarValue::Boolean(Some(fixed(1)?[0] != 0)),
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(arr(fixed(2)?)))),
        Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(arr(fixed(4)?)))),
        Type::OID => ScalarValue::Int64(Some(u32::from_be_bytes(arr(fixed(4)?)) as i64)),
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(arr(fixed(8)?)))),
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(arr(fixed(4)?)))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(arr(fixed(8)?)))),
        Type::NUMERIC => {
            let text = read_numeric(bytes).map_err(|e| e.to_string())?;
            let scale = text
                .split_once('.')
                .map(|(_, f)| f.len())
                .unwrap_or(0)
                .min(38);
            ScalarValue::try_from_string(text, &DataType::Decimal128(38, scale as i8))
                .map_err(|e| e.to_string())?
        }
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::CHAR => ScalarValue::Utf8(Some(
            std::str::from_utf8(bytes)
                .map_err(|_| "text value is not valid UTF-8".to_string())?
                .to_string(),
        )),
        Type::JSONB => {
            // jsonb_send prefixes a version byte (1).
            let body = bytes.strip_prefix(&[1]).ok_or("unknown jsonb version")?;
            ScalarValue::Utf8(Some(
                std::str::from_utf8(body)
                    .map_err(|_| "jsonb value is not valid UTF-8".to_string())?
                    .to_string(),
            ))
        }
        Type::UUID => {
            let b: [u8; 16] = fixed(16)?
                .try_into()
                .map_err(|_| "uuid needs 16 bytes".to_string())?;
            ScalarValue::Utf8(Some(koios_connector::pgbinary::format_uuid(&b)))
        }
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::DATE => ScalarValue::Date32(Some(i32::from_be_bytes(arr(fixed(4)?)) + PG_EPOCH_DAYS)),
        Type::TIME => ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(arr(fixed(8)?)))),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            Some(i64::from_be_bytes(arr(fixed(8)?)).saturating_add(PG_EPOCH_MICROS)),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(i64::from_be_bytes(arr(fixed(8)?)).saturating_add(PG_EPOCH_MICROS)),
            Some("UTC".into()),
        ),
        Type::INTERVAL => {
            let b = fixed(16)?;
            let micros = i64::from_be_bytes(arr(&b[0..8]));
            let days = i32::from_be_bytes(arr(&b[8..12]));
            let months = i32::from_be_bytes(arr(&b[12..16]));
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                months,
                days,
                micros.saturating_mul(1000),
            )))
        }
        _ => {
            return Err(format!(
                "binary parameters of type {} are not supported; send it as text",
                ty.name()
            ));
        }
    })
}

/// array_recv's format: ndim, has-null flag and element type OID (int4
/// each), then length and lower bound per dimension, then each element as
/// an int4 length (-1 for NULL) and its binary value. Lower bounds are
/// dropped (Arrow lists have none); several dimensions become nested lists.
fn decode_binary_array(bytes: &[u8], declared: &Type) -> std::result::Result<ScalarValue, String> {
    let mut reader = Reader { bytes, at: 0 };
    let ndim = reader.int4()?;
    let _has_null = reader.int4()?;
    let element_oid = reader.int4()? as u32;
    if !(0..=6).contains(&ndim) {
        return Err(format!(
            "invalid number of array dimensions: {ndim} (at most 6)"
        ));
    }
    // The element type the client wrote (it should be the declared one).
    let element = Type::from_oid(element_oid).unwrap_or_else(|| declared.clone());
    let element_type = super::arrow_type(&element)
        .filter(|dt| !is_list(dt))
        .ok_or_else(|| {
            format!(
                "binary arrays of type {} are not supported; send it as text",
                element.name()
            )
        })?;
    let mut dims = Vec::with_capacity(ndim as usize);
    let mut total: usize = if ndim == 0 { 0 } else { 1 };
    for _ in 0..ndim {
        let len = reader.int4()?;
        let _lower_bound = reader.int4()?;
        let len = usize::try_from(len).map_err(|_| format!("invalid array length {len}"))?;
        // Each element takes at least its 4-byte length word.
        total = total
            .checked_mul(len)
            .filter(|t| *t <= bytes.len() / 4)
            .ok_or("array dimensions do not match the value's size")?;
        dims.push(len);
    }
    let mut elements = Vec::with_capacity(total);
    for _ in 0..total {
        let len = reader.int4()?;
        let value = if len < 0 {
            ScalarValue::try_from(&element_type).map_err(|e| e.to_string())?
        } else {
            let value = decode_binary(reader.take(len as usize)?, &element)?;
            if value.data_type() == element_type {
                value
            } else {
                value.cast_to(&element_type).map_err(|e| e.to_string())?
            }
        };
        elements.push(value);
    }
    if reader.at != bytes.len() {
        return Err(format!(
            "binary {}[] value has {} bytes after its last element",
            element.name(),
            bytes.len() - reader.at
        ));
    }
    let mut values: ArrayRef = if elements.is_empty() {
        new_empty_array(&element_type)
    } else {
        ScalarValue::iter_to_array(elements).map_err(|e| e.to_string())?
    };
    // Innermost dimensions first: rows of `len` values each.
    for &len in dims.iter().skip(1).rev() {
        let rows = values.len().checked_div(len).unwrap_or(0);
        values = Arc::new(list_array(values, std::iter::repeat_n(len, rows))?);
    }
    let len = values.len();
    Ok(ScalarValue::List(Arc::new(list_array(values, [len])?)))
}

/// Reads big-endian words off a binary value.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or("binary array value is truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn int4(&mut self) -> std::result::Result<i32, String> {
        self.take(4).map(|b| i32::from_be_bytes(arr(b)))
    }
}

fn list_array(
    values: ArrayRef,
    lengths: impl IntoIterator<Item = usize>,
) -> std::result::Result<ListArray, String> {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    ListArray::try_new(field, OffsetBuffer::from_lengths(lengths), values, None)
        .map_err(|e| e.to_string())
}

fn arr<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// The type a parameter is described as when only its Arrow type is known.
pub fn describe_param_type(dt: Option<&DataType>) -> Type {
    match dt {
        None | Some(DataType::Null) => Type::TEXT,
        Some(DataType::Timestamp(TimeUnit::Nanosecond, None)) => Type::TIMESTAMP,
        Some(dt) => super::pg_type(dt),
    }
}

/// The type PostgreSQL reports for a parameter the SQL casts to `written`
/// (`$1::oid[]`, `$2::name` …) where Arrow's types cannot say it (they
/// would say `int4[]` or `text`; asyncpg needs `oid[]`, whose codec it has
/// built in). `None` for every other cast.
pub fn cast_param_type(written: &str) -> Option<Type> {
    let (base, array) = match written.strip_suffix("[]") {
        Some(base) => (base, true),
        None => (written, false),
    };
    match (base, array) {
        ("oid", false) => Some(Type::OID),
        ("oid", true) => Some(Type::OID_ARRAY),
        ("name", false) => Some(Type::NAME),
        ("name", true) => Some(Type::NAME_ARRAY),
        ("regclass", false) => Some(Type::REGCLASS),
        ("regtype", false) => Some(Type::REGTYPE),
        ("regproc", false) => Some(Type::REGPROC),
        ("regnamespace", false) => Some(Type::REGNAMESPACE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_text_and_binary() {
        let v = decode_param(
            0,
            Some(b"42"),
            false,
            &Type::UNKNOWN,
            Some(&DataType::Int64),
        )
        .expect("ok");
        assert_eq!(v, ScalarValue::Int64(Some(42)));
        let v = decode_param(
            0,
            Some(&7i32.to_be_bytes()),
            true,
            &Type::INT4,
            Some(&DataType::Int64),
        )
        .expect("ok");
        assert_eq!(v, ScalarValue::Int64(Some(7)));
        let v = decode_param(0, Some(b"on"), false, &Type::BOOL, None).expect("ok");
        assert_eq!(v, ScalarValue::Boolean(Some(true)));
        let v = decode_param(0, None, true, &Type::INT8, None).expect("ok");
        assert_eq!(v, ScalarValue::Int64(None));
        assert!(decode_param(0, Some(&[1, 2]), true, &Type::INT4, None).is_err());
        assert!(decode_param(0, Some(b"x"), false, &Type::INT4, Some(&DataType::Int32)).is_err());
    }

    fn list_of(dt: DataType) -> DataType {
        DataType::List(Arc::new(Field::new_list_field(dt, true)))
    }

    /// array_send bytes for int4 elements (`None` is NULL).
    fn int4_array(dims: &[i32], elements: &[Option<i32>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((dims.len() as i32).to_be_bytes());
        out.extend((elements.iter().any(Option::is_none) as i32).to_be_bytes());
        out.extend(Type::INT4.oid().to_be_bytes());
        for d in dims {
            out.extend(d.to_be_bytes());
            out.extend(1i32.to_be_bytes());
        }
        for e in elements {
            match e {
                None => out.extend((-1i32).to_be_bytes()),
                Some(v) => {
                    out.extend(4i32.to_be_bytes());
                    out.extend(v.to_be_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn decodes_arrays() {
        let ints = list_of(DataType::Int32);
        let expected = ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<
            arrow::datatypes::Int32Type,
            _,
            _,
        >(vec![Some(vec![
            Some(1),
            None,
            Some(3),
        ])])));
        // Text format, typed by the client or by the plan.
        for (wire, target) in [(Type::INT4_ARRAY, None), (Type::UNKNOWN, Some(&ints))] {
            let v = decode_param(0, Some(b"{1,NULL,3}"), false, &wire, target).expect("text");
            assert_eq!(v, expected);
        }
        let v = decode_param(0, Some(b"{a,b}"), false, &Type::TEXT_ARRAY, None).expect("text[]");
        assert_eq!(v.data_type(), list_of(DataType::Utf8));
        let ScalarValue::List(list) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(list.value_length(0), 2);
        let err = decode_param(0, Some(b"{1,2"), false, &Type::INT4_ARRAY, None).expect_err("bad");
        assert!(err.to_string().contains("malformed array literal"), "{err}");

        // Binary format.
        let bytes = int4_array(&[3], &[Some(1), None, Some(3)]);
        let v = decode_param(0, Some(&bytes), true, &Type::INT4_ARRAY, None).expect("binary");
        assert_eq!(v, expected);
        let v = decode_param(
            0,
            Some(&bytes),
            true,
            &Type::INT4_ARRAY,
            Some(&list_of(DataType::Int64)),
        )
        .expect("widened");
        assert_eq!(v.data_type(), list_of(DataType::Int64));
        let empty = int4_array(&[], &[]);
        let v = decode_param(0, Some(&empty), true, &Type::INT4_ARRAY, None).expect("empty");
        assert_eq!(v.data_type(), ints);
        let two_d = int4_array(&[2, 2], &[Some(1), Some(2), Some(3), None]);
        let nested = list_of(ints.clone());
        let v = decode_param(0, Some(&two_d), true, &Type::INT4_ARRAY, Some(&nested)).expect("2-D");
        assert_eq!(v.data_type(), nested);
        let err = decode_param(0, Some(&two_d), true, &Type::INT4_ARRAY, Some(&ints))
            .expect_err("2-D into int[]");
        assert!(err.to_string().contains("2-dimensional"), "{err}");
        let mut truncated = bytes.clone();
        truncated.pop();
        assert!(decode_param(0, Some(&truncated), true, &Type::INT4_ARRAY, None).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(decode_param(0, Some(&trailing), true, &Type::INT4_ARRAY, None).is_err());
        // Absurd dimensions are refused before allocating.
        let huge = int4_array(&[i32::MAX, i32::MAX], &[]);
        assert!(decode_param(0, Some(&huge), true, &Type::INT4_ARRAY, None).is_err());
    }
}
