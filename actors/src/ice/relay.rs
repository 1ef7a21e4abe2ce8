//! The seam between a [`Checklist`](super::Checklist) and a TURN client, and its first
//! implementation: [`TurnRelay`], an actor driving the sans-IO
//! [`floe::turn::client::TurnClient`] over its own UDP socket or TCP connection.
//!
//! A checklist only ever sends [`RelayCommand`]s to a `Recipient<RelayCommand>` and
//! handles [`RelayNotice`]s, so another TURN client (the `TurnClient` actor) fits by
//! translating its messages to these. [`spawn_relay`] is the one place that picks the
//! implementation.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    SpawnHandle, StreamHandler, WrapFuture,
};
use bytes::Bytes;
use floe::stun::transaction::TransactionConfig;
use floe::stun::Method;
use floe::turn::client::{ClientConfig, ClientEvent, ClientState, TurnClient};
use floe::Transport;
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::config::{TurnServerConfig, TurnTransport};
use super::io::{tcp_frames, udp_datagrams, Datagram};
use super::CandidateErrorKind;
use crate::udp::{BatchSocket, Outgoing, UdpSocketConfig};

/// Most datagrams held per peer IP while its permission is being installed.
const MAX_QUEUED_PER_PEER: usize = 32;

/// What a checklist asks of its TURN client.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) enum RelayCommand {
    /// RFC 8656 §9: install (and keep refreshed) a permission for this peer IP.
    Permit(IpAddr),
    /// RFC 8656 §11, §12: send `data` to `peer` from the relayed address; queued until
    /// the peer's permission is installed.
    SendTo {
        /// The peer.
        peer: SocketAddr,
        /// The datagram.
        data: Bytes,
    },
    /// Delete the allocation (RFC 8656 §7.2, Refresh with LIFETIME 0) and stop.
    Close,
}

/// What a TURN client tells its checklist.
#[derive(Debug, Clone)]
pub(crate) enum RelayEvent {
    /// RFC 8656 §7.3: the relayed address, and the client's reflexive address.
    Allocated {
        relayed: SocketAddr,
        mapped: Option<SocketAddr>,
    },
    /// RFC 8656 §11.4, §12.6: data from a peer to the relayed address.
    Data { peer: SocketAddr, data: Bytes },
    /// No allocation: the server is unreachable or refused.
    Failed {
        kind: CandidateErrorKind,
        code: Option<u16>,
        reason: String,
    },
}

/// A [`RelayEvent`] of relay number `relay`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct RelayNotice {
    pub relay: usize,
    pub event: RelayEvent,
}

/// Starts a TURN session with `server` from `local_ip` on the current Arbiter, and
/// returns where to send its commands. Its events go to `events`, tagged `relay`.
pub(crate) fn spawn_relay(
    relay: usize,
    server: TurnServerConfig,
    local_ip: IpAddr,
    transaction: TransactionConfig,
    events: Recipient<RelayNotice>,
) -> Recipient<RelayCommand> {
    TurnRelay {
        relay,
        server,
        local_ip,
        transaction,
        events,
        client: None,
        io: Io::None,
        queued: HashMap::new(),
        requested: HashSet::new(),
        early_permits: Vec::new(),
        reported: false,
        timer: None,
        closing: false,
    }
    .start()
    .recipient()
}

enum Io {
    None,
    Udp(Rc<BatchSocket>),
    Tcp(UnboundedSender<Bytes>),
}

/// One TURN session driven by floe's sans-IO client core.
pub(crate) struct TurnRelay {
    relay: usize,
    server: TurnServerConfig,
    local_ip: IpAddr,
    transaction: TransactionConfig,
    events: Recipient<RelayNotice>,
    client: Option<TurnClient>,
    io: Io,
    /// Datagrams waiting for their peer's permission.
    queued: HashMap<IpAddr, Vec<(SocketAddr, Bytes)>>,
    /// Permissions asked for (installed or under way).
    requested: HashSet<IpAddr>,
    /// Permissions asked for before the allocation existed.
    early_permits: Vec<IpAddr>,
    /// Whether Allocated or Failed was reported.
    reported: bool,
    timer: Option<SpawnHandle>,
    closing: bool,
}

/// One message from the server (a datagram, or a frame over TCP).
struct FromServer {
    from: SocketAddr,
    data: Bytes,
}

impl Message for FromServer {
    type Result = ();
}

impl TurnRelay {
    fn notify(&self, event: RelayEvent) {
        self.events.do_send(RelayNotice {
            relay: self.relay,
            event,
        });
    }

    fn fail(
        &mut self,
        ctx: &mut Context<Self>,
        kind: CandidateErrorKind,
        code: Option<u16>,
        reason: String,
    ) {
        if !self.reported {
            self.reported = true;
            self.notify(RelayEvent::Failed { kind, code, reason });
        }
        ctx.stop();
    }

    fn begin(&mut self, ctx: &mut Context<Self>, local: SocketAddr) {
        let transport = match self.server.transport {
            TurnTransport::Udp => Transport::Udp,
            TurnTransport::Tcp => Transport::Tcp,
        };
        let mut config = ClientConfig::new(
            self.server.addr,
            local,
            self.server.username.clone(),
            self.server.password.expose(),
        );
        config.transport = transport;
        config.transaction = self.transaction;
        config.software = Some(concat!("floe ", env!("CARGO_PKG_VERSION")).to_owned());
        let mut client = TurnClient::new(config, StdRng::from_entropy());
        if let Err(e) = client.allocate(Instant::now()) {
            let reason = e.to_string();
            return self.fail(ctx, CandidateErrorKind::Rejected, None, reason);
        }
        self.client = Some(client);
        self.drive(ctx);
    }

    /// Flushes transmits, handles the client's events and re-arms the timer.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut events = Vec::new();
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        for e in events {
            self.on_event(ctx, now, e);
        }
        let Some(client) = self.client.as_mut() else {
            return;
        };
        while let Some(t) = client.poll_transmit() {
            match &self.io {
                Io::Udp(socket) => {
                    if let Err(e) = socket.try_send(&Outgoing::new(t.destination, &t.payload)) {
                        tracing::debug!(server = %t.destination, error = %e, "TURN datagram not sent");
                    }
                }
                Io::Tcp(tx) => {
                    let _ = tx.send(t.payload);
                }
                Io::None => {}
            }
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = client.poll_timeout() {
            let wait = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(wait, |act, ctx| {
                act.timer = None;
                if let Some(c) = act.client.as_mut() {
                    c.handle_timeout(Instant::now());
                }
                act.drive(ctx);
            }));
        }
    }

    fn on_event(&mut self, ctx: &mut Context<Self>, now: Instant, event: ClientEvent) {
        match event {
            ClientEvent::Allocated {
                relayed, mapped, ..
            } => {
                let Some(relayed) = relayed.first().copied() else {
                    return;
                };
                tracing::debug!(server = %self.server.addr, %relayed, "relayed candidate allocated");
                self.reported = true;
                self.notify(RelayEvent::Allocated { relayed, mapped });
                for ip in std::mem::take(&mut self.early_permits) {
                    self.permit(now, ip);
                }
            }
            ClientEvent::Data { peer, data } => {
                tracing::trace!(relay = self.relay, %peer, len = data.len(), "relayed data in");
                self.notify(RelayEvent::Data { peer, data })
            }
            ClientEvent::PermissionCreated { peers } => {
                tracing::trace!(relay = self.relay, ?peers, "TURN permission installed");
                for ip in peers {
                    for (peer, data) in self.queued.remove(&ip).unwrap_or_default() {
                        self.send_to(now, peer, data);
                    }
                }
            }
            ClientEvent::Error {
                request,
                code,
                reason,
            } => {
                if request == Method::ALLOCATE && !self.reported {
                    let kind = match code {
                        None => CandidateErrorKind::Unreachable,
                        Some(401 | 441) => CandidateErrorKind::AuthFailed,
                        Some(_) => CandidateErrorKind::Rejected,
                    };
                    self.fail(ctx, kind, code, reason);
                } else if request == Method::CREATE_PERMISSION {
                    tracing::debug!(server = %self.server.addr, ?code, %reason, "TURN permission refused");
                    // Drop what waited and let a later send ask again.
                    self.queued.clear();
                    self.requested.clear();
                } else {
                    tracing::debug!(server = %self.server.addr, ?request, ?code, %reason, "TURN request failed");
                }
            }
            ClientEvent::AllocationExpired | ClientEvent::Deleted => {
                tracing::debug!(server = %self.server.addr, "TURN allocation gone");
                if self.closing {
                    ctx.stop();
                }
            }
            _ => {}
        }
    }

    fn permit(&mut self, now: Instant, ip: IpAddr) {
        let Some(client) = self.client.as_mut() else {
            self.early_permits.push(ip);
            return;
        };
        if client.state() != ClientState::Allocated {
            self.early_permits.push(ip);
            return;
        }
        if self.requested.insert(ip) {
            if let Err(e) = client.create_permission(now, &[ip]) {
                tracing::debug!(peer = %ip, error = %e, "no TURN permission");
                self.requested.remove(&ip);
            }
        }
    }

    fn send_to(&mut self, now: Instant, peer: SocketAddr, data: Bytes) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        if client.state() != ClientState::Allocated {
            return;
        }
        if client.has_permission(now, peer.ip()) {
            tracing::trace!(relay = self.relay, %peer, len = data.len(), "relayed data out");
            if let Err(e) = client.send_to(now, peer, &data) {
                tracing::debug!(%peer, error = %e, "not relayed");
            }
            return;
        }
        tracing::trace!(relay = self.relay, %peer, "waiting for a TURN permission");
        let queue = self.queued.entry(peer.ip()).or_default();
        if queue.len() < MAX_QUEUED_PER_PEER {
            queue.push((peer, data));
        }
        self.permit(now, peer.ip());
    }
}

impl Actor for TurnRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.server.transport {
            TurnTransport::Udp => {
                let addr = SocketAddr::new(self.local_ip, 0);
                match BatchSocket::bind(addr, &UdpSocketConfig::default()) {
                    Ok(socket) => {
                        let socket = Rc::new(socket);
                        let local = socket.local_addr();
                        ctx.add_stream(
                            udp_datagrams(0, socket.clone())
                                .map(|Datagram { from, data, .. }| FromServer { from, data }),
                        );
                        self.io = Io::Udp(socket);
                        self.begin(ctx, local);
                    }
                    Err(e) => {
                        self.fail(ctx, CandidateErrorKind::Unreachable, None, e.to_string());
                    }
                }
            }
            TurnTransport::Tcp => {
                let server = self.server.addr;
                let limit = self
                    .transaction
                    .reliable_timeout
                    .max(Duration::from_secs(1));
                let connect = async move {
                    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(server)).await
                    {
                        Ok(Ok(s)) => Ok(s),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no TCP connection within {limit:?}")),
                    }
                };
                ctx.wait(connect.into_actor(self).map(move |result, act, ctx| {
                    let stream = match result {
                        Ok(s) => s,
                        Err(reason) => {
                            let reason = format!("TCP to {server}: {reason}");
                            return act.fail(ctx, CandidateErrorKind::Unreachable, None, reason);
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok(local) = stream.local_addr() else {
                        let reason = "TCP connection without a local address".to_owned();
                        return act.fail(ctx, CandidateErrorKind::Unreachable, None, reason);
                    };
                    let (read, mut write) = stream.into_split();
                    let (tx, mut rx) = unbounded_channel::<Bytes>();
                    actix::spawn(async move {
                        while let Some(b) = rx.recv().await {
                            if write.write_all(&b).await.is_err() {
                                break;
                            }
                        }
                    });
                    ctx.add_stream(
                        tcp_frames(read).map(move |data| FromServer { from: server, data }),
                    );
                    act.io = Io::Tcp(tx);
                    act.begin(ctx, local);
                }));
            }
        }
    }
}

impl StreamHandler<FromServer> for TurnRelay {
    fn handle(&mut self, msg: FromServer, ctx: &mut Context<Self>) {
        tracing::trace!(relay = self.relay, from = %msg.from, len = msg.data.len(), first = msg.data.first().copied(), "from the TURN server");
        if let Some(c) = self.client.as_mut() {
            c.handle_input(Instant::now(), msg.from, msg.data);
        }
        self.drive(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        let reason = format!("the connection to {} closed", self.server.addr);
        self.fail(ctx, CandidateErrorKind::Unreachable, None, reason);
    }
}

impl Handler<RelayCommand> for TurnRelay {
    type Result = ();

    fn handle(&mut self, msg: RelayCommand, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg {
            RelayCommand::Permit(ip) => self.permit(now, ip),
            RelayCommand::SendTo { peer, data } => self.send_to(now, peer, data),
            RelayCommand::Close => {
                self.closing = true;
                let deleting = self.client.as_mut().is_some_and(|c| c.delete(now).is_ok());
                if deleting {
                    // Give the Refresh a moment to leave and be answered.
                    ctx.run_later(Duration::from_millis(200), |_, ctx| ctx.stop());
                } else {
                    ctx.stop();
                }
            }
        }
        self.drive(ctx);
    }
}
