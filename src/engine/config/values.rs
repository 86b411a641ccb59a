//! Values of the configuration as written: `${VAR}` references expanded
//! from the environment (`$${` writes a literal `${`), and sizes like
//! `"2GiB"`. Source options created by SQL are expanded the same way at
//! each connect.

/// Replaces `${VAR}` with the variable's value; `$${` stays a literal `${`.
pub(crate) fn expand(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${...} reference".to_string())?;
            let name = &body[..end];
            if name.is_empty() {
                return Err("empty ${} reference".into());
            }
            let resolved =
                env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&resolved);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand`] in every string of an option value (lists and tables too).
pub(crate) fn expand_value(
    value: toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<toml::Value, String> {
    Ok(match value {
        toml::Value::String(s) => toml::Value::String(expand(&s, env)?),
        toml::Value::Array(items) => toml::Value::Array(
            items
                .into_iter()
                .map(|v| expand_value(v, env))
                .collect::<std::result::Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut out = toml::Table::new();
            for (k, v) in table {
                out.insert(k, expand_value(v, env)?);
            }
            toml::Value::Table(out)
        }
        other => other,
    })
}

/// Parses `1073741824`, `"512MiB"`, `"2GiB"`, `"1.5G"`.
pub(super) fn parse_size(
    value: &toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<usize, String> {
    let text = match value {
        toml::Value::Integer(i) if *i > 0 => return Ok(*i as usize),
        toml::Value::String(s) => expand(s, env)?,
        other => {
            return Err(format!(
                "must be a size like \"2GiB\", got {}",
                other.type_str()
            ));
        }
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size like \"2GiB\""))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0_f64.powi(4),
        _ => return Err(format!("'{text}' has an unknown unit (use KiB, MiB, GiB)")),
    };
    let bytes = number * factor;
    if bytes < 1.0 {
        return Err(format!("'{text}' is too small"));
    }
    Ok(bytes as usize)
}
