//! Hand-built requests over UDP and TCP, as a hostile or careless client sends them:
//! peers floe denies, missing and wrong credentials, floods of unauthenticated Allocates,
//! stale nonces.

use super::*;

/// The typed attribute `A` of a message, if present and well formed.
pub(crate) fn attr<A: floe::stun::AttributeCodec>(msg: &Message) -> Option<A> {
    msg.get::<A>().and_then(Result::ok)
}

/// The error code of an error response.
fn error_code(msg: &Message) -> Option<u16> {
    attr::<ErrorCode>(msg).map(|e| e.code)
}

/// Long-term credentials answering a server's challenge.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    username: String,
    realm: String,
    nonce: String,
    key: IntegrityKey,
}

impl Credentials {
    /// MD5 long-term credentials (RFC 8489 §9.2.2) for the challenge `challenge`.
    fn answer(challenge: &Message, username: &str, password: &str) -> Credentials {
        let realm = attr::<Realm>(challenge)
            .expect("the challenge has REALM")
            .as_str()
            .to_owned();
        let nonce = attr::<Nonce>(challenge)
            .expect("the challenge has NONCE")
            .as_str()
            .to_owned();
        let key = IntegrityKey::long_term(PasswordAlgorithm::Md5, username, &realm, password)
            .expect("a usable password");
        Credentials {
            username: username.into(),
            realm,
            nonce,
            key,
        }
    }
}

/// Encodes a request: `attrs`, then (with `auth`) USERNAME, REALM, NONCE and
/// MESSAGE-INTEGRITY, then FINGERPRINT.
fn encode_request(
    method: Method,
    tid: TransactionId,
    auth: Option<&Credentials>,
    attrs: impl FnOnce(&mut MessageEncoder<'_>),
) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, method.request(), tid);
    attrs(&mut enc);
    if let Some(a) = auth {
        enc.add(&Username::new(a.username.clone()))
            .add(&Realm::new(a.realm.clone()))
            .add(&Nonce::new(a.nonce.clone()))
            .message_integrity(a.key.as_bytes());
    }
    enc.fingerprint();
    enc.finish().expect("the request encodes");
    buf.freeze()
}

/// A STUN/TURN client written with floe's codec but none of its client logic: it sends
/// exactly what a test builds, over one UDP socket on 127.0.0.1.
pub(crate) struct RawClient {
    pub(crate) sock: UdpSocket,
    server: SocketAddr,
}

impl RawClient {
    pub(crate) fn new(server: SocketAddr) -> RawClient {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a client socket");
        sock.set_read_timeout(Some(RETRANSMIT)).unwrap();
        RawClient { sock, server }
    }

    /// Sends a request (again every [`RETRANSMIT`]) until its response arrives.
    pub(crate) fn request(
        &self,
        method: Method,
        auth: Option<&Credentials>,
        attrs: impl FnOnce(&mut MessageEncoder<'_>),
    ) -> Message {
        let tid = TransactionId::random(&mut rand::thread_rng());
        let request = encode_request(method, tid, auth, attrs);
        let deadline = Instant::now() + EXCHANGE_LIMIT;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            self.sock.send_to(&request, self.server).unwrap();
            let resend = Instant::now() + RETRANSMIT;
            while Instant::now() < resend {
                match self.sock.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.server => {
                        let Ok(msg) = Message::decode(Bytes::copy_from_slice(&buf[..n])) else {
                            continue;
                        };
                        if msg.transaction_id() == tid && msg.class() != Class::Request {
                            assert_eq!(msg.method(), method, "{msg:?}");
                            return msg;
                        }
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break
                    }
                    Err(e) => panic!("receiving from {}: {e}", self.server),
                }
            }
        }
        panic!(
            "no answer to a {method:?} request from {} within {EXCHANGE_LIMIT:?}",
            self.server
        );
    }

    pub(crate) fn binding(&self) -> Message {
        self.request(Method::BINDING, None, |_| {})
    }

    /// An Allocate for UDP, with or without credentials.
    fn allocate(&self, auth: Option<&Credentials>) -> Message {
        self.request(Method::ALLOCATE, auth, |e| {
            e.add(&RequestedTransport(RequestedTransport::UDP));
        })
    }

    /// The 401 challenge to an Allocate without credentials (RFC 8489 §9.2.4).
    fn challenge(&self) -> Message {
        let response = self.allocate(None);
        assert_eq!(response.class(), Class::Error, "{response:?}");
        assert_eq!(error_code(&response), Some(401), "{response:?}");
        response
    }

    /// Allocates as `username`/`password`; returns the credentials and the relayed address.
    fn allocate_as(&self, username: &str, password: &str) -> (Credentials, SocketAddr) {
        let auth = Credentials::answer(&self.challenge(), username, password);
        let response = self.allocate(Some(&auth));
        assert_eq!(response.class(), Class::Success, "{response:?}");
        assert!(response.has_integrity(), "{response:?}");
        response
            .verify_integrity(auth.key.as_bytes())
            .expect("the success response is signed with our key");
        let relayed = attr::<XorRelayedAddress>(&response)
            .expect("XOR-RELAYED-ADDRESS")
            .0;
        (auth, relayed)
    }

    fn create_permission(&self, auth: &Credentials, peer: SocketAddr) -> Message {
        self.request(Method::CREATE_PERMISSION, Some(auth), |e| {
            e.add(&XorPeerAddress(peer));
        })
    }

    fn refresh(&self, auth: &Credentials, lifetime: u32) -> Message {
        self.request(Method::REFRESH, Some(auth), |e| {
            e.add(&Lifetime(lifetime));
        })
    }
}

// ---- denied peers ---------------------------------------------------------------------

#[test]
fn peers_floe_denies_by_default_get_403() {
    // No peer program: floe against hand-built requests.
    // Without --allow-loopback-peers; an external IP (TEST-NET-3) that is floe's own
    // address. The documentation blocks stand in for public addresses, so they are
    // allowed explicitly: floe's own address stays denied inside an allowed block.
    let own_external = "203.0.113.7";
    let floe = FloeServe::start(
        ServeOpts::default()
            .safe_peers()
            .metrics()
            .arg("--external-ip")
            .arg(own_external)
            .arg("--allow-peer")
            .arg("203.0.113.0/24")
            .arg("--allow-peer")
            .arg("198.51.100.0/24"),
    );
    let client = RawClient::new(floe.addr());
    let (auth, relayed) = client.allocate_as("bob", "secret");
    assert_eq!(
        relayed.ip().to_string(),
        own_external,
        "advertised relay IP"
    );

    let denied: Vec<SocketAddr> = [
        "127.0.0.1:5000",
        "10.0.0.1:5000",
        "169.254.169.254:80",
        "[::ffff:127.0.0.1]:5000",
        "0.0.0.0:5000",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .chain([
        floe.addr(),                                          // its listener, 127.0.0.1:PORT
        SocketAddr::new(own_external.parse().unwrap(), 5000), // its external address
    ])
    .collect();
    for peer in &denied {
        let response = client.create_permission(&auth, *peer);
        assert_eq!(response.class(), Class::Error, "{peer}: {response:?}");
        assert_eq!(error_code(&response), Some(403), "{peer}: {response:?}");
        // An authenticated error is signed too (RFC 8489 §9.2.4).
        response
            .verify_integrity(auth.key.as_bytes())
            .unwrap_or_else(|e| panic!("{peer}: the 403 is not signed with our key: {e:?}"));
    }
    // A ChannelBind to a denied peer is refused the same way.
    let response = client.request(Method::CHANNEL_BIND, Some(&auth), |e| {
        e.add(&ChannelNumber::MIN)
            .add(&XorPeerAddress("10.0.0.1:5000".parse().unwrap()));
    });
    assert_eq!(error_code(&response), Some(403), "{response:?}");

    // Control: a public peer (TEST-NET-2) is permitted. No data is sent to anyone.
    let response = client.create_permission(&auth, "198.51.100.7:5000".parse().unwrap());
    assert_eq!(response.class(), Class::Success, "{response:?}");

    let refused = denied.len() as u64 + 1;
    // At least: a request retransmitted while its answer was slow is refused again.
    floe.wait_metric(r#"floe_error_responses_total{code="403"}"#, |n| {
        n >= refused
    });
    assert_eq!(
        floe.metric(r#"floe_relayed_packets_total{direction="client_to_peer"}"#),
        0
    );
    println!("denied with 403: {denied:?} and a ChannelBind to 10.0.0.1:5000");
}

// ---- authentication -------------------------------------------------------------------

#[test]
fn allocate_without_credentials_gets_401_and_leaves_no_state() {
    let floe = FloeServe::start(ServeOpts::default().metrics());
    let client = RawClient::new(floe.addr());
    let challenge = client.challenge();
    let realm = attr::<Realm>(&challenge).expect("REALM in the 401");
    assert_eq!(realm.as_str(), REALM);
    let nonce = attr::<Nonce>(&challenge).expect("NONCE in the 401");
    assert!(!nonce.as_str().is_empty());
    assert!(
        !challenge.has_integrity(),
        "a 401 to no credentials is not signed"
    );

    // No allocation came of it: the server counts none, and a Refresh signed with the
    // challenge's nonce finds none (437).
    assert_eq!(floe.metric("floe_allocations_active"), 0);
    assert_eq!(floe.metric("floe_allocations_created_total"), 0);
    let auth = Credentials::answer(&challenge, "bob", "secret");
    let refresh = client.refresh(&auth, 600);
    assert_eq!(error_code(&refresh), Some(437), "{refresh:?}");
    let permission = client.create_permission(&auth, "127.0.0.1:5000".parse().unwrap());
    assert_eq!(error_code(&permission), Some(437), "{permission:?}");

    // The same 5-tuple can still allocate.
    let response = client.allocate(Some(&auth));
    assert_eq!(response.class(), Class::Success, "{response:?}");
    // floe counts it just after answering: wait for the count, within a bound.
    floe.wait_metric("floe_allocations_active", |n| n == 1);
}

#[test]
fn allocate_with_a_wrong_password_gets_401() {
    let floe = FloeServe::start(ServeOpts::default().metrics());
    let client = RawClient::new(floe.addr());
    let wrong = Credentials::answer(&client.challenge(), "bob", "not-the-secret");
    let response = client.allocate(Some(&wrong));
    assert_eq!(response.class(), Class::Error, "{response:?}");
    assert_eq!(error_code(&response), Some(401), "{response:?}");
    assert!(attr::<Nonce>(&response).is_some(), "{response:?}");
    assert_eq!(attr::<Realm>(&response).unwrap().as_str(), REALM);

    // Likewise an unknown user.
    let unknown = Credentials::answer(&client.challenge(), "mallory", "secret");
    let response = client.allocate(Some(&unknown));
    assert_eq!(error_code(&response), Some(401), "{response:?}");

    assert_eq!(floe.metric("floe_allocations_created_total"), 0);
    floe.wait_metric("floe_auth_failures_total", |n| n >= 2);
    // The right password on the same 5-tuple works.
    let right = Credentials::answer(&client.challenge(), "bob", "secret");
    let response = client.allocate(Some(&right));
    assert_eq!(response.class(), Class::Success, "{response:?}");
}

/// Sends `count` Allocates that cannot authenticate from every socket of `sockets`, in
/// rounds of one per socket, and waits for each answer (resending unanswered ones). Each
/// is answered with 401; returns how many.
fn unauthenticated_allocates(
    server: SocketAddr,
    sockets: &[UdpSocket],
    rounds: usize,
    nonce: &str,
) -> u64 {
    let mut rng = StdRng::seed_from_u64(7);
    let mut answered = 0u64;
    let mut buf = [0u8; 2048];
    for round in 0..rounds {
        // One request per socket: without credentials, an unknown user, or bob with the
        // wrong password (each with a fresh USERNAME, so per-user state would show).
        let requests: Vec<(TransactionId, Bytes)> = (0..sockets.len())
            .map(|i| {
                let tid = TransactionId::random(&mut rng);
                let n = round * sockets.len() + i;
                let auth = match n % 3 {
                    0 => None,
                    1 => Some(Credentials {
                        username: format!("user-{n}-{}", rng.gen::<u32>()),
                        realm: REALM.into(),
                        nonce: nonce.into(),
                        key: IntegrityKey::from_bytes(vec![0u8; 16]),
                    }),
                    _ => Some(Credentials {
                        username: "bob".into(),
                        realm: REALM.into(),
                        nonce: nonce.into(),
                        key: IntegrityKey::from_bytes(rng.gen::<[u8; 16]>().to_vec()),
                    }),
                };
                let request = encode_request(Method::ALLOCATE, tid, auth.as_ref(), |e| {
                    e.add(&RequestedTransport(RequestedTransport::UDP));
                });
                (tid, request)
            })
            .collect();
        let mut pending: Vec<bool> = vec![true; sockets.len()];
        let mut left = sockets.len();
        let deadline = Instant::now() + EXCHANGE_LIMIT;
        while left > 0 {
            assert!(
                Instant::now() < deadline,
                "round {round}: {left} Allocates unanswered after {EXCHANGE_LIMIT:?}"
            );
            for (i, sock) in sockets.iter().enumerate() {
                if pending[i] {
                    let _ = sock.send_to(&requests[i].1, server);
                }
            }
            let resend = Instant::now() + RETRANSMIT;
            while left > 0 && Instant::now() < resend {
                let mut got = false;
                for (i, sock) in sockets.iter().enumerate() {
                    while let Ok((n, _)) = sock.recv_from(&mut buf) {
                        let Ok(msg) = Message::decode(Bytes::copy_from_slice(&buf[..n])) else {
                            continue;
                        };
                        if pending[i] && msg.transaction_id() == requests[i].0 {
                            assert_eq!(error_code(&msg), Some(401), "{msg:?}");
                            pending[i] = false;
                            left -= 1;
                            answered += 1;
                            got = true;
                        }
                    }
                }
                if !got {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    answered
}

#[test]
fn twenty_thousand_unauthenticated_allocates_leave_memory_flat() {
    const SOCKETS: usize = 200;
    const ROUNDS: usize = 100;
    /// Generous next to what floe grows (under 100 KiB here), yet tight enough to catch
    /// about 50 bytes kept per request: a 4 MiB bound let a planted 100-byte leak per
    /// error response (2.5 MiB in all) pass.
    const BOUND_KIB: u64 = 1024;

    // Every request must be answered, all from 127.0.0.1: a limit far above what the
    // test sends keeps the rate limiter (and its table) in the path without dropping.
    let floe = FloeServe::start(ServeOpts::default().metrics().arg("--unauth-rate=1000000"));
    let open = |n: usize| -> Vec<UdpSocket> {
        (0..n)
            .map(|_| {
                let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a socket");
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect()
    };
    let nonce = attr::<Nonce>(&RawClient::new(floe.addr()).challenge())
        .expect("NONCE")
        .as_str()
        .to_owned();

    // Warm-up from other source ports: lazily grown buffers, tables and allocator arenas.
    let warm = open(100);
    let warmed = unauthenticated_allocates(floe.addr(), &warm, 3, &nonce);
    drop(warm);
    std::thread::sleep(Duration::from_millis(200));
    let before = floe.rss_kib();

    let start = Instant::now();
    let sockets = open(SOCKETS);
    let answered = unauthenticated_allocates(floe.addr(), &sockets, ROUNDS, &nonce);
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let after = floe.rss_kib();

    let growth = after.saturating_sub(before);
    println!(
        "floe serve VmRSS: {before} KiB after {warmed} warm-up Allocates, {after} KiB after \
         {answered} more from {SOCKETS} source ports ({:.1} s): growth {growth} KiB \
         (bound {BOUND_KIB} KiB)",
        took.as_secs_f64()
    );
    assert_eq!(answered, (SOCKETS * ROUNDS) as u64);
    // Every one was answered with 401, as was the first challenge (retransmissions may
    // have been answered twice).
    let challenges = answered + warmed + 1;
    floe.wait_metric(r#"floe_error_responses_total{code="401"}"#, |n| {
        n >= challenges
    });
    assert_eq!(floe.metric("floe_allocations_created_total"), 0);
    assert!(
        growth < BOUND_KIB,
        "floe serve grew by {growth} KiB ({before} → {after} KiB) over {answered} \
         unauthenticated Allocates"
    );
}

// ---- a stale nonce, in-process --------------------------------------------------------

/// floe's sans-IO TURN client on a tokio UDP socket, recording the error code of every
/// STUN error response it receives (the client core answers 401 and 438 by itself).
struct SniffingClient {
    core: floe::turn::client::Client,
    sock: tokio::net::UdpSocket,
    /// (method, error code, NONCE) of each error response, in order.
    errors: Vec<(Method, u16, Option<String>)>,
}

impl SniffingClient {
    async fn new(server: SocketAddr) -> SniffingClient {
        use floe::turn::client::{Client, ClientConfig};
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let config = ClientConfig::new(server, sock.local_addr().unwrap(), "bob", "secret");
        SniffingClient {
            core: Client::new(config, StdRng::seed_from_u64(3)),
            sock,
            errors: Vec::new(),
        }
    }

    /// Drives the client until an event matches `want`; other events are skipped.
    async fn until(
        &mut self,
        mut want: impl FnMut(&floe::turn::client::ClientEvent) -> bool,
    ) -> floe::turn::client::ClientEvent {
        let deadline = Instant::now() + EXCHANGE_LIMIT;
        let mut buf = vec![0u8; 65536];
        loop {
            while let Some(t) = self.core.poll_transmit() {
                self.sock.send_to(&t.payload, t.destination).await.unwrap();
            }
            while let Some(e) = self.core.poll_event() {
                if want(&e) {
                    return e;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no matching client event in {EXCHANGE_LIMIT:?}; errors seen: {:?}",
                self.errors
            );
            let wake = self
                .core
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(RETRANSMIT)
                .min(RETRANSMIT);
            match tokio::time::timeout(wake, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    if let Ok(msg) = Message::decode(data.clone()) {
                        if msg.class() == Class::Error {
                            self.errors.push((
                                msg.method(),
                                error_code(&msg).unwrap_or(0),
                                attr::<Nonce>(&msg).map(|n| n.as_str().to_owned()),
                            ));
                        }
                    }
                    self.core.handle_input(Instant::now(), from, data);
                }
                _ => self.core.handle_timeout(Instant::now()),
            }
        }
    }
}

#[actix_rt::test]
async fn a_stale_nonce_gets_438_and_the_client_recovers() {
    use floe::turn::client::ClientEvent;
    use floe_actors::config::{ServeConfig, UserCredential};
    use floe_actors::metrics::Metrics;
    use floe_actors::turn::{TurnEvent, TurnServer};

    const NONCE_LIFETIME: Duration = Duration::from_secs(2);
    let mut config = ServeConfig::default();
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.users = vec!["bob:secret".parse::<UserCredential>().unwrap()];
    config.realm = REALM.into();
    config.allow_loopback_peers = true;
    config.threads = 1;
    let server = TurnServer::start_with(&config, Metrics::new(), |core| {
        core.nonce_lifetime = NONCE_LIFETIME;
    })
    .await
    .expect("the server starts");
    let mut events = server.events();

    let mut client = SniffingClient::new(server.local_addrs()[0]).await;
    client.core.allocate(Instant::now()).unwrap();
    let allocated = client
        .until(|e| matches!(e, ClientEvent::Allocated { .. } | ClientEvent::Error { .. }))
        .await;
    assert!(
        matches!(allocated, ClientEvent::Allocated { .. }),
        "{allocated:?}"
    );
    // One 401, or more when a slow answer let the first Allocate be retransmitted.
    let first_nonces: Vec<String> = match client.errors.as_slice() {
        [] => panic!("expected a 401 with a NONCE before the allocation, got none"),
        errors => errors
            .iter()
            .map(|e| match e {
                (Method::ALLOCATE, 401, Some(nonce)) => nonce.clone(),
                other => panic!("expected only 401s with a NONCE before the allocation: {other:?}"),
            })
            .collect(),
    };

    // Let the nonce go stale; the allocation (600 s) lives on.
    tokio::time::sleep(NONCE_LIFETIME + Duration::from_secs(1)).await;
    let peer = SocketAddr::new(LOOPBACK, 5000);
    client
        .core
        .create_permission(Instant::now(), &[peer.ip()])
        .unwrap();
    let created = client
        .until(|e| {
            matches!(
                e,
                ClientEvent::PermissionCreated { .. } | ClientEvent::Error { .. }
            )
        })
        .await;
    assert!(
        matches!(&created, ClientEvent::PermissionCreated { peers } if peers == &[peer.ip()]),
        "the client did not recover from the stale nonce: {created:?}; errors: {:?}",
        client.errors
    );
    let stale = client
        .errors
        .iter()
        .find(|(m, code, _)| *m == Method::CREATE_PERMISSION && *code == 438)
        .unwrap_or_else(|| panic!("no 438 on the wire: {:?}", client.errors));
    let fresh = stale.2.as_deref().expect("the 438 carries a new NONCE");
    assert!(
        !first_nonces.iter().any(|n| n == fresh),
        "the 438 must bring a fresh nonce: {fresh} was in a 401"
    );

    // And the refreshed nonce keeps working for the allocation's other requests.
    client
        .core
        .refresh(Instant::now(), Duration::from_secs(600))
        .unwrap();
    let refreshed = client
        .until(|e| matches!(e, ClientEvent::Refreshed { .. } | ClientEvent::Error { .. }))
        .await;
    assert!(
        matches!(refreshed, ClientEvent::Refreshed { .. }),
        "{refreshed:?}"
    );

    // The operator saw it too.
    let deadline = tokio::time::Instant::now() + EXCHANGE_LIMIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("an AuthFailed event with code 438")
            .expect("the server is running");
        if matches!(event, TurnEvent::AuthFailed { code: 438, .. }) {
            break;
        }
    }
    let metrics = server.metrics().snapshot();
    assert!(metrics.error_responses(438) >= 1, "{metrics:?}");
    assert_eq!(metrics.allocations_created, 1, "{metrics:?}");
    println!("stale nonce: errors on the wire {:?}", client.errors);
    assert_eq!(server.shutdown().await, 1);
}
