//! Koios's source statements, parsed from PostgreSQL-dialect SQL:
//!
//! ```sql
//! CREATE SOURCE [IF NOT EXISTS] name USING kind WITH (url = '…', option = value, …)
//! ALTER SOURCE name SET (option = value, …)
//! DROP SOURCE [IF EXISTS] name
//! REFRESH SOURCE name
//! SHOW SOURCES
//! ```
//!
//! Option values are SQL literals: strings, numbers, `true`/`false`, and
//! `ARRAY['a', 'b']` for lists. Parse errors never echo a string literal
//! (a URL may hold a password).

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{self, Expr};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use koios_connector::{sql_err, sql_error};

use crate::engine::error::codes;

/// One source statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceCommand {
    Create {
        name: String,
        kind: String,
        options: Vec<(String, toml::Value)>,
        if_not_exists: bool,
    },
    Alter {
        name: String,
        options: Vec<(String, toml::Value)>,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
    Refresh(String),
    Show,
}

impl SourceCommand {
    /// The command tag a client receives.
    pub fn tag(&self) -> &'static str {
        match self {
            SourceCommand::Create { .. } => "CREATE SOURCE",
            SourceCommand::Alter { .. } => "ALTER SOURCE",
            SourceCommand::Drop { .. } => "DROP SOURCE",
            SourceCommand::Refresh(_) => "REFRESH SOURCE",
            SourceCommand::Show => "SHOW",
        }
    }

    /// Whether only an administrator may run it.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            SourceCommand::Create { .. } | SourceCommand::Alter { .. } | SourceCommand::Drop { .. }
        )
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
}

/// Whether the parser stands at a source statement.
pub fn starts_source_statement(parser: &Parser<'_>) -> bool {
    let first = parser.peek_nth_token(0).token;
    let second = parser.peek_nth_token(1).token;
    (["create", "alter", "drop", "refresh"]
        .iter()
        .any(|w| is_word(&first, w))
        && is_word(&second, "source"))
        || (is_word(&first, "show") && is_word(&second, "sources"))
}

/// Parses the source statement the parser stands at (see
/// [`starts_source_statement`]).
pub fn parse_source_statement(parser: &mut Parser<'_>) -> Result<SourceCommand> {
    let verb = parser.next_token().token;
    parser.next_token();
    if is_word(&verb, "show") {
        return Ok(SourceCommand::Show);
    }
    if is_word(&verb, "refresh") {
        return Ok(SourceCommand::Refresh(name(parser)?));
    }
    if is_word(&verb, "drop") {
        let if_exists = keywords(parser, &["if", "exists"]);
        return Ok(SourceCommand::Drop {
            name: name(parser)?,
            if_exists,
        });
    }
    if is_word(&verb, "alter") {
        let name = name(parser)?;
        expect_word(parser, "SET", "ALTER SOURCE name SET (option = value, …)")?;
        return Ok(SourceCommand::Alter {
            name,
            options: options(parser)?,
        });
    }
    let if_not_exists = keywords(parser, &["if", "not", "exists"]);
    let name = name(parser)?;
    expect_word(
        parser,
        "USING",
        "CREATE SOURCE name USING kind WITH (url = '…', …)",
    )?;
    let kind = name_of(parser, "a source kind")?;
    expect_word(
        parser,
        "WITH",
        "CREATE SOURCE name USING kind WITH (url = '…', …)",
    )?;
    Ok(SourceCommand::Create {
        name,
        kind,
        options: options(parser)?,
        if_not_exists,
    })
}

/// Consumes `words` if they come next, all of them.
fn keywords(parser: &mut Parser<'_>, words: &[&str]) -> bool {
    let all = words
        .iter()
        .enumerate()
        .all(|(i, w)| is_word(&parser.peek_nth_token(i).token, w));
    if all {
        for _ in words {
            parser.next_token();
        }
    }
    all
}

fn expect_word(parser: &mut Parser<'_>, word: &str, form: &str) -> Result<()> {
    if is_word(&parser.peek_token().token, word) {
        parser.next_token();
        Ok(())
    } else {
        sql_err!(codes::SYNTAX_ERROR, "expected {word}: the form is {form}")
    }
}

fn name(parser: &mut Parser<'_>) -> Result<String> {
    name_of(parser, "a source name")
}

/// An identifier, folded to lower case unless quoted (as PostgreSQL does).
fn name_of(parser: &mut Parser<'_>, what: &str) -> Result<String> {
    match parser.next_token().token {
        Token::Word(w) if w.quote_style.is_none() => Ok(w.value.to_ascii_lowercase()),
        Token::Word(w) => Ok(w.value),
        _ => sql_err!(codes::SYNTAX_ERROR, "expected {what}"),
    }
}

/// `(key = value, …)`.
fn options(parser: &mut Parser<'_>) -> Result<Vec<(String, toml::Value)>> {
    if !parser.consume_token(&Token::LParen) {
        return sql_err!(codes::SYNTAX_ERROR, "expected ( after WITH or SET");
    }
    let mut options: Vec<(String, toml::Value)> = Vec::new();
    loop {
        let key = name_of(parser, "an option name")?;
        if !parser.consume_token(&Token::Eq) {
            return sql_err!(codes::SYNTAX_ERROR, "expected = after option {key}");
        }
        let expr = parser
            .parse_expr()
            .map_err(|_| sql_error!(codes::SYNTAX_ERROR, "option {key}: expected a value"))?;
        let value = literal(&key, &expr)?;
        if options.iter().any(|(k, _)| *k == key) {
            return sql_err!(codes::SYNTAX_ERROR, "option {key} is given twice");
        }
        if parser.consume_token(&Token::Comma) {
            options.push((key, value));
            continue;
        }
        if parser.consume_token(&Token::RParen) {
            options.push((key, value));
            return Ok(options);
        }
        return sql_err!(codes::SYNTAX_ERROR, "expected , or ) after option {key}");
    }
}

/// A SQL literal as the option value a `[[source]]` entry would hold.
fn literal(key: &str, expr: &Expr) -> Result<toml::Value> {
    let bad = || {
        sql_error!(
            codes::SYNTAX_ERROR,
            "option {key}: expected a string, number, true/false or ARRAY[…]"
        )
    };
    Ok(match expr {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => {
                toml::Value::String(s.clone())
            }
            ast::Value::Boolean(b) => toml::Value::Boolean(*b),
            ast::Value::Number(n, _) => number(n).ok_or_else(bad)?,
            _ => return Err(bad()),
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match literal(key, expr)? {
            toml::Value::Integer(i) => toml::Value::Integer(-i),
            toml::Value::Float(f) => toml::Value::Float(-f),
            _ => return Err(bad()),
        },
        Expr::Array(array) => toml::Value::Array(
            array
                .elem
                .iter()
                .map(|e| literal(key, e))
                .collect::<Result<_>>()?,
        ),
        _ => return Err(bad()),
    })
}

fn number(text: &str) -> Option<toml::Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(toml::Value::Integer(i));
    }
    text.parse::<f64>().ok().map(toml::Value::Float)
}

/// `sql` as Koios may show it to other users (`koios.system.queries`,
/// `pg_stat_activity`): a source statement's string values — URLs that may
/// hold a password — become `'***'`; any other text is returned as it is.
pub fn redact_statement_text(sql: &str) -> std::borrow::Cow<'_, str> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    // Most statements are not about sources: skip tokenizing them.
    let mentions_source = sql
        .as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"source"));
    if !mentions_source {
        return std::borrow::Cow::Borrowed(sql);
    }
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        // Text Koios cannot even tokenize is not run; show nothing of it.
        return std::borrow::Cow::Borrowed("");
    };
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let is_source_statement = words.windows(2).any(|pair| {
        (is_word(pair[0], "create") || is_word(pair[0], "alter")) && is_word(pair[1], "source")
    });
    if !is_source_statement {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    for token in &tokens {
        match token {
            Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_) => out.push_str("'***'"),
            other => out.push_str(&other.to_string()),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A parse error of DataFusion's parser, as Koios reports it.
pub fn parser_error(e: datafusion::sql::sqlparser::parser::ParserError) -> DataFusionError {
    DataFusionError::SQL(Box::new(e), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn parse(sql: &str) -> Result<SourceCommand> {
        let dialect = PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(sql)
            .map_err(parser_error)?;
        assert!(starts_source_statement(&parser), "{sql}");
        parse_source_statement(&mut parser)
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            parse(
                "create source if not exists Pg2 using POSTGRES with (url = 'postgres://h/db', \
                 pool_size = 2, split_count = 'auto', databases = ARRAY['a', 'b'], validate = false, x = -1.5)"
            )
            .expect("parses"),
            SourceCommand::Create {
                name: "pg2".into(),
                kind: "postgres".into(),
                options: vec![
                    ("url".into(), toml::Value::String("postgres://h/db".into())),
                    ("pool_size".into(), toml::Value::Integer(2)),
                    ("split_count".into(), toml::Value::String("auto".into())),
                    (
                        "databases".into(),
                        toml::Value::Array(vec![
                            toml::Value::String("a".into()),
                            toml::Value::String("b".into())
                        ])
                    ),
                    ("validate".into(), toml::Value::Boolean(false)),
                    ("x".into(), toml::Value::Float(-1.5)),
                ],
                if_not_exists: true,
            }
        );
        assert_eq!(
            parse("ALTER SOURCE pg SET (pool_size = 8)").expect("parses"),
            SourceCommand::Alter {
                name: "pg".into(),
                options: vec![("pool_size".into(), toml::Value::Integer(8))]
            }
        );
        assert_eq!(
            parse("DROP SOURCE IF EXISTS \"Odd\"").expect("parses"),
            SourceCommand::Drop {
                name: "Odd".into(),
                if_exists: true
            }
        );
        assert_eq!(parse("show sources").expect("parses"), SourceCommand::Show);
        assert_eq!(
            parse("REFRESH SOURCE pg").expect("parses"),
            SourceCommand::Refresh("pg".into())
        );
    }

    #[test]
    fn source_statements_are_shown_without_their_values() {
        assert_eq!(
            redact_statement_text(
                "create source s using postgres with (url = 'postgres://u:pw@h/db', pool_size = 2)"
            ),
            "create source s using postgres with (url = '***', pool_size = 2)"
        );
        assert_eq!(
            redact_statement_text("ALTER SOURCE s SET (url = E'postgres://u:p\\w@h')"),
            "ALTER SOURCE s SET (url = '***')"
        );
        assert_eq!(
            redact_statement_text("SELECT 'create source'"),
            "SELECT 'create source'"
        );
    }

    #[test]
    fn errors_never_echo_values() {
        let err = parse(
            "CREATE SOURCE s USING postgres WITH (url = 'postgres://u:hunter2@h' pool_size = 1)",
        )
        .expect_err("missing comma");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err =
            parse("CREATE SOURCE s USING postgres WITH (url = lower('postgres://u:hunter2@h'))")
                .expect_err("not a literal");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(parse("CREATE SOURCE s postgres WITH (url = 'x')").is_err());
        assert!(parse("CREATE SOURCE s USING postgres WITH (url = 'x', url = 'y')").is_err());
        assert!(parse("ALTER SOURCE s (a = 1)").is_err());
    }
}
