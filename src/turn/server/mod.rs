//! The TURN server core (RFC 8656, with RFC 5766 and RFC 6156 clients), sans-IO.
//!
//! [`Server`] holds the allocations of one thread. Control messages (Binding,
//! Allocate, Refresh, CreatePermission, ChannelBind) go through [`Server::handle_client`]
//! and their responses come out of [`Server::poll_transmit`]. Relayed data returns
//! straight from the call that received it, borrowing the caller's buffer, so the data
//! path neither copies nor allocates for ChannelData.

mod allocation;
pub mod auth;
pub mod policy;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::RngCore;

pub use allocation::{Allocation, FiveTuple};
pub use auth::{
    AuthRequest, Authenticator, Authorization, Credentials, NonceIssuer, NonceStatus,
    RestApiSecrets, Secret, StaticUsers,
};
pub use policy::PeerPolicy;

use crate::stun::attribute::*;
use crate::stun::credentials::{userhash, IntegrityKey, SecurityFeatures};
use crate::stun::PasswordAlgorithm as Algorithm;
use crate::stun::{Class, Message, MessageEncoder, MessageType, Method, TransactionId, HEADER_LEN};
use crate::transmit::Transmit;
#[cfg(test)]
use crate::transmit::Transport;
use crate::turn::{ChannelData, ChannelNumber, TurnError};

/// Settings of a TURN server core.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// RFC 8489 §9.2: the realm of long-term credentials.
    pub realm: String,
    /// SOFTWARE in responses, if any.
    pub software: Option<String>,
    /// Where keys come from.
    pub credentials: Credentials,
    /// Key of the stateless nonces; share it between the threads of one server.
    pub nonce_secret: [u8; 32],
    /// How long a nonce is valid (600 s).
    pub nonce_lifetime: Duration,
    /// Offer SHA-256 through PASSWORD-ALGORITHMS and USERHASH (RFC 8489 §9.2.1).
    pub password_algorithms: bool,
    /// Lifetime when the client asks for none (600 s, RFC 8656 §7.2).
    pub default_lifetime: Duration,
    /// Longest lifetime granted (3600 s).
    pub max_lifetime: Duration,
    /// RFC 8656 §9: 300 s.
    pub permission_lifetime: Duration,
    /// RFC 8656 §11: 600 s.
    pub channel_lifetime: Duration,
    /// IPv4 address relays bind to, if IPv4 allocations are offered.
    pub relay_ipv4: Option<IpAddr>,
    /// IPv6 address relays bind to, if IPv6 allocations are offered.
    pub relay_ipv6: Option<IpAddr>,
    /// Address advertised in XOR-RELAYED-ADDRESS instead of `relay_ipv4` (behind 1:1 NAT).
    pub external_ipv4: Option<IpAddr>,
    /// Address advertised instead of `relay_ipv6`.
    pub external_ipv6: Option<IpAddr>,
    /// Lowest relay port.
    pub min_port: u16,
    /// Highest relay port.
    pub max_port: u16,
    /// Which peers relays may reach.
    pub policy: PeerPolicy,
    /// Allocations per user (0: unlimited), shared by all threads through `quotas`.
    pub user_quota: u32,
    /// Allocations in all (0: unlimited).
    pub total_quota: u32,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Channels per allocation.
    pub max_channels: usize,
    /// The instant `unix_time_at_epoch` was read: lets the core tell Unix time from
    /// `now` for TURN REST API expiry without reading a clock.
    pub epoch: Instant,
    /// Seconds since the Unix epoch at `epoch`.
    pub unix_time_at_epoch: u64,
    /// Allocation counters shared by every thread of one server.
    pub quotas: Arc<Quotas>,
    /// Reserved relay ports, shared by every thread of one server.
    pub reservations: Arc<Reservations>,
}

impl ServerConfig {
    /// Safe defaults: realm `floe`, relays on `relay_ipv4`, no credentials (every
    /// Allocate is refused until some are added), peers in private ranges denied.
    pub fn new(relay_ipv4: IpAddr, epoch: Instant, unix_time_at_epoch: u64) -> Self {
        let mut nonce_secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut nonce_secret);
        ServerConfig {
            realm: "floe".into(),
            software: Some(concat!("floe ", env!("CARGO_PKG_VERSION")).into()),
            credentials: Credentials::default(),
            nonce_secret,
            nonce_lifetime: Duration::from_secs(600),
            password_algorithms: true,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            relay_ipv4: Some(relay_ipv4),
            relay_ipv6: None,
            external_ipv4: None,
            external_ipv6: None,
            min_port: 49152,
            max_port: 65535,
            policy: PeerPolicy::default(),
            user_quota: 0,
            total_quota: 0,
            max_permissions: 64,
            max_channels: 64,
            epoch,
            unix_time_at_epoch,
            quotas: Arc::new(Quotas::default()),
            reservations: Arc::new(Reservations::default()),
        }
    }
}

/// Allocation counts shared by the threads of a server (control plane only).
#[derive(Debug, Default)]
pub struct Quotas {
    total: AtomicU32,
    per_user: Mutex<HashMap<String, u32>>,
}

impl Quotas {
    /// Allocations alive now.
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    fn acquire(&self, user: &str, user_quota: u32, total_quota: u32) -> bool {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_user.get(user).copied().unwrap_or(0);
        if (user_quota > 0 && n >= user_quota) || (total_quota > 0 && self.total() >= total_quota) {
            return false;
        }
        per_user.insert(user.to_owned(), n + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn release(&self, user: &str) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                per_user.remove(user);
            }
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Opens relay sockets for the core: the driver binds `addr` and keeps the socket
/// until the core says [`ServerEvent::RelayReleased`].
pub trait RelayBinder {
    /// Binds a UDP socket to `addr`; false when the port is taken.
    fn bind(&mut self, addr: SocketAddr) -> bool;

    /// Binds `addr` and holds the socket for a RESERVATION-TOKEN, where any thread's
    /// binder can [`redeem`](Self::redeem) it; released with [`ServerEvent::RelayReleased`].
    fn reserve(&mut self, addr: SocketAddr) -> bool {
        self.bind(addr)
    }

    /// Takes over the socket [`reserve`](Self::reserve)d on `addr`, possibly by another
    /// thread's binder.
    fn redeem(&mut self, addr: SocketAddr) -> bool {
        self.bind(addr)
    }
}

/// Identifies an allocation for the life of the server core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub u64);

/// What happened, for the operator and the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// RFC 8656 §7.2: an allocation was created; the driver starts relaying on `relayed`.
    AllocationCreated {
        /// the allocation
        id: AllocationId,
        /// its 5-tuple
        five_tuple: FiveTuple,
        /// the user
        username: String,
        /// the relayed addresses (bound addresses, not the advertised ones)
        relayed: Vec<SocketAddr>,
        /// the granted lifetime
        lifetime: Duration,
    },
    /// RFC 8656 §7.3: refreshed.
    AllocationRefreshed {
        /// the allocation
        id: AllocationId,
        /// the new lifetime
        lifetime: Duration,
    },
    /// Deleted by the client (Refresh with LIFETIME 0) or by the driver.
    AllocationDeleted {
        /// the allocation
        id: AllocationId,
        /// its 5-tuple
        five_tuple: FiveTuple,
    },
    /// Its lifetime ran out.
    AllocationExpired {
        /// the allocation
        id: AllocationId,
        /// its 5-tuple
        five_tuple: FiveTuple,
    },
    /// RFC 8656 §9: a new permission.
    PermissionCreated {
        /// the allocation
        id: AllocationId,
        /// the peer IP
        peer: IpAddr,
    },
    /// RFC 8656 §11: a new channel binding.
    ChannelBound {
        /// the allocation
        id: AllocationId,
        /// the peer
        peer: SocketAddr,
        /// the channel number
        channel: u16,
    },
    /// A request failed authentication with 401, 438 or 441.
    AuthFailed {
        /// who sent it
        client: SocketAddr,
        /// the username it carried
        username: Option<String>,
        /// the error code sent
        code: u16,
    },
    /// An error response was sent.
    ErrorResponse {
        /// the request's method
        method: Method,
        /// the error code
        code: u16,
    },
    /// The driver closes the socket bound to this relayed address.
    RelayReleased(SocketAddr),
}

/// Where relayed data goes after [`Server::handle_client`].
#[derive(Debug, PartialEq, Eq)]
pub enum ClientOutput<'a> {
    /// Nothing to relay (a control message, or dropped).
    None,
    /// Send `payload` from the relay socket bound to `relay` to `peer`.
    Relay {
        /// the relayed address to send from
        relay: SocketAddr,
        /// the peer
        peer: SocketAddr,
        /// the application data, borrowed from the input
        payload: &'a [u8],
        /// set the DF bit (DONT-FRAGMENT)
        dont_fragment: bool,
    },
    /// As `Relay`, with data taken from a Send indication.
    RelayOwned {
        /// the relayed address to send from
        relay: SocketAddr,
        /// the peer
        peer: SocketAddr,
        /// the application data
        payload: Bytes,
        /// set the DF bit
        dont_fragment: bool,
    },
}

/// Where data from a peer goes after [`Server::handle_peer`].
#[derive(Debug, PartialEq, Eq)]
pub enum PeerOutput {
    /// No permission or no allocation: dropped (RFC 8656 §10.3).
    Drop,
    /// The first `len` bytes of the buffer now hold a ChannelData message for `client`.
    ChannelData {
        /// the allocation's 5-tuple
        client: FiveTuple,
        /// bytes to send from the start of the buffer
        len: usize,
    },
    /// A Data indication for `client` (no channel bound to this peer).
    DataIndication {
        /// the allocation's 5-tuple
        client: FiveTuple,
        /// the encoded indication
        message: Bytes,
    },
}

/// Bytes the caller leaves in front of peer data in [`Server::handle_peer`].
pub const PEER_HEADROOM: usize = ChannelData::HEADER_LEN;

struct Reservation {
    addr: SocketAddr,
    expires: Instant,
}

/// RFC 8656 §7.2: relay ports held for a RESERVATION-TOKEN, shared by the threads of a
/// server: the Allocate that redeems a token may reach another thread than the one that
/// handed it out (SO_REUSEPORT spreads clients by 5-tuple).
#[derive(Default)]
pub struct Reservations(Mutex<HashMap<[u8; 8], Reservation>>);

impl std::fmt::Debug for Reservations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservations({})", self.lock().len())
    }
}

impl Reservations {
    /// Whether `addr` is held for a token: no allocation may take it.
    fn holds(&self, addr: SocketAddr) -> bool {
        self.lock().values().any(|r| r.addr == addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 8], Reservation>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A successful authentication.
struct Authenticated {
    username: String,
    key: IntegrityKey,
    sha256: bool,
}

/// The TURN server core of one thread.
pub struct Server {
    config: ServerConfig,
    nonces: NonceIssuer,
    userhashes: HashMap<[u8; 32], String>,
    allocations: HashMap<AllocationId, Allocation>,
    by_five_tuple: HashMap<FiveTuple, AllocationId>,
    by_relay: HashMap<SocketAddr, AllocationId>,
    used_relays: HashSet<SocketAddr>,
    timers: BinaryHeap<Reverse<(Instant, AllocationId)>>,
    next_id: u64,
    rng: Box<dyn RngCore + Send>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    buf: BytesMut,
}

const PASSWORD_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

impl Server {
    /// A server core; `rng` makes relay ports and reservation tokens.
    pub fn new(config: ServerConfig, rng: impl RngCore + Send + 'static) -> Self {
        let features = config.password_algorithms.then_some(SecurityFeatures {
            password_algorithms: true,
            username_anonymity: !config.credentials.users.is_empty(),
        });
        let nonces = NonceIssuer::new(
            config.nonce_secret,
            config.epoch,
            config.nonce_lifetime,
            features,
        );
        let mut server = Server {
            nonces,
            userhashes: HashMap::new(),
            allocations: HashMap::new(),
            by_five_tuple: HashMap::new(),
            by_relay: HashMap::new(),
            used_relays: HashSet::new(),
            timers: BinaryHeap::new(),
            next_id: 1,
            rng: Box::new(rng),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            buf: BytesMut::with_capacity(4096),
            config,
        };
        server.userhashes = server
            .config
            .credentials
            .users
            .names()
            .filter_map(|u| Some((userhash(u, &server.config.realm).ok()?, u.to_owned())))
            .collect();
        for ip in [
            server.config.relay_ipv4,
            server.config.relay_ipv6,
            server.config.external_ipv4,
            server.config.external_ipv6,
        ]
        .into_iter()
        .flatten()
        {
            server.config.policy.add_own_ip(ip);
        }
        server
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Allocations held by this core.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// An allocation by id.
    pub fn allocation(&self, id: AllocationId) -> Option<&Allocation> {
        self.allocations.get(&id)
    }

    /// The allocation of a 5-tuple.
    pub fn allocation_of(&self, five_tuple: &FiveTuple) -> Option<AllocationId> {
        self.by_five_tuple.get(five_tuple).copied()
    }

    /// The allocation relaying on `relay`.
    pub fn allocation_by_relay(&self, relay: SocketAddr) -> Option<AllocationId> {
        self.by_relay.get(&relay).copied()
    }

    /// A response to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// An event for the operator or the driver.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`Server::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.peek().map(|Reverse((t, _))| *t);
        let r = self
            .config
            .reservations
            .lock()
            .values()
            .map(|r| r.expires)
            .min();
        match (t, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires allocations, permissions, channels and port reservations.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(alloc) = self.allocations.get_mut(&id) else {
                continue;
            };
            if alloc.timer != t {
                continue; // superseded by an earlier deadline
            }
            if alloc.expires <= now {
                let five_tuple = alloc.five_tuple;
                self.remove(id);
                self.events
                    .push_back(ServerEvent::AllocationExpired { id, five_tuple });
            } else {
                let next = alloc.sweep(now);
                if next > now {
                    alloc.timer = next;
                    self.timers.push(Reverse((next, id)));
                }
            }
        }
        let mut expired = Vec::new();
        self.config.reservations.lock().retain(|_, r| {
            let keep = r.expires > now;
            if !keep {
                expired.push(r.addr);
            }
            keep
        });
        for addr in expired {
            self.events.push_back(ServerEvent::RelayReleased(addr));
        }
    }

    /// Deletes an allocation from outside the protocol (its actor died, or the server
    /// shuts down); its relay is released.
    pub fn delete(&mut self, id: AllocationId) -> bool {
        match self.allocations.get(&id).map(|a| a.five_tuple) {
            Some(five_tuple) => {
                self.remove(id);
                self.events
                    .push_back(ServerEvent::AllocationDeleted { id, five_tuple });
                true
            }
            None => false,
        }
    }

    /// Deletes every allocation (graceful shutdown).
    pub fn delete_all(&mut self) {
        let ids: Vec<AllocationId> = self.allocations.keys().copied().collect();
        for id in ids {
            self.delete(id);
        }
    }

    fn remove(&mut self, id: AllocationId) {
        if let Some(alloc) = self.allocations.remove(&id) {
            self.by_five_tuple.remove(&alloc.five_tuple);
            for r in &alloc.relayed {
                self.by_relay.remove(r);
                self.used_relays.remove(r);
                self.events.push_back(ServerEvent::RelayReleased(*r));
            }
            self.config.quotas.release(&alloc.username);
        }
    }

    /// A datagram (UDP) or framed message (TCP/TLS) from a client.
    ///
    /// ChannelData and Send indications come back as data to relay; requests are
    /// answered through [`Server::poll_transmit`]. Bad input costs one error response
    /// or nothing.
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        five_tuple: &FiveTuple,
        data: &'a [u8],
        binder: &mut dyn RelayBinder,
    ) -> ClientOutput<'a> {
        match data.first() {
            Some(0x40..=0x7F) => self.client_channel_data(now, five_tuple, data),
            Some(0x00..=0x03) => {
                self.client_stun(now, five_tuple, Bytes::copy_from_slice(data), binder)
            }
            _ => ClientOutput::None,
        }
    }

    #[inline]
    fn client_channel_data<'a>(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        data: &'a [u8],
    ) -> ClientOutput<'a> {
        let Ok((channel, payload)) = ChannelData::decode_slice(data) else {
            return ClientOutput::None;
        };
        let Some(alloc) = self
            .by_five_tuple
            .get(ft)
            .and_then(|id| self.allocations.get(id))
        else {
            return ClientOutput::None;
        };
        let Some(peer) = alloc.channel_peer(now, channel) else {
            return ClientOutput::None;
        };
        match alloc.relay_for(peer.ip()) {
            Some(relay)
                if alloc.has_permission(now, peer.ip()) && self.config.policy.may_send_to(peer) =>
            {
                ClientOutput::Relay {
                    relay,
                    peer,
                    payload,
                    dont_fragment: alloc.dont_fragment,
                }
            }
            _ => ClientOutput::None,
        }
    }

    /// Data from `peer` arrived on the relay bound to `relay`. `buf` holds
    /// [`PEER_HEADROOM`] free bytes, then the `len` data bytes, then at least 3 spare
    /// bytes for padding over TCP.
    #[inline]
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> PeerOutput {
        let Some(alloc) = self
            .by_relay
            .get(&relay)
            .and_then(|id| self.allocations.get(id))
        else {
            return PeerOutput::Drop;
        };
        if !alloc.has_permission(now, peer.ip()) || buf.len() < PEER_HEADROOM + len {
            return PeerOutput::Drop;
        }
        let client = alloc.five_tuple;
        match alloc.peer_channel(now, peer) {
            Some(channel) if len <= usize::from(u16::MAX) => {
                let header: &mut [u8; 4] = (&mut buf[..4]).try_into().expect("4 bytes");
                ChannelData::write_header(header, channel, len as u16);
                let mut total = PEER_HEADROOM + len;
                if client.transport.is_reliable() {
                    let pad = ChannelData::padding_len(len);
                    if buf.len() < total + pad {
                        return PeerOutput::Drop;
                    }
                    buf[total..total + pad].fill(0);
                    total += pad;
                }
                PeerOutput::ChannelData { client, len: total }
            }
            _ => {
                let payload = &buf[PEER_HEADROOM..PEER_HEADROOM + len];
                let mut out = BytesMut::with_capacity(len + 48);
                let tid = TransactionId::random(&mut self.rng);
                let mut enc = MessageEncoder::new(&mut out, Method::DATA.indication(), tid);
                enc.add(&XorPeerAddress(peer)).add_raw(Data::TYPE, payload);
                match enc.finish() {
                    Ok(_) => PeerOutput::DataIndication {
                        client,
                        message: out.freeze(),
                    },
                    Err(_) => PeerOutput::Drop,
                }
            }
        }
    }

    fn client_stun<'a>(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        data: Bytes,
        binder: &mut dyn RelayBinder,
    ) -> ClientOutput<'a> {
        let msg = match Message::decode(data.clone()) {
            Ok(msg) => msg,
            Err(crate::stun::StunError::BadMagicCookie(_)) => {
                self.classic_binding(ft, &data);
                return ClientOutput::None;
            }
            // Not even a well-formed STUN message: no transaction to answer.
            Err(_) => return ClientOutput::None,
        };
        match msg.class() {
            Class::Request => {
                self.request(now, ft, &msg, binder);
                ClientOutput::None
            }
            Class::Indication if msg.method() == Method::SEND => {
                self.send_indication(now, ft, &msg)
            }
            _ => ClientOutput::None,
        }
    }

    /// RFC 8656 §10.2: a Send indication.
    fn send_indication<'a>(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
    ) -> ClientOutput<'a> {
        let Some(alloc) = self
            .by_five_tuple
            .get(ft)
            .and_then(|id| self.allocations.get(id))
        else {
            return ClientOutput::None;
        };
        let (Some(Ok(XorPeerAddress(peer))), Some(Ok(Data(payload)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        else {
            return ClientOutput::None;
        };
        // RFC 8489 §6.3.1: an indication with unknown comprehension-required attributes
        // is discarded.
        if !msg.unknown_comprehension_required().is_empty() {
            return ClientOutput::None;
        }
        let peer = policy::canonical_peer(peer);
        match alloc.relay_for(peer.ip()) {
            Some(relay)
                if alloc.has_permission(now, peer.ip()) && self.config.policy.may_send_to(peer) =>
            {
                ClientOutput::RelayOwned {
                    relay,
                    peer,
                    payload,
                    dont_fragment: msg.contains(DontFragment::TYPE),
                }
            }
            _ => ClientOutput::None,
        }
    }

    fn request(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        binder: &mut dyn RelayBinder,
    ) {
        let unknown = msg.unknown_comprehension_required();
        if !unknown.is_empty() {
            let err = TurnError::UnknownAttributes(unknown.iter().map(|t| t.0).collect());
            self.error(now, ft, msg, &err, None, |e| {
                e.add(&UnknownAttributes(unknown));
            });
            return;
        }
        match msg.method() {
            Method::BINDING => self.binding(ft, msg),
            Method::ALLOCATE
            | Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND => {
                let Some(auth) = self.authenticate(now, ft, msg) else {
                    return;
                };
                let result = match msg.method() {
                    Method::ALLOCATE => self.allocate(now, ft, msg, &auth, binder),
                    Method::REFRESH => self.refresh(now, ft, msg, &auth),
                    Method::CREATE_PERMISSION => self.create_permission(now, ft, msg, &auth),
                    _ => self.channel_bind(now, ft, msg, &auth),
                };
                if let Err(e) = result {
                    if e == TurnError::WrongCredentials {
                        self.events.push_back(ServerEvent::AuthFailed {
                            client: ft.client,
                            username: Some(auth.username.clone()),
                            code: 441,
                        });
                    }
                    self.error(now, ft, msg, &e, Some(&auth), |_| {});
                }
            }
            _ => self.error(
                now,
                ft,
                msg,
                &TurnError::BadRequest("unknown method"),
                None,
                |_| {},
            ),
        }
    }

    /// RFC 8489 §6.3.1, RFC 5780: Binding gets XOR-MAPPED-ADDRESS, and MAPPED-ADDRESS for
    /// RFC 3489-era clients.
    /// Nothing else is added: an unauthenticated answer should not be much larger than
    /// the request it answers (reflection amplification).
    fn binding(&mut self, ft: &FiveTuple, msg: &Message) {
        self.respond(ft, msg, Method::BINDING.success(), None, |e| {
            e.add(&XorMappedAddress(ft.client))
                .add(&MappedAddress(ft.client));
        });
    }

    /// RFC 3489 §11.2.1 (RFC 8489 §12.2): a Binding request from a client that predates
    /// the magic cookie gets MAPPED-ADDRESS, echoing its 128-bit transaction id. Other
    /// RFC 3489 requests and attributes (CHANGE-REQUEST) are not served.
    fn classic_binding(&mut self, ft: &FiveTuple, data: &[u8]) {
        if data.len() < HEADER_LEN || data[..2] != [0x00, 0x01] {
            return;
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if data.len() != HEADER_LEN + len || len % 4 != 0 {
            return;
        }
        let mut out = BytesMut::with_capacity(HEADER_LEN + 24);
        out.extend_from_slice(&[0x01, 0x01, 0, 0]);
        out.extend_from_slice(&data[4..HEADER_LEN]);
        let tid = TransactionId([0; 12]); // MAPPED-ADDRESS is not XORed
        let mut value = BytesMut::new();
        MappedAddress(ft.client).encode(&tid, &mut value);
        out.extend_from_slice(&MappedAddress::TYPE.0.to_be_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(&value);
        let body = (out.len() - HEADER_LEN) as u16;
        out[2..4].copy_from_slice(&body.to_be_bytes());
        self.transmits.push_back(Transmit {
            source: ft.server,
            destination: ft.client,
            transport: ft.transport,
            payload: out.freeze(),
        });
    }

    /// RFC 8489 §9.2.4: long-term credentials. Sends the error itself and returns
    /// `None` when the request does not authenticate.
    fn authenticate(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
    ) -> Option<Authenticated> {
        let has_mi = msg.has_integrity() || msg.has_integrity_sha256();
        if !has_mi {
            // §9.2.4 step 1: challenge, and keep no state.
            self.challenge(now, ft, msg, 401, None);
            return None;
        }
        let realm = msg.get::<Realm>().and_then(Result::ok);
        let nonce = msg.get::<Nonce>().and_then(Result::ok);
        let username = match (msg.get::<Username>(), msg.get::<Userhash>()) {
            (Some(Ok(u)), _) => Some(u.as_str().to_owned()),
            (None, Some(Ok(Userhash(h)))) => {
                self.userhashes.get(&h).cloned().or(Some(String::new()))
            }
            _ => None,
        };
        let (Some(realm), Some(nonce), Some(username)) = (realm, nonce, username) else {
            self.error(
                now,
                ft,
                msg,
                &TurnError::BadRequest("missing USERNAME, REALM or NONCE"),
                None,
                |_| {},
            );
            return None;
        };
        if realm.as_str() != self.config.realm {
            self.challenge(now, ft, msg, 401, Some(&username));
            return None;
        }
        if self.nonces.check(now, ft.client.ip(), nonce.as_str()) == NonceStatus::Stale {
            self.challenge(now, ft, msg, 438, Some(&username));
            return None;
        }
        // RFC 8489 §9.2.4 (password algorithms): a request that answers our list must echo
        // it and pick one of it; one that carries neither is MD5.
        let algorithm = match (
            msg.get::<PasswordAlgorithms>(),
            msg.get::<PasswordAlgorithm>(),
        ) {
            (None, None) => Algorithm::Md5,
            (Some(Ok(list)), Some(Ok(chosen))) if self.config.password_algorithms => {
                let ours: Vec<PasswordAlgorithmEntry> =
                    PASSWORD_ALGORITHMS.iter().map(|a| a.entry()).collect();
                match chosen {
                    a if list.0 == ours && PASSWORD_ALGORITHMS.contains(&a) => a,
                    _ => {
                        self.error(
                            now,
                            ft,
                            msg,
                            &TurnError::BadRequest("PASSWORD-ALGORITHMS mismatch"),
                            None,
                            |_| {},
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.error(
                    now,
                    ft,
                    msg,
                    &TurnError::BadRequest("PASSWORD-ALGORITHM without our list"),
                    None,
                    |_| {},
                );
                return None;
            }
        };
        let request = AuthRequest {
            username: &username,
            realm: &self.config.realm,
            client: ft.client,
            method: msg.method(),
            unix_time: self.config.unix_time_at_epoch
                + now.saturating_duration_since(self.config.epoch).as_secs(),
        };
        let secrets = match self.config.credentials.authorize(&request) {
            Authorization::Allow(s) if !username.is_empty() => s,
            _ => {
                // Spend what a known user costs, so timing does not tell who exists.
                if let Some(key) = Secret::Password(String::from("-")).key(
                    algorithm,
                    &username,
                    &self.config.realm,
                ) {
                    let _ = msg.verify_integrity(key.as_bytes());
                }
                self.challenge(now, ft, msg, 401, Some(&username));
                return None;
            }
        };
        let sha256 = msg.has_integrity_sha256();
        for secret in &secrets {
            let Some(key) = secret.key(algorithm, &username, &self.config.realm) else {
                continue;
            };
            let ok = if sha256 {
                msg.verify_integrity_sha256(key.as_bytes()).is_ok()
            } else {
                msg.verify_integrity(key.as_bytes()).is_ok()
            };
            if ok {
                return Some(Authenticated {
                    username,
                    key,
                    sha256,
                });
            }
        }
        self.challenge(now, ft, msg, 401, Some(&username));
        None
    }

    /// A 401 or 438 with REALM, a fresh NONCE and, when offered, PASSWORD-ALGORITHMS.
    fn challenge(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        code: u16,
        username: Option<&str>,
    ) {
        if username.is_some() || code == 438 {
            self.events.push_back(ServerEvent::AuthFailed {
                client: ft.client,
                username: username.map(str::to_owned),
                code,
            });
        }
        let err = if code == 438 {
            TurnError::StaleNonce
        } else {
            TurnError::Unauthorized
        };
        let realm = Realm::new(self.config.realm.clone());
        let nonce = Nonce::new(self.nonces.issue(now, ft.client.ip()));
        let algorithms = self
            .config
            .password_algorithms
            .then(|| PasswordAlgorithms(PASSWORD_ALGORITHMS.iter().map(|a| a.entry()).collect()));
        self.error(now, ft, msg, &err, None, |e| {
            e.add(&realm).add(&nonce);
            if let Some(a) = &algorithms {
                e.add(a);
            }
        });
    }

    /// Encodes and queues a response. With `auth`, it carries the same kind of
    /// MESSAGE-INTEGRITY as the request; with a FINGERPRINT when the request had one.
    fn respond(
        &mut self,
        ft: &FiveTuple,
        req: &Message,
        typ: MessageType,
        auth: Option<&Authenticated>,
        attrs: impl FnOnce(&mut MessageEncoder<'_>),
    ) -> Bytes {
        self.buf.clear();
        let mut enc = MessageEncoder::new(&mut self.buf, typ, req.transaction_id());
        attrs(&mut enc);
        if let Some(a) = auth {
            if a.sha256 {
                enc.message_integrity_sha256(a.key.as_bytes(), 32);
            } else {
                enc.message_integrity(a.key.as_bytes());
            }
        }
        if req.has_fingerprint() {
            enc.fingerprint();
        }
        if enc.finish().is_err() {
            return Bytes::new();
        }
        let payload = self.buf.split().freeze();
        self.transmits.push_back(Transmit {
            source: ft.server,
            destination: ft.client,
            transport: ft.transport,
            payload: payload.clone(),
        });
        payload
    }

    fn error(
        &mut self,
        _now: Instant,
        ft: &FiveTuple,
        req: &Message,
        err: &TurnError,
        auth: Option<&Authenticated>,
        attrs: impl FnOnce(&mut MessageEncoder<'_>),
    ) {
        let code = err.error_code();
        self.events.push_back(ServerEvent::ErrorResponse {
            method: req.method(),
            code,
        });
        // SOFTWARE only to authenticated clients: unauthenticated answers stay small.
        let software = auth.and(self.config.software.clone());
        let error_code = match err {
            TurnError::BadRequest(why) => ErrorCode {
                code,
                reason: Text::from_static(why),
            },
            _ => ErrorCode::new(code),
        };
        self.respond(ft, req, req.method().error(), auth, |e| {
            e.add(&error_code);
            attrs(e);
            if let Some(s) = software {
                e.add(&Software::new(s));
            }
        });
    }

    /// RFC 8656 §7.2, §8: the requested lifetime, raised to the default and capped at
    /// the maximum; 0 (a Refresh that deletes) stays 0.
    fn lifetime(&self, msg: &Message) -> Duration {
        let default = self.config.default_lifetime.min(self.config.max_lifetime);
        match msg.get::<Lifetime>() {
            Some(Ok(Lifetime(0))) => Duration::ZERO,
            Some(Ok(Lifetime(s))) => {
                Duration::from_secs(u64::from(s)).clamp(default, self.config.max_lifetime)
            }
            _ => default,
        }
    }

    /// RFC 8656 §7.2: Allocate.
    fn allocate(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
        binder: &mut dyn RelayBinder,
    ) -> Result<(), TurnError> {
        if let Some(alloc) = self
            .by_five_tuple
            .get(ft)
            .and_then(|id| self.allocations.get(id))
        {
            // A retransmission of the Allocate that made it gets the same answer.
            if alloc.allocate_tid == msg.transaction_id() && !alloc.allocate_response.is_empty() {
                self.transmits.push_back(Transmit {
                    source: ft.server,
                    destination: ft.client,
                    transport: ft.transport,
                    payload: alloc.allocate_response.clone(),
                });
                return Ok(());
            }
            return Err(TurnError::AllocationMismatch);
        }
        match msg.get::<RequestedTransport>() {
            Some(Ok(RequestedTransport(RequestedTransport::UDP))) => {}
            Some(Ok(_)) => return Err(TurnError::UnsupportedTransport),
            _ => return Err(TurnError::BadRequest("REQUESTED-TRANSPORT missing")),
        }
        let token = match msg.get::<ReservationToken>() {
            Some(Ok(t)) => Some(t.0),
            Some(Err(_)) => return Err(TurnError::BadRequest("bad RESERVATION-TOKEN")),
            None => None,
        };
        let even_port = match msg.get::<EvenPort>() {
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Err(TurnError::BadRequest("bad EVEN-PORT")),
            None => None,
        };
        let requested = match msg.get::<RequestedAddressFamily>() {
            Some(Ok(f)) => Some(f.0),
            Some(Err(_)) => return Err(TurnError::AddressFamilyNotSupported),
            None => None,
        };
        let additional = match msg.get::<AdditionalAddressFamily>() {
            Some(Ok(AdditionalAddressFamily(AddressFamily::V6))) => true,
            Some(_) => {
                return Err(TurnError::BadRequest(
                    "ADDITIONAL-ADDRESS-FAMILY must be IPv6",
                ))
            }
            None => false,
        };
        if token.is_some() && (even_port.is_some() || requested.is_some() || additional) {
            return Err(TurnError::BadRequest(
                "RESERVATION-TOKEN with EVEN-PORT or an address family",
            ));
        }
        if additional && requested.is_some() {
            return Err(TurnError::BadRequest(
                "ADDITIONAL-ADDRESS-FAMILY with REQUESTED-ADDRESS-FAMILY",
            ));
        }
        let family = requested.unwrap_or(AddressFamily::V4);
        let relay_ip = match family {
            AddressFamily::V4 => self.config.relay_ipv4,
            AddressFamily::V6 => self.config.relay_ipv6,
        };
        let relay_ip = relay_ip.ok_or(TurnError::AddressFamilyNotSupported)?;
        if !self.config.quotas.acquire(
            &auth.username,
            self.config.user_quota,
            self.config.total_quota,
        ) {
            return Err(TurnError::QuotaReached);
        }
        let result = self.open_relays(now, relay_ip, token, even_port, additional, binder);
        let (relayed, new_token, v6_error) = match result {
            Ok(r) => r,
            Err(e) => {
                self.config.quotas.release(&auth.username);
                return Err(e);
            }
        };
        let lifetime = self.lifetime(msg).max(Duration::from_secs(1));
        let id = AllocationId(self.next_id);
        self.next_id += 1;
        let mut alloc = Allocation::new(
            *ft,
            relayed.clone(),
            auth.username.clone(),
            now + lifetime,
            msg.transaction_id(),
        );
        alloc.dont_fragment = msg.contains(DontFragment::TYPE);
        let advertised: Vec<SocketAddr> = relayed.iter().map(|r| self.advertised(*r)).collect();
        let payload = self.respond(ft, msg, Method::ALLOCATE.success(), Some(auth), |e| {
            for a in &advertised {
                e.add(&XorRelayedAddress(*a));
            }
            if v6_error {
                e.add(&AddressErrorCode {
                    family: AddressFamily::V6,
                    code: 440,
                    reason: Text::from_static("Address Family not Supported"),
                });
            }
            e.add(&Lifetime(lifetime.as_secs() as u32))
                .add(&XorMappedAddress(ft.client));
            if let Some(t) = new_token {
                e.add(&ReservationToken(t));
            }
        });
        alloc.allocate_response = payload;
        for r in &relayed {
            self.by_relay.insert(*r, id);
        }
        self.by_five_tuple.insert(*ft, id);
        self.allocations.insert(id, alloc);
        self.timers.push(Reverse((now + lifetime, id)));
        self.events.push_back(ServerEvent::AllocationCreated {
            id,
            five_tuple: *ft,
            username: auth.username.clone(),
            relayed,
            lifetime,
        });
        Ok(())
    }

    fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        let external = if relay.is_ipv4() {
            self.config.external_ipv4
        } else {
            self.config.external_ipv6
        };
        external.map_or(relay, |ip| SocketAddr::new(ip, relay.port()))
    }

    /// Picks and binds relay ports. Returns the relayed addresses, a new reservation
    /// token (EVEN-PORT R), and whether an additional IPv6 relay failed.
    #[allow(clippy::type_complexity)]
    fn open_relays(
        &mut self,
        now: Instant,
        relay_ip: IpAddr,
        token: Option<[u8; 8]>,
        even_port: Option<EvenPort>,
        additional_v6: bool,
        binder: &mut dyn RelayBinder,
    ) -> Result<(Vec<SocketAddr>, Option<[u8; 8]>, bool), TurnError> {
        if let Some(token) = token {
            let r = self
                .config
                .reservations
                .lock()
                .remove(&token)
                .ok_or(TurnError::InsufficientCapacity)?;
            // The binder takes over the socket the reserving thread parked.
            if !binder.redeem(r.addr) {
                return Err(TurnError::InsufficientCapacity);
            }
            self.used_relays.insert(r.addr);
            return Ok((vec![r.addr], None, false));
        }
        let even = even_port.is_some();
        let reserve = even_port.is_some_and(|e| e.reserve);
        let (primary, reserved) = self.pick_port(relay_ip, even, reserve, binder)?;
        let mut new_token = None;
        if let Some(next) = reserved {
            let mut t = [0u8; 8];
            self.rng.fill_bytes(&mut t);
            self.config.reservations.lock().insert(
                t,
                Reservation {
                    addr: next,
                    expires: now + RESERVATION_LIFETIME,
                },
            );
            new_token = Some(t);
        }
        let mut relayed = vec![primary];
        let mut v6_error = false;
        if additional_v6 {
            match self.config.relay_ipv6 {
                Some(ip6) => match self.pick_port(ip6, false, false, binder) {
                    Ok((a, _)) => relayed.push(a),
                    Err(_) => v6_error = true,
                },
                None => v6_error = true,
            }
        }
        Ok((relayed, new_token, v6_error))
    }

    fn pick_port(
        &mut self,
        ip: IpAddr,
        even: bool,
        reserve_next: bool,
        binder: &mut dyn RelayBinder,
    ) -> Result<(SocketAddr, Option<SocketAddr>), TurnError> {
        /// Binds tried before giving up: each is a syscall, and a full range answers 508.
        const MAX_BINDS: u32 = 64;
        let (lo, hi) = (
            self.config.min_port,
            self.config.max_port.max(self.config.min_port),
        );
        let step: u16 = if even { 2 } else { 1 };
        let first = if even { lo + lo % 2 } else { lo };
        if first > hi {
            return Err(TurnError::InsufficientCapacity);
        }
        let count = u32::from((hi - first) / step) + 1;
        let start = self.rng.next_u32() % count;
        let mut binds = 0;
        for i in 0..count {
            if binds >= MAX_BINDS {
                break;
            }
            let port = first + (((start + i) % count) as u16) * step;
            let addr = SocketAddr::new(ip, port);
            if self.used_relays.contains(&addr) || self.config.reservations.holds(addr) {
                continue;
            }
            if reserve_next {
                if port == u16::MAX || port + 1 > hi {
                    continue;
                }
                let next = SocketAddr::new(ip, port + 1);
                if self.used_relays.contains(&next) || self.config.reservations.holds(next) {
                    continue;
                }
                binds += 1;
                if !binder.bind(addr) {
                    continue;
                }
                if !binder.reserve(next) {
                    self.events.push_back(ServerEvent::RelayReleased(addr));
                    continue;
                }
                self.used_relays.insert(addr);
                return Ok((addr, Some(next)));
            }
            binds += 1;
            if binder.bind(addr) {
                self.used_relays.insert(addr);
                return Ok((addr, None));
            }
        }
        Err(TurnError::InsufficientCapacity)
    }

    /// Makes sure the allocation's timer fires by `at`; one heap entry per allocation.
    fn schedule(&mut self, id: AllocationId, at: Instant) {
        if let Some(a) = self.allocations.get_mut(&id) {
            if at < a.timer {
                a.timer = at;
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    fn own_allocation(
        &self,
        ft: &FiveTuple,
        auth: &Authenticated,
    ) -> Result<AllocationId, TurnError> {
        let id = *self
            .by_five_tuple
            .get(ft)
            .ok_or(TurnError::AllocationMismatch)?;
        if self.allocations[&id].username != auth.username {
            return Err(TurnError::WrongCredentials);
        }
        Ok(id)
    }

    /// RFC 8656 §7.3: Refresh; LIFETIME 0 deletes.
    fn refresh(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        let id = self.own_allocation(ft, auth)?;
        if let Some(Ok(RequestedAddressFamily(f))) = msg.get::<RequestedAddressFamily>() {
            let v4 = f == AddressFamily::V4;
            if !self.allocations[&id]
                .relayed
                .iter()
                .any(|r| r.is_ipv4() == v4)
            {
                return Err(TurnError::PeerAddressFamilyMismatch);
            }
        }
        let lifetime = self.lifetime(msg);
        if lifetime.is_zero() {
            self.remove(id);
            self.events.push_back(ServerEvent::AllocationDeleted {
                id,
                five_tuple: *ft,
            });
        } else {
            let alloc = self.allocations.get_mut(&id).expect("looked up");
            alloc.expires = now + lifetime;
            self.schedule(id, now + lifetime);
            self.events
                .push_back(ServerEvent::AllocationRefreshed { id, lifetime });
        }
        self.respond(ft, msg, Method::REFRESH.success(), Some(auth), |e| {
            e.add(&Lifetime(lifetime.as_secs() as u32));
        });
        Ok(())
    }

    fn check_peer(&self, id: AllocationId, peer: SocketAddr) -> Result<(), TurnError> {
        if self.allocations[&id].relay_for(peer.ip()).is_none() {
            return Err(TurnError::PeerAddressFamilyMismatch);
        }
        if !self.config.policy.permits(peer.ip()) {
            return Err(TurnError::Forbidden);
        }
        Ok(())
    }

    /// RFC 8656 §9.2: CreatePermission, with one or more XOR-PEER-ADDRESS; all or none.
    fn create_permission(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        let id = self.own_allocation(ft, auth)?;
        let mut peers = Vec::new();
        for (t, v) in msg.raw_attributes() {
            if t == XorPeerAddress::TYPE {
                let XorPeerAddress(p) = XorPeerAddress::decode(&v, &msg.transaction_id())
                    .map_err(|_| TurnError::BadRequest("bad XOR-PEER-ADDRESS"))?;
                let p = policy::canonical_peer(p);
                self.check_peer(id, p)?;
                if !peers.contains(&p.ip()) {
                    peers.push(p.ip());
                }
            }
        }
        if peers.is_empty() {
            return Err(TurnError::BadRequest("XOR-PEER-ADDRESS missing"));
        }
        let alloc = &self.allocations[&id];
        let new = peers
            .iter()
            .filter(|p| alloc.is_new_permission(**p))
            .count();
        if alloc.permission_count(now) + new > self.config.max_permissions {
            return Err(TurnError::InsufficientCapacity);
        }
        let expires = now + self.config.permission_lifetime;
        let alloc = self.allocations.get_mut(&id).expect("looked up");
        for p in peers {
            if alloc.install_permission(now, p, expires) {
                self.events
                    .push_back(ServerEvent::PermissionCreated { id, peer: p });
            }
        }
        self.schedule(id, expires);
        self.respond(
            ft,
            msg,
            Method::CREATE_PERMISSION.success(),
            Some(auth),
            |_| {},
        );
        Ok(())
    }

    /// RFC 8656 §11.2: ChannelBind; installs or refreshes the peer's permission too.
    fn channel_bind(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        let id = self.own_allocation(ft, auth)?;
        let number = match msg.get::<ChannelNumber>() {
            // RFC 8656 §11.2 allows 0x4000-0x4FFF; RFC 5766 clients (coturn's) use up to 0x7FFE.
            Some(Ok(n)) => n,
            Some(Err(_)) => return Err(TurnError::BadRequest("channel number out of range")),
            _ => return Err(TurnError::BadRequest("CHANNEL-NUMBER missing")),
        };
        let peer = match msg.get::<XorPeerAddress>() {
            Some(Ok(XorPeerAddress(p))) => policy::canonical_peer(p),
            _ => return Err(TurnError::BadRequest("XOR-PEER-ADDRESS missing")),
        };
        self.check_peer(id, peer)?;
        let perm_expires = now + self.config.permission_lifetime;
        let chan_expires = now + self.config.channel_lifetime;
        let max_channels = self.config.max_channels;
        let max_permissions = self.config.max_permissions;
        let alloc = self.allocations.get_mut(&id).expect("looked up");
        if alloc.is_new_permission(peer.ip()) && alloc.permission_count(now) >= max_permissions {
            return Err(TurnError::InsufficientCapacity);
        }
        let new_channel = alloc.bind_channel(now, number, peer, chan_expires, max_channels)?;
        if alloc.install_permission(now, peer.ip(), perm_expires) {
            self.events.push_back(ServerEvent::PermissionCreated {
                id,
                peer: peer.ip(),
            });
        }
        if new_channel {
            self.events.push_back(ServerEvent::ChannelBound {
                id,
                peer,
                channel: number.get(),
            });
        }
        self.schedule(id, perm_expires);
        self.respond(ft, msg, Method::CHANNEL_BIND.success(), Some(auth), |_| {});
        Ok(())
    }
}

#[cfg(test)]
mod tests;
