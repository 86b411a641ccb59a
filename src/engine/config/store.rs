//! The `[server]` keys of Koios's own catalog: `metadata` (where the
//! metadata store is: a SQLite file, by default `data_dir/koios.db`, or a
//! `postgres://` URL) and `health_interval` (how often each source is
//! checked). Every error names the file, the line and the key.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::{ServerConfig, expand};
use crate::engine::error::{KoiosError, Result};
use crate::engine::metadata::MetadataLocation;
use crate::engine::timeout::parse_statement_timeout;

/// The shortest health interval accepted.
const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(100);

/// Sets `server.metadata` and `server.health_interval` from the raw keys
/// (after `data_dir`, which the default store lives in); `at` makes an
/// error pointing at a key's line.
pub(super) fn parse_keys(
    server: &mut ServerConfig,
    metadata: Option<Spanned<String>>,
    health_interval: Option<Spanned<String>>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    at: &dyn Fn(Range<usize>, &str, String) -> KoiosError,
) -> Result<()> {
    server.metadata = match metadata {
        Some(location) => {
            let value = expand(location.get_ref(), env)
                .map_err(|m| at(location.span(), "server.metadata", m))?;
            if value.trim().is_empty() {
                return Err(at(
                    location.span(),
                    "server.metadata",
                    "must be a file path or a postgres:// URL".into(),
                ));
            }
            MetadataLocation::parse(&value, base_dir)
        }
        None => MetadataLocation::default_in(&server.data_dir),
    };
    if let Some(interval) = health_interval {
        let value = expand(interval.get_ref(), env)
            .map_err(|m| at(interval.span(), "server.health_interval", m))?;
        let parsed = parse_statement_timeout(&value)
            .ok()
            .flatten()
            .filter(|d| *d >= MIN_HEALTH_INTERVAL);
        server.health_interval = parsed.ok_or_else(|| {
            at(
                interval.span(),
                "server.health_interval",
                format!("'{value}' is not a duration of at least 100ms like \"10s\""),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::engine::config::Config;
    use crate::engine::metadata::MetadataLocation;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/koios/k.toml"), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn metadata_and_health_interval() {
        let config = parse("[server]\ndata_dir = \"/d\"\n").expect("valid");
        assert_eq!(
            config.server.metadata,
            MetadataLocation::Sqlite("/d/koios.db".into())
        );
        assert_eq!(config.server.health_interval, Duration::from_secs(10));
        let config = parse("[server]\nmetadata = \"meta.db\"\nhealth_interval = \"1500ms\"\n")
            .expect("valid");
        assert_eq!(
            config.server.metadata,
            MetadataLocation::Sqlite("/etc/koios/meta.db".into())
        );
        assert_eq!(config.server.health_interval, Duration::from_millis(1500));
        let config = parse("[server]\nmetadata = \"postgres://u@h/meta\"\n").expect("valid");
        assert_eq!(
            config.server.metadata,
            MetadataLocation::Postgres("postgres://u@h/meta".into())
        );
        let err = parse("[server]\n\nhealth_interval = \"soon\"\n").expect_err("bad");
        assert!(
            err.contains("k.toml:3: key 'server.health_interval'") && err.contains("'soon'"),
            "{err}"
        );
        let err = parse("[server]\nhealth_interval = \"5ms\"\n").expect_err("too short");
        assert!(err.contains("at least 100ms"), "{err}");
        let err = parse("[server]\nmetadata = \"\"\n").expect_err("empty");
        assert!(err.contains("server.metadata"), "{err}");
    }
}
