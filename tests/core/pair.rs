//! The client↔server pair: a TURN client core and a TURN server core on the fake network.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe::turn::client::{Client, ClientConfig, ClientEvent};
use floe::turn::server::{
    ClientOutput, FiveTuple, PeerOutput, RelayAsk, RelayGrant, RelayRefusal, Server, ServerConfig,
    ServerEvent, PEER_HEADROOM,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::network::{Network, Sim};

pub const USER: &str = "alice";
pub const PASS: &str = "wonderland";
pub const REALM: &str = "floe.test";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The client's address as the server sees it, and the server's.
pub const CLIENT: &str = "203.0.113.9:40000";
pub const SERVER: &str = "198.51.100.1:3478";
/// The IP the server relays from.
pub const RELAY_IP: &str = "198.51.100.1";
/// Peers live in TEST-NET-1, which the server's policy allows explicitly.
pub const PEER_NET: &str = "192.0.2.0/24";

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

/// A datagram on the client↔server path, as the network carried it.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// When it arrived.
    pub at: Instant,
    pub direction: Direction,
    pub payload: Bytes,
}

/// The driver's relay ports: every address the OS would bind is free unless a relay of
/// this pair already has it. The driver's side of the core's relay requests is all in
/// [`drive_server`].
#[derive(Default)]
pub struct FreePorts {
    bound: std::collections::HashSet<SocketAddr>,
}

impl FreePorts {
    /// Answers a request for relays the way the actors do, without sockets.
    fn fulfil(&mut self, ask: RelayAsk) -> Result<RelayGrant, RelayRefusal> {
        match ask {
            RelayAsk::Bind {
                mut primary,
                additional,
                ..
            } => {
                let bound = &self.bound;
                let c = primary
                    .next_free(|a| bound.contains(&a))
                    .ok_or(RelayRefusal::InsufficientCapacity)?;
                self.bound.insert(c.relay);
                let additional = additional.and_then(|mut v6| {
                    let bound = &self.bound;
                    let a = v6.next_free(|a| bound.contains(&a))?.relay;
                    self.bound.insert(a);
                    Some(a)
                });
                Ok(RelayGrant {
                    relayed: c.relay,
                    reserved: c.reserved,
                    additional,
                })
            }
            // The pair makes no reservations, so there is none to redeem.
            _ => Err(RelayRefusal::InsufficientCapacity),
        }
    }
}

/// Feeds one datagram from the client to the server core, as a server driver does, and
/// returns the data the server relays to a peer, if any: `(relay, peer, data)`.
///
/// This is the one place that knows how the server core is driven; it changes with the
/// core's API.
pub fn drive_server(
    server: &mut Server,
    ports: &mut FreePorts,
    now: Instant,
    five_tuple: &FiveTuple,
    datagram: &[u8],
) -> Option<(SocketAddr, SocketAddr, Bytes)> {
    let out = match server.handle_client(now, five_tuple, datagram) {
        ClientOutput::None => None,
        ClientOutput::Relay {
            relay,
            peer,
            payload,
            ..
        } => Some((relay, peer, Bytes::copy_from_slice(payload))),
        ClientOutput::RelayOwned {
            relay,
            peer,
            payload,
            ..
        } => Some((relay, peer, payload)),
    };
    // RFC 8656 §7.2: an authenticated Allocate asks the driver for its relay socket.
    while let Some(request) = server.poll_relay_request() {
        let answer = ports.fulfil(request.relays);
        server.relay_ready(now, request.id, answer);
    }
    out
}

/// A server configuration for the pair: long-term credentials `USER`/`PASS` in `REALM`,
/// relays on `RELAY_IP`, peers in `PEER_NET` allowed.
pub fn server_config(t0: Instant) -> ServerConfig {
    let mut c = ServerConfig::new(RELAY_IP.parse().unwrap(), t0, 1_700_000_000);
    c.realm = REALM.into();
    c.nonce_secret = [7; 32];
    c.credentials.users.insert(USER, PASS);
    c.policy.allow(PEER_NET.parse().unwrap());
    c.policy.add_own(addr(SERVER));
    c
}

/// A client configuration for the pair: `USER`/`PASS` from `CLIENT` to `SERVER` over UDP.
pub fn client_config() -> ClientConfig {
    ClientConfig::new(addr(SERVER), addr(CLIENT), USER, PASS)
}

/// A client core and a server core on one fake network and one fake clock.
pub struct Pair {
    pub now: Instant,
    pub client: Client,
    pub server: Server,
    ports: FreePorts,
    five_tuple: FiveTuple,
    pub net: Network<(Direction, Bytes)>,
    /// Every datagram the network delivered, in order.
    pub log: Vec<Datagram>,
    /// What peers received from the relays: `(relay, peer, data)`.
    pub peer_inbox: Vec<(SocketAddr, SocketAddr, Bytes)>,
    /// Client events not yet taken by the test.
    pub client_events: Vec<ClientEvent>,
    /// Server events not yet taken by the test.
    pub server_events: Vec<ServerEvent>,
}

impl Pair {
    /// A pair with the default configurations.
    pub fn new() -> Self {
        Self::with(|_| {}, |_| {})
    }

    /// A pair whose configurations the test adjusts first.
    pub fn with(
        client: impl FnOnce(&mut ClientConfig),
        server: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let now = Instant::now();
        let mut cc = client_config();
        client(&mut cc);
        // The server sees the client over the transport the client uses; over TCP and TLS
        // the driver hands it whole messages, as the network here carries them.
        let transport = cc.transport;
        let mut sc = server_config(now);
        server(&mut sc);
        Pair {
            now,
            client: Client::new(cc, StdRng::seed_from_u64(1)),
            server: Server::new(sc, StdRng::seed_from_u64(2)),
            ports: FreePorts::default(),
            five_tuple: FiveTuple {
                client: addr(CLIENT),
                server: addr(SERVER),
                transport,
            },
            net: Network::new(Duration::from_millis(10)),
            log: Vec::new(),
            peer_inbox: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Moves the clock forward by `d`, firing the timers that fall due on the way.
    pub fn run_for(&mut self, d: Duration) {
        self.drive(d, |_| false);
    }

    /// Runs until `done` holds or `limit` of fake time has passed; see [`Sim::drive`].
    pub fn run_until(&mut self, limit: Duration, done: impl FnMut(&mut Pair) -> bool) -> bool {
        self.drive(limit, done)
    }

    /// Runs until the client reports an event that `pick` accepts, and returns what it
    /// picked; panics after a minute of fake time (every step here takes milliseconds).
    pub fn expect_client<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> T {
        let mut found = None;
        self.run_until(Duration::from_secs(60), |p| {
            if let Some(i) = p.client_events.iter().position(|e| pick(e).is_some()) {
                found = pick(&p.client_events.remove(i));
            }
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("{what}: not reported; events: {:?}", self.client_events))
    }

    /// Takes the client's events so far.
    pub fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    /// Takes the server's events so far.
    pub fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// Allocates with the long-term credentials and returns the relayed address.
    pub fn allocate(&mut self) -> SocketAddr {
        self.client.allocate(self.now).unwrap();
        self.expect_client("Allocated", |e| match e {
            ClientEvent::Allocated { relayed, .. } => Some(relayed[0]),
            _ => None,
        })
    }

    /// A peer sends `data` to the relayed address `relay`, as the server's driver would hand
    /// it to the core; whatever the core makes of it goes on the network to the client.
    pub fn peer_sends(&mut self, peer: SocketAddr, relay: SocketAddr, data: &[u8]) {
        let mut buf = vec![0u8; PEER_HEADROOM + data.len() + 4];
        buf[PEER_HEADROOM..PEER_HEADROOM + data.len()].copy_from_slice(data);
        let payload = match self
            .server
            .handle_peer(self.now, relay, peer, &mut buf, data.len())
        {
            PeerOutput::Drop => return,
            PeerOutput::ChannelData { client, len } => {
                assert_eq!(client, self.five_tuple);
                Bytes::copy_from_slice(&buf[..len])
            }
            PeerOutput::DataIndication { client, message } => {
                assert_eq!(client, self.five_tuple);
                message
            }
        };
        self.net.send(self.now, (Direction::ToClient, payload));
    }

    /// The STUN messages the network carried in `direction`, decoded (ChannelData skipped).
    pub fn stun_log(&self, direction: Direction) -> Vec<floe::stun::Message> {
        self.log
            .iter()
            .filter(|d| d.direction == direction && d.payload.first().is_some_and(|b| *b < 4))
            .map(|d| floe::stun::Message::decode(d.payload.clone()).expect("valid STUN"))
            .collect()
    }
}

impl Sim for Pair {
    fn clock(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn step(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        for (direction, payload) in self.net.arrived(now) {
            match direction {
                Direction::ToServer => {
                    let out = drive_server(
                        &mut self.server,
                        &mut self.ports,
                        now,
                        &self.five_tuple,
                        &payload,
                    );
                    self.peer_inbox.extend(out);
                }
                Direction::ToClient => self.client.handle_input(now, addr(SERVER), payload.clone()),
            }
            self.log.push(Datagram {
                at: now,
                direction,
                payload,
            });
            moved = true;
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        while let Some(t) = self.client.poll_transmit() {
            assert_eq!(
                t.destination,
                addr(SERVER),
                "the client sends to its server"
            );
            self.net.send(now, (Direction::ToServer, t.payload));
            moved = true;
        }
        while let Some(t) = self.server.poll_transmit() {
            assert_eq!(t.destination, addr(CLIENT), "the server answers its client");
            self.net.send(now, (Direction::ToClient, t.payload));
            moved = true;
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
            moved = true;
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
            moved = true;
        }
        moved
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.net.next_arrival(),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
