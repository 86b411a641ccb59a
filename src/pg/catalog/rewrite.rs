//! Client introspection SQL made plannable.
//!
//! psql, JDBC, SQLAlchemy and asyncpg read the system catalogs with
//! PostgreSQL syntax DataFusion lacks: `OPERATOR(pg_catalog.~)`,
//! `'name'::regclass`, `n.oid, n.*`, `LIKE … ESCAPE '/'`, correlated scalar
//! subqueries without an aggregate, set-returning functions in the select
//! list … Queries that read the system catalogs are rewritten here; other
//! queries never are: these rewrites keep the meaning of catalog queries over
//! Koios's catalogs, not of arbitrary SQL.
//!
//! Three layers, in order:
//! 1. fragments of well-known client queries that no general rewrite can
//!    plan, replaced by their equivalent over Koios's catalogs (no
//!    policies, statistics objects, publications or composite types exist);
//! 2. `datafusion-pg-catalog`'s statement rules (operators, reg casts,
//!    duplicate output names …) — except its rule that replaces correlated
//!    subqueries by NULL, which would silently change answers;
//! 3. Koios's own rules below.

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use datafusion::sql::sqlparser::ast::{
    self, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart,
    SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::rules::{self, SqlStatementRewriteRule};

/// A fragment of client SQL (whitespace-normalized) from `start` through
/// `end` (empty: `start` alone), and what replaces it.
struct Fragment {
    start: &'static str,
    end: &'static str,
    replacement: &'static str,
}

const FRAGMENTS: &[Fragment] = &[
    // psql `\d+`: toast options, a lateral unnest. Koios has no toast tables.
    Fragment {
        start: "c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x)",
        end: "",
        replacement: "c.reloptions",
    },
    // psql `\du`: role memberships. Koios roles belong to no other role.
    Fragment {
        start: "ARRAY(SELECT b.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid) WHERE m.member = r.oid) as memberof",
        end: "",
        replacement: "CAST(NULL AS TEXT[]) as memberof",
    },
    // psql `\d`: row-level security policies (none exist).
    Fragment {
        start: "CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END",
        end: "",
        replacement: "NULL",
    },
    // psql `\d`: a column's collation when it differs from its type's — a
    // correlated inequality DataFusion cannot plan. Koios columns have their
    // type's collation (default or none), so the answer is always NULL.
    Fragment {
        start: "(SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation",
        end: "",
        replacement: "CAST(NULL AS TEXT) AS attcollation",
    },
    // SQLAlchemy's `get_columns`: identity options, a subquery whose output
    // reads the outer row. Koios has no identity columns (its guard,
    // `attidentity != ''`, is always false), so the answer is NULL.
    Fragment {
        start: "(SELECT json_build_object(",
        end: "pg_catalog.pg_attribute.attname) AS REGCLASS) AS OID))",
        replacement: "NULL",
    },
    // psql `\d`: extended statistics (none exist).
    Fragment {
        start: "'d' = any(stxkind) AS ndist_enabled, 'f' = any(stxkind) AS deps_enabled, 'm' = any(stxkind) AS mcv_enabled",
        end: "",
        replacement: "false AS ndist_enabled, false AS deps_enabled, false AS mcv_enabled",
    },
    // psql `\d`: publications (none exist); unnamed NULL columns get names.
    Fragment {
        start: "(CASE WHEN pr.prattrs IS NOT NULL THEN (SELECT string_agg(attname, ', ') FROM pg_catalog.generate_series(",
        end: "ELSE NULL END)",
        replacement: "NULL",
    },
    Fragment {
        start: "SELECT pubname , NULL , NULL FROM",
        end: "",
        replacement: "SELECT pubname , NULL AS prqual , NULL AS prattrs FROM",
    },
    // JDBC `getPrimaryKeys`: information_schema._pg_expandarray(indkey).
    Fragment {
        start: "(information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ",
        end: "",
        replacement: "array_position(i.indkey, a.attnum) AS KEY_SEQ",
    },
    Fragment {
        start: "information_schema._pg_expandarray(i.indkey) AS KEYS",
        end: "",
        replacement: "i.indkey AS KEYS",
    },
    Fragment {
        start: "result.A_ATTNUM = (result.KEYS).x",
        end: "",
        replacement: "array_has(result.KEYS, result.A_ATTNUM)",
    },
    // asyncpg's type introspection: a recursive walk over domains, ranges
    // and composites. Koios's types are base types and arrays of them, so
    // the walk is one step: the asked types, then their element types.
    Fragment {
        start: "WITH RECURSIVE typeinfo_tree(",
        end: "FROM typeinfo_tree ORDER BY depth DESC",
        replacement: ASYNCPG_TYPEINFO,
    },
];

const ASYNCPG_TYPEINFO: &str = "SELECT DISTINCT * FROM (\
    SELECT t.oid AS oid, ns.nspname AS ns, t.typname AS name, t.typtype AS kind, \
      CAST(NULL AS INT) AS basetype, t.typelem AS elemtype, e.typdelim AS elemdelim, \
      CAST(NULL AS INT) AS range_subtype, CAST(NULL AS TEXT[]) AS attrtypoids, \
      CAST(NULL AS TEXT[]) AS attrnames, 0 AS depth, CAST(NULL AS TEXT) AS basetype_name, \
      CASE WHEN t.typelem = 0 THEN NULL ELSE format_type(t.typelem, NULL) END AS elemtype_name, \
      CAST(NULL AS TEXT) AS range_subtype_name \
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace \
      LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem \
    WHERE array_has(CAST($1 AS OID[]), t.oid) \
    UNION ALL \
    SELECT e.oid, ns.nspname, e.typname, e.typtype, CAST(NULL AS INT), e.typelem, CAST(NULL AS TEXT), \
      CAST(NULL AS INT), CAST(NULL AS TEXT[]), CAST(NULL AS TEXT[]), 1, CAST(NULL AS TEXT), \
      CAST(NULL AS TEXT), CAST(NULL AS TEXT) \
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type e ON e.oid = t.typelem \
      JOIN pg_catalog.pg_namespace ns ON ns.oid = e.typnamespace \
    WHERE array_has(CAST($1 AS OID[]), t.oid)\
  ) typeinfo ORDER BY depth DESC";

/// Whether `sql` reads the system catalogs (the only queries rewritten).
pub fn introspects(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("pg_catalog")
        || lower.contains("information_schema")
        || lower.contains("::reg")
        || lower.contains(" pg_")
}

/// Applies the fragment replacements; `None` when none matched.
fn replace_fragments(sql: &str) -> Option<String> {
    let mut normalized = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut changed = false;
    for fragment in FRAGMENTS {
        while let Some(start) = normalized.find(fragment.start) {
            let end = if fragment.end.is_empty() {
                start + fragment.start.len()
            } else {
                match normalized[start..].find(fragment.end) {
                    Some(offset) => start + offset + fragment.end.len(),
                    None => break,
                }
            };
            normalized.replace_range(start..end, fragment.replacement);
            changed = true;
        }
    }
    changed.then_some(normalized)
}

fn statement_rules() -> &'static [Arc<dyn SqlStatementRewriteRule>] {
    static RULES: OnceLock<Vec<Arc<dyn SqlStatementRewriteRule>>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            Arc::new(rules::AliasDuplicatedProjectionRewrite),
            Arc::new(rules::ResolveUnqualifiedIdentifier),
            Arc::new(rules::RewriteArrayAnyAllOperation),
            Arc::new(rules::PrependUnqualifiedPgTableName),
            Arc::new(rules::StripCallableQualifier),
            Arc::new(rules::FixArrayLiteral),
            Arc::new(rules::CurrentUserVariableToSessionUserFunctionCall),
            Arc::new(rules::StripCollate),
            Arc::new(rules::RewritePgCatalogOperator),
            Arc::new(rules::RewriteRegCastToSubquery::new()),
            Arc::new(rules::FixVersionColumnName),
        ]
    })
}

/// Parses and rewrites a catalog query; `None` to take the ordinary path
/// (not a catalog query, or not only SELECTs).
pub fn rewrite_catalog_query(sql: &str) -> Option<Vec<Statement>> {
    if !introspects(sql) {
        return None;
    }
    let replaced = replace_fragments(sql);
    let text = replaced.as_deref().unwrap_or(sql);
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, text).ok()?;
    if statements.is_empty() || !statements.iter().all(|s| matches!(s, Statement::Query(_))) {
        return None;
    }
    // Only queries that read the system catalogs (or cast names to OIDs,
    // which reads pg_class): a user table that merely starts with `pg_` is
    // planned as written.
    let lower = sql.to_ascii_lowercase();
    let reads_catalogs = replaced.is_some()
        || lower.contains("::reg")
        || lower.contains("pg_catalog.")
        || lower.contains("information_schema.")
        || statements.iter().any(reads_system_catalog);
    if !reads_catalogs {
        return None;
    }
    Some(
        statements
            .into_iter()
            .map(|mut statement| {
                // Koios's own rules first: the reg-cast rule turns
                // `'x'::regclass` into subqueries these would also touch.
                let _ = statement.visit(&mut KoiosRules);
                for rule in statement_rules() {
                    statement = rule.rewrite(statement);
                }
                statement
            })
            .collect(),
    )
}

/// Whether a statement names a `pg_catalog` or `information_schema` table.
fn reads_system_catalog(statement: &Statement) -> bool {
    struct Relations(bool);
    impl ast::Visitor for Relations {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &ast::ObjectName) -> ControlFlow<()> {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(ObjectNamePart::as_ident)
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
            let system = match parts.as_slice() {
                [table] => super::pg_catalog::system_table_names().contains(table),
                [.., schema, _] => {
                    schema == super::PG_CATALOG || schema == super::INFORMATION_SCHEMA
                }
                [] => false,
            };
            if system {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut relations = Relations(false);
    let _ = ast::Visit::visit(statement, &mut relations);
    relations.0
}

/// Aggregates a scalar subquery may already compute.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "first_value",
    "json_agg",
    "jsonb_agg",
];

fn function_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(ObjectNamePart::as_ident)
            .map(|i| i.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

struct KoiosRules;

impl KoiosRules {
    /// `(SELECT e FROM … WHERE <correlated>)` → `(SELECT first_value(e) …)`:
    /// DataFusion decorrelates only aggregated scalar subqueries. A scalar
    /// subquery yields at most one row, so the answer is the same. Conditions
    /// on the outer row alone move out of the subquery
    /// (`CASE WHEN <outer> THEN (SELECT …) END`), which DataFusion cannot
    /// decorrelate either.
    fn aggregate_scalar_subquery(expr: &mut Expr) {
        let Expr::Subquery(query) = expr else {
            return;
        };
        if !Self::aggregate_projection(query) {
            return;
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return;
        };
        let inner = inner_names(&select.from);
        let Some(selection) = select.selection.take() else {
            return;
        };
        let (outer, rest): (Vec<Expr>, Vec<Expr>) = conjuncts(selection)
            .into_iter()
            .partition(|c| references_only_outer(c, &inner));
        select.selection = and_all(rest);
        if let Some(condition) = and_all(outer)
            && let Some(case) = parse_expr(&format!("CASE WHEN {condition} THEN NULL END"))
        {
            let subquery = std::mem::replace(expr, case);
            if let Expr::Case { conditions, .. } = expr
                && let Some(when) = conditions.first_mut()
            {
                when.result = subquery;
            }
        }
    }

    /// Wraps the single output of a non-aggregating subquery in
    /// `first_value`; false when the subquery is not of that shape.
    fn aggregate_projection(query: &mut ast::Query) -> bool {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return false;
        };
        if select.projection.len() != 1
            || select.group_by != ast::GroupByExpr::Expressions(vec![], vec![])
            || query.with.is_some()
        {
            return false;
        }
        let (expr, alias) = match &select.projection[0] {
            SelectItem::UnnamedExpr(e) => (e.clone(), None),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
            _ => return false,
        };
        if function_name(&expr).is_some_and(|n| AGGREGATES.contains(&n.as_str())) {
            return false;
        }
        let order = query
            .order_by
            .as_ref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let Some(wrapped) = parse_expr(&format!("first_value({expr}{order})")) else {
            return false;
        };
        query.order_by = None;
        query.limit_clause = None;
        select.projection[0] = match alias {
            Some(alias) => SelectItem::ExprWithAlias {
                expr: wrapped,
                alias,
            },
            None => SelectItem::UnnamedExpr(wrapped),
        };
        true
    }

    /// `LIKE 'pg/_%' ESCAPE '/'` → `LIKE 'pg\_%'` (DataFusion escapes with
    /// backslash only).
    fn backslash_escape(pattern: &mut Expr, escape: &mut Option<ast::ValueWithSpan>) {
        let Some(ast::ValueWithSpan {
            value: Value::SingleQuotedString(e),
            ..
        }) = escape.as_ref()
        else {
            return;
        };
        let mut chars = e.chars();
        let (Some(escape_char), None) = (chars.next(), chars.next()) else {
            return;
        };
        if escape_char == '\\' {
            return;
        }
        let Some(text) = literal_text(pattern) else {
            return;
        };
        // A pattern ending in its escape is left for the analyzer to refuse.
        let Ok(out) = crate::pg::like_escape::to_backslash_pattern(&text, Some(escape_char)) else {
            return;
        };
        *pattern = Expr::value(Value::SingleQuotedString(out));
        *escape = None;
    }

    /// `generate_subscripts(a, d)` in a select list →
    /// `unnest(range(1, array_length(a, d) + 1))`.
    fn generate_subscripts(expr: &mut Expr) {
        if function_name(expr).as_deref() != Some("generate_subscripts") {
            return;
        }
        let Expr::Function(Function {
            args: FunctionArguments::List(list),
            ..
        }) = &*expr
        else {
            return;
        };
        let args: Vec<String> = list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        if let [array, dimension] = args.as_slice()
            && let Some(replacement) = parse_expr(&format!(
                "unnest(range(1, CAST(array_length({array}, {dimension}) AS BIGINT) + 1))"
            ))
        {
            *expr = replacement;
        }
    }

    /// `x::regclass::text` and `x::regtype::text` print names, not numbers.
    fn reg_to_text(expr: &mut Expr) {
        let Expr::Cast {
            expr: inner,
            data_type: outer,
            ..
        } = &*expr
        else {
            return;
        };
        if !type_is(outer, &["text", "varchar", "character varying"]) {
            return;
        }
        let Expr::Cast {
            expr: value,
            data_type: reg,
            ..
        } = inner.as_ref()
        else {
            return;
        };
        let replacement = if type_is(reg, &["regclass"]) {
            format!("koios_regclass_name({value})")
        } else if type_is(reg, &["regnamespace"]) {
            format!("koios_regnamespace_name({value})")
        } else if type_is(reg, &["regtype"]) {
            // PostgreSQL prints type 0 as '-'.
            format!("CASE WHEN ({value}) = 0 THEN '-' ELSE format_type({value}, NULL) END")
        } else {
            return;
        };
        if let Some(replacement) = parse_expr(&replacement) {
            *expr = replacement;
        }
    }
}

/// Names a subquery's FROM clause binds (aliases, else table names).
fn inner_names(from: &[ast::TableWithJoins]) -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |factor: &ast::TableFactor| match factor {
        ast::TableFactor::Table {
            alias: Some(alias), ..
        } => names.push(alias.name.value.to_ascii_lowercase()),
        ast::TableFactor::Table { name, .. } => {
            if let Some(last) = name.0.last().and_then(ObjectNamePart::as_ident) {
                names.push(last.value.to_ascii_lowercase());
            }
        }
        ast::TableFactor::Derived {
            alias: Some(alias), ..
        } => names.push(alias.name.value.to_ascii_lowercase()),
        _ => {}
    };
    for table in from {
        add(&table.relation);
        for join in &table.joins {
            add(&join.relation);
        }
    }
    names
}

fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(*left);
            out.extend(conjuncts(*right));
            out
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

fn and_all(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: ast::BinaryOperator::And,
        right: Box::new(right),
    })
}

/// Whether every column `expr` reads is qualified by a name the subquery
/// does not bind (and it reads at least one, and no subquery).
fn references_only_outer(expr: &Expr, inner: &[String]) -> bool {
    struct Columns<'a> {
        inner: &'a [String],
        outer: usize,
        other: usize,
    }
    impl ast::Visitor for Columns<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let qualifier = parts[parts.len() - 2].value.to_ascii_lowercase();
                    if self.inner.contains(&qualifier) {
                        self.other += 1;
                    } else {
                        self.outer += 1;
                    }
                }
                Expr::Identifier(_)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::InSubquery { .. } => self.other += 1,
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut columns = Columns {
        inner,
        outer: 0,
        other: 0,
    };
    let _ = ast::Visit::visit(expr, &mut columns);
    columns.outer > 0 && columns.other == 0
}

fn type_is(data_type: &ast::DataType, names: &[&str]) -> bool {
    let name = data_type.to_string().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    names.contains(&name)
}

/// The text of a string literal or a `||` chain of them.
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(ast::ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => Some(s.clone()),
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::StringConcat,
            right,
        } => Some(literal_text(left)? + &literal_text(right)?),
        Expr::Nested(inner) => literal_text(inner),
        _ => None,
    }
}

impl VisitorMut for KoiosRules {
    type Break = ();

    /// An unqualified name of a `pg_catalog` table Koios adds (the crate's
    /// rule qualifies only its own, e.g. not `pg_stat_activity`).
    fn pre_visit_table_factor(&mut self, factor: &mut ast::TableFactor) -> ControlFlow<()> {
        if let ast::TableFactor::Table {
            name, args: None, ..
        } = factor
            && let [ObjectNamePart::Identifier(table)] = name.0.as_slice()
            && super::pg_catalog::system_table_names().contains(&table.value.to_ascii_lowercase())
        {
            let table = table.clone();
            name.0 = vec![
                ObjectNamePart::Identifier(ast::Ident::new(super::PG_CATALOG)),
                ObjectNamePart::Identifier(table),
            ];
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Subquery(_) => Self::aggregate_scalar_subquery(expr),
            Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } => Self::backslash_escape(pattern, escape_char),
            Expr::Function(_) => Self::generate_subscripts(expr),
            Expr::Cast { .. } => Self::reg_to_text(expr),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        rewrite_catalog_query(sql)
            .expect("a catalog query")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn only_catalog_queries_are_rewritten() {
        assert!(rewrite_catalog_query("SELECT (SELECT a FROM t WHERE t.b = u.b) FROM u").is_none());
        // A user table whose name starts with pg_ is not a catalog.
        assert!(
            rewrite_catalog_query("SELECT (SELECT a FROM pg_stats_copy t WHERE t.b = u.b) FROM u")
                .is_none()
        );
        assert!(rewrite_catalog_query("SELECT relname FROM pg_class").is_some());
        assert!(rewrite_catalog_query("select pg_catalog.version()").is_some());
        assert!(rewrite_catalog_query("SET search_path = x").is_none());
    }

    #[test]
    fn correlated_subqueries_are_aggregated_not_dropped() {
        let sql = rewritten(
            "SELECT (SELECT t.typname FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) FROM pg_catalog.pg_attribute a",
        );
        assert!(sql.contains("first_value(t.typname)"), "{sql}");
        let counted = rewritten(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) FROM pg_catalog.pg_attribute a",
        );
        assert!(!counted.contains("first_value"), "{counted}");
    }

    #[test]
    fn like_escapes_become_backslashes() {
        let sql = rewritten(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE 'pg/_' || '%' ESCAPE '/'",
        );
        assert!(sql.contains(r"NOT LIKE 'pg\_%'"), "{sql}");
    }

    #[test]
    fn fragments_match_whatever_the_whitespace() {
        let sql = rewritten(
            "SELECT r.rolname,\n  ARRAY(SELECT b.rolname\n        FROM pg_catalog.pg_auth_members m\n        JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid)\n        WHERE m.member = r.oid) as memberof\nFROM pg_catalog.pg_roles r",
        );
        assert!(sql.contains("CAST(NULL AS TEXT[]) AS memberof"), "{sql}");
    }
}
