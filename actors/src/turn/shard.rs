//! The state of one Arbiter of the TURN server: the sans-IO core, the sockets, and the
//! actors of its allocations. Listener, relay and TCP loops on the Arbiter borrow it for
//! one batch at a time, so relayed data takes no mailbox hop and no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use actix::{Actor, Addr, Recipient};
use bytes::Bytes;
use floe::transmit::Transport;
use floe::turn::server::{
    AllocationId, ClientOutput, FiveTuple, PeerOutput, RelayBinder, Server, ServerEvent,
    PEER_HEADROOM,
};
use tokio::sync::mpsc::Sender;

use super::allocation::{Allocation, StopAllocation};
use super::relay::{Relay, StopRelay};
use super::supervisor::AllocationSupervisor;
use super::TurnEvent;
use crate::metrics::Metrics;
use crate::udp::{BatchSocket, Outgoing, ParkedSocket, RecvBuffers, UdpError, UdpSocketConfig};

/// Largest datagram a relay or listener accepts (one byte more marks truncation).
pub(crate) const MAX_DATAGRAM: usize = 65_536;
/// Batches one loop handles before it yields to the other tasks of the Arbiter.
const BATCHES_PER_POLL: usize = 8;

/// Relay sockets held for a RESERVATION-TOKEN, shared by every Arbiter of a server:
/// bound but not registered, so whichever Arbiter redeems the token can take them.
pub(crate) type ParkedRelays = Arc<Mutex<HashMap<SocketAddr, ParkedSocket>>>;

/// Binds relay sockets for the core and keeps them until an actor takes them.
pub(crate) struct SocketBinder {
    config: UdpSocketConfig,
    pending: HashMap<SocketAddr, BatchSocket>,
    parked: ParkedRelays,
}

impl RelayBinder for SocketBinder {
    fn bind(&mut self, addr: SocketAddr) -> bool {
        match BatchSocket::bind(addr, &self.config) {
            Ok(s) => {
                self.pending.insert(addr, s);
                true
            }
            Err(_) => false,
        }
    }

    fn reserve(&mut self, addr: SocketAddr) -> bool {
        match BatchSocket::park(addr, &self.config) {
            Ok(p) => {
                self.parked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(addr, p);
                true
            }
            Err(_) => false,
        }
    }

    fn redeem(&mut self, addr: SocketAddr) -> bool {
        let parked = self
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
        match parked.map(BatchSocket::register) {
            Some(Ok(s)) => {
                self.pending.insert(addr, s);
                true
            }
            _ => false,
        }
    }
}

impl SocketBinder {
    pub(crate) fn relay_config() -> UdpSocketConfig {
        UdpSocketConfig {
            gro: false,
            recv_buffer_size: Some(256 << 10),
            send_buffer_size: Some(256 << 10),
            ..UdpSocketConfig::default()
        }
    }
}

pub(crate) struct RelayEntry {
    pub socket: Rc<BatchSocket>,
    pub actor: Addr<Relay>,
    pub allocation: AllocationId,
}

pub(crate) struct AllocationEntry {
    pub actor: Addr<Allocation>,
    pub five_tuple: FiveTuple,
}

/// Counts kept per batch and added to the shared metrics once.
#[derive(Default)]
struct Tally {
    to_peer: (u64, u64),
    to_client: (u64, u64),
    bindings: u64,
}

pub(crate) struct Shard {
    pub core: Server,
    pub binder: SocketBinder,
    pub listeners: Vec<Rc<BatchSocket>>,
    pub relays: HashMap<SocketAddr, RelayEntry>,
    pub allocations: HashMap<AllocationId, AllocationEntry>,
    pub tcp: HashMap<(SocketAddr, SocketAddr), Sender<Bytes>>,
    pub metrics: Metrics,
    pub events: Recipient<TurnEvent>,
    pub supervisor: Addr<AllocationSupervisor>,
    pub relay_bufs: Rc<RefCell<RecvBuffers>>,
    scratch: Vec<u8>,
    tally: Tally,
}

pub(crate) type SharedShard = Rc<RefCell<Shard>>;

impl Shard {
    pub(crate) fn new(
        core: Server,
        metrics: Metrics,
        events: Recipient<TurnEvent>,
        supervisor: Addr<AllocationSupervisor>,
        parked: ParkedRelays,
    ) -> Self {
        Shard {
            core,
            binder: SocketBinder {
                config: SocketBinder::relay_config(),
                pending: HashMap::new(),
                parked,
            },
            listeners: Vec::new(),
            relays: HashMap::new(),
            allocations: HashMap::new(),
            tcp: HashMap::new(),
            metrics,
            events,
            supervisor,
            relay_bufs: Rc::new(RefCell::new(RecvBuffers::new(32, MAX_DATAGRAM + 1))),
            scratch: vec![0; PEER_HEADROOM + MAX_DATAGRAM + 4],
            tally: Tally::default(),
        }
    }

    fn listener_for(&self, server: SocketAddr) -> Option<&Rc<BatchSocket>> {
        self.listeners
            .iter()
            .find(|l| l.local_addr() == server)
            .or_else(|| {
                self.listeners.iter().find(|l| {
                    l.local_addr().port() == server.port()
                        && l.local_addr().ip().is_unspecified()
                        && l.local_addr().is_ipv4() == server.is_ipv4()
                })
            })
    }

    /// Data or a request from a client.
    #[inline]
    pub(crate) fn on_client(&mut self, now: Instant, ft: &FiveTuple, data: &[u8]) {
        if data.first().is_some_and(|b| *b <= 3) && data.get(..2) == Some(&[0, 1]) {
            self.tally.bindings += 1;
        }
        let (relay, peer, payload) = match self.core.handle_client(now, ft, data, &mut self.binder)
        {
            ClientOutput::None => return,
            ClientOutput::Relay {
                relay,
                peer,
                payload,
                ..
            } => (relay, peer, payload),
            ClientOutput::RelayOwned {
                relay,
                peer,
                payload,
                ..
            } => {
                return self.send_to_peer(relay, peer, &payload);
            }
        };
        self.send_to_peer(relay, peer, payload);
    }

    #[inline]
    fn send_to_peer(&mut self, relay: SocketAddr, peer: SocketAddr, payload: &[u8]) {
        if let Some(entry) = self.relays.get(&relay) {
            // A send error (unreachable peer, ICMP refused) costs only this datagram.
            if entry.socket.try_send(&Outgoing::new(peer, payload)).is_ok() {
                self.tally.to_peer.0 += 1;
                self.tally.to_peer.1 += payload.len() as u64;
            }
        }
    }

    /// Data from a peer on a relay.
    #[inline]
    pub(crate) fn on_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) {
        let len = payload.len();
        if len > MAX_DATAGRAM {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch[PEER_HEADROOM..PEER_HEADROOM + len].copy_from_slice(payload);
        match self.core.handle_peer(now, relay, peer, &mut scratch, len) {
            PeerOutput::Drop => {}
            PeerOutput::ChannelData { client, len: n } => {
                self.send_to_client(&client, &scratch[..n]);
                self.tally.to_client.0 += 1;
                self.tally.to_client.1 += len as u64;
            }
            PeerOutput::DataIndication { client, message } => {
                self.send_to_client(&client, &message);
                self.tally.to_client.0 += 1;
                self.tally.to_client.1 += len as u64;
            }
        }
        self.scratch = scratch;
    }

    fn send_to_client(&self, ft: &FiveTuple, data: &[u8]) {
        match ft.transport {
            Transport::Udp => {
                if let Some(l) = self.listener_for(ft.server) {
                    let mut out = Outgoing::new(ft.client, data);
                    if l.local_addr().ip().is_unspecified() && !ft.server.ip().is_unspecified() {
                        out.source = Some(ft.server.ip());
                    }
                    let _ = l.try_send(&out);
                }
            }
            Transport::Tcp | Transport::Tls => {
                // Bounded: a client that stops reading loses data, the server no memory.
                if let Some(tx) = self.tcp.get(&(ft.client, ft.server)) {
                    let _ = tx.try_send(Bytes::copy_from_slice(data));
                }
            }
        }
    }

    /// Sends the core's responses and acts on its events. Called after every batch.
    pub(crate) fn after(&mut self, shard: &SharedShard) {
        while let Some(t) = self.core.poll_transmit() {
            let ft = FiveTuple {
                client: t.destination,
                server: t.source,
                transport: t.transport,
            };
            self.send_to_client(&ft, &t.payload);
        }
        while let Some(e) = self.core.poll_event() {
            self.on_event(e, shard);
        }
        let tally = std::mem::take(&mut self.tally);
        if tally.to_peer.0 > 0 {
            self.metrics
                .relayed_to_peer(tally.to_peer.0, tally.to_peer.1);
        }
        if tally.to_client.0 > 0 {
            self.metrics
                .relayed_to_client(tally.to_client.0, tally.to_client.1);
        }
        for _ in 0..tally.bindings {
            self.metrics.binding_request();
        }
    }

    fn on_event(&mut self, e: ServerEvent, shard: &SharedShard) {
        match e {
            ServerEvent::AllocationCreated {
                id,
                five_tuple,
                username,
                relayed,
                lifetime,
            } => {
                // RFC 8656 §7.2: DONT-FRAGMENT sets DF on what the relay sends.
                let dont_fragment = self.core.allocation(id).is_some_and(|a| a.dont_fragment);
                for addr in &relayed {
                    if let Some(socket) = self.binder.pending.remove(addr) {
                        if dont_fragment {
                            let _ = socket.set_dont_fragment(true);
                        }
                        self.start_relay(id, *addr, Rc::new(socket), shard);
                    }
                }
                let actor = Allocation::new(id, relayed.clone(), self.supervisor.clone()).start();
                self.allocations
                    .insert(id, AllocationEntry { actor, five_tuple });
                self.metrics.allocation_created();
                self.events.do_send(TurnEvent::AllocationCreated {
                    five_tuple,
                    username,
                    relayed,
                    lifetime,
                });
            }
            ServerEvent::AllocationRefreshed { id, lifetime } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::Refreshed {
                        five_tuple: a.five_tuple,
                        lifetime,
                    });
                }
            }
            ServerEvent::AllocationDeleted { id, five_tuple } => {
                self.ended(id, TurnEvent::Deleted { five_tuple })
            }
            ServerEvent::AllocationExpired { id, five_tuple } => {
                self.ended(id, TurnEvent::Expired { five_tuple })
            }
            ServerEvent::PermissionCreated { id, peer } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::PermissionCreated {
                        five_tuple: a.five_tuple,
                        peer,
                    });
                }
            }
            ServerEvent::ChannelBound { id, peer, channel } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::ChannelBound {
                        five_tuple: a.five_tuple,
                        peer,
                        channel,
                    });
                }
            }
            ServerEvent::AuthFailed {
                client,
                username,
                code,
            } => {
                self.metrics.auth_failure();
                self.events.do_send(TurnEvent::AuthFailed {
                    client,
                    username,
                    code,
                });
            }
            ServerEvent::ErrorResponse { code, .. } => self.metrics.error_response(code),
            ServerEvent::RelayReleased(addr) => {
                self.binder.pending.remove(&addr);
                self.binder
                    .parked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&addr);
                if let Some(r) = self.relays.remove(&addr) {
                    r.actor.do_send(StopRelay);
                }
            }
            _ => {}
        }
    }

    fn ended(&mut self, id: AllocationId, event: TurnEvent) {
        if let Some(a) = self.allocations.remove(&id) {
            a.actor.do_send(StopAllocation);
            self.metrics.allocation_ended();
            self.events.do_send(event);
        }
    }

    pub(crate) fn start_relay(
        &mut self,
        allocation: AllocationId,
        addr: SocketAddr,
        socket: Rc<BatchSocket>,
        shard: &SharedShard,
    ) {
        let actor =
            Relay::new(addr, socket.clone(), shard.clone(), self.supervisor.clone()).start();
        self.relays.insert(
            addr,
            RelayEntry {
                socket,
                actor,
                allocation,
            },
        );
    }
}

/// Runs the handling of one datagram so that a bug it hits costs that datagram, not the
/// loop (and with it every client of the Arbiter). Bad input is an error value in the
/// core; this is defence in depth.
pub(crate) fn contain(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!("a datagram hit a bug and was dropped");
    }
}

/// Reads a UDP socket in batches and hands each datagram to the shard.
pub(crate) struct RecvLoop {
    pub shard: SharedShard,
    pub socket: Rc<BatchSocket>,
    pub bufs: Rc<RefCell<RecvBuffers>>,
    pub role: LoopRole,
}

/// What a [`RecvLoop`] reads.
pub(crate) enum LoopRole {
    /// A listener: datagrams come from clients.
    Listener,
    /// A relay: datagrams come from peers.
    Relay,
}

impl Future for RecvLoop {
    type Output = Result<(), UdpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let local = this.socket.local_addr();
        for _ in 0..BATCHES_PER_POLL {
            let mut bufs = this.bufs.borrow_mut();
            match this.socket.poll_recv_batch(cx, &mut bufs) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(_)) => {}
            }
            let now = Instant::now();
            let mut shard = this.shard.borrow_mut();
            match this.role {
                LoopRole::Listener => {
                    for d in bufs.datagrams() {
                        let ft = FiveTuple {
                            client: d.source,
                            server: d.destination.unwrap_or(local),
                            transport: Transport::Udp,
                        };
                        contain(|| shard.on_client(now, &ft, d.payload));
                    }
                }
                LoopRole::Relay => {
                    for d in bufs.datagrams() {
                        contain(|| shard.on_peer(now, local, d.source, d.payload));
                    }
                }
            }
            shard.after(&this.shard);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
