//! MySQL/MariaDB column types as Arrow types, and decoding of binary-protocol
//! values into Arrow builders. The mapping is documented in the README.

use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{DataType, TimeUnit, i256};
use mysql_async::Value;

pub use crate::options::InvalidDates;

/// Binary collations without padding: they compare strings exactly as
/// DataFusion does (code points, trailing spaces significant). Text columns
/// Koios creates get the first the server has (see `ddl.rs`).
pub(crate) const EXACT_COLLATIONS: [&str; 2] = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];

/// The binary collation of a server that has neither exact one.
pub(crate) const FALLBACK_COLLATION: &str = "utf8mb4_bin";

/// How one column is read, written and filtered.
#[derive(Debug, Clone, PartialEq)]
pub enum MyCodec {
    /// `tinyint(1)`, MySQL's `BOOLEAN`: read as a boolean, any value other
    /// than 0 true (as MySQL's own drivers read it).
    Bool,
    Int {
        bits: u8,
        unsigned: bool,
    },
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Bit,
    Year,
    /// Character data; `collation` decides which filters are safe.
    Text {
        collation: String,
    },
    /// JSON, ENUM, SET: strings whose comparisons differ.
    OtherText,
    Binary,
    Date,
    DateTime,
    Timestamp,
    Time,
    /// A type read through `CAST(… AS CHAR)`.
    Cast,
}

impl MyCodec {
    pub fn data_type(&self) -> DataType {
        match self {
            MyCodec::Bool => DataType::Boolean,
            MyCodec::Int { bits, unsigned } => match (*bits, *unsigned) {
                (8, false) => DataType::Int8,
                (16, false) => DataType::Int16,
                (32, false) => DataType::Int32,
                (64, false) => DataType::Int64,
                (8, true) => DataType::UInt8,
                (16, true) => DataType::UInt16,
                (32, true) => DataType::UInt32,
                _ => DataType::UInt64,
            },
            MyCodec::Float => DataType::Float32,
            MyCodec::Double => DataType::Float64,
            MyCodec::Decimal { precision, scale } if *precision <= 38 => {
                DataType::Decimal128(*precision, *scale)
            }
            MyCodec::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            MyCodec::Bit => DataType::UInt64,
            MyCodec::Year => DataType::Int16,
            MyCodec::Text { .. } | MyCodec::OtherText | MyCodec::Cast => DataType::Utf8,
            MyCodec::Binary => DataType::Binary,
            MyCodec::Date => DataType::Date32,
            MyCodec::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            MyCodec::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            MyCodec::Time => DataType::Duration(TimeUnit::Microsecond),
        }
    }

    /// The codec for an `information_schema.COLUMNS` row; `None` if unmapped.
    pub fn for_column(
        data_type: &str,
        column_type: &str,
        precision: Option<u64>,
        scale: Option<u64>,
        collation: Option<&str>,
    ) -> Option<MyCodec> {
        let unsigned = column_type.contains("unsigned");
        let int = |bits| Some(MyCodec::Int { bits, unsigned });
        match data_type {
            "tinyint" if column_type == "tinyint(1)" => Some(MyCodec::Bool),
            "tinyint" => int(8),
            "smallint" => int(16),
            "mediumint" | "int" | "integer" => {
                if unsigned {
                    Some(MyCodec::Int {
                        bits: 32,
                        unsigned: true,
                    })
                } else {
                    int(32)
                }
            }
            "bigint" => int(64),
            "float" => Some(MyCodec::Float),
            "double" | "real" => Some(MyCodec::Double),
            "decimal" | "numeric" => Some(MyCodec::Decimal {
                precision: precision.unwrap_or(10).clamp(1, 76) as u8,
                scale: scale.unwrap_or(0).min(76) as i8,
            }),
            "bit" => Some(MyCodec::Bit),
            "year" => Some(MyCodec::Year),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => match collation
            {
                Some(c) if c != "binary" => Some(MyCodec::Text {
                    collation: c.to_string(),
                }),
                _ => Some(MyCodec::Binary),
            },
            "json" | "enum" | "set" => Some(MyCodec::OtherText),
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Some(MyCodec::Binary)
            }
            // Spatial values arrive in MySQL's internal form: 4-byte SRID + WKB.
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => Some(MyCodec::Binary),
            "date" => Some(MyCodec::Date),
            "datetime" => Some(MyCodec::DateTime),
            "timestamp" => Some(MyCodec::Timestamp),
            "time" => Some(MyCodec::Time),
            _ => None,
        }
    }
}

/// Accumulates one column.
pub struct ColumnBuilder {
    codec: MyCodec,
    builder: Box<dyn ArrayBuilder>,
    invalid_dates: InvalidDates,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl ColumnBuilder {
    pub fn new(codec: &MyCodec, capacity: usize, invalid_dates: InvalidDates) -> Self {
        let builder: Box<dyn ArrayBuilder> = match codec.data_type() {
            DataType::Decimal128(p, s) => Box::new(
                Decimal128Builder::with_capacity(capacity)
                    .with_data_type(DataType::Decimal128(p, s)),
            ),
            DataType::Decimal256(p, s) => Box::new(
                Decimal256Builder::with_capacity(capacity)
                    .with_data_type(DataType::Decimal256(p, s)),
            ),
            DataType::Timestamp(_, Some(_)) => Box::new(
                TimestampMicrosecondBuilder::with_capacity(capacity)
                    .with_data_type(codec.data_type()),
            ),
            other => make_builder(&other, capacity),
        };
        Self {
            codec: codec.clone(),
            builder,
            invalid_dates,
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        self.builder.finish()
    }

    /// Appends one value as the binary protocol delivered it.
    pub fn append(&mut self, value: Value) -> Result<(), String> {
        if value == Value::NULL {
            return append_null(&mut self.builder);
        }
        let unexpected = |v: &Value| format!("unexpected value {v:?}");
        // Borrowed, not cloned: this runs for every value of every row.
        match &self.codec {
            MyCodec::Bool => {
                let truth = match value {
                    Value::Int(i) => i != 0,
                    Value::UInt(u) => u != 0,
                    Value::Bytes(b) => b.as_slice() != b"0",
                    other => return Err(unexpected(&other)),
                };
                typed::<BooleanBuilder>(&mut self.builder)?.append_value(truth);
            }
            MyCodec::Int { bits, unsigned } => {
                let (signed, raw) = match value {
                    Value::Int(i) => (i, i as u64),
                    Value::UInt(u) => (u as i64, u),
                    Value::Bytes(b) => {
                        let text = std::str::from_utf8(&b).map_err(|e| e.to_string())?;
                        let u: u64 = text.parse().unwrap_or_default();
                        (text.parse::<i64>().unwrap_or(u as i64), u)
                    }
                    other => return Err(unexpected(&other)),
                };
                let out_of_range = || format!("value {signed} out of range");
                match (*bits, *unsigned) {
                    (8, false) => typed::<Int8Builder>(&mut self.builder)?
                        .append_value(i8::try_from(signed).map_err(|_| out_of_range())?),
                    (16, false) => typed::<Int16Builder>(&mut self.builder)?
                        .append_value(i16::try_from(signed).map_err(|_| out_of_range())?),
                    (32, false) => typed::<Int32Builder>(&mut self.builder)?
                        .append_value(i32::try_from(signed).map_err(|_| out_of_range())?),
                    (64, false) => typed::<Int64Builder>(&mut self.builder)?.append_value(signed),
                    (8, true) => typed::<UInt8Builder>(&mut self.builder)?
                        .append_value(u8::try_from(raw).map_err(|_| out_of_range())?),
                    (16, true) => typed::<UInt16Builder>(&mut self.builder)?
                        .append_value(u16::try_from(raw).map_err(|_| out_of_range())?),
                    (32, true) => typed::<UInt32Builder>(&mut self.builder)?
                        .append_value(u32::try_from(raw).map_err(|_| out_of_range())?),
                    _ => typed::<UInt64Builder>(&mut self.builder)?.append_value(raw),
                }
            }
            MyCodec::Year => match value {
                Value::Int(i) => typed::<Int16Builder>(&mut self.builder)?.append_value(i as i16),
                Value::UInt(u) => typed::<Int16Builder>(&mut self.builder)?.append_value(u as i16),
                other => return Err(unexpected(&other)),
            },
            MyCodec::Float => match value {
                Value::Float(f) => typed::<Float32Builder>(&mut self.builder)?.append_value(f),
                Value::Double(f) => {
                    typed::<Float32Builder>(&mut self.builder)?.append_value(f as f32)
                }
                other => return Err(unexpected(&other)),
            },
            MyCodec::Double => match value {
                Value::Double(f) => typed::<Float64Builder>(&mut self.builder)?.append_value(f),
                Value::Float(f) => {
                    typed::<Float64Builder>(&mut self.builder)?.append_value(f as f64)
                }
                other => return Err(unexpected(&other)),
            },
            MyCodec::Decimal { precision, scale } => {
                let Value::Bytes(b) = value else {
                    return Err(unexpected(&value));
                };
                let text = std::str::from_utf8(&b).map_err(|e| e.to_string())?;
                let unscaled = parse_decimal(text, *scale)?;
                if *precision <= 38 {
                    let v: i128 = unscaled
                        .parse()
                        .map_err(|_| format!("decimal {text} out of range"))?;
                    typed::<Decimal128Builder>(&mut self.builder)?.append_value(v)
                } else {
                    let v = i256::from_string(&unscaled)
                        .ok_or_else(|| format!("decimal {text} out of range"))?;
                    typed::<Decimal256Builder>(&mut self.builder)?.append_value(v)
                }
            }
            MyCodec::Bit => {
                let Value::Bytes(b) = value else {
                    return Err(unexpected(&value));
                };
                let v = b.iter().fold(0u64, |acc, byte| (acc << 8) | *byte as u64);
                typed::<UInt64Builder>(&mut self.builder)?.append_value(v)
            }
            MyCodec::Text { .. } | MyCodec::OtherText | MyCodec::Cast => {
                let Value::Bytes(b) = value else {
                    return Err(unexpected(&value));
                };
                let text = std::str::from_utf8(&b)
                    .map_err(|_| "text value is not valid UTF-8".to_string())?;
                typed::<StringBuilder>(&mut self.builder)?.append_value(text)
            }
            MyCodec::Binary => match value {
                Value::Bytes(b) => typed::<BinaryBuilder>(&mut self.builder)?.append_value(b),
                other => return Err(unexpected(&other)),
            },
            MyCodec::Date | MyCodec::DateTime | MyCodec::Timestamp => {
                let (y, mo, d, h, mi, s, us) = match value {
                    Value::Date(y, mo, d, h, mi, s, us) => (y, mo, d, h, mi, s, us),
                    Value::Bytes(b)
                        if b.iter()
                            .all(|c| matches!(c, b'0' | b'-' | b':' | b' ' | b'.')) =>
                    {
                        (0, 0, 0, 0, 0, 0, 0)
                    }
                    other => return Err(unexpected(&other)),
                };
                if mo == 0 || d == 0 {
                    return match self.invalid_dates {
                        InvalidDates::Null => append_null(&mut self.builder),
                        InvalidDates::Error => Err(format!(
                            "invalid date {y:04}-{mo:02}-{d:02} (set invalid_dates = \"null\" on the source to read it as NULL)"
                        )),
                    };
                }
                let days = days_from_civil(y as i64, mo as i64, d as i64);
                if self.codec == MyCodec::Date {
                    typed::<Date32Builder>(&mut self.builder)?.append_value(days as i32)
                } else {
                    let micros = ((days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64)
                        * 1_000_000)
                        + us as i64;
                    typed::<TimestampMicrosecondBuilder>(&mut self.builder)?.append_value(micros)
                }
            }
            MyCodec::Time => {
                let Value::Time(negative, days, h, mi, s, us) = value else {
                    return Err(unexpected(&value));
                };
                let micros = ((days as i64 * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64)
                    * 1_000_000)
                    + us as i64;
                typed::<DurationMicrosecondBuilder>(&mut self.builder)?.append_value(if negative {
                    -micros
                } else {
                    micros
                })
            }
        }
        Ok(())
    }
}

/// The builder of a column as its concrete type.
fn typed<T: 'static>(builder: &mut Box<dyn ArrayBuilder>) -> Result<&mut T, String> {
    builder
        .as_any_mut()
        .downcast_mut::<T>()
        .ok_or_else(|| "internal: builder type mismatch".to_string())
}

fn append_null(builder: &mut Box<dyn ArrayBuilder>) -> Result<(), String> {
    {
        macro_rules! null {
            ($($t:ty),*) => {{
                let any = builder.as_any_mut();
                $(if let Some(b) = any.downcast_mut::<$t>() { b.append_null(); return Ok(()); })*
                Err("internal: no builder for NULL".to_string())
            }};
        }
        null!(
            BooleanBuilder,
            Int8Builder,
            Int16Builder,
            Int32Builder,
            Int64Builder,
            UInt8Builder,
            UInt16Builder,
            UInt32Builder,
            UInt64Builder,
            Float32Builder,
            Float64Builder,
            Decimal128Builder,
            Decimal256Builder,
            StringBuilder,
            BinaryBuilder,
            Date32Builder,
            TimestampMicrosecondBuilder,
            DurationMicrosecondBuilder
        )
    }
}

/// `"-12.5"` at scale 3 → `"-12500"`, refusing to drop digits.
pub fn parse_decimal(text: &str, scale: i8) -> Result<String, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = scale.max(0) as usize;
    if frac.len() > scale && frac[scale..].bytes().any(|c| c != b'0') {
        return Err(format!(
            "decimal {text} has more than {scale} fraction digits"
        ));
    }
    let mut frac = frac.get(..scale.min(frac.len())).unwrap_or("").to_string();
    while frac.len() < scale {
        frac.push('0');
    }
    let joined = format!("{int}{frac}");
    let trimmed = joined.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    if !trimmed.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid decimal {text}"));
    }
    Ok(if negative && trimmed != "0" {
        format!("-{trimmed}")
    } else {
        trimmed.to_string()
    })
}

/// Civil date of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("123.45", 2).as_deref(), Ok("12345"));
        assert_eq!(parse_decimal("-0.5", 3).as_deref(), Ok("-500"));
        assert_eq!(parse_decimal("7", 2).as_deref(), Ok("700"));
        assert!(parse_decimal("1.234", 2).is_err());
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19782);
    }
}
