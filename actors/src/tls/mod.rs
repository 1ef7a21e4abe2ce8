//! TLS for STUN and TURN on port 5349 (RFC 8489 §6.2.3, RFC 8656 §3.1): the rustls
//! server configuration from PEM certificate chains and keys, and the handshake that
//! turns an accepted TCP stream into a decrypted one.
//!
//! - rustls runs on the `ring` provider; PEM files are parsed with rustls' own
//!   `pki-types`. TLS 1.2 and 1.3 are offered (coturn's clients and most WebRTC stacks
//!   still speak 1.2).
//! - Several certificate and key pairs may be given: the client's SNI picks the one
//!   whose certificate names it ([`SniResolver`]), the first is served otherwise.
//! - ALPN (RFC 7443): `stun.turn` and `stun.nat-discovery` are offered. ALPN is optional
//!   for TURN clients, so a client offering none connects, and so does one offering only
//!   other protocols (`h2`, `http/1.1`): it gets no protocol rather than rustls'
//!   `no_application_protocol` alert, as with coturn. The ClientHello is read first
//!   ([`tokio_rustls::LazyConfigAcceptor`]) to choose a configuration with or without
//!   ALPN.
//! - The files can be reloaded while running ([`SharedTls`]): on a reload, and when the
//!   file watcher sees them change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::Acceptor;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

mod sni;
mod watch;

pub use sni::SniResolver;
pub use watch::{LoadedTls, SharedTls};

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
    /// No certificate and key were given.
    #[error("TLS needs at least one certificate and key")]
    NoCertificate,
}

/// One `tls-cert` and its `tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// A PEM certificate chain (leaf first) and its PEM private key.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        TlsFiles { cert, key }
    }

    /// The certificate chain file.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The private key file.
    pub fn key(&self) -> &Path {
        &self.key
    }
}

/// The ALPN protocol ids of STUN and TURN over (D)TLS (RFC 7443), in our order of
/// preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"stun.turn", b"stun.nat-discovery"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads one certificate chain and its private key, checking that they belong together.
pub fn load_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = (files.cert(), files.key());
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
    CertifiedKey::from_der(chain, private_key, provider).map_err(|source| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// The server side of TLS: one rustls configuration offering the STUN ALPN ids, one
/// without ALPN for clients that offer only other protocols; both serve the
/// certificates of one [`SniResolver`].
#[derive(Debug)]
pub struct TlsServer {
    alpn: Arc<ServerConfig>,
    no_alpn: Arc<ServerConfig>,
}

impl TlsServer {
    /// Loads every pair (the first is the default certificate).
    pub fn load(files: &[TlsFiles]) -> Result<Self, TlsError> {
        let provider = provider();
        let keys = files
            .iter()
            .map(|f| load_certified_key(f, &provider).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let resolver = Arc::new(SniResolver::new(keys).ok_or(TlsError::NoCertificate)?);
        let config = |alpn: bool| -> Result<Arc<ServerConfig>, TlsError> {
            let mut config = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|source| TlsError::Config {
                    cert: files[0].cert.clone(),
                    key: files[0].key.clone(),
                    source,
                })?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
            if alpn {
                config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
            }
            Ok(Arc::new(config))
        };
        Ok(TlsServer {
            alpn: config(true)?,
            no_alpn: config(false)?,
        })
    }

    /// The configuration for a client that offered `alpn` (the protocol ids of its
    /// ClientHello, `None` without the extension): the one with ALPN unless the client
    /// offered only protocols other than ours.
    pub fn config_for<'a>(
        &self,
        alpn: Option<impl Iterator<Item = &'a [u8]>>,
    ) -> Arc<ServerConfig> {
        match alpn {
            Some(mut offered) => {
                if offered.any(|p| ALPN_PROTOCOLS.contains(&p)) {
                    self.alpn.clone()
                } else {
                    self.no_alpn.clone()
                }
            }
            None => self.alpn.clone(),
        }
    }

    /// The configuration offering ALPN, e.g. for a `TlsAcceptor` of one's own.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.alpn.clone()
    }
}

/// Loads the pairs as [`TlsServer::load`] and returns the configuration with ALPN.
pub fn load_server_config(files: &[TlsFiles]) -> Result<Arc<ServerConfig>, TlsError> {
    TlsServer::load(files).map(|s| s.config())
}

/// Runs the server side of the handshake on an accepted connection, giving up after
/// [`HANDSHAKE_TIMEOUT`]. An error here concerns this connection only.
pub async fn accept(
    server: &TlsServer,
    stream: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    let handshake = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
        let config = server.config_for(start.client_hello().alpn());
        start.into_stream(config).await
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
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

    fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
        load_server_config(&[TlsFiles::new(cert.to_owned(), key.to_owned())])
    }

    #[test]
    fn a_self_signed_pair_loads_with_the_stun_alpn_ids() {
        let dir = TempDir::new("ok");
        let (cert, key) = self_signed(&dir.0);
        let config = load(&cert, &key).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"stun.turn".to_vec(), b"stun.nat-discovery".to_vec()]
        );
        assert!(matches!(
            TlsServer::load(&[]).unwrap_err(),
            TlsError::NoCertificate
        ));
    }

    #[test]
    fn alpn_is_offered_unless_the_client_wants_only_other_protocols() {
        let dir = TempDir::new("alpn");
        let (cert, key) = self_signed(&dir.0);
        let server = TlsServer::load(&[TlsFiles::new(cert, key)]).unwrap();
        let with = |offered: Option<&[&[u8]]>| {
            !server
                .config_for(offered.map(|o| o.iter().copied()))
                .alpn_protocols
                .is_empty()
        };
        assert!(with(None), "no ALPN extension");
        assert!(with(Some(&[b"stun.turn"])));
        assert!(with(Some(&[b"h2", b"stun.nat-discovery"])));
        assert!(!with(Some(&[b"h2", b"http/1.1"])), "no overlap: no ALPN");
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = TempDir::new("bad");
        let (cert, key) = self_signed(&dir.0);
        let missing = dir.0.join("missing.pem");
        let err = load(&missing, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        // A key where the certificate should be: no certificate in it.
        let err = load(&key, &key).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err}");

        // A certificate where the key should be: no key in it.
        let err = load(&cert, &cert).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err}");

        // A key that does not belong to the certificate.
        let other = rcgen::KeyPair::generate().unwrap();
        let other_key = dir.0.join("other.pem");
        std::fs::write(&other_key, other.serialize_pem()).unwrap();
        let err = load(&cert, &other_key).unwrap_err();
        assert!(matches!(err, TlsError::Config { .. }), "{err}");

        // A bad second pair fails the whole set, naming its files.
        let pairs = [
            TlsFiles::new(cert.clone(), key.clone()),
            TlsFiles::new(cert.clone(), other_key.clone()),
        ];
        let err = TlsServer::load(&pairs).unwrap_err();
        assert!(err.to_string().contains("other.pem"), "{err}");
    }
}
