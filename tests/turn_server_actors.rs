//! The TURN server's actors under failure: a relay socket failing, an allocation actor
//! panicking, lifetimes running out, peers that cannot be reached. Real sockets on
//! 127.0.0.1; the client is floe's sans-IO TURN client driven over a tokio socket.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe::turn::client::{self as core_client, ClientConfig, ClientEvent};
use floe_actors::config::{ServeConfig, UserCredential};
use floe_actors::metrics::Metrics;
use floe_actors::turn::{Fault, ServerHandle, TurnEvent, TurnServer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// Bounds a hang; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(20);

fn server_config() -> ServeConfig {
    let mut c = ServeConfig::default();
    c.listen = vec!["127.0.0.1:0".parse().unwrap()];
    c.users = vec!["bob:secret".parse::<UserCredential>().unwrap()];
    c.allow_loopback_peers = true;
    c.threads = 1;
    c
}

async fn start(tune: impl FnOnce(&mut floe::turn::server::ServerConfig)) -> ServerHandle {
    TurnServer::start_with(&server_config(), Metrics::new(), tune)
        .await
        .expect("server starts")
}

/// A UDP echo peer on 127.0.0.1; reports each datagram's source.
async fn echo_peer() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<SocketAddr>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            // An ICMP error from an earlier send surfaces here as ECONNREFUSED: carry on.
            if let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let _ = tx.send(from);
                let _ = sock.send_to(&buf[..n], from).await;
            }
        }
    });
    (addr, rx)
}

/// floe's TURN client core on a UDP socket.
struct Client {
    core: core_client::Client,
    sock: UdpSocket,
}

impl Client {
    async fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let config = ClientConfig::new(server, sock.local_addr().unwrap(), "bob", "secret");
        Client {
            core: core_client::Client::new(config, StdRng::seed_from_u64(1)),
            sock,
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.sock.send_to(&t.payload, t.destination).await.unwrap();
        }
    }

    /// Drives the client until an event matches `want`; other events are skipped.
    async fn until(&mut self, mut want: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
        let deadline = Instant::now() + LIMIT;
        let mut buf = vec![0u8; 65536];
        loop {
            self.flush().await;
            while let Some(e) = self.core.poll_event() {
                if want(&e) {
                    return e;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no matching client event in {LIMIT:?}"
            );
            let wake = self
                .core
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match timeout(wake, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => {
                    self.core
                        .handle_input(Instant::now(), from, Bytes::copy_from_slice(&buf[..n]))
                }
                _ => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    async fn allocate(&mut self) -> SocketAddr {
        self.core.allocate(Instant::now()).unwrap();
        match self
            .until(|e| matches!(e, ClientEvent::Allocated { .. } | ClientEvent::Error { .. }))
            .await
        {
            ClientEvent::Allocated { relayed, .. } => relayed[0],
            e => panic!("allocation failed: {e:?}"),
        }
    }

    async fn bind(&mut self, peer: SocketAddr) {
        self.core.channel_bind(Instant::now(), peer).unwrap();
        let e = self
            .until(|e| {
                matches!(
                    e,
                    ClientEvent::ChannelBound { .. } | ClientEvent::Error { .. }
                )
            })
            .await;
        assert!(matches!(e, ClientEvent::ChannelBound { .. }), "{e:?}");
    }

    /// Sends `data` to `peer` and waits for it to come back from `peer`.
    async fn echo(&mut self, peer: SocketAddr, data: &[u8]) {
        self.core.send_to(Instant::now(), peer, data).unwrap();
        let e = self
            .until(|e| matches!(e, ClientEvent::Data { peer: p, data: d } if *p == peer && &d[..] == data))
            .await;
        assert!(matches!(e, ClientEvent::Data { .. }));
    }

    /// Sends `data` and checks that nothing comes back within `wait`.
    async fn no_echo(&mut self, peer: SocketAddr, data: &[u8], wait: Duration) {
        self.core.send_to(Instant::now(), peer, data).unwrap();
        self.flush().await;
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Ok(Ok((n, from))) = timeout(left, self.sock.recv_from(&mut buf)).await {
                self.core
                    .handle_input(Instant::now(), from, Bytes::copy_from_slice(&buf[..n]));
                while let Some(e) = self.core.poll_event() {
                    assert!(
                        !matches!(e, ClientEvent::Data { .. }),
                        "data relayed after the allocation went: {e:?}"
                    );
                }
            }
        }
    }
}

async fn next_event(
    events: &mut floe_actors::events::EventStream<TurnEvent>,
    mut want: impl FnMut(&TurnEvent) -> bool,
) -> TurnEvent {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let e = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no matching server event in time")
            .expect("server gone");
        if want(&e) {
            return e;
        }
    }
}

#[actix_rt::test]
async fn a_failed_relay_is_restarted_on_its_address_and_keeps_relaying() {
    let server = start(|_| {}).await;
    let mut events = server.events();
    let (peer, mut seen) = echo_peer().await;
    let mut client = Client::new(server.local_addrs()[0]).await;
    let relayed = client.allocate().await;
    client.bind(peer).await;
    client.echo(peer, b"before").await;
    assert_eq!(seen.recv().await, Some(relayed));

    assert!(server.inject_fault(relayed, Fault::RelaySocketError).await);
    let e = next_event(&mut events, |e| {
        matches!(e, TurnEvent::RelayRestarted { .. })
    })
    .await;
    assert!(matches!(e, TurnEvent::RelayRestarted { relayed: r, .. } if r == relayed));

    client.echo(peer, b"after").await;
    // The peer still sees the same relayed address.
    while let Ok(from) = seen.try_recv() {
        assert_eq!(from, relayed);
    }
    server.shutdown().await;
}

#[actix_rt::test]
async fn a_panicking_allocation_is_freed_and_the_others_keep_relaying() {
    let server = start(|_| {}).await;
    let mut events = server.events();
    let (peer, _seen) = echo_peer().await;
    let mut a = Client::new(server.local_addrs()[0]).await;
    let mut b = Client::new(server.local_addrs()[0]).await;
    let relay_a = a.allocate().await;
    b.allocate().await;
    a.bind(peer).await;
    b.bind(peer).await;
    a.echo(peer, b"a1").await;
    b.echo(peer, b"b1").await;

    assert!(server.inject_fault(relay_a, Fault::AllocationPanic).await);
    let failed = next_event(&mut events, |e| {
        matches!(e, TurnEvent::AllocationFailed { .. })
    })
    .await;
    let TurnEvent::AllocationFailed { five_tuple, .. } = failed else {
        unreachable!()
    };
    assert_eq!(five_tuple.client, a.sock.local_addr().unwrap());
    next_event(
        &mut events,
        |e| matches!(e, TurnEvent::Deleted { five_tuple: f } if f.client == five_tuple.client),
    )
    .await;

    for i in 0..20u8 {
        b.echo(peer, &[b'b', i]).await;
    }
    a.no_echo(peer, b"a2", Duration::from_millis(500)).await;
    // The clear error to its client: the next request on its 5-tuple gets 437.
    a.core
        .refresh(Instant::now(), Duration::from_secs(600))
        .unwrap();
    let e = a
        .until(|e| matches!(e, ClientEvent::Error { .. } | ClientEvent::Refreshed { .. }))
        .await;
    assert!(
        matches!(
            e,
            ClientEvent::Error {
                code: Some(437),
                ..
            }
        ),
        "{e:?}"
    );
    // And it may allocate again.
    let mut again = Client {
        core: core_client::Client::new(
            ClientConfig::new(
                server.local_addrs()[0],
                a.sock.local_addr().unwrap(),
                "bob",
                "secret",
            ),
            StdRng::seed_from_u64(2),
        ),
        sock: a.sock,
    };
    again.allocate().await;
    again.bind(peer).await;
    again.echo(peer, b"a3").await;
    assert_eq!(server.shutdown().await, 2, "b's and a's new allocation");
}

#[actix_rt::test]
async fn a_panicking_relay_is_restarted_in_place_with_its_channels() {
    let server = start(|_| {}).await;
    let mut events = server.events();
    let (peer, mut seen) = echo_peer().await;
    let mut a = Client::new(server.local_addrs()[0]).await;
    let mut b = Client::new(server.local_addrs()[0]).await;
    let relay_a = a.allocate().await;
    b.allocate().await;
    a.bind(peer).await;
    b.bind(peer).await;
    a.echo(peer, b"a1").await;

    assert!(server.inject_fault(relay_a, Fault::RelayPanic).await);
    let e = next_event(&mut events, |e| {
        matches!(
            e,
            TurnEvent::RelayRestarted { .. } | TurnEvent::AllocationFailed { .. }
        )
    })
    .await;
    assert!(
        matches!(e, TurnEvent::RelayRestarted { relayed, .. } if relayed == relay_a),
        "{e:?}"
    );
    // The channel bound before the panic still relays, from the same address, without
    // the client binding it again; the other allocation never noticed.
    for i in 0..10u8 {
        a.echo(peer, &[b'a', i]).await;
        b.echo(peer, &[b'b', i]).await;
    }
    let from_a: Vec<SocketAddr> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
    assert!(from_a.contains(&relay_a));
    assert_eq!(server.shutdown().await, 2);
}

#[actix_rt::test]
async fn lifetimes_expire_allocations() {
    // Long enough that a stalled test thread still binds and echoes before it ends.
    let server = start(|c| {
        c.default_lifetime = Duration::from_secs(3);
        c.max_lifetime = Duration::from_secs(3);
    })
    .await;
    let mut events = server.events();
    let (peer, _seen) = echo_peer().await;
    let mut client = Client::new(server.local_addrs()[0]).await;
    client.allocate().await;
    client.bind(peer).await;
    client.echo(peer, b"x").await;
    // Stop driving the client: no refresh reaches the server.
    let e = next_event(&mut events, |e| matches!(e, TurnEvent::Expired { .. })).await;
    assert!(
        matches!(e, TurnEvent::Expired { five_tuple } if five_tuple.client == client.sock.local_addr().unwrap())
    );
    assert_eq!(server.metrics().snapshot().allocations_active, 0);
    client.no_echo(peer, b"y", Duration::from_millis(500)).await;
    server.shutdown().await;
}

#[actix_rt::test]
async fn unreachable_peers_cost_only_their_datagrams() {
    let mut config = server_config();
    // A broadcast peer: the kernel refuses the send (EACCES) without it leaving the host.
    config.allow_peers = vec!["255.255.255.255/32".parse().unwrap()];
    let server = TurnServer::start(&config, Metrics::new()).await.unwrap();
    let (peer, _seen) = echo_peer().await;
    // A loopback port nobody listens on: ICMP port unreachable, ECONNREFUSED later.
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let broadcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
    let mut client = Client::new(server.local_addrs()[0]).await;
    client.allocate().await;
    client.bind(peer).await;
    client
        .core
        .create_permission(Instant::now(), &[IpAddr::from([255, 255, 255, 255])])
        .unwrap();
    client
        .until(|e| matches!(e, ClientEvent::PermissionCreated { .. }))
        .await;
    client.bind(closed).await;
    for i in 0..20u8 {
        client
            .core
            .send_to(Instant::now(), broadcast, &[i])
            .unwrap();
        client.core.send_to(Instant::now(), closed, &[i]).unwrap();
        client.echo(peer, &[b'e', i]).await;
    }
    assert_eq!(server.shutdown().await, 1);
}

#[actix_rt::test]
async fn quotas_hold_across_threads_and_come_back_when_an_allocation_ends() {
    let mut config = server_config();
    config.user_quota = 1;
    config.threads = 2;
    let server = TurnServer::start(&config, Metrics::new()).await.unwrap();
    let mut a = Client::new(server.local_addrs()[0]).await;
    let mut b = Client::new(server.local_addrs()[0]).await;
    a.allocate().await;
    // Whichever thread b reaches, bob has used his one allocation.
    b.core.allocate(Instant::now()).unwrap();
    let e = b
        .until(|e| matches!(e, ClientEvent::Allocated { .. } | ClientEvent::Error { .. }))
        .await;
    assert!(
        matches!(
            e,
            ClientEvent::Error {
                code: Some(486),
                ..
            }
        ),
        "{e:?}"
    );
    a.core.delete(Instant::now()).unwrap();
    a.until(|e| matches!(e, ClientEvent::Deleted)).await;
    b.allocate().await;
    assert_eq!(server.shutdown().await, 1);
}

#[actix_rt::test]
async fn an_earlier_deadline_rearms_the_timer() {
    let server = start(|c| {
        c.default_lifetime = Duration::from_secs(1);
        c.max_lifetime = Duration::from_secs(3600);
    })
    .await;
    let mut events = server.events();
    let with_lifetime = |client: &mut Client, secs: u64| {
        let mut c = ClientConfig::new(
            server.local_addrs()[0],
            client.sock.local_addr().unwrap(),
            "bob",
            "secret",
        );
        c.lifetime = Duration::from_secs(secs);
        client.core = core_client::Client::new(c, StdRng::seed_from_u64(secs));
    };
    // The first allocation arms the timer far out (its lifetime; it has no permission).
    let mut long = Client::new(server.local_addrs()[0]).await;
    with_lifetime(&mut long, 3600);
    long.allocate().await;
    // The second one's lifetime ends first: it must expire on time, not after the first.
    let mut short = Client::new(server.local_addrs()[0]).await;
    with_lifetime(&mut short, 1);
    short.allocate().await;
    let e = next_event(&mut events, |e| matches!(e, TurnEvent::Expired { .. })).await;
    assert!(
        matches!(e, TurnEvent::Expired { five_tuple } if five_tuple.client == short.sock.local_addr().unwrap())
    );
    assert_eq!(server.shutdown().await, 1, "the long one is still there");
}

/// TURN requests built by hand, for what floe's client does not send (EVEN-PORT,
/// RESERVATION-TOKEN): long-term credentials of bob, retransmitted until answered.
struct RawClient {
    sock: UdpSocket,
    server: SocketAddr,
    nonce: Option<String>,
    next_tid: u8,
}

impl RawClient {
    async fn new(server: SocketAddr) -> Self {
        RawClient {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            nonce: None,
            next_tid: 0,
        }
    }

    /// Sends `method` with `attrs`, signed once a nonce is known; answers a 401 or 438 by
    /// signing with the nonce it carries.
    async fn request(
        &mut self,
        method: floe::stun::Method,
        attrs: &[floe::stun::Attribute],
    ) -> floe::stun::Message {
        use floe::stun::attribute::{ErrorCode, Nonce, Realm, Username};
        use floe::stun::{IntegrityKey, Message, MessageEncoder, PasswordAlgorithm};
        let key = IntegrityKey::long_term(PasswordAlgorithm::Md5, "bob", "floe", "secret").unwrap();
        for _ in 0..3 {
            self.next_tid += 1;
            let mut buf = bytes::BytesMut::new();
            let tid = floe::stun::TransactionId([self.next_tid; 12]);
            let mut e = MessageEncoder::new(&mut buf, method.request(), tid);
            for a in attrs {
                e.add_attribute(a);
            }
            if let Some(nonce) = &self.nonce {
                e.add(&Username::new("bob"))
                    .add(&Realm::new("floe"))
                    .add(&Nonce::new(nonce.clone()))
                    .message_integrity(key.as_bytes());
            }
            e.finish().unwrap();
            let request = buf.freeze();
            let deadline = Instant::now() + LIMIT;
            let answer = loop {
                self.sock.send_to(&request, self.server).await.unwrap();
                let mut b = vec![0u8; 2048];
                if let Ok(Ok((n, _))) =
                    timeout(Duration::from_millis(500), self.sock.recv_from(&mut b)).await
                {
                    if let Ok(m) = Message::decode(Bytes::copy_from_slice(&b[..n])) {
                        if m.transaction_id() == tid {
                            break m;
                        }
                    }
                }
                assert!(Instant::now() < deadline, "no answer in {LIMIT:?}");
            };
            let code = answer
                .get::<ErrorCode>()
                .and_then(Result::ok)
                .map(|e| e.code);
            match (code, answer.get::<Nonce>()) {
                (Some(401 | 438), Some(Ok(n))) if self.nonce.as_deref() != Some(n.as_str()) => {
                    self.nonce = Some(n.as_str().to_owned());
                }
                _ => return answer,
            }
        }
        panic!("not authenticated after 3 tries");
    }
}

fn error_code(m: &floe::stun::Message) -> Option<u16> {
    m.get::<floe::stun::attribute::ErrorCode>()
        .and_then(Result::ok)
        .map(|e| e.code)
}

#[actix_rt::test]
async fn reserved_ports_count_against_the_user_quota() {
    use floe::stun::attribute::{
        EvenPort, Lifetime, RequestedTransport, ReservationToken, XorRelayedAddress,
    };
    use floe::stun::Method;
    let mut config = server_config();
    config.user_quota = 2;
    config.threads = 2;
    let server = TurnServer::start(&config, Metrics::new()).await.unwrap();
    let addr = server.local_addrs()[0];
    let udp: floe::stun::Attribute = RequestedTransport(17).into();
    let mut a = RawClient::new(addr).await;
    let r = a
        .request(
            Method::ALLOCATE,
            &[udp.clone(), EvenPort { reserve: true }.into()],
        )
        .await;
    assert_eq!(error_code(&r), None);
    let relayed = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    let token = r.get::<ReservationToken>().unwrap().unwrap();
    // The allocation and the reserved port are bob's two: nothing is left, not even
    // another reservation (which would need two more).
    let mut b = RawClient::new(addr).await;
    let r = b
        .request(Method::ALLOCATE, std::slice::from_ref(&udp))
        .await;
    assert_eq!(
        error_code(&r),
        Some(486),
        "the reservation escaped the quota"
    );
    let mut c = RawClient::new(addr).await;
    let r = c
        .request(
            Method::ALLOCATE,
            &[udp.clone(), EvenPort { reserve: true }.into()],
        )
        .await;
    assert_eq!(error_code(&r), Some(486));
    // a's allocation goes; the reservation still holds its place, and b redeems it on
    // whichever thread b reaches.
    let r = a.request(Method::REFRESH, &[Lifetime(0).into()]).await;
    assert_eq!(error_code(&r), None);
    let r = b
        .request(Method::ALLOCATE, &[udp.clone(), token.into()])
        .await;
    assert_eq!(error_code(&r), None, "redeeming the token");
    assert_eq!(
        r.get::<XorRelayedAddress>().unwrap().unwrap().0.port(),
        relayed.port() + 1
    );
    let r = c
        .request(Method::ALLOCATE, std::slice::from_ref(&udp))
        .await;
    assert_eq!(error_code(&r), None);
    let mut d = RawClient::new(addr).await;
    let r = d.request(Method::ALLOCATE, &[udp]).await;
    assert_eq!(error_code(&r), Some(486));
    assert_eq!(server.shutdown().await, 2);
}

/// Sends 20 datagrams of 600 bytes through a channel to an echo peer as fast as the
/// client goes, and waits until `dropped` sees drops in the server's metrics.
async fn relay_burst(
    config: &ServeConfig,
    dropped: impl Fn(&floe_actors::metrics::MetricsSnapshot) -> bool,
) -> floe_actors::metrics::MetricsSnapshot {
    let metrics = Metrics::new();
    let server = TurnServer::start(config, metrics.clone()).await.unwrap();
    let (peer, _seen) = echo_peer().await;
    let mut client = Client::new(server.local_addrs()[0]).await;
    client.allocate().await;
    client.bind(peer).await;
    for _ in 0..20 {
        client
            .core
            .send_to(Instant::now(), peer, &[7u8; 600])
            .unwrap();
        client.flush().await;
    }
    // 12 000 bytes against a budget of 1000 a second: drops, unless 11 s passed.
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = metrics.snapshot();
        if dropped(&s) {
            // Read again once stopped: packets and bytes are counted one after the other.
            server.shutdown().await;
            return metrics.snapshot();
        }
        assert!(Instant::now() < deadline, "no drop counted: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn relayed_data_over_the_total_bandwidth_is_dropped_and_counted() {
    let mut config = server_config();
    config.total_bps = 1000;
    let s = relay_burst(&config, |s| s.over_total_bps[0] > 0).await;
    assert!(s.packets_to_peer >= 1 && s.packets_to_peer < 20, "{s:?}");
    assert_eq!(s.over_total_bps[1], 600 * s.over_total_bps[0]);
    assert_eq!(s.over_max_bps, [0, 0]);
}

#[actix_rt::test]
async fn relayed_data_over_an_allocations_bandwidth_is_dropped_and_counted() {
    let mut config = server_config();
    config.max_bps = 1000;
    let s = relay_burst(&config, |s| s.over_max_bps[0] > 0).await;
    assert!(s.packets_to_peer >= 1 && s.packets_to_peer < 20, "{s:?}");
    assert_eq!(s.over_max_bps[1], 600 * s.over_max_bps[0]);
    assert_eq!(s.over_total_bps, [0, 0]);
}
