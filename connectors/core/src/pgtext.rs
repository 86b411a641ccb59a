//! PostgreSQL's text output of scalar values (PostgreSQL 15, default
//! settings: `DateStyle = ISO`, `IntervalStyle = postgres`,
//! `extra_float_digits = 1`).
//!
//! Shared by the pgwire front end, which renders Arrow values with them, and
//! by connectors that write a server's values straight into text rows: both
//! must print a value identically.

use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;

/// Result rows already written as Koios writes them to a client: each item
/// is the body of one `DataRow` message after its field count — every
/// value as a big-endian `i32` length and its text or binary form, or `-1`
/// for NULL. A connector yields these when a whole query is one remote
/// query whose values it can write directly, skipping Arrow.
pub type DataRowStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = datafusion::error::Result<bytes::BytesMut>> + Send>,
>;

/// Starts a [`DataRowStream`], given for each column whether the client
/// reads it in binary (the formats are known only when a client asks).
pub type StartDataRows = Box<dyn FnOnce(Vec<bool>) -> DataRowStream + Send>;

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `float8` output: shortest round-trip digits, exponent outside [-4, 15).
pub fn format_f64(v: f64) -> String {
    format_float(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        || format!("{v:e}"),
        15,
    )
}

/// `float4` output: shortest round-trip digits, exponent outside [-4, 6).
pub fn format_f32(v: f32) -> String {
    format_float(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        || format!("{v:e}"),
        6,
    )
}

fn format_float(
    nan: bool,
    infinite: bool,
    negative: bool,
    scientific: impl Fn() -> String,
    max_exp: i32,
) -> String {
    if nan {
        return "NaN".into();
    }
    if infinite {
        return if negative {
            "-Infinity".into()
        } else {
            "Infinity".into()
        };
    }
    // Rust's `{:e}` yields the shortest digits that round-trip: "-1.2345e-7".
    let sci = scientific();
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits == "0" {
        return format!("{sign}0");
    }
    if (-4..max_exp).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else if exp + 1 >= n {
            format!("{sign}{digits}{}", "0".repeat((exp + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{sign}{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let mantissa = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

fn write_year(out: &mut String, year: i32) {
    // PostgreSQL has no year 0: astronomical year 0 is 1 BC.
    let shown = if year <= 0 { 1 - year } else { year };
    let _ = write!(out, "{shown:04}");
}

fn bc_suffix(out: &mut String, year: i32) {
    if year <= 0 {
        out.push_str(" BC");
    }
}

/// `date` output for days since 1970-01-01.
pub fn format_date(days: i64) -> String {
    let mut out = String::with_capacity(10);
    match i32::try_from(days)
        .ok()
        .and_then(|d| d.checked_add(UNIX_EPOCH_DAYS_FROM_CE))
        .and_then(NaiveDate::from_num_days_from_ce_opt)
    {
        Some(date) => {
            write_year(&mut out, date.year());
            let _ = write!(out, "-{:02}-{:02}", date.month(), date.day());
            bc_suffix(&mut out, date.year());
        }
        None => out.push_str(if days < 0 { "-infinity" } else { "infinity" }),
    }
    out
}

fn write_fraction(out: &mut String, micros: u32) {
    if micros > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// `time` output for microseconds since midnight.
pub fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    write_fraction(&mut out, frac);
    out
}

fn naive_from_micros(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|d| d.naive_utc())
}

fn write_naive(out: &mut String, dt: &NaiveDateTime, micros: u32) {
    write_year(out, dt.year());
    let _ = write!(
        out,
        "-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    write_fraction(out, micros);
}

/// `timestamp` output for microseconds since the Unix epoch.
pub fn format_timestamp(micros: i64) -> String {
    let mut out = String::with_capacity(26);
    match naive_from_micros(micros) {
        Some(dt) => {
            write_naive(&mut out, &dt, micros.rem_euclid(1_000_000) as u32);
            bc_suffix(&mut out, dt.year());
        }
        None => out.push_str(if micros < 0 { "-infinity" } else { "infinity" }),
    }
    out
}

/// `timestamptz` output: the instant shown in `tz`, with its UTC offset.
pub fn format_timestamptz(micros: i64, tz: &Tz) -> String {
    let mut out = String::with_capacity(32);
    let Some(utc) = naive_from_micros(micros) else {
        return if micros < 0 {
            "-infinity".into()
        } else {
            "infinity".into()
        };
    };
    let offset = tz.offset_from_utc_datetime(&utc).fix().local_minus_utc();
    let local = utc + chrono::Duration::seconds(offset as i64);
    write_naive(&mut out, &local, micros.rem_euclid(1_000_000) as u32);
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.abs();
    let _ = write!(out, "{sign}{:02}", abs / 3600);
    if abs % 3600 != 0 {
        let _ = write!(out, ":{:02}", (abs / 60) % 60);
        if abs % 60 != 0 {
            let _ = write!(out, ":{:02}", abs % 60);
        }
    }
    bc_suffix(&mut out, local.year());
    out
}

/// `interval` output (`IntervalStyle = postgres`), e.g. `1 year 2 mons -3 days +04:05:06.5`.
pub fn format_interval(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        let _ = write!(
            out,
            "{}{}{value} {unit}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            if value != 1 { "s" } else { "" }
        );
        is_before = value < 0;
        is_zero = false;
    };
    part(&mut out, (months / 12) as i64, "year");
    part(&mut out, (months % 12) as i64, "mon");
    part(&mut out, days as i64, "day");
    if is_zero || micros != 0 {
        let minus = micros < 0;
        let abs = micros.unsigned_abs();
        let secs = abs / 1_000_000;
        let _ = write!(
            out,
            "{}{}{:02}:{:02}:{:02}",
            if is_zero { "" } else { " " },
            if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        write_fraction(&mut out, (abs % 1_000_000) as u32);
    }
    out
}

/// Lower-case hex with PostgreSQL's `\x` prefix.
pub fn format_bytea(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
