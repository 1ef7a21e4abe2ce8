//! The owner of one Arbiter's TURN state: the sans-IO core (allocations, permissions,
//! channels, lifetimes), the relay and listener sockets, and the 5-tuple and relay
//! indexes that route data.
//!
//! **The data-path rule.** Control messages (Allocate, Refresh, CreatePermission,
//! ChannelBind) and relayed data alike are handled in the batch that read them, on the
//! thread that read them: the listener and TCP loops of an Arbiter call [`ShardHandle`]
//! once per batch, the relay drain (`relay_drain`) once per pass over every relay socket
//! that became readable, and it routes each datagram through the core's
//! per-thread indexes (5-tuple → allocation, relayed address → allocation) without a
//! mailbox hop, a lock or a string (and, for ChannelData over UDP, without a heap
//! allocation). The data path skips mailboxes only through this index that one owner
//! keeps. (The one lock near it is the relay drain's ready set, taken once per relay
//! socket that becomes readable, never contended: wakers must be `Send`, and only
//! this Arbiter's thread wakes them.) Everything else the owner's actors do
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
use floe::framing::StreamFramer;
use floe::transmit::Transport;
use floe::turn::server::{AllocationId, FiveTuple, Server, PEER_HEADROOM};

use super::bandwidth::BandwidthCap;
use super::binder::{BoundRelays, RelayBinder};
use super::coalesce::Coalescer;
use super::outbox::{Pending, Tally};
use super::stream_writer::StreamWriter;
use super::usage::{EndReason, UsageBook};
use super::{EventSink, Fault, TurnEvent};
use crate::metrics::Metrics;
use crate::udp::{BatchSocket, RecvBuffers};

mod data;
mod events;
mod relays;

use relays::RelaySlots;

/// Largest datagram a relay or listener accepts (one byte more marks truncation).
pub(crate) const MAX_DATAGRAM: usize = 65_536;
/// Receive slots of the relay sockets' reads: a relay socket seldom holds more (the
/// drain reads it again when a read fills them all).
const RELAY_SLOTS: usize = 8;

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
    /// Starts the actor that stands for the relay bound to `addr` (the Arbiter's relay
    /// drain reads its socket).
    fn start_relay(&self, addr: SocketAddr) -> Recipient<Command>;
    /// The socket of the relay bound to `addr` failed: it should be bound again.
    fn relay_failed(&self, addr: SocketAddr, error: String);
    /// The core wants [`ShardHandle::on_timeout`] at `at`, earlier than asked before.
    fn wake_at(&self, at: Instant);
}

struct RelayEntry {
    socket: Rc<BatchSocket>,
    /// Its slot in `relay_slots`.
    slot: u32,
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
    /// Bound again on its address, with a new relay actor; the drain reads it.
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
    /// The relay sockets by slot, which the relay drain reads.
    relay_slots: RelaySlots,
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
            relay_slots: RelaySlots::new(),
            allocations: HashMap::new(),
            bound: Vec::new(),
            tcp: HashMap::new(),
            usage: UsageBook::new(metrics.clone(), thread),
            metrics,
            events,
            relay_bufs: Rc::new(RefCell::new(RecvBuffers::new(
                RELAY_SLOTS,
                MAX_DATAGRAM + 1,
            ))),
            scratch: vec![0; PEER_HEADROOM + MAX_DATAGRAM + 4],
            tally: Tally::default(),
            to_clients: Vec::new(),
            to_peers: Pending::default(),
            to_peers_relay: None,
            coalescer: Coalescer::new(std::time::Duration::ZERO),
            timer: None,
            total_bps: [BandwidthCap::new(0), BandwidthCap::new(0)],
        })))
    }

    /// Serves UDP clients on `socket` too (its loop calls [`Self::client_datagrams`]).
    pub(crate) fn add_listener(&self, socket: Rc<BatchSocket>) {
        self.0.borrow_mut().listeners.push(socket);
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
        s.finish_batch();
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
        s.finish_batch();
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
        s.finish_batch();
    }

    /// The supervisor's timer fired: lifetimes, permissions, channels, reservations.
    pub(crate) fn on_timeout(&self, now: Instant) {
        let mut s = self.0.borrow_mut();
        s.timer = None;
        s.core.handle_timeout(now);
        s.finish_batch();
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
        // The old socket closes first, so its address can be bound again.
        let Some(id) = s.stop_relay(addr) else {
            return RelayRestart::Gone;
        };
        match BatchSocket::bind(addr, &RelayBinder::relay_config()) {
            Ok(socket) => {
                if s.core.allocation(id).is_some_and(|a| a.dont_fragment) {
                    let _ = socket.set_dont_fragment(true);
                }
                s.start_relay(id, addr, Rc::new(socket));
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
        s.finish_batch();
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
        s.finish_batch();
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
        s.finish_batch();
        s.listeners.clear();
        n
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
