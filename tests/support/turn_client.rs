//! floe's own `TurnClient` actor as a test client of a server on 127.0.0.1, with waits on
//! its session events (each bounded; only a hang reaches the bound), and a UDP echo peer.

use std::net::SocketAddr;
use std::time::Duration;

use floe::stun::Method;
use floe::turn::client::ClientEvent;
use floe_actors::events::EventStream;
use floe_actors::turn::{TurnClient, TurnClientConfig, TurnClientEvent, TurnClientHandle};
use tokio::net::UdpSocket;

/// Bounds every wait on an event.
const LIMIT: Duration = Duration::from_secs(30);

/// A TURN client session and its events.
pub struct Client {
    pub handle: TurnClientHandle,
    pub events: EventStream<TurnClientEvent>,
}

impl Client {
    /// Connects to the server at `server` as `user`.
    pub async fn connect(server: SocketAddr, user: &str, password: &str) -> Client {
        let handle = TurnClient::connect(TurnClientConfig::new(server, user, password))
            .await
            .expect("connect");
        let events = handle.events();
        Client { handle, events }
    }

    /// The next session event `pick` accepts; panics on a connection loss or after LIMIT.
    pub async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Some(TurnClientEvent::Session(e)) => {
                        if let Some(t) = pick(&e) {
                            return t;
                        }
                    }
                    Some(other) => panic!("{what}: {other:?}"),
                    None => panic!("{what}: the client is gone"),
                }
            }
        };
        tokio::time::timeout(LIMIT, wait)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing in {LIMIT:?}"))
    }

    /// The error code the server answers `request` with (None: it succeeded).
    pub async fn outcome(&mut self, request: Method) -> Option<u16> {
        self.until("an answer", |e| match e {
            ClientEvent::Error {
                request: r, code, ..
            } if *r == request => Some(*code),
            ClientEvent::Allocated { .. } if request == Method::ALLOCATE => Some(None),
            ClientEvent::Refreshed { .. } | ClientEvent::Deleted if request == Method::REFRESH => {
                Some(None)
            }
            _ => None,
        })
        .await
    }

    /// Allocates; the relayed address (panics if the server refuses).
    pub async fn allocate(&mut self) -> SocketAddr {
        self.handle.allocate().await.expect("allocate");
        self.until("allocate", |e| match e {
            ClientEvent::Allocated { relayed, .. } => Some(relayed[0]),
            ClientEvent::Error { request, code, .. } if *request == Method::ALLOCATE => {
                panic!("allocate failed: {code:?}")
            }
            _ => None,
        })
        .await
    }

    /// Allocates: None on success, else the error code.
    pub async fn try_allocate(&mut self) -> Option<u16> {
        self.handle.allocate().await.expect("allocate");
        self.outcome(Method::ALLOCATE).await
    }

    /// Refreshes for 600 s: None on success, else the error code.
    pub async fn refresh(&mut self) -> Option<u16> {
        self.handle.refresh(Duration::from_secs(600)).await.unwrap();
        self.outcome(Method::REFRESH).await
    }

    /// Binds a channel to `peer`.
    pub async fn channel_to(&mut self, peer: SocketAddr) {
        self.handle.channel_bind(peer).await.expect("channel bind");
        self.until("channel bound", |e| {
            matches!(e, ClientEvent::ChannelBound { .. }).then_some(())
        })
        .await;
    }

    /// Sends `text` to `peer` through the relay and waits for it to come back.
    pub async fn echo(&mut self, peer: SocketAddr, text: &[u8]) {
        self.handle.send_to(peer, text.to_vec()).await.unwrap();
        self.until("the echo", |e| {
            matches!(e, ClientEvent::Data { data, .. } if &data[..] == text).then_some(())
        })
        .await;
    }
}

/// A UDP peer on 127.0.0.1 that sends every datagram back.
pub async fn echo_peer() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}
