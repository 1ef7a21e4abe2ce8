//! What a [`TurnClient`](super::TurnClient) reports: the core session's events as they are,
//! plus what only the actor knows (its connection and its end); and why it refused.

use std::io;
use std::net::SocketAddr;

use actix::Message;
use floe::stun::Method;
use floe::turn::client::{ClientError, ClientEvent};

use crate::udp::UdpError;

/// Why a client could not start, or why a command was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnClientError {
    /// The UDP socket could not be bound.
    #[error(transparent)]
    Bind(#[from] UdpError),
    /// The TCP connection to the server failed.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server.
        server: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The TCP connection or TLS handshake did not complete within `connect_timeout`.
    #[error("connecting to {server} timed out")]
    ConnectTimeout {
        /// The server.
        server: SocketAddr,
    },
    /// TLS could not be set up or the handshake failed (certificate, name, protocol).
    #[error("TLS with {server}: {reason}")]
    Tls {
        /// The server.
        server: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The core refused the command without sending anything (no allocation, no
    /// permission for the peer, data too large ...).
    #[error(transparent)]
    Refused(#[from] ClientError),
    /// The server answered with an error or did not answer (see
    /// [`ClientEvent::Error`]).
    #[error("{}", describe_failure(*.request, *.code, .reason))]
    Failed {
        /// The request that failed.
        request: Option<Method>,
        /// The STUN error code, if the server sent one.
        code: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// The client is closed.
    #[error("the TURN client is closed")]
    Closed,
}

fn describe_failure(request: Option<Method>, code: Option<u16>, reason: &str) -> String {
    let what = request.map_or_else(|| "connection".to_owned(), |m| format!("{m:?}"));
    match code {
        Some(code) => format!("{what} failed: {code} {reason}"),
        None => format!("{what} failed: {reason}"),
    }
}

/// What a [`TurnClient`](super::TurnClient) tells its subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum TurnClientEvent {
    /// What the session with the server reports, as the core client reports it: binding,
    /// allocation, refreshes, permissions, channels, data, redirects and failed requests.
    Session(ClientEvent),
    /// The connection to the server was lost (socket error, the server closed its TCP or
    /// TLS connection, or a reconnect after a redirect failed) while an allocation or a
    /// request was using it. [`Closed`](Self::Closed) follows.
    ConnectionLost {
        /// What happened.
        reason: String,
    },
    /// The client stopped (after [`Close`](super::Close), or when its connection was lost).
    /// Last event.
    Closed,
}

impl TurnClientEvent {
    /// The session's event, if this is one.
    pub fn session(&self) -> Option<&ClientEvent> {
        match self {
            TurnClientEvent::Session(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ClientEvent> for TurnClientEvent {
    fn from(e: ClientEvent) -> Self {
        TurnClientEvent::Session(e)
    }
}
