//! One allocation's state: relayed addresses, lifetime, permissions and channels
//! (RFC 8656 §2.2, §9, §11).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use crate::stun::TransactionId;
use crate::transmit::Transport;
use crate::turn::{ChannelNumber, TurnError};

use super::limit::ByteBucket;
use super::policy::canonical_ip;

/// RFC 8656 §2.2: the client's transport address, the server's, and the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    /// The server's listening address the client talks to.
    pub server: SocketAddr,
    /// UDP, TCP or TLS.
    pub transport: Transport,
}

/// RFC 8656 §9: a permission for one peer IP address.
#[derive(Clone, Copy, Debug)]
struct Permission {
    ip: IpAddr,
    expires: Instant,
}

/// RFC 8656 §11: a channel bound to one peer transport address.
#[derive(Clone, Copy, Debug)]
struct Channel {
    number: ChannelNumber,
    peer: SocketAddr,
    expires: Instant,
}

/// An allocation on the server.
#[derive(Debug)]
pub struct Allocation {
    /// The 5-tuple it belongs to.
    pub five_tuple: FiveTuple,
    /// Relayed addresses: one, or an IPv4 and an IPv6 one (RFC 8656 §7.2 dual allocation).
    pub relayed: Vec<SocketAddr>,
    /// The authenticated user.
    pub username: String,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// DONT-FRAGMENT was asked for.
    pub dont_fragment: bool,
    pub(super) allocate_tid: TransactionId,
    pub(super) allocate_response: Bytes,
    /// The one deadline this allocation has in the server's timer heap.
    pub(super) timer: Instant,
    /// Since when it exists, and what it relayed.
    pub(super) usage: super::allocation_info::Usage,
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
    /// `max_bps` of relayed data from the client to peers.
    pub(super) to_peers: ByteBucket,
    /// `max_bps` of relayed data from peers to the client.
    pub(super) to_client: ByteBucket,
}

impl Allocation {
    pub(super) fn new(
        created: Instant,
        five_tuple: FiveTuple,
        relayed: Vec<SocketAddr>,
        username: String,
        expires: Instant,
        allocate_tid: TransactionId,
        (now, max_bps): (Instant, u64),
    ) -> Self {
        Allocation {
            five_tuple,
            relayed,
            username,
            expires,
            dont_fragment: false,
            allocate_tid,
            allocate_response: Bytes::new(),
            timer: expires,
            usage: super::allocation_info::Usage::new(created),
            permissions: Vec::new(),
            channels: Vec::new(),
            to_peers: ByteBucket::new(max_bps, now),
            to_client: ByteBucket::new(max_bps, now),
        }
    }

    /// Whether a relayed address has the family of `peer` (RFC 8656 §9.1: else 443).
    pub fn relay_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        let v4 = canonical_ip(peer).is_ipv4();
        self.relayed.iter().copied().find(|r| r.is_ipv4() == v4)
    }

    /// RFC 8656 §9: whether a live permission covers `ip` (ports are not considered).
    pub fn has_permission(&self, now: Instant, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    /// Installs or refreshes a permission.
    pub(super) fn install_permission(
        &mut self,
        now: Instant,
        ip: IpAddr,
        expires: Instant,
    ) -> bool {
        let ip = canonical_ip(ip);
        match self.permissions.iter_mut().find(|p| p.ip == ip) {
            Some(p) => {
                p.expires = expires;
                false
            }
            None => {
                self.permissions.retain(|p| p.expires > now);
                self.permissions.push(Permission { ip, expires });
                true
            }
        }
    }

    /// Live permissions.
    pub fn permission_count(&self, now: Instant) -> usize {
        self.permissions.iter().filter(|p| p.expires > now).count()
    }

    /// Whether a new permission for `ip` would be one more.
    pub(super) fn is_new_permission(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        !self.permissions.iter().any(|p| p.ip == ip)
    }

    /// The peer bound to channel `number`, if live.
    #[inline]
    pub fn channel_peer(&self, now: Instant, number: ChannelNumber) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer)
    }

    /// The channel bound to `peer`, if live.
    #[inline]
    pub fn peer_channel(&self, now: Instant, peer: SocketAddr) -> Option<ChannelNumber> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }

    /// Live channels.
    pub fn channel_count(&self, now: Instant) -> usize {
        self.channels.iter().filter(|c| c.expires > now).count()
    }

    /// RFC 8656 §11.2: binds or refreshes a channel. A number bound to another peer, or
    /// a peer bound to another number, is a 400. Returns whether the binding is new.
    pub(super) fn bind_channel(
        &mut self,
        now: Instant,
        number: ChannelNumber,
        peer: SocketAddr,
        expires: Instant,
        max: usize,
    ) -> Result<bool, TurnError> {
        // An expired binding stays reserved for 5 more minutes (§11): only drop it
        // from the table once that has passed.
        self.channels
            .retain(|c| c.expires + std::time::Duration::from_secs(300) > now);
        if let Some(c) = self.channels.iter_mut().find(|c| c.number == number) {
            if c.peer != peer {
                return Err(TurnError::BadRequest("channel bound to another peer"));
            }
            c.expires = expires;
            return Ok(false);
        }
        if self.channels.iter().any(|c| c.peer == peer) {
            return Err(TurnError::BadRequest("peer bound to another channel"));
        }
        if self.channels.len() >= max {
            return Err(TurnError::InsufficientCapacity);
        }
        self.channels.push(Channel {
            number,
            peer,
            expires,
        });
        Ok(true)
    }

    /// Drops expired permissions and channels; returns the next instant anything
    /// of this allocation expires.
    pub(super) fn sweep(&mut self, now: Instant) -> Instant {
        self.permissions.retain(|p| p.expires > now);
        self.channels
            .retain(|c| c.expires + std::time::Duration::from_secs(300) > now);
        let mut next = self.expires;
        for p in &self.permissions {
            next = next.min(p.expires);
        }
        for c in &self.channels {
            let t = if c.expires > now {
                c.expires
            } else {
                c.expires + std::time::Duration::from_secs(300)
            };
            next = next.min(t);
        }
        next
    }
}

/// What operators read (see `allocation_info`).
impl Allocation {
    /// Live permissions: peer IP and expiry.
    pub(super) fn live_permissions(
        &self,
        now: Instant,
    ) -> impl Iterator<Item = (IpAddr, Instant)> + '_ {
        self.permissions
            .iter()
            .filter(move |p| p.expires > now)
            .map(|p| (p.ip, p.expires))
    }

    /// Live channels: number, peer and expiry.
    pub(super) fn live_channels(
        &self,
        now: Instant,
    ) -> impl Iterator<Item = (ChannelNumber, SocketAddr, Instant)> + '_ {
        self.channels
            .iter()
            .filter(move |c| c.expires > now)
            .map(|c| (c.number, c.peer, c.expires))
    }
}
