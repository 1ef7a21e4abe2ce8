//! TLS for STUN and TURN on port 5349 (RFC 8489 §6.2.3, RFC 8656 §3.1): the rustls
//! server configuration from a PEM certificate chain and key, and the handshake that
//! turns an accepted TCP stream into a decrypted one.
//!
//! rustls runs on the `ring` provider; PEM files are parsed with rustls' own
//! `pki-types`. TLS 1.2 and 1.3 are offered (coturn's clients and most WebRTC stacks
//! still speak 1.2).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("TLS certificate {}: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        source: pem::Error,
    },
    /// The key file could not be read or holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[error("TLS private key {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        source: pem::Error,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported
    /// key type ...).
    #[error("TLS certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// Loads a PEM certificate chain (leaf first) and its private key into a rustls server
/// configuration.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_err = |source| TlsError::Certificate {
        path: cert.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(cert_err(pem::Error::NoItemsFound));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let config_err = |source| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(config_err)?
    .with_no_client_auth()
    .with_single_cert(chain, private_key)
    .map_err(config_err)?;
    Ok(Arc::new(config))
}

/// Loads the certificate and key as [`load_server_config`] and wraps them in an acceptor.
pub fn load_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    load_server_config(cert, key).map(TlsAcceptor::from)
}

/// A TLS acceptor that a reload may replace: connections accepted from then on get the
/// new certificate, those open keep theirs.
#[derive(Clone)]
pub struct SharedAcceptor(Arc<RwLock<TlsAcceptor>>);

impl SharedAcceptor {
    /// Shares `acceptor`.
    pub fn new(acceptor: TlsAcceptor) -> Self {
        SharedAcceptor(Arc::new(RwLock::new(acceptor)))
    }

    /// The acceptor for the next connection.
    pub fn current(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the acceptor for the connections to come.
    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
    }
}

/// Runs the server side of the handshake on an accepted connection, giving up after
/// [`HANDSHAKE_TIMEOUT`]. An error here concerns this connection only.
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("floe-tls-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_self_signed_pair_loads() {
        let dir = TempDir::new("ok");
        let (cert, key) = self_signed(&dir.0);
        load_server_config(&cert, &key).unwrap();
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = TempDir::new("bad");
        let (cert, key) = self_signed(&dir.0);
        let missing = dir.0.join("missing.pem");
        let err = load_server_config(&missing, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        // A key where the certificate should be: no certificate in it.
        let err = load_server_config(&key, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");

        // A certificate where the key should be: no key in it.
        let err = load_server_config(&cert, &cert).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");

        // A key that does not belong to the certificate.
        let other = rcgen::KeyPair::generate().unwrap();
        let other_key = dir.0.join("other.pem");
        std::fs::write(&other_key, other.serialize_pem()).unwrap();
        let err = load_server_config(&cert, &other_key).unwrap_err();
        assert!(matches!(err, TlsError::Config { .. }), "{err}");
    }
}
