//! Which filters, literals, joins and computed columns PostgreSQL
//! evaluates exactly as DataFusion does, so pushing them down never changes
//! an answer: per-column rules from the codecs, and the rules for values
//! computed in a pushed-down subplan.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use koios_connector_sql::pushdown::{Comparison, ExactColumns, Safety, is_exact};
use koios_connector_sql::{RemoteColumn, RemoteTable, Semantics};

use crate::types::{PgCodec, TextKind, parameter_type};

/// Pushdown rules per column, from the codecs.
struct PgColumns<'a>(&'a RemoteTable<PgCodec>);

impl ExactColumns for PgColumns<'_> {
    fn safety(
        &self,
        column: &str,
        comparison: Comparison,
        literal: Option<&ScalarValue>,
    ) -> Safety {
        self.exact(column, comparison, literal).into()
    }

    /// Parameters are sent typed as the column (booleans, integers and
    /// text), so a value compares remotely as a literal of that type would.
    fn parameter_safety(
        &self,
        column: &str,
        comparison: Comparison,
        data_type: &DataType,
    ) -> Safety {
        let Some(remote) = self.0.column(column) else {
            return Safety::No;
        };
        let sendable = matches!(
            remote.codec,
            PgCodec::Bool | PgCodec::Int2 | PgCodec::Int4 | PgCodec::Int8 | PgCodec::Text { .. }
        ) && remote.field.data_type() == data_type
            && parameter_type(data_type).is_some();
        // A pattern's validity depends on its value (a trailing escape is
        // an error in PostgreSQL): LIKE with a parameter stays local.
        if !sendable || comparison == Comparison::Like {
            return Safety::No;
        }
        // What `exact` decides for these codecs depends on the value's type
        // only (and on text holding no NUL, which binding checks).
        match ScalarValue::new_default(data_type) {
            Ok(sample) => self.exact(column, comparison, Some(&sample)).into(),
            Err(_) => Safety::No,
        }
    }
}

impl PgColumns<'_> {
    /// PostgreSQL reports no supersets: a comparison is exact or not pushed.
    fn exact(&self, column: &str, comparison: Comparison, literal: Option<&ScalarValue>) -> bool {
        let Some(column) = self.0.column(column) else {
            return false;
        };
        if comparison == Comparison::NullTest {
            return true;
        }
        // NULL literals compare to NULL on both sides.
        if literal.is_some_and(|l| l.is_null()) {
            return true;
        }
        match &column.codec {
            PgCodec::Bool | PgCodec::Int2 | PgCodec::Int4 | PgCodec::Int8 | PgCodec::Oid => {
                comparison != Comparison::Like
            }
            PgCodec::Numeric { .. } | PgCodec::Date | PgCodec::Time | PgCodec::Timestamp => {
                comparison != Comparison::Like && literal.is_some_and(|l| !has_sub_micros(l))
            }
            // Float comparisons differ on NaN and -0; money depends on locale;
            // intervals compare by justified length in PostgreSQL.
            PgCodec::Float4 | PgCodec::Float8 | PgCodec::Money | PgCodec::Interval => false,
            PgCodec::TimestampTz => false,
            PgCodec::Text {
                kind,
                bytewise_order,
                deterministic,
            } => {
                let plain = matches!(kind, TextKind::Plain | TextKind::Name);
                let is_text_literal = literal.is_some_and(|l| {
                    matches!(
                        l,
                        ScalarValue::Utf8(_) | ScalarValue::Utf8View(_) | ScalarValue::LargeUtf8(_)
                    )
                });
                // PostgreSQL text cannot hold NUL; such a literal is an error there.
                let text = literal.and_then(|l| l.try_as_str().flatten());
                let nul_free = text.is_none_or(|t| !t.contains('\0'));
                plain
                    && *deterministic
                    && is_text_literal
                    && nul_free
                    && match comparison {
                        Comparison::Equality => true,
                        Comparison::Like => text.is_some_and(like_pattern_pushable),
                        Comparison::Ordering => *bytewise_order,
                        Comparison::NullTest => true,
                    }
            }
            PgCodec::Bytea | PgCodec::Array { .. } => false,
        }
    }
}

/// PostgreSQL's LIKE escapes with `\\` as DataFusion's does, but refuses a
/// pattern ending in an unpaired one, which DataFusion reads as a literal
/// backslash: such patterns stay local.
pub(crate) fn like_pattern_pushable(pattern: &str) -> bool {
    let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
    trailing.is_multiple_of(2) && !pattern.contains('\0')
}

/// Timestamps PostgreSQL would round (it keeps microseconds).
fn has_sub_micros(value: &ScalarValue) -> bool {
    matches!(value, ScalarValue::TimestampNanosecond(Some(ns), _) if ns % 1000 != 0)
        || matches!(value, ScalarValue::Time64Nanosecond(Some(ns)) if ns % 1000 != 0)
}

pub(crate) fn filter_pushdown(
    table: &RemoteTable<PgCodec>,
    filter: &Expr,
) -> TableProviderFilterPushDown {
    if is_exact(filter, &PgColumns(table)) {
        TableProviderFilterPushDown::Exact
    } else {
        TableProviderFilterPushDown::Unsupported
    }
}

pub(crate) fn column_semantics(column: &RemoteColumn<PgCodec>) -> Semantics {
    match &column.codec {
        PgCodec::Bool
        | PgCodec::Int2
        | PgCodec::Int4
        | PgCodec::Int8
        | PgCodec::Oid
        | PgCodec::Numeric { .. }
        | PgCodec::Date
        | PgCodec::Time
        | PgCodec::Timestamp => Semantics::EXACT,
        PgCodec::Text {
            kind: TextKind::Plain | TextKind::Name,
            bytewise_order,
            deterministic: true,
        } => Semantics {
            equality: true,
            ordering: *bytewise_order,
        },
        // Floats (NaN, -0), money, intervals, time zones, padded and
        // case-insensitive text, arrays: compared differently.
        _ => Semantics::NONE,
    }
}

pub(crate) fn computed_semantics(data_type: &DataType) -> Semantics {
    match data_type {
        t if t.is_integer() => Semantics::EXACT,
        DataType::Boolean | DataType::Decimal128(..) | DataType::Date32 => Semantics::EXACT,
        // The database's default collation is deterministic; its order
        // is not known here.
        DataType::Utf8 => Semantics {
            equality: true,
            ordering: false,
        },
        _ => Semantics::NONE,
    }
}

pub(crate) fn literal_pushable(value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Null | ScalarValue::Boolean(_) => true,
        v if v.data_type().is_integer() => true,
        ScalarValue::Float64(_) | ScalarValue::Decimal128(..) | ScalarValue::Date32(_) => true,
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
            // PostgreSQL text cannot hold NUL.
            s.as_ref().is_none_or(|s| !s.contains('\0'))
        }
        ScalarValue::TimestampMicrosecond(_, None) => true,
        _ => false,
    }
}

pub(crate) fn result_codec(data_type: &DataType) -> Option<PgCodec> {
    let codec = match data_type {
        DataType::Boolean => PgCodec::Bool,
        DataType::Int16 => PgCodec::Int2,
        DataType::Int32 => PgCodec::Int4,
        DataType::Int64 => PgCodec::Int8,
        DataType::Float32 => PgCodec::Float4,
        DataType::Float64 => PgCodec::Float8,
        DataType::Decimal128(precision, scale) => PgCodec::Numeric {
            precision: *precision,
            scale: *scale,
        },
        DataType::Utf8 => PgCodec::Text {
            kind: TextKind::Plain,
            bytewise_order: false,
            deterministic: true,
        },
        DataType::Date32 => PgCodec::Date,
        DataType::Timestamp(TimeUnit::Microsecond, None) => PgCodec::Timestamp,
        _ => return None,
    };
    (codec.data_type() == *data_type).then_some(codec)
}

pub(crate) fn supports_join(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
    )
}
