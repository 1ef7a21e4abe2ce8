//! The commands a [`TurnClient`](super::TurnClient) takes. Each runs one command of the core
//! client; what the server answers comes back as events.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix::Message;
use bytes::Bytes;

use super::TurnClientError;
#[cfg(doc)]
use floe::turn::client::ClientEvent;

/// RFC 8656 §7: request an allocation; [`ClientEvent::Allocated`] or `Error` follows.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), TurnClientError>")]
pub struct Allocate;

/// RFC 8656 §8: refresh the allocation now with `lifetime` (later automatic refreshes ask
/// for it too); a zero lifetime deletes it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), TurnClientError>")]
pub struct Refresh {
    /// The lifetime to ask for.
    pub lifetime: Duration,
}

/// RFC 8656 §9: install (and keep refreshing) permissions for these peer IPs.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), TurnClientError>")]
pub struct CreatePermission {
    /// The peers.
    pub peers: Vec<IpAddr>,
}

/// RFC 8656 §12: bind (and keep refreshing) a channel to `peer`; answers the channel number.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<u16, TurnClientError>")]
pub struct ChannelBind {
    /// The peer.
    pub peer: SocketAddr,
}

/// RFC 8656 §11, §12: send `bytes` to `peer` through the relay (over the channel once one
/// is bound, as a Send indication otherwise). Needs a permission for the peer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), TurnClientError>")]
pub struct SendTo {
    /// The peer.
    pub peer: SocketAddr,
    /// The data.
    pub bytes: Bytes,
}

/// RFC 8489 §6: ask for the server-reflexive address; [`ClientEvent::BindingSucceeded`]
/// or `Error` follows.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Binding;

/// Delete the allocation, if any (waiting for one being requested), then stop. Answers
/// once [`TurnClientEvent::Closed`](super::TurnClientEvent::Closed) has been published.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Close;
