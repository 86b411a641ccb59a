//! The statements of logical tables, read:
//!
//! ```sql
//! CREATE TABLE koios.public.events (id bigint PRIMARY KEY, …)
//!   STRIPED BY HASH (id) ACROSS (pg.public.events, my.app.events, …)
//!   [WITH (copies = 2, write_quorum = 1, read = 'first')];
//! CREATE TABLE koios.public.log (…) STRIPED ROUND ROBIN ACROSS (…);
//! CREATE TABLE koios.public.accounts (id bigint PRIMARY KEY, …)
//!   MIRRORED ON (pg.public.accounts, my.bank.accounts, …)
//!   [WITH (write_quorum = 3, read = 'first')];
//! DROP TABLE koios.public.events [CASCADE];
//! VERIFY TABLE koios.public.accounts;   -- compare a mirrored table's copies
//! REPAIR TABLE koios.public.accounts;   -- and rewrite the ranges that differ
//! ALTER TABLE koios.public.accounts ADD MIRROR my2.bank.accounts;
//! ALTER TABLE koios.public.accounts DROP MIRROR my2.bank.accounts;
//! ALTER TABLE koios.public.events ADD MEMBER pg2.public.events;
//! ALTER TABLE koios.public.events MOVE MEMBER my.app.events TO pg3.public.events;
//! ```
//!
//! The `CREATE TABLE` part is sqlparser's; the clause after it is Koios's
//! and read here from the same token stream.

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{self, ObjectName};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use koios_connector::sql_err;

use super::members::MemberChange;
use crate::engine::error::codes;

/// How a `CREATE TABLE … STRIPED | MIRRORED` places its rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Striping {
    /// `STRIPED BY HASH (column) … [WITH (copies = k, …)]`, with its
    /// options as written.
    Hash(String, Vec<(String, ast::Value)>),
    /// `STRIPED ROUND ROBIN`.
    RoundRobin,
    /// `MIRRORED ON (…) [WITH (option = value, …)]`: every row on every
    /// member; the options as written (names lower-cased), checked when
    /// the definition is made.
    Mirrored(Vec<(String, ast::Value)>),
}

/// A statement about logical tables.
#[derive(Debug, Clone, PartialEq)]
pub enum LogicalStatement {
    /// `CREATE TABLE name (columns) STRIPED … ACROSS (members)` or
    /// `… MIRRORED ON (members)`.
    CreateStriped {
        create: Box<ast::CreateTable>,
        striping: Striping,
        members: Vec<ObjectName>,
    },
    /// `DROP TABLE` of logical tables (`schema.table` keys).
    Drop {
        tables: Vec<(String, String)>,
        if_exists: bool,
        cascade: bool,
    },
    /// `VERIFY TABLE name` (`repair` false) or `REPAIR TABLE name`.
    Check { table: ObjectName, repair: bool },
    /// `ALTER TABLE name ADD|DROP MIRROR member` (`mirror`), `ADD|DROP
    /// MEMBER member`, `MOVE MEMBER a TO b`.
    AlterMembers {
        table: ObjectName,
        change: MemberChange<ObjectName>,
        mirror: bool,
        /// `WITH (wait = true)`: the statement ends when the rows moved.
        wait: bool,
    },
}

impl LogicalStatement {
    pub fn tag(&self) -> &'static str {
        match self {
            LogicalStatement::CreateStriped { .. } => "CREATE TABLE",
            LogicalStatement::Drop { .. } => "DROP TABLE",
            LogicalStatement::Check { repair: false, .. } => "VERIFY TABLE",
            LogicalStatement::Check { repair: true, .. } => "REPAIR TABLE",
            LogicalStatement::AlterMembers { .. } => "ALTER TABLE",
        }
    }
}

/// Whether the parser stands at `VERIFY TABLE` or `REPAIR TABLE`.
pub fn starts_check_statement(parser: &Parser) -> bool {
    let word = |n: usize, word: &str| {
        matches!(&parser.peek_nth_token(n).token,
            Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
    };
    (word(0, "verify") || word(0, "repair")) && word(1, "table")
}

/// Whether the parser stands at `ALTER TABLE name ADD|DROP MIRROR|MEMBER`
/// or `… MOVE MEMBER`.
pub fn starts_mirror_alter(parser: &Parser) -> bool {
    let word = |n: usize, word: &str| {
        matches!(&parser.peek_nth_token(n).token,
            Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
    };
    if !(word(0, "alter") && word(1, "table")) {
        return false;
    }
    // The table's name: words joined by dots.
    let mut at = 2;
    while matches!(parser.peek_nth_token(at).token, Token::Word(_)) {
        at += 1;
        if parser.peek_nth_token(at).token != Token::Period {
            break;
        }
        at += 1;
    }
    ((word(at, "add") || word(at, "drop")) && (word(at + 1, "mirror") || word(at + 1, "member")))
        || (word(at, "move") && word(at + 1, "member"))
}

/// Reads `ALTER TABLE name ADD|DROP MIRROR|MEMBER member` or `… MOVE
/// MEMBER a TO b`.
pub fn parse_mirror_alter(parser: &mut Parser) -> Result<LogicalStatement> {
    expect_word(parser, "ALTER")?;
    expect_word(parser, "TABLE")?;
    let table = parser.parse_object_name(false).map_err(syntax)?;
    if accept_word(parser, "MOVE") {
        expect_word(parser, "MEMBER")?;
        let from = parser.parse_object_name(false).map_err(syntax)?;
        expect_word(parser, "TO")?;
        let to = parser.parse_object_name(false).map_err(syntax)?;
        return Ok(LogicalStatement::AlterMembers {
            table,
            change: MemberChange::Move(from, to),
            mirror: false,
            wait: parse_wait(parser)?,
        });
    }
    let add = accept_word(parser, "ADD");
    if !add {
        expect_word(parser, "DROP")?;
    }
    let mirror = accept_word(parser, "MIRROR");
    if !mirror {
        expect_word(parser, "MEMBER")?;
    }
    let member = parser.parse_object_name(false).map_err(syntax)?;
    let change = if add {
        MemberChange::Add(member)
    } else {
        MemberChange::Drop(member)
    };
    let wait = if mirror { false } else { parse_wait(parser)? };
    Ok(LogicalStatement::AlterMembers {
        table,
        change,
        mirror,
        wait,
    })
}

/// `[WITH (wait = true|false)]` after `ADD|DROP|MOVE MEMBER`.
fn parse_wait(parser: &mut Parser) -> Result<bool> {
    let mut wait = false;
    for (name, value) in parse_options(parser)? {
        match (name.as_str(), value) {
            ("wait", ast::Value::Boolean(b)) => wait = b,
            ("wait", other) => {
                return sql_err!(
                    codes::INVALID_PARAMETER_VALUE,
                    "wait must be true or false, not {other}"
                );
            }
            (other, _) => {
                return sql_err!(
                    codes::SYNTAX_ERROR,
                    "unknown option {other} of ALTER TABLE … MEMBER (it takes wait)"
                );
            }
        }
    }
    Ok(wait)
}

/// Reads `VERIFY TABLE name` / `REPAIR TABLE name`.
pub fn parse_check_statement(parser: &mut Parser) -> Result<LogicalStatement> {
    let repair = accept_word(parser, "REPAIR");
    if !repair {
        expect_word(parser, "VERIFY")?;
    }
    expect_word(parser, "TABLE")?;
    let table = parser.parse_object_name(false).map_err(syntax)?;
    Ok(LogicalStatement::Check { table, repair })
}

/// Whether the next token starts Koios's clause after a `CREATE TABLE`.
pub fn starts_layout_clause(parser: &Parser) -> bool {
    matches!(&parser.peek_token().token,
        Token::Word(w) if w.value.eq_ignore_ascii_case("striped")
            || w.value.eq_ignore_ascii_case("mirrored"))
}

/// Reads `STRIPED BY HASH (col) ACROSS (…)` / `STRIPED ROUND ROBIN ACROSS
/// (…)` / `MIRRORED ON (…) [WITH (…)]` after `create`.
pub fn parse_layout_clause(
    parser: &mut Parser,
    create: ast::CreateTable,
) -> Result<LogicalStatement> {
    if accept_word(parser, "MIRRORED") {
        expect_word(parser, "ON")?;
        let members = parse_members(parser)?;
        let options = parse_options(parser)?;
        return Ok(LogicalStatement::CreateStriped {
            create: Box::new(create),
            striping: Striping::Mirrored(options),
            members,
        });
    }
    expect_word(parser, "STRIPED")?;
    let striping = if accept_word(parser, "BY") {
        expect_word(parser, "HASH")?;
        expect(parser, Token::LParen, "(")?;
        let key = parser.parse_identifier().map_err(syntax)?;
        expect(parser, Token::RParen, ")")?;
        Striping::Hash(
            crate::engine::remote_ddl::statement::normalize(&key),
            Vec::new(),
        )
    } else if accept_word(parser, "ROUND") {
        expect_word(parser, "ROBIN")?;
        Striping::RoundRobin
    } else {
        return sql_err!(
            codes::SYNTAX_ERROR,
            "expected BY HASH (column) or ROUND ROBIN after STRIPED"
        );
    };
    expect_word(parser, "ACROSS")?;
    let members = parse_members(parser)?;
    let options = parse_options(parser)?;
    let striping = match striping {
        Striping::Hash(key, _) => Striping::Hash(key, options),
        _ if !options.is_empty() => {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "a round-robin striped table takes no options (copies need hash striping: STRIPED BY HASH (key) … WITH (copies = k))"
            );
        }
        other => other,
    };
    Ok(LogicalStatement::CreateStriped {
        create: Box::new(create),
        striping,
        members,
    })
}

/// `[WITH (option = value, …)]`: the options as written, names lower-cased.
fn parse_options(parser: &mut Parser) -> Result<Vec<(String, ast::Value)>> {
    let mut options = Vec::new();
    if accept_word(parser, "WITH") {
        expect(parser, Token::LParen, "(")?;
        loop {
            let name = parser.parse_identifier().map_err(syntax)?;
            expect(parser, Token::Eq, "=")?;
            let value = parser.parse_value().map_err(syntax)?.value;
            options.push((
                crate::engine::remote_ddl::statement::normalize(&name),
                value,
            ));
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        expect(parser, Token::RParen, ")")?;
    }
    Ok(options)
}

/// `(source.schema.table, …)`.
fn parse_members(parser: &mut Parser) -> Result<Vec<ObjectName>> {
    expect(parser, Token::LParen, "(")?;
    let mut members = Vec::new();
    loop {
        members.push(parser.parse_object_name(false).map_err(syntax)?);
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    expect(parser, Token::RParen, ")")?;
    Ok(members)
}

fn syntax(
    e: datafusion::sql::sqlparser::parser::ParserError,
) -> datafusion::error::DataFusionError {
    koios_connector::sql_error!(codes::SYNTAX_ERROR, "{e}")
}

fn accept_word(parser: &mut Parser, word: &str) -> bool {
    if matches!(&parser.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case(word)) {
        parser.next_token();
        true
    } else {
        false
    }
}

fn expect_word(parser: &mut Parser, word: &str) -> Result<()> {
    if accept_word(parser, word) {
        Ok(())
    } else {
        sql_err!(
            codes::SYNTAX_ERROR,
            "expected {word}, found {}",
            parser.peek_token().token
        )
    }
}

fn expect(parser: &mut Parser, token: Token, shown: &str) -> Result<()> {
    if parser.consume_token(&token) {
        Ok(())
    } else {
        sql_err!(
            codes::SYNTAX_ERROR,
            "expected {shown}, found {}",
            parser.peek_token().token
        )
    }
}
