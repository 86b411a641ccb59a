//! Decoders from PostgreSQL's binary format: into Arrow builders
//! ([`ColumnBuilder`]) and straight into the `DataRow` bodies Koios sends a
//! client ([`put_value`]), with the same checks and errors.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{Field, FieldRef, IntervalMonthDayNano, i256};
use koios_connector::pgbinary::{format_uuid, numeric_parts, write_numeric};

use crate::types::{PG_EPOCH_DAYS, PG_EPOCH_MICROS, PgCodec, TextKind};

/// Accumulates one column of decoded values.
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder, bool),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u8, i8),
    Decimal256(Decimal256Builder, u8, i8),
    Money(Decimal128Builder),
    Text(StringBuilder, TextKind),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Interval(IntervalMonthDayNanoBuilder),
    List {
        field: FieldRef,
        child: Box<ColumnBuilder>,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    },
}

fn be<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", b.len()))
}

impl ColumnBuilder {
    pub fn new(codec: &PgCodec, capacity: usize) -> ColumnBuilder {
        match codec {
            PgCodec::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            PgCodec::Int2 => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            PgCodec::Int4 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            PgCodec::Int8 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity), false),
            PgCodec::Oid => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity), true),
            PgCodec::Float4 => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            PgCodec::Float8 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            PgCodec::Numeric { precision, scale } if *precision <= 38 => ColumnBuilder::Decimal128(
                Decimal128Builder::with_capacity(capacity).with_data_type(codec.data_type()),
                *precision,
                *scale,
            ),
            PgCodec::Numeric { precision, scale } => ColumnBuilder::Decimal256(
                Decimal256Builder::with_capacity(capacity).with_data_type(codec.data_type()),
                *precision,
                *scale,
            ),
            PgCodec::Money => ColumnBuilder::Money(
                Decimal128Builder::with_capacity(capacity).with_data_type(codec.data_type()),
            ),
            PgCodec::Text { kind, .. } => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16), *kind)
            }
            PgCodec::Bytea => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            PgCodec::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            PgCodec::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            PgCodec::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), None)
            }
            PgCodec::TimestampTz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                Some("UTC".into()),
            ),
            PgCodec::Interval => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            PgCodec::Array { element, .. } => ColumnBuilder::List {
                field: Arc::new(Field::new_list_field(element.data_type(), true)),
                child: Box::new(ColumnBuilder::new(element, capacity)),
                offsets: vec![0],
                valid: Vec::with_capacity(capacity),
            },
        }
    }

    /// Appends one value in PostgreSQL binary format (`None` is NULL).
    pub fn append(&mut self, value: Option<&[u8]>) -> Result<(), String> {
        let Some(b) = value else {
            self.append_null();
            return Ok(());
        };
        match self {
            ColumnBuilder::Bool(x) => x.append_value(be::<1>(b)?[0] != 0),
            ColumnBuilder::Int16(x) => x.append_value(i16::from_be_bytes(be(b)?)),
            ColumnBuilder::Int32(x) => x.append_value(i32::from_be_bytes(be(b)?)),
            ColumnBuilder::Int64(x, false) => x.append_value(i64::from_be_bytes(be(b)?)),
            ColumnBuilder::Int64(x, true) => x.append_value(u32::from_be_bytes(be(b)?) as i64),
            ColumnBuilder::Float32(x) => x.append_value(f32::from_be_bytes(be(b)?)),
            ColumnBuilder::Float64(x) => x.append_value(f64::from_be_bytes(be(b)?)),
            ColumnBuilder::Decimal128(x, precision, scale) => {
                x.append_value(decimal128(b, *precision, *scale)?)
            }
            ColumnBuilder::Decimal256(x, _, scale) => x.append_value(numeric_to_i256(b, *scale)?),
            ColumnBuilder::Money(x) => x.append_value(i64::from_be_bytes(be(b)?) as i128),
            ColumnBuilder::Text(x, kind) => x.append_value(text_value(*kind, b)?),
            ColumnBuilder::Binary(x) => x.append_value(b),
            ColumnBuilder::Date(x) => x.append_value(date_days(b)?),
            ColumnBuilder::Time(x) => x.append_value(i64::from_be_bytes(be(b)?)),
            ColumnBuilder::Timestamp(x, _) => x.append_value(timestamp_micros(b)?),
            ColumnBuilder::Interval(x) => {
                let b: [u8; 16] = be(b)?;
                let micros = i64::from_be_bytes(be(&b[0..8])?);
                let days = i32::from_be_bytes(be(&b[8..12])?);
                let months = i32::from_be_bytes(be(&b[12..16])?);
                x.append_value(IntervalMonthDayNano::new(
                    months,
                    days,
                    micros.saturating_mul(1000),
                ))
            }
            ColumnBuilder::List {
                child,
                offsets,
                valid,
                ..
            } => {
                let count = decode_array(b, child)?;
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last + count as i32);
                valid.push(true);
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(x) => x.append_null(),
            ColumnBuilder::Int16(x) => x.append_null(),
            ColumnBuilder::Int32(x) => x.append_null(),
            ColumnBuilder::Int64(x, _) => x.append_null(),
            ColumnBuilder::Float32(x) => x.append_null(),
            ColumnBuilder::Float64(x) => x.append_null(),
            ColumnBuilder::Decimal128(x, _, _) | ColumnBuilder::Money(x) => x.append_null(),
            ColumnBuilder::Decimal256(x, _, _) => x.append_null(),
            ColumnBuilder::Text(x, _) => x.append_null(),
            ColumnBuilder::Binary(x) => x.append_null(),
            ColumnBuilder::Date(x) => x.append_null(),
            ColumnBuilder::Time(x) => x.append_null(),
            ColumnBuilder::Timestamp(x, _) => x.append_null(),
            ColumnBuilder::Interval(x) => x.append_null(),
            ColumnBuilder::List { offsets, valid, .. } => {
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last);
                valid.push(false);
            }
        }
    }

    /// The values appended since the last call, as an Arrow array.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(x) => Arc::new(x.finish()),
            ColumnBuilder::Int16(x) => Arc::new(x.finish()),
            ColumnBuilder::Int32(x) => Arc::new(x.finish()),
            ColumnBuilder::Int64(x, _) => Arc::new(x.finish()),
            ColumnBuilder::Float32(x) => Arc::new(x.finish()),
            ColumnBuilder::Float64(x) => Arc::new(x.finish()),
            ColumnBuilder::Decimal128(x, _, _) | ColumnBuilder::Money(x) => Arc::new(x.finish()),
            ColumnBuilder::Decimal256(x, _, _) => Arc::new(x.finish()),
            ColumnBuilder::Text(x, _) => Arc::new(x.finish()),
            ColumnBuilder::Binary(x) => Arc::new(x.finish()),
            ColumnBuilder::Date(x) => Arc::new(x.finish()),
            ColumnBuilder::Time(x) => Arc::new(x.finish()),
            ColumnBuilder::Timestamp(x, tz) => Arc::new(x.finish().with_timezone_opt(tz.clone())),
            ColumnBuilder::Interval(x) => Arc::new(x.finish()),
            ColumnBuilder::List {
                field,
                child,
                offsets,
                valid,
            } => {
                let values = child.finish();
                let offsets_buffer = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(valid));
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(ListArray::new(
                    Arc::clone(field),
                    offsets_buffer,
                    values,
                    nulls,
                ))
            }
        }
    }
}

/// The text of a binary value of a text-like column (what Arrow holds and
/// clients see): the string itself, jsonb without its version byte, uuid,
/// inet and MAC addresses formatted as PostgreSQL prints them.
fn text_value(kind: TextKind, b: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    Ok(match kind {
        TextKind::Jsonb => {
            let body = b.strip_prefix(&[1]).ok_or("unknown jsonb version")?;
            utf8(body)?.into()
        }
        TextKind::Uuid => format_uuid(&be::<16>(b)?).into(),
        TextKind::Inet => format_inet(b)?.into(),
        TextKind::MacAddr | TextKind::MacAddr8 => {
            let mut text = String::with_capacity(b.len() * 3);
            for (i, octet) in b.iter().enumerate() {
                if i > 0 {
                    text.push(':');
                }
                let _ = write!(text, "{octet:02x}");
            }
            text.into()
        }
        _ => utf8(b)?.into(),
    })
}

/// A binary numeric as a `decimal(precision, scale)` unscaled value,
/// refusing digits it would lose or a value beyond its precision.
fn decimal128(b: &[u8], precision: u8, scale: i8) -> Result<i128, String> {
    let v = numeric_to_i128(b, scale)?;
    check_precision(v.unsigned_abs(), precision)?;
    Ok(v)
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "text value is not valid UTF-8".to_string())
}

/// Decodes a one-dimensional binary array into `child`; returns the element count.
fn decode_array(b: &[u8], child: &mut ColumnBuilder) -> Result<usize, String> {
    if b.len() < 12 {
        return Err("truncated array value".into());
    }
    let ndim = i32::from_be_bytes(be(&b[0..4])?);
    if ndim == 0 {
        return Ok(0);
    }
    if ndim != 1 {
        return Err(format!(
            "{ndim}-dimensional arrays are not supported (only one dimension)"
        ));
    }
    let len = i32::from_be_bytes(be(&b[12..16])?) as usize;
    let mut at = 20;
    for _ in 0..len {
        let size = i32::from_be_bytes(be(b.get(at..at + 4).ok_or("truncated array")?)?);
        at += 4;
        if size < 0 {
            child.append(None)?;
        } else {
            let end = at + size as usize;
            child.append(Some(b.get(at..end).ok_or("truncated array element")?))?;
            at = end;
        }
    }
    Ok(len)
}

/// Reads numeric_send bytes as an unscaled integer at `scale`, refusing to
/// lose digits.
pub fn numeric_to_i128(b: &[u8], scale: i8) -> Result<i128, String> {
    let (negative, groups, weight, _dscale) = numeric_parts(b)?;
    let overflow = || format!("numeric value does not fit in decimal(38,{scale})");
    let mut acc: i128 = 0;
    for g in groups.iter() {
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(g as i128))
            .ok_or_else(overflow)?;
    }
    // acc * 10000^(weight - ndigits + 1) * 10^scale
    let exponent = 4 * (weight - groups.len() as i32 + 1) + scale as i32;
    let value = if exponent >= 0 {
        let factor = 10i128.checked_pow(exponent as u32).ok_or_else(overflow)?;
        acc.checked_mul(factor).ok_or_else(overflow)?
    } else {
        let divisor = 10i128
            .checked_pow((-exponent) as u32)
            .ok_or_else(overflow)?;
        if acc % divisor != 0 {
            return Err(format!(
                "numeric value has more than {scale} fractional digits; declare the column numeric(p,s) or read it as text"
            ));
        }
        acc / divisor
    };
    Ok(if negative { -value } else { value })
}

fn numeric_to_i256(b: &[u8], scale: i8) -> Result<i256, String> {
    let (negative, groups, weight, _) = numeric_parts(b)?;
    let overflow = || format!("numeric value does not fit in decimal(76,{scale})");
    let ten_thousand = i256::from_i128(10_000);
    let ten = i256::from_i128(10);
    let mut acc = i256::ZERO;
    for g in groups.iter() {
        acc = acc
            .checked_mul(ten_thousand)
            .and_then(|a| a.checked_add(i256::from_i128(g as i128)))
            .ok_or_else(overflow)?;
    }
    let exponent = 4 * (weight - groups.len() as i32 + 1) + scale as i32;
    let value = if exponent >= 0 {
        acc.checked_mul(ten.checked_pow(exponent as u32).ok_or_else(overflow)?)
            .ok_or_else(overflow)?
    } else {
        let divisor = ten.checked_pow((-exponent) as u32).ok_or_else(overflow)?;
        if acc.checked_rem(divisor) != Some(i256::ZERO) {
            return Err(format!(
                "numeric value has more than {scale} fractional digits"
            ));
        }
        acc.checked_div(divisor).ok_or_else(overflow)?
    };
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

fn check_precision(abs: u128, precision: u8) -> Result<(), String> {
    if precision <= 38 && abs >= 10u128.pow(precision as u32) {
        return Err(format!("numeric value exceeds precision {precision}"));
    }
    Ok(())
}

/// inet/cidr as PostgreSQL prints them: `10.0.0.1`, `10.0.0.0/8`.
fn format_inet(b: &[u8]) -> Result<String, String> {
    if b.len() < 4 {
        return Err("truncated inet value".into());
    }
    let (family, bits, is_cidr, n) = (b[0], b[1], b[2], b[3] as usize);
    let addr = b.get(4..4 + n).ok_or("truncated inet address")?;
    let (text, max) = match (family, n) {
        (2, 4) => (
            std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            32,
        ),
        (3, 16) => {
            let octets: [u8; 16] = be(addr)?;
            (std::net::Ipv6Addr::from(octets).to_string(), 128)
        }
        _ => return Err("unknown inet address family".into()),
    };
    Ok(if is_cidr != 0 || bits != max {
        format!("{text}/{bits}")
    } else {
        text
    })
}

impl PgCodec {
    /// Whether [`put_value`] can write values of this codec: every codec
    /// whose Arrow value Koios writes without session settings (not
    /// `timestamptz`, shown in the session's zone) and that is one value
    /// (not arrays). Intervals are left to the Arrow path, which rounds
    /// their time part through nanoseconds.
    pub fn writes_directly(&self) -> bool {
        !matches!(
            self,
            PgCodec::TimestampTz | PgCodec::Interval | PgCodec::Array { .. }
        )
    }
}

/// Appends one binary value to a `DataRow` body as Koios writes the Arrow
/// value [`ColumnBuilder::append`] makes of it to a client, in text
/// (`koios_connector::pgtext`) or in `binary` (Koios's send format of the
/// Arrow type: text-like columns are `text`, `oid` is `int8`, numerics are
/// rewritten at the column's scale): the same checks, the same errors.
/// `scratch` is reused between values. Only for codecs that
/// [`PgCodec::writes_directly`].
pub fn put_value(
    codec: &PgCodec,
    value: Option<&[u8]>,
    binary: bool,
    out: &mut bytes::BytesMut,
    scratch: &mut String,
) -> Result<(), String> {
    use bytes::BufMut;
    use koios_connector::pgtext;
    let Some(b) = value else {
        out.put_i32(-1);
        return Ok(());
    };
    let mut put = |bytes: &[u8]| {
        out.put_i32(bytes.len() as i32);
        out.put_slice(bytes);
    };
    scratch.clear();
    match codec {
        PgCodec::Text { kind, .. } => put(text_value(*kind, b)?.as_bytes()),
        PgCodec::Bool if binary => put(&[(be::<1>(b)?[0] != 0) as u8]),
        PgCodec::Bool => put(if be::<1>(b)?[0] != 0 { b"t" } else { b"f" }),
        // The server's send format is Koios's for these.
        PgCodec::Int2 if binary => put(&be::<2>(b)?),
        PgCodec::Int4 | PgCodec::Float4 if binary => put(&be::<4>(b)?),
        PgCodec::Int8 | PgCodec::Float8 | PgCodec::Time if binary => put(&be::<8>(b)?),
        PgCodec::Bytea if binary => put(b),
        PgCodec::Int2 => put(itoa::Buffer::new()
            .format(i16::from_be_bytes(be(b)?))
            .as_bytes()),
        PgCodec::Int4 => put(itoa::Buffer::new()
            .format(i32::from_be_bytes(be(b)?))
            .as_bytes()),
        PgCodec::Int8 => put(itoa::Buffer::new()
            .format(i64::from_be_bytes(be(b)?))
            .as_bytes()),
        PgCodec::Oid if binary => put(&(u32::from_be_bytes(be(b)?) as i64).to_be_bytes()),
        PgCodec::Oid => put(itoa::Buffer::new()
            .format(u32::from_be_bytes(be(b)?))
            .as_bytes()),
        PgCodec::Float4 => put(pgtext::format_f32(f32::from_be_bytes(be(b)?)).as_bytes()),
        PgCodec::Float8 => put(pgtext::format_f64(f64::from_be_bytes(be(b)?)).as_bytes()),
        PgCodec::Numeric { .. } | PgCodec::Money => {
            match codec {
                PgCodec::Numeric { precision, scale } if *precision <= 38 => {
                    koios_connector::push_decimal_i128(
                        scratch,
                        decimal128(b, *precision, *scale)?,
                        *scale,
                    );
                }
                PgCodec::Numeric { scale, .. } => {
                    let v = numeric_to_i256(b, *scale)?;
                    koios_connector::push_decimal(scratch, &v.to_string(), *scale);
                }
                _ => koios_connector::push_decimal_i128(
                    scratch,
                    i64::from_be_bytes(be(b)?) as i128,
                    2,
                ),
            }
            if binary {
                let at = out.len();
                out.put_i32(0);
                write_numeric(out, scratch);
                let len = (out.len() - at - 4) as i32;
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            } else {
                put(scratch.as_bytes())
            }
        }
        PgCodec::Bytea => put(pgtext::format_bytea(b).as_bytes()),
        // Infinite values have no Arrow value: refused as when decoding.
        PgCodec::Date if binary => {
            date_days(b)?;
            put(b)
        }
        PgCodec::Date => put(pgtext::format_date(date_days(b)? as i64).as_bytes()),
        PgCodec::Time => put(pgtext::format_time(i64::from_be_bytes(be(b)?)).as_bytes()),
        PgCodec::Timestamp if binary => {
            timestamp_micros(b)?;
            put(b)
        }
        PgCodec::Timestamp => put(pgtext::format_timestamp(timestamp_micros(b)?).as_bytes()),
        PgCodec::TimestampTz | PgCodec::Interval | PgCodec::Array { .. } => {
            return Err(format!("{codec:?} values are not written directly"));
        }
    }
    Ok(())
}

/// A binary `date` as days since 1970-01-01.
fn date_days(b: &[u8]) -> Result<i32, String> {
    let days = i32::from_be_bytes(be(b)?);
    if days == i32::MAX || days == i32::MIN {
        return Err("infinite dates have no Arrow representation".into());
    }
    Ok(days + PG_EPOCH_DAYS)
}

/// A binary `timestamp` as microseconds since 1970-01-01.
fn timestamp_micros(b: &[u8]) -> Result<i64, String> {
    let micros = i64::from_be_bytes(be(b)?);
    if micros == i64::MAX || micros == i64::MIN {
        return Err("infinite timestamps have no Arrow representation".into());
    }
    micros
        .checked_add(PG_EPOCH_MICROS)
        .ok_or_else(|| "timestamp out of Arrow's range".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::*;
    use datafusion::arrow::datatypes::DataType;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(ndigits.to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend(dscale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_decode_exactly() {
        // 123.45 = [123, 4500], weight 0
        assert_eq!(
            numeric_to_i128(&numeric(2, 0, 0, 2, &[123, 4500]), 2),
            Ok(12345)
        );
        // -0.005 at scale 3
        assert_eq!(
            numeric_to_i128(&numeric(1, -1, 0x4000, 3, &[50]), 3),
            Ok(-5)
        );
        // 10000 = [1], weight 1
        assert_eq!(
            numeric_to_i128(&numeric(1, 1, 0, 0, &[1]), 2),
            Ok(1_000_000)
        );
        assert_eq!(numeric_to_i128(&numeric(0, 0, 0, 0, &[]), 4), Ok(0));
        // 0.12345 does not fit scale 2: refuse rather than truncate.
        assert!(numeric_to_i128(&numeric(2, -1, 0, 5, &[1234, 5000]), 2).is_err());
        assert!(numeric_to_i128(&numeric(0, 0, 0xC000, 0, &[]), 2).is_err());
    }

    #[test]
    fn typmods_map_to_decimals() {
        let typmod = ((15 << 16) | 2) + 4;
        assert_eq!(
            PgCodec::for_type(1700, "numeric", "b", typmod, true, true),
            Some(PgCodec::Numeric {
                precision: 15,
                scale: 2
            })
        );
        assert_eq!(
            PgCodec::for_type(1700, "numeric", "b", -1, true, true).map(|c| c.data_type()),
            Some(DataType::Decimal128(38, 10))
        );
        assert_eq!(PgCodec::for_type(600, "point", "b", -1, true, true), None);
    }

    #[test]
    fn network_addresses_print_like_postgres() {
        assert_eq!(
            format_inet(&[2, 32, 0, 4, 10, 0, 0, 1]).as_deref(),
            Ok("10.0.0.1")
        );
        assert_eq!(
            format_inet(&[2, 8, 1, 4, 10, 0, 0, 0]).as_deref(),
            Ok("10.0.0.0/8")
        );
        assert_eq!(
            format_inet(&[2, 24, 0, 4, 192, 168, 1, 5]).as_deref(),
            Ok("192.168.1.5/24")
        );
    }
}
