//! The job statements, parsed from PostgreSQL-dialect SQL:
//!
//! ```sql
//! SHOW JOBS                      -- koios.system.jobs, by id
//! PAUSE JOB 3
//! RESUME JOB 3
//! CANCEL JOB 3
//! ```

use datafusion::error::Result;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use koios_connector::sql_err;

use crate::engine::error::codes;

/// `SHOW JOBS` as the query it runs.
pub const SHOW_JOBS: &str = "SELECT * FROM koios.system.jobs ORDER BY id";

/// One job statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobCommand {
    Show,
    Pause(i64),
    Resume(i64),
    Cancel(i64),
}

impl JobCommand {
    /// The command tag a client receives.
    pub fn tag(&self) -> &'static str {
        match self {
            JobCommand::Show => "SHOW",
            JobCommand::Pause(_) => "PAUSE JOB",
            JobCommand::Resume(_) => "RESUME JOB",
            JobCommand::Cancel(_) => "CANCEL JOB",
        }
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none())
}

/// Whether the parser stands at a job statement.
pub fn starts_job_statement(parser: &Parser<'_>) -> bool {
    let first = parser.peek_nth_token(0).token;
    let second = parser.peek_nth_token(1).token;
    (is_word(&first, "show") && is_word(&second, "jobs"))
        || (["pause", "resume", "cancel"]
            .iter()
            .any(|w| is_word(&first, w))
            && is_word(&second, "job"))
}

/// Parses the job statement the parser stands at (see
/// [`starts_job_statement`]).
pub fn parse_job_statement(parser: &mut Parser<'_>) -> Result<JobCommand> {
    let verb = parser.next_token().token;
    parser.next_token();
    if is_word(&verb, "show") {
        return Ok(JobCommand::Show);
    }
    let id = match parser.next_token().token {
        Token::Number(n, _) => n.parse::<i64>().ok(),
        _ => None,
    };
    let Some(id) = id else {
        return sql_err!(
            codes::SYNTAX_ERROR,
            "syntax error: a job is named by its id, as in {} JOB 3 (SHOW JOBS lists them)",
            verb.to_string().to_uppercase()
        );
    };
    Ok(if is_word(&verb, "pause") {
        JobCommand::Pause(id)
    } else if is_word(&verb, "resume") {
        JobCommand::Resume(id)
    } else {
        JobCommand::Cancel(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn parse(sql: &str) -> Result<JobCommand> {
        let dialect = PostgreSqlDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(sql).expect("tokenizes");
        assert!(starts_job_statement(&parser), "{sql}");
        parse_job_statement(&mut parser)
    }

    #[test]
    fn job_statements_parse() {
        assert_eq!(parse("show jobs").expect("parses"), JobCommand::Show);
        assert_eq!(parse("PAUSE JOB 3").expect("parses"), JobCommand::Pause(3));
        assert_eq!(
            parse("resume job 12").expect("parses"),
            JobCommand::Resume(12)
        );
        assert_eq!(
            parse("Cancel Job 1").expect("parses"),
            JobCommand::Cancel(1)
        );
        let error = parse("cancel job x").expect_err("no id").to_string();
        assert!(error.contains("CANCEL JOB 3"), "{error}");
    }
}
