//! The TURN server core (RFC 8656, with RFC 5766 and RFC 6156 clients), sans-IO.
//!
//! [`Server`] holds the allocations of one thread. Control messages (Binding,
//! Allocate, Refresh, CreatePermission, ChannelBind) go through [`Server::handle_client`]
//! and their responses come out of [`Server::poll_transmit`]. Relayed data returns
//! straight from the call that received it, borrowing the caller's buffer, so the data
//! path neither copies nor allocates for ChannelData.
//!
//! The core holds no sockets, locks or clocks. An Allocate asks the driver for relay
//! sockets through [`Server::poll_relay_request`] and completes when the driver answers
//! with [`Server::relay_ready`] (see [`relay`]); quotas shared by the threads of a server,
//! and sockets parked for a RESERVATION-TOKEN, are the driver's.
//!
//! Files: [`config`](ServerConfig), `requests` (Binding, Refresh, CreatePermission,
//! ChannelBind, responses), `allocate` (Allocate in two phases), `authenticate`
//! (long-term credentials), `data` (ChannelData, Send and Data indications), `event`
//! (what comes out), [`relay`] (what an Allocate asks of the driver), `allocation_info`
//! (what operators read of the allocations), `drain` (refusing new allocations),
//! `reconfigure` (credentials, peer policy and limits changed live), [`external`] (the
//! public addresses advertised behind NAT).

mod allocate;
mod allocation;
mod allocation_info;
pub mod auth;
mod authenticate;
mod config;
mod data;
mod drain;
mod event;
pub mod external;
mod limit;
pub mod policy;
mod reconfigure;
pub mod relay;
mod requests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::RngCore;

pub use allocation::{Allocation, FiveTuple};
pub use allocation_info::{AllocationInfo, AllocationUsage, Traffic};
pub use auth::{
    AuthRequest, Authenticator, Authorization, Credentials, NonceIssuer, NonceStatus,
    RestApiSecrets, Secret, StaticUsers,
};
pub use config::ServerConfig;
pub use event::{
    AllocationId, ClientOutput, PeerOutput, ServerCounters, ServerEvent, PEER_HEADROOM,
};
pub use external::{ExternalAddressError, ExternalAddresses, ExternalMapping};
pub use policy::PeerPolicy;
pub use reconfigure::{Reconfiguration, DEFAULT_SECRET_GRACE};
pub use relay::{
    Candidate, PortCandidates, RelayAsk, RelayGrant, RelayRefusal, RelayRequest, RelayRequestId,
    MAX_RELAY_BINDS,
};

use crate::stun::credentials::{userhash, SecurityFeatures};
use crate::stun::{Class, Message, Method};
use crate::transmit::Transmit;
use allocate::PendingAllocate;
use limit::UnauthLimiter;

/// RFC 8656 §7.2: how long a port reserved for a RESERVATION-TOKEN is held.
const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// A token this core handed out, until it expires.
struct Reservation {
    token: [u8; 8],
    relayed: SocketAddr,
    expires: Instant,
}

/// The TURN server core of one thread.
pub struct Server {
    config: ServerConfig,
    /// New allocations are refused (see `drain`).
    draining: bool,
    nonces: NonceIssuer,
    userhashes: HashMap<[u8; 32], String>,
    allocations: HashMap<AllocationId, Allocation>,
    by_five_tuple: HashMap<FiveTuple, AllocationId>,
    by_relay: HashMap<SocketAddr, AllocationId>,
    timers: BinaryHeap<Reverse<(Instant, AllocationId)>>,
    next_id: u64,
    /// Authenticated Allocates waiting for [`Server::relay_ready`], by 5-tuple.
    pending: HashMap<FiveTuple, PendingAllocate>,
    relay_requests: VecDeque<RelayRequest>,
    next_request: u64,
    /// Tokens this core handed out, oldest first (they all live as long).
    reservations: VecDeque<Reservation>,
    rng: Box<dyn RngCore + Send>,
    /// Error responses to unauthenticated requests, per source IP.
    unauth: UnauthLimiter,
    counters: ServerCounters,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    buf: BytesMut,
}

impl Server {
    /// A server core; `rng` makes relay ports, reservation tokens, the transaction ids of
    /// Data indications and the key of the unauthenticated-answer limiter. It must be a
    /// CSPRNG seeded from the OS (`StdRng::from_entropy()`, as the actors use): nobody
    /// may predict the next relay port or token (CVE-2025-69217). Tests seed one.
    pub fn new(config: ServerConfig, mut rng: impl RngCore + Send + 'static) -> Self {
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
        let unauth = UnauthLimiter::new(config.unauth_rate, rng.next_u64(), config.epoch);
        let mut server = Server {
            nonces,
            unauth,
            counters: ServerCounters::default(),
            userhashes: HashMap::new(),
            allocations: HashMap::new(),
            by_five_tuple: HashMap::new(),
            by_relay: HashMap::new(),
            timers: BinaryHeap::new(),
            next_id: 1,
            pending: HashMap::new(),
            relay_requests: VecDeque::new(),
            next_request: 1,
            reservations: VecDeque::new(),
            rng: Box::new(rng),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            buf: BytesMut::with_capacity(4096),
            draining: false,
            config,
        };
        server.userhashes = server
            .config
            .credentials
            .users
            .names()
            .filter_map(|u| Some((userhash(u, &server.config.realm).ok()?, u.to_owned())))
            .collect();
        let own: Vec<_> = [server.config.relay_ipv4, server.config.relay_ipv6]
            .into_iter()
            .flatten()
            .chain(server.config.external.public_ips())
            .collect();
        for ip in own {
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

    /// What was refused or dropped since the last call (the driver adds it to its
    /// metrics once per batch).
    pub fn take_counters(&mut self) -> ServerCounters {
        std::mem::take(&mut self.counters)
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
        let r = self.reservations.front().map(|r| r.expires);
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
        while self.reservations.front().is_some_and(|r| r.expires <= now) {
            let r = self.reservations.pop_front().expect("looked at");
            self.events.push_back(ServerEvent::ReservationExpired {
                token: r.token,
                relayed: r.relayed,
            });
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

    /// Removes an allocation and releases its relays; its final usage goes out first
    /// (`AllocationUsage`), then the caller says why it ended.
    fn remove(&mut self, id: AllocationId) {
        if let Some(alloc) = self.allocations.remove(&id) {
            self.by_five_tuple.remove(&alloc.five_tuple);
            let usage = AllocationUsage::of(id, alloc);
            for r in &usage.relayed {
                self.by_relay.remove(r);
                self.events.push_back(ServerEvent::RelayReleased(*r));
            }
            self.events
                .push_back(ServerEvent::AllocationUsage(Box::new(usage)));
        }
    }

    /// A datagram (UDP) or framed message (TCP/TLS) from a client.
    ///
    /// ChannelData and Send indications come back as data to relay; requests are
    /// answered through [`Server::poll_transmit`]; an authenticated Allocate asks for
    /// relays through [`Server::poll_relay_request`]. Bad input costs one error response
    /// or nothing.
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        five_tuple: &FiveTuple,
        data: &'a [u8],
    ) -> ClientOutput<'a> {
        match data.first() {
            Some(0x40..=0x7F) => self.client_channel_data(now, five_tuple, data),
            Some(0x00..=0x03) => self.client_stun(now, five_tuple, Bytes::copy_from_slice(data)),
            _ => ClientOutput::None,
        }
    }

    fn client_stun<'a>(&mut self, now: Instant, ft: &FiveTuple, data: Bytes) -> ClientOutput<'a> {
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
                self.request(now, ft, &msg);
                ClientOutput::None
            }
            Class::Indication if msg.method() == Method::SEND => {
                self.send_indication(now, ft, &msg)
            }
            _ => ClientOutput::None,
        }
    }
}

#[cfg(test)]
mod tests;
