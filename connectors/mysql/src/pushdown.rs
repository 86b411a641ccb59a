//! Which filters, literals, joins and computed columns MySQL evaluates
//! exactly as DataFusion does (collations decide for text), so pushing
//! them down never changes an answer.

use datafusion::arrow::datatypes::*;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use koios_connector_sql::pushdown::{Comparison, ExactColumns, Safety, classify};
use koios_connector_sql::{RemoteColumn, RemoteTable, Semantics};

use crate::types::MyCodec;

/// MySQL's LIKE has no escape character under NO_BACKSLASH_ESCAPES, where
/// DataFusion's escapes with `\`: patterns with one stay local.
pub(crate) fn like_pattern_pushable(pattern: &str) -> bool {
    !pattern.contains('\\')
}

/// Pushdown rules per column.
struct MyColumns<'a>(&'a RemoteTable<MyCodec>);

impl ExactColumns for MyColumns<'_> {
    /// A comparison with a statement's parameter (its value written into
    /// the query at each execution, see `binds_parameters`): pushed where
    /// the answer cannot depend on the value — numbers and dates of the
    /// column's own type, text under an exact collation — never LIKE.
    fn parameter_safety(
        &self,
        column: &str,
        comparison: Comparison,
        data_type: &DataType,
    ) -> Safety {
        let Some(remote) = self.0.column(column) else {
            return Safety::No;
        };
        let value_independent = matches!(
            remote.codec,
            MyCodec::Int { .. } | MyCodec::Decimal { .. } | MyCodec::Year | MyCodec::Date
        ) || matches!(&remote.codec, MyCodec::Text { collation }
                if crate::types::EXACT_COLLATIONS.contains(&collation.as_str()));
        if !value_independent
            || comparison == Comparison::Like
            || remote.field.data_type() != data_type
        {
            return Safety::No;
        }
        match ScalarValue::new_default(data_type) {
            Ok(sample) => self.safety(column, comparison, Some(&sample)),
            Err(_) => Safety::No,
        }
    }

    fn safety(
        &self,
        column: &str,
        comparison: Comparison,
        literal: Option<&ScalarValue>,
    ) -> Safety {
        let Some(column) = self.0.column(column) else {
            return Safety::No;
        };
        if comparison == Comparison::NullTest || literal.is_some_and(|l| l.is_null()) {
            return Safety::Exact;
        }
        match &column.codec {
            MyCodec::Int { .. } | MyCodec::Decimal { .. } | MyCodec::Year | MyCodec::Date => {
                (comparison != Comparison::Like).into()
            }
            MyCodec::DateTime => (comparison != Comparison::Like
                && literal.is_some_and(|l| !matches!(l, ScalarValue::TimestampNanosecond(Some(ns), _) if ns % 1000 != 0)))
            .into(),
            MyCodec::Text { .. } => {
                let Some(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text))) =
                    literal
                else {
                    return Safety::No;
                };
                // NULs are never sent; nor are LIKE patterns with a
                // backslash, which is no escape under NO_BACKSLASH_ESCAPES.
                if text.contains('\0') || (comparison == Comparison::Like && !like_pattern_pushable(text)) {
                    return Safety::No;
                }
                let exact = matches!(&column.codec, MyCodec::Text { collation } if crate::types::EXACT_COLLATIONS.contains(&collation.as_str()));
                match comparison {
                    // A binary collation without padding compares code
                    // points, as DataFusion compares bytes of UTF-8.
                    Comparison::Equality | Comparison::Ordering if exact => Safety::Exact,
                    // Every collation treats byte-equal strings as equal, and
                    // more (case, accents, trailing spaces): a superset.
                    Comparison::Equality | Comparison::Like => Safety::Superset,
                    Comparison::Ordering | Comparison::NullTest => Safety::No,
                }
            }
            // Floats: NaN/-0 rules; bit, JSON, enums and sets compare by other
            // rules; timestamps convert through the session zone.
            _ => Safety::No,
        }
    }
}

pub(crate) fn filter_pushdown(
    table: &RemoteTable<MyCodec>,
    filter: &Expr,
) -> TableProviderFilterPushDown {
    match classify(filter, &MyColumns(table)) {
        Safety::Exact => TableProviderFilterPushDown::Exact,
        Safety::Superset => TableProviderFilterPushDown::Inexact,
        Safety::No => TableProviderFilterPushDown::Unsupported,
    }
}

pub(crate) fn column_semantics(column: &RemoteColumn<MyCodec>) -> Semantics {
    match column.codec {
        MyCodec::Int { .. }
        | MyCodec::Decimal { .. }
        | MyCodec::Year
        | MyCodec::Date
        | MyCodec::DateTime => Semantics::EXACT,
        // Collations (case, accents, PAD SPACE), float rules, bit/JSON/
        // enum/set orders, session-zone timestamps: compared differently.
        _ => Semantics::NONE,
    }
}

pub(crate) fn computed_semantics(data_type: &DataType) -> Semantics {
    match data_type {
        t if t.is_integer() => Semantics::EXACT,
        DataType::Boolean | DataType::Decimal128(..) | DataType::Date32 => Semantics::EXACT,
        _ => Semantics::NONE,
    }
}

pub(crate) fn literal_pushable(value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Null | ScalarValue::Boolean(_) => true,
        v if v.data_type().is_integer() => true,
        ScalarValue::Float64(_) | ScalarValue::Decimal128(..) | ScalarValue::Date32(_) => true,
        // Quoted for NO_BACKSLASH_ESCAPES, which every session runs under.
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
            s.as_ref().is_none_or(|s| !s.contains('\0'))
        }
        _ => false,
    }
}

pub(crate) fn result_codec(data_type: &DataType) -> Option<MyCodec> {
    let codec = match data_type {
        DataType::Int8 => MyCodec::Int {
            bits: 8,
            unsigned: false,
        },
        DataType::Int16 => MyCodec::Int {
            bits: 16,
            unsigned: false,
        },
        DataType::Int32 => MyCodec::Int {
            bits: 32,
            unsigned: false,
        },
        DataType::Int64 => MyCodec::Int {
            bits: 64,
            unsigned: false,
        },
        DataType::UInt64 => MyCodec::Int {
            bits: 64,
            unsigned: true,
        },
        DataType::Float64 => MyCodec::Double,
        DataType::Decimal128(precision, scale) => MyCodec::Decimal {
            precision: *precision,
            scale: *scale,
        },
        // CAST(… AS CHAR): read as text.
        DataType::Utf8 => MyCodec::Cast,
        DataType::Date32 => MyCodec::Date,
        _ => return None,
    };
    (codec.data_type() == *data_type).then_some(codec)
}

pub(crate) fn supports_join(join_type: JoinType) -> bool {
    // No FULL JOIN in MySQL.
    matches!(
        join_type,
        JoinType::Inner | JoinType::Left | JoinType::Right
    )
}
