//! TLS for client connections: rustls (ring provider) with the certificate
//! chain and private key named by `[server] tls_cert` / `tls_key`.
//!
//! Clients ask for TLS with PostgreSQL's SSLRequest (`sslmode=require`,
//! `verify-full`, …) or, from PostgreSQL 17 clients, directly
//! (`sslnegotiation=direct`, which needs the `postgresql` ALPN protocol).

use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::engine::config::TlsFiles;
use crate::engine::error::{KoiosError, Result};

/// Loads the certificate and key; every error names the file.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let named = |path: &Path, what: &str, error: &dyn std::fmt::Display| {
        KoiosError::Config(format!("server.{what}: {}: {error}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| named(&files.cert, "tls_cert", &e))?;
    if certs.is_empty() {
        return Err(named(
            &files.cert,
            "tls_cert",
            &"no PEM certificate in the file",
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| named(&files.key, "tls_key", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
    .map_err(|e| {
        KoiosError::Config(format!(
            "server.tls_cert/tls_key ({}, {}): {e}",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
