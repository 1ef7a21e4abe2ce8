//! The TURN client core (RFC 8656), sans-IO: one session with one TURN (or STUN) server.
//!
//! [`TurnClient`] drives Binding (RFC 8489 §6), Allocate, Refresh, CreatePermission and
//! ChannelBind (RFC 8656 §7-§12) with the long-term credential mechanism (RFC 8489 §9.2),
//! and moves application data through Send/Data indications and ChannelData. It never
//! reads a clock nor touches a socket:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use floe::turn::client::{ClientConfig, TurnClient};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let config = ClientConfig::new(
//!     "192.0.2.1:3478".parse().unwrap(), // the server
//!     "0.0.0.0:40000".parse().unwrap(),  // the local socket
//!     "user",
//!     "pass",
//! );
//! let mut client = TurnClient::new(config, StdRng::seed_from_u64(1));
//! let now = Instant::now();
//! client.allocate(now).unwrap();
//! let t = client.poll_transmit().unwrap(); // send t.payload to t.destination
//! assert_eq!(t.destination, "192.0.2.1:3478".parse().unwrap());
//! // feed what the server answers to `handle_input`, call `handle_timeout` at
//! // `poll_timeout()`, and read `poll_event()` until it is empty.
//! assert_eq!(client.poll_timeout(), Some(now + Duration::from_millis(500)));
//! ```

mod auth;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use thiserror::Error;
use tracing::debug;

use crate::stun::attribute::{
    AdditionalAddressFamily, AddressErrorCode, AddressFamily, AlternateDomain, AlternateServer,
    Data, Lifetime, MappedAddress, RequestedAddressFamily, RequestedTransport, Software,
    XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use crate::stun::transaction::{
    ClientTransaction, RtoEstimator, TransactionConfig, TransactionState,
};
use crate::stun::{
    AttributeCodec, Class, Message, MessageEncoder, Method, StunError, TransactionId,
};
use crate::transmit::{Transmit, Transport};
use crate::turn::{ChannelData, ChannelNumber};

use auth::Auth;

/// RFC 8656 §9: a permission lasts 300 s.
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Permissions are re-created after 4 minutes, a minute before they expire.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// RFC 8656 §12: a channel binding lasts 600 s.
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Channels are re-bound after 9 minutes, a minute before they expire.
const CHANNEL_REFRESH: Duration = Duration::from_secs(540);
/// RFC 8489 §6.2.1: a cached RTO is stale after 10 minutes without a transaction.
const RTO_CACHE: Duration = Duration::from_secs(600);
/// Peers per CreatePermission request, so the request stays well inside one datagram.
const MAX_PEERS_PER_REQUEST: usize = 32;

/// The configuration of one client session (RFC 8656 §7.1 for the Allocate parameters).
/// Its `Debug` output leaves the password out.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The TURN (or STUN) server. A 300 Try Alternate replaces it for the session.
    pub server: SocketAddr,
    /// The local address of the socket the driver sends from (`Transmit::source`).
    pub local: SocketAddr,
    /// UDP, TCP or TLS to the server (RFC 8656 §3.1). Requests are retransmitted only
    /// over UDP (RFC 8489 §6.2.1); ChannelData is padded over TCP and TLS (§12.5).
    pub transport: Transport,
    /// The long-term credential username (RFC 8489 §9.2).
    pub username: String,
    /// The long-term credential password (RFC 8489 §9.2).
    pub password: String,
    /// RFC 8489 §14.14: SOFTWARE sent in requests, if any.
    pub software: Option<String>,
    /// RFC 8656 §7.1: the allocation lifetime asked for (600 s by default).
    pub lifetime: Duration,
    /// RFC 8656 §7.1: REQUESTED-ADDRESS-FAMILY (IPv4 when `None`, the server's default).
    pub requested_family: Option<AddressFamily>,
    /// RFC 8656 §7.1: ADDITIONAL-ADDRESS-FAMILY for a dual-stack allocation. The RFC only
    /// allows IPv6 here, and not together with `requested_family`; the server answers 400
    /// otherwise.
    pub additional_family: Option<AddressFamily>,
    /// RFC 8489 §6.2: retransmission timers.
    pub transaction: TransactionConfig,
    /// RFC 8489 §14.7: append FINGERPRINT to requests (on by default).
    pub fingerprint: bool,
    /// RFC 8489 §10: how many 300 Try Alternate redirects to follow (3 by default).
    pub max_redirects: u32,
    /// RFC 8489 §9.2.5: how many times one request is re-sent after a 438 Stale Nonce
    /// (once by default).
    pub max_stale_nonce_retries: u32,
}

impl ClientConfig {
    /// A configuration with safe defaults: UDP, 600 s lifetime, RFC 8489 timers.
    pub fn new(
        server: SocketAddr,
        local: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        ClientConfig {
            server,
            local,
            transport: Transport::Udp,
            username: username.into(),
            password: password.into(),
            software: None,
            lifetime: Duration::from_secs(600),
            requested_family: None,
            additional_family: None,
            transaction: TransactionConfig::default(),
            fingerprint: true,
            max_redirects: 3,
            max_stale_nonce_retries: 1,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("software", &self.software)
            .field("lifetime", &self.lifetime)
            .field("requested_family", &self.requested_family)
            .field("additional_family", &self.additional_family)
            .field("transaction", &self.transaction)
            .field("fingerprint", &self.fingerprint)
            .field("max_redirects", &self.max_redirects)
            .field("max_stale_nonce_retries", &self.max_stale_nonce_retries)
            .finish()
    }
}

/// Where the session's allocation stands (RFC 8656 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// No allocation.
    Idle,
    /// An Allocate transaction is under way (including 401/438/300 rounds).
    Allocating,
    /// The server holds an allocation; it is refreshed automatically.
    Allocated,
    /// A Refresh with LIFETIME 0 is under way (RFC 8656 §7.2).
    Deleting,
}

/// What the client tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// RFC 8489 §6: a Binding response: the server-reflexive address and the round-trip
    /// time, which is `None` when the request was retransmitted (ambiguous, RFC 6298 §3).
    BindingSucceeded {
        /// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS from an RFC 3489 server).
        mapped: SocketAddr,
        /// Round-trip time of the request.
        rtt: Option<Duration>,
    },
    /// RFC 8656 §7.3: the allocation exists.
    Allocated {
        /// XOR-RELAYED-ADDRESS: one, or two for a dual-stack allocation (RFC 8656 §7.1).
        relayed: Vec<SocketAddr>,
        /// XOR-MAPPED-ADDRESS: the client's reflexive address, if the server sent it.
        mapped: Option<SocketAddr>,
        /// LIFETIME the server granted.
        lifetime: Duration,
    },
    /// RFC 8656 §8: a Refresh (automatic or explicit) succeeded.
    Refreshed {
        /// LIFETIME the server granted.
        lifetime: Duration,
    },
    /// RFC 8656 §8.3: the allocation was deleted (Refresh with LIFETIME 0, or the server
    /// answered 437 to it). The session is back to [`ClientState::Idle`].
    Deleted,
    /// RFC 8656 §8.3: the allocation is gone without being deleted: it reached its expiry
    /// without a successful refresh, or the server no longer knows it (437).
    AllocationExpired,
    /// RFC 8656 §10.3: permissions were installed for these peers (explicit requests only;
    /// the automatic re-creation every 4 minutes is silent unless it fails).
    PermissionCreated {
        /// The peer IP addresses of the request.
        peers: Vec<IpAddr>,
    },
    /// RFC 8656 §12.3: a channel is bound to `peer` (explicit requests only; the automatic
    /// re-binding every 9 minutes is silent unless it fails).
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number (0x4000-0x4FFF).
        channel: u16,
    },
    /// RFC 8656 §11.4, §12.6: data from a peer, from a Data indication or ChannelData.
    Data {
        /// The peer that sent it to the relayed address.
        peer: SocketAddr,
        /// The application data (shares the received buffer).
        data: Bytes,
    },
    /// A request failed.
    Error {
        /// The request's method.
        request: Method,
        /// The STUN error code of the server's error response (RFC 8489 §14.8); `None`
        /// when no usable answer came: a timeout (RFC 8489 §6.2.1), responses that all
        /// failed the integrity check, or a malformed success response.
        code: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// RFC 8489 §10, RFC 8656 §7.4: the server answered 300 Try Alternate; the session now
    /// talks to `to` (over TCP and TLS the driver must connect there first).
    Redirected {
        /// ALTERNATE-SERVER.
        to: SocketAddr,
        /// ALTERNATE-DOMAIN (RFC 8489 §14.16), the name to verify the TLS certificate of.
        domain: Option<String>,
    },
}

/// Why a command was refused locally, without sending anything.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// RFC 8656 §7: the command needs an allocation, and there is none (yet).
    #[error("no allocation")]
    NoAllocation,
    /// RFC 8656 §6: one session (one 5-tuple) holds at most one allocation.
    #[error("an allocation exists or is being requested")]
    AllocationExists,
    /// RFC 8656 §9: no permission is installed for the peer's IP address.
    #[error("no permission for {0}")]
    NoPermission(IpAddr),
    /// RFC 8656 §10.2, §12.2: the allocation has no relayed address of the peer's family
    /// (the server would answer 443 Peer Address Family Mismatch).
    #[error("no relayed address of the family of {0}")]
    PeerAddressFamilyMismatch(IpAddr),
    /// RFC 8656 §12: all channel numbers 0x4000-0x4FFF of this allocation are used.
    #[error("no channel number left")]
    NoChannelNumber,
    /// RFC 8656 §11.1, §12.4: the data does not fit a Send indication or ChannelData.
    #[error("{0} bytes of data do not fit one TURN message")]
    TooLarge(usize),
}

/// A request of the session, re-encoded with a new transaction id on every retry.
#[derive(Clone, Debug)]
enum Request {
    Binding,
    Allocate,
    Refresh {
        lifetime: Duration,
    },
    CreatePermission {
        peers: Vec<IpAddr>,
        auto: bool,
    },
    ChannelBind {
        peer: SocketAddr,
        channel: ChannelNumber,
        auto: bool,
    },
}

impl Request {
    fn method(&self) -> Method {
        match self {
            Request::Binding => Method::BINDING,
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission { .. } => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
        }
    }

    /// RFC 8656 §7: every TURN request uses the long-term credentials; Binding does not.
    fn authenticated(&self) -> bool {
        !matches!(self, Request::Binding)
    }
}

/// Retry budget of one request across its 401 / 438 rounds.
#[derive(Clone, Copy, Debug, Default)]
struct Retries {
    auth: u32,
    nonce: u32,
}

#[derive(Debug)]
struct Pending {
    request: Request,
    tx: ClientTransaction,
    started: Instant,
    signed: bool,
    retries: Retries,
    integrity_failed: bool,
}

#[derive(Debug)]
struct Allocation {
    relayed: Vec<SocketAddr>,
    expires: Instant,
    refresh_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Permission {
    installed_until: Option<Instant>,
    refresh_at: Option<Instant>,
    /// The application asked for it and has not removed it: keep it refreshed.
    wanted: bool,
}

#[derive(Debug)]
struct Channel {
    number: ChannelNumber,
    bound_until: Option<Instant>,
    refresh_at: Option<Instant>,
    wanted: bool,
}

/// `t + d`, saturating far in the future instead of panicking on overflow.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(t)
}

/// RFC 8656 §8 suggests refreshing "roughly 1 minute before it expires": floe refreshes
/// 60 s before expiry, or at half the lifetime when that is 2 minutes or less.
fn refresh_delay(lifetime: Duration) -> Duration {
    if lifetime > Duration::from_secs(120) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime / 2
    }
}

fn lifetime_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// One client session with one TURN server (RFC 8656): at most one allocation, with its
/// permissions and channels, plus STUN Binding requests to the same server.
pub struct TurnClient {
    config: ClientConfig,
    rng: Box<dyn RngCore + Send>,
    server: SocketAddr,
    visited: Vec<SocketAddr>,
    auth: Option<Auth>,
    state: ClientState,
    allocation: Option<Allocation>,
    requested_lifetime: Duration,
    mapped: Option<SocketAddr>,
    permissions: HashMap<IpAddr, Permission>,
    channels: HashMap<SocketAddr, Channel>,
    channel_peers: HashMap<ChannelNumber, SocketAddr>,
    /// RFC 8656 §12: the next channel number to hand out, from 0x4000 upward.
    next_channel: u16,
    pending: Vec<Pending>,
    rto: RtoEstimator,
    rto_sampled: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl std::fmt::Debug for TurnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnClient")
            .field("server", &self.server)
            .field("state", &self.state)
            .field("relayed", &self.relayed_addresses())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl TurnClient {
    /// A session with `config.server`; transaction ids come from `rng`.
    pub fn new(config: ClientConfig, rng: impl RngCore + Send + 'static) -> Self {
        TurnClient {
            server: config.server,
            requested_lifetime: config.lifetime,
            config,
            rng: Box::new(rng),
            visited: Vec::new(),
            auth: None,
            state: ClientState::Idle,
            allocation: None,
            mapped: None,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            channel_peers: HashMap::new(),
            next_channel: ChannelNumber::MIN.get(),
            pending: Vec::new(),
            rto: RtoEstimator::default(),
            rto_sampled: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ---- commands -------------------------------------------------------------------

    /// RFC 8489 §6: sends a Binding request; [`ClientEvent::BindingSucceeded`] reports the
    /// reflexive address and the RTT. Needs no allocation and no credentials.
    pub fn binding(&mut self, now: Instant) {
        self.send_request(now, Request::Binding, Retries::default());
    }

    /// RFC 8656 §7.1: requests an allocation: first without credentials, then answering
    /// the 401 challenge (RFC 8489 §9.2), a 438 Stale Nonce, or a 300 Try Alternate
    /// (RFC 8656 §7.4). Other errors end in [`ClientEvent::Error`]; what to do next
    /// (another transport after a timeout, another local port after 437, waiting a minute
    /// after 486/508) is the application's choice.
    pub fn allocate(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.state != ClientState::Idle {
            return Err(ClientError::AllocationExists);
        }
        self.state = ClientState::Allocating;
        self.requested_lifetime = self.config.lifetime;
        self.send_request(now, Request::Allocate, Retries::default());
        Ok(())
    }

    /// RFC 8656 §8.1: refreshes the allocation now, asking for `lifetime`, which later
    /// automatic refreshes ask for too. A zero lifetime deletes the allocation.
    pub fn refresh(&mut self, now: Instant, lifetime: Duration) -> Result<(), ClientError> {
        if lifetime.is_zero() {
            return self.delete(now);
        }
        let alloc = self.allocated_mut().ok_or(ClientError::NoAllocation)?;
        alloc.refresh_at = None;
        self.requested_lifetime = lifetime;
        self.send_request(now, Request::Refresh { lifetime }, Retries::default());
        Ok(())
    }

    /// RFC 8656 §8.1: deletes the allocation (Refresh with LIFETIME 0);
    /// [`ClientEvent::Deleted`] follows and the session is idle again.
    pub fn delete(&mut self, now: Instant) -> Result<(), ClientError> {
        let alloc = self.allocated_mut().ok_or(ClientError::NoAllocation)?;
        alloc.refresh_at = None;
        self.state = ClientState::Deleting;
        let lifetime = Duration::ZERO;
        self.send_request(now, Request::Refresh { lifetime }, Retries::default());
        Ok(())
    }

    /// RFC 8656 §10.1: installs permissions for `peers` in one CreatePermission request
    /// (several XOR-PEER-ADDRESS; the port is ignored), and re-creates them every 4 minutes
    /// (they last 5, §9) until [`remove_permission`](Self::remove_permission).
    /// [`ClientEvent::PermissionCreated`] confirms; if a creation or re-creation fails, an
    /// [`ClientEvent::Error`] reports it and the permission is no longer refreshed (call
    /// again to retry).
    pub fn create_permission(&mut self, now: Instant, peers: &[IpAddr]) -> Result<(), ClientError> {
        let alloc = self.allocated().ok_or(ClientError::NoAllocation)?;
        if let Some(ip) = peers
            .iter()
            .find(|ip| !alloc.relayed.iter().any(|r| same_family(r.ip(), **ip)))
        {
            return Err(ClientError::PeerAddressFamilyMismatch(*ip));
        }
        let mut list: Vec<IpAddr> = Vec::with_capacity(peers.len());
        for ip in peers {
            if !list.contains(ip) {
                list.push(*ip);
            }
            self.permissions.entry(*ip).or_default().wanted = true;
        }
        for chunk in list.chunks(MAX_PEERS_PER_REQUEST) {
            let peers = chunk.to_vec();
            let request = Request::CreatePermission { peers, auto: false };
            self.send_request(now, request, Retries::default());
        }
        Ok(())
    }

    /// Stops refreshing the permission for `peer` and the channels to it. They stay usable
    /// until they expire on the server (RFC 8656 §9: permissions cannot be deleted).
    pub fn remove_permission(&mut self, peer: IpAddr) {
        if let Some(p) = self.permissions.get_mut(&peer) {
            p.wanted = false;
            p.refresh_at = None;
        }
        for (addr, ch) in &mut self.channels {
            if addr.ip() == peer {
                ch.wanted = false;
                ch.refresh_at = None;
            }
        }
    }

    /// RFC 8656 §12.1: binds a channel (numbers from 0x4000 upward) to `peer`, or refreshes
    /// the one it has, and re-binds it every 9 minutes (bindings last 10). The binding
    /// also installs the permission for the peer's IP (§12.3), which is kept refreshed too.
    /// Returns the channel number; a peer keeps its number for the allocation's life. Data
    /// goes through the channel once [`ClientEvent::ChannelBound`] confirms it (§12);
    /// failures are reported as with [`create_permission`](Self::create_permission). After
    /// an unexpected 400 the RFC recommends deleting the allocation and starting afresh
    /// (§12.3); that is left to the application.
    pub fn channel_bind(&mut self, now: Instant, peer: SocketAddr) -> Result<u16, ClientError> {
        let alloc = self.allocated().ok_or(ClientError::NoAllocation)?;
        if !alloc.relayed.iter().any(|r| same_family(r.ip(), peer.ip())) {
            return Err(ClientError::PeerAddressFamilyMismatch(peer.ip()));
        }
        let channel = match self.channels.get_mut(&peer) {
            Some(ch) => {
                ch.wanted = true;
                ch.number
            }
            None => {
                // Clients pick from RFC 8656's range; only receivers accept RFC 5766's wider one.
                let number =
                    ChannelNumber::new(self.next_channel).ok_or(ClientError::NoChannelNumber)?;
                self.next_channel += 1;
                self.channels.insert(
                    peer,
                    Channel {
                        number,
                        bound_until: None,
                        refresh_at: None,
                        wanted: true,
                    },
                );
                self.channel_peers.insert(number, peer);
                number
            }
        };
        self.permissions.entry(peer.ip()).or_default().wanted = true;
        let request = Request::ChannelBind {
            peer,
            channel,
            auto: false,
        };
        self.send_request(now, request, Retries::default());
        Ok(channel.get())
    }

    /// RFC 8656 §11.1, §12.5: sends `data` to `peer` through the relay: as ChannelData when
    /// a channel to the peer is bound, otherwise as a Send indication. Needs an installed
    /// permission for the peer's IP.
    pub fn send_to(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let alloc = self.allocated().ok_or(ClientError::NoAllocation)?;
        if !alloc.relayed.iter().any(|r| same_family(r.ip(), peer.ip())) {
            return Err(ClientError::PeerAddressFamilyMismatch(peer.ip()));
        }
        let permitted = self
            .permissions
            .get(&peer.ip())
            .and_then(|p| p.installed_until)
            .is_some_and(|t| t > now);
        if !permitted {
            return Err(ClientError::NoPermission(peer.ip()));
        }
        let channel = self
            .channels
            .get(&peer)
            .filter(|c| c.bound_until.is_some_and(|t| t > now))
            .map(|c| c.number);
        let payload = match channel {
            Some(number) => {
                if data.len() > ChannelData::MAX_DATA_LEN {
                    return Err(ClientError::TooLarge(data.len()));
                }
                let pad = self.config.transport.is_reliable();
                let mut buf = BytesMut::with_capacity(ChannelData::encoded_len(data.len(), pad));
                ChannelData::encode_into(number, data, &mut buf, pad)
                    .map_err(|_| ClientError::TooLarge(data.len()))?;
                buf.freeze()
            }
            None => {
                let tid = TransactionId::random(&mut *self.rng);
                let mut buf = BytesMut::with_capacity(data.len() + 48);
                let mut enc = MessageEncoder::new(&mut buf, Method::SEND.indication(), tid);
                enc.add(&XorPeerAddress(peer)).add_raw(Data::TYPE, data);
                if enc.finish().is_err() {
                    return Err(ClientError::TooLarge(data.len()));
                }
                buf.freeze()
            }
        };
        self.queue(payload);
        Ok(())
    }

    // ---- I/O ------------------------------------------------------------------------

    /// Takes one datagram (or one framed STUN / ChannelData message over TCP and TLS)
    /// from the server. Anything not from the server, not STUN nor ChannelData (RFC 7983),
    /// malformed, unexpected, or failing integrity is dropped without an event.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        if from != self.server {
            return;
        }
        match data.first() {
            // RFC 7983 §7: 0-3 is STUN, 64-79 is TURN ChannelData (64-127 with RFC 5766's
            // wider channel range, which the shared decoder accepts).
            Some(0..=3) => {
                let Ok(msg) = Message::decode(data) else {
                    return;
                };
                match msg.class() {
                    Class::Success | Class::Error => self.handle_response(now, msg),
                    Class::Indication if msg.method() == Method::DATA => self.handle_data(msg),
                    _ => {}
                }
            }
            Some(64..=127) => {
                if self.allocation.is_none() {
                    return;
                }
                let Ok(msg) = ChannelData::decode(data) else {
                    return;
                };
                if let Some(peer) = self.channel_peers.get(&msg.channel()) {
                    let peer = *peer;
                    self.events.push_back(ClientEvent::Data {
                        peer,
                        data: msg.into_data(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Advances the timers: retransmissions and transaction timeouts (RFC 8489 §6.2),
    /// allocation refresh and expiry (RFC 8656 §8), permission and channel refreshes
    /// (§9, §12). Call it at [`poll_timeout`](Self::poll_timeout) (earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut timed_out = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            p.tx.handle_timeout(now);
            if p.tx.state() == TransactionState::TimedOut {
                timed_out.push(self.pending.swap_remove(i));
                continue;
            }
            if let Some(payload) = p.tx.poll_transmit(now) {
                self.transmits.push_back(Transmit {
                    source: self.config.local,
                    destination: self.server,
                    transport: self.config.transport,
                    payload,
                });
            }
            i += 1;
        }
        for p in timed_out {
            let reason = if p.integrity_failed {
                "no response passed the integrity check"
            } else {
                "timed out"
            };
            self.request_failed(now, p.request, None, reason.into());
        }

        let Some(alloc) = &mut self.allocation else {
            return;
        };
        if now >= alloc.expires {
            debug!(server = %self.server, "TURN allocation expired");
            self.clear();
            self.events.push_back(ClientEvent::AllocationExpired);
            return;
        }
        if self.state != ClientState::Allocated {
            return;
        }
        if alloc.refresh_at.is_some_and(|t| now >= t) {
            alloc.refresh_at = None;
            let lifetime = self.requested_lifetime;
            self.send_request(now, Request::Refresh { lifetime }, Retries::default());
        }

        let mut due = Vec::new();
        self.permissions.retain(|ip, p| {
            if p.wanted && p.refresh_at.is_some_and(|t| now >= t) {
                p.refresh_at = None;
                due.push(*ip);
            }
            p.wanted || p.installed_until.is_some_and(|t| t > now)
        });
        for chunk in due.chunks(MAX_PEERS_PER_REQUEST) {
            let peers = chunk.to_vec();
            let request = Request::CreatePermission { peers, auto: true };
            self.send_request(now, request, Retries::default());
        }

        // Channel entries stay for the allocation's life (at most 4096): RFC 8656 §12 forbids
        // re-binding a number or a peer differently within 5 minutes of expiry, and keeping
        // each peer's number makes that hold without timers.
        let mut due = Vec::new();
        for (peer, c) in &mut self.channels {
            if c.wanted && c.refresh_at.is_some_and(|t| now >= t) {
                c.refresh_at = None;
                due.push((*peer, c.number));
            }
        }
        for (peer, channel) in due {
            let request = Request::ChannelBind {
                peer,
                channel,
                auto: true,
            };
            self.send_request(now, request, Retries::default());
        }
    }

    /// The next message to send, from [`ClientConfig::local`] to the server.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self
            .pending
            .iter()
            .filter_map(|p| p.tx.poll_timeout())
            .min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if let Some(alloc) = &self.allocation {
            consider(Some(alloc.expires));
            if self.state == ClientState::Allocated {
                consider(alloc.refresh_at);
                for p in self.permissions.values().filter(|p| p.wanted) {
                    consider(p.refresh_at);
                }
                for c in self.channels.values().filter(|c| c.wanted) {
                    consider(c.refresh_at);
                }
            }
        }
        next
    }

    // ---- accessors ------------------------------------------------------------------

    /// Where the allocation stands.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The server the session talks to (the configured one, or where a 300 sent it).
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// RFC 8656 §7.3: the relayed transport addresses of the allocation (empty without).
    pub fn relayed_addresses(&self) -> &[SocketAddr] {
        self.allocation.as_ref().map_or(&[], |a| &a.relayed)
    }

    /// The latest server-reflexive address learnt (from Binding or Allocate).
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.mapped
    }

    /// RFC 8656 §8: when the allocation expires unless refreshed.
    pub fn allocation_expires(&self) -> Option<Instant> {
        self.allocation.as_ref().map(|a| a.expires)
    }

    /// RFC 8656 §9: whether a permission for `peer` is installed at `now`.
    pub fn has_permission(&self, now: Instant, peer: IpAddr) -> bool {
        self.permissions
            .get(&peer)
            .and_then(|p| p.installed_until)
            .is_some_and(|t| t > now)
    }

    /// RFC 8656 §12: the channel bound to `peer` at `now`, if any.
    pub fn channel(&self, now: Instant, peer: SocketAddr) -> Option<u16> {
        self.channels
            .get(&peer)
            .filter(|c| c.bound_until.is_some_and(|t| t > now))
            .map(|c| c.number.get())
    }

    // ---- internals ------------------------------------------------------------------

    fn allocated(&self) -> Option<&Allocation> {
        self.allocation
            .as_ref()
            .filter(|_| self.state == ClientState::Allocated)
    }

    fn allocated_mut(&mut self) -> Option<&mut Allocation> {
        self.allocation
            .as_mut()
            .filter(|_| self.state == ClientState::Allocated)
    }

    fn queue(&mut self, payload: Bytes) {
        self.transmits.push_back(Transmit {
            source: self.config.local,
            destination: self.server,
            transport: self.config.transport,
            payload,
        });
    }

    /// RFC 8489 §6.2.1: the initial RTO is the cached estimate for this server while it is
    /// fresh (10 minutes), the configured one otherwise.
    fn transaction_config(&self, now: Instant) -> TransactionConfig {
        let mut config = self.config.transaction;
        if self
            .rto_sampled
            .is_some_and(|t| now.saturating_duration_since(t) < RTO_CACHE)
        {
            config.rto = self.rto.rto();
        }
        config
    }

    /// Encodes `request` with a fresh transaction id and starts its transaction.
    fn send_request(&mut self, now: Instant, request: Request, retries: Retries) {
        let tid = TransactionId::random(&mut *self.rng);
        let auth = self.auth.as_ref().filter(|_| request.authenticated());
        let signed = auth.is_some();
        let payload = match self.encode_request(tid, &request, auth) {
            Ok(p) => p,
            Err(e) => {
                self.request_failed(
                    now,
                    request,
                    None,
                    format!("cannot encode the request: {e}"),
                );
                return;
            }
        };
        let reliable = self.config.transport.is_reliable();
        let mut tx =
            ClientTransaction::new(now, tid, payload, reliable, self.transaction_config(now));
        if let Some(payload) = tx.poll_transmit(now) {
            self.queue(payload);
        }
        self.pending.push(Pending {
            request,
            tx,
            started: now,
            signed,
            retries,
            integrity_failed: false,
        });
    }

    fn encode_request(
        &self,
        tid: TransactionId,
        request: &Request,
        auth: Option<&Auth>,
    ) -> Result<Bytes, StunError> {
        let mut buf = BytesMut::with_capacity(256);
        let mut enc = MessageEncoder::new(&mut buf, request.method().request(), tid);
        match request {
            Request::Binding => {}
            Request::Allocate => {
                enc.add(&RequestedTransport(RequestedTransport::UDP));
                if let Some(f) = self.config.requested_family {
                    enc.add(&RequestedAddressFamily(f));
                }
                if let Some(f) = self.config.additional_family {
                    enc.add(&AdditionalAddressFamily(f));
                }
                enc.add(&Lifetime(lifetime_secs(self.requested_lifetime)));
            }
            Request::Refresh { lifetime } => {
                enc.add(&Lifetime(lifetime_secs(*lifetime)));
            }
            Request::CreatePermission { peers, .. } => {
                for ip in peers {
                    enc.add(&XorPeerAddress(SocketAddr::new(*ip, 0)));
                }
            }
            Request::ChannelBind { peer, channel, .. } => {
                enc.add(channel).add(&XorPeerAddress(*peer));
            }
        }
        if let Some(software) = &self.config.software {
            enc.add(&Software::new(software.as_str()));
        }
        if let Some(auth) = auth {
            auth.sign(&mut enc);
        }
        if self.config.fingerprint {
            enc.fingerprint();
        }
        enc.finish()?;
        Ok(buf.freeze())
    }

    fn handle_response(&mut self, now: Instant, msg: Message) {
        let tid = msg.transaction_id();
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.tx.transaction_id() == tid && p.request.method() == msg.method())
        else {
            return;
        };
        let (code, reason) = match msg.class() {
            Class::Error => auth::error_code(&msg),
            _ => (None, String::new()),
        };
        let challenge = matches!(code, Some(401 | 438));
        if !challenge {
            // RFC 8489 §9.2.5: check the integrity of responses to signed requests; over UDP
            // a forged or corrupted one is dropped as if never received, over TCP/TLS the
            // transaction fails at once.
            let authentic =
                !self.pending[i].signed || self.auth.as_ref().is_none_or(|a| a.verify(&msg));
            if !authentic || auth::is_bid_down(&msg) {
                if self.config.transport.is_reliable() {
                    let p = self.pending.swap_remove(i);
                    let reason = "response failed the integrity check".to_owned();
                    self.request_failed(now, p.request, None, reason);
                } else {
                    self.pending[i].integrity_failed = true;
                }
                return;
            }
        }
        let mut p = self.pending.swap_remove(i);
        let rtt = p.tx.complete(now);
        if let Some(rtt) = rtt {
            self.rto.sample(rtt);
            self.rto_sampled = Some(now);
        }
        // RFC 8489 §6.3.3, §6.3.4: a response with unknown comprehension-required
        // attributes fails the transaction.
        let unknown = msg.unknown_comprehension_required();
        if !unknown.is_empty() {
            let reason =
                format!("response with unknown comprehension-required attributes {unknown:?}");
            return self.request_failed(now, p.request, code, reason);
        }
        match msg.class() {
            Class::Success => self.on_success(now, p, &msg, rtt),
            _ => self.on_error(now, p, &msg, code, reason),
        }
    }

    fn on_success(&mut self, now: Instant, p: Pending, msg: &Message, rtt: Option<Duration>) {
        let tid = msg.transaction_id();
        match p.request {
            Request::Binding => {
                let mapped = msg
                    .get::<XorMappedAddress>()
                    .and_then(Result::ok)
                    .map(|a| a.0)
                    .or_else(|| msg.get::<MappedAddress>().and_then(Result::ok).map(|a| a.0));
                match mapped {
                    Some(mapped) => {
                        self.mapped = Some(mapped);
                        self.events
                            .push_back(ClientEvent::BindingSucceeded { mapped, rtt });
                    }
                    None => {
                        let reason = "Binding success without XOR-MAPPED-ADDRESS".into();
                        self.request_failed(now, p.request, None, reason);
                    }
                }
            }
            Request::Allocate => {
                // RFC 8656 §7.3: one XOR-RELAYED-ADDRESS, or two for a dual-stack allocation.
                let relayed: Vec<SocketAddr> = msg
                    .raw_attributes()
                    .filter(|(t, _)| *t == XorRelayedAddress::TYPE)
                    .filter_map(|(_, v)| XorRelayedAddress::decode(&v, &tid).ok())
                    .map(|a| a.0)
                    .collect();
                if relayed.is_empty() {
                    let reason = "Allocate success without XOR-RELAYED-ADDRESS".into();
                    self.request_failed(now, p.request, None, reason);
                    return;
                }
                if let Some(Ok(e)) = msg.get::<AddressErrorCode>() {
                    debug!(family = ?e.family, code = e.code, "TURN server refused one address family");
                }
                let lifetime = match msg.get::<Lifetime>() {
                    Some(Ok(l)) => Duration::from_secs(u64::from(l.0)),
                    _ => self.requested_lifetime,
                };
                if lifetime.is_zero() {
                    let reason = "Allocate success with LIFETIME 0".into();
                    self.request_failed(now, p.request, None, reason);
                    return;
                }
                let mapped = msg
                    .get::<XorMappedAddress>()
                    .and_then(Result::ok)
                    .map(|a| a.0);
                if mapped.is_some() {
                    self.mapped = mapped;
                }
                debug!(server = %self.server, ?relayed, ?lifetime, "TURN allocation created");
                self.allocation = Some(Allocation {
                    relayed: relayed.clone(),
                    expires: later(p.started, lifetime),
                    refresh_at: Some(later(p.started, refresh_delay(lifetime))),
                });
                self.state = ClientState::Allocated;
                self.events.push_back(ClientEvent::Allocated {
                    relayed,
                    mapped,
                    lifetime,
                });
            }
            Request::Refresh { lifetime } => {
                let granted = match msg.get::<Lifetime>() {
                    Some(Ok(l)) => Duration::from_secs(u64::from(l.0)),
                    _ => lifetime,
                };
                if lifetime.is_zero() || granted.is_zero() {
                    debug!(server = %self.server, "TURN allocation deleted");
                    self.clear();
                    self.events.push_back(ClientEvent::Deleted);
                    return;
                }
                let Some(alloc) = self.allocated_mut() else {
                    return;
                };
                alloc.expires = later(p.started, granted);
                alloc.refresh_at = Some(later(p.started, refresh_delay(granted)));
                self.events
                    .push_back(ClientEvent::Refreshed { lifetime: granted });
            }
            Request::CreatePermission { peers, auto } => {
                for ip in &peers {
                    if let Some(perm) = self.permissions.get_mut(ip) {
                        perm.installed_until = Some(later(p.started, PERMISSION_LIFETIME));
                        if perm.wanted {
                            perm.refresh_at = Some(later(p.started, PERMISSION_REFRESH));
                        }
                    }
                }
                if !auto {
                    self.events
                        .push_back(ClientEvent::PermissionCreated { peers });
                }
            }
            Request::ChannelBind {
                peer,
                channel,
                auto,
            } => {
                let Some(ch) = self.channels.get_mut(&peer).filter(|c| c.number == channel) else {
                    return;
                };
                ch.bound_until = Some(later(p.started, CHANNEL_LIFETIME));
                if ch.wanted {
                    ch.refresh_at = Some(later(p.started, CHANNEL_REFRESH));
                }
                // RFC 8656 §12.3: the binding installed or refreshed the peer's permission.
                let perm = self.permissions.entry(peer.ip()).or_default();
                perm.installed_until = Some(later(p.started, PERMISSION_LIFETIME));
                if perm.wanted {
                    perm.refresh_at = Some(later(p.started, PERMISSION_REFRESH));
                }
                if !auto {
                    self.events.push_back(ClientEvent::ChannelBound {
                        peer,
                        channel: channel.get(),
                    });
                }
            }
        }
    }

    fn on_error(
        &mut self,
        now: Instant,
        p: Pending,
        msg: &Message,
        code: Option<u16>,
        reason: String,
    ) {
        match code {
            // RFC 8489 §9.2.5: answer the challenge with a new transaction. A request that
            // already carried credentials is retried once, and only when the challenge
            // brings a new realm or nonce; otherwise the credentials are wrong.
            Some(401) if p.request.authenticated() => {
                let fresh =
                    match Auth::from_challenge(msg, &self.config.username, &self.config.password) {
                        Ok(a) => a,
                        Err(why) => return self.request_failed(now, p.request, code, why),
                    };
                if p.signed {
                    let same = self
                        .auth
                        .as_ref()
                        .is_some_and(|a| a.realm() == fresh.realm() && a.nonce() == fresh.nonce());
                    if same || p.retries.auth >= 1 {
                        return self.request_failed(now, p.request, code, reason);
                    }
                }
                self.auth = Some(fresh);
                let retries = Retries {
                    auth: p.retries.auth + u32::from(p.signed),
                    ..p.retries
                };
                self.send_request(now, p.request, retries);
            }
            // RFC 8489 §9.2.5: retry with the NONCE of the 438 (bounded).
            Some(438) if p.signed => {
                if p.retries.nonce >= self.config.max_stale_nonce_retries {
                    return self.request_failed(now, p.request, code, reason);
                }
                let Some(auth) = self.auth.as_mut() else {
                    return self.request_failed(now, p.request, code, reason);
                };
                if let Err(why) = auth.update_nonce(msg) {
                    return self.request_failed(now, p.request, code, why);
                }
                let retries = Retries {
                    nonce: p.retries.nonce + 1,
                    ..p.retries
                };
                self.send_request(now, p.request, retries);
            }
            // RFC 8656 §7.4, RFC 8489 §10: 300 Try Alternate to an Allocate.
            Some(300) if matches!(p.request, Request::Allocate) => self.redirect(now, msg, reason),
            _ => self.request_failed(now, p.request, code, reason),
        }
    }

    /// RFC 8489 §10: follows ALTERNATE-SERVER: forgets the realm and nonce of the old
    /// server, cancels what was pending there, and starts the Allocate over.
    fn redirect(&mut self, now: Instant, msg: &Message, reason: String) {
        let to = match msg.get::<AlternateServer>() {
            Some(Ok(a)) => a.0,
            _ => {
                let reason = format!("{reason} (300 without a valid ALTERNATE-SERVER)");
                return self.request_failed(now, Request::Allocate, Some(300), reason);
            }
        };
        if to == self.server || self.visited.contains(&to) {
            let reason = format!("redirect loop to {to}");
            return self.request_failed(now, Request::Allocate, Some(300), reason);
        }
        if self.visited.len() >= self.config.max_redirects as usize {
            let reason = format!("more than {} redirects", self.config.max_redirects);
            return self.request_failed(now, Request::Allocate, Some(300), reason);
        }
        let domain = msg
            .get::<AlternateDomain>()
            .and_then(Result::ok)
            .map(|d| d.as_str().to_owned());
        debug!(from = %self.server, %to, "TURN server redirects (300 Try Alternate)");
        self.visited.push(self.server);
        self.server = to;
        self.auth = None;
        self.rto = RtoEstimator::default();
        self.rto_sampled = None;
        for p in std::mem::take(&mut self.pending) {
            let reason = format!("cancelled: redirected to {to}");
            self.request_failed(now, p.request, None, reason);
        }
        self.events
            .push_back(ClientEvent::Redirected { to, domain });
        self.send_request(now, Request::Allocate, Retries::default());
    }

    /// Reports a failed request and undoes what it was meant to set up.
    fn request_failed(
        &mut self,
        now: Instant,
        request: Request,
        code: Option<u16>,
        reason: String,
    ) {
        let method = request.method();
        debug!(server = %self.server, request = ?method, ?code, %reason, "TURN request failed");
        self.events.push_back(ClientEvent::Error {
            request: method,
            code,
            reason,
        });
        match request {
            Request::Binding => {}
            Request::Allocate => {
                if self.state == ClientState::Allocating {
                    self.state = ClientState::Idle;
                }
            }
            Request::Refresh { lifetime } if lifetime.is_zero() => {
                // RFC 8656 §8.3: a 437 to a delete means the allocation is already gone.
                let gone = code == Some(437);
                self.clear();
                if gone {
                    self.events.push_back(ClientEvent::Deleted);
                }
            }
            Request::Refresh { .. } => {
                if code == Some(437) {
                    self.clear();
                    self.events.push_back(ClientEvent::AllocationExpired);
                } else if let Some(alloc) = self.allocated_mut() {
                    // Try again half-way to expiry while that leaves time for a transaction.
                    let left = alloc.expires.saturating_duration_since(now);
                    if left > Duration::from_secs(2) {
                        alloc.refresh_at = Some(later(now, left / 2));
                    }
                }
            }
            Request::CreatePermission { peers, .. } => {
                for ip in peers {
                    if let Some(p) = self.permissions.get_mut(&ip) {
                        p.wanted = false;
                        p.refresh_at = None;
                    }
                }
            }
            Request::ChannelBind { peer, .. } => {
                if let Some(c) = self.channels.get_mut(&peer) {
                    c.wanted = false;
                    c.refresh_at = None;
                }
            }
        }
    }

    /// RFC 8656 §11.4: a Data indication from the server: XOR-PEER-ADDRESS and DATA.
    fn handle_data(&mut self, msg: Message) {
        if self.allocation.is_none() {
            return;
        }
        if let (Some(Ok(XorPeerAddress(peer))), Some(Ok(Data(data)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        {
            self.events.push_back(ClientEvent::Data { peer, data });
        }
    }

    /// Forgets the allocation, its permissions and channels, and the requests about them.
    fn clear(&mut self) {
        self.state = ClientState::Idle;
        self.allocation = None;
        self.permissions.clear();
        self.channels.clear();
        self.channel_peers.clear();
        self.next_channel = ChannelNumber::MIN.get();
        self.pending
            .retain(|p| matches!(p.request, Request::Binding));
    }
}
