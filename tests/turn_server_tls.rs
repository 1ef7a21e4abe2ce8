//! STUN and TURN over TLS (RFC 8489 §6.2.3, RFC 8656 §3.1) against the server actors,
//! in process on 127.0.0.1: a self-signed certificate from rcgen, a tokio-rustls client
//! that trusts only it, and a UDP echo as the peer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use floe::framing::{Frame, StreamFramer};
use floe::stun::attribute::{
    ErrorCode, Lifetime, Nonce, Realm, RequestedTransport, Username, XorMappedAddress,
    XorPeerAddress, XorRelayedAddress,
};
use floe::stun::{
    Class, IntegrityKey, Message, MessageEncoder, Method, PasswordAlgorithm, TransactionId,
};
use floe::transmit::Transport;
use floe::turn::{ChannelData, ChannelNumber};
use floe_actors::config::ServeConfig;
use floe_actors::metrics::Metrics;
use floe_actors::turn::{ServerHandle, TurnEvent, TurnServer};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[path = "support/mod.rs"]
mod support;
use support::TempDir;

const REALM: &str = "floe-tls-test";
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
const WAIT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 (UDP and TCP on one ephemeral port, TLS on another) with two
/// Arbiters sharing each port, and the certificate clients should trust.
struct Fixture {
    server: ServerHandle,
    tls_addr: SocketAddr,
    cert: CertificateDer<'static>,
    _dir: TempDir,
}

async fn start(name: &str) -> Fixture {
    start_with(name, |_| {}).await
}

/// As [`start`], with `tune` applied to the configuration first.
async fn start_with(name: &str, tune: impl FnOnce(&mut ServeConfig)) -> Fixture {
    let dir = TempDir::new(name);
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, ck.cert.pem()).unwrap();
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();

    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_cert = vec![cert_path];
    config.tls_key = vec![key_path];
    config.realm = REALM.into();
    config.users = vec![format!("{USER}:{PASSWORD}").parse().unwrap()];
    config.allow_loopback_peers = true;
    config.threads = 2;
    tune(&mut config);
    config.validate().unwrap();

    let server = TurnServer::start(&config, Metrics::new()).await.unwrap();
    let tls_addrs = server.tls_local_addrs().to_vec();
    assert_eq!(tls_addrs.len(), 1, "one TLS listener per address");
    assert_ne!(tls_addrs[0].port(), 0);
    assert_ne!(
        tls_addrs[0].port(),
        server.local_addrs()[0].port(),
        "TLS has its own port"
    );
    Fixture {
        server,
        tls_addr: tls_addrs[0],
        cert: ck.cert.der().clone(),
        _dir: dir,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(trusted: Option<&CertificateDer<'static>>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(cert) = trusted {
        roots.add(cert.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
}

/// A TURN client over one TLS connection.
struct Client {
    stream: TlsStream<TcpStream>,
    framer: StreamFramer,
    local: SocketAddr,
}

impl Client {
    async fn connect(f: &Fixture) -> Client {
        let tcp = TcpStream::connect(f.tls_addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let stream =
            tokio::time::timeout(WAIT, connector(Some(&f.cert)).connect(server_name(), tcp))
                .await
                .expect("handshake in time")
                .expect("handshake succeeds");
        Client {
            stream,
            framer: StreamFramer::new(),
            local,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    async fn recv(&mut self) -> Frame {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = self.framer.next_frame().unwrap() {
                return frame;
            }
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut buf))
                .await
                .expect("a frame in time")
                .unwrap();
            assert!(n > 0, "the server closed the connection");
            self.framer.push(&buf[..n]).unwrap();
        }
    }

    /// Sends a request and returns the response with its transaction id.
    async fn request(&mut self, bytes: Bytes) -> Message {
        let tid = Message::decode(bytes.clone()).unwrap().transaction_id();
        self.send(&bytes).await;
        loop {
            if let Frame::Stun(b) = self.recv().await {
                let m = Message::decode(b).unwrap();
                if m.transaction_id() == tid {
                    return m;
                }
            }
        }
    }
}

/// Long-term credentials learnt from a 401.
struct Auth {
    nonce: String,
    key: IntegrityKey,
}

/// Builds a request; with `auth`, signs it with USERNAME, REALM, NONCE and
/// MESSAGE-INTEGRITY (RFC 8489 §9.2.4).
fn request(method: Method, auth: Option<&Auth>, add: impl FnOnce(&mut MessageEncoder)) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(
        &mut buf,
        method.request(),
        TransactionId::random(&mut rand::thread_rng()),
    );
    add(&mut enc);
    if let Some(a) = auth {
        enc.add(&Username::new(USER))
            .add(&Realm::new(REALM))
            .add(&Nonce::new(a.nonce.clone()))
            .message_integrity(a.key.as_bytes());
    }
    enc.fingerprint();
    enc.finish().unwrap();
    buf.freeze()
}

fn error_code(m: &Message) -> Option<u16> {
    m.get::<ErrorCode>().map(|e| e.unwrap().code)
}

/// A peer that sends every datagram back, and reports where each came from.
async fn udp_echo() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<SocketAddr>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = tx.send(from);
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    (addr, rx)
}

/// Binding, the 401 challenge, and an authenticated Allocate over `client`; returns the
/// credentials and the relayed address.
async fn allocate(client: &mut Client) -> (Auth, SocketAddr) {
    let challenge = client
        .request(request(Method::ALLOCATE, None, |e| {
            e.add(&RequestedTransport(RequestedTransport::UDP));
        }))
        .await;
    assert_eq!(challenge.class(), Class::Error);
    assert_eq!(error_code(&challenge), Some(401));
    let realm = challenge.get::<Realm>().expect("REALM in the 401").unwrap();
    assert_eq!(realm.as_str(), REALM);
    let nonce = challenge.get::<Nonce>().expect("NONCE in the 401").unwrap();
    assert!(!nonce.as_str().is_empty());
    let auth = Auth {
        nonce: nonce.as_str().to_owned(),
        key: IntegrityKey::long_term(PasswordAlgorithm::Md5, USER, REALM, PASSWORD).unwrap(),
    };

    let allocated = client
        .request(request(Method::ALLOCATE, Some(&auth), |e| {
            e.add(&RequestedTransport(RequestedTransport::UDP));
        }))
        .await;
    assert_eq!(
        allocated.class(),
        Class::Success,
        "error {:?}",
        error_code(&allocated)
    );
    assert!(allocated.has_integrity());
    allocated.verify_integrity(auth.key.as_bytes()).unwrap();
    let relayed = allocated.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relayed.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let lifetime = allocated.get::<Lifetime>().unwrap().unwrap().0;
    assert!(lifetime > 0);
    (auth, relayed)
}

#[actix_rt::test]
async fn stun_and_turn_over_tls_relay_channel_data_to_a_udp_peer() {
    let f = start("relay").await;
    let mut events = f.server.events();
    let (peer, mut peer_saw) = udp_echo().await;
    let mut client = Client::connect(&f).await;

    // STUN Binding needs no credentials, and reflects the TCP source of the TLS connection.
    let binding = client.request(request(Method::BINDING, None, |_| {})).await;
    assert_eq!(binding.class(), Class::Success);
    assert_eq!(binding.method(), Method::BINDING);
    let mapped = binding.get::<XorMappedAddress>().unwrap().unwrap().0;
    assert_eq!(mapped, client.local);

    let (auth, relayed) = allocate(&mut client).await;

    // The allocation is a TLS one, on the TLS listener.
    let created = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(TurnEvent::AllocationCreated {
                five_tuple,
                username,
                relayed,
                ..
            }) = events.recv().await
            {
                return (five_tuple, username, relayed);
            }
        }
    })
    .await
    .expect("an AllocationCreated event");
    assert_eq!(created.0.transport, Transport::Tls);
    assert_eq!(created.0.client, client.local);
    assert_eq!(created.0.server, f.tls_addr);
    assert_eq!(created.1, USER);
    assert_eq!(created.2, vec![relayed]);

    let permission = client
        .request(request(Method::CREATE_PERMISSION, Some(&auth), |e| {
            e.add(&XorPeerAddress(peer));
        }))
        .await;
    assert_eq!(
        permission.class(),
        Class::Success,
        "error {:?}",
        error_code(&permission)
    );

    let bound = client
        .request(request(Method::CHANNEL_BIND, Some(&auth), |e| {
            e.add(&ChannelNumber::MIN).add(&XorPeerAddress(peer));
        }))
        .await;
    assert_eq!(
        bound.class(),
        Class::Success,
        "error {:?}",
        error_code(&bound)
    );

    // 13 bytes: the ChannelData is padded over TLS both ways (RFC 8656 §12.5).
    let channel = ChannelNumber::new(0x4000).unwrap();
    for payload in [&b"floe over tls"[..], &[0xAB; 1200][..]] {
        let mut out = BytesMut::new();
        ChannelData::new(channel, Bytes::copy_from_slice(payload))
            .unwrap()
            .encode(&mut out, true);
        client.send(&out).await;
        let back = loop {
            if let Frame::ChannelData(b) = client.recv().await {
                break ChannelData::decode(b).unwrap();
            }
        };
        assert_eq!(back.channel(), channel);
        assert_eq!(&back.data()[..], payload);
        let from = tokio::time::timeout(WAIT, peer_saw.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, relayed, "the peer hears from the relayed address");
    }
    let m = f.server.metrics().snapshot();
    assert_eq!((m.packets_to_peer, m.packets_to_client), (2, 2));
    assert_eq!(m.bytes_to_peer, 13 + 1200);
    assert_eq!(m.allocations_active, 1);

    // Closing the TLS connection ends its allocation (RFC 8656 §3.1).
    drop(client);
    let deleted = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(TurnEvent::Deleted { five_tuple }) = events.recv().await {
                return five_tuple;
            }
        }
    })
    .await
    .expect("a Deleted event");
    assert_eq!(deleted.transport, Transport::Tls);
    f.server.shutdown().await;
}

#[actix_rt::test]
async fn a_bad_handshake_costs_only_that_connection() {
    let f = start("bad-handshake").await;
    let (peer, _peer_saw) = udp_echo().await;
    let mut good = Client::connect(&f).await;
    let (auth, _) = allocate(&mut good).await;

    // Plain STUN on the TLS port: not a ClientHello, so the server hangs up.
    let mut plain = TcpStream::connect(f.tls_addr).await.unwrap();
    plain
        .write_all(&request(Method::BINDING, None, |_| {}))
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match plain.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a TLS alert, then the close
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server closes a connection that is not TLS"
    );

    // A client that does not trust the certificate aborts its handshake.
    let tcp = TcpStream::connect(f.tls_addr).await.unwrap();
    let refused = tokio::time::timeout(WAIT, connector(None).connect(server_name(), tcp))
        .await
        .unwrap();
    assert!(refused.is_err());

    // A client that connects and says nothing is only waiting for its own timeout.
    let _silent = TcpStream::connect(f.tls_addr).await.unwrap();

    // The established connection and its allocation are untouched ...
    let permission = good
        .request(request(Method::CREATE_PERMISSION, Some(&auth), |e| {
            e.add(&XorPeerAddress(peer));
        }))
        .await;
    assert_eq!(permission.class(), Class::Success);
    // ... and new TLS clients are served.
    let mut again = Client::connect(&f).await;
    let binding = again.request(request(Method::BINDING, None, |_| {})).await;
    assert_eq!(
        binding.get::<XorMappedAddress>().unwrap().unwrap().0,
        again.local
    );
    f.server.shutdown().await;
}

/// Waits until the server closes `stream` (EOF or reset), reading what it sends.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 512];
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[actix_rt::test]
async fn tls_connections_keep_to_the_caps_and_the_message_timeout() {
    let f = start_with("limits", |c| {
        c.max_tcp_per_ip = 2;
        c.tcp_message_timeout = 6;
    })
    .await;
    let metrics = f.server.metrics().clone();
    let mut talker = Client::connect(&f).await;
    allocate(&mut talker).await;
    let mut silent = Client::connect(&f).await;

    // A third connection from 127.0.0.1 is over the cap: reset before any handshake
    // (the reset may come before connect() returns on a busy machine).
    match TcpStream::connect(f.tls_addr).await {
        Ok(mut third) => assert!(
            closed_by_server(&mut third).await,
            "over the cap, left open"
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert_eq!(metrics.snapshot().tcp_refused_per_ip, 1);

    // The silent one is closed once the message timeout passes; the talker is not.
    assert!(
        closed_by_server(&mut silent.stream).await,
        "a silent TLS connection left open"
    );
    assert_eq!(metrics.snapshot().tcp_closed_timeout, 1);
    let binding = talker.request(request(Method::BINDING, None, |_| {})).await;
    assert_eq!(binding.class(), Class::Success);

    // Its slot is free again; HTTP inside TLS is not STUN and is closed at once.
    let mut http = Client::connect(&f).await;
    http.send(b"GET / HTTP/1.1\r\nHost: floe\r\n\r\n").await;
    assert!(
        closed_by_server(&mut http.stream).await,
        "HTTP over TLS left open"
    );
    assert_eq!(metrics.snapshot().tcp_closed_not_stun, 1);
    f.server.shutdown().await;
}

#[actix_rt::test]
async fn without_a_certificate_there_is_no_tls_listener() {
    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.threads = 1;
    config.users = vec!["a:b".parse().unwrap()];
    let server = TurnServer::start(&config, Metrics::new()).await.unwrap();
    assert!(server.tls_local_addrs().is_empty());
    server.shutdown().await;
}

#[actix_rt::test]
async fn a_bad_certificate_stops_the_start_with_a_clear_error() {
    let dir = TempDir::new("bad-cert");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.tls_cert = vec![cert];
    config.tls_key = vec![dir.path().join("key.pem")];
    config.threads = 1;
    let err = match TurnServer::start(&config, Metrics::new()).await {
        Ok(_) => panic!("started with a bad certificate"),
        Err(e) => e,
    };
    assert!(err.contains("cert.pem"), "{err}");
}

#[actix_rt::test]
async fn coturn_uclient_over_tls_loses_nothing() {
    if !support::require_peers(&["turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let f = start("uclient").await;
    // It echoes before uclient starts, on ports no parallel test takes.
    let peer = support::TurnutilsPeer::spawn();
    let peer_port = peer.port();
    // -S -t: TLS over TCP; -c: no RTCP allocations (EVEN-PORT reservations).
    let tls_port = f.tls_addr.port().to_string();
    let peer_port = peer_port.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args(["120", "turnutils_uclient", "-S", "-t", "-c"])
            .args(["-u", USER, "-w", PASSWORD])
            .args(["-e", "127.0.0.1", "-r", &peer_port])
            .args(["-m", "10", "-n", "200", "-l", "120"])
            .args(["-p", &tls_port, "127.0.0.1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("Total lost packets 0 (0.000000%)"),
        "turnutils_uclient -S:\n{text}"
    );
    assert!(
        text.contains("tls_connect: client session connected"),
        "{text}"
    );
    let m = f.server.metrics().snapshot();
    assert!(m.allocations_created >= 10, "{m:?}");
    assert!(m.packets_to_peer >= 2000, "{m:?}");
    f.server.shutdown().await;
}
