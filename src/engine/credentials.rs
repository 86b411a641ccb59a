//! Stored credentials of configured users: SCRAM-SHA-256 verifiers.
//!
//! Users are kept as SCRAM verifiers only (salt, iteration count, StoredKey
//! and ServerKey), in PostgreSQL's text form
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64), so a
//! configured cleartext password is hashed once at start and then dropped.
//! The exchange that checks a client against a verifier is the front end's
//! (`crate::pg::server::scram`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};

/// Iterations used when hashing a configured password (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
const PREFIX: &str = "SCRAM-SHA-256$";

/// What the server stores for one user. `Debug` never shows the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub(crate) iterations: u32,
    pub(crate) salt: Vec<u8>,
    pub(crate) stored_key: Vec<u8>,
    pub(crate) server_key: Vec<u8>,
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScramVerifier(<redacted>)")
    }
}

impl fmt::Display for ScramVerifier {
    /// PostgreSQL's text form (what `pg_authid.rolpassword` holds).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG failing is not something a server can work around.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    bytes
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Compares without an early exit, so timing says nothing about the contents.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The admin endpoint's bearer token (`[server] admin_token`). Only its
/// SHA-256 digest is kept, so the token itself is in no struct, log or
/// `Debug` output; requests are compared digest to digest in constant time
/// (equal lengths: the timing tells nothing of the token's length either).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: Vec<u8>,
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            digest: sha256(token.as_bytes()),
        }
    }

    /// Whether `given` (a request's bearer token) is this token.
    pub fn matches(&self, given: &str) -> bool {
        constant_time_eq(&sha256(given.as_bytes()), &self.digest)
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl ScramVerifier {
    /// Hashes a password with a fresh random salt.
    pub fn from_password(password: &str) -> ScramVerifier {
        Self::from_password_with(password, &random_bytes::<16>(), DEFAULT_ITERATIONS)
    }

    /// Hashes a password like PostgreSQL: SASLprep-normalised when possible,
    /// else the raw bytes.
    pub fn from_password_with(password: &str, salt: &[u8], iterations: u32) -> ScramVerifier {
        let normalized = stringprep::saslprep(password)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| password.to_string());
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
            salt,
            normalized.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramVerifier {
            iterations: iterations.max(1),
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Whether `text` is meant as a verifier (rather than a cleartext password).
    pub fn looks_like_verifier(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// Parses PostgreSQL's text form. The error never repeats the input.
    pub fn parse(text: &str) -> Result<ScramVerifier, String> {
        const SHAPE: &str = "is not a SCRAM verifier of the form \
             SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (base64)";
        let bad = || SHAPE.to_string();
        let rest = text.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        let decode = |s: &str| BASE64.decode(s).map_err(|_| bad());
        let verifier = ScramVerifier {
            iterations,
            salt: decode(salt)?,
            stored_key: decode(stored)?,
            server_key: decode(server)?,
        };
        if iterations == 0
            || verifier.salt.is_empty()
            || verifier.stored_key.len() != 32
            || verifier.server_key.len() != 32
        {
            return Err(bad());
        }
        Ok(verifier)
    }

    /// A verifier nobody can log in with, stable per user name and `secret`,
    /// used for unknown users so the exchange looks like a real one
    /// (PostgreSQL's "mock authentication").
    pub fn mock(user: &str, secret: &[u8]) -> ScramVerifier {
        let salt = hmac_sha256(secret, user.as_bytes());
        ScramVerifier {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..16].to_vec(),
            stored_key: random_bytes::<32>().to_vec(),
            server_key: random_bytes::<32>().to_vec(),
        }
    }

    /// A random key for [`ScramVerifier::mock`].
    pub fn mock_secret() -> Vec<u8> {
        random_bytes::<32>().to_vec()
    }
}
