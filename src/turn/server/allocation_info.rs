//! What an operator may read of the allocations (an admin API lists them): a borrowed
//! view per allocation, and the traffic each one relayed. Reading changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::allocation::FiveTuple;
use super::event::AllocationId;
use super::Server;
use crate::turn::ChannelNumber;

/// Datagrams and payload bytes relayed one way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams relayed.
    pub packets: u64,
    /// Their payload bytes (application data, without TURN framing).
    pub bytes: u64,
}

impl Traffic {
    /// One more datagram of `len` payload bytes.
    #[inline]
    pub(super) fn count(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}

/// What an allocation relayed, each way, and since when it exists.
#[derive(Clone, Copy, Debug)]
pub(super) struct Usage {
    /// When the allocation was made.
    pub(super) created: Instant,
    /// From the client to its peers.
    pub(super) to_peers: Traffic,
    /// From peers to the client.
    pub(super) to_client: Traffic,
}

impl Usage {
    pub(super) fn new(created: Instant) -> Self {
        Usage {
            created,
            to_peers: Traffic::default(),
            to_client: Traffic::default(),
        }
    }
}

/// What an allocation relayed in its whole life, given as it ends
/// ([`ServerEvent::AllocationUsage`](super::ServerEvent::AllocationUsage)), for usage
/// accounting: the driver logs it and adds it to per-user totals.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocationUsage {
    /// The allocation.
    pub id: AllocationId,
    /// Its 5-tuple.
    pub five_tuple: FiveTuple,
    /// The user it was authenticated as.
    pub username: String,
    /// The addresses its relays were bound to.
    pub relayed: Vec<SocketAddr>,
    /// When it was made.
    pub created: Instant,
    /// From the client to its peers.
    pub to_peers: Traffic,
    /// From peers to the client.
    pub to_client: Traffic,
}

impl AllocationUsage {
    /// The final account of `alloc`, which is being removed.
    pub(super) fn of(id: AllocationId, alloc: super::Allocation) -> Self {
        AllocationUsage {
            id,
            five_tuple: alloc.five_tuple,
            username: alloc.username,
            relayed: alloc.relayed,
            created: alloc.usage.created,
            to_peers: alloc.usage.to_peers,
            to_client: alloc.usage.to_client,
        }
    }
}

/// A read-only view of one allocation, for operators.
#[derive(Clone, Copy, Debug)]
pub struct AllocationInfo<'a> {
    /// The allocation.
    pub id: AllocationId,
    /// Its 5-tuple.
    pub five_tuple: FiveTuple,
    /// The user it was authenticated as.
    pub username: &'a str,
    /// The addresses its relays are bound to.
    pub relayed: &'a [SocketAddr],
    /// When it was made.
    pub created: Instant,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// From the client to its peers.
    pub to_peers: Traffic,
    /// From peers to the client.
    pub to_client: Traffic,
    alloc: &'a super::Allocation,
    now: Instant,
}

impl<'a> AllocationInfo<'a> {
    /// RFC 8656 §9: the live permissions, as peer IP and expiry.
    pub fn permissions(&self) -> impl Iterator<Item = (IpAddr, Instant)> + 'a {
        self.alloc.live_permissions(self.now)
    }

    /// RFC 8656 §11: the live channels, as number, peer and expiry.
    pub fn channels(&self) -> impl Iterator<Item = (ChannelNumber, SocketAddr, Instant)> + 'a {
        self.alloc.live_channels(self.now)
    }
}

impl Server {
    /// Every allocation of this core as it is at `now`, in no particular order.
    pub fn allocations(&self, now: Instant) -> impl Iterator<Item = AllocationInfo<'_>> {
        self.allocations.iter().map(move |(id, a)| AllocationInfo {
            id: *id,
            five_tuple: a.five_tuple,
            username: &a.username,
            relayed: &a.relayed,
            created: a.usage.created,
            expires: a.expires,
            to_peers: a.usage.to_peers,
            to_client: a.usage.to_client,
            alloc: a,
            now,
        })
    }

    /// The relayed address a client was told for a relay bound to `relay`
    /// (XOR-RELAYED-ADDRESS: its external address behind NAT, see
    /// [`ExternalAddresses`](super::ExternalAddresses)).
    pub fn advertised_address(&self, relay: SocketAddr) -> SocketAddr {
        self.config.external.advertised(relay)
    }

    /// Seconds since the Unix epoch at `at`, from the clock reading the configuration
    /// carries (`epoch`, `unix_time_at_epoch`); the core reads no clock.
    pub fn unix_time(&self, at: Instant) -> u64 {
        let c = &self.config;
        match at.checked_duration_since(c.epoch) {
            Some(d) => c.unix_time_at_epoch.saturating_add(d.as_secs()),
            None => c
                .unix_time_at_epoch
                .saturating_sub(c.epoch.duration_since(at).as_secs()),
        }
    }
}
