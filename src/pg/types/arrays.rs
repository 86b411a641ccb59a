//! PostgreSQL arrays coming in as text: `{1,NULL,3}`, `{"a b","",NULL}`,
//! `{{1,2},{3,4}}`, read as PostgreSQL's array_in reads them and turned into
//! Arrow list scalars; and an analyzer rule that gives `'{…}'::int[]` in SQL
//! that meaning (DataFusion would wrap the whole string as one element).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, new_empty_array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, FieldRef};
use arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// One parsed element: NULL, a value's text, or a sub-array.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Text(String),
    Array(Vec<Node>),
}

/// Whether `dt` is an Arrow list type (what PostgreSQL arrays map to).
pub fn is_list(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    )
}

/// Nesting depth of lists: `int[]` is 1, `List(List(Int32))` is 2.
pub fn list_depth(dt: &DataType) -> usize {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            1 + list_depth(f.data_type())
        }
        _ => 0,
    }
}

/// Reads PostgreSQL's array text form into a list scalar of type `target`
/// (a `List`, `LargeList` or `FixedSizeList`). Elements are read as the
/// element type reads text; a multi-dimensional value needs a nested list
/// type of the same depth.
pub fn array_from_text(text: &str, target: &DataType) -> Result<ScalarValue> {
    let items = Parser::new(text)
        .parse()
        .map_err(|detail| malformed(text, &detail))?;
    let field = match target {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f,
        other => {
            return Err(DataFusionError::Internal(format!(
                "array text read as non-list type {other}"
            )));
        }
    };
    let list = one_row_list(&items, field, text, target)?;
    let value = ScalarValue::List(Arc::new(list));
    if value.data_type() == *target {
        Ok(value)
    } else {
        value.cast_to(target)
    }
}

/// A one-row `ListArray` holding `items` as elements of `field`.
fn one_row_list(
    items: &[Node],
    field: &FieldRef,
    text: &str,
    target: &DataType,
) -> Result<ListArray> {
    let element_type = field.data_type();
    let values: ArrayRef = if is_list(element_type) {
        // Each item is itself an array, and all must have the same shape.
        let mut rows = Vec::with_capacity(items.len());
        let mut shape = None;
        for item in items {
            let Node::Array(children) = item else {
                return Err(malformed(
                    text,
                    "multidimensional arrays must have array expressions with matching dimensions",
                ));
            };
            let this = node_shape(children);
            if *shape.get_or_insert_with(|| this.clone()) != this {
                return Err(malformed(
                    text,
                    "multidimensional arrays must have sub-arrays with matching dimensions",
                ));
            }
            let inner = match element_type {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f,
                _ => unreachable!("checked is_list"),
            };
            let row: ArrayRef = Arc::new(one_row_list(children, inner, text, target)?);
            let row = if row.data_type() == element_type {
                row
            } else {
                arrow::compute::cast(&row, element_type)?
            };
            rows.push(row);
        }
        if rows.is_empty() {
            new_empty_array(element_type)
        } else {
            let refs: Vec<&dyn Array> = rows.iter().map(|r| r.as_ref()).collect();
            arrow::compute::concat(&refs)?
        }
    } else {
        let mut scalars = Vec::with_capacity(items.len());
        for item in items {
            scalars.push(match item {
                Node::Null => ScalarValue::try_from(element_type)?,
                Node::Text(s) => element_from_text(s, element_type)?,
                Node::Array(_) => {
                    return Err(DataFusionError::from(ArrowError::ParseError(format!(
                        "malformed array literal: \"{text}\" (a multidimensional array \
                         cannot be read as {target}; cast to a nested array type such as \
                         int[][] instead)"
                    ))));
                }
            });
        }
        if scalars.is_empty() {
            new_empty_array(element_type)
        } else {
            ScalarValue::iter_to_array(scalars)?
        }
    };
    Ok(ListArray::try_new(
        Arc::clone(field),
        OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )?)
}

/// The lengths of each dimension below this level (for the rectangularity check).
fn node_shape(items: &[Node]) -> Vec<usize> {
    let mut shape = vec![items.len()];
    if let Some(Node::Array(first)) = items.first() {
        shape.extend(node_shape(first));
    }
    shape
}

fn element_from_text(text: &str, element_type: &DataType) -> Result<ScalarValue> {
    let value = super::params::text_to_scalar(text, element_type).map_err(|e| {
        DataFusionError::from(ArrowError::ParseError(format!(
            "invalid input syntax for array element of type {element_type}: \"{text}\" ({})",
            crate::engine::error::sqlstate(&e).message
        )))
    })?;
    if value.data_type() == *element_type {
        Ok(value)
    } else {
        value.cast_to(element_type)
    }
}

fn malformed(text: &str, detail: &str) -> DataFusionError {
    DataFusionError::from(ArrowError::ParseError(format!(
        "malformed array literal: \"{text}\" ({detail})"
    )))
}

/// array_in's grammar: optional dimension decoration (`[1:2]=`), then a
/// brace-delimited, comma-separated list whose elements are sub-arrays,
/// double-quoted strings with backslash escapes, or unquoted words (`NULL`
/// unquoted is SQL NULL; backslash escapes work there too).
struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

/// PostgreSQL's array_isspace.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().peekable(),
        }
    }

    fn skip_space(&mut self) {
        while self.chars.next_if(|c| is_space(*c)).is_some() {}
    }

    fn parse(mut self) -> std::result::Result<Vec<Node>, String> {
        self.skip_space();
        let dims = if self.chars.peek() == Some(&'[') {
            Some(self.dimensions()?)
        } else {
            None
        };
        if self.chars.next() != Some('{') {
            return Err("array value must start with \"{\" or dimension information".into());
        }
        let items = self.array()?;
        self.skip_space();
        if self.chars.next().is_some() {
            return Err("junk after closing right brace".into());
        }
        if let Some(dims) = dims {
            let shape = if items.is_empty() {
                Vec::new()
            } else {
                node_shape(&items)
            };
            if shape != dims {
                return Err("specified array dimensions do not match array contents".into());
            }
        }
        Ok(items)
    }

    /// `[lower:upper]` or `[upper]` per dimension, then `=`; returns lengths.
    /// Lower bounds other than 1 cannot be kept (Arrow lists start at 1).
    fn dimensions(&mut self) -> std::result::Result<Vec<usize>, String> {
        let mut dims = Vec::new();
        while self.chars.next_if_eq(&'[').is_some() {
            let mut spec = String::new();
            loop {
                match self.chars.next() {
                    Some(']') => break,
                    Some(c) => spec.push(c),
                    None => return Err("missing \"]\" in array dimensions".into()),
                }
            }
            let number = |s: &str| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("invalid array dimension \"{s}\""))
            };
            let (lower, upper) = match spec.split_once(':') {
                Some((l, u)) => (number(l)?, number(u)?),
                None => (1, number(&spec)?),
            };
            if upper < lower {
                return Err("upper bound cannot be less than lower bound".into());
            }
            dims.push(usize::try_from(upper - lower + 1).map_err(|e| e.to_string())?);
            self.skip_space();
        }
        if self.chars.next() != Some('=') {
            return Err("missing \"=\" after array dimensions".into());
        }
        self.skip_space();
        Ok(dims)
    }

    /// The items of an array whose `{` was just read, through its `}`.
    fn array(&mut self) -> std::result::Result<Vec<Node>, String> {
        let mut items = Vec::new();
        self.skip_space();
        if self.chars.next_if_eq(&'}').is_some() {
            return Ok(items);
        }
        loop {
            self.skip_space();
            let item = match self.chars.peek() {
                None => return Err("unexpected end of input".into()),
                Some('{') => {
                    self.chars.next();
                    Node::Array(self.array()?)
                }
                Some('"') => {
                    self.chars.next();
                    Node::Text(self.quoted()?)
                }
                Some(&c @ (',' | '}')) => return Err(format!("unexpected \"{c}\" character")),
                Some(_) => self.unquoted()?,
            };
            if let (Some(first), node) = (items.first(), &item) {
                let nested = matches!(first, Node::Array(_));
                if nested != matches!(node, Node::Array(_)) {
                    return Err(
                        "multidimensional arrays must have sub-arrays with matching dimensions"
                            .into(),
                    );
                }
            }
            items.push(item);
            self.skip_space();
            match self.chars.next() {
                Some(',') => continue,
                Some('}') => break,
                None => return Err("unexpected end of input".into()),
                Some(c) => return Err(format!("unexpected \"{c}\" character")),
            }
        }
        Ok(items)
    }

    /// A double-quoted element whose opening quote was just read.
    fn quoted(&mut self) -> std::result::Result<String, String> {
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return Err("unexpected end of input".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.chars.next() {
                    Some(c) => out.push(c),
                    None => return Err("unexpected end of input".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// An unquoted element: up to the next unescaped `,` or `}`, without
    /// surrounding white space (escaped white space is kept).
    fn unquoted(&mut self) -> std::result::Result<Node, String> {
        let mut out = String::new();
        let mut kept = 0; // length up to the last character that is not trailing space
        let mut escaped = false;
        loop {
            match self.chars.peek() {
                None => return Err("unexpected end of input".into()),
                Some(',' | '}') => break,
                Some(&c @ ('{' | '"')) => return Err(format!("unexpected \"{c}\" character")),
                Some('\\') => {
                    self.chars.next();
                    let c = self
                        .chars
                        .next()
                        .ok_or_else(|| "unexpected end of input".to_string())?;
                    out.push(c);
                    kept = out.len();
                    escaped = true;
                }
                Some(&c) => {
                    self.chars.next();
                    out.push(c);
                    if !is_space(c) {
                        kept = out.len();
                    }
                }
            }
        }
        out.truncate(kept);
        if !escaped && out.eq_ignore_ascii_case("NULL") {
            Ok(Node::Null)
        } else {
            Ok(Node::Text(out))
        }
    }
}

/// Reads `CAST('<array text>' AS <list type>)` (and `TRY_CAST`) as PostgreSQL
/// reads an array literal, replacing it with the list value.
///
/// DataFusion has no string-to-list cast: Arrow's wraps the whole string as a
/// single element (`'{a,b}'::text[]` would be `{"{a,b}"}`, `'{1,2}'::int[]`
/// an error). Runs after type coercion, so casts it inserts (e.g. a string
/// inserted into a list column) and parameters bound as text (`$1::int[]`,
/// substituted before analysis) are covered. Casts of non-literal strings
/// are left as they are.
#[derive(Debug, Default)]
pub struct ArrayLiteralCasts;

impl AnalyzerRule for ArrayLiteralCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(rewrite_cast)
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "koios_array_literal_casts"
    }
}

fn rewrite_cast(expr: Expr) -> Result<Transformed<Expr>> {
    let (inner, field, is_try) = match &expr {
        Expr::Cast(Cast { expr, field }) => (expr, field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
        _ => return Ok(Transformed::no(expr)),
    };
    let target = field.data_type();
    if !is_list(target) {
        return Ok(Transformed::no(expr));
    }
    let Expr::Literal(
        ScalarValue::Utf8(text) | ScalarValue::LargeUtf8(text) | ScalarValue::Utf8View(text),
        _,
    ) = inner.as_ref()
    else {
        return Ok(Transformed::no(expr));
    };
    let value = match text {
        None => ScalarValue::try_from(target)?,
        Some(text) => match array_from_text(text, target) {
            Ok(value) => value,
            Err(_) if is_try => ScalarValue::try_from(target)?,
            Err(e) => return Err(e),
        },
    };
    Ok(Transformed::yes(Expr::Literal(value, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn list_of(dt: DataType) -> DataType {
        DataType::List(Arc::new(Field::new_list_field(dt, true)))
    }

    fn parse(text: &str) -> std::result::Result<Vec<Node>, String> {
        Parser::new(text).parse()
    }

    fn t(s: &str) -> Node {
        Node::Text(s.into())
    }

    #[test]
    fn parses_postgres_array_text() {
        assert_eq!(parse("{}"), Ok(vec![]));
        assert_eq!(parse(" { } "), Ok(vec![]));
        assert_eq!(parse("{1,NULL,3}"), Ok(vec![t("1"), Node::Null, t("3")]));
        assert_eq!(
            parse(r#"{"a b","",NULL,"NULL",null,"x\"y",a\,b, c d ,\ e\ }"#),
            Ok(vec![
                t("a b"),
                t(""),
                Node::Null,
                t("NULL"),
                Node::Null,
                t("x\"y"),
                t("a,b"),
                t("c d"),
                t(" e "),
            ])
        );
        assert_eq!(
            parse("{{1,2},{3,4}}"),
            Ok(vec![
                Node::Array(vec![t("1"), t("2")]),
                Node::Array(vec![t("3"), t("4")])
            ])
        );
        assert_eq!(parse("[0:1]={7,8}"), Ok(vec![t("7"), t("8")]));
        for bad in [
            "",
            "1,2",
            "{1,2",
            "{1,,2}",
            "{1,2}x",
            "{\"a}",
            "{a\"b}",
            "{{1},2}",
            "{1,{2}}",
            "[1:3]={1,2}",
            "{,}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn builds_typed_lists() {
        let ints = list_of(DataType::Int32);
        let v = array_from_text("{1,NULL,3}", &ints).expect("parses");
        assert_eq!(v.data_type(), ints);
        assert_eq!(
            v,
            ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<
                arrow::datatypes::Int32Type,
                _,
                _,
            >(vec![Some(vec![
                Some(1),
                None,
                Some(3)
            ])])))
        );
        let empty = array_from_text("{}", &ints).expect("parses");
        assert_eq!(empty.data_type(), ints);
        let texts = list_of(DataType::Utf8View);
        let v = array_from_text(r#"{"a b",b}"#, &texts).expect("parses");
        assert_eq!(v.data_type(), texts);
        let bools = list_of(DataType::Boolean);
        assert!(array_from_text("{t,off,NULL}", &bools).is_ok());
        let nested = list_of(ints.clone());
        let v = array_from_text("{{1,2},{3,4}}", &nested).expect("parses");
        assert_eq!(v.data_type(), nested);
        assert!(array_from_text("{{1,2},{3}}", &nested).is_err());
        let err = array_from_text("{{1,2}}", &ints).expect_err("2-D into 1-D");
        assert!(err.to_string().contains("multidimensional"), "{err}");
        let err = array_from_text("{1,x}", &ints).expect_err("bad element");
        assert!(err.to_string().contains("\"x\""), "{err}");
        let large = DataType::LargeList(Arc::new(Field::new_list_field(DataType::Int64, true)));
        assert_eq!(
            array_from_text("{1}", &large).expect("parses").data_type(),
            large
        );
    }
}
