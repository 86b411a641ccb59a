//! `statement_timeout`: its values, parsed the way PostgreSQL does.
//!
//! A number without a unit is milliseconds; `us`, `ms`, `s`, `min`, `h` and
//! `d` are accepted with optional white space before them (`'50ms'`, `'2 s'`,
//! `'1min'`, `'1.5s'`); `0` disables the timeout. The timer itself lives in
//! the front end's query canceller (`crate::pg::server::cancel`): when it
//! fires, the query's cancellation token fires too, and the client is told
//! `canceling statement due to statement timeout` (SQLSTATE 57014).

use std::time::Duration;

/// PostgreSQL's upper bound for the setting (`INT_MAX` milliseconds).
const MAX_MILLIS: f64 = i32::MAX as f64;

/// Parses a `statement_timeout` value: `None` means no timeout.
pub fn parse_statement_timeout(value: &str) -> Result<Option<Duration>, String> {
    let text = value.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    let invalid = || {
        format!(
            "invalid value for parameter \"statement_timeout\": \"{text}\" \
             (valid units are \"us\", \"ms\", \"s\", \"min\", \"h\" and \"d\")"
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit = match unit.trim_start() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(invalid()),
    };
    // PostgreSQL rounds a fractional result to whole milliseconds.
    let millis = (number * millis_per_unit).round();
    if !(0.0..=MAX_MILLIS).contains(&millis) {
        return Err(format!(
            "{} is outside the valid range for parameter \"statement_timeout\" (0 .. {})",
            millis,
            i32::MAX
        ));
    }
    Ok((millis > 0.0).then(|| Duration::from_millis(millis as u64)))
}

#[cfg(test)]
mod tests {
    use super::parse_statement_timeout as parse;
    use std::time::Duration;

    #[test]
    fn values_as_postgresql_reads_them() {
        let ms = |n| Ok(Some(Duration::from_millis(n)));
        assert_eq!(parse("50"), ms(50));
        assert_eq!(parse("50ms"), ms(50));
        assert_eq!(parse(" 2s "), ms(2_000));
        assert_eq!(parse("2 s"), ms(2_000));
        assert_eq!(parse("1.5s"), ms(1_500));
        assert_eq!(parse("1min"), ms(60_000));
        assert_eq!(parse("1h"), ms(3_600_000));
        assert_eq!(parse("1d"), ms(86_400_000));
        assert_eq!(parse("2500us"), ms(3));
        assert_eq!(parse("0"), Ok(None));
        assert_eq!(parse("0s"), Ok(None));
        assert_eq!(parse("DEFAULT"), Ok(None));
        for bad in ["abc", "10 parsecs", "5S", "-1", "1e99", "ms", "--5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
