//! The owner's table of relay sockets by slot, and the pass of the relay drain over the
//! slots that became readable (see `relay_drain`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::super::relay_drain::{ReadySet, SlotWaker};
use super::{contain, Shard, ShardHandle};
use crate::udp::BatchSocket;

/// Receive calls a pass makes on one relay socket before it puts the socket back in the
/// ready set and goes on with the others.
const BATCHES_PER_RELAY: usize = 4;
/// Datagrams for clients a pass queues before it sends them.
const QUEUE_AT_MOST: usize = 256;

/// The relay sockets of one Arbiter by slot, and the set of the readable ones.
pub(super) struct RelaySlots {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    ready: Arc<ReadySet>,
}

struct Slot {
    addr: SocketAddr,
    socket: Rc<BatchSocket>,
    flag: Arc<SlotWaker>,
    waker: Waker,
    /// Its socket failed; the supervisor was told and will free the slot.
    failed: bool,
}

impl RelaySlots {
    pub(super) fn new() -> Self {
        RelaySlots {
            slots: Vec::new(),
            free: Vec::new(),
            ready: Arc::new(ReadySet::default()),
        }
    }

    pub(super) fn ready(&self) -> Arc<ReadySet> {
        self.ready.clone()
    }

    /// Gives `socket` a slot and queues it, so the drain reads it once and registers its
    /// waker with the reactor.
    pub(super) fn insert(&mut self, addr: SocketAddr, socket: Rc<BatchSocket>) -> u32 {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        });
        let (flag, waker) = SlotWaker::new(slot, self.ready.clone());
        waker.wake_by_ref();
        self.slots[slot as usize] = Some(Slot {
            addr,
            socket,
            flag,
            waker,
            failed: false,
        });
        slot
    }

    /// Frees `slot`, closing its socket unless someone else holds it.
    pub(super) fn remove(&mut self, slot: u32) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            if entry.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    /// What the drain needs to read `slot`, unless it is free or failed.
    fn take(&self, slot: u32) -> Option<(SocketAddr, Rc<BatchSocket>, Waker)> {
        let s = self.slots.get(slot as usize)?.as_ref()?;
        if s.failed {
            return None;
        }
        s.flag.taken();
        Some((s.addr, s.socket.clone(), s.waker.clone()))
    }

    fn fail(&mut self, slot: u32) {
        if let Some(Some(s)) = self.slots.get_mut(slot as usize) {
            s.failed = true;
        }
    }
}

impl ShardHandle {
    /// The set the relay sockets' wakers fill, for the drain.
    pub(crate) fn ready_relays(&self) -> Arc<ReadySet> {
        self.0.borrow().relay_slots.ready()
    }

    /// One pass of the relay drain over the readable relay sockets `ready`: reads each
    /// until it is empty (or had its share of the pass), routes every datagram, and ends
    /// with one `finish_batch` for all of them, so the datagrams for clients leave with
    /// one `sendmmsg` per listener.
    pub(crate) fn drain_relays(&self, ready: &[u32]) {
        let mut s = self.0.borrow_mut();
        let bufs = s.relay_bufs.clone();
        let mut bufs = bufs.borrow_mut();
        let (mut datagrams, mut receives) = (0, 0);
        for &slot in ready {
            let Some((local, socket, waker)) = s.relay_slots.take(slot) else {
                continue;
            };
            let mut cx = Context::from_waker(&waker);
            for batch in 0..=BATCHES_PER_RELAY {
                if batch == BATCHES_PER_RELAY {
                    // More may wait: after the others.
                    waker.wake_by_ref();
                    break;
                }
                match socket.poll_recv_batch(&mut cx, &mut bufs) {
                    Poll::Pending => break,
                    Poll::Ready(Err(e)) => {
                        s.relay_slots.fail(slot);
                        s.supervision.relay_failed(local, e.to_string());
                        break;
                    }
                    Poll::Ready(Ok(_)) => {}
                }
                let now = Instant::now();
                for d in bufs.datagrams() {
                    datagrams += 1;
                    contain(|| s.on_peer(now, local, d.source, d.payload));
                }
                receives += 1;
            }
            if s.queued_for_clients() >= QUEUE_AT_MOST {
                s.flush_clients();
            }
        }
        s.coalescer.received_many(datagrams, receives, true);
        s.finish_batch();
    }
}

impl Shard {
    fn queued_for_clients(&self) -> usize {
        self.to_clients.iter().map(|p| p.len()).sum()
    }
}
