//! The configuration file (`koios.toml`) and the embedded default.
//!
//! ```toml
//! startup_sql = ["CREATE VIEW koios.public.big_orders AS SELECT ..."]
//!
//! [server]
//! listen = "127.0.0.1:5433"
//! memory_limit = "2GiB"
//! batch_size = 8192
//! dynamic_filter_max_keys = 10000   # join keys sent to the other side's scan
//!
//! [[source]]
//! name = "demo"
//! kind = "files"
//! url = "./data/demo"      # relative paths are relative to this file
//! ```
//!
//! `${VAR}` anywhere in a string value is replaced by the environment variable
//! `VAR` (`$${` writes a literal `${`), so secrets stay out of the file. Every
//! error names the file, the line and the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use koios_connector::SourceSpec;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{KoiosError, Result};

/// Default listen address: PostgreSQL's own 5432 is never used.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";

/// Fully validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub sources: Vec<SourceSpec>,
    pub startup_sql: Vec<String>,
    /// Where the file came from, for messages; `None` for the embedded default.
    pub origin: Option<PathBuf>,
}

/// The `[server]` table.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Upper bound of memory used by query execution, in bytes.
    pub memory_limit: Option<usize>,
    /// Rows per Arrow record batch.
    pub batch_size: usize,
    /// Most distinct join keys of a hash join's small side sent into the
    /// other side's scan (remote SQL `IN (…)`); beyond it only their range.
    pub dynamic_filter_max_keys: usize,
    /// Where generated data (the demo) is kept.
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            memory_limit: None,
            batch_size: 8192,
            dynamic_filter_max_keys: 10_000,
            data_dir: default_data_dir(),
        }
    }
}

/// `$KOIOS_DATA_DIR`, else `~/.local/share/koios`, else `./koios-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KOIOS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HOME") {
        return Path::new(&home).join(".local/share/koios");
    }
    PathBuf::from("koios-data")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    startup_sql: Vec<Spanned<String>>,
    #[serde(default)]
    source: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    memory_limit: Option<Spanned<toml::Value>>,
    batch_size: Option<Spanned<i64>>,
    dynamic_filter_max_keys: Option<Spanned<i64>>,
    data_dir: Option<Spanned<String>>,
}

impl Config {
    /// The embedded default: the TPC-H demo source under the data directory.
    pub fn embedded_default() -> Config {
        let server = ServerConfig::default();
        let demo_dir = server.data_dir.join("demo");
        Config {
            sources: vec![demo_source(&demo_dir)],
            server,
            startup_sql: Vec::new(),
            origin: None,
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KoiosError::io(format!("cannot read {}", path.display()), e))?;
        Self::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses configuration text; `env` resolves `${VAR}` references.
    pub fn parse(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let file = path.display().to_string();
        let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
            KoiosError::Config(format!(
                "{file}:{}: key '{key}': {msg}",
                line_of(text, span.start)
            ))
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            match line {
                Some(line) => KoiosError::Config(format!("{file}:{line}: {}", e.message())),
                None => KoiosError::Config(format!("{file}: {}", e.message())),
            }
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();

        let mut server = ServerConfig::default();
        if let Some(s) = raw.server {
            if let Some(listen) = s.listen {
                let value = expand(listen.get_ref(), env)
                    .map_err(|m| at(listen.span(), "server.listen", m))?;
                server.listen = value.parse().map_err(|_| {
                    at(
                        listen.span(),
                        "server.listen",
                        format!("'{value}' is not HOST:PORT (e.g. 127.0.0.1:5433)"),
                    )
                })?;
            }
            if let Some(limit) = s.memory_limit {
                server.memory_limit = Some(
                    parse_size(limit.get_ref(), env)
                        .map_err(|m| at(limit.span(), "server.memory_limit", m))?,
                );
            }
            if let Some(batch) = s.batch_size {
                let value = *batch.get_ref();
                if !(1..=1_000_000).contains(&value) {
                    return Err(at(
                        batch.span(),
                        "server.batch_size",
                        format!("must be between 1 and 1000000, got {value}"),
                    ));
                }
                server.batch_size = value as usize;
            }
            if let Some(keys) = s.dynamic_filter_max_keys {
                let value = *keys.get_ref();
                if !(0..=1_000_000).contains(&value) {
                    return Err(at(
                        keys.span(),
                        "server.dynamic_filter_max_keys",
                        format!("must be between 0 and 1000000, got {value}"),
                    ));
                }
                server.dynamic_filter_max_keys = value as usize;
            }
            if let Some(dir) = s.data_dir {
                let value =
                    expand(dir.get_ref(), env).map_err(|m| at(dir.span(), "server.data_dir", m))?;
                server.data_dir = base_dir.join(value);
            }
        }

        let mut startup_sql = Vec::new();
        for sql in raw.startup_sql {
            startup_sql
                .push(expand(sql.get_ref(), env).map_err(|m| at(sql.span(), "startup_sql", m))?);
        }

        let mut sources: Vec<SourceSpec> = Vec::new();
        for entry in raw.source {
            let span = entry.span();
            let mut fields = entry.into_inner();
            let mut take_string = |key: &str| -> Result<String> {
                let value = fields.remove(key).ok_or_else(|| {
                    at(span.clone(), &format!("source.{key}"), "is required".into())
                })?;
                let span = value.span();
                match value.into_inner() {
                    toml::Value::String(s) => {
                        expand(&s, env).map_err(|m| at(span, &format!("source.{key}"), m))
                    }
                    other => Err(at(
                        span,
                        &format!("source.{key}"),
                        format!("must be a string, got {}", other.type_str()),
                    )),
                }
            };
            let name = take_string("name")?;
            let kind = take_string("kind")?;
            let url = take_string("url")?;
            if !is_identifier(&name) {
                return Err(at(
                    span,
                    "source.name",
                    format!("'{name}' must be a lower-case identifier ([a-z_][a-z0-9_]*)"),
                ));
            }
            if name == crate::engine::KOIOS_CATALOG {
                return Err(at(
                    span,
                    "source.name",
                    "'koios' is the built-in catalog".into(),
                ));
            }
            if sources.iter().any(|s| s.name == name) {
                return Err(at(
                    span,
                    "source.name",
                    format!("duplicate source name '{name}'"),
                ));
            }
            let mut options = BTreeMap::new();
            for (key, value) in fields {
                let vspan = value.span();
                let value = expand_value(value.into_inner(), env)
                    .map_err(|m| at(vspan, &format!("source.{key}"), m))?;
                options.insert(key, value);
            }
            let url = resolve_local_url(&url, &base_dir);
            sources.push(SourceSpec {
                name,
                kind,
                url,
                options,
            });
        }

        Ok(Config {
            server,
            sources,
            startup_sql,
            origin: Some(path.to_path_buf()),
        })
    }
}

/// The spec of the embedded TPC-H demo source.
pub fn demo_source(dir: &Path) -> SourceSpec {
    SourceSpec {
        name: "demo".into(),
        kind: "demo".into(),
        url: format!("file://{}", absolute(dir).display()),
        options: BTreeMap::new(),
    }
}

impl Config {
    /// Sets the scale factor of every `demo` source.
    pub fn with_demo_scale_factor(mut self, scale_factor: f64) -> Self {
        for source in self.sources.iter_mut().filter(|s| s.kind == "demo") {
            source
                .options
                .insert("scale_factor".into(), toml::Value::Float(scale_factor));
        }
        self
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A URL without a scheme is a local path, relative to the config file.
fn resolve_local_url(url: &str, base_dir: &Path) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("file://{}", absolute(&base_dir.join(url)).display())
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Replaces `${VAR}` with the variable's value; `$${` stays a literal `${`.
fn expand(
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

fn expand_value(
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
fn parse_size(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "p@ss".to_string())
    }

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/koios/koios.toml"), &env)
    }

    #[test]
    fn parses_full_config() {
        let cfg = parse(
            r#"
startup_sql = ["CREATE VIEW v AS SELECT 1"]
[server]
listen = "0.0.0.0:6543"
memory_limit = "1GiB"
batch_size = 1024
dynamic_filter_max_keys = 500

[[source]]
name = "pg"
kind = "postgres"
url = "postgres://u:${SECRET}@h/db"
pool_size = 4
"#,
        )
        .expect("valid");
        assert_eq!(cfg.server.listen.port(), 6543);
        assert_eq!(cfg.server.memory_limit, Some(1 << 30));
        assert_eq!(cfg.server.batch_size, 1024);
        assert_eq!(cfg.server.dynamic_filter_max_keys, 500);
        let err = parse("\n[server]\ndynamic_filter_max_keys = -1\n")
            .expect_err("negative")
            .to_string();
        assert!(err.contains("dynamic_filter_max_keys"), "{err}");
        assert_eq!(cfg.sources[0].url, "postgres://u:p@ss@h/db");
        assert_eq!(cfg.sources[0].options["pool_size"], toml::Value::Integer(4));
        assert_eq!(cfg.startup_sql.len(), 1);
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let cfg = parse("[[source]]\nname='d'\nkind='files'\nurl='data'\n").expect("valid");
        assert_eq!(cfg.sources[0].url, "file:///etc/koios/data");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = parse("\n[server]\nbatch_size = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/koios/koios.toml:3"), "{err}");
        assert!(err.contains("server.batch_size"), "{err}");

        let err = parse("[[source]]\nname='x'\nkind='files'\nurl='${NOPE}'\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":4:") && err.contains("NOPE") && err.contains("source.url"),
            "{err}"
        );

        let err = parse("[server]\nlisten = 5\n").unwrap_err().to_string();
        assert!(err.contains(":2"), "{err}");

        let err = parse("[[source]]\nname='x'\nkind='files'\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source.url") && err.contains("required"),
            "{err}"
        );
    }

    #[test]
    fn expansion_rules() {
        assert_eq!(expand("a$${b}", &env).unwrap(), "a${b}");
        assert_eq!(expand("$x ${SECRET}", &env).unwrap(), "$x p@ss");
        assert!(expand("${SECRET", &env).is_err());
    }
}
