//! Decoding `$n` parameter values sent with Bind into DataFusion scalars.

use arrow::datatypes::{DataType, IntervalMonthDayNano, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use postgres_types::Type;

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
    value.cast_to(&target).map_err(|e| {
        fail(format!(
            "cannot convert {} to {target}: {e}",
            wire_type.name()
        ))
    })
}

fn text_to_scalar(text: &str, target: &DataType) -> Result<ScalarValue> {
    match target {
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
            ScalarValue::Utf8(Some(koios_connector_postgres::types::format_uuid(&b)))
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
}
