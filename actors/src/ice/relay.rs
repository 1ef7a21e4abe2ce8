//! The seam between the [`IceAgent`](super::IceAgent) and a TURN server: one
//! [`RelaySession`] per TURN server, over a [`TurnClient`] actor (UDP or TCP to the
//! server).
//!
//! The agent subscribes to the client's events itself (so relayed data crosses one
//! channel to reach the agent) and hands each to [`RelaySession::on_event`], which
//! keeps the TURN-side bookkeeping and tells the agent what matters to ICE: the
//! relayed address, data from a peer, or failure. Going the other way, the agent calls
//! [`RelaySession::send_to`], [`RelaySession::permit`] and [`RelaySession::bind`]; a
//! datagram for a peer waits here until the peer's permission is installed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use floe::stun::transaction::TransactionConfig;
use floe::stun::Method;
use floe::Transport;

use super::config::{TurnServerConfig, TurnTransport};
use super::CandidateErrorKind;
use crate::turn::client::{
    ChannelBind, ClientEvent, Close, CreatePermission, SendTo, TurnClient, TurnClientConfig,
    TurnClientEvent, TurnClientHandle,
};

/// Most datagrams held per peer IP while its permission is being installed.
const MAX_QUEUED_PER_PEER: usize = 32;

/// What a TURN session tells the agent.
#[derive(Debug)]
pub(crate) enum RelayOutcome {
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

/// One TURN session of the agent: the relayed candidate's base.
pub(crate) struct RelaySession {
    server: TurnServerConfig,
    client: Option<TurnClientHandle>,
    /// The relayed address, once allocated.
    relayed: Option<SocketAddr>,
    /// Whether Allocated or Failed was reported (gathering is done with it).
    reported: bool,
    /// Peer IPs whose permission is installed.
    installed: HashSet<IpAddr>,
    /// Permissions asked for (installed or under way).
    requested: HashSet<IpAddr>,
    /// Datagrams waiting for their peer's permission.
    queued: HashMap<IpAddr, Vec<(SocketAddr, Bytes)>>,
    /// Permissions and channels asked for before the allocation existed.
    early_permits: Vec<IpAddr>,
    early_binds: Vec<SocketAddr>,
    /// Peers a channel was asked for.
    bound: HashSet<SocketAddr>,
}

impl RelaySession {
    pub(crate) fn new(server: TurnServerConfig) -> Self {
        RelaySession {
            server,
            client: None,
            relayed: None,
            reported: false,
            installed: HashSet::new(),
            requested: HashSet::new(),
            queued: HashMap::new(),
            early_permits: Vec::new(),
            early_binds: Vec::new(),
            bound: HashSet::new(),
        }
    }

    /// The TURN server.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server.addr
    }

    /// The relayed address, once allocated.
    pub(crate) fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// Whether gathering is done with this server (allocated or failed).
    pub(crate) fn is_done(&self) -> bool {
        self.reported
    }

    /// The client's configuration: from `local_ip`, with the gathering timers.
    pub(crate) fn client_config(
        &self,
        local_ip: IpAddr,
        transaction: TransactionConfig,
    ) -> TurnClientConfig {
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
        config.bind = Some(SocketAddr::new(local_ip, 0));
        config.session.transaction = transaction;
        config.connect_timeout = transaction.reliable_timeout.max(Duration::from_secs(1));
        config
    }

    /// The client is connected; the agent has subscribed and asked for the allocation.
    pub(crate) fn connected(&mut self, client: TurnClientHandle) {
        self.client = Some(client);
    }

    /// No allocation (connect or Allocate failed): reported once.
    pub(crate) fn fail(
        &mut self,
        kind: CandidateErrorKind,
        code: Option<u16>,
        reason: String,
    ) -> Option<RelayOutcome> {
        self.close();
        if std::mem::replace(&mut self.reported, true) {
            return None;
        }
        Some(RelayOutcome::Failed { kind, code, reason })
    }

    /// Deletes the allocation (RFC 8656 §7.2, Refresh with LIFETIME 0); the client
    /// stops after it.
    pub(crate) fn close(&mut self) {
        if let Some(c) = self.client.take() {
            c.addr().do_send(Close);
        }
        self.relayed = None;
    }

    fn allocated_client(&self) -> Option<TurnClientHandle> {
        self.client.clone().filter(|_| self.relayed.is_some())
    }

    /// RFC 8656 §9: install (and keep refreshed) a permission for this peer IP.
    pub(crate) fn permit(&mut self, ip: IpAddr) {
        if self.relayed.is_some_and(|r| r.is_ipv4() != ip.is_ipv4()) {
            return;
        }
        let Some(client) = self.allocated_client() else {
            self.early_permits.push(ip);
            return;
        };
        if self.requested.insert(ip) {
            client.addr().do_send(CreatePermission { peers: vec![ip] });
        }
    }

    /// RFC 8656 §12: bind (and keep refreshed) a channel to `peer`, so that data to
    /// and from it goes as ChannelData (4 bytes of overhead instead of 36).
    pub(crate) fn bind(&mut self, peer: SocketAddr) {
        let Some(client) = self.allocated_client() else {
            self.early_binds.push(peer);
            return;
        };
        if self.bound.insert(peer) {
            tracing::debug!(server = %self.server.addr, %peer, "TURN channel to the selected peer");
            client.addr().do_send(ChannelBind { peer });
        }
    }

    /// RFC 8656 §11, §12: `data` to `peer` from the relayed address, once the peer's
    /// permission is installed.
    pub(crate) fn send_to(&mut self, peer: SocketAddr, data: Bytes) {
        let Some(client) = self.allocated_client() else {
            return;
        };
        if self.installed.contains(&peer.ip()) {
            client.addr().do_send(SendTo { peer, bytes: data });
            return;
        }
        let queue = self.queued.entry(peer.ip()).or_default();
        if queue.len() < MAX_QUEUED_PER_PEER {
            queue.push((peer, data));
        }
        self.permit(peer.ip());
    }

    /// One event of the TURN client.
    pub(crate) fn on_event(&mut self, event: TurnClientEvent) -> Option<RelayOutcome> {
        match event {
            TurnClientEvent::Session(ClientEvent::Allocated {
                relayed, mapped, ..
            }) => {
                let relayed = relayed.first().copied()?;
                tracing::debug!(server = %self.server.addr, %relayed, "relayed candidate allocated");
                self.relayed = Some(relayed);
                let first = !std::mem::replace(&mut self.reported, true);
                for ip in std::mem::take(&mut self.early_permits) {
                    self.permit(ip);
                }
                for peer in std::mem::take(&mut self.early_binds) {
                    self.bind(peer);
                }
                first.then_some(RelayOutcome::Allocated { relayed, mapped })
            }
            TurnClientEvent::Session(ClientEvent::Data { peer, data }) => {
                self.relayed?;
                Some(RelayOutcome::Data { peer, data })
            }
            TurnClientEvent::Session(ClientEvent::PermissionCreated { peers }) => {
                for ip in peers {
                    self.installed.insert(ip);
                    for (peer, data) in self.queued.remove(&ip).unwrap_or_default() {
                        self.send_to(peer, data);
                    }
                }
                None
            }
            TurnClientEvent::Session(ClientEvent::ChannelBound { peer, channel }) => {
                tracing::debug!(server = %self.server.addr, %peer, channel, "TURN channel bound");
                None
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
                    self.fail(kind, code, reason)
                }
                Method::CREATE_PERMISSION => {
                    tracing::debug!(server = %self.server.addr, ?code, %reason, "TURN permission refused");
                    // Drop what waited and let a later send ask again.
                    self.queued.clear();
                    self.requested.clear();
                    self.installed.clear();
                    None
                }
                Method::CHANNEL_BIND => {
                    tracing::debug!(server = %self.server.addr, ?code, %reason, "TURN channel refused");
                    self.bound.clear();
                    None
                }
                _ => {
                    tracing::debug!(server = %self.server.addr, ?request, ?code, %reason, "TURN request failed");
                    None
                }
            },
            TurnClientEvent::Session(ClientEvent::AllocationExpired | ClientEvent::Deleted) => {
                tracing::debug!(server = %self.server.addr, "TURN allocation gone");
                self.relayed = None;
                None
            }
            TurnClientEvent::Closed => {
                self.client = None;
                self.relayed = None;
                let reason = format!("the connection to {} closed", self.server.addr);
                self.fail(CandidateErrorKind::Unreachable, None, reason)
            }
            _ => None,
        }
    }
}

/// Connects a [`TurnClient`] for `config`.
pub(crate) async fn connect(config: TurnClientConfig) -> Result<TurnClientHandle, String> {
    let server = config.server();
    TurnClient::connect(config).await.map_err(|e| match e {
        crate::turn::client::TurnClientError::Connect { .. }
        | crate::turn::client::TurnClientError::ConnectTimeout { .. } => {
            format!("TCP to {server}: {e}")
        }
        _ => e.to_string(),
    })
}
