//! Whether an expression, run by the server, computes exactly what
//! DataFusion computes for the values involved (the backend's
//! [`Semantics`] per column, exact casts), and what is known of each output
//! column of a pushable subtree.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, DFSchemaRef};
use datafusion::logical_expr::expr::{AggregateFunction, Alias, ScalarFunction};
use datafusion::logical_expr::{
    Between, BinaryExpr, Case, Cast, Expr, ExprSchemable, Like, Operator,
};

use crate::backend::SqlBackend;
use crate::remote::Semantics;

/// Longest alias written for a computed column.
pub(crate) const MAX_ALIAS_LEN: usize = 60;

/// What is known about one output column of a pushable subtree.
#[derive(Debug, Clone)]
pub(crate) struct Origin<C> {
    pub(crate) semantics: Semantics,
    /// How to read the column as the server returns it; `None` when the
    /// remote query must cast it first (computed values, columns the scan
    /// reads through a cast).
    pub(crate) codec: Option<C>,
}

/// Checks expressions over one input of a node.
pub(crate) struct Checker<'a, B: SqlBackend> {
    pub(crate) backend: &'a B,
    pub(crate) schema: &'a DFSchema,
    pub(crate) origins: &'a [Origin<B::Codec>],
}

impl<'a, B: SqlBackend> Checker<'a, B> {
    pub(crate) fn new(
        backend: &'a B,
        schema: &'a DFSchemaRef,
        origins: &'a [Origin<B::Codec>],
    ) -> Self {
        Self {
            backend,
            schema: schema.as_ref(),
            origins,
        }
    }

    pub(crate) fn origin(&self, column: &Column) -> Option<&Origin<B::Codec>> {
        let index = self.schema.index_of_column(column).ok()?;
        self.origins.get(index)
    }

    pub(crate) fn data_type(&self, expr: &Expr) -> Option<DataType> {
        expr.get_type(self.schema).ok()
    }

    /// How the server compares the values of `expr`; `None` if `expr`
    /// cannot be evaluated remotely at all.
    pub(crate) fn semantics(&self, expr: &Expr) -> Option<Semantics> {
        if !self.pushable(expr) {
            return None;
        }
        match expr {
            Expr::Column(c) => Some(self.origin(c)?.semantics),
            Expr::Alias(Alias { expr, .. }) => self.semantics(expr),
            other => Some(self.backend.computed_semantics(&self.data_type(other)?)),
        }
    }

    /// An output column of a projection or a GROUP BY key.
    pub(crate) fn output(&self, expr: &Expr) -> Option<Origin<B::Codec>> {
        let semantics = self.semantics(expr)?;
        match expr {
            Expr::Column(c) => self.origin(c).cloned(),
            Expr::Alias(Alias { expr, .. }) if matches!(expr.as_ref(), Expr::Column(_)) => {
                self.output(expr)
            }
            _ => Some(Origin {
                semantics,
                codec: None,
            }),
        }
    }

    pub(crate) fn boolean(&self, expr: &Expr) -> bool {
        self.pushable(expr) && self.data_type(expr) == Some(DataType::Boolean)
    }

    pub(crate) fn numeric(&self, expr: &Expr) -> bool {
        self.data_type(expr).is_some_and(|t| {
            t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..))
        })
    }

    /// Whether the server evaluates `expr` as DataFusion does.
    pub(crate) fn pushable(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Column(c) => self.origin(c).is_some(),
            Expr::Literal(value, _) => self.backend.literal_pushable(value),
            Expr::Alias(Alias { expr, .. }) => self.pushable(expr),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let compared = |need: fn(Semantics) -> bool| {
                    self.data_type(left) == self.data_type(right)
                        && self.semantics(left).is_some_and(need)
                        && self.semantics(right).is_some_and(need)
                };
                match op {
                    Operator::And | Operator::Or => self.boolean(left) && self.boolean(right),
                    Operator::Eq | Operator::NotEq => compared(|s| s.equality),
                    Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                        compared(|s| s.ordering)
                    }
                    Operator::Plus | Operator::Minus | Operator::Multiply => {
                        self.numeric(left)
                            && self.numeric(right)
                            && self.pushable(left)
                            && self.pushable(right)
                    }
                    // Decimal division rounds to different scales remotely.
                    Operator::Divide | Operator::Modulo => {
                        let simple = |e: &Expr| {
                            self.data_type(e)
                                .is_some_and(|t| t.is_integer() || t.is_floating())
                        };
                        simple(left) && simple(right) && self.pushable(left) && self.pushable(right)
                    }
                    _ => false,
                }
            }
            Expr::Not(inner) => self.boolean(inner),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => self.pushable(inner),
            Expr::Negative(inner) => self.numeric(inner) && self.pushable(inner),
            Expr::Between(Between {
                expr, low, high, ..
            }) => [expr, low, high]
                .iter()
                .all(|e| self.semantics(e).is_some_and(|s| s.ordering)),
            Expr::InList(list) => {
                let kind = self.data_type(&list.expr);
                self.semantics(&list.expr).is_some_and(|s| s.equality)
                    && list.list.iter().all(|item| {
                        self.data_type(item) == kind
                            && self.semantics(item).is_some_and(|s| s.equality)
                    })
            }
            Expr::Like(Like {
                expr,
                pattern,
                escape_char: None,
                case_insensitive: false,
                ..
            }) => {
                matches!(pattern.as_ref(), Expr::Literal(value, _)
                    if value.try_as_str().flatten().is_some_and(|p| self.backend.like_pattern_pushable(p)))
                    && self.semantics(expr).is_some_and(|s| s.equality)
                    && self.pushable(pattern)
            }
            Expr::Case(Case {
                expr: None,
                when_then_expr,
                else_expr,
            }) => {
                when_then_expr
                    .iter()
                    .all(|(when, then)| self.boolean(when) && self.pushable(then))
                    && else_expr.as_ref().is_none_or(|e| self.pushable(e))
            }
            Expr::Cast(Cast { expr, field }) => {
                self.pushable(expr)
                    && self
                        .data_type(expr)
                        .is_some_and(|from| exact_cast(&from, field.data_type()))
            }
            Expr::ScalarFunction(ScalarFunction { func, args }) => match (func.name(), &args[..]) {
                // extract(year|month|day from a date)
                ("date_part", [Expr::Literal(part, _), value]) => {
                    let part = part.to_string().to_ascii_lowercase();
                    matches!(part.as_str(), "year" | "month" | "day")
                        && self.data_type(value) == Some(DataType::Date32)
                        && self.pushable(value)
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// An aggregate the server computes with DataFusion's result.
    pub(crate) fn aggregate(&self, expr: &Expr) -> Option<Origin<B::Codec>> {
        let expr = match expr {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
            return None;
        };
        if params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some()
        {
            return None;
        }
        let [arg] = &params.args[..] else {
            return None;
        };
        let semantics = self.semantics(arg)?;
        let arg_type = self.data_type(arg)?;
        let ok = match func.name() {
            "count" => !params.distinct || semantics.equality,
            _ if params.distinct => false,
            "sum" => self.numeric(arg),
            "min" | "max" => semantics.ordering,
            // avg of integers and decimals rounds differently remotely.
            "avg" => arg_type.is_floating(),
            _ => false,
        };
        // min/max compare like their argument; counts and sums are numbers.
        let semantics = match func.name() {
            "min" | "max" => semantics,
            _ => self
                .backend
                .computed_semantics(&expr.get_type(self.schema).ok()?),
        };
        ok.then_some(Origin {
            semantics,
            codec: None,
        })
    }
}

/// Casts that change no value.
pub(crate) fn exact_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_digits = |t: &DataType| match t {
        Int8 | UInt8 => Some(3u8),
        Int16 | UInt16 => Some(5),
        Int32 | UInt32 => Some(10),
        Int64 => Some(19),
        UInt64 => Some(20),
        _ => None,
    };
    let is_string = |t: &DataType| matches!(t, Utf8 | Utf8View | LargeUtf8);
    match (from, to) {
        _ if from == to => true,
        _ if is_string(from) && is_string(to) => true,
        (Float32, Float64) => true,
        (f, t) if f.is_signed_integer() && t.is_signed_integer() => int_digits(f) <= int_digits(t),
        (f, Float64) if f.is_integer() => int_digits(f).is_some_and(|d| d <= 15),
        (f, Decimal128(p, s)) if f.is_integer() => {
            int_digits(f).is_some_and(|d| (*p as i16 - *s as i16) >= d as i16)
        }
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        _ => false,
    }
}
