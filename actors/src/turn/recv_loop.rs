//! The loop that reads one UDP listener in batches and hands each batch to the Arbiter's
//! [`ShardHandle`]. (Relay sockets have no loop of their own: the Arbiter's relay drain
//! reads them, see `relay_drain`.)

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

/// Reads a UDP listener in batches until it fails.
pub(crate) struct RecvLoop {
    pub(crate) shard: ShardHandle,
    pub(crate) socket: Rc<BatchSocket>,
    pub(crate) bufs: Rc<RefCell<RecvBuffers>>,
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
            this.shard.client_datagrams(Instant::now(), local, &bufs);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
