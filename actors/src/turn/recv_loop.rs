//! The loop that reads one UDP socket (a listener or a relay) in batches and hands each
//! batch to the Arbiter's [`ShardHandle`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::shard::ShardHandle;
use crate::udp::{BatchSocket, RecvBuffers, UdpError};

/// Batches one loop handles before it yields to the other tasks of the Arbiter.
const BATCHES_PER_POLL: usize = 8;

/// What a [`RecvLoop`] reads.
pub(crate) enum LoopRole {
    /// A listener: datagrams come from clients.
    Listener,
    /// A relay: datagrams come from peers.
    Relay,
}

/// Reads a UDP socket in batches until it fails.
pub(crate) struct RecvLoop {
    pub(crate) shard: ShardHandle,
    pub(crate) socket: Rc<BatchSocket>,
    pub(crate) bufs: Rc<RefCell<RecvBuffers>>,
    pub(crate) role: LoopRole,
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
            match this.role {
                LoopRole::Listener => this.shard.client_datagrams(now, local, &bufs),
                LoopRole::Relay => this.shard.peer_datagrams(now, local, &bufs),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
