//! The one place where values and identifiers are written into SQL text
//! that a backend runs.
//!
//! Remote SQL is built as a sqlparser AST (by DataFusion's unparser, or by a
//! connector) and rendered here, never by `Display` alone: sqlparser's
//! `Display` for quoted strings and identifiers leaves a quote alone when it
//! follows a backslash or another quote, because it assumes the text is
//! already escaped. For arbitrary values that is an injection
//! (`\' OR 1=1 --` ends the literal on PostgreSQL) or a wrong answer
//! (`O'Reilly''s` becomes `O'Reilly's`).
//!
//! [`RemoteDialect::render`] therefore
//! 1. rewrites every string literal and every identifier of the AST into the
//!    exact text [`RemoteDialect::quote_string`] and
//!    [`RemoteDialect::quote_identifier`] write for it, so `Display` only
//!    copies that text; any other kind of literal that could carry text is
//!    refused;
//! 2. re-reads the rendered SQL with the backend's own lexical rules and
//!    checks that its literals and quoted identifiers are exactly the ones
//!    written in step 1, and that it holds no comment, statement separator,
//!    dollar quote or other string syntax. A statement that fails the check
//!    is never sent: the caller gets an error (or keeps the work local).
//!
//! Connectors that write SQL text without the unparser (COPY, discovery,
//! sizing queries) quote through the same two functions, or send values as
//! bind parameters.

use std::ops::ControlFlow;

use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, TableAlias, TableFactor, Value, ValueWithSpan,
    VisitMut, VisitorMut,
};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};

/// The lexical rules of a SQL backend's sessions, as Koios opens them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteDialect {
    /// PostgreSQL. Plain `'…'` literals are only written for values without
    /// a backslash, so they mean the same whether `standard_conforming_strings`
    /// is on or off; values with one are written `E'…'` with `\\` and `''`.
    PostgreSql,
    /// MySQL and MariaDB, in sessions whose `sql_mode` includes
    /// `NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES` (the connector sets both on
    /// every connection and checks that they hold): `'…'` with `''`;
    /// identifiers in backquotes. A value with a backslash is written as
    /// `_utf8mb4 X'…'` (its UTF-8 bytes in hex, a string of the same
    /// coercibility as `'…'`): it then means the same in any sql_mode, and
    /// the MySQL driver's own scan for `:name` parameters, which assumes
    /// backslash escapes, cannot misread where the string ends.
    MySql,
}

impl RemoteDialect {
    /// DataFusion's unparser dialect for this backend.
    pub fn unparser_dialect(self) -> &'static dyn Dialect {
        match self {
            RemoteDialect::PostgreSql => &PostgreSqlDialect {},
            RemoteDialect::MySql => &MySqlDialect {},
        }
    }

    /// `name` as a quoted identifier: `"a""b"` (PostgreSQL), `` `a``b` `` (MySQL).
    pub fn quote_identifier(self, name: &str) -> String {
        let quote = self.identifier_quote();
        let mut out = String::with_capacity(name.len() + 2);
        out.push(quote);
        for c in name.chars() {
            if c == quote {
                out.push(quote);
            }
            out.push(c);
        }
        out.push(quote);
        out
    }

    /// `value` as a string literal of this backend. Neither backend's text
    /// types can be relied on to hold NUL, so a value with one is refused.
    pub fn quote_string(self, value: &str) -> Result<String> {
        if value.contains('\0') {
            return Err(DataFusionError::Plan(
                "a string with a NUL character cannot be written into remote SQL".into(),
            ));
        }
        if self == RemoteDialect::MySql && value.contains('\\') {
            let hex: String = value.bytes().map(|b| format!("{b:02X}")).collect();
            return Ok(format!("{MYSQL_UTF8_INTRODUCER} X'{hex}'"));
        }
        let escape_backslash = self == RemoteDialect::PostgreSql && value.contains('\\');
        let mut out = String::with_capacity(value.len() + 3);
        if escape_backslash {
            out.push('E');
        }
        out.push('\'');
        for c in value.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' if escape_backslash => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out.push('\'');
        Ok(out)
    }

    /// `value` as a plain quoted string, for the places of a statement
    /// that take no hex literal or introducer (MySQL's `LOAD DATA` file
    /// name and separators): quotes doubled, backslashes literal (Koios's
    /// MySQL sessions run with `NO_BACKSLASH_ESCAPES`, checked on connect),
    /// NUL refused.
    pub fn quote_plain_string(self, value: &str) -> Result<String> {
        if value.contains('\0') || (self == RemoteDialect::PostgreSql && value.contains('\\')) {
            return Err(DataFusionError::Plan(
                "this string cannot be written as a plain literal of remote SQL".into(),
            ));
        }
        Ok(format!("'{}'", value.replace('\'', "''")))
    }

    /// The SQL text of `plan`, unparsed in this dialect and rendered by
    /// [`RemoteDialect::render`].
    pub fn plan_to_sql(self, plan: &LogicalPlan) -> Result<String> {
        let statement = Unparser::new(self.unparser_dialect()).plan_to_sql(plan)?;
        self.render(statement)
    }

    /// The SQL text of one expression (a predicate added to a query).
    pub fn expr_to_sql(self, expr: &DfExpr) -> Result<String> {
        let expr = Unparser::new(self.unparser_dialect()).expr_to_sql(expr)?;
        self.render(expr)
    }

    /// Renders an AST (a statement or an expression) with every literal and
    /// identifier quoted by this dialect's rules, then checks the text.
    pub fn render<T: VisitMut + std::fmt::Display>(self, node: T) -> Result<String> {
        self.render_as(node, Policy::Remote)
    }

    fn render_as<T: VisitMut + std::fmt::Display>(
        self,
        mut node: T,
        policy: Policy,
    ) -> Result<String> {
        let mut quoter = Quoter {
            dialect: self,
            policy,
            written: Vec::new(),
            error: None,
        };
        let _ = node.visit(&mut quoter);
        if let Some(error) = quoter.error {
            return Err(error);
        }
        let sql = node.to_string();
        let mut read = lex(self, &sql).map_err(|why| unsafe_sql(&sql, &why))?;
        let mut written = quoter.written;
        written.sort();
        read.sort();
        if written != read {
            return Err(unsafe_sql(
                &sql,
                "its quoted literals and identifiers are not the ones written",
            ));
        }
        Ok(sql)
    }

    fn identifier_quote(self) -> char {
        match self {
            RemoteDialect::PostgreSql => '"',
            RemoteDialect::MySql => '`',
        }
    }
}

/// The character set MySQL hex strings are read in.
const MYSQL_UTF8_INTRODUCER: &str = "_utf8mb4";

/// The text of a statement Koios parsed (PostgreSQL dialect) in which
/// different statements always read differently — unlike sqlparser's
/// `Display`, under which `'O''Reilly''''s'` and `'O''Reilly''s'`, or the
/// names `"a""b"` and `"a"b"`, look the same. For plan-cache keys. Names
/// written bare stay bare (they fold to lower case; quoted ones do not);
/// `E'…'` and `$$…$$` strings read as the equal plain string. `None` when
/// the statement holds something this cannot write exactly (such a
/// statement is simply not cached).
pub fn canonical_text<T: Clone + VisitMut + std::fmt::Display>(node: &T) -> Option<String> {
    RemoteDialect::PostgreSql
        .render_as(node.clone(), Policy::Canonical)
        .ok()
}

/// What rendering is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// SQL a backend runs: every name of data is quoted, only plain
    /// strings (what the unparser writes) are accepted.
    Remote,
    /// A key for a statement a client wrote: bare names stay bare, strings
    /// in any of PostgreSQL's spellings are accepted.
    Canonical,
}

fn unsafe_sql(sql: &str, why: &str) -> DataFusionError {
    // The text itself stays out of the message: it holds user values.
    DataFusionError::Execution(format!(
        "refusing to send remote SQL of {} characters: {why}",
        sql.chars().count()
    ))
}

/// A quoted token of rendered SQL, decoded: what the backend will read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Quoted {
    String(String),
    Identifier(String),
}

/// Rewrites literals and identifiers into their exact quoted text, recording
/// what each one must read back as.
struct Quoter {
    dialect: RemoteDialect,
    policy: Policy,
    written: Vec<Quoted>,
    error: Option<DataFusionError>,
}

/// Words the unparser writes bare: DataFusion's function names.
fn is_bare_word(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Quoter {
    /// Quotes a name of data (table, column, alias): always quoted.
    fn ident(&mut self, ident: &mut Ident) {
        // A node may be reached twice: a rewritten identifier has no quote
        // style and starts with the quote.
        if ident.quote_style.is_none()
            && (self.policy == Policy::Canonical
                || ident.value.starts_with(self.dialect.identifier_quote()))
        {
            return;
        }
        let name = std::mem::take(&mut ident.value);
        ident.value = self.dialect.quote_identifier(&name);
        ident.quote_style = None;
        self.written.push(Quoted::Identifier(name));
    }

    fn object_name(&mut self, name: &mut ObjectName) {
        for part in &mut name.0 {
            match part {
                ObjectNamePart::Identifier(ident) => self.ident(ident),
                ObjectNamePart::Function(_) => self.fail("a computed object name"),
            }
        }
    }

    /// A function's name: the unparser writes DataFusion's own names bare;
    /// a quoted one is quoted exactly.
    fn function_name(&mut self, name: &mut ObjectName) {
        for part in &mut name.0 {
            match part {
                ObjectNamePart::Identifier(ident)
                    if ident.quote_style.is_none() && is_bare_word(&ident.value) => {}
                ObjectNamePart::Identifier(ident) => self.ident(ident),
                ObjectNamePart::Function(_) => self.fail("a computed function name"),
            }
        }
    }

    fn alias(&mut self, alias: &mut TableAlias) {
        self.ident(&mut alias.name);
        for column in &mut alias.columns {
            self.ident(&mut column.name);
        }
    }

    fn fail(&mut self, what: &str) {
        if self.error.is_none() {
            self.error = Some(DataFusionError::Plan(format!(
                "{what} cannot be written into remote SQL"
            )));
        }
    }
}

impl VisitorMut for Quoter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                self.alias(&mut cte.alias);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            match item {
                SelectItem::ExprWithAlias { alias, .. } => self.ident(alias),
                SelectItem::ExprWithAliases { aliases, .. } => {
                    aliases.iter_mut().for_each(|a| self.ident(a))
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => self.object_name(n),
                _ => {}
            }
        }
        for from in &mut select.from {
            for join in &mut from.joins {
                let constraint = match &mut join.join_operator {
                    JoinOperator::Join(c)
                    | JoinOperator::Inner(c)
                    | JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::Right(c)
                    | JoinOperator::RightOuter(c)
                    | JoinOperator::FullOuter(c)
                    | JoinOperator::Semi(c)
                    | JoinOperator::LeftSemi(c)
                    | JoinOperator::RightSemi(c)
                    | JoinOperator::Anti(c)
                    | JoinOperator::LeftAnti(c)
                    | JoinOperator::RightAnti(c)
                    | JoinOperator::StraightJoin(c) => Some(c),
                    _ => None,
                };
                if let Some(JoinConstraint::Using(names)) = constraint {
                    names.iter_mut().for_each(|n| self.object_name(n));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::NestedJoin { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::TableFunction { alias, .. } => {
                if let Some(alias) = alias {
                    self.alias(alias);
                }
            }
            _ => self.fail("this kind of table reference"),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        self.object_name(relation);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => self.ident(ident),
            Expr::CompoundIdentifier(idents) => idents.iter_mut().for_each(|i| self.ident(i)),
            Expr::QualifiedWildcard(name, _) => self.object_name(name),
            Expr::Function(function) => self.function_name(&mut function.name),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        let canonical = self.policy == Policy::Canonical;
        match &mut value.value {
            Value::EscapedStringLiteral(text) if canonical => {
                value.value = Value::SingleQuotedString(std::mem::take(text));
                return self.pre_visit_value(value);
            }
            Value::DollarQuotedString(dollar) if canonical => {
                value.value = Value::SingleQuotedString(std::mem::take(&mut dollar.value));
                return self.pre_visit_value(value);
            }
            Value::SingleQuotedString(text) => match self.dialect.quote_string(text) {
                Ok(quoted) => {
                    self.written.push(Quoted::String(std::mem::take(text)));
                    value.value = Value::Placeholder(quoted);
                }
                Err(e) => {
                    if self.error.is_none() {
                        self.error = Some(e);
                    }
                }
            },
            Value::Number(..) | Value::Boolean(_) | Value::Null => {}
            // The remote query's own parameters (`$1`, `?`); the check
            // after rendering refuses anything else written as one.
            Value::Placeholder(_) => {}
            _ => self.fail("this kind of literal"),
        }
        ControlFlow::Continue(())
    }
}

/// Reads `sql` as the backend would and returns its quoted literals and
/// identifiers, decoded; an error for anything Koios never writes and a
/// backend could read as more than one statement, a comment or an
/// unexpected kind of string.
fn lex(dialect: RemoteDialect, sql: &str) -> std::result::Result<Vec<Quoted>, String> {
    let quote = dialect.identifier_quote();
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let (text, end) = quoted_run(&chars, i, '\'', false)?;
            out.push(Quoted::String(text));
            i = end;
        } else if c == quote {
            let (text, end) = quoted_run(&chars, i, quote, false)?;
            out.push(Quoted::Identifier(text));
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if chars.get(i) == Some(&'\'') {
                // A prefixed string: only PostgreSQL's E'…' is ever written.
                if dialect != RemoteDialect::PostgreSql || !word.eq_ignore_ascii_case("e") {
                    return Err(format!("a string prefixed by {word}"));
                }
                let (text, end) = quoted_run(&chars, i, '\'', true)?;
                out.push(Quoted::String(text));
                i = end;
            } else if dialect == RemoteDialect::MySql && word == MYSQL_UTF8_INTRODUCER {
                // `_utf8mb4 X'…'`: hex digits only, UTF-8 text.
                if chars.get(i) != Some(&' ') || chars.get(i + 1) != Some(&'X') {
                    return Err("a character set introducer Koios does not write".into());
                }
                let (hex, end) = quoted_run(&chars, i + 2, '\'', false)?;
                out.push(Quoted::String(decode_hex(&hex)?));
                i = end;
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            let next = chars.get(i + 1).copied();
            match (c, next) {
                (';', _) => return Err("a statement separator".into()),
                ('-', Some('-')) | ('/', Some('*')) | ('*', Some('/')) => {
                    return Err("a comment marker".into());
                }
                ('#', _) if dialect == RemoteDialect::MySql => {
                    return Err("a comment marker".into());
                }
                ('"', _) | ('`', _) => return Err("a string in the wrong quotes".into()),
                ('$', next) if dialect == RemoteDialect::PostgreSql => {
                    // `$1` is a parameter; `$$` or `$tag$` would open a string.
                    if !next.is_some_and(|n| n.is_ascii_digit()) {
                        return Err("a dollar quote".into());
                    }
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                ('\\', _) => return Err("a backslash outside a string".into()),
                // PostgreSQL's U&'…' and U&"…" read escapes of their own.
                ('&', Some('\'' | '"')) if dialect == RemoteDialect::PostgreSql => {
                    return Err("a Unicode-escape string".into());
                }
                _ => {}
            }
            i += 1;
        }
    }
    Ok(out)
}

/// The UTF-8 text of upper-case hex digits.
fn decode_hex(hex: &str) -> std::result::Result<String, String> {
    let digits: Vec<u8> = hex
        .chars()
        .map(|c| match c {
            '0'..='9' => Ok(c as u8 - b'0'),
            'A'..='F' => Ok(c as u8 - b'A' + 10),
            _ => Err("a hex string with other characters".to_string()),
        })
        .collect::<std::result::Result<_, _>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err("a hex string of odd length".into());
    }
    let bytes = digits.chunks(2).map(|p| p[0] * 16 + p[1]).collect();
    String::from_utf8(bytes).map_err(|_| "a hex string that is not UTF-8".to_string())
}

/// Decodes the quoted run opening at `chars[start]`; returns its text and
/// the index after its closing quote. A doubled quote stands for one; with
/// `backslash_escapes` (PostgreSQL's `E'…'`) `\\` and `\'` do too, and any
/// other escape is refused (Koios writes none).
fn quoted_run(
    chars: &[char],
    start: usize,
    quote: char,
    backslash_escapes: bool,
) -> std::result::Result<(String, usize), String> {
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err("an unterminated quoted run".into()),
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    text.push(quote);
                    i += 2;
                } else {
                    return Ok((text, i + 1));
                }
            }
            Some('\\') if backslash_escapes => match chars.get(i + 1) {
                Some(&e) if e == '\\' || e == quote => {
                    text.push(e);
                    i += 2;
                }
                _ => return Err("an escape sequence Koios does not write".into()),
            },
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

mod ddl;
mod dml;
mod staged;
pub use staged::{KeyedChange, StagedStatements};

#[cfg(test)]
mod tests;
