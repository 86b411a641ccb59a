//! PostgreSQL types as Arrow types: the codec of each column (how it is
//! read, written and compared) and the type statement parameters are sent
//! as. Decoding values is in [`crate::decode`].
//!
//! The mapping is documented in this crate's README.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
pub const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
pub const PG_EPOCH_DAYS: i32 = 10_957;

/// Scale given to `numeric` columns declared without precision.
pub const UNCONSTRAINED_NUMERIC_SCALE: i8 = 10;

/// What a text-like column holds; decides pushdown and decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// text, varchar: comparable when the collation is bytewise.
    Plain,
    /// name: always compared bytewise.
    Name,
    /// char(n): padded, compared ignoring trailing spaces.
    Padded,
    /// citext, enums, json: comparisons differ from string comparison.
    Other,
    /// jsonb: binary form has a version byte.
    Jsonb,
    Uuid,
    Inet,
    MacAddr,
    MacAddr8,
    /// Any type read through a `::text` cast.
    Cast,
}

/// How one PostgreSQL column is read (and written).
#[derive(Debug, Clone, PartialEq)]
pub enum PgCodec {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric {
        precision: u8,
        scale: i8,
    },
    Money,
    Text {
        kind: TextKind,
        bytewise_order: bool,
        deterministic: bool,
    },
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    /// A one-dimensional array; the element's type oid is needed to write it.
    Array {
        element: Box<PgCodec>,
        element_oid: u32,
    },
}

impl PgCodec {
    /// The Arrow type values of this codec become.
    pub fn data_type(&self) -> DataType {
        match self {
            PgCodec::Bool => DataType::Boolean,
            PgCodec::Int2 => DataType::Int16,
            PgCodec::Int4 => DataType::Int32,
            PgCodec::Int8 | PgCodec::Oid => DataType::Int64,
            PgCodec::Float4 => DataType::Float32,
            PgCodec::Float8 => DataType::Float64,
            PgCodec::Numeric { precision, scale } if *precision <= 38 => {
                DataType::Decimal128(*precision, *scale)
            }
            PgCodec::Numeric { precision, scale } => DataType::Decimal256(*precision, *scale),
            PgCodec::Money => DataType::Decimal128(18, 2),
            PgCodec::Text { .. } => DataType::Utf8,
            PgCodec::Bytea => DataType::Binary,
            PgCodec::Date => DataType::Date32,
            PgCodec::Time => DataType::Time64(TimeUnit::Microsecond),
            PgCodec::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgCodec::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgCodec::Interval => {
                DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
            }
            PgCodec::Array { element, .. } => {
                DataType::List(Arc::new(Field::new_list_field(element.data_type(), true)))
            }
        }
    }

    /// The codec for a type, from `pg_type` facts; `None` when unsupported.
    ///
    /// `typmod` is `pg_attribute.atttypmod`; `collation` the column's collation
    /// name (empty for "default", resolved by the caller).
    pub fn for_type(
        oid: u32,
        typname: &str,
        typtype: &str,
        typmod: i32,
        order_bytewise: bool,
        deterministic: bool,
    ) -> Option<PgCodec> {
        let text = |kind| PgCodec::Text {
            kind,
            bytewise_order: order_bytewise,
            deterministic,
        };
        Some(match oid {
            16 => PgCodec::Bool,
            21 => PgCodec::Int2,
            23 => PgCodec::Int4,
            20 => PgCodec::Int8,
            26 => PgCodec::Oid,
            700 => PgCodec::Float4,
            701 => PgCodec::Float8,
            1700 => {
                if typmod < 4 {
                    PgCodec::Numeric {
                        precision: 38,
                        scale: UNCONSTRAINED_NUMERIC_SCALE,
                    }
                } else {
                    let precision = (((typmod - 4) >> 16) & 0xffff) as u8;
                    // PostgreSQL 15 allows negative scales; they are stored signed in 11 bits.
                    let raw_scale = ((typmod - 4) & 0x7ff) as i16;
                    let scale = if raw_scale > 1023 {
                        raw_scale - 2048
                    } else {
                        raw_scale
                    } as i8;
                    if precision == 0 || precision > 76 {
                        return None;
                    }
                    PgCodec::Numeric { precision, scale }
                }
            }
            790 => PgCodec::Money,
            25 | 1043 => text(TextKind::Plain),
            19 => PgCodec::Text {
                kind: TextKind::Name,
                bytewise_order: true,
                deterministic: true,
            },
            18 | 1042 => text(TextKind::Padded),
            114 => text(TextKind::Other),
            3802 => text(TextKind::Jsonb),
            2950 => text(TextKind::Uuid),
            869 | 650 => text(TextKind::Inet),
            829 => text(TextKind::MacAddr),
            774 => text(TextKind::MacAddr8),
            17 => PgCodec::Bytea,
            1082 => PgCodec::Date,
            1083 => PgCodec::Time,
            1114 => PgCodec::Timestamp,
            1184 => PgCodec::TimestampTz,
            1186 => PgCodec::Interval,
            _ if typtype == "e" => text(TextKind::Other),
            _ if typname == "citext" => text(TextKind::Other),
            _ => return None,
        })
    }

    /// The codec for a column read as text through a cast.
    pub fn as_text() -> PgCodec {
        PgCodec::Text {
            kind: TextKind::Cast,
            bytewise_order: false,
            deterministic: false,
        }
    }
}

/// The PostgreSQL type a statement parameter of `data_type` is sent as.
pub(crate) fn parameter_type(data_type: &DataType) -> Option<tokio_postgres::types::Type> {
    use tokio_postgres::types::Type;
    Some(match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int16 => Type::INT2,
        DataType::Int32 => Type::INT4,
        DataType::Int64 => Type::INT8,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Type::TEXT,
        _ => return None,
    })
}
