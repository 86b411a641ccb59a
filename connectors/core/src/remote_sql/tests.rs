//! Tests of remote SQL rendering: quoting, the lexical re-check, and what
//! is refused.

use super::*;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

const TRICKY: &[&str] = &[
    "",
    "plain",
    "it's",
    "O'Reilly''s",
    "\\' OR 1=1) --",
    "\\",
    "\\\\'",
    "'",
    "''",
    "a\\b",
    "$$ $tag$",
    "/* x */ -- y",
    "; DROP TABLE sentinel; --",
    "\"quoted\" `back`",
    "\u{e9}\u{1F600}\u{202e}",
    "tab\tnew\nline\r",
    "E'x'",
];

#[test]
fn quoted_strings_read_back_as_the_value() {
    for dialect in [RemoteDialect::PostgreSql, RemoteDialect::MySql] {
        for value in TRICKY {
            let quoted = dialect.quote_string(value).unwrap();
            assert_eq!(
                lex(dialect, &quoted).unwrap(),
                vec![Quoted::String(value.to_string())],
                "{dialect:?} {quoted}"
            );
            let ident = dialect.quote_identifier(value);
            assert_eq!(
                lex(dialect, &ident).unwrap(),
                vec![Quoted::Identifier(value.to_string())],
                "{dialect:?} {ident}"
            );
        }
    }
}

#[test]
fn postgres_strings_with_backslashes_mean_the_same_in_both_string_modes() {
    let d = RemoteDialect::PostgreSql;
    assert_eq!(d.quote_string("it's").unwrap(), "'it''s'");
    assert_eq!(
        d.quote_string("\\' OR 1=1) --").unwrap(),
        "E'\\\\'' OR 1=1) --'"
    );
    assert_eq!(
        RemoteDialect::MySql.quote_string("a\\'b").unwrap(),
        "_utf8mb4 X'615C2762'"
    );
    assert_eq!(
        RemoteDialect::MySql.quote_string("it's").unwrap(),
        "'it''s'"
    );
    assert!(d.quote_string("nul\0").is_err());
}

fn query(sql: &str) -> Statement {
    Parser::parse_sql(&GenericDialect {}, sql)
        .unwrap()
        .pop()
        .unwrap()
}

#[test]
fn rendering_quotes_every_literal_and_identifier_exactly() {
    let mut statement = query(
        "SELECT t.a AS x, count(*) FROM s.t AS t JOIN u ON t.a = u.b \
         WHERE t.c = 'v' AND t.d IN ('w', 'y') ORDER BY t.a",
    );
    // Values and names sqlparser's Display would mangle.
    let _ = statement.visit(&mut Rename);
    let sql = RemoteDialect::PostgreSql.render(statement).unwrap();
    assert!(sql.contains(r#"E'\\'' OR 1=1) --'"#), "{sql}");
    assert!(sql.contains(r#""t\"""."a\""""#), "{sql}");
    assert!(sql.contains(r#"FROM "s"."t" AS "t""#), "{sql}");
}

/// Sets every string to an injection and every identifier to a name
/// with a backslash before a quote.
struct Rename;
impl VisitorMut for Rename {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Value::SingleQuotedString(s) = &mut value.value {
            *s = "\\' OR 1=1) --".into();
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(idents) = expr {
            for ident in idents {
                ident.value = format!("{}\\\"", ident.value);
                ident.quote_style = Some('"');
            }
        }
        ControlFlow::Continue(())
    }
}

#[test]
fn text_the_checker_refuses() {
    let d = RemoteDialect::PostgreSql;
    for sql in [
        "SELECT 1; SELECT 2",
        "SELECT 1 -- x",
        "SELECT /* x */ 1",
        "SELECT $$x$$",
        "SELECT U&'x'",
        "SELECT 'unterminated",
        "SELECT E'\\n'",
    ] {
        assert!(lex(d, sql).is_err(), "{sql}");
    }
    assert!(lex(RemoteDialect::MySql, "SELECT 1 # x").is_err());
    assert!(lex(RemoteDialect::MySql, "SELECT \"x\"").is_err());
    assert_eq!(lex(d, "SELECT $1, $12").unwrap(), vec![]);
}

#[test]
fn text_not_written_by_the_quoter_is_refused() {
    // A quoted run the quoter did not write (here smuggled in as a
    // placeholder) fails the check instead of reaching the backend.
    let d = RemoteDialect::PostgreSql;
    let mut statement = query("SELECT $1");
    let _ = statement.visit(&mut Smuggle);
    assert!(d.render(statement).is_err());
    assert_eq!(d.render(query("SELECT $1")).unwrap(), "SELECT $1");
}

struct Smuggle;
impl VisitorMut for Smuggle {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        value.value = Value::Placeholder("'x'".into());
        ControlFlow::Continue(())
    }
}

/// A seeded generator of strings made of the characters that matter.
fn arbitrary(seed: &mut u64) -> String {
    const PIECES: &[&str] = &[
        "'",
        "''",
        "\\",
        "\\'",
        "\"",
        "`",
        "$",
        "$$",
        "--",
        "/*",
        "*/",
        ";",
        "#",
        "a",
        "Z",
        " ",
        "\t",
        "\n",
        "%",
        "_",
        "\u{e9}",
        "\u{1F600}",
        "E'",
        "1",
    ];
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let len = (next() % 12) as usize;
    (0..len)
        .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
        .collect()
}

#[test]
fn any_generated_value_reads_back_as_itself() {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let value = arbitrary(&mut seed);
        for dialect in [RemoteDialect::PostgreSql, RemoteDialect::MySql] {
            let sql = format!(
                "SELECT {} FROM t WHERE c = {}",
                dialect.quote_identifier(&value),
                dialect.quote_string(&value).unwrap()
            );
            assert_eq!(
                lex(dialect, &sql).unwrap(),
                vec![
                    Quoted::Identifier(value.clone()),
                    Quoted::String(value.clone())
                ],
                "{dialect:?}: {sql}"
            );
        }
    }
}
