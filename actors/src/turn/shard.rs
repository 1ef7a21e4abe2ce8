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

use actix::{Actor, Addr};
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
use super::{EventSink, TurnEvent};
use crate::metrics::Metrics;
use crate::udp::{BatchSocket, ParkedSocket, RecvBuffers, SendQueue, UdpError, UdpSocketConfig};

/// Largest datagram a relay or listener accepts (one byte more marks truncation).
pub(crate) const MAX_DATAGRAM: usize = 65_536;
/// Batches one loop handles before it yields to the other tasks of the Arbiter.
const BATCHES_PER_POLL: usize = 8;
/// Datagrams for clients that relays may leave waiting for the flusher.
const DEFER_AT_MOST: usize = 256;
/// How long the Arbiter's thread sleeps after a busy wake-up, once it has sent what it
/// had, before it looks at its sockets again. Interrupt moderation: under load every
/// `epoll_wait` otherwise returns for about 5 datagrams, and each sleep and wake-up
/// costs about as much as relaying them; after the nap one wake-up finds many sockets
/// with several datagrams each. At most this much latency, and none when idle.
pub(crate) const NAP: std::time::Duration = std::time::Duration::from_micros(200);
/// Datagrams a wake-up must have brought for the nap (at least the first, less than
/// the second): light traffic goes straight back to `epoll_wait`, where a nap would
/// only add a sleep and a wake-up of its own, and an overloaded Arbiter, whose
/// wake-ups already bring large batches, must not lose time sleeping.
pub(crate) const NAP_DATAGRAMS: std::ops::Range<usize> = 4..64;
/// And at least this many datagrams per receive call: when each socket has one
/// datagram (many allocations at a paced rate) the nap saves no receive or send, only
/// the `epoll_wait`, and costs a sleep of its own.
pub(crate) const NAP_MIN_PER_RECEIVE: usize = 2;

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

/// Datagrams waiting to leave one socket, and what they weigh.
#[derive(Default)]
struct Pending {
    queue: SendQueue,
    bytes: u64,
}

impl Pending {
    fn push(&mut self, to: SocketAddr, source: Option<std::net::IpAddr>, payload: &[u8]) {
        self.queue.push_from(to, source, payload);
        self.bytes += payload.len() as u64;
    }

    /// Sends everything with one `sendmmsg` (runs to one destination as GSO sends);
    /// returns the datagrams and bytes that left. A failed send costs only its own
    /// datagrams; bytes are prorated when some failed (they are equal-sized in practice).
    fn flush(&mut self, socket: &BatchSocket) -> (u64, u64) {
        let queued = self.queue.len() as u64;
        if queued == 0 {
            return (0, 0);
        }
        let report = socket.try_send_batch(&mut self.queue);
        let sent = report.sent as u64;
        let bytes = if sent == queued {
            self.bytes
        } else {
            self.bytes * sent / queued
        };
        self.bytes = 0;
        (sent, bytes)
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

pub(crate) struct Shard {
    pub core: Server,
    pub binder: SocketBinder,
    pub listeners: Vec<Rc<BatchSocket>>,
    pub relays: HashMap<SocketAddr, RelayEntry>,
    pub allocations: HashMap<AllocationId, AllocationEntry>,
    pub tcp: HashMap<(SocketAddr, SocketAddr), Sender<Bytes>>,
    pub metrics: Metrics,
    pub events: EventSink,
    pub supervisor: Addr<AllocationSupervisor>,
    pub relay_bufs: Rc<RefCell<RecvBuffers>>,
    scratch: Vec<u8>,
    tally: Tally,
    /// Datagrams for UDP clients, per listener (in the order of `listeners`); sent at
    /// the end of every batch with one `sendmmsg`.
    to_clients: Vec<Pending>,
    /// Datagrams for peers, all from the relay `to_peers_relay`; sent when a datagram
    /// for another relay comes, and at the end of every batch.
    to_peers: Pending,
    to_peers_relay: Option<SocketAddr>,
    /// Wakes the supervisor's flusher, which calls [`Shard::flush_deferred`].
    pub flush_wanted: Rc<tokio::sync::Notify>,
    flush_scheduled: bool,
    /// Datagrams received, and receive calls that brought them, since the supervisor's
    /// napper last ran.
    pub received: usize,
    pub receives: usize,
    /// Wakes the supervisor's napper (see [`NAP`]) after the first batch of a wake-up.
    pub nap_wanted: Rc<tokio::sync::Notify>,
    pub nap_scheduled: bool,
}

pub(crate) type SharedShard = Rc<RefCell<Shard>>;

impl Shard {
    pub(crate) fn new(
        core: Server,
        metrics: Metrics,
        events: EventSink,
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
            to_clients: Vec::new(),
            to_peers: Pending::default(),
            to_peers_relay: None,
            flush_wanted: Rc::new(tokio::sync::Notify::new()),
            flush_scheduled: false,
            received: 0,
            receives: 0,
            nap_wanted: Rc::new(tokio::sync::Notify::new()),
            nap_scheduled: false,
        }
    }

    /// The listener (its index in `listeners`) that serves `server`.
    fn listener_for(&self, server: SocketAddr) -> Option<usize> {
        self.listeners
            .iter()
            .position(|l| l.local_addr() == server)
            .or_else(|| {
                self.listeners.iter().position(|l| {
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

    /// Queues a datagram for `peer` on the relay socket `relay`. Consecutive datagrams
    /// from one relay leave together (one `sendmmsg`, GSO for runs to one peer).
    #[inline]
    fn send_to_peer(&mut self, relay: SocketAddr, peer: SocketAddr, payload: &[u8]) {
        if self.to_peers_relay != Some(relay) {
            self.flush_peers();
            self.to_peers_relay = Some(relay);
        }
        self.to_peers.push(peer, None, payload);
    }

    /// Sends what is queued for peers. A send error (unreachable peer, ICMP refused)
    /// costs only the datagrams of that send.
    fn flush_peers(&mut self) {
        let Some(relay) = self.to_peers_relay.take() else {
            return;
        };
        match self.relays.get(&relay) {
            Some(entry) => {
                let (n, bytes) = self.to_peers.flush(&entry.socket);
                self.tally.to_peer.0 += n;
                self.tally.to_peer.1 += bytes;
            }
            None => self.to_peers.clear(),
        }
    }

    /// Sends what is queued for UDP clients.
    fn flush_clients(&mut self) {
        for (pending, listener) in self.to_clients.iter_mut().zip(&self.listeners) {
            pending.flush(listener);
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

    /// Queues a datagram for a UDP client (sent at the end of the batch), or hands it to
    /// the client's TCP connection.
    fn send_to_client(&mut self, ft: &FiveTuple, data: &[u8]) {
        match ft.transport {
            Transport::Udp => {
                if let Some(i) = self.listener_for(ft.server) {
                    let local = self.listeners[i].local_addr();
                    let source = (local.ip().is_unspecified() && !ft.server.ip().is_unspecified())
                        .then_some(ft.server.ip());
                    if self.to_clients.len() < self.listeners.len() {
                        self.to_clients
                            .resize_with(self.listeners.len(), Pending::default);
                    }
                    self.to_clients[i].push(ft.client, source, data);
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

    /// Sends the core's responses and everything queued, and acts on the core's events.
    /// Called after every batch.
    pub(crate) fn after(&mut self, shard: &SharedShard) {
        self.finish_batch(shard, true);
    }

    /// As [`after`](Self::after), for a relay's batch: datagrams for clients wait for
    /// [`flush_deferred`](Self::flush_deferred), which the supervisor's flusher runs once
    /// the other tasks woken with this one (the other relays with data) have run. Each
    /// relay then costs a receive, and the listener one `sendmmsg` for all of them,
    /// instead of one per relay.
    pub(crate) fn after_relay(&mut self, shard: &SharedShard) {
        let queued: usize = self.to_clients.iter().map(|p| p.queue.len()).sum();
        if queued >= DEFER_AT_MOST {
            self.finish_batch(shard, true);
            return;
        }
        self.finish_batch(shard, false);
        if queued > 0 && !self.flush_scheduled {
            self.flush_scheduled = true;
            self.flush_wanted.notify_one();
        }
    }

    /// Sends the datagrams for clients that relays queued.
    pub(crate) fn flush_deferred(&mut self) {
        self.flush_scheduled = false;
        self.flush_clients();
    }

    fn finish_batch(&mut self, shard: &SharedShard, flush_clients: bool) {
        if self.received > 0 && !self.nap_scheduled {
            self.nap_scheduled = true;
            self.nap_wanted.notify_one();
        }
        while let Some(t) = self.core.poll_transmit() {
            let ft = FiveTuple {
                client: t.destination,
                server: t.source,
                transport: t.transport,
            };
            self.send_to_client(&ft, &t.payload);
        }
        // Before the events: a relay released below must still send what it queued.
        self.flush_peers();
        if flush_clients {
            self.flush_clients();
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
        if tally.bindings > 0 {
            self.metrics.binding_requests(tally.bindings);
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
            let received = match this.socket.poll_recv_batch(cx, &mut bufs) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(n)) => n,
            };
            let now = Instant::now();
            let mut shard = this.shard.borrow_mut();
            shard.received += received;
            shard.receives += 1;
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
            match this.role {
                LoopRole::Listener => shard.after(&this.shard),
                LoopRole::Relay => shard.after_relay(&this.shard),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
