//! floe's `TurnClient` actor against real TURN servers, over UDP, TCP and TLS:
//! - coturn (`turnserver`, started by each test as INTEROP.md says);
//! - floe's own `TurnServer`, in-process;
//! - fake servers in the test that misbehave (wrong transaction ids, garbage, a success
//!   without XOR-RELAYED-ADDRESS, silence).
//!
//! Each coturn/floe session allocates, does a permission-based and a channel-based round
//! trip to a UDP echo peer through the relay, refreshes, and deletes (after which the relay
//! no longer forwards). Stale nonces and TURN REST API credentials have their own tests.
//! All traffic stays on 127.0.0.1; timeouts only bound hangs.

#[path = "support/mod.rs"]
mod support;

/// Fake servers that misbehave, and 300 Try Alternate.
#[path = "turn_client_interop/bad_servers.rs"]
mod bad_servers;

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use floe::stun::attribute::{
    AlternateServer, ErrorCode, Lifetime, XorMappedAddress, XorRelayedAddress,
};
use floe::stun::transaction::TransactionConfig;
use floe::stun::{Class, Message, MessageEncoder, Method, TransactionId};
use floe::turn::client::ClientError;
use floe::turn::server::RestApiSecrets;
use floe::Transport;
use floe_actors::config::{Secret, ServeConfig};
use floe_actors::events::EventStream;
use floe_actors::metrics::Metrics;
use floe_actors::turn::client::{ClientEvent, TlsOptions, TlsRoots};
use floe_actors::turn::{
    ServerHandle, TurnClient, TurnClientConfig, TurnClientError, TurnClientEvent, TurnClientHandle,
    TurnServer,
};
use support::{Coturn, CoturnOpts, CoturnTls, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Bounds a wait for one answer: longer than a whole transaction with the RFC's timers
/// (39.5 s), so it only ever catches a hang.
const WAIT: Duration = Duration::from_secs(60);
/// How long the relay is watched for data that must not come.
const QUIET: Duration = Duration::from_secs(1);
const USER: &str = "bob";
const PASSWORD: &str = "secret";
const REST_SECRET: &str = "north-wind";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ---- helpers ----------------------------------------------------------------------------------

/// Waits for the first event `pick` accepts. An `Error` or `Closed` on the way fails the
/// test with `what`, as does a hang.
async fn expect<T>(
    events: &mut EventStream<TurnClientEvent>,
    what: &str,
    mut pick: impl FnMut(&TurnClientEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let Some(e) = events.recv().await else {
                panic!("{what}: the client is gone");
            };
            if let Some(t) = pick(&e) {
                return t;
            }
            match e {
                TurnClientEvent::Session(ClientEvent::Error { .. })
                | TurnClientEvent::ConnectionLost { .. }
                | TurnClientEvent::Closed => {
                    panic!("{what}: got {e:?}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// Waits for the next event, which must be a failed request or a lost connection (whose
/// request is `None`); returns its request, code and reason.
async fn expect_error(
    events: &mut EventStream<TurnClientEvent>,
    what: &str,
) -> (Option<Method>, Option<u16>, String) {
    let wait = async {
        match events.recv().await {
            Some(TurnClientEvent::Session(ClientEvent::Error {
                request,
                code,
                reason,
            })) => (Some(request), code, reason),
            Some(TurnClientEvent::ConnectionLost { reason }) => (None, None, reason),
            Some(TurnClientEvent::Closed) | None => panic!("{what}: closed without an error"),
            Some(e) => panic!("{what}: expected an error, got {e:?}"),
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// The events that arrive within `window`.
async fn events_within(
    events: &mut EventStream<TurnClientEvent>,
    window: Duration,
) -> Vec<TurnClientEvent> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        got.push(e);
    }
    got
}

/// A UDP echo peer on 127.0.0.1, sending back every datagram to where it came from.
struct Echo {
    socket: Arc<UdpSocket>,
    addr: SocketAddr,
}

impl Echo {
    async fn start() -> Echo {
        let socket = Arc::new(UdpSocket::bind((LOCALHOST, 0)).await.expect("echo bind"));
        let addr = socket.local_addr().expect("echo address");
        let s = socket.clone();
        actix_rt::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        Echo { socket, addr }
    }
}

/// A TURN server under test and the credentials to use on it.
struct Target {
    name: &'static str,
    udp_tcp: SocketAddr,
    tls: Option<SocketAddr>,
    user: String,
    password: String,
    tls_roots: Option<Vec<u8>>,
    floe: Option<ServerHandle>,
    _coturn: Option<Coturn>,
    _dir: Option<TempDir>,
}

impl Target {
    fn coturn(opts: CoturnOpts) -> Option<Target> {
        if !support::require_peers(&["turnserver"]) {
            return None;
        }
        let (user, password) = match &opts.auth {
            support::CoturnAuth::LongTerm { user, password } => (user.clone(), password.clone()),
            support::CoturnAuth::AuthSecret { secret } => rest_credentials(secret),
        };
        let coturn = Coturn::start(opts);
        Some(Target {
            name: "coturn",
            udp_tcp: coturn.addr(),
            tls: coturn.tls_addr(),
            user,
            password,
            tls_roots: None,
            floe: None,
            _coturn: Some(coturn),
            _dir: None,
        })
    }

    async fn floe(rest: bool) -> Target {
        Self::floe_with_nonce_lifetime(rest, None).await
    }

    async fn floe_with_nonce_lifetime(rest: bool, nonce_lifetime: Option<Duration>) -> Target {
        let mut config = ServeConfig::default();
        config.listen = vec![SocketAddr::new(LOCALHOST, 0)];
        config.realm = "floe.test".into();
        config.relay_ip = Some(LOCALHOST);
        config.allow_loopback_peers = true;
        config.threads = 1;
        config.log = "warn".into();
        let (user, password) = if rest {
            config.auth_secrets = vec![Secret::new(REST_SECRET)];
            rest_credentials(REST_SECRET)
        } else {
            config.users = vec![format!("{USER}:{PASSWORD}").parse().expect("user")];
            (USER.to_owned(), PASSWORD.to_owned())
        };
        let server = TurnServer::start_with(&config, Metrics::new(), |core| {
            if let Some(lifetime) = nonce_lifetime {
                core.nonce_lifetime = lifetime;
            }
        })
        .await
        .expect("floe's TURN server starts");
        Target {
            name: "floe",
            udp_tcp: server.local_addrs()[0],
            tls: None,
            user,
            password,
            tls_roots: None,
            floe: Some(server),
            _coturn: None,
            _dir: None,
        }
    }

    fn config(&self, transport: Transport) -> TurnClientConfig {
        let server = match transport {
            Transport::Tls => self.tls.expect("a TLS listener"),
            _ => self.udp_tcp,
        };
        let mut c = TurnClientConfig::new(server, &self.user, &self.password);
        c.session.transport = transport;
        if let Some(pem) = &self.tls_roots {
            let mut tls = TlsOptions::default();
            tls.server_name = Some("localhost".into());
            tls.roots = TlsRoots::Pem(pem.clone());
            c.tls = tls;
        }
        c
    }

    async fn connect(
        &self,
        transport: Transport,
    ) -> (TurnClientHandle, EventStream<TurnClientEvent>) {
        let client = TurnClient::connect(self.config(transport))
            .await
            .unwrap_or_else(|e| panic!("{} {transport:?}: connect: {e}", self.name));
        let events = client.events();
        (client, events)
    }

    async fn stop(self) {
        if let Some(server) = &self.floe {
            server.shutdown().await;
        }
    }
}

/// TURN REST API credentials (coturn's `use-auth-secret`): `EXPIRY:USER` and
/// `base64(HMAC-SHA1(secret, username))`.
fn rest_credentials(secret: &str) -> (String, String) {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let username = format!("{expiry}:{USER}");
    let password = RestApiSecrets::password(secret, &username);
    (username, password)
}

async fn allocate(
    client: &TurnClientHandle,
    events: &mut EventStream<TurnClientEvent>,
    what: &str,
) -> SocketAddr {
    client.allocate().await.expect("allocate accepted");
    let (relayed, mapped, lifetime) = expect(events, what, |e| match e {
        TurnClientEvent::Session(ClientEvent::Allocated {
            relayed,
            mapped,
            lifetime,
        }) => Some((relayed.clone(), *mapped, *lifetime)),
        _ => None,
    })
    .await;
    assert_eq!(relayed.len(), 1, "{what}: one relayed address");
    assert_eq!(relayed[0].ip(), LOCALHOST, "{what}: relayed on 127.0.0.1");
    assert_eq!(
        mapped.map(|m| m.port()),
        Some(client.local_addr().port()),
        "{what}: XOR-MAPPED-ADDRESS is our socket"
    );
    assert!(lifetime > Duration::ZERO, "{what}: lifetime {lifetime:?}");
    relayed[0]
}

async fn permission_round_trip(
    client: &TurnClientHandle,
    events: &mut EventStream<TurnClientEvent>,
    echo: &Echo,
    what: &str,
) {
    client
        .create_permission(vec![echo.addr.ip()])
        .await
        .expect("create permission accepted");
    let peers = expect(events, what, |e| match e {
        TurnClientEvent::Session(ClientEvent::PermissionCreated { peers }) => Some(peers.clone()),
        _ => None,
    })
    .await;
    assert_eq!(peers, [echo.addr.ip()]);
    round_trip(client, events, echo, b"hello through a permission", what).await;
}

async fn channel_round_trip(
    client: &TurnClientHandle,
    events: &mut EventStream<TurnClientEvent>,
    echo: &Echo,
    what: &str,
) {
    let number = client
        .channel_bind(echo.addr)
        .await
        .expect("channel bind accepted");
    assert_eq!(number, 0x4000, "{what}: the first channel");
    let (peer, channel) = expect(events, &format!("{what}: ChannelBind"), |e| match e {
        TurnClientEvent::Session(ClientEvent::ChannelBound { peer, channel }) => {
            Some((*peer, *channel))
        }
        _ => None,
    })
    .await;
    assert_eq!((peer, channel), (echo.addr, 0x4000));
    round_trip(client, events, echo, b"hello through a channel", what).await;
}

async fn round_trip(
    client: &TurnClientHandle,
    events: &mut EventStream<TurnClientEvent>,
    echo: &Echo,
    payload: &'static [u8],
    what: &str,
) {
    client
        .send_to(echo.addr, payload)
        .await
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    let (peer, bytes) = expect(events, &format!("{what}: echo"), |e| match e {
        TurnClientEvent::Session(ClientEvent::Data { peer, data }) => Some((*peer, data.clone())),
        _ => None,
    })
    .await;
    assert_eq!(peer, echo.addr, "{what}: data from the echo peer");
    assert_eq!(&bytes[..], payload, "{what}: the echo");
}

/// Allocate; permission and channel round trips; refresh; delete, after which the relay
/// forwards nothing; close.
async fn full_session(target: &Target, transport: Transport) {
    let what = |step: &str| format!("{} over {transport:?}: {step}", target.name);
    let (client, mut events) = target.connect(transport).await;
    let echo = Echo::start().await;

    let relayed = allocate(&client, &mut events, &what("allocate")).await;
    permission_round_trip(&client, &mut events, &echo, &what("permission round trip")).await;
    channel_round_trip(&client, &mut events, &echo, &what("channel round trip")).await;

    // coturn raises lifetimes under 600 s to 600 s: ask for one both servers grant as is.
    client
        .refresh(Duration::from_secs(1200))
        .await
        .expect("refresh accepted");
    let lifetime = expect(&mut events, &what("refresh"), |e| match e {
        TurnClientEvent::Session(ClientEvent::Refreshed { lifetime }) => Some(*lifetime),
        _ => None,
    })
    .await;
    assert_eq!(lifetime, Duration::from_secs(1200), "{}", what("refresh"));

    client
        .refresh(Duration::ZERO)
        .await
        .expect("delete accepted");
    expect(&mut events, &what("delete"), |e| {
        (*e == TurnClientEvent::Session(ClientEvent::Deleted)).then_some(())
    })
    .await;
    // The client refuses to send without an allocation, and the server's relay is gone:
    // what the peer sends to the old relayed address does not come through.
    assert!(matches!(
        client.send_to(echo.addr, &b"after delete"[..]).await,
        Err(TurnClientError::Refused(ClientError::NoAllocation))
    ));
    for _ in 0..3 {
        let _ = echo.socket.send_to(b"after delete", relayed).await;
    }
    let late = events_within(&mut events, QUIET).await;
    // coturn closes a TCP/TLS connection once its allocation is deleted: the session ends
    // quietly then (Closed, no Error). Nothing else may come, least of all data.
    let closed_by_server = late == [TurnClientEvent::Closed];
    assert!(
        late.is_empty() || (closed_by_server && transport.is_reliable()),
        "{}: after delete: {late:?}",
        what("delete")
    );

    client.close().await;
    if !closed_by_server {
        expect(&mut events, &what("close"), |e| {
            (*e == TurnClientEvent::Closed).then_some(())
        })
        .await;
    }
    assert_eq!(
        events.recv().await,
        None,
        "{}: nothing after Closed",
        what("close")
    );
}

/// Allocate and a permission round trip; wait past the nonce's life; then a refresh and a
/// permission must still succeed (the client answers 438 with the new nonce).
async fn stale_nonce_session(target: &Target, transport: Transport, stale_after: Duration) {
    let what = |step: &str| format!("{} over {transport:?}: {step}", target.name);
    let (client, mut events) = target.connect(transport).await;
    let echo = Echo::start().await;
    allocate(&client, &mut events, &what("allocate")).await;
    permission_round_trip(&client, &mut events, &echo, &what("permission")).await;

    // 2 s past the expiry: coturn counts nonce age in whole seconds.
    tokio::time::sleep(stale_after + Duration::from_secs(2)).await;
    client
        .refresh(Duration::from_secs(600))
        .await
        .expect("refresh accepted");
    expect(&mut events, &what("refresh with a stale nonce"), |e| {
        matches!(e, TurnClientEvent::Session(ClientEvent::Refreshed { .. })).then_some(())
    })
    .await;

    // 2 s past the expiry: coturn counts nonce age in whole seconds.
    tokio::time::sleep(stale_after + Duration::from_secs(2)).await;
    client
        .create_permission(vec![echo.addr.ip()])
        .await
        .expect("permission accepted");
    expect(&mut events, &what("permission with a stale nonce"), |e| {
        matches!(
            e,
            TurnClientEvent::Session(ClientEvent::PermissionCreated { .. })
        )
        .then_some(())
    })
    .await;
    round_trip(
        &client,
        &mut events,
        &echo,
        b"still here",
        &what("round trip"),
    )
    .await;
    client.close().await;
}

/// Allocate with TURN REST API credentials and relay a round trip.
async fn rest_session(target: &Target, transport: Transport) {
    let what = |step: &str| format!("{} REST API over {transport:?}: {step}", target.name);
    let (client, mut events) = target.connect(transport).await;
    let echo = Echo::start().await;
    allocate(&client, &mut events, &what("allocate")).await;
    channel_round_trip(&client, &mut events, &echo, &what("channel round trip")).await;
    client.close().await;
    expect(&mut events, &what("close"), |e| {
        (*e == TurnClientEvent::Closed).then_some(())
    })
    .await;
}

async fn wrong_password_is_a_401(target: &Target, transport: Transport) {
    let mut config = target.config(transport);
    config.session.password = "not the password".into();
    let client = TurnClient::connect(config).await.expect("connect");
    let mut events = client.events();
    client.allocate().await.expect("allocate accepted");
    let (request, code, _) = expect_error(&mut events, "wrong password").await;
    assert_eq!((request, code), (Some(Method::ALLOCATE), Some(401)));
    client.close().await;
}

// ---- coturn -----------------------------------------------------------------------------------

#[actix_rt::test]
async fn coturn_udp_allocate_permission_channel_refresh_delete() {
    let Some(target) = Target::coturn(CoturnOpts::default()) else {
        return;
    };
    full_session(&target, Transport::Udp).await;
    wrong_password_is_a_401(&target, Transport::Udp).await;
}

#[actix_rt::test]
async fn coturn_tcp_allocate_permission_channel_refresh_delete() {
    let Some(target) = Target::coturn(CoturnOpts::default()) else {
        return;
    };
    full_session(&target, Transport::Tcp).await;
    wrong_password_is_a_401(&target, Transport::Tcp).await;
}

#[actix_rt::test]
async fn coturn_tls_allocate_permission_channel_refresh_delete() {
    if !support::require_peers(&["turnserver"]) {
        return;
    }
    let dir = TempDir::new("coturn-tls");
    let (tls, cert_pem) = CoturnTls::self_signed(dir.path());
    let mut target = Target::coturn(CoturnOpts::default().tls(tls)).expect("coturn is installed");
    target.tls_roots = Some(cert_pem.into_bytes());
    target._dir = Some(dir);
    full_session(&target, Transport::Tls).await;

    // The certificate is checked: a CA that did not sign it is refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let mut config = target.config(Transport::Tls);
    config.tls.roots = TlsRoots::Pem(other.cert.pem().into_bytes());
    let err = TurnClient::connect(config)
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, TurnClientError::Tls { .. }), "{err}");
}

/// `--stale-nonce=5`, and `-V` so the log shows the 438s the test relies on.
fn stale_nonce_opts() -> CoturnOpts {
    let mut opts = CoturnOpts::default().stale_nonce(5);
    opts.extra_args.push("-V".into());
    opts
}

/// The test would prove nothing if coturn had not actually answered 438.
fn assert_stale_nonce_was_answered(target: &Target) {
    let log = target._coturn.as_ref().map(Coturn::log).unwrap_or_default();
    let stale = log.matches("error 438").count();
    assert!(
        stale >= 2,
        "coturn answered {stale} 438s\n--- its log\n{log}"
    );
}

#[actix_rt::test]
async fn coturn_udp_stale_nonce() {
    let Some(target) = Target::coturn(stale_nonce_opts()) else {
        return;
    };
    stale_nonce_session(&target, Transport::Udp, Duration::from_secs(5)).await;
    assert_stale_nonce_was_answered(&target);
}

#[actix_rt::test]
async fn coturn_tcp_stale_nonce() {
    let Some(target) = Target::coturn(stale_nonce_opts()) else {
        return;
    };
    stale_nonce_session(&target, Transport::Tcp, Duration::from_secs(5)).await;
    assert_stale_nonce_was_answered(&target);
}

#[actix_rt::test]
async fn coturn_udp_rest_api_credentials() {
    let Some(target) = Target::coturn(CoturnOpts::auth_secret(REST_SECRET)) else {
        return;
    };
    rest_session(&target, Transport::Udp).await;
}

#[actix_rt::test]
async fn coturn_tcp_rest_api_credentials() {
    let Some(target) = Target::coturn(CoturnOpts::auth_secret(REST_SECRET)) else {
        return;
    };
    rest_session(&target, Transport::Tcp).await;
}

// ---- floe's own server ------------------------------------------------------------------------

#[actix_rt::test]
async fn floe_udp_allocate_permission_channel_refresh_delete() {
    let target = Target::floe(false).await;
    full_session(&target, Transport::Udp).await;
    wrong_password_is_a_401(&target, Transport::Udp).await;
    target.stop().await;
}

#[actix_rt::test]
async fn floe_tcp_allocate_permission_channel_refresh_delete() {
    let target = Target::floe(false).await;
    full_session(&target, Transport::Tcp).await;
    wrong_password_is_a_401(&target, Transport::Tcp).await;
    target.stop().await;
}

#[actix_rt::test]
async fn floe_udp_rest_api_credentials() {
    let target = Target::floe(true).await;
    rest_session(&target, Transport::Udp).await;
    target.stop().await;
}

#[actix_rt::test]
async fn floe_tcp_rest_api_credentials() {
    let target = Target::floe(true).await;
    rest_session(&target, Transport::Tcp).await;
    target.stop().await;
}

async fn floe_stale_nonce(transport: Transport) {
    let target = Target::floe_with_nonce_lifetime(false, Some(Duration::from_secs(3))).await;
    stale_nonce_session(&target, transport, Duration::from_secs(3)).await;
    let server = target.floe.as_ref().expect("floe target");
    let stale = server.metrics().snapshot().error_responses(438);
    assert!(stale >= 2, "floe answered {stale} 438s");
}

#[actix_rt::test]
async fn floe_udp_stale_nonce() {
    floe_stale_nonce(Transport::Udp).await;
}

#[actix_rt::test]
async fn floe_tcp_stale_nonce() {
    floe_stale_nonce(Transport::Tcp).await;
}

// ---- the STUN command line --------------------------------------------------------------------

fn floe_stun(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_floe"))
        .arg("stun")
        .args(args)
        .output()
        .expect("running floe stun")
}

#[actix_rt::test]
async fn floe_stun_prints_the_reflexive_address() {
    let target = Target::floe(false).await;
    let server = target.udp_tcp.to_string();
    for extra in [None, Some("--tcp")] {
        let mut args: Vec<String> = extra.into_iter().map(String::from).collect();
        args.push(server.clone());
        let out = tokio::task::spawn_blocking(move || {
            floe_stun(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{extra:?}: {out:?}");
        let mapped: SocketAddr = stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{extra:?}: `{stdout}` is not an address: {e}"));
        assert_eq!(mapped.ip(), LOCALHOST);
        assert_ne!(mapped.port(), 0);
    }
    target.stop().await;

    if support::require_peers(&["turnserver"]) {
        let coturn = Coturn::start(CoturnOpts::default());
        let out = floe_stun(&[&coturn.addr().to_string()]);
        assert!(out.status.success(), "coturn: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mapped: SocketAddr = stdout.trim().parse().expect("an address");
        assert_eq!(mapped.ip(), LOCALHOST);
    }
}

#[test]
fn floe_stun_fails_after_retransmissions_or_a_refused_connection() {
    // A UDP port that never answers: 7 sends (RTO 10 ms), then a timeout and exit 1.
    let silent = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = floe_stun(&["--rto", "10", &addr]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out"), "{stderr}");
    let mut buf = [0u8; 1500];
    silent.set_nonblocking(true).unwrap();
    let mut requests = 0;
    while silent.recv_from(&mut buf).is_ok() {
        requests += 1;
    }
    assert_eq!(requests, 7, "RFC 8489 §6.2.1: Rc = 7 sends");

    // TCP to a closed port: refused at once.
    let closed = {
        let l = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = floe_stun(&["--tcp", &closed]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");

    // Not an address: a usage error.
    let out = floe_stun(&["nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
