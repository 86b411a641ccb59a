//! The SQL types a user may declare for a column of a backend's table
//! (`CREATE TABLE src.schema.t (…)`, `ADD COLUMN`), as Koios's own
//! [`ColumnType`]. Each backend then maps them to its types or refuses
//! (its connector's `ddl.rs`). The names are PostgreSQL's, plus MySQL's
//! `UNSIGNED` integers.

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, CharacterLength, DataType as SqlType, ExactNumberInfo, TimezoneInfo,
};
use koios_connector::ddl::ColumnType;
use koios_connector::sql_error;

use crate::engine::error::codes;

/// The declared type of column `column`.
pub fn column_type(column: &str, ty: &SqlType) -> Result<ColumnType> {
    let unsupported = || {
        sql_error!(
            codes::FEATURE_NOT_SUPPORTED,
            "column \"{column}\": type {ty} cannot be declared through Koios (see the README's type table)"
        )
    };
    let length = |length: &Option<CharacterLength>| match length {
        Some(CharacterLength::IntegerLength { length, .. }) => Ok(Some(*length)),
        None => Ok(None),
        Some(CharacterLength::Max) => Err(unsupported()),
    };
    Ok(match ty {
        SqlType::Bool | SqlType::Boolean => ColumnType::Boolean,
        SqlType::TinyInt(_) => ColumnType::Int(8),
        SqlType::SmallInt(_) | SqlType::Int2(_) => ColumnType::Int(16),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => ColumnType::Int(32),
        // PostgreSQL's int8 is bigint.
        SqlType::BigInt(_) | SqlType::Int8(_) => ColumnType::Int(64),
        SqlType::TinyIntUnsigned(_) | SqlType::UInt8 => ColumnType::UInt(8),
        SqlType::SmallIntUnsigned(_) | SqlType::Int2Unsigned(_) | SqlType::UInt16 => {
            ColumnType::UInt(16)
        }
        SqlType::IntUnsigned(_)
        | SqlType::IntegerUnsigned(_)
        | SqlType::Int4Unsigned(_)
        | SqlType::MediumIntUnsigned(_)
        | SqlType::UInt32 => ColumnType::UInt(32),
        SqlType::BigIntUnsigned(_) | SqlType::Int8Unsigned(_) | SqlType::UInt64 => {
            ColumnType::UInt(64)
        }
        SqlType::Real | SqlType::Float4 => ColumnType::Real,
        SqlType::DoublePrecision | SqlType::Float8 | SqlType::Double(ExactNumberInfo::None) => {
            ColumnType::Double
        }
        // float(p): real up to 24 binary digits, double beyond (PostgreSQL).
        SqlType::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => ColumnType::Real,
        SqlType::Float(_) => ColumnType::Double,
        SqlType::Numeric(info) | SqlType::Decimal(info) => match info {
            ExactNumberInfo::None => ColumnType::Numeric(None),
            ExactNumberInfo::Precision(p) => ColumnType::Numeric(Some((narrow(*p)?, 0))),
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                let scale = i8::try_from(*s).map_err(|_| unsupported())?;
                ColumnType::Numeric(Some((narrow(*p)?, scale)))
            }
        },
        SqlType::Text => ColumnType::Text,
        SqlType::Varchar(l) | SqlType::CharacterVarying(l) => ColumnType::Varchar(length(l)?),
        SqlType::Char(l) | SqlType::Character(l) => ColumnType::Char(length(l)?.unwrap_or(1)),
        SqlType::Bytea => ColumnType::Bytea,
        SqlType::Date => ColumnType::Date,
        SqlType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => ColumnType::Time,
        SqlType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            ColumnType::Timestamp
        }
        SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
            ColumnType::TimestampTz
        }
        SqlType::Interval { fields: None, .. } => ColumnType::Interval,
        SqlType::JSON => ColumnType::Json,
        SqlType::JSONB => ColumnType::Jsonb,
        SqlType::Uuid => ColumnType::Uuid,
        SqlType::Array(
            ArrayElemTypeDef::SquareBracket(element, _) | ArrayElemTypeDef::AngleBracket(element),
        ) => ColumnType::Array(Box::new(column_type(column, element)?)),
        _ => return Err(unsupported()),
    })
}

/// A numeric precision (at most 255 digits are ever accepted by a backend).
fn narrow(precision: u64) -> Result<u8> {
    u8::try_from(precision).map_err(|_| {
        sql_error!(
            codes::INVALID_PARAMETER_VALUE,
            "numeric precision {precision} is too large"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::session::{KoiosStatement, parse_sql};
    use datafusion::sql::parser::Statement as DfStatement;
    use datafusion::sql::sqlparser::ast::Statement;

    fn declared(sql_type: &str) -> Result<ColumnType> {
        let sql = format!("CREATE TABLE t (c {sql_type})");
        let KoiosStatement::Sql(statement) = parse_sql(&sql).expect("parses").remove(0) else {
            panic!("not SQL");
        };
        let DfStatement::Statement(statement) = *statement else {
            panic!("not a statement");
        };
        let Statement::CreateTable(create) = *statement else {
            panic!("not CREATE TABLE");
        };
        column_type("c", &create.columns[0].data_type)
    }

    #[test]
    fn reads_postgres_type_names() {
        assert_eq!(declared("int8").expect("maps"), ColumnType::Int(64));
        assert_eq!(
            declared("timestamptz").expect("maps"),
            ColumnType::TimestampTz
        );
        assert_eq!(
            declared("numeric(12, 3)").expect("maps"),
            ColumnType::Numeric(Some((12, 3)))
        );
        assert_eq!(
            declared("bigint unsigned").expect("maps"),
            ColumnType::UInt(64)
        );
        assert_eq!(
            declared("text[]").expect("maps"),
            ColumnType::Array(Box::new(ColumnType::Text))
        );
        assert_eq!(
            declared("varchar(20)").expect("maps"),
            ColumnType::Varchar(Some(20))
        );
        let refused = declared("point").expect_err("refused").to_string();
        assert!(refused.contains("column \"c\""), "{refused}");
    }
}
