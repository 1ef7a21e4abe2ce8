//! What the client core reports: its state, its events, and why a command was refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::stun::Method;

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
