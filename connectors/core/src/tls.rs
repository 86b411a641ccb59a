//! The `tls` / `tls_ca_file` options every network connector shares, with
//! libpq's `sslmode` meanings so one vocabulary works for all backends:
//! `disable` (plain), `prefer` (TLS when the server offers it, certificate not
//! checked), `require` (TLS, certificate not checked) and `verify-full` (TLS,
//! chain checked against `tls_ca_file` and the host name checked).
//!
//! [`TlsOptions`] is an [`OptionGroup`] a connector's options embed.

use serde::Deserialize;

use crate::options::{NoGroup, OptionGroup};

/// The `tls` option's values, spelled as libpq's `sslmode` (`verify-full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

/// The two TLS options of a source, as written (`mode` is `None` when absent,
/// so a connector can fall back to what its URL says).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    #[serde(rename = "tls", default)]
    pub mode: Option<TlsMode>,
    #[serde(rename = "tls_ca_file", default)]
    pub ca_file: Option<String>,
}

impl OptionGroup for TlsOptions {
    type Embedded = NoGroup;

    fn embed(&mut self, _: NoGroup) {}

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.mode == Some(TlsMode::VerifyFull) && self.ca_file.is_none() {
            return Err((
                "tls",
                "\"verify-full\" needs tls_ca_file (a PEM file of trusted certificates)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceSpec;

    fn spec(options: &str) -> SourceSpec {
        SourceSpec::from_toml("db", "mysql", options).expect("toml")
    }

    #[test]
    fn parses_modes_and_refuses_verify_full_without_a_ca() {
        let parsed: TlsOptions = spec("tls = \"require\"")
            .parse_option_group()
            .expect("valid");
        assert_eq!(parsed.mode, Some(TlsMode::Require));
        let parsed: TlsOptions = spec("tls = \"verify-full\"\ntls_ca_file = \"/ca.pem\"")
            .parse_option_group()
            .expect("valid");
        assert_eq!(parsed.mode, Some(TlsMode::VerifyFull));
        assert_eq!(parsed.ca_file.as_deref(), Some("/ca.pem"));
        let parsed: TlsOptions = spec("").parse_option_group().expect("valid");
        assert_eq!(parsed, TlsOptions::default());
        for (written, mode) in [("disable", TlsMode::Disable), ("prefer", TlsMode::Prefer)] {
            let parsed: TlsOptions = spec(&format!("tls = \"{written}\""))
                .parse_option_group()
                .expect("valid");
            assert_eq!(parsed.mode, Some(mode));
        }

        let err = spec("tls = \"verify-full\"")
            .parse_option_group::<TlsOptions>()
            .expect_err("no CA");
        assert!(
            err.to_string().contains(
                "source 'db' (kind mysql): option 'tls': \"verify-full\" needs tls_ca_file"
            ),
            "{err}"
        );
        let err = spec("tls = \"maybe\"")
            .parse_option_group::<TlsOptions>()
            .expect_err("bad mode");
        assert!(
            err.to_string().contains("option 'tls': unknown variant `maybe`, expected one of `disable`, `prefer`, `require`, `verify-full`"),
            "{err}"
        );
        let err = spec("tls_ca_file = 3")
            .parse_option_group::<TlsOptions>()
            .expect_err("bad type");
        assert!(
            err.to_string()
                .contains("option 'tls_ca_file': invalid type: integer `3`"),
            "{err}"
        );
    }
}
