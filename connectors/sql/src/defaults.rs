//! Column defaults a SQL server reports, read as constants so that an
//! `INSERT` naming only some columns gives the others their default, as
//! the server itself would: DataFusion fills an omitted column from the
//! table's [`get_column_default`] before the rows reach the backend.
//!
//! Only constants are read (a quoted string, a number, `true`/`false`,
//! with PostgreSQL's `::type` cast or in parentheses). A default the
//! server computes (`nextval(…)`, `now()`) cannot be evaluated by Koios:
//! the column is marked [`RemoteColumn::server_default`] and an insert
//! omitting it leaves it to the server ([`crate::insert`]).
//!
//! [`RemoteColumn::server_default`]: crate::RemoteColumn::server_default
//!
//! [`get_column_default`]: datafusion::catalog::TableProvider::get_column_default

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;

/// How the server writes a string default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultQuoting {
    /// `'…'` with `''`, backslashes literal (PostgreSQL with
    /// `standard_conforming_strings`).
    Standard,
    /// `'…'` with `''` or MySQL's backslash escapes (`\'`, `\\`, `\n` …),
    /// as MariaDB reports defaults.
    BackslashEscapes,
}

/// `text`, a default as the server reports it, as a value of `data_type`;
/// `None` if it is not a constant Koios reads exactly.
pub fn constant_default(
    text: &str,
    data_type: &DataType,
    quoting: DefaultQuoting,
) -> Option<ScalarValue> {
    if matches!(
        data_type,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::List(_)
            | DataType::LargeList(_)
    ) {
        return None;
    }
    let mut text = text.trim();
    while let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        text = inner.trim();
    }
    // MariaDB reports `DEFAULT (CAST('2024-02-29' AS DATE))` as written.
    if text.len() > 5
        && text.is_char_boundary(5)
        && text[..5].eq_ignore_ascii_case("cast(")
        && text.ends_with(')')
    {
        let inner = &text[5..text.len() - 1];
        let (value, after) = quoted(inner.strip_prefix('\'')?, quoting)?;
        let after = after.trim_start();
        if after.len() < 3 || !after.is_char_boundary(3) || !after[..3].eq_ignore_ascii_case("as ")
        {
            return None;
        }
        return ScalarValue::try_from_string(value, data_type).ok();
    }
    let value = if let Some(rest) = text.strip_prefix('\'') {
        let (value, after) = quoted(rest, quoting)?;
        let after = after.trim();
        if !(after.is_empty() || after.starts_with("::")) {
            return None;
        }
        value
    } else {
        let bare = text.split("::").next().unwrap_or(text).trim();
        let bare = bare
            .strip_prefix('(')
            .and_then(|b| b.strip_suffix(')'))
            .unwrap_or(bare);
        let is_number = !bare.is_empty()
            && bare
                .trim_start_matches('-')
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
        let is_bool = matches!(bare.to_ascii_lowercase().as_str(), "true" | "false");
        if !(is_number || is_bool) {
            return None;
        }
        bare.to_string()
    };
    ScalarValue::try_from_string(value, data_type).ok()
}

/// The text of a `'…'` literal whose opening quote is consumed, and what
/// follows its closing quote.
fn quoted(rest: &str, quoting: DefaultQuoting) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\\' && quoting == DefaultQuoting::BackslashEscapes {
            // MySQL's escape sequences; any other character stands for itself.
            let (_, escaped) = chars.next()?;
            let decoded = match escaped {
                '0' => '\0',
                'b' => '\u{8}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'Z' => '\u{1a}',
                other => other,
            };
            // `\%` and `\_` keep their backslash (LIKE escapes).
            if matches!(escaped, '%' | '_') {
                value.push('\\');
            }
            value.push(decoded);
        } else if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                value.push('\'');
            } else {
                return Some((value, &rest[i + 1..]));
            }
        } else {
            value.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn reads_constants_only() {
        let read = |text: &str, dt: &DataType| constant_default(text, dt, DefaultQuoting::Standard);
        assert_eq!(
            read("'it''s \\ here'::text", &DataType::Utf8),
            Some(ScalarValue::Utf8(Some("it's \\ here".into())))
        );
        assert_eq!(
            read("42", &DataType::Int64),
            Some(ScalarValue::Int64(Some(42)))
        );
        assert_eq!(
            read("(-1.5)", &DataType::Float64),
            Some(ScalarValue::Float64(Some(-1.5)))
        );
        assert_eq!(
            read("true", &DataType::Boolean),
            Some(ScalarValue::Boolean(Some(true)))
        );
        assert_eq!(
            read("'2024-02-29'::date", &DataType::Date32),
            Some(ScalarValue::Date32(Some(19782)))
        );
        assert_eq!(
            read("cast('2024-02-29' as date)", &DataType::Date32),
            Some(ScalarValue::Date32(Some(19782)))
        );
        assert!(read("cast(now() as date)", &DataType::Date32).is_none());
        assert!(read("nextval('t_id_seq'::regclass)", &DataType::Int64).is_none());
        assert!(read("now()", &DataType::Timestamp(TimeUnit::Microsecond, None)).is_none());
        assert!(read("'\\x00'::bytea", &DataType::Binary).is_none());
        assert_eq!(
            constant_default(
                "'\\'; x\\\\y'",
                &DataType::Utf8,
                DefaultQuoting::BackslashEscapes
            ),
            Some(ScalarValue::Utf8(Some("'; x\\y".into())))
        );
    }
}
