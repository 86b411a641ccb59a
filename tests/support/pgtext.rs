//! Turns binary-format values received by a client back into PostgreSQL's
//! text form, so the same `.slt` expectations check both result formats.
//!
//! The decoding of the wire bytes is written here independently of the
//! server; only the final text rendering of decoded primitives (float digits,
//! interval layout) reuses Koios's text module, which the text-format runs pin.

use koios::pgtypes::text::{
    format_bytea, format_date, format_f32, format_f64, format_interval, format_time,
    format_timestamp, format_timestamptz,
};
use postgres_types::{FromSql, Type};

const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i64 = 10_957;

/// Raw bytes of one column, whatever its type.
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn be<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], String> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("value too short: {} bytes", b.len()))
}

fn exact(b: &[u8], n: usize, ty: &Type) -> Result<(), String> {
    if b.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{} value has {} bytes, expected {n}",
            ty.name(),
            b.len()
        ))
    }
}

/// The text PostgreSQL would send for a binary value of type `ty`.
pub fn binary_to_text(ty: &Type, b: &[u8]) -> Result<String, String> {
    Ok(match *ty {
        Type::BOOL => {
            exact(b, 1, ty)?;
            if b[0] != 0 { "t".into() } else { "f".into() }
        }
        Type::INT2 => {
            exact(b, 2, ty)?;
            i16::from_be_bytes(be(b, 0)?).to_string()
        }
        Type::INT4 => {
            exact(b, 4, ty)?;
            i32::from_be_bytes(be(b, 0)?).to_string()
        }
        Type::INT8 => {
            exact(b, 8, ty)?;
            i64::from_be_bytes(be(b, 0)?).to_string()
        }
        Type::FLOAT4 => {
            exact(b, 4, ty)?;
            format_f32(f32::from_be_bytes(be(b, 0)?))
        }
        Type::FLOAT8 => {
            exact(b, 8, ty)?;
            format_f64(f64::from_be_bytes(be(b, 0)?))
        }
        Type::NUMERIC => numeric_text(b)?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
            String::from_utf8(b.to_vec()).map_err(|e| e.to_string())?
        }
        Type::BYTEA => format_bytea(b),
        Type::DATE => {
            exact(b, 4, ty)?;
            format_date(i32::from_be_bytes(be(b, 0)?) as i64 + PG_EPOCH_DAYS)
        }
        Type::TIME => {
            exact(b, 8, ty)?;
            format_time(i64::from_be_bytes(be(b, 0)?))
        }
        Type::TIMESTAMP => {
            exact(b, 8, ty)?;
            format_timestamp(i64::from_be_bytes(be(b, 0)?) + PG_EPOCH_MICROS)
        }
        Type::TIMESTAMPTZ => {
            exact(b, 8, ty)?;
            let utc = koios::engine::settings::parse_time_zone("UTC").ok_or("no UTC zone")?;
            format_timestamptz(i64::from_be_bytes(be(b, 0)?) + PG_EPOCH_MICROS, &utc)
        }
        Type::INTERVAL => {
            exact(b, 16, ty)?;
            format_interval(
                i32::from_be_bytes(be(b, 12)?),
                i32::from_be_bytes(be(b, 8)?),
                i64::from_be_bytes(be(b, 0)?),
            )
        }
        Type::RECORD => record_text(b)?,
        _ => match ty.kind() {
            postgres_types::Kind::Array(element) => array_text(element, b)?,
            _ => return Err(format!("no binary decoder for type {}", ty.name())),
        },
    })
}

/// Independent decoder of numeric_send: base-10000 digit groups.
fn numeric_text(b: &[u8]) -> Result<String, String> {
    let ndigits = i16::from_be_bytes(be(b, 0)?) as usize;
    let weight = i16::from_be_bytes(be(b, 2)?) as i64;
    let sign = u16::from_be_bytes(be(b, 4)?);
    let dscale = u16::from_be_bytes(be(b, 6)?) as usize;
    if b.len() != 8 + 2 * ndigits {
        return Err("numeric length mismatch".into());
    }
    if sign == 0xC000 {
        return Ok("NaN".into());
    }
    let digit = |i: i64| -> Result<i64, String> {
        if i < 0 || i as usize >= ndigits {
            Ok(0)
        } else {
            Ok(i16::from_be_bytes(be(b, 8 + 2 * i as usize)?) as i64)
        }
    };
    let mut int = String::new();
    for pos in 0..=weight.max(-1) {
        let d = digit(pos)?;
        if int.is_empty() {
            if d != 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut pos = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(pos)?));
        pos += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(if dscale > 0 {
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}{int}")
    })
}

fn quote_element(text: &str, specials: &[char], force: bool, double: bool) -> String {
    if !force
        && !text.is_empty()
        && !text.chars().any(|c| {
            specials.contains(&c) || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
        })
    // ASCII white space, as PostgreSQL
    {
        return text.to_string();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push(if double { c } else { '\\' });
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn array_text(element: &Type, b: &[u8]) -> Result<String, String> {
    let ndim = i32::from_be_bytes(be(b, 0)?) as usize;
    if ndim == 0 {
        return Ok("{}".into());
    }
    let mut at = 12;
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        dims.push(i32::from_be_bytes(be(b, at)?) as usize);
        at += 8;
    }
    let mut elements = Vec::new();
    let total: usize = dims.iter().product();
    for _ in 0..total {
        let len = i32::from_be_bytes(be(b, at)?);
        at += 4;
        if len < 0 {
            elements.push("NULL".to_string());
        } else {
            let bytes = b
                .get(at..at + len as usize)
                .ok_or("array element out of bounds")?;
            at += len as usize;
            let text = binary_to_text(element, bytes)?;
            let force = text.eq_ignore_ascii_case("null");
            elements.push(quote_element(
                &text,
                &['{', '}', '"', '\\', ','],
                force,
                false,
            ));
        }
    }
    fn nest(dims: &[usize], items: &mut std::slice::Iter<'_, String>) -> String {
        let mut parts = Vec::with_capacity(dims[0]);
        for _ in 0..dims[0] {
            if dims.len() == 1 {
                parts.push(items.next().cloned().unwrap_or_default());
            } else {
                parts.push(nest(&dims[1..], items));
            }
        }
        format!("{{{}}}", parts.join(","))
    }
    Ok(nest(&dims, &mut elements.iter()))
}

fn record_text(b: &[u8]) -> Result<String, String> {
    let n = i32::from_be_bytes(be(b, 0)?) as usize;
    let mut at = 4;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let oid = u32::from_be_bytes(be(b, at)?);
        let len = i32::from_be_bytes(be(b, at + 4)?);
        at += 8;
        if len < 0 {
            parts.push(String::new());
            continue;
        }
        let bytes = b
            .get(at..at + len as usize)
            .ok_or("record field out of bounds")?;
        at += len as usize;
        let ty = Type::from_oid(oid).ok_or_else(|| format!("unknown oid {oid} in record"))?;
        let text = binary_to_text(&ty, bytes)?;
        parts.push(quote_element(
            &text,
            &['"', '\\', '(', ')', ','],
            false,
            true,
        ));
    }
    Ok(format!("({})", parts.join(",")))
}
