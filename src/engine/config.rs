//! The configuration file (`koios.toml`) and the embedded default.
//!
//! ```toml
//! startup_sql = ["CREATE VIEW koios.public.big_orders AS SELECT ..."]
//!
//! [server]
//! listen = "127.0.0.1:5433"
//! memory_limit = "2GiB"
//! batch_size = 8192
//! dynamic_filter_max_keys = 50000   # join keys sent to the other side's scan as an IN list
//! max_connections = 100    # one more client gets FATAL 53300 "sorry, too many clients already"
//! tls_cert = "server.pem"  # PEM certificate chain; with tls_key, clients may use TLS
//! tls_key = "server.key"   # PEM private key (PKCS#8, PKCS#1 or SEC1)
//! tls_required = false     # true: plain-text connections get FATAL 28000
//! metadata = "koios.db"    # Koios's own store: a SQLite file (default: data_dir/koios.db)
//!                          # or "postgres://…" (a database several servers share)
//! health_interval = "10s"  # how often each source's health is checked
//! admin_listen = "127.0.0.1:9433"  # /health, /ready, /sources, /metrics; "" disables
//! admin_token = "${KOIOS_ADMIN_TOKEN}"  # bearer token; required off loopback
//!
//! [[user]]                 # with users, every client authenticates with SCRAM-SHA-256
//! name = "alice"
//! password = "${ALICE_PASSWORD}"
//! admin = true             # may create, alter and drop sources
//! # or PostgreSQL's verifier form (from pg_authid.rolpassword or `koios hash-password`):
//! # password = "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"
//!
//! [[source]]
//! name = "demo"
//! kind = "files"
//! url = "./data/demo"      # relative paths are relative to this file
//!
//! [[table]]                # a striped table (engine::logical), see config/tables.rs
//! name = "events"
//! columns = ["id bigint PRIMARY KEY", "kind text"]
//! striped = "hash"
//! key = "id"
//! members = ["pg.public.events", "my.app.events"]
//! ```
//!
//! `${VAR}` anywhere in a string value is replaced by the environment variable
//! `VAR` (`$${` writes a literal `${`), so secrets stay out of the file. Every
//! error names the file, the line and the key, and never a password.
//!
//! Users: a cleartext `password` is hashed into a SCRAM verifier (random salt,
//! 4096 iterations) when the file is read and then forgotten; a value starting
//! with `SCRAM-SHA-256$` is taken as a verifier. Without any `[[user]]`, Koios
//! accepts password-less connections from loopback only and refuses to listen
//! on any other address. `tls_cert`/`tls_key` are relative to this file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use koios_connector::SourceSpec;
use serde::Deserialize;
use toml::Spanned;

use crate::engine::credentials::{AdminToken, ScramVerifier};

mod admin;
mod store;
mod tables;
mod values;

use crate::engine::error::{KoiosError, Result};
use crate::engine::metadata::MetadataLocation;
pub use tables::{Copies as DeclaredCopies, DeclaredStriping, TableSpec};
use values::parse_size;
pub(crate) use values::{expand, expand_value};

/// Default listen address: PostgreSQL's own 5432 is never used.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
/// Default address of the admin HTTP endpoint.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9433";

/// Fully validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub sources: Vec<SourceSpec>,
    pub startup_sql: Vec<String>,
    /// Logical tables declared with `[[table]]`.
    pub tables: Vec<TableSpec>,
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
    /// Most client connections served at once.
    pub max_connections: usize,
    /// Certificate chain and private key for TLS; `None`: plain text only.
    pub tls: Option<TlsFiles>,
    /// Refuse connections that did not negotiate TLS.
    pub tls_required: bool,
    /// The `[[user]]` entries; empty: password-less, loopback only.
    pub users: Vec<UserConfig>,
    /// Where Koios keeps what it owns (sources created by SQL …).
    pub metadata: MetadataLocation,
    /// How often each source's health is checked.
    pub health_interval: std::time::Duration,
    /// Address of the admin HTTP endpoint; `None` (`admin_listen = ""`): off.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token every admin request must carry, if set (required when
    /// `admin_listen` is not a loopback address).
    pub admin_token: Option<AdminToken>,
}

/// Default of `[server] health_interval`.
pub const DEFAULT_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// PEM files of the server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One `[[user]]`: a name and the SCRAM verifier of its password.
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub name: String,
    pub verifier: ScramVerifier,
    /// May create, alter and drop sources and cancel others' statements.
    pub admin: bool,
}

/// Default of `[server] max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

impl Default for ServerConfig {
    fn default() -> Self {
        let data_dir = default_data_dir();
        Self {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            memory_limit: None,
            batch_size: 8192,
            dynamic_filter_max_keys: 50_000,
            metadata: MetadataLocation::default_in(&data_dir),
            data_dir,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            tls_required: false,
            users: Vec::new(),
            health_interval: DEFAULT_HEALTH_INTERVAL,
            admin_listen: Some(
                DEFAULT_ADMIN_LISTEN
                    .parse()
                    .expect("constant address parses"),
            ),
            admin_token: None,
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
    #[serde(default)]
    user: Vec<Spanned<RawUser>>,
    #[serde(default)]
    table: Vec<tables::RawTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    password: Spanned<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    memory_limit: Option<Spanned<toml::Value>>,
    batch_size: Option<Spanned<i64>>,
    dynamic_filter_max_keys: Option<Spanned<i64>>,
    data_dir: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    tls_required: Option<Spanned<bool>>,
    metadata: Option<Spanned<String>>,
    health_interval: Option<Spanned<String>>,
    admin_listen: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
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
            tables: Vec::new(),
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
            store::parse_keys(
                &mut server,
                s.metadata,
                s.health_interval,
                &base_dir,
                env,
                &at,
            )?;
            if let Some(max) = s.max_connections {
                let value = *max.get_ref();
                if !(1..=100_000).contains(&value) {
                    return Err(at(
                        max.span(),
                        "server.max_connections",
                        format!("must be between 1 and 100000, got {value}"),
                    ));
                }
                server.max_connections = value as usize;
            }
            let path = |key: &str, value: Option<Spanned<String>>| -> Result<Option<PathBuf>> {
                value
                    .map(|v| {
                        expand(v.get_ref(), env)
                            .map(|p| base_dir.join(p))
                            .map_err(|m| at(v.span(), key, m))
                    })
                    .transpose()
            };
            let cert = path("server.tls_cert", s.tls_cert)?;
            let key = path("server.tls_key", s.tls_key)?;
            server.tls = match (cert, key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                (Some(_), None) | (None, Some(_)) => {
                    return Err(KoiosError::Config(format!(
                        "{file}: keys 'server.tls_cert' and 'server.tls_key' go together"
                    )));
                }
            };
            if let Some(required) = s.tls_required {
                server.tls_required = *required.get_ref();
                if server.tls_required && server.tls.is_none() {
                    return Err(at(
                        required.span(),
                        "server.tls_required",
                        "needs server.tls_cert and server.tls_key".into(),
                    ));
                }
            }
            admin::parse_keys(&mut server, s.admin_listen, s.admin_token, env, &at)?;
        }

        for entry in raw.user {
            let span = entry.span();
            let user = entry.into_inner();
            let name = user.name.get_ref().clone();
            if name.is_empty() || name.contains('\0') {
                return Err(at(
                    user.name.span(),
                    "user.name",
                    "must be a non-empty name".into(),
                ));
            }
            if server.users.iter().any(|u| u.name == name) {
                return Err(at(span, "user.name", format!("duplicate user '{name}'")));
            }
            // Messages about the password never include its value.
            let pspan = user.password.span();
            let password = expand(user.password.get_ref(), env)
                .map_err(|m| at(pspan.clone(), "user.password", m))?;
            let verifier = if ScramVerifier::looks_like_verifier(&password) {
                ScramVerifier::parse(&password).map_err(|m| at(pspan, "user.password", m))?
            } else if password.is_empty() {
                return Err(at(pspan, "user.password", "must not be empty".into()));
            } else {
                ScramVerifier::from_password(&password)
            };
            server.users.push(UserConfig {
                name,
                verifier,
                admin: user.admin,
            });
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
            let mut option_lines = BTreeMap::new();
            for (key, value) in fields {
                let vspan = value.span();
                // The connector checks the option; its error points here.
                option_lines.insert(
                    key.clone(),
                    format!("{file}:{}", line_of(text, vspan.start)),
                );
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
                option_lines,
            });
        }

        let mut tables = Vec::with_capacity(raw.table.len());
        for table in raw.table {
            let at = |offset: usize| format!("{file}:{}", line_of(text, offset));
            tables.push(table.check(&at).map_err(KoiosError::Config)?);
        }

        Ok(Config {
            server,
            sources,
            startup_sql,
            tables,
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
        option_lines: BTreeMap::new(),
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
pub(crate) fn resolve_local_url(url: &str, base_dir: &Path) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("file://{}", absolute(&base_dir.join(url)).display())
    }
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
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
    fn security_keys() {
        let cfg = parse(
            r#"
[server]
max_connections = 7
tls_cert = "tls/server.pem"
tls_key = "/abs/server.key"
tls_required = true

[[user]]
name = "alice"
password = "${SECRET}"

[[user]]
name = "bob"
password = "SCRAM-SHA-256$4096:vuOqja/MVYGZ6gK+WcoIag==$ieky1+nzbb2Bhe3Q5bMMFx2vTcI6m6SVhlP5bNXnlks=:Z9pw0r4mmQ7/nyxieAppY1uXc3OrWJcPi2ZFGf/bKP4="
"#,
        )
        .expect("valid");
        assert_eq!(cfg.server.max_connections, 7);
        assert_eq!(
            cfg.server.tls,
            Some(TlsFiles {
                cert: PathBuf::from("/etc/koios/tls/server.pem"),
                key: PathBuf::from("/abs/server.key"),
            })
        );
        assert!(cfg.server.tls_required);
        let names: Vec<&str> = cfg.server.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(
            cfg.server.users[0].verifier,
            ScramVerifier::parse(&cfg.server.users[0].verifier.to_string()).expect("verifier")
        );
        // Nothing secret in Debug output.
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("ieky1"),
            "{debug}"
        );

        let defaults = parse("").expect("empty config");
        assert_eq!(defaults.server.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(defaults.server.users.is_empty() && defaults.server.tls.is_none());

        for (text, key) in [
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            ("[server]\ntls_cert = 'a.pem'\n", "server.tls_key"),
            ("[server]\ntls_required = true\n", "server.tls_required"),
            ("[[user]]\nname = ''\npassword = 'x'\n", "user.name"),
            ("[[user]]\nname = 'a'\npassword = ''\n", "user.password"),
            (
                "[[user]]\nname = 'a'\npassword = 'x'\n[[user]]\nname = 'a'\npassword = 'y'\n",
                "duplicate user",
            ),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = parse("[[user]]\nname = 'a'\npassword = 'SCRAM-SHA-256$hunter2'\n")
            .expect_err("bad verifier")
            .to_string();
        assert!(
            err.contains("user.password") && !err.contains("hunter2"),
            "{err}"
        );
        let err = parse("[[user]]\nname = 'a'\n")
            .expect_err("no password")
            .to_string();
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn expansion_rules() {
        assert_eq!(expand("a$${b}", &env).unwrap(), "a${b}");
        assert_eq!(expand("$x ${SECRET}", &env).unwrap(), "$x p@ss");
        assert!(expand("${SECRET", &env).is_err());
    }
}
