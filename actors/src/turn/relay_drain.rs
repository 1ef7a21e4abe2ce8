//! The relay drain: one task per Arbiter reads every relay socket that became readable,
//! in one pass, and the datagrams for clients it routes leave once at the end of the pass.
//!
//! Each relay socket registers with the reactor a [`SlotWaker`] of its own instead of a
//! task's waker. Readiness costs no task wake-up per socket: the waker puts the socket's
//! slot (its index in the owner's table of relay sockets) in the Arbiter's [`ReadySet`]
//! and wakes the one [`RelayDrain`] task, once until the drain has read that socket. The
//! drain takes the whole set and hands it to [`ShardHandle::drain_relays`], which reads
//! each socket until it is empty, routes every datagram through the owner's indexes and
//! ends the pass with one `finish_batch`: one `sendmmsg` per listener for the datagrams
//! of every relay of the pass, one round of events and metrics.
//!
//! The slots mean nothing outside the owner: the set holds numbers, the owner the
//! sockets (and it frees a slot when its relay goes; a stale number costs one poll that
//! finds nothing).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use super::shard::ShardHandle;

/// The slots of the relay sockets that became readable since the drain took them.
#[derive(Default)]
pub(crate) struct ReadySet(Mutex<Ready>);

#[derive(Default)]
struct Ready {
    slots: Vec<u32>,
    /// The drain's task, woken by the first slot after it took the set.
    drain: Option<Waker>,
}

impl ReadySet {
    fn lock(&self) -> MutexGuard<'_, Ready> {
        // Nothing panics while holding it; a poisoned set is still a list of numbers.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the ready slots into `into` (emptied first), and keeps `waker` to wake the
    /// drain when the next slot comes.
    pub(crate) fn take(&self, into: &mut Vec<u32>, waker: &Waker) {
        into.clear();
        let mut ready = self.lock();
        std::mem::swap(&mut ready.slots, into);
        if !ready.drain.as_ref().is_some_and(|w| w.will_wake(waker)) {
            ready.drain = Some(waker.clone());
        }
    }

    fn push(&self, slot: u32) {
        let drain = {
            let mut ready = self.lock();
            ready.slots.push(slot);
            ready.drain.take()
        };
        if let Some(drain) = drain {
            drain.wake();
        }
    }
}

/// The waker one relay socket registers with the reactor: readiness puts the socket's
/// slot in the [`ReadySet`], once until the drain reads the socket again.
pub(crate) struct SlotWaker {
    slot: u32,
    queued: AtomicBool,
    ready: Arc<ReadySet>,
}

impl SlotWaker {
    /// The waker of slot `slot` and its flag.
    pub(crate) fn new(slot: u32, ready: Arc<ReadySet>) -> (Arc<SlotWaker>, Waker) {
        let flag = Arc::new(SlotWaker {
            slot,
            queued: AtomicBool::new(false),
            ready,
        });
        (flag.clone(), Waker::from(flag))
    }

    /// The drain is about to read the socket: readiness from now on queues it again.
    pub(crate) fn taken(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.slot);
        }
    }
}

/// The task that drains the ready relay sockets of one Arbiter; it runs for as long as
/// the Arbiter serves.
pub(crate) struct RelayDrain {
    shard: ShardHandle,
    ready: Arc<ReadySet>,
    slots: Vec<u32>,
}

impl RelayDrain {
    pub(crate) fn new(shard: ShardHandle) -> Self {
        let ready = shard.ready_relays();
        RelayDrain {
            shard,
            ready,
            slots: Vec::new(),
        }
    }
}

impl Future for RelayDrain {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.ready.take(&mut this.slots, cx.waker());
        if !this.slots.is_empty() {
            // A socket with more than a pass's share left is put back in the set, which
            // wakes this task again after the others of the Arbiter had their turn.
            this.shard.drain_relays(&this.slots);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_slot_is_queued_once_until_taken_and_wakes_the_drain_once() {
        let ready = Arc::new(ReadySet::default());
        let drain = Arc::new(Count(AtomicUsize::new(0)));
        let drain_waker = Waker::from(drain.clone());
        let mut taken = Vec::new();
        ready.take(&mut taken, &drain_waker);
        assert!(taken.is_empty());

        let (a, wa) = SlotWaker::new(3, ready.clone());
        let (_b, wb) = SlotWaker::new(7, ready.clone());
        wa.wake_by_ref();
        wa.wake_by_ref();
        wb.wake_by_ref();
        assert_eq!(
            drain.0.load(Ordering::Relaxed),
            1,
            "one wake-up for the pass"
        );
        ready.take(&mut taken, &drain_waker);
        assert_eq!(taken, [3, 7]);

        wa.wake_by_ref();
        ready.take(&mut taken, &drain_waker);
        assert!(
            taken.is_empty(),
            "not taken by the drain yet: not queued again"
        );
        a.taken();
        wa.wake_by_ref();
        ready.take(&mut taken, &drain_waker);
        assert_eq!(taken, [3]);
        assert_eq!(drain.0.load(Ordering::Relaxed), 2);
    }
}
