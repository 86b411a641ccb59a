//! The `[server]` keys of the admin HTTP endpoint: `admin_listen` (an
//! address, or `""` for none) and `admin_token` (kept only as a digest;
//! required when the address is not loopback). Every error names the file,
//! the line and the key, never the token.

use std::ops::Range;

use toml::Spanned;

use super::{AdminToken, ServerConfig, expand};
use crate::engine::error::{KoiosError, Result};

/// Sets `server.admin_listen` and `server.admin_token` from the raw keys;
/// `at` makes an error pointing at a key's line.
pub(super) fn parse_keys(
    server: &mut ServerConfig,
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    env: &dyn Fn(&str) -> Option<String>,
    at: &dyn Fn(Range<usize>, &str, String) -> KoiosError,
) -> Result<()> {
    if let Some(listen) = &listen {
        let value = expand(listen.get_ref(), env)
            .map_err(|m| at(listen.span(), "server.admin_listen", m))?;
        server.admin_listen = match value.trim() {
            "" => None,
            value => Some(value.parse().map_err(|_| {
                at(
                    listen.span(),
                    "server.admin_listen",
                    format!("'{value}' is not HOST:PORT (e.g. 127.0.0.1:9433) or \"\""),
                )
            })?),
        };
    }
    // Messages about the token never include its value.
    if let Some(token) = &token {
        let value =
            expand(token.get_ref(), env).map_err(|m| at(token.span(), "server.admin_token", m))?;
        if value.is_empty() {
            return Err(at(
                token.span(),
                "server.admin_token",
                "must not be empty".into(),
            ));
        }
        server.admin_token = Some(AdminToken::new(&value));
    }
    if let Some(addr) = server.admin_listen
        && server.admin_token.is_none()
        && !addr.ip().to_canonical().is_loopback()
    {
        let span = listen.as_ref().map_or(0..0, |l| l.span());
        return Err(at(
            span,
            "server.admin_token",
            format!(
                "is required when server.admin_listen ({addr}) is not a loopback \
                 address: set admin_token = \"${{KOIOS_ADMIN_TOKEN}}\""
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, DEFAULT_ADMIN_LISTEN};
    use crate::engine::error::Result;

    fn parse(text: &str) -> Result<Config> {
        let env = |name: &str| (name == "SECRET").then(|| "p@ss".to_string());
        Config::parse(text, Path::new("/etc/koios/koios.toml"), &env)
    }

    #[test]
    fn admin_keys() {
        let defaults = parse("").expect("empty config");
        assert_eq!(
            defaults.server.admin_listen,
            Some(DEFAULT_ADMIN_LISTEN.parse().expect("address"))
        );
        assert!(defaults.server.admin_token.is_none());
        let off = parse("[server]\nadmin_listen = ''\n").expect("disabled");
        assert_eq!(off.server.admin_listen, None);

        let cfg = parse("[server]\nadmin_listen = '0.0.0.0:9999'\nadmin_token = '${SECRET}'\n")
            .expect("token from the environment");
        assert_eq!(cfg.server.admin_listen.map(|a| a.port()), Some(9999));
        let token = cfg.server.admin_token.as_ref().expect("token");
        assert!(token.matches("p@ss") && !token.matches("p@s") && !token.matches(""));
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("p@ss"), "{debug}");

        // Off loopback, a token is required: the error names file, line, key.
        let err = parse("[server]\n\nadmin_listen = '0.0.0.0:9433'\n")
            .expect_err("no token")
            .to_string();
        assert!(
            err.contains("koios.toml:3") && err.contains("server.admin_token"),
            "{err}"
        );
        for (text, key) in [
            (
                "[server]\nadmin_listen = 'nowhere'\n",
                "server.admin_listen",
            ),
            ("[server]\nadmin_token = ''\n", "server.admin_token"),
            ("[server]\nadmin_token = '${NOPE}'\n", "server.admin_token"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(key) && err.contains(":2"), "{text}: {err}");
        }
        let err = parse("[server]\nadmin_listen = 'x'\nadmin_token = 'hunter2'\n")
            .expect_err("bad address")
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
