//! `TurnClient`: one client session with a STUN/TURN server, as an actor.
//!
//! A thin driver of the sans-IO [`floe::turn::client::TurnClient`]: it owns the socket (a
//! [`BatchSocket`] for UDP, or a TCP stream, optionally wrapped in TLS, cut into messages
//! with [`StreamFramer`]) and one timer, re-armed from the core's `poll_timeout`. Commands
//! are typed messages ([`Allocate`], [`Refresh`], [`CreatePermission`], [`ChannelBind`],
//! [`SendTo`], [`Binding`], [`Close`]); what the server answers comes back as
//! [`TurnClientEvent`]s through [`Subscribe`] or [`TurnClientHandle::events`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), floe_actors::turn::TurnClientError> {
//! use floe_actors::turn::{TurnClient, TurnClientConfig, TurnClientEvent};
//!
//! let config = TurnClientConfig::new("127.0.0.1:3478".parse().unwrap(), "bob", "secret");
//! let client = TurnClient::connect(config).await?;
//! let mut events = client.events();
//! client.allocate().await?;
//! while let Some(event) = events.recv().await {
//!     if let TurnClientEvent::Allocated { relayed, .. } = event {
//!         println!("relayed address: {}", relayed[0]);
//!         break;
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    ResponseFuture, SpawnHandle, StreamHandler, WrapFuture,
};
use bytes::Bytes;
use floe::framing::StreamFramer;
use floe::stun::transaction::TransactionConfig;
use floe::stun::Method;
use floe::transmit::{Transmit, Transport};
use floe::turn::client::{
    Client as ClientCore, ClientConfig, ClientError, ClientEvent, ClientState,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::oneshot;

use crate::events::{EventStream, Subscribe, SubscribeChannel, Subscribers};
use crate::udp::{BatchSocket, Outgoing, RecvBuffers, SendError, UdpError, UdpSocketConfig};

/// Receive slots per batch on the UDP socket.
const UDP_SLOTS: usize = 8;
/// A receive slot holds the largest UDP datagram; one byte more marks truncation.
const UDP_SLOT_LEN: usize = 65_536;
/// Bytes read from a TCP or TLS stream at a time.
const STREAM_READ_LEN: usize = 16 * 1024;

// ---- configuration ------------------------------------------------------------------------

/// Whom to trust when the transport is TLS.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The operating system's trust store (read once per connection).
    #[default]
    Native,
    /// These CA certificates only (PEM, one or more), e.g. a test CA or a private PKI.
    Pem(Vec<u8>),
    /// Accept any certificate: the server is **not** authenticated. For tests against
    /// self-signed servers only; never in production.
    InsecureAcceptAnyCertificate,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsRoots::Native => f.write_str("Native"),
            TlsRoots::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            TlsRoots::InsecureAcceptAnyCertificate => f.write_str("InsecureAcceptAnyCertificate"),
        }
    }
}

/// TLS settings of a client session (RFC 8656 §3.1: TURN over TLS over TCP).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The name to verify the server's certificate against (and to send as SNI); the
    /// server's IP address when `None`.
    pub server_name: Option<String>,
    /// The trust anchors.
    pub roots: TlsRoots,
}

/// The configuration of one [`TurnClient`]. Its `Debug` output leaves the password out.
#[derive(Clone)]
#[non_exhaustive]
pub struct TurnClientConfig {
    /// The STUN/TURN server.
    pub server: SocketAddr,
    /// UDP, TCP or TLS to the server.
    pub transport: Transport,
    /// Long-term credential username (RFC 8489 §9.2); unused by Binding.
    pub username: String,
    /// Long-term credential password.
    pub password: String,
    /// Local address to bind; any address of the server's family when `None`.
    pub bind: Option<SocketAddr>,
    /// RFC 8656 §7.1: the allocation lifetime to ask for (600 s).
    pub lifetime: Duration,
    /// RFC 8489 §14.14: SOFTWARE in requests.
    pub software: Option<String>,
    /// RFC 8489 §6.2: retransmission timers (RTO 500 ms, Rc 7, Rm 16; 39.5 s over TCP).
    pub transaction: TransactionConfig,
    /// Bound on TCP connect plus TLS handshake (10 s).
    pub connect_timeout: Duration,
    /// TLS settings, used when `transport` is [`Transport::Tls`].
    pub tls: TlsOptions,
}

impl TurnClientConfig {
    /// A session over UDP with long-term credentials and the RFC's timers.
    pub fn new(
        server: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        TurnClientConfig {
            server,
            transport: Transport::Udp,
            username: username.into(),
            password: password.into(),
            bind: None,
            lifetime: Duration::from_secs(600),
            software: Some(concat!("floe ", env!("CARGO_PKG_VERSION")).to_owned()),
            transaction: TransactionConfig::default(),
            connect_timeout: Duration::from_secs(10),
            tls: TlsOptions::default(),
        }
    }

    /// A session for STUN Binding only (no credentials).
    pub fn stun(server: SocketAddr) -> Self {
        Self::new(server, "", "")
    }

    /// The same session over `transport`.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The same session over TLS, verifying the server with `tls`.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.transport = Transport::Tls;
        self.tls = tls;
        self
    }

    fn core_config(&self, local: SocketAddr) -> ClientConfig {
        let mut c = ClientConfig::new(
            self.server,
            local,
            self.username.clone(),
            self.password.clone(),
        );
        c.transport = self.transport;
        c.lifetime = self.lifetime;
        c.software.clone_from(&self.software);
        c.transaction = self.transaction;
        c
    }

    fn bind_addr(&self) -> SocketAddr {
        self.bind.unwrap_or_else(|| {
            let ip = if self.server.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            SocketAddr::new(ip, 0)
        })
    }
}

impl fmt::Debug for TurnClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnClientConfig")
            .field("server", &self.server)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("bind", &self.bind)
            .field("lifetime", &self.lifetime)
            .field("software", &self.software)
            .field("transaction", &self.transaction)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

// ---- errors and events --------------------------------------------------------------------

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
    /// The server answered with an error or did not answer (see [`TurnClientEvent::Error`]).
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

/// What a [`TurnClient`] tells its subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum TurnClientEvent {
    /// RFC 8489 §6: the server-reflexive address, and the RTT when the request was not
    /// retransmitted.
    BindingSucceeded {
        /// XOR-MAPPED-ADDRESS.
        mapped: SocketAddr,
        /// Round-trip time.
        rtt: Option<Duration>,
    },
    /// RFC 8656 §7.3: the allocation exists.
    Allocated {
        /// XOR-RELAYED-ADDRESS (two for a dual-stack allocation).
        relayed: Vec<SocketAddr>,
        /// XOR-MAPPED-ADDRESS, if the server sent it.
        mapped: Option<SocketAddr>,
        /// The granted lifetime; refreshes are automatic from here on.
        lifetime: Duration,
    },
    /// RFC 8656 §8: a refresh (explicit or automatic) succeeded.
    Refreshed {
        /// The granted lifetime.
        lifetime: Duration,
    },
    /// RFC 8656 §10.3: permissions installed for these peers (explicit requests only).
    PermissionCreated {
        /// The peer IPs.
        peers: Vec<IpAddr>,
    },
    /// RFC 8656 §12.3: a channel is bound to `peer` (explicit requests only).
    ChannelBound {
        /// The peer.
        peer: SocketAddr,
        /// The channel number.
        channel: u16,
    },
    /// RFC 8656 §11.4, §12.6: data from a peer.
    Data {
        /// The peer that sent it to the relayed address.
        peer: SocketAddr,
        /// The data.
        bytes: Bytes,
    },
    /// RFC 8656 §8.3: the allocation was deleted (`Refresh { lifetime: 0 }` or `Close`).
    Deleted,
    /// RFC 8656 §8: the allocation is gone without being deleted (expired, or the server
    /// forgot it: 437).
    AllocationExpired,
    /// RFC 8656 §7.4: the server sent the session to another one (300 Try Alternate).
    Redirected {
        /// The new server.
        to: SocketAddr,
        /// ALTERNATE-DOMAIN, if any.
        domain: Option<String>,
    },
    /// A request failed, or the connection to the server was lost while an allocation or
    /// a request was using it (`request` is `None`).
    Error {
        /// The request that failed.
        request: Option<Method>,
        /// The STUN error code of the server's error response; `None` for a timeout after
        /// the RFC's retransmissions, a malformed or unauthenticated answer, or a lost
        /// connection.
        code: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// The client stopped (after [`Close`], or when its connection was lost). Last event.
    Closed,
}

impl TurnClientEvent {
    /// The actor's form of a core event; `None` for events it does not pass on.
    fn from_core(e: ClientEvent) -> Option<Self> {
        Some(match e {
            ClientEvent::BindingSucceeded { mapped, rtt } => {
                TurnClientEvent::BindingSucceeded { mapped, rtt }
            }
            ClientEvent::Allocated {
                relayed,
                mapped,
                lifetime,
            } => TurnClientEvent::Allocated {
                relayed,
                mapped,
                lifetime,
            },
            ClientEvent::Refreshed { lifetime } => TurnClientEvent::Refreshed { lifetime },
            ClientEvent::Deleted => TurnClientEvent::Deleted,
            ClientEvent::AllocationExpired => TurnClientEvent::AllocationExpired,
            ClientEvent::PermissionCreated { peers } => {
                TurnClientEvent::PermissionCreated { peers }
            }
            ClientEvent::ChannelBound { peer, channel } => {
                TurnClientEvent::ChannelBound { peer, channel }
            }
            ClientEvent::Data { peer, data } => TurnClientEvent::Data { peer, bytes: data },
            ClientEvent::Error {
                request,
                code,
                reason,
            } => TurnClientEvent::Error {
                request: Some(request),
                code,
                reason,
            },
            ClientEvent::Redirected { to, domain } => TurnClientEvent::Redirected { to, domain },
            _ => return None,
        })
    }
}

// ---- messages -----------------------------------------------------------------------------

/// RFC 8656 §7: request an allocation; [`TurnClientEvent::Allocated`] or `Error` follows.
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

/// RFC 8489 §6: ask for the server-reflexive address; [`TurnClientEvent::BindingSucceeded`]
/// or `Error` follows.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Binding;

/// Delete the allocation, if any (waiting for one being requested), then stop. Answers
/// once [`TurnClientEvent::Closed`] has been published.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Close;

// ---- I/O ----------------------------------------------------------------------------------

/// What the socket delivers to the actor.
enum Inbound {
    /// One batch of UDP datagrams.
    Datagrams(Vec<(SocketAddr, Bytes)>),
    /// One STUN or ChannelData message from the stream.
    Frame(Bytes),
    /// The socket or connection is unusable.
    Lost(String),
}

/// The UDP socket as a stream of datagram batches (recvmmsg).
struct UdpReader {
    socket: Rc<BatchSocket>,
    bufs: RecvBuffers,
    done: bool,
}

impl futures_core::Stream for UdpReader {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.socket.poll_recv_batch(cx, &mut this.bufs)) {
            Ok(_) => {
                let batch = this
                    .bufs
                    .datagrams()
                    .map(|d| (d.source, Bytes::copy_from_slice(d.payload)))
                    .collect();
                Poll::Ready(Some(Inbound::Datagrams(batch)))
            }
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Inbound::Lost(e.to_string())))
            }
        }
    }
}

/// A TCP or TLS stream as a stream of STUN and ChannelData messages (RFC 8656 §12.5).
struct FramedReader {
    reader: Pin<Box<dyn AsyncRead>>,
    framer: StreamFramer,
    buf: Box<[u8]>,
    done: bool,
}

impl futures_core::Stream for FramedReader {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.framer.next_frame() {
                Ok(Some(frame)) => return Poll::Ready(Some(Inbound::Frame(frame.into_bytes()))),
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    let reason = format!("the server's stream cannot be framed: {e}");
                    return Poll::Ready(Some(Inbound::Lost(reason)));
                }
            }
            let mut rb = ReadBuf::new(&mut this.buf);
            let read = std::task::ready!(this.reader.as_mut().poll_read(cx, &mut rb));
            let n = rb.filled().len();
            let lost = match read {
                Ok(()) if n == 0 => Some("the server closed the connection".to_owned()),
                Ok(()) => this
                    .framer
                    .push(&this.buf[..n])
                    .err()
                    .map(|e| format!("the server's stream cannot be framed: {e}")),
                Err(e) => Some(format!("reading from the server failed: {e}")),
            };
            if let Some(reason) = lost {
                this.done = true;
                return Poll::Ready(Some(Inbound::Lost(reason)));
            }
        }
    }
}

/// Where inbound messages come from.
enum Reader {
    Udp(UdpReader),
    Stream(FramedReader),
}

/// Where transmits go.
enum Writer {
    Udp(Rc<BatchSocket>),
    /// The sending half of a TCP or TLS connection, written by its own task in order.
    Stream(UnboundedSender<Bytes>),
}

/// A connected TCP or TLS stream, split.
struct StreamConn {
    reader: Pin<Box<dyn AsyncRead>>,
    writer: Pin<Box<dyn AsyncWrite>>,
    local: SocketAddr,
}

async fn connect_stream(
    config: &TurnClientConfig,
    server: SocketAddr,
    server_name: Option<String>,
) -> Result<StreamConn, TurnClientError> {
    let connect = async {
        let socket = if server.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|source| TurnClientError::Connect { server, source })?;
        if let Some(bind) = config.bind {
            socket
                .bind(bind)
                .map_err(|source| TurnClientError::Connect { server, source })?;
        }
        let tcp = socket
            .connect(server)
            .await
            .map_err(|source| TurnClientError::Connect { server, source })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_err(|source| TurnClientError::Connect { server, source })?;
        if config.transport != Transport::Tls {
            let (r, w) = tokio::io::split(tcp);
            return Ok(StreamConn {
                reader: Box::pin(r),
                writer: Box::pin(w),
                local,
            });
        }
        let tls_err = |reason: String| TurnClientError::Tls { server, reason };
        let tls_config = tls::client_config(&config.tls.roots).map_err(tls_err)?;
        let name = server_name.map_or_else(
            || Ok(rustls::pki_types::ServerName::IpAddress(server.ip().into())),
            |n| {
                rustls::pki_types::ServerName::try_from(n)
                    .map_err(|e| tls_err(format!("invalid server name: {e}")))
            },
        )?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
            .connect(name, tcp)
            .await
            .map_err(|e| tls_err(e.to_string()))?;
        let (r, w) = tokio::io::split(stream);
        Ok(StreamConn {
            reader: Box::pin(r),
            writer: Box::pin(w),
            local,
        })
    };
    tokio::time::timeout(config.connect_timeout, connect)
        .await
        .unwrap_or(Err(TurnClientError::ConnectTimeout { server }))
}

fn spawn_writer(mut writer: Pin<Box<dyn AsyncWrite>>) -> UnboundedSender<Bytes> {
    let (tx, mut rx) = unbounded_channel::<Bytes>();
    actix_rt::spawn(async move {
        while let Some(b) = rx.recv().await {
            if writer.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    tx
}

fn framed_reader(reader: Pin<Box<dyn AsyncRead>>) -> FramedReader {
    FramedReader {
        reader,
        framer: StreamFramer::with_capacity(STREAM_READ_LEN),
        buf: vec![0; STREAM_READ_LEN].into_boxed_slice(),
        done: false,
    }
}

// ---- the actor ----------------------------------------------------------------------------

/// One client session with one STUN/TURN server (RFC 8489, RFC 8656).
pub struct TurnClient {
    config: TurnClientConfig,
    core: ClientCore,
    writer: Writer,
    reader: Option<SpawnHandle>,
    /// The pending `run_later` and the deadline it is for.
    timer: Option<(SpawnHandle, Instant)>,
    subscribers: Subscribers<TurnClientEvent>,
    /// A reconnect (after a redirect over TCP/TLS) is under way: transmits wait.
    reconnecting: bool,
    closing: bool,
    closed: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
}

/// A running [`TurnClient`]: its address, local socket, and event stream.
///
/// The client owns its socket and timer: dropping every handle does not stop it (it keeps
/// the allocation refreshed). End it with [`close`](Self::close).
#[derive(Clone)]
pub struct TurnClientHandle {
    addr: Addr<TurnClient>,
    local: SocketAddr,
    server: SocketAddr,
    transport: Transport,
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

impl TurnClient {
    /// Opens the socket (binds UDP, or connects TCP and does the TLS handshake) and starts
    /// the actor on the current Arbiter. Nothing is sent to the server yet.
    pub async fn connect(config: TurnClientConfig) -> Result<TurnClientHandle, TurnClientError> {
        let server = config.server;
        let transport = config.transport;
        let (local, writer, reader) = match transport {
            Transport::Udp => {
                let socket_config = UdpSocketConfig {
                    gro: false,
                    ..UdpSocketConfig::default()
                };
                let socket = Rc::new(BatchSocket::bind(config.bind_addr(), &socket_config)?);
                let reader = Reader::Udp(UdpReader {
                    socket: socket.clone(),
                    bufs: RecvBuffers::new(UDP_SLOTS, UDP_SLOT_LEN),
                    done: false,
                });
                (socket.local_addr(), Writer::Udp(socket), reader)
            }
            Transport::Tcp | Transport::Tls => {
                let conn = connect_stream(&config, server, config.tls.server_name.clone()).await?;
                let writer = Writer::Stream(spawn_writer(conn.writer));
                (
                    conn.local,
                    writer,
                    Reader::Stream(framed_reader(conn.reader)),
                )
            }
        };
        let core = ClientCore::new(config.core_config(local), StdRng::from_entropy());
        let addr = TurnClient::create(move |ctx| {
            let reader = match reader {
                Reader::Udp(r) => ctx.add_stream(r),
                Reader::Stream(r) => ctx.add_stream(r),
            };
            TurnClient {
                config,
                core,
                writer,
                reader: Some(reader),
                timer: None,
                subscribers: Subscribers::default(),
                reconnecting: false,
                closing: false,
                closed: false,
                close_waiters: Vec::new(),
            }
        });
        Ok(TurnClientHandle {
            addr,
            local,
            server,
            transport,
        })
    }

    /// Hands everything the core has queued to the socket and the subscribers, and re-arms
    /// the timer. Called after every input to the core.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        // Events first: a redirect over TCP/TLS reconnects before the next request leaves.
        while let Some(e) = self.core.poll_event() {
            if let ClientEvent::Redirected { to, domain } = &e {
                if self.config.transport.is_reliable() {
                    self.reconnect(*to, domain.clone(), ctx);
                }
            }
            if let Some(e) = TurnClientEvent::from_core(e) {
                self.subscribers.publish(e);
            }
        }
        if self.closing && self.advance_close(ctx) {
            return;
        }
        if !self.reconnecting {
            while let Some(t) = self.core.poll_transmit() {
                self.send(t, ctx);
            }
        }
        self.arm_timer(ctx);
    }

    fn send(&mut self, t: Transmit, ctx: &mut Context<Self>) {
        match &self.writer {
            Writer::Udp(socket) => {
                match socket.try_send(&Outgoing::new(t.destination, &t.payload)) {
                    Ok(()) => {}
                    Err(SendError::WouldBlock) => {
                        let socket = socket.clone();
                        actix_rt::spawn(async move {
                            let _ = socket.send_to(&t.payload, t.destination).await;
                        });
                    }
                    // Lost like a datagram: requests are retransmitted and time out.
                    Err(e) => tracing::debug!(error = %e, "TURN client: UDP send failed"),
                }
            }
            Writer::Stream(tx) => {
                if tx.send(t.payload).is_err() {
                    self.lost("the connection to the server is closed".into(), ctx);
                }
            }
        }
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.core.poll_timeout();
        if self.timer.as_ref().map(|(_, at)| *at) == next {
            return;
        }
        if let Some((handle, _)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = next {
            let delay = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.core.handle_timeout(Instant::now());
                act.flush(ctx);
            });
            self.timer = Some((handle, at));
        }
    }

    /// RFC 8656 §7.4 over TCP/TLS: the session continues on a new connection to `to`.
    fn reconnect(&mut self, to: SocketAddr, domain: Option<String>, ctx: &mut Context<Self>) {
        if let Some(h) = self.reader.take() {
            ctx.cancel_future(h);
        }
        // Dropping the sender closes the old connection once its queue is written.
        self.writer = Writer::Stream(unbounded_channel().0);
        self.reconnecting = true;
        let config = self.config.clone();
        let name = domain.or_else(|| config.tls.server_name.clone());
        let fut = async move { connect_stream(&config, to, name).await };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(conn) => {
                act.writer = Writer::Stream(spawn_writer(conn.writer));
                act.reader = Some(ctx.add_stream(framed_reader(conn.reader)));
                act.reconnecting = false;
                act.flush(ctx);
            }
            Err(e) => act.lost(e.to_string(), ctx),
        }));
    }

    /// Moves a [`Close`] along: deletes the allocation once there is one to delete, and
    /// finishes once there is none. Returns whether the client is closed.
    fn advance_close(&mut self, ctx: &mut Context<Self>) -> bool {
        match self.core.state() {
            ClientState::Allocated => {
                let _ = self.core.delete(Instant::now());
                self.flush(ctx);
                self.closed
            }
            ClientState::Allocating | ClientState::Deleting => false,
            ClientState::Idle => {
                self.finish(ctx);
                true
            }
        }
    }

    /// The socket is unusable: says why (unless nothing was left to lose), then closes.
    fn lost(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        tracing::debug!(server = %self.core.server(), %reason, "TURN client lost its server");
        // A server may close a TCP/TLS connection that carries nothing any more (coturn
        // does right after a delete): with no allocation and no request pending, that is
        // just the end of the session.
        let idle = self.core.state() == ClientState::Idle && self.core.poll_timeout().is_none();
        if !idle {
            self.subscribers.publish(TurnClientEvent::Error {
                request: None,
                code: None,
                reason,
            });
        }
        self.finish(ctx);
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.subscribers.publish(TurnClientEvent::Closed);
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
        ctx.stop();
    }

    /// Runs a command on the core and flushes what it queued.
    fn command<T>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut ClientCore, Instant) -> Result<T, ClientError>,
    ) -> Result<T, TurnClientError> {
        if self.closing || self.closed {
            return Err(TurnClientError::Closed);
        }
        let result = f(&mut self.core, Instant::now());
        self.flush(ctx);
        Ok(result?)
    }
}

impl Actor for TurnClient {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if !self.closed {
            self.closed = true;
            self.subscribers.publish(TurnClientEvent::Closed);
        }
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

impl StreamHandler<Inbound> for TurnClient {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match item {
            Inbound::Datagrams(batch) => {
                for (from, bytes) in batch {
                    self.core.handle_input(now, from, bytes);
                }
            }
            Inbound::Frame(bytes) => {
                let from = self.core.server();
                self.core.handle_input(now, from, bytes);
            }
            Inbound::Lost(reason) => return self.lost(reason, ctx),
        }
        self.flush(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // `Inbound::Lost` said why; a cancelled reader (reconnect) ends silently.
    }
}

impl Handler<Allocate> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, _: Allocate, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.allocate(now))
    }
}

impl Handler<Refresh> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, msg: Refresh, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.refresh(now, msg.lifetime))
    }
}

impl Handler<CreatePermission> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, msg: CreatePermission, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.create_permission(now, &msg.peers))
    }
}

impl Handler<ChannelBind> for TurnClient {
    type Result = Result<u16, TurnClientError>;

    fn handle(&mut self, msg: ChannelBind, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.channel_bind(now, msg.peer))
    }
}

impl Handler<SendTo> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, msg: SendTo, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.send_to(now, msg.peer, &msg.bytes))
    }
}

impl Handler<Binding> for TurnClient {
    type Result = ();

    fn handle(&mut self, _: Binding, ctx: &mut Context<Self>) {
        let _ = self.command(ctx, |core, now| {
            core.binding(now);
            Ok(())
        });
    }
}

impl Handler<Close> for TurnClient {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.close_waiters.push(tx);
        if !self.closing && !self.closed {
            self.closing = true;
            self.flush(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Subscribe<TurnClientEvent>> for TurnClient {
    type Result = ();

    fn handle(&mut self, msg: Subscribe<TurnClientEvent>, _: &mut Context<Self>) {
        self.subscribers.add(msg.0);
    }
}

impl Handler<SubscribeChannel<TurnClientEvent>> for TurnClient {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChannel<TurnClientEvent>, _: &mut Context<Self>) {
        self.subscribers.add_channel(msg.0);
    }
}

// ---- the handle ---------------------------------------------------------------------------

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
            Some(TurnClientEvent::BindingSucceeded { mapped, rtt }) => break Ok((mapped, rtt)),
            Some(TurnClientEvent::Error {
                request,
                code,
                reason,
            }) => {
                break Err(TurnClientError::Failed {
                    request,
                    code,
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

// ---- TLS ----------------------------------------------------------------------------------

mod tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{ring, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

    use super::TlsRoots;

    /// A rustls client configuration (ring provider, TLS 1.2 and 1.3) trusting `roots`.
    pub(super) fn client_config(roots: &TlsRoots) -> Result<ClientConfig, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut store = RootCertStore::empty();
        match roots {
            TlsRoots::Native => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(format!(
                        "no usable CA certificate in the system store ({} errors)",
                        found.errors.len()
                    ));
                }
            }
            TlsRoots::Pem(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| format!("invalid PEM CA certificate: {e}"))?;
                    store
                        .add(cert)
                        .map_err(|e| format!("unusable CA certificate: {e}"))?;
                }
                if store.is_empty() {
                    return Err("no CA certificate in the PEM given".into());
                }
            }
            TlsRoots::InsecureAcceptAnyCertificate => {
                return Ok(builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                    .with_no_client_auth());
            }
        }
        Ok(builder.with_root_certificates(store).with_no_client_auth())
    }

    /// Accepts any certificate, but still checks the handshake signatures against it.
    #[derive(Debug)]
    struct AcceptAny(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
