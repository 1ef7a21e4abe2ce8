//! TLS certificates chosen by SNI, ALPN (RFC 7443), TLS 1.2 and 1.3, and certificates
//! reloaded when their files change, against the server actors in process on 127.0.0.1.
//!
//! Two self-signed certificates from rcgen: A for `a.example.test` (the first pair, so
//! the default) and B for `*.b.example.test`. Clients are tokio-rustls ones that accept
//! any certificate and look at which one they were given, and floe's own TurnClient,
//! which verifies B by name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use floe::Transport;
use floe_actors::config::ServeConfig;
use floe_actors::metrics::Metrics;
use floe_actors::turn::client::{ClientEvent, TlsOptions, TlsRoots};
use floe_actors::turn::{ServerHandle, TurnClient, TurnClientConfig, TurnClientEvent, TurnServer};
use rustls::pki_types::ServerName;
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use tokio::net::TcpStream;

use floe_actors::turn::client::AcceptAnyCertificate;

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
/// Bounds every wait; only a hang reaches it.
const WAIT: Duration = Duration::from_secs(30);

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "floe-turn-server-tls-sni-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate: its DER and PEM, and its key's PEM.
struct Cert {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
}

fn cert(names: &[&str]) -> Cert {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    Cert {
        der: ck.cert.der().to_vec(),
        pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

/// Writes `text` to `path` as a renewal does: a new file renamed over the old one.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes `cert` to `NAME.pem` and `NAME.key` in `dir`; returns the paths.
fn write(dir: &Path, name: &str, cert: &Cert) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    replace_file(&c, &cert.pem);
    replace_file(&k, &cert.key_pem);
    (c, k)
}

struct Fixture {
    server: ServerHandle,
    tls_addr: SocketAddr,
    dir: TempDir,
    a: Cert,
    b: Cert,
}

/// A server on 127.0.0.1 with the pairs A (default) and B, watching them every second.
async fn start(name: &str) -> Fixture {
    let dir = TempDir::new(name);
    let (a, b) = (cert(&["a.example.test"]), cert(&["*.b.example.test"]));
    let (a_cert, a_key) = write(&dir.0, "a", &a);
    let (b_cert, b_key) = write(&dir.0, "b", &b);
    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_cert = vec![a_cert, b_cert];
    config.tls_key = vec![a_key, b_key];
    config.tls_watch_interval = 1;
    config.users = vec![format!("{USER}:{PASSWORD}").parse().unwrap()];
    config.allow_loopback_peers = true;
    config.threads = 1;
    config.validate().unwrap();
    let server = TurnServer::start(&config, Metrics::new()).await.unwrap();
    let tls_addr = server.tls_local_addrs()[0];
    Fixture {
        server,
        tls_addr,
        dir,
        a,
        b,
    }
}

/// How a test client says hello.
struct Hello<'a> {
    sni: Option<&'a str>,
    alpn: &'a [&'a [u8]],
    versions: &'a [&'static SupportedProtocolVersion],
}

impl Default for Hello<'_> {
    fn default() -> Self {
        Hello {
            sni: None,
            alpn: &[],
            versions: rustls::DEFAULT_VERSIONS,
        }
    }
}

/// What the client got from the handshake.
#[derive(Debug)]
struct Handshake {
    cert: Vec<u8>,
    alpn: Option<Vec<u8>>,
    version: Option<ProtocolVersion>,
}

async fn handshake(addr: SocketAddr, hello: Hello<'_>) -> Result<Handshake, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(hello.versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = hello.alpn.iter().map(|p| p.to_vec()).collect();
    // Without SNI the name is only used for verification, which AcceptAnyCertificate skips.
    config.enable_sni = hello.sni.is_some();
    let name = ServerName::try_from(hello.sni.unwrap_or("no-sni.test").to_owned()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let run = async {
        let tcp = TcpStream::connect(addr).await?;
        let tls = connector.connect(name, tcp).await?;
        let conn = tls.get_ref().1;
        Ok(Handshake {
            cert: conn.peer_certificates().unwrap()[0].to_vec(),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
        })
    };
    tokio::time::timeout(WAIT, run)
        .await
        .expect("the handshake hangs")
}

async fn cert_for(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let hello = Hello {
        sni,
        ..Hello::default()
    };
    handshake(addr, hello).await.expect("handshake").cert
}

#[actix_rt::test]
async fn the_sni_picks_the_certificate_and_the_first_is_the_default() {
    let f = start("sni").await;
    let a = f.a.der.as_slice();
    let b = f.b.der.as_slice();
    assert_eq!(cert_for(f.tls_addr, Some("a.example.test")).await, a);
    assert_eq!(cert_for(f.tls_addr, Some("A.EXAMPLE.test")).await, a);
    assert_eq!(cert_for(f.tls_addr, Some("x.b.example.test")).await, b);
    assert_eq!(
        cert_for(f.tls_addr, Some("y.x.b.example.test")).await,
        a,
        "a wildcard covers one label"
    );
    assert_eq!(cert_for(f.tls_addr, Some("unknown.example.test")).await, a);
    assert_eq!(cert_for(f.tls_addr, None).await, a, "no SNI");
    f.server.shutdown().await;
}

#[actix_rt::test]
async fn alpn_is_stun_turn_and_optional_and_tls_1_2_and_1_3_both_connect() {
    let f = start("alpn").await;
    let with = |alpn| Hello {
        sni: Some("a.example.test"),
        alpn,
        ..Hello::default()
    };
    let h = handshake(f.tls_addr, with(&[b"stun.turn"])).await.unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"stun.turn"[..]));
    assert_eq!(h.version, Some(ProtocolVersion::TLSv1_3));
    let h = handshake(f.tls_addr, with(&[b"h2", b"stun.nat-discovery"]))
        .await
        .unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"stun.nat-discovery"[..]));
    let h = handshake(f.tls_addr, with(&[])).await.unwrap();
    assert_eq!(
        h.alpn, None,
        "no ALPN offered: none chosen, still connected"
    );
    // Only other protocols: no ALPN either, where plain rustls would send
    // no_application_protocol; coturn accepts such clients too.
    let h = handshake(f.tls_addr, with(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(h.alpn, None);

    let tls12 = Hello {
        versions: &[&rustls::version::TLS12],
        ..with(&[b"stun.turn"])
    };
    let h = handshake(f.tls_addr, tls12).await.unwrap();
    assert_eq!(h.version, Some(ProtocolVersion::TLSv1_2));
    assert_eq!(h.alpn.as_deref(), Some(&b"stun.turn"[..]));
    assert_eq!(h.cert, f.a.der);
    f.server.shutdown().await;
}

#[actix_rt::test]
async fn a_turn_client_verifying_the_wildcard_certificate_allocates_over_tls() {
    let f = start("allocate").await;
    let mut tls = TlsOptions::default();
    tls.server_name = Some("turn.b.example.test".into());
    tls.roots = TlsRoots::Pem(f.b.pem.clone().into_bytes());
    let config = TurnClientConfig::new(f.tls_addr, USER, PASSWORD).with_tls(tls);
    assert_eq!(config.transport(), Transport::Tls);
    let client = tokio::time::timeout(WAIT, TurnClient::connect(config))
        .await
        .expect("connect hangs")
        .expect("TLS connect with certificate B verified");
    let mut events = client.events();
    client.allocate().await.expect("allocate accepted");
    let relayed = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await.expect("the client is gone") {
                TurnClientEvent::Session(ClientEvent::Allocated { relayed, .. }) => return relayed,
                e @ (TurnClientEvent::Session(ClientEvent::Error { .. })
                | TurnClientEvent::ConnectionLost { .. }
                | TurnClientEvent::Closed) => panic!("allocate: {e:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("no Allocated in time");
    assert_eq!(relayed.len(), 1);
    assert!(relayed[0].ip().is_loopback());
    client.close().await;
    f.server.shutdown().await;
}

/// Polls until the certificate served for `sni` is `want`; false if it never is.
async fn served_becomes(addr: SocketAddr, sni: &str, want: &[u8]) -> bool {
    tokio::time::timeout(WAIT, async {
        while cert_for(addr, Some(sni)).await != want {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .is_ok()
}

#[actix_rt::test]
async fn replaced_files_are_served_and_a_broken_replacement_keeps_the_old_ones() {
    let f = start("watch").await;
    let metrics = f.server.metrics().clone();

    // A renewal of A: new files renamed over the old ones.
    let renewed = cert(&["a.example.test"]);
    write(&f.dir.0, "a", &renewed);
    assert!(
        served_becomes(f.tls_addr, "a.example.test", &renewed.der).await,
        "the renewed certificate is never served"
    );
    assert_eq!(
        cert_for(f.tls_addr, Some("x.b.example.test")).await,
        f.b.der
    );
    assert!(metrics.snapshot().tls_reloads[0] >= 1);

    // A broken renewal of B (its key does not match): counted, and B stays.
    let errors = metrics.snapshot().tls_reloads[1];
    replace_file(&f.dir.0.join("b.key"), &cert(&["other.test"]).key_pem);
    tokio::time::timeout(WAIT, async {
        while metrics.snapshot().tls_reloads[1] == errors {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the broken files are never looked at");
    assert_eq!(
        cert_for(f.tls_addr, Some("x.b.example.test")).await,
        f.b.der
    );
    assert_eq!(cert_for(f.tls_addr, None).await, renewed.der);
    let text = metrics.render_prometheus();
    assert!(
        text.contains("floe_tls_reloads_total{result=\"error\"}"),
        "{text}"
    );

    // Fixed: the pair loads again.
    replace_file(&f.dir.0.join("b.key"), &f.b.key_pem);
    let b2 = cert(&["*.b.example.test"]);
    write(&f.dir.0, "b", &b2);
    assert!(
        served_becomes(f.tls_addr, "x.b.example.test", &b2.der).await,
        "the repaired pair is never served"
    );
    f.server.shutdown().await;
}
