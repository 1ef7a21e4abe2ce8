//! What operators see of the allocations (the admin API's `/sessions`): one [`Session`]
//! per allocation, made from the core's read-only view, and how they pick allocations
//! to end.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Instant;

use floe::transmit::Transport;
use floe::turn::server::{AllocationInfo, Server};
use serde::{Serialize, Serializer};

/// Names an allocation across the server: the worker thread that holds it and its id
/// there. Written `THREAD-ID`, e.g. `0-17`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    /// The worker thread (Arbiter) index.
    pub thread: usize,
    /// The allocation's id in that thread's core.
    pub allocation: u64,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.thread, self.allocation)
    }
}

/// A session id that is not `THREAD-ID`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session id is THREAD-ID, e.g. 0-17")]
pub struct SessionIdError;

impl FromStr for SessionId {
    type Err = SessionIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (thread, allocation) = s.split_once('-').ok_or(SessionIdError)?;
        Ok(SessionId {
            thread: thread.parse().map_err(|_| SessionIdError)?,
            allocation: allocation.parse().map_err(|_| SessionIdError)?,
        })
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One allocation as an operator sees it. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Session {
    /// Its id, for `DELETE /sessions/{id}`.
    pub id: SessionId,
    /// The user it authenticated as.
    pub user: String,
    /// The client's address (RFC 8656 §2.2: the 5-tuple's client side).
    pub client: SocketAddr,
    /// The server address the client talks to.
    pub server: SocketAddr,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    /// The relayed addresses the client was told (XOR-RELAYED-ADDRESS).
    pub relayed: Vec<SocketAddr>,
    /// When it was made.
    pub created: u64,
    /// When it expires unless refreshed.
    pub expires: u64,
    /// RFC 8656 §9: the live permissions.
    pub permissions: Vec<SessionPermission>,
    /// RFC 8656 §11: the live channels.
    pub channels: Vec<SessionChannel>,
    /// Payload bytes relayed from the client to its peers.
    pub bytes_to_peer: u64,
    /// Payload bytes relayed from peers to the client.
    pub bytes_to_client: u64,
    /// Datagrams relayed from the client to its peers.
    pub packets_to_peer: u64,
    /// Datagrams relayed from peers to the client.
    pub packets_to_client: u64,
}

/// A permission: a peer IP the allocation may exchange data with, until `expires`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionPermission {
    /// The peer IP.
    pub peer: IpAddr,
    /// When it expires unless refreshed.
    pub expires: u64,
}

/// A channel: its number and the peer bound to it, until `expires`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionChannel {
    /// The channel number (0x4000 to 0x4FFF).
    pub number: u16,
    /// The peer.
    pub peer: SocketAddr,
    /// When it expires unless refreshed.
    pub expires: u64,
}

/// Which allocations to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionFilter {
    /// The one with this id.
    Id(SessionId),
    /// Every one of this user.
    User(String),
}

impl SessionFilter {
    /// Whether the allocation `info`, held by worker `thread`, is picked.
    pub(crate) fn picks(&self, thread: usize, info: &AllocationInfo<'_>) -> bool {
        match self {
            SessionFilter::Id(id) => id.thread == thread && id.allocation == info.id.0,
            SessionFilter::User(user) => info.username == user,
        }
    }
}

pub(crate) fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// The sessions of the core of worker `thread` at `now`, those of `user` only if given.
pub(crate) fn list(core: &Server, thread: usize, user: Option<&str>, now: Instant) -> Vec<Session> {
    core.allocations(now)
        .filter(|a| user.is_none_or(|u| a.username == u))
        .map(|a| Session {
            id: SessionId {
                thread,
                allocation: a.id.0,
            },
            user: a.username.to_owned(),
            client: a.five_tuple.client,
            server: a.five_tuple.server,
            transport: transport_name(a.five_tuple.transport),
            relayed: a
                .relayed
                .iter()
                .map(|r| core.advertised_address(*r))
                .collect(),
            created: core.unix_time(a.created),
            expires: core.unix_time(a.expires),
            permissions: a
                .permissions()
                .map(|(peer, expires)| SessionPermission {
                    peer,
                    expires: core.unix_time(expires),
                })
                .collect(),
            channels: a
                .channels()
                .map(|(number, peer, expires)| SessionChannel {
                    number: number.get(),
                    peer,
                    expires: core.unix_time(expires),
                })
                .collect(),
            bytes_to_peer: a.to_peers.bytes,
            bytes_to_client: a.to_client.bytes,
            packets_to_peer: a.to_peers.packets,
            packets_to_client: a.to_client.packets,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_thread_dash_allocation() {
        let id: SessionId = "3-17".parse().unwrap();
        assert_eq!(
            id,
            SessionId {
                thread: 3,
                allocation: 17
            }
        );
        assert_eq!(id.to_string(), "3-17");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"3-17\"");
        for bad in ["", "3", "3-", "-17", "a-1", "1-b", "1-2-3"] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
    }
}
