//! Simple-protocol queries that differ only in the values they compare
//! with share one plan.
//!
//! Applications that do not prepare statements send each lookup as a new
//! text (`… WHERE id = 41`, then `… WHERE id = 42`), and each new text used
//! to be planned from scratch. For a plain single-table `SELECT`, the
//! literal operands of comparisons with a column in its `WHERE` are lifted
//! into placeholders; the resulting *shape* runs on its generic plan (see
//! [`crate::engine::plancache`]) with the literals bound as parameter values, which
//! the remote scan sends as parameters of its own query. A shape without a
//! generic plan, or literals that cannot be bound as exactly the values
//! DataFusion would compare, leave the query to be planned as written.

use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, GroupByExpr, SetExpr, Statement as SqlStatement, TableFactor,
    UnaryOperator, Value, ValueWithSpan,
};

use koios_connector::remote_sql::canonical_text;

use crate::engine::session::KoiosStatement;

/// A query with its literals lifted out.
#[derive(Debug)]
pub struct Shape {
    /// The query with `$1`, `$2`, … where the literals were.
    pub statement: KoiosStatement,
    /// The shape's text: the key of its generic plan.
    pub key: String,
    /// The lifted literals, `$1` first, as DataFusion types them.
    pub values: Vec<ScalarValue>,
}

/// The shape of `statement` if it is a plain single-table query (no join,
/// grouping, ordering, DISTINCT or CTE: the plans a generic plan can be)
/// comparing columns with at least one integer or string literal.
pub fn lift(statement: &DfStatement) -> Option<Shape> {
    let DfStatement::Statement(statement) = statement else {
        return None;
    };
    let SqlStatement::Query(query) = statement.as_ref() else {
        return None;
    };
    let plain_query = query.with.is_none()
        && query.order_by.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty()
        && query.for_clause.is_none()
        && query.settings.is_none()
        && query.format_clause.is_none()
        && query.pipe_operators.is_empty();
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let one_table = matches!(
        select.from.as_slice(),
        [from] if from.joins.is_empty() && matches!(from.relation, TableFactor::Table { args: None, .. })
    );
    let plain_select = select.distinct.is_none()
        && select.top.is_none()
        && select.into.is_none()
        && select.lateral_views.is_empty()
        && select.prewhere.is_none()
        && select.connect_by.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.cluster_by.is_empty()
        && select.distribute_by.is_empty()
        && select.sort_by.is_empty()
        && select.having.is_none()
        && select.named_window.is_empty()
        && select.qualify.is_none();
    if !(plain_query && one_table && plain_select) || select.selection.is_none() {
        return None;
    }
    // Placeholders already in the text (a client's own) are not renumbered.
    let text = statement.to_string();
    if text.contains('$') {
        return None;
    }
    let mut lifted = query.clone();
    let mut values = Vec::new();
    if let SetExpr::Select(select) = lifted.body.as_mut()
        && let Some(selection) = select.selection.as_mut()
    {
        lift_comparisons(selection, &mut values);
    }
    if values.is_empty() {
        return None;
    }
    let statement = SqlStatement::Query(lifted);
    let key = canonical_text(&statement)?;
    Some(Shape {
        statement: KoiosStatement::Sql(Box::new(DfStatement::Statement(Box::new(statement)))),
        key,
        values,
    })
}

/// The plan-cache key of a statement a client prepared: its exact text
/// (see [`canonical_text`]); `None` if it has none (it is not cached).
pub fn canonical_key(statement: &DfStatement) -> Option<String> {
    match statement {
        DfStatement::Statement(statement) => canonical_text(statement.as_ref()),
        _ => None,
    }
}

/// Replaces the literal operands of column comparisons under AND, OR, NOT
/// and parentheses, appending their values.
fn lift_comparisons(expr: &mut SqlExpr, values: &mut Vec<ScalarValue>) {
    match expr {
        SqlExpr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And | BinaryOperator::Or => {
                lift_comparisons(left, values);
                lift_comparisons(right, values);
            }
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => {
                if is_column(left) {
                    lift_operand(right, values);
                } else if is_column(right) {
                    lift_operand(left, values);
                }
            }
            _ => {}
        },
        SqlExpr::Nested(inner)
        | SqlExpr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        } => lift_comparisons(inner, values),
        SqlExpr::Between {
            expr: column,
            low,
            high,
            ..
        } if is_column(column) => {
            lift_operand(low, values);
            lift_operand(high, values);
        }
        SqlExpr::InList {
            expr: column, list, ..
        } if is_column(column) => {
            for item in list {
                lift_operand(item, values);
            }
        }
        _ => {}
    }
}

fn is_column(expr: &SqlExpr) -> bool {
    matches!(
        expr,
        SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)
    )
}

/// Replaces `expr` by the next placeholder if it is an integer or a string
/// literal.
fn lift_operand(expr: &mut SqlExpr, values: &mut Vec<ScalarValue>) {
    let value = match expr {
        SqlExpr::Value(ValueWithSpan { value, .. }) => literal(value, false),
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            SqlExpr::Value(ValueWithSpan {
                value: value @ Value::Number(..),
                ..
            }) => literal(value, true),
            _ => None,
        },
        _ => None,
    };
    if let Some(value) = value {
        values.push(value);
        *expr = SqlExpr::value(Value::Placeholder(format!("${}", values.len())));
    }
}

/// An integer (as DataFusion types it, Int64) or a string literal.
fn literal(value: &Value, negative: bool) -> Option<ScalarValue> {
    match value {
        Value::Number(digits, _) => {
            let n: i64 = if negative {
                format!("-{digits}").parse().ok()?
            } else {
                digits.parse().ok()?
            };
            Some(ScalarValue::Int64(Some(n)))
        }
        Value::SingleQuotedString(s) if !negative => Some(ScalarValue::Utf8(Some(s.clone()))),
        _ => None,
    }
}

/// A query text with its integer and string literals masked: texts with
/// the same template differ only in those values, so once one of them was
/// parsed and found to have a [`Shape`] lifting exactly these literals,
/// the others are run on that shape's generic plan without being parsed.
#[derive(Debug, PartialEq)]
pub struct Template {
    /// The text with each literal replaced by a marker no accepted text
    /// otherwise holds.
    pub key: String,
    /// The literals in the order they appear, as [`lift`] types them.
    pub values: Vec<ScalarValue>,
}

/// Marks a masked literal in a template key (a control character: a text
/// holding one outside a string literal has no template).
const MASK: char = '\u{1}';

/// The template of `text`, or `None` for any text holding something this
/// deliberately small scanner does not read exactly as the SQL parser
/// does: comments, `$`, casts, signs, operators other than comparisons,
/// numbers that are not plain integers within i64, prefixed strings
/// (`E'…'`), backslashes in strings, non-ASCII outside strings.
pub fn template(text: &str) -> Option<Template> {
    let bytes = text.as_bytes();
    let mut key = String::with_capacity(text.len());
    let mut values = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let previous = if i > 0 { bytes[i - 1] } else { b' ' };
        let after_word = previous.is_ascii_alphanumeric() || previous == b'_';
        match byte {
            b'\'' => {
                // `x'…'`, `E'…'`, `U&'…'`: not plain strings.
                if after_word {
                    return None;
                }
                let mut value = String::new();
                let mut start = i + 1;
                let mut at = start;
                loop {
                    match bytes.get(at)? {
                        b'\'' if bytes.get(at + 1) == Some(&b'\'') => {
                            value.push_str(text.get(start..=at)?);
                            at += 2;
                            start = at;
                        }
                        b'\'' => break,
                        b'\\' => return None,
                        _ => at += 1,
                    }
                }
                value.push_str(text.get(start..at)?);
                // A string right after another is concatenated by the parser.
                if text.get(at + 1..)?.trim_start().starts_with('\'') {
                    return None;
                }
                key.push(MASK);
                key.push('s');
                values.push(ScalarValue::Utf8(Some(value)));
                i = at + 1;
            }
            b'0'..=b'9' if !after_word && previous != b'.' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(bytes.len(), |n| i + n);
                // `1.5`, `1e5`, `1_000`, `0x1f`: not plain integers.
                if bytes
                    .get(end)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
                {
                    return None;
                }
                let value: i64 = text.get(i..end)?.parse().ok()?;
                key.push(MASK);
                key.push('n');
                values.push(ScalarValue::Int64(Some(value)));
                i = end;
            }
            b'"' => {
                // A quoted identifier, kept as written.
                let mut at = i + 1;
                loop {
                    match bytes.get(at)? {
                        b'"' if bytes.get(at + 1) == Some(&b'"') => at += 2,
                        b'"' => break,
                        // Nothing in a key but a mask is a control character.
                        b if *b < 0x20 => return None,
                        _ => at += 1,
                    }
                }
                key.push_str(text.get(i..=at)?);
                i = at + 1;
            }
            b if b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b' '
                        | b'\t'
                        | b'\n'
                        | b'\r'
                        | b'('
                        | b')'
                        | b','
                        | b'.'
                        | b'='
                        | b'<'
                        | b'>'
                        | b'!'
                        | b'*'
                        | b';'
                ) =>
            {
                key.push(b as char);
                i += 1;
            }
            _ => return None,
        }
    }
    (!values.is_empty()).then_some(Template { key, values })
}

/// The lifted `values` as the generic plan's placeholder types, where each
/// converts without changing what it compares equal to: integers to any
/// integer type they fit, strings to any string type. `None` otherwise (a
/// string compared with a date, say, is a conversion DataFusion makes with
/// its own rules: that query is planned as written).
pub fn bind_as(
    values: &[ScalarValue],
    types: &[Option<datafusion::arrow::datatypes::DataType>],
) -> Option<Vec<ScalarValue>> {
    values
        .iter()
        .zip(types.iter().chain(std::iter::repeat(&None)))
        .map(|(value, data_type)| {
            let data_type = data_type.as_ref()?;
            let convertible = match value {
                ScalarValue::Int64(_) => data_type.is_integer(),
                ScalarValue::Utf8(_) => data_type.is_string(),
                _ => false,
            };
            if !convertible {
                return None;
            }
            let converted = value.cast_to(data_type).ok()?;
            // Integers that do not fit are not silently wrapped.
            (converted.cast_to(&value.data_type()).ok()? == *value).then_some(converted)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn shape(sql: &str) -> Option<Shape> {
        match crate::engine::session::parse_sql(sql)
            .expect("parses")
            .remove(0)
        {
            KoiosStatement::Sql(statement) => lift(&statement),
            KoiosStatement::Source(_)
            | KoiosStatement::Logical(_)
            | KoiosStatement::Job(_)
            | KoiosStatement::Migrate(_) => None,
        }
    }

    #[test]
    fn lifts_the_literals_of_column_comparisons() {
        let lifted = shape(
            "SELECT a, 'kept' FROM t WHERE (a = 5 OR b <> 'x''y') AND NOT c > -3 \
             AND d BETWEEN 1 AND 9 AND e IN (1, 'two') AND f = g LIMIT 10",
        )
        .expect("a shape");
        assert_eq!(
            lifted.key,
            "SELECT a, 'kept' FROM t WHERE (a = $1 OR b <> $2) AND NOT c > $3 \
             AND d BETWEEN $4 AND $5 AND e IN ($6, $7) AND f = g LIMIT 10"
        );
        assert_eq!(
            lifted.values,
            vec![
                ScalarValue::Int64(Some(5)),
                ScalarValue::Utf8(Some("x'y".into())),
                ScalarValue::Int64(Some(-3)),
                ScalarValue::Int64(Some(1)),
                ScalarValue::Int64(Some(9)),
                ScalarValue::Int64(Some(1)),
                ScalarValue::Utf8(Some("two".into())),
            ]
        );
        // Texts that differ only in values share the shape.
        let other = shape(
            "SELECT a, 'kept' FROM t WHERE (a = 6 OR b <> '') AND NOT c > 4 \
             AND d BETWEEN 2 AND 3 AND e IN (7, 'x') AND f = g LIMIT 10",
        )
        .expect("a shape");
        assert_eq!(other.key, lifted.key);
    }

    #[test]
    fn leaves_other_queries_as_written() {
        for sql in [
            "SELECT a FROM t",
            "SELECT a FROM t WHERE a = b",
            "SELECT a FROM t WHERE a = 1.5",
            "SELECT a FROM t WHERE a = DATE '2024-01-01'",
            "SELECT a FROM t WHERE a + 1 = 2",
            "SELECT a FROM t JOIN u ON t.a = u.a WHERE a = 1",
            "SELECT a FROM t WHERE a = 1 ORDER BY a",
            "SELECT a, count(*) FROM t WHERE a = 1 GROUP BY a",
            "SELECT DISTINCT a FROM t WHERE a = 1",
            "WITH w AS (SELECT 1) SELECT a FROM t WHERE a = 1",
            "SELECT a FROM t WHERE a = 1 UNION SELECT a FROM u",
            "SELECT a FROM t WHERE b = 'costs $5' AND a = 1",
            "EXPLAIN SELECT a FROM t WHERE a = 1",
            "INSERT INTO t VALUES (1)",
        ] {
            assert!(shape(sql).is_none(), "{sql} was lifted");
        }
    }

    #[test]
    fn templates_mask_exactly_the_literals_the_parser_sees() {
        let text =
            "SELECT a, \"b'c\" FROM t1 WHERE (a = 5 OR b <> 'x''y') AND c BETWEEN 10 AND 20;";
        let found = template(text).expect("a template");
        assert_eq!(
            found.key,
            "SELECT a, \"b'c\" FROM t1 WHERE (a = \u{1}n OR b <> \u{1}s) AND c BETWEEN \u{1}n AND \u{1}n;"
        );
        assert_eq!(
            found.values,
            vec![
                ScalarValue::Int64(Some(5)),
                ScalarValue::Utf8(Some("x'y".into())),
                ScalarValue::Int64(Some(10)),
                ScalarValue::Int64(Some(20)),
            ]
        );
        // The values a shape lifts, in the same order, for the same text.
        let lifted = shape(text).expect("a shape");
        assert_eq!(lifted.values, found.values);
        // Only the values differ between texts of one template.
        let other = template(
            "SELECT a, \"b'c\" FROM t1 WHERE (a = 6 OR b <> 'é ''') AND c BETWEEN 1 AND 99;",
        )
        .expect("a template");
        assert_eq!(other.key, found.key);
        assert_eq!(other.values[1], ScalarValue::Utf8(Some("é '".into())));
    }

    #[test]
    fn templates_refuse_what_the_scanner_cannot_read_as_the_parser_does() {
        for text in [
            "SELECT a FROM t",
            "SELECT a FROM t WHERE a = -5",
            "SELECT a FROM t WHERE a = 1.5",
            "SELECT a FROM t WHERE a = 1e5",
            "SELECT a FROM t WHERE a = 99999999999999999999",
            "SELECT a FROM t WHERE a = '5'::int",
            "SELECT a FROM t WHERE a = E'x'",
            "SELECT a FROM t WHERE a = 'a\\nb'",
            "SELECT a FROM t WHERE a = 'x' 'y'",
            "SELECT a FROM t WHERE a = 'open",
            "SELECT a FROM t WHERE a = $1",
            "SELECT a FROM t WHERE a = 1 -- 2",
            "SELECT a FROM t WHERE a = 1 /* 2 */",
            "SELECT a FROM t WHERE a + 1 = 2",
            "SELECT a FROM t WHERE é = 1",
            "SELECT a FROM t WHERE \"open = 1",
        ] {
            assert!(template(text).is_none(), "{text} has a template");
        }
    }

    #[test]
    fn binds_only_conversions_that_keep_the_value() {
        let int = ScalarValue::Int64(Some(7));
        let big = ScalarValue::Int64(Some(5_000_000_000));
        let text = ScalarValue::Utf8(Some("7".into()));
        assert_eq!(
            bind_as(std::slice::from_ref(&int), &[Some(DataType::Int32)]),
            Some(vec![ScalarValue::Int32(Some(7))])
        );
        assert_eq!(bind_as(&[big], &[Some(DataType::Int32)]), None);
        assert_eq!(
            bind_as(std::slice::from_ref(&text), &[Some(DataType::Utf8View)]),
            Some(vec![ScalarValue::Utf8View(Some("7".into()))])
        );
        assert_eq!(bind_as(&[text], &[Some(DataType::Int64)]), None);
        assert_eq!(
            bind_as(std::slice::from_ref(&int), &[Some(DataType::Utf8)]),
            None
        );
        assert_eq!(
            bind_as(std::slice::from_ref(&int), &[Some(DataType::Float64)]),
            None
        );
        assert_eq!(bind_as(&[int], &[None]), None);
    }
}
