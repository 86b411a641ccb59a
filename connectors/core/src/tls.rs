//! The `tls` / `tls_ca_file` options every network connector shares, with
//! libpq's `sslmode` meanings so one vocabulary works for all backends:
//! `disable` (plain), `prefer` (TLS when the server offers it, certificate not
//! checked), `require` (TLS, certificate not checked) and `verify-full` (TLS,
//! chain checked against `tls_ca_file` and the host name checked).

use datafusion::error::{DataFusionError, Result};

use crate::SourceSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl TlsMode {
    pub fn parse(value: &str) -> Option<TlsMode> {
        Some(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }
}

/// The two TLS options of a source, as written (`mode` is `None` when absent,
/// so a connector can fall back to what its URL says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: Option<TlsMode>,
    pub ca_file: Option<String>,
}

impl TlsOptions {
    /// Option names, for the connector's list of known keys.
    pub const NAMES: &'static [&'static str] = &["tls", "tls_ca_file"];

    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        let mode = match spec.option_str("tls")? {
            None => None,
            Some(mode) => Some(TlsMode::parse(mode).ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "source '{}': option 'tls' must be \"disable\", \"prefer\", \"require\" or \"verify-full\"",
                    spec.name
                ))
            })?),
        };
        let ca_file = spec.option_str("tls_ca_file")?.map(str::to_string);
        if mode == Some(TlsMode::VerifyFull) && ca_file.is_none() {
            return Err(DataFusionError::Configuration(format!(
                "source '{}': tls = \"verify-full\" needs tls_ca_file (a PEM file of trusted certificates)",
                spec.name
            )));
        }
        Ok(Self { mode, ca_file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &str) -> SourceSpec {
        let options: toml::Table = toml::from_str(options).expect("toml");
        SourceSpec {
            name: "db".into(),
            kind: "mysql".into(),
            url: String::new(),
            options: options.into_iter().collect(),
        }
    }

    #[test]
    fn parses_modes_and_refuses_verify_full_without_a_ca() {
        let parsed = TlsOptions::from_spec(&spec("tls = \"require\"")).expect("valid");
        assert_eq!(parsed.mode, Some(TlsMode::Require));
        assert_eq!(TlsOptions::from_spec(&spec("")).expect("valid").mode, None);
        let err = TlsOptions::from_spec(&spec("tls = \"verify-full\"")).expect_err("no CA");
        assert!(
            err.to_string()
                .contains("source 'db': tls = \"verify-full\" needs tls_ca_file"),
            "{err}"
        );
        let err = TlsOptions::from_spec(&spec("tls = \"maybe\"")).expect_err("bad mode");
        assert!(err.to_string().contains("option 'tls' must be"), "{err}");
    }
}
