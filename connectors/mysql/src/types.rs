//! MySQL/MariaDB column types as Arrow types, and decoding of binary-protocol
//! values into Arrow builders. The mapping is documented in the README.

use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{DataType, TimeUnit, i256};
use koios_connector::ddl::ColumnType;
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
        let builder = &mut self.builder;
        match decode(&self.codec, &value, self.invalid_dates)? {
            Decoded::Null => return append_null(builder),
            Decoded::Bool(b) => typed::<BooleanBuilder>(builder)?.append_value(b),
            // `decode` checked the value fits the column's width.
            Decoded::Int(v) => match self.codec {
                MyCodec::Int { bits: 8, .. } => {
                    typed::<Int8Builder>(builder)?.append_value(v as i8)
                }
                MyCodec::Int { bits: 32, .. } => {
                    typed::<Int32Builder>(builder)?.append_value(v as i32)
                }
                MyCodec::Int { bits: 64, .. } => typed::<Int64Builder>(builder)?.append_value(v),
                _ => typed::<Int16Builder>(builder)?.append_value(v as i16),
            },
            Decoded::UInt(v) => match self.codec {
                MyCodec::Int { bits: 8, .. } => {
                    typed::<UInt8Builder>(builder)?.append_value(v as u8)
                }
                MyCodec::Int { bits: 16, .. } => {
                    typed::<UInt16Builder>(builder)?.append_value(v as u16)
                }
                MyCodec::Int { bits: 32, .. } => {
                    typed::<UInt32Builder>(builder)?.append_value(v as u32)
                }
                _ => typed::<UInt64Builder>(builder)?.append_value(v),
            },
            Decoded::Float(f) => typed::<Float32Builder>(builder)?.append_value(f),
            Decoded::Double(f) => typed::<Float64Builder>(builder)?.append_value(f),
            Decoded::Decimal128(v) => typed::<Decimal128Builder>(builder)?.append_value(v),
            Decoded::Decimal256(v) => typed::<Decimal256Builder>(builder)?.append_value(v),
            Decoded::Text(text) => typed::<StringBuilder>(builder)?.append_value(text),
            Decoded::Bytes(b) => typed::<BinaryBuilder>(builder)?.append_value(b),
            Decoded::Days(days) => typed::<Date32Builder>(builder)?.append_value(days),
            Decoded::Micros(micros) if self.codec == MyCodec::Time => {
                typed::<DurationMicrosecondBuilder>(builder)?.append_value(micros)
            }
            Decoded::Micros(micros) => {
                typed::<TimestampMicrosecondBuilder>(builder)?.append_value(micros)
            }
        }
        Ok(())
    }
}

/// One binary-protocol value as its column's codec reads it: what both
/// the Arrow builders and the rows written straight for a client
/// (`rows.rs`) take, so the two paths apply the same checks and give the
/// same errors.
pub(crate) enum Decoded<'a> {
    Null,
    Bool(bool),
    /// A signed integer (or `YEAR`) within its column's width.
    Int(i64),
    /// An unsigned integer within its column's width, or a `BIT` value.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// A decimal's unscaled value at the column's scale.
    Decimal128(i128),
    Decimal256(i256),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// A `DATE` as days since 1970-01-01.
    Days(i32),
    /// A `DATETIME` or `TIMESTAMP` as microseconds since 1970-01-01, or a
    /// `TIME` as a signed duration in microseconds.
    Micros(i64),
}

/// Reads `value` as `codec` does: an error for a value the column cannot
/// hold; a zero date is NULL or an error as `invalid_dates` says.
pub(crate) fn decode<'a>(
    codec: &MyCodec,
    value: &'a Value,
    invalid_dates: InvalidDates,
) -> Result<Decoded<'a>, String> {
    if *value == Value::NULL {
        return Ok(Decoded::Null);
    }
    let unexpected = || format!("unexpected value {value:?}");
    Ok(match codec {
        MyCodec::Bool => Decoded::Bool(match value {
            Value::Int(i) => *i != 0,
            Value::UInt(u) => *u != 0,
            Value::Bytes(b) => b.as_slice() != b"0",
            _ => return Err(unexpected()),
        }),
        MyCodec::Int { bits, unsigned } => {
            let (signed, raw) = match value {
                Value::Int(i) => (*i, *i as u64),
                Value::UInt(u) => (*u as i64, *u),
                Value::Bytes(b) => {
                    let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
                    let u: u64 = text.parse().unwrap_or_default();
                    (text.parse::<i64>().unwrap_or(u as i64), u)
                }
                _ => return Err(unexpected()),
            };
            let out_of_range = || format!("value {signed} out of range");
            let fits = match (*bits, *unsigned) {
                (8, false) => i8::try_from(signed).is_ok(),
                (16, false) => i16::try_from(signed).is_ok(),
                (32, false) => i32::try_from(signed).is_ok(),
                (8, true) => u8::try_from(raw).is_ok(),
                (16, true) => u16::try_from(raw).is_ok(),
                (32, true) => u32::try_from(raw).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(out_of_range());
            }
            if *unsigned {
                Decoded::UInt(raw)
            } else {
                Decoded::Int(signed)
            }
        }
        MyCodec::Year => match value {
            Value::Int(i) => Decoded::Int(*i as i16 as i64),
            Value::UInt(u) => Decoded::Int(*u as i16 as i64),
            // The text protocol's form.
            Value::Bytes(b) => match std::str::from_utf8(b)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
            {
                Some(year) => Decoded::Int(year as i16 as i64),
                None => return Err(unexpected()),
            },
            _ => return Err(unexpected()),
        },
        MyCodec::Float => match value {
            Value::Float(f) => Decoded::Float(*f),
            Value::Double(f) => Decoded::Float(*f as f32),
            _ => return Err(unexpected()),
        },
        MyCodec::Double => match value {
            Value::Double(f) => Decoded::Double(*f),
            Value::Float(f) => Decoded::Double(*f as f64),
            _ => return Err(unexpected()),
        },
        MyCodec::Decimal { precision, scale } => {
            let Value::Bytes(b) = value else {
                return Err(unexpected());
            };
            let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
            let unscaled = parse_decimal(text, *scale)?;
            let out_of_range = || format!("decimal {text} out of range");
            if *precision <= 38 {
                Decoded::Decimal128(unscaled.parse().map_err(|_| out_of_range())?)
            } else {
                Decoded::Decimal256(i256::from_string(&unscaled).ok_or_else(out_of_range)?)
            }
        }
        MyCodec::Bit => {
            let Value::Bytes(b) = value else {
                return Err(unexpected());
            };
            Decoded::UInt(b.iter().fold(0u64, |acc, byte| (acc << 8) | *byte as u64))
        }
        MyCodec::Text { .. } | MyCodec::OtherText | MyCodec::Cast => {
            let Value::Bytes(b) = value else {
                return Err(unexpected());
            };
            Decoded::Text(
                std::str::from_utf8(b).map_err(|_| "text value is not valid UTF-8".to_string())?,
            )
        }
        MyCodec::Binary => match value {
            Value::Bytes(b) => Decoded::Bytes(b),
            _ => return Err(unexpected()),
        },
        MyCodec::Date | MyCodec::DateTime | MyCodec::Timestamp => {
            let (y, mo, d, h, mi, s, us) = match value {
                Value::Date(y, mo, d, h, mi, s, us) => (*y, *mo, *d, *h, *mi, *s, *us),
                Value::Bytes(b)
                    if b.iter()
                        .all(|c| matches!(c, b'0' | b'-' | b':' | b' ' | b'.')) =>
                {
                    (0, 0, 0, 0, 0, 0, 0)
                }
                Value::Bytes(b) => parse_date_text(b).ok_or_else(unexpected)?,
                _ => return Err(unexpected()),
            };
            if mo == 0 || d == 0 {
                return match invalid_dates {
                    InvalidDates::Null => Ok(Decoded::Null),
                    InvalidDates::Error => Err(format!(
                        "invalid date {y:04}-{mo:02}-{d:02} (set invalid_dates = \"null\" on the source to read it as NULL)"
                    )),
                };
            }
            let days = days_from_civil(y as i64, mo as i64, d as i64);
            if *codec == MyCodec::Date {
                Decoded::Days(days as i32)
            } else {
                Decoded::Micros(
                    ((days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000)
                        + us as i64,
                )
            }
        }
        MyCodec::Time => {
            let Value::Time(negative, days, h, mi, s, us) = value else {
                return Err(unexpected());
            };
            let micros = ((*days as i64 * 86_400 + *h as i64 * 3600 + *mi as i64 * 60 + *s as i64)
                * 1_000_000)
                + *us as i64;
            Decoded::Micros(if *negative { -micros } else { micros })
        }
    })
}

/// A `DATE` or `DATETIME` as the text protocol sends it (`2024-01-02`,
/// `2024-01-02 03:04:05`, `… 03:04:05.123`): year, month, day, hour,
/// minute, second, microsecond.
fn parse_date_text(b: &[u8]) -> Option<(u16, u8, u8, u8, u8, u8, u32)> {
    let text = std::str::from_utf8(b).ok()?;
    let (date, time) = text.split_once(' ').unwrap_or((text, ""));
    let mut day = date.splitn(3, '-');
    let (y, mo, d) = (
        day.next()?.parse().ok()?,
        day.next()?.parse().ok()?,
        day.next()?.parse().ok()?,
    );
    if time.is_empty() {
        return Some((y, mo, d, 0, 0, 0, 0));
    }
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock = clock.splitn(3, ':');
    let (h, mi, s) = (
        clock.next()?.parse().ok()?,
        clock.next()?.parse().ok()?,
        clock.next()?.parse().ok()?,
    );
    let digits = fraction.get(..fraction.len().min(6))?;
    let us = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(6 - digits.len() as u32)
    };
    Some((y, mo, d, h, mi, s, us))
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

/// The type MySQL keeps a column declared `ty` as when a table is made
/// from another backend's columns: the nearest it has where it lacks `ty`
/// (a time or an interval as text, a char as varchar — MySQL's char drops
/// trailing spaces —, an array as json, a numeric beyond its decimal as
/// its widest decimal).
pub fn storable_type(ty: &ColumnType) -> ColumnType {
    match ty {
        ColumnType::Time | ColumnType::Interval => ColumnType::Text,
        ColumnType::Char(n) => ColumnType::Varchar(Some(*n)),
        ColumnType::Array(_) => ColumnType::Json,
        ColumnType::Numeric(Some((p, s))) if *p >= 1 && *p <= 65 && (0..=30).contains(s) => {
            ty.clone()
        }
        ColumnType::Numeric(Some((_, s))) if *s >= 0 => {
            ColumnType::Numeric(Some((65, (*s).min(30))))
        }
        ColumnType::Numeric(_) => ColumnType::Numeric(Some((65, 30))),
        other => other.clone(),
    }
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

    #[test]
    fn text_protocol_dates_parse() {
        assert_eq!(
            parse_date_text(b"2024-02-29"),
            Some((2024, 2, 29, 0, 0, 0, 0))
        );
        assert_eq!(
            parse_date_text(b"9999-12-31 23:59:59.999999"),
            Some((9999, 12, 31, 23, 59, 59, 999_999))
        );
        assert_eq!(
            parse_date_text(b"2024-06-01 12:00:00.123"),
            Some((2024, 6, 1, 12, 0, 0, 123_000))
        );
        assert_eq!(parse_date_text(b"not a date"), None);
    }
}
