//! What the core gives back: events for the operator and the driver, and where relayed
//! data goes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;

use super::allocation::FiveTuple;
use super::allocation_info::AllocationUsage;
use crate::stun::Method;
use crate::turn::ChannelData;

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
    /// An allocation is ending (it comes just before its `AllocationDeleted` or
    /// `AllocationExpired`): what it relayed in its life, for usage accounting.
    AllocationUsage(Box<AllocationUsage>),
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
    /// RFC 8656 §7.2: the port held for a RESERVATION-TOKEN was not redeemed in time;
    /// the driver closes the socket parked for `token`, if it is still parked.
    ReservationExpired {
        /// the token handed out
        token: [u8; 8],
        /// the reserved relayed address
        relayed: SocketAddr,
    },
}

/// What the core refused or dropped since the driver last asked
/// ([`Server::take_counters`](super::Server::take_counters)): counts, not events, so a
/// flood costs no memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerCounters {
    /// Error responses to unauthenticated requests not sent: over `unauth_rate`.
    pub unauth_dropped: u64,
    /// Relayed datagrams dropped over an allocation's `max_bps`.
    pub over_bps_packets: u64,
    /// Their payload bytes.
    pub over_bps_bytes: u64,
    /// CreatePermission or ChannelBind refused (508) at `max_permissions`.
    pub permissions_refused: u64,
    /// ChannelBind refused (508) at `max_channels`.
    pub channels_refused: u64,
}

impl ServerCounters {
    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == ServerCounters::default()
    }
}

/// Where relayed data goes after [`Server::handle_client`](super::Server::handle_client).
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

/// Where data from a peer goes after [`Server::handle_peer`](super::Server::handle_peer).
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

/// Bytes the caller leaves in front of peer data in [`Server::handle_peer`](super::Server::handle_peer).
pub const PEER_HEADROOM: usize = ChannelData::HEADER_LEN;
