//! [`TurnClientHandle`]: what [`TurnClient::connect`] gives back, to command the client and
//! read its events; and [`stun_binding`], one Binding transaction start to end.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix::Addr;
use bytes::Bytes;
use floe::transmit::Transport;
use floe::turn::client::ClientEvent;

use super::{
    Allocate, Binding, ChannelBind, Close, CreatePermission, Refresh, SendTo, TurnClient,
    TurnClientConfig, TurnClientError, TurnClientEvent,
};
use crate::events::EventStream;

/// A running [`TurnClient`]: its address, local socket, and event stream.
///
/// The client owns its socket and timer: dropping every handle does not stop it (it keeps
/// the allocation refreshed). End it with [`close`](Self::close).
#[derive(Clone)]
pub struct TurnClientHandle {
    pub(super) addr: Addr<TurnClient>,
    pub(super) local: SocketAddr,
    pub(super) server: SocketAddr,
    pub(super) transport: Transport,
}

impl fmt::Debug for TurnClientHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnClientHandle")
            .field("local", &self.local)
            .field("server", &self.server)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl TurnClientHandle {
    /// The actor.
    pub fn addr(&self) -> &Addr<TurnClient> {
        &self.addr
    }

    /// The local address of the socket (the client's host address towards the server).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server it connected to (a 300 Try Alternate may move the session later).
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The transport to the server.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The client's events from now on, as a stream; it ends after
    /// [`TurnClientEvent::Closed`].
    pub fn events(&self) -> EventStream<TurnClientEvent> {
        let (stream, subscribe) = EventStream::new();
        self.addr.do_send(subscribe);
        stream
    }

    /// Sends [`Allocate`].
    pub async fn allocate(&self) -> Result<(), TurnClientError> {
        self.addr
            .send(Allocate)
            .await
            .map_err(|_| TurnClientError::Closed)?
    }

    /// Sends [`Refresh`]; a zero lifetime deletes the allocation.
    pub async fn refresh(&self, lifetime: Duration) -> Result<(), TurnClientError> {
        self.addr
            .send(Refresh { lifetime })
            .await
            .map_err(|_| TurnClientError::Closed)?
    }

    /// Sends [`CreatePermission`].
    pub async fn create_permission(&self, peers: Vec<IpAddr>) -> Result<(), TurnClientError> {
        self.addr
            .send(CreatePermission { peers })
            .await
            .map_err(|_| TurnClientError::Closed)?
    }

    /// Sends [`ChannelBind`]; answers the channel number.
    pub async fn channel_bind(&self, peer: SocketAddr) -> Result<u16, TurnClientError> {
        self.addr
            .send(ChannelBind { peer })
            .await
            .map_err(|_| TurnClientError::Closed)?
    }

    /// Sends [`SendTo`].
    pub async fn send_to(
        &self,
        peer: SocketAddr,
        bytes: impl Into<Bytes>,
    ) -> Result<(), TurnClientError> {
        let bytes = bytes.into();
        self.addr
            .send(SendTo { peer, bytes })
            .await
            .map_err(|_| TurnClientError::Closed)?
    }

    /// Sends [`Binding`].
    pub fn binding(&self) {
        self.addr.do_send(Binding);
    }

    /// Sends [`Close`] and waits until the client has stopped (the allocation deleted, or
    /// the deletion failed or timed out).
    pub async fn close(&self) {
        let _ = self.addr.send(Close).await;
    }
}

/// RFC 8489 §6: one Binding transaction with `config.server` (retransmitted over UDP as
/// `config.transaction` says): the server-reflexive address and the RTT. The client is
/// closed afterwards. Must run inside an actix System.
pub async fn stun_binding(
    config: TurnClientConfig,
) -> Result<(SocketAddr, Option<Duration>), TurnClientError> {
    let client = TurnClient::connect(config).await?;
    let mut events = client.events();
    client.binding();
    let result = loop {
        match events.recv().await {
            Some(TurnClientEvent::Session(ClientEvent::BindingSucceeded { mapped, rtt })) => {
                break Ok((mapped, rtt))
            }
            Some(TurnClientEvent::Session(ClientEvent::Error {
                request,
                code,
                reason,
            })) => {
                break Err(TurnClientError::Failed {
                    request: Some(request),
                    code,
                    reason,
                })
            }
            Some(TurnClientEvent::ConnectionLost { reason }) => {
                break Err(TurnClientError::Failed {
                    request: None,
                    code: None,
                    reason,
                })
            }
            Some(TurnClientEvent::Closed) | None => break Err(TurnClientError::Closed),
            Some(_) => {}
        }
    };
    client.close().await;
    result
}
