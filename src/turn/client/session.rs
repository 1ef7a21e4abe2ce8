//! [`Client`]: the session's state machine, its commands and its sans-IO surface.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use tracing::debug;

use super::auth::Auth;
use super::request::{Pending, Request, Retries};
use super::{
    same_family, ClientConfig, ClientError, ClientEvent, ClientState, MAX_PEERS_PER_REQUEST,
};
use crate::stun::attribute::{Data, XorPeerAddress};
use crate::stun::transaction::{RtoEstimator, TransactionState};
use crate::stun::{AttributeCodec, Class, Message, MessageEncoder, Method, TransactionId};
use crate::transmit::Transmit;
use crate::turn::{ChannelData, ChannelNumber};

/// RFC 8656 §7.3: the allocation as the client knows it.
#[derive(Debug)]
pub(super) struct ClientAllocation {
    pub(super) relayed: Vec<SocketAddr>,
    pub(super) expires: Instant,
    pub(super) refresh_at: Option<Instant>,
}

/// RFC 8656 §9: a permission for one peer IP, installed or asked for.
#[derive(Debug, Default)]
pub(super) struct Permission {
    pub(super) installed_until: Option<Instant>,
    pub(super) refresh_at: Option<Instant>,
    /// The application asked for it and has not removed it: keep it refreshed.
    pub(super) wanted: bool,
}

/// RFC 8656 §12: the channel of one peer; its number stays the peer's for the allocation's life.
#[derive(Debug)]
pub(super) struct Channel {
    pub(super) number: ChannelNumber,
    pub(super) bound_until: Option<Instant>,
    pub(super) refresh_at: Option<Instant>,
    pub(super) wanted: bool,
}

/// One client session with one TURN server (RFC 8656): at most one allocation, with its
/// permissions and channels, plus STUN Binding requests to the same server.
pub struct Client {
    pub(super) config: ClientConfig,
    pub(super) rng: Box<dyn RngCore + Send>,
    pub(super) server: SocketAddr,
    pub(super) visited: Vec<SocketAddr>,
    pub(super) auth: Option<Auth>,
    pub(super) state: ClientState,
    pub(super) allocation: Option<ClientAllocation>,
    pub(super) requested_lifetime: Duration,
    pub(super) mapped: Option<SocketAddr>,
    pub(super) permissions: HashMap<IpAddr, Permission>,
    pub(super) channels: HashMap<SocketAddr, Channel>,
    pub(super) channel_peers: HashMap<ChannelNumber, SocketAddr>,
    /// RFC 8656 §12: the next channel number to hand out, from 0x4000 upward.
    pub(super) next_channel: u16,
    pub(super) pending: Vec<Pending>,
    pub(super) rto: RtoEstimator,
    pub(super) rto_sampled: Option<Instant>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<ClientEvent>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("state", &self.state)
            .field("relayed", &self.relayed_addresses())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A session with `config.server`; transaction ids come from `rng`.
    pub fn new(config: ClientConfig, rng: impl RngCore + Send + 'static) -> Self {
        Client {
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

    pub(super) fn allocated(&self) -> Option<&ClientAllocation> {
        self.allocation
            .as_ref()
            .filter(|_| self.state == ClientState::Allocated)
    }

    pub(super) fn allocated_mut(&mut self) -> Option<&mut ClientAllocation> {
        self.allocation
            .as_mut()
            .filter(|_| self.state == ClientState::Allocated)
    }

    pub(super) fn queue(&mut self, payload: Bytes) {
        self.transmits.push_back(Transmit {
            source: self.config.local,
            destination: self.server,
            transport: self.config.transport,
            payload,
        });
    }
}
