//! The owner of one Arbiter's TURN state: the sans-IO core (allocations, permissions,
//! channels, lifetimes), the relay and listener sockets, and the 5-tuple and relay
//! indexes that route data.
//!
//! **The data-path rule.** Control messages (Allocate, Refresh, CreatePermission,
//! ChannelBind) and relayed data alike are handled in the batch that read them, on the
//! thread that read them: the listener, relay and TCP loops of an Arbiter call
//! [`ShardHandle`] once per batch, and it routes each datagram through the core's
//! per-thread indexes (5-tuple → allocation, relayed address → allocation) without a
//! mailbox hop, a lock or a string (and, for ChannelData over UDP, without a heap
//! allocation). The data path skips mailboxes only through this index that one owner
//! keeps. Everything else the owner's actors do
//! (start, stop, fail, time out) goes through typed messages.
//!
//! Nothing outside this module sees its fields: loops and actors call the few methods of
//! [`ShardHandle`], and the owner reaches its supervisor only through [`Supervision`],
//! so the modules depend one way (drawn in `turn/mod.rs`): the supervisor knows the
//! owner and the actors, the actors know the owner, the owner knows neither.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use actix::{Message, Recipient};
use bytes::Bytes;
use floe::framing::StreamFramer;
use floe::transmit::Transport;
use floe::turn::server::{
    AllocationId, ClientOutput, FiveTuple, PeerOutput, RelayAsk, Server, ServerEvent, PEER_HEADROOM,
};

use super::bandwidth::BandwidthCap;
use super::binder::{BoundRelays, RelayBinder};
use super::coalesce::Coalescer;
use super::outbox::{Pending, Tally};
use super::stream_writer::{StreamSendError, StreamWriter};
use super::usage::{EndReason, UsageBook};
use super::{EventSink, Fault, TurnEvent};
use crate::metrics::Metrics;
use crate::udp::{BatchSocket, RecvBuffers};

/// Largest datagram a relay or listener accepts (one byte more marks truncation).
pub(crate) const MAX_DATAGRAM: usize = 65_536;
/// Datagrams for clients that relays may leave waiting for the flusher.
const DEFER_AT_MOST: usize = 256;

/// What the owner tells the actors of its allocations and relays.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub(crate) enum Command {
    /// The allocation ended: stop for good.
    Stop,
    /// Fail as asked (drills and tests).
    Fault(Fault),
}

/// How the owner reaches its supervisor: to start the actors of a new allocation and to
/// re-arm the one timer of the core. The supervisor implements it, so this module
/// names neither the supervisor nor the actors.
pub(crate) trait Supervision {
    /// Starts the actor that stands for allocation `id`.
    fn start_allocation(&self, id: AllocationId, five_tuple: FiveTuple) -> Recipient<Command>;
    /// Starts the actor that reads relay socket `socket`, bound to `addr`.
    fn start_relay(
        &self,
        shard: ShardHandle,
        addr: SocketAddr,
        socket: Rc<BatchSocket>,
    ) -> Recipient<Command>;
    /// The core wants [`ShardHandle::on_timeout`] at `at`, earlier than asked before.
    fn wake_at(&self, at: Instant);
}

struct RelayEntry {
    socket: Rc<BatchSocket>,
    actor: Recipient<Command>,
    allocation: AllocationId,
}

struct AllocationEntry {
    actor: Recipient<Command>,
    five_tuple: FiveTuple,
    username: String,
}

/// What [`ShardHandle::restart_relay`] did.
pub(crate) enum RelayRestart {
    /// The relay no longer exists (its allocation ended meanwhile).
    Gone,
    /// Bound again on its address; a new relay actor reads it.
    Restarted,
    /// The address could not be bound again: the allocation must end.
    Failed(AllocationId, String),
}

/// The state of one Arbiter; see the module doc.
struct Shard {
    core: Server,
    binder: RelayBinder,
    supervision: Box<dyn Supervision>,
    listeners: Vec<Rc<BatchSocket>>,
    relays: HashMap<SocketAddr, RelayEntry>,
    allocations: HashMap<AllocationId, AllocationEntry>,
    /// Sockets bound for an Allocate, until its allocation's relays start.
    bound: BoundRelays,
    tcp: HashMap<(SocketAddr, SocketAddr), StreamWriter>,
    metrics: Metrics,
    /// Per-user metrics and the usage log.
    usage: UsageBook,
    events: EventSink,
    relay_bufs: Rc<RefCell<RecvBuffers>>,
    scratch: Vec<u8>,
    tally: Tally,
    /// Datagrams for UDP clients, per listener (in the order of `listeners`); sent at
    /// the end of every batch, 32 per `sendmmsg`.
    to_clients: Vec<Pending>,
    /// Datagrams for peers, all from the relay `to_peers_relay`; sent when a datagram
    /// for another relay comes, and at the end of every batch.
    to_peers: Pending,
    to_peers_relay: Option<SocketAddr>,
    /// Wakes the supervisor's flusher, which calls [`ShardHandle::flush_deferred`].
    flush_wanted: Rc<tokio::sync::Notify>,
    flush_scheduled: bool,
    /// Counts the datagrams of each round of wake-ups, to pause when it pays.
    coalescer: Coalescer,
    /// The deadline the supervisor's timer is armed for.
    timer: Option<Instant>,
    /// This Arbiter's share of `total-bps`: to peers, to clients.
    total_bps: [BandwidthCap; 2],
}

/// The one handle to an Arbiter's [`Shard`]: each method borrows it for one batch or one
/// command, never across an `await`.
#[derive(Clone)]
pub(crate) struct ShardHandle(Rc<RefCell<Shard>>);

impl ShardHandle {
    pub(crate) fn new(
        core: Server,
        binder: RelayBinder,
        metrics: Metrics,
        events: EventSink,
        supervision: Box<dyn Supervision>,
        thread: usize,
    ) -> Self {
        ShardHandle(Rc::new(RefCell::new(Shard {
            core,
            binder,
            supervision,
            listeners: Vec::new(),
            relays: HashMap::new(),
            allocations: HashMap::new(),
            bound: Vec::new(),
            tcp: HashMap::new(),
            usage: UsageBook::new(metrics.clone(), thread),
            metrics,
            events,
            relay_bufs: Rc::new(RefCell::new(RecvBuffers::new(32, MAX_DATAGRAM + 1))),
            scratch: vec![0; PEER_HEADROOM + MAX_DATAGRAM + 4],
            tally: Tally::default(),
            to_clients: Vec::new(),
            to_peers: Pending::default(),
            to_peers_relay: None,
            flush_wanted: Rc::new(tokio::sync::Notify::new()),
            flush_scheduled: false,
            coalescer: Coalescer::new(std::time::Duration::ZERO),
            timer: None,
            total_bps: [BandwidthCap::new(0), BandwidthCap::new(0)],
        })))
    }

    /// Serves UDP clients on `socket` too (its loop calls [`Self::client_datagrams`]).
    pub(crate) fn add_listener(&self, socket: Rc<BatchSocket>) {
        self.0.borrow_mut().listeners.push(socket);
    }

    /// Receive memory shared by the relays of this Arbiter (one batch at a time).
    pub(crate) fn relay_buffers(&self) -> Rc<RefCell<RecvBuffers>> {
        self.0.borrow().relay_bufs.clone()
    }

    /// Notified when relays left datagrams for [`Self::flush_deferred`].
    pub(crate) fn flush_wanted(&self) -> Rc<tokio::sync::Notify> {
        self.0.borrow().flush_wanted.clone()
    }

    /// The receive coalescing of this Arbiter (see `coalesce`).
    pub(crate) fn coalescer(&self) -> Coalescer {
        self.0.borrow().coalescer.clone()
    }

    /// This Arbiter's share of `total-bps`, each way; 0 is no limit. An unchanged share
    /// keeps its buckets.
    pub(crate) fn set_total_bps(&self, share: u64) {
        let mut s = self.0.borrow_mut();
        if s.total_bps[0].rate() != share {
            s.total_bps = [BandwidthCap::new(share), BandwidthCap::new(share)];
        }
    }

    /// A reload: the core takes on new credentials, peer policy and limits.
    pub(crate) fn reconfigure(&self, now: Instant, r: floe::turn::server::Reconfiguration) {
        self.0.borrow_mut().core.reconfigure(now, r);
    }

    /// Sends the datagrams for clients that relays queued.
    pub(crate) fn flush_deferred(&self) {
        let mut s = self.0.borrow_mut();
        s.flush_scheduled = false;
        s.flush_clients();
    }

    /// One batch from clients on the listener bound to `local`.
    pub(crate) fn client_datagrams(&self, now: Instant, local: SocketAddr, bufs: &RecvBuffers) {
        let mut s = self.0.borrow_mut();
        let mut n = 0;
        for d in bufs.datagrams() {
            n += 1;
            let ft = FiveTuple {
                client: d.source,
                server: d.destination.unwrap_or(local),
                transport: Transport::Udp,
            };
            contain(|| s.on_client(now, &ft, d.payload));
        }
        s.coalescer.received(n, false);
        s.finish_batch(self, true);
    }

    /// One batch from peers on the relay bound to `local`. Datagrams for clients wait
    /// for [`Self::flush_deferred`], which the supervisor's flusher runs once the other
    /// relays woken with this one have run: each relay then costs a receive, and the
    /// listener one `sendmmsg` for all of them.
    pub(crate) fn peer_datagrams(&self, now: Instant, local: SocketAddr, bufs: &RecvBuffers) {
        let mut s = self.0.borrow_mut();
        let mut n = 0;
        for d in bufs.datagrams() {
            n += 1;
            contain(|| s.on_peer(now, local, d.source, d.payload));
        }
        s.coalescer.received(n, true);
        let queued: usize = s.to_clients.iter().map(Pending::len).sum();
        if queued >= DEFER_AT_MOST {
            s.finish_batch(self, true);
            return;
        }
        s.finish_batch(self, false);
        if queued > 0 && !s.flush_scheduled {
            s.flush_scheduled = true;
            s.flush_wanted.notify_one();
        }
    }

    /// A TCP or TLS client connected: what is sent to it goes to `writer`.
    pub(crate) fn tcp_connected(&self, ft: &FiveTuple, writer: StreamWriter) {
        self.0
            .borrow_mut()
            .tcp
            .insert((ft.client, ft.server), writer);
    }

    /// The frames a TCP or TLS client sent (RFC 8656 §12.5 framing); false when the
    /// stream is not STUN or ChannelData and the connection must close.
    pub(crate) fn client_frames(
        &self,
        now: Instant,
        ft: &FiveTuple,
        framer: &mut StreamFramer,
    ) -> bool {
        let mut s = self.0.borrow_mut();
        let ok = loop {
            match framer.next_frame() {
                Ok(Some(frame)) => contain(|| s.on_client(now, ft, frame.as_bytes())),
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        s.finish_batch(self, true);
        ok
    }

    /// Whether the 5-tuple has an allocation.
    pub(crate) fn has_allocation(&self, ft: &FiveTuple) -> bool {
        self.0.borrow().core.allocation_of(ft).is_some()
    }

    /// RFC 8656 §3.1: a TCP allocation ends with its connection.
    pub(crate) fn tcp_closed(&self, ft: &FiveTuple) {
        let mut s = self.0.borrow_mut();
        s.tcp.remove(&(ft.client, ft.server));
        if let Some(id) = s.core.allocation_of(ft) {
            s.usage.ending(id, EndReason::ConnectionClosed);
            s.core.delete(id);
        }
        s.finish_batch(self, true);
    }

    /// The supervisor's timer fired: lifetimes, permissions, channels, reservations.
    pub(crate) fn on_timeout(&self, now: Instant) {
        let mut s = self.0.borrow_mut();
        s.timer = None;
        s.core.handle_timeout(now);
        s.finish_batch(self, true);
    }

    /// Brings the per-user relayed bytes up to date with the allocations' counters.
    pub(crate) fn sync_usage(&self) {
        let s = &mut *self.0.borrow_mut();
        s.usage.sync(&s.core, Instant::now());
    }

    /// Binds a failed relay's address again and starts a new relay actor on it; the
    /// allocation keeps its permissions and channels, and peers see the same address.
    pub(crate) fn restart_relay(&self, addr: SocketAddr) -> RelayRestart {
        let mut s = self.0.borrow_mut();
        let Some(entry) = s.relays.remove(&addr) else {
            return RelayRestart::Gone;
        };
        let id = entry.allocation;
        drop(entry);
        match BatchSocket::bind(addr, &RelayBinder::relay_config()) {
            Ok(socket) => {
                if s.core.allocation(id).is_some_and(|a| a.dont_fragment) {
                    let _ = socket.set_dont_fragment(true);
                }
                s.start_relay(self, id, addr, Rc::new(socket));
                if let Some(a) = s.allocations.get(&id) {
                    s.events.do_send(TurnEvent::RelayRestarted {
                        five_tuple: a.five_tuple,
                        relayed: addr,
                    });
                }
                RelayRestart::Restarted
            }
            Err(e) => RelayRestart::Failed(id, e.to_string()),
        }
    }

    /// Ends allocation `id` because its actor or relay failed: its client's next request
    /// gets 437 (no allocation), subscribers get `AllocationFailed` then `Deleted`.
    pub(crate) fn fail_allocation(&self, id: AllocationId, reason: &str) {
        let mut s = self.0.borrow_mut();
        let Some(a) = s.allocations.get(&id) else {
            return;
        };
        let five_tuple = a.five_tuple;
        tracing::error!(client = %five_tuple.client, reason, "allocation failed; freeing it");
        s.events.do_send(TurnEvent::AllocationFailed {
            five_tuple,
            reason: reason.to_owned(),
        });
        s.usage.ending(id, EndReason::Failed);
        s.core.delete(id);
        s.finish_batch(self, true);
    }

    /// Sends `fault` to the allocation relaying on `relayed`, or to that relay.
    pub(crate) fn inject_fault(&self, relayed: SocketAddr, fault: Fault) -> bool {
        let s = self.0.borrow();
        let Some(relay) = s.relays.get(&relayed) else {
            return false;
        };
        let target = match fault {
            Fault::RelaySocketError | Fault::RelayPanic => &relay.actor,
            Fault::AllocationPanic => match s.allocations.get(&relay.allocation) {
                Some(a) => &a.actor,
                None => return false,
            },
        };
        target.do_send(Command::Fault(fault));
        true
    }

    /// The allocations, for operators; those of `user` only if given.
    pub(crate) fn sessions(&self, thread: usize, user: Option<&str>) -> Vec<super::Session> {
        super::sessions::list(&self.0.borrow().core, thread, user, Instant::now())
    }

    /// Ends the allocations `filter` picks now (an operator asked): their clients' next
    /// requests get 437, subscribers get `EndedByOperator` then `Deleted`. Returns how many.
    pub(crate) fn end_allocations(&self, thread: usize, filter: &super::SessionFilter) -> usize {
        let mut s = self.0.borrow_mut();
        let picked: Vec<(AllocationId, FiveTuple, String)> = s
            .core
            .allocations(Instant::now())
            .filter(|a| filter.picks(thread, a))
            .map(|a| (a.id, a.five_tuple, a.username.to_owned()))
            .collect();
        for (id, five_tuple, username) in &picked {
            tracing::info!(client = %five_tuple.client, user = %username, "allocation ended by the operator");
            s.metrics.allocation_ended_by_operator();
            s.events.do_send(TurnEvent::EndedByOperator {
                five_tuple: *five_tuple,
                username: username.clone(),
            });
            s.usage.ending(*id, EndReason::Operator);
            s.core.delete(*id);
        }
        s.finish_batch(self, true);
        picked.len()
    }

    /// Refuses new allocations (`true`) or takes them again; see the core's `set_draining`.
    pub(crate) fn set_draining(&self, draining: bool) {
        self.0.borrow_mut().core.set_draining(draining);
    }

    /// How many allocations exist.
    pub(crate) fn allocation_count(&self) -> usize {
        self.0.borrow().core.allocation_count()
    }

    /// Deletes every allocation and stops serving; returns how many there were.
    pub(crate) fn shutdown(&self) -> usize {
        let mut s = self.0.borrow_mut();
        let n = s.core.allocation_count();
        let reason = match s.core.is_draining() {
            true => EndReason::Drained,
            false => EndReason::Shutdown,
        };
        let ids: Vec<AllocationId> = s.core.allocations(Instant::now()).map(|a| a.id).collect();
        for id in ids {
            s.usage.ending(id, reason);
        }
        s.core.delete_all();
        s.finish_batch(self, true);
        s.listeners.clear();
        n
    }
}

impl Shard {
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
    fn on_client(&mut self, now: Instant, ft: &FiveTuple, data: &[u8]) {
        let stun = data.first().is_some_and(|b| *b <= 3);
        if stun && data.get(..2) == Some(&[0, 1]) {
            self.tally.bindings += 1;
        }
        match self.core.handle_client(now, ft, data) {
            ClientOutput::None => {}
            ClientOutput::Relay {
                relay,
                peer,
                payload,
                ..
            } => {
                if self.within_total_bps(0, now, payload.len()) {
                    self.send_to_peer(relay, peer, payload)
                }
            }
            ClientOutput::RelayOwned {
                relay,
                peer,
                payload,
                ..
            } => {
                if self.within_total_bps(0, now, payload.len()) {
                    self.send_to_peer(relay, peer, &payload)
                }
            }
        }
        if stun {
            self.serve_relay_requests(now);
        }
    }

    /// Answers the core's relay requests in the same pass: quotas, then sockets.
    fn serve_relay_requests(&mut self, now: Instant) {
        while let Some(request) = self.core.poll_relay_request() {
            let (id, user) = (request.id, request.username.clone());
            let token = match &request.relays {
                RelayAsk::Bind { reservation, .. } => *reservation,
                RelayAsk::Redeem { .. } => None,
            };
            let relays = &self.relays;
            match self.binder.fulfil(request, |a| relays.contains_key(&a)) {
                Ok((grant, bound)) => {
                    if self.core.relay_ready(now, id, Ok(grant)).is_some() {
                        self.bound.extend(bound);
                    } else {
                        // No allocation came of it: `bound` closes as it drops.
                        self.binder.release(&user);
                        if let Some(token) = token {
                            self.binder.unpark(&token);
                        }
                    }
                }
                Err(refusal) => {
                    self.core.relay_ready(now, id, Err(refusal));
                }
            }
        }
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
    fn on_peer(&mut self, now: Instant, relay: SocketAddr, peer: SocketAddr, payload: &[u8]) {
        let len = payload.len();
        if len > MAX_DATAGRAM {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch[PEER_HEADROOM..PEER_HEADROOM + len].copy_from_slice(payload);
        match self.core.handle_peer(now, relay, peer, &mut scratch, len) {
            PeerOutput::Drop => {}
            PeerOutput::ChannelData { .. } | PeerOutput::DataIndication { .. }
                if !self.within_total_bps(1, now, len) => {}
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

    /// Whether `len` relayed bytes fit this Arbiter's share of `total-bps` (`way` 0 to
    /// peers, 1 to clients); counts them if not.
    #[inline]
    fn within_total_bps(&mut self, way: usize, now: Instant, len: usize) -> bool {
        if self.total_bps[way].take(now, len) {
            return true;
        }
        self.tally.over_total_bps.0 += 1;
        self.tally.over_total_bps.1 += len as u64;
        false
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
                // Bounded in bytes: a client that stops reading loses data, the server
                // no memory.
                if let Some(w) = self.tcp.get(&(ft.client, ft.server)) {
                    if w.send(Bytes::copy_from_slice(data)) == Err(StreamSendError::Full) {
                        self.metrics.tcp_dropped(data.len() as u64);
                    }
                }
            }
        }
    }

    /// Sends the core's responses and everything queued, acts on the core's events, and
    /// re-arms the timer if the core's deadline moved earlier. Ends every batch.
    fn finish_batch(&mut self, handle: &ShardHandle, flush_clients: bool) {
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
            self.on_event(e, handle);
        }
        if let Some(at) = self.core.poll_timeout() {
            if self.timer.is_none_or(|armed| at < armed) {
                self.timer = Some(at);
                self.supervision.wake_at(at);
            }
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
        if tally.over_total_bps.0 > 0 {
            let (packets, bytes) = tally.over_total_bps;
            self.metrics.over_total_bps(packets, bytes);
        }
        let refused = self.core.take_counters();
        if !refused.is_zero() {
            self.metrics.core_counters(&refused);
        }
    }

    fn on_event(&mut self, e: ServerEvent, handle: &ShardHandle) {
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
                    if let Some(i) = self.bound.iter().position(|(a, _)| a == addr) {
                        let (_, socket) = self.bound.swap_remove(i);
                        if dont_fragment {
                            let _ = socket.set_dont_fragment(true);
                        }
                        self.start_relay(handle, id, *addr, Rc::new(socket));
                    }
                }
                let actor = self.supervision.start_allocation(id, five_tuple);
                self.metrics.allocation_created();
                self.usage.created(id, &username);
                self.events.do_send(TurnEvent::AllocationCreated {
                    five_tuple,
                    username: username.clone(),
                    relayed,
                    lifetime,
                });
                self.allocations.insert(
                    id,
                    AllocationEntry {
                        actor,
                        five_tuple,
                        username,
                    },
                );
            }
            ServerEvent::AllocationRefreshed { id, lifetime } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::Refreshed {
                        five_tuple: a.five_tuple,
                        lifetime,
                    });
                }
            }
            ServerEvent::AllocationUsage(usage) => self.usage.last_count(usage),
            ServerEvent::AllocationDeleted { id, five_tuple } => {
                self.usage.ended(id, EndReason::Client, &self.core);
                self.ended(id, TurnEvent::Deleted { five_tuple })
            }
            ServerEvent::AllocationExpired { id, five_tuple } => {
                self.usage.ended(id, EndReason::Expired, &self.core);
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
                if let (401, Some(name)) = (code, &username) {
                    self.metrics.user_unauthorized(name);
                }
                self.events.do_send(TurnEvent::AuthFailed {
                    client,
                    username,
                    code,
                });
            }
            ServerEvent::ErrorResponse { code, .. } => self.metrics.error_response(code),
            ServerEvent::RelayReleased(addr) => {
                self.bound.retain(|(a, _)| *a != addr);
                if let Some(r) = self.relays.remove(&addr) {
                    r.actor.do_send(Command::Stop);
                }
            }
            ServerEvent::ReservationExpired { token, .. } => self.binder.unpark(&token),
            _ => {}
        }
    }

    fn ended(&mut self, id: AllocationId, event: TurnEvent) {
        if let Some(a) = self.allocations.remove(&id) {
            a.actor.do_send(Command::Stop);
            self.binder.release(&a.username);
            self.metrics.allocation_ended();
            self.events.do_send(event);
        }
    }

    fn start_relay(
        &mut self,
        handle: &ShardHandle,
        allocation: AllocationId,
        addr: SocketAddr,
        socket: Rc<BatchSocket>,
    ) {
        let actor = self
            .supervision
            .start_relay(handle.clone(), addr, socket.clone());
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
fn contain(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!("a datagram hit a bug and was dropped");
    }
}
