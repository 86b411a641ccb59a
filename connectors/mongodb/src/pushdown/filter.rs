//! DataFusion filters as MongoDB query documents.
//!
//! A translation is *exact* when MongoDB selects the same documents as
//! DataFusion's evaluation of the same predicate over the decoded rows:
//! - the literal is of the column's own type bracket (numbers with numbers,
//!   strings with strings, dates with timestamps, ObjectIds with hex text),
//!   because MongoDB never matches across brackets while DataFusion would
//!   cast; other pairs are not pushed;
//! - missing and null fields are NULL in SQL: `IS NULL` is `{$eq: null}`
//!   (which matches both), `<>` and `NOT IN` also exclude null and missing;
//! - `NOT` is pushed through to the leaves (SQL's three-valued logic makes
//!   `NOT a > 1` mean `a <= 1`), never sent as `$not`, which would match nulls;
//! - `LIKE` becomes an anchored regex with every other character escaped.
//!
//! MongoDB also matches an *array* field when one element matches; such a
//! value does not fit a scalar column, so reading it is an error under
//! `invalid_values = "error"`. Under `"null"` it would be read as NULL while
//! MongoDB matched it, so there every pushed filter is only *Inexact*, and
//! DataFusion checks the rows again.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Like, Operator, TableProviderFilterPushDown};
use mongodb::bson::{Bson, Document, Regex, doc, oid::ObjectId};

use crate::options::InvalidValues;
use crate::types::schema::Shape;

/// A filter MongoDB can evaluate, and whether it is exact.
#[derive(Debug, Clone)]
pub struct Translated {
    pub filter: Document,
    pub exact: bool,
}

/// How far MongoDB can evaluate `expr` over `columns`: exact only when a
/// value that does not fit its column fails the query (`invalid_values =
/// "error"`), since MongoDB's array matching could otherwise select a row
/// DataFusion would read as NULL.
pub fn pushdown(
    expr: &Expr,
    columns: &[(String, Shape)],
    invalid_values: InvalidValues,
) -> TableProviderFilterPushDown {
    match translate(expr, columns) {
        None => TableProviderFilterPushDown::Unsupported,
        Some(t) if t.exact && invalid_values == InvalidValues::Error => {
            TableProviderFilterPushDown::Exact
        }
        Some(_) => TableProviderFilterPushDown::Inexact,
    }
}

/// Translates `expr` over `columns`, or `None` when MongoDB cannot evaluate it.
pub fn translate(expr: &Expr, columns: &[(String, Shape)]) -> Option<Translated> {
    Translator { columns }.predicate(expr, false)
}

struct Translator<'a> {
    columns: &'a [(String, Shape)],
}

/// Comparison operators after pushing `NOT` through.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Cmp {
    fn from(op: Operator) -> Option<Cmp> {
        Some(match op {
            Operator::Eq => Cmp::Eq,
            Operator::NotEq => Cmp::NotEq,
            Operator::Lt => Cmp::Lt,
            Operator::LtEq => Cmp::LtEq,
            Operator::Gt => Cmp::Gt,
            Operator::GtEq => Cmp::GtEq,
            _ => return None,
        })
    }

    fn negate(self) -> Cmp {
        match self {
            Cmp::Eq => Cmp::NotEq,
            Cmp::NotEq => Cmp::Eq,
            Cmp::Lt => Cmp::GtEq,
            Cmp::LtEq => Cmp::Gt,
            Cmp::Gt => Cmp::LtEq,
            Cmp::GtEq => Cmp::Lt,
        }
    }

    /// `5 < a` is `a > 5`.
    fn swap(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::LtEq => Cmp::GtEq,
            Cmp::Gt => Cmp::Lt,
            Cmp::GtEq => Cmp::LtEq,
            other => other,
        }
    }
}

impl Translator<'_> {
    fn predicate(&self, expr: &Expr, negated: bool) -> Option<Translated> {
        match expr {
            Expr::Not(inner) => self.predicate(inner, !negated),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let l = self.predicate(left, negated)?;
                    let r = self.predicate(right, negated)?;
                    // De Morgan: under NOT, AND becomes OR and back.
                    let conjunction = (*op == Operator::And) != negated;
                    let key = if conjunction { "$and" } else { "$or" };
                    Some(Translated {
                        filter: doc! { key: [l.filter, r.filter] },
                        exact: l.exact && r.exact,
                    })
                }
                _ => {
                    let cmp = Cmp::from(*op)?;
                    let (path, shape, literal, cmp) = match (self.path(left), self.path(right)) {
                        (Some((p, s)), None) => (p, s, right.as_ref(), cmp),
                        (None, Some((p, s))) => (p, s, left.as_ref(), cmp.swap()),
                        _ => return None,
                    };
                    let value = literal_for(literal, shape)?;
                    let cmp = if negated { cmp.negate() } else { cmp };
                    Some(exact(comparison(&path, cmp, value)))
                }
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let (path, _) = self.path(inner)?;
                let is_null = matches!(expr, Expr::IsNull(_)) != negated;
                let op = if is_null { "$eq" } else { "$ne" };
                Some(exact(doc! { path: { op: Bson::Null } }))
            }
            Expr::InList(list) => {
                let (path, shape) = self.path(&list.expr)?;
                let values = list
                    .list
                    .iter()
                    .map(|item| literal_for(item, shape))
                    .collect::<Option<Vec<_>>>()?;
                if list.negated != negated {
                    let mut excluded = values;
                    excluded.push(Bson::Null);
                    Some(exact(doc! { path: { "$nin": excluded } }))
                } else {
                    Some(exact(doc! { path: { "$in": values } }))
                }
            }
            Expr::Like(Like {
                negated: like_negated,
                expr,
                pattern,
                escape_char,
                case_insensitive,
            }) => {
                // NOT LIKE would need `$not`, which also matches null.
                if *like_negated != negated {
                    return None;
                }
                let (path, shape) = self.path(expr)?;
                if *shape != Shape::String {
                    return None;
                }
                let Expr::Literal(
                    ScalarValue::Utf8(Some(p))
                    | ScalarValue::LargeUtf8(Some(p))
                    | ScalarValue::Utf8View(Some(p)),
                    _,
                ) = pattern.as_ref()
                else {
                    return None;
                };
                let regex = like_to_regex(p, escape_char.unwrap_or('\\'))?;
                let translated = doc! { path: { "$regex": Bson::RegularExpression(Regex {
                    pattern: regex,
                    options: if *case_insensitive { "is".into() } else { "s".into() },
                }) } };
                // Case folding differs between PCRE and DataFusion for some scripts.
                Some(Translated {
                    filter: translated,
                    exact: !case_insensitive,
                })
            }
            Expr::Column(_) | Expr::ScalarFunction(_) => {
                // A boolean column used as a predicate.
                let (path, shape) = self.path(expr)?;
                if *shape != Shape::Bool {
                    return None;
                }
                Some(exact(doc! { path: { "$eq": !negated } }))
            }
            _ => None,
        }
    }

    /// The dotted field path and shape of a column or nested field access.
    fn path(&self, expr: &Expr) -> Option<(String, &Shape)> {
        match expr {
            Expr::Column(column) => self
                .columns
                .iter()
                .find(|(name, _)| *name == column.name)
                .filter(|(name, _)| !name.contains('.') && !name.starts_with('$'))
                .map(|(name, shape)| (name.clone(), shape)),
            Expr::ScalarFunction(call) if call.func.name() == "get_field" => {
                let [base, Expr::Literal(ScalarValue::Utf8(Some(field)), _)] = call.args.as_slice()
                else {
                    return None;
                };
                let (path, shape) = self.path(base)?;
                let Shape::Document(fields) = shape else {
                    return None;
                };
                if field.contains('.') || field.starts_with('$') {
                    return None;
                }
                let (_, shape) = fields.iter().find(|(name, _)| name == field)?;
                Some((format!("{path}.{field}"), shape))
            }
            _ => None,
        }
    }
}

fn exact(filter: Document) -> Translated {
    Translated {
        filter,
        exact: true,
    }
}

fn comparison(path: &str, cmp: Cmp, value: Bson) -> Document {
    match cmp {
        Cmp::Eq => doc! { path: { "$eq": value } },
        // SQL's `<>` is never true for NULL; MongoDB's `$ne` matches missing fields.
        Cmp::NotEq => doc! { path: { "$nin": [value, Bson::Null] } },
        Cmp::Lt => doc! { path: { "$lt": value } },
        Cmp::LtEq => doc! { path: { "$lte": value } },
        Cmp::Gt => doc! { path: { "$gt": value } },
        Cmp::GtEq => doc! { path: { "$gte": value } },
    }
}

/// The BSON value of a literal compared with a column of `shape`, only when
/// both are in the same MongoDB type bracket.
fn literal_for(expr: &Expr, shape: &Shape) -> Option<Bson> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    if value.is_null() {
        return None; // comparisons with NULL are never true; leave them to DataFusion
    }
    match shape {
        Shape::Int32 | Shape::Int64 | Shape::Double | Shape::Decimal(_) => numeric(value),
        Shape::String => text(value).map(Bson::String),
        Shape::ObjectId => text(value)
            .and_then(|hex| ObjectId::parse_str(hex).ok())
            .map(Bson::ObjectId),
        Shape::Bool => match value {
            ScalarValue::Boolean(Some(b)) => Some(Bson::Boolean(*b)),
            _ => None,
        },
        Shape::DateTime => {
            let millis = match value {
                ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000)?,
                ScalarValue::TimestampMillisecond(Some(v), _) => *v,
                ScalarValue::TimestampMicrosecond(Some(v), _) if v % 1000 == 0 => v / 1000,
                ScalarValue::TimestampNanosecond(Some(v), _) if v % 1_000_000 == 0 => v / 1_000_000,
                _ => return None,
            };
            Some(Bson::DateTime(mongodb::bson::DateTime::from_millis(millis)))
        }
        _ => None,
    }
}

fn text(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Numbers compare by value across int32/int64/double/decimal128 in MongoDB.
fn numeric(value: &ScalarValue) -> Option<Bson> {
    Some(match value {
        ScalarValue::Int8(Some(v)) => Bson::Int32(*v as i32),
        ScalarValue::Int16(Some(v)) => Bson::Int32(*v as i32),
        ScalarValue::Int32(Some(v)) => Bson::Int32(*v),
        ScalarValue::Int64(Some(v)) => Bson::Int64(*v),
        ScalarValue::UInt8(Some(v)) => Bson::Int32(*v as i32),
        ScalarValue::UInt16(Some(v)) => Bson::Int32(*v as i32),
        ScalarValue::UInt32(Some(v)) => Bson::Int64(*v as i64),
        ScalarValue::UInt64(Some(v)) => Bson::Int64(i64::try_from(*v).ok()?),
        ScalarValue::Float64(Some(v)) if v.is_finite() => Bson::Double(*v),
        ScalarValue::Float32(Some(v)) if v.is_finite() => Bson::Double(*v as f64),
        ScalarValue::Decimal128(Some(v), _, scale) => Bson::Decimal128(
            mongodb::bson::Decimal128::from_bytes(crate::types::decimal::encode(*v, *scale)?),
        ),
        _ => return None,
    })
}

/// `LIKE` pattern → anchored regex; `None` for a malformed escape.
fn like_to_regex(pattern: &str, escape: char) -> Option<String> {
    let mut regex = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c == escape => {
                let next = chars.next()?;
                push_escaped(&mut regex, next);
            }
            '%' => regex.push_str(".*"),
            '_' => regex.push('.'),
            c => push_escaped(&mut regex, c),
        }
    }
    // `abc%` needs no end anchor; everything else must match the whole string.
    if let Some(prefix) = regex.strip_suffix(".*")
        && !prefix.ends_with('\\')
    {
        return Some(prefix.to_string());
    }
    regex.push('$');
    Some(regex)
}

fn push_escaped(regex: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == ' ' || !c.is_ascii() {
        regex.push(c);
    } else {
        regex.push('\\');
        regex.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn columns() -> Vec<(String, Shape)> {
        vec![
            ("n".into(), Shape::Int64),
            ("s".into(), Shape::String),
            ("x".into(), Shape::Text),
        ]
    }

    #[test]
    fn comparisons_and_nulls() {
        let t = translate(&col("n").gt(lit(5i64)), &columns()).expect("pushed");
        assert_eq!(t.filter, doc! { "n": { "$gt": 5i64 } });
        let t = translate(&!col("n").gt(lit(5i64)), &columns()).expect("pushed");
        assert_eq!(t.filter, doc! { "n": { "$lte": 5i64 } });
        let t = translate(&col("n").not_eq(lit(5i64)), &columns()).expect("pushed");
        assert_eq!(t.filter, doc! { "n": { "$nin": [5i64, Bson::Null] } });
        let t = translate(&col("n").is_null(), &columns()).expect("pushed");
        assert_eq!(t.filter, doc! { "n": { "$eq": Bson::Null } });
        // Strings never compare with numbers; mixed columns are not pushed.
        assert!(translate(&col("n").eq(lit("5")), &columns()).is_none());
        assert!(translate(&col("x").eq(lit("5")), &columns()).is_none());
    }

    #[test]
    fn like_becomes_an_escaped_anchored_regex() {
        assert_eq!(like_to_regex("ab.c%", '\\'), Some("^ab\\.c".into()));
        assert_eq!(like_to_regex("a_c", '\\'), Some("^a.c$".into()));
        assert_eq!(like_to_regex("100\\%", '\\'), Some("^100\\%$".into()));
        assert_eq!(like_to_regex("(x)*", '\\'), Some("^\\(x\\)\\*$".into()));
    }
}
