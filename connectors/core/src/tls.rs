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
