//! The seam between a [`Checklist`](super::Checklist) and a TURN client: [`TurnRelay`],
//! a small adapter that drives one [`TurnClient`](crate::turn::client::TurnClient) actor
//! (over UDP or TCP to the server) on behalf of a checklist.
//!
//! A checklist only ever sends [`RelayCommand`]s to a `Recipient<RelayCommand>` and
//! handles [`RelayNotice`]s; the adapter translates them to the `TurnClient`'s messages
//! (`Allocate`, `CreatePermission`, `ChannelBind`, `SendTo`, `Close`) and its
//! [`TurnClientEvent`]s back. It adds what ICE needs on top: data for a peer waits
//! until the peer's permission is installed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};
use bytes::Bytes;
use floe::stun::transaction::TransactionConfig;
use floe::stun::Method;
use floe::Transport;

use super::config::{TurnServerConfig, TurnTransport};
use super::CandidateErrorKind;
use crate::events::Subscribe;
use crate::turn::client::{
    Allocate, ChannelBind, ClientEvent, Close, CreatePermission, SendTo, TurnClient,
    TurnClientConfig, TurnClientError, TurnClientEvent, TurnClientHandle,
};

/// Most datagrams held per peer IP while its permission is being installed.
const MAX_QUEUED_PER_PEER: usize = 32;

/// What a checklist asks of its TURN client.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) enum RelayCommand {
    /// RFC 8656 §9: install (and keep refreshed) a permission for this peer IP.
    Permit(IpAddr),
    /// RFC 8656 §12: bind (and keep refreshed) a channel to this peer, so that data to
    /// and from it goes as ChannelData rather than Send and Data indications.
    Bind(SocketAddr),
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
        allocated: false,
        installed: HashSet::new(),
        queued: HashMap::new(),
        requested: HashSet::new(),
        early_permits: Vec::new(),
        early_binds: Vec::new(),
        bound: HashSet::new(),
        reported: false,
        closing: false,
    }
    .start()
    .recipient()
}

/// One TURN session of a checklist, through a [`TurnClient`] actor.
pub(crate) struct TurnRelay {
    relay: usize,
    server: TurnServerConfig,
    local_ip: IpAddr,
    transaction: TransactionConfig,
    events: Recipient<RelayNotice>,
    client: Option<TurnClientHandle>,
    /// Whether the allocation exists.
    allocated: bool,
    /// Peer IPs whose permission is installed.
    installed: HashSet<IpAddr>,
    /// Datagrams waiting for their peer's permission.
    queued: HashMap<IpAddr, Vec<(SocketAddr, Bytes)>>,
    /// Permissions asked for (installed or under way).
    requested: HashSet<IpAddr>,
    /// Permissions asked for before the allocation existed.
    early_permits: Vec<IpAddr>,
    /// Channels asked for before the allocation existed.
    early_binds: Vec<SocketAddr>,
    /// Peers a channel was asked for.
    bound: HashSet<SocketAddr>,
    /// Whether Allocated or Failed was reported.
    reported: bool,
    closing: bool,
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
        if let Some(c) = self.client.take() {
            c.addr().do_send(Close);
        }
        ctx.stop();
    }

    fn client_config(&self) -> TurnClientConfig {
        let transport = match self.server.transport {
            TurnTransport::Udp => Transport::Udp,
            TurnTransport::Tcp => Transport::Tcp,
        };
        let mut config = TurnClientConfig::new(
            self.server.addr,
            self.server.username.clone(),
            self.server.password.expose(),
        )
        .with_transport(transport);
        config.bind = Some(SocketAddr::new(self.local_ip, 0));
        config.session.transaction = self.transaction;
        config.connect_timeout = self
            .transaction
            .reliable_timeout
            .max(Duration::from_secs(1));
        config
    }

    fn permit(&mut self, ip: IpAddr) {
        let Some(client) = self.client.as_ref().filter(|_| self.allocated) else {
            self.early_permits.push(ip);
            return;
        };
        if self.requested.insert(ip) {
            client.addr().do_send(CreatePermission { peers: vec![ip] });
        }
    }

    fn bind(&mut self, peer: SocketAddr) {
        let Some(client) = self.client.as_ref().filter(|_| self.allocated) else {
            self.early_binds.push(peer);
            return;
        };
        if self.bound.insert(peer) {
            tracing::debug!(relay = self.relay, %peer, "TURN channel to the selected peer");
            client.addr().do_send(ChannelBind { peer });
        }
    }

    fn send_to(&mut self, peer: SocketAddr, data: Bytes) {
        let Some(client) = self.client.as_ref().filter(|_| self.allocated) else {
            return;
        };
        if self.installed.contains(&peer.ip()) {
            tracing::trace!(relay = self.relay, %peer, len = data.len(), "relayed data out");
            client.addr().do_send(SendTo { peer, bytes: data });
            return;
        }
        tracing::trace!(relay = self.relay, %peer, "waiting for a TURN permission");
        let queue = self.queued.entry(peer.ip()).or_default();
        if queue.len() < MAX_QUEUED_PER_PEER {
            queue.push((peer, data));
        }
        self.permit(peer.ip());
    }

    fn connected(&mut self, ctx: &mut Context<Self>, client: TurnClientHandle) {
        client
            .addr()
            .do_send(Subscribe(ctx.address().recipient::<TurnClientEvent>()));
        let allocate = client.addr().send(Allocate);
        self.client = Some(client);
        ctx.spawn(allocate.into_actor(self).map(|res, act, ctx| {
            let err = match res {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => TurnClientError::Closed.to_string(),
            };
            act.fail(ctx, CandidateErrorKind::Rejected, None, err);
        }));
    }
}

impl Actor for TurnRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let config = self.client_config();
        let server = self.server.addr;
        ctx.wait(TurnClient::connect(config).into_actor(self).map(
            move |res, act, ctx| match res {
                Ok(client) => act.connected(ctx, client),
                Err(e) => {
                    let reason = match e {
                        TurnClientError::Connect { .. }
                        | TurnClientError::ConnectTimeout { .. } => {
                            format!("TCP to {server}: {e}")
                        }
                        _ => e.to_string(),
                    };
                    act.fail(ctx, CandidateErrorKind::Unreachable, None, reason);
                }
            },
        ));
    }
}

impl Handler<TurnClientEvent> for TurnRelay {
    type Result = ();

    fn handle(&mut self, event: TurnClientEvent, ctx: &mut Context<Self>) {
        match event {
            TurnClientEvent::Session(ClientEvent::Allocated {
                relayed, mapped, ..
            }) => {
                let Some(relayed) = relayed.first().copied() else {
                    return;
                };
                tracing::debug!(server = %self.server.addr, %relayed, "relayed candidate allocated");
                self.allocated = true;
                self.reported = true;
                self.notify(RelayEvent::Allocated { relayed, mapped });
                for ip in std::mem::take(&mut self.early_permits) {
                    self.permit(ip);
                }
                for peer in std::mem::take(&mut self.early_binds) {
                    self.bind(peer);
                }
            }
            TurnClientEvent::Session(ClientEvent::Data { peer, data }) => {
                tracing::trace!(relay = self.relay, %peer, len = data.len(), "relayed data in");
                self.notify(RelayEvent::Data { peer, data })
            }
            TurnClientEvent::Session(ClientEvent::PermissionCreated { peers }) => {
                tracing::trace!(relay = self.relay, ?peers, "TURN permission installed");
                for ip in peers {
                    self.installed.insert(ip);
                    for (peer, data) in self.queued.remove(&ip).unwrap_or_default() {
                        self.send_to(peer, data);
                    }
                }
            }
            TurnClientEvent::Session(ClientEvent::ChannelBound { peer, channel }) => {
                tracing::debug!(relay = self.relay, %peer, channel, "TURN channel bound");
            }
            TurnClientEvent::ConnectionLost { reason } if !self.reported => {
                self.fail(ctx, CandidateErrorKind::Unreachable, None, reason);
            }
            TurnClientEvent::Session(ClientEvent::Error {
                request,
                code,
                reason,
            }) => match request {
                Method::ALLOCATE if !self.reported => {
                    let kind = match code {
                        None => CandidateErrorKind::Unreachable,
                        Some(401 | 441) => CandidateErrorKind::AuthFailed,
                        Some(_) => CandidateErrorKind::Rejected,
                    };
                    self.fail(ctx, kind, code, reason);
                }
                Method::CREATE_PERMISSION => {
                    tracing::debug!(server = %self.server.addr, ?code, %reason, "TURN permission refused");
                    // Drop what waited and let a later send ask again.
                    self.queued.clear();
                    self.requested.clear();
                    self.installed.clear();
                }
                Method::CHANNEL_BIND => {
                    tracing::debug!(server = %self.server.addr, ?code, %reason, "TURN channel refused");
                    self.bound.clear();
                }
                _ => {
                    tracing::debug!(server = %self.server.addr, ?request, ?code, %reason, "TURN request failed");
                }
            },
            TurnClientEvent::Session(ClientEvent::AllocationExpired | ClientEvent::Deleted) => {
                tracing::debug!(server = %self.server.addr, "TURN allocation gone");
                self.allocated = false;
            }
            TurnClientEvent::Closed => {
                self.client = None;
                if self.closing || self.reported {
                    ctx.stop();
                } else {
                    let reason = format!("the connection to {} closed", self.server.addr);
                    self.fail(ctx, CandidateErrorKind::Unreachable, None, reason);
                }
            }
            _ => {}
        }
    }
}

impl Handler<RelayCommand> for TurnRelay {
    type Result = ();

    fn handle(&mut self, msg: RelayCommand, ctx: &mut Context<Self>) {
        match msg {
            RelayCommand::Permit(ip) => self.permit(ip),
            RelayCommand::Bind(peer) => self.bind(peer),
            RelayCommand::SendTo { peer, data } => self.send_to(peer, data),
            RelayCommand::Close => {
                self.closing = true;
                match self.client.take() {
                    // The client deletes the allocation, then stops; so do we.
                    Some(c) => {
                        ctx.wait(
                            c.addr()
                                .send(Close)
                                .into_actor(self)
                                .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
                        );
                    }
                    None => ctx.stop(),
                }
            }
        }
    }
}
