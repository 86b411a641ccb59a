//! SCRAM-SHA-256 (RFC 5802, RFC 7677) on the server side, as PostgreSQL does it.
//!
//! Users are kept as SCRAM verifiers only ([`ScramVerifier`], in the
//! engine's credentials). pgwire's own SCRAM code needs the salted password
//! itself, which a verifier does not contain; hence this small
//! implementation.
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`) is not offered; clients that could
//! bind say so (`y`), which is accepted as PostgreSQL does when it does not
//! offer binding either.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::engine::credentials::{
    ScramVerifier, constant_time_eq, hmac_sha256, random_bytes, sha256,
};

/// The mechanism name announced to clients.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message does not follow the protocol.
    Malformed(&'static str),
    /// The proof does not match: wrong password (or unknown user).
    WrongProof,
}

/// The server's state after answering the client-first message.
#[derive(Debug)]
pub struct ScramExchange {
    verifier: ScramVerifier,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// Answers a client-first message: returns the server-first message and the
/// state to check the client's proof with.
pub fn server_first(
    client_first: &[u8],
    verifier: ScramVerifier,
) -> Result<(String, ScramExchange), ScramError> {
    let message =
        std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: cbind-flag "," [authzid] ","
    let mut parts = message.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    let bare = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(ScramError::Malformed(
                "channel binding was not offered by the server",
            ));
        }
        _ => return Err(ScramError::Malformed("invalid channel binding flag")),
    }
    if !authzid.is_empty() {
        return Err(ScramError::Malformed(
            "an authorization identity is not supported",
        ));
    }
    // client-first-message-bare: [reserved-mext ","] username "," nonce ["," ext]
    // The user name is the one of the startup message, as in PostgreSQL.
    let mut fields = bare.split(',');
    let mut field = fields.next().unwrap_or_default();
    if field.starts_with("m=") {
        return Err(ScramError::Malformed(
            "mandatory extensions are not supported",
        ));
    }
    if !field.starts_with("n=") {
        return Err(ScramError::Malformed("no user name attribute"));
    }
    field = fields.next().unwrap_or_default();
    let client_nonce = field
        .strip_prefix("r=")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or(ScramError::Malformed("no valid nonce"))?;

    let nonce = format!("{client_nonce}{}", BASE64.encode(random_bytes::<18>()));
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&verifier.salt),
        verifier.iterations
    );
    Ok((
        server_first.clone(),
        ScramExchange {
            verifier,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        },
    ))
}

impl ScramExchange {
    /// Checks the client-final message; on success returns the server-final
    /// message (which proves to the client that the server knew the verifier).
    pub fn server_final(&self, client_final: &[u8]) -> Result<String, ScramError> {
        let message =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // client-final-message-without-proof "," proof
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding attribute"))?;
        if binding != BASE64.encode(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("channel binding does not match"));
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        if proof.len() != 32 {
            return Err(ScramError::Malformed("proof has the wrong length"));
        }

        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let client_signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&sha256(&client_key), &self.verifier.stored_key) {
            return Err(ScramError::WrongProof);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::pbkdf2;

    /// A client side of the exchange, as RFC 5802 describes it.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> String {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = &fields[0][2..];
        let salt = BASE64.decode(&fields[1][2..]).expect("salt");
        let iterations: u32 = fields[2][2..].parse().expect("iterations");
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations).expect("positive"),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_sha256(&sha256(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", BASE64.encode(proof))
    }

    fn login(verifier: ScramVerifier, password: &str) -> Result<String, ScramError> {
        let bare = "n=,r=rOprNGfwEbeRWgbNEkqO";
        let (first, exchange) = server_first(format!("n,,{bare}").as_bytes(), verifier)?;
        exchange.server_final(client_final(password, bare, &first).as_bytes())
    }

    #[test]
    fn matches_postgresql_verifiers() {
        // PostgreSQL 15: SET password_encryption = 'scram-sha-256';
        // CREATE ROLE r PASSWORD 'pencil'; SELECT rolpassword FROM pg_authid …
        let from_postgres = "SCRAM-SHA-256$4096:vuOqja/MVYGZ6gK+WcoIag==$\
             ieky1+nzbb2Bhe3Q5bMMFx2vTcI6m6SVhlP5bNXnlks=:Z9pw0r4mmQ7/nyxieAppY1uXc3OrWJcPi2ZFGf/bKP4=";
        let parsed = ScramVerifier::parse(from_postgres).expect("parses");
        assert_eq!(parsed.to_string(), from_postgres);
        let salt = BASE64.decode("vuOqja/MVYGZ6gK+WcoIag==").expect("salt");
        assert_eq!(
            ScramVerifier::from_password_with("pencil", &salt, 4096),
            parsed
        );
        assert!(login(parsed.clone(), "pencil").is_ok());
        assert_eq!(login(parsed, "Pencil"), Err(ScramError::WrongProof));
    }

    #[test]
    fn accepts_the_right_password_only() {
        let verifier = ScramVerifier::from_password("s3cret");
        assert!(login(verifier.clone(), "s3cret").is_ok());
        assert_eq!(
            login(verifier.clone(), "wrong"),
            Err(ScramError::WrongProof)
        );
        let parsed = ScramVerifier::parse(&verifier.to_string()).expect("parses");
        assert!(login(parsed, "s3cret").is_ok());
        let secret = ScramVerifier::mock_secret();
        assert_eq!(
            login(ScramVerifier::mock("nobody", &secret), ""),
            Err(ScramError::WrongProof)
        );
        // The mock salt is stable per user, so it reveals nothing.
        assert_eq!(
            ScramVerifier::mock("nobody", &secret).salt,
            ScramVerifier::mock("nobody", &secret).salt
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let verifier = ScramVerifier::from_password("x");
        for bad in [
            &b""[..],
            b"n",
            b"n,,",
            b"x,,n=,r=abc",
            b"p=tls-server-end-point,,n=,r=abc",
            b"n,a=bob,n=,r=abc",
            b"n,,m=ext,n=,r=abc",
            b"n,,n=,r=",
            b"\xff\xfe",
        ] {
            assert!(matches!(
                server_first(bad, verifier.clone()),
                Err(ScramError::Malformed(_))
            ));
        }
        let (_, exchange) = server_first(b"n,,n=,r=abc", verifier).expect("valid first");
        for bad in [
            &b""[..],
            b"c=biws",
            b"c=biws,r=abc,p=AAAA",
            b"c=eSws,r=abc,p=AAAA",
            b"c=biws,p=!!",
        ] {
            assert!(matches!(
                exchange.server_final(bad),
                Err(ScramError::Malformed(_))
            ));
        }
    }

    #[test]
    fn verifier_errors_do_not_echo_the_input() {
        for bad in [
            "SCRAM-SHA-256$4096:c2FsdA==$secretstuff",
            "SCRAM-SHA-256$x:c2FsdA==$a:b",
            "SCRAM-SHA-256$4096:c2FsdA==$YQ==:YQ==",
        ] {
            let err = ScramVerifier::parse(bad).expect_err("invalid");
            assert!(
                !err.contains("secretstuff") && !err.contains("c2FsdA"),
                "{err}"
            );
        }
        assert!(format!("{:?}", ScramVerifier::from_password("p")).contains("redacted"));
    }
}
