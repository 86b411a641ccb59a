//! `LIKE … ESCAPE 'c'` with any escape character, as PostgreSQL takes it.
//!
//! DataFusion's LIKE escapes with the backslash only and refuses any other
//! `ESCAPE` at execution ("LIKE does not support escape_char other than
//! the backslash"), yet clients write others: SQLAlchemy's
//! `get_schema_names` sends `nspname NOT LIKE $1 ESCAPE '/'`. This
//! analyzer rule rewrites the pattern into the backslash form meaning the
//! same — a literal pattern at once, any other (a parameter, a column)
//! through [`LIKE_PATTERN`] when the row is evaluated — and drops the
//! `ESCAPE`.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Like, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, lit,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// The name of the function rewriting a pattern computed per row.
pub const LIKE_PATTERN: &str = "koios_like_pattern";

/// `pattern` written with `escape` (none: no escape character) rewritten
/// with the backslash as its escape; an error for a pattern ending in its
/// escape character, as PostgreSQL's.
pub fn to_backslash_pattern(pattern: &str, escape: Option<char>) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return Err("LIKE pattern must not end with escape character".into()),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Rewrites every `LIKE`/`ILIKE` with an escape other than the backslash.
#[derive(Debug, Default)]
pub struct LikeEscapes;

impl AnalyzerRule for LikeEscapes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(rewrite_like)
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "koios_like_escapes"
    }
}

fn rewrite_like(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::Like(like) = expr else {
        return Ok(Transformed::no(expr));
    };
    let Some(escape) = like.escape_char.filter(|c| *c != '\\') else {
        return Ok(Transformed::no(Expr::Like(like)));
    };
    let Like {
        negated,
        expr,
        pattern,
        case_insensitive,
        ..
    } = like;
    let pattern = match *pattern {
        Expr::Literal(value, metadata) => {
            let value = match value {
                ScalarValue::Utf8(Some(text)) => ScalarValue::Utf8(Some(rewritten(&text, escape)?)),
                ScalarValue::LargeUtf8(Some(text)) => {
                    ScalarValue::LargeUtf8(Some(rewritten(&text, escape)?))
                }
                ScalarValue::Utf8View(Some(text)) => {
                    ScalarValue::Utf8View(Some(rewritten(&text, escape)?))
                }
                other => other,
            };
            Expr::Literal(value, metadata)
        }
        computed => Expr::ScalarFunction(ScalarFunction::new_udf(
            like_pattern_udf(),
            vec![computed, lit(escape.to_string())],
        )),
    };
    Ok(Transformed::yes(Expr::Like(Like::new(
        negated,
        expr,
        Box::new(pattern),
        None,
        case_insensitive,
    ))))
}

fn rewritten(pattern: &str, escape: char) -> Result<String> {
    match to_backslash_pattern(pattern, Some(escape)) {
        Ok(text) => Ok(text),
        Err(message) => Err(koios_connector::sql_error!(
            koios_connector::sqlstate::codes::INVALID_ESCAPE_SEQUENCE,
            "{message}"
        )),
    }
}

fn like_pattern_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    Arc::clone(UDF.get_or_init(|| Arc::new(ScalarUDF::new_from_impl(LikePattern::new()))))
}

/// `koios_like_pattern(pattern, escape)`: the pattern rewritten per row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LikePattern {
    signature: Signature,
}

impl LikePattern {
    fn new() -> Self {
        LikePattern {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LikePattern {
    fn name(&self) -> &str {
        LIKE_PATTERN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Utf8))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [pattern, escape] = args.args.as_slice() else {
            return exec_err!("{LIKE_PATTERN} takes a pattern and an escape character");
        };
        let ColumnarValue::Scalar(escape) = escape else {
            return exec_err!("{LIKE_PATTERN}: the escape character must be a constant");
        };
        let escape = match escape.try_as_str().flatten() {
            Some(text) => text.chars().next(),
            None => None,
        };
        let rows = args.number_rows;
        let patterns = pattern.to_array(rows)?;
        let target = patterns.data_type().clone();
        let text = cast(&patterns, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut out = Vec::with_capacity(text.len());
        for value in text.iter() {
            out.push(match value {
                Some(pattern) => {
                    Some(to_backslash_pattern(pattern, escape).map_err(|message| {
                        koios_connector::sql_error!(
                            koios_connector::sqlstate::codes::INVALID_ESCAPE_SEQUENCE,
                            "{message}"
                        )
                    })?)
                }
                None => None,
            });
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        let array = cast(&array, &target)?;
        Ok(match pattern {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(array),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_keep_their_meaning_with_the_backslash() {
        assert_eq!(to_backslash_pattern("pg/_%", Some('/')).unwrap(), "pg\\_%");
        assert_eq!(to_backslash_pattern("a//b", Some('/')).unwrap(), "a\\/b");
        assert_eq!(to_backslash_pattern("a\\b%", Some('/')).unwrap(), "a\\\\b%");
        assert_eq!(to_backslash_pattern("a\\_", None).unwrap(), "a\\\\_");
        assert!(to_backslash_pattern("ab/", Some('/')).is_err());
    }
}
