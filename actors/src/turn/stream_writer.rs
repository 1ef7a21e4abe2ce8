//! `StreamWriter`: the sending half of a TCP or TLS connection, bounded in bytes. The
//! TURN client writes to its server through one, and the server to each TCP or TLS
//! client: a peer that reads slowly or not at all costs at most the bound, and what
//! comes beyond it is dropped, as UDP would drop it (issue 13).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The sending half of a TCP or TLS connection: its own task writes the messages in order,
/// with at most the bound's bytes waiting (the message being written included).
pub(crate) struct StreamWriter {
    tx: UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    /// One permit per byte that may still be queued.
    room: Arc<Semaphore>,
    /// Dropped with the writer: from then on the task has its linger to finish.
    _closing: Option<oneshot::Sender<()>>,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StreamSendError {
    /// The bound is reached: the message is dropped.
    Full,
    /// The connection is closed.
    Closed,
}

impl StreamWriter {
    /// Starts the task that writes to `writer` on the current Arbiter, with at most
    /// `max_bytes` queued. Once this `StreamWriter` is dropped, the task writes what is
    /// queued and shuts the stream down, giving up after `linger`: a peer that stopped
    /// reading cannot hold the connection (and its descriptor) open for ever.
    pub(crate) fn spawn(
        mut writer: Pin<Box<dyn AsyncWrite>>,
        max_bytes: usize,
        linger: Duration,
    ) -> Self {
        let (tx, mut rx) = unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
        let (closing, closed) = oneshot::channel::<()>();
        actix_rt::spawn(async move {
            let work = async {
                // The permit goes back once its message is written.
                while let Some((b, _permit)) = rx.recv().await {
                    if writer.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = writer.shutdown().await;
            };
            let deadline = async {
                let _ = closed.await;
                tokio::time::sleep(linger).await;
            };
            tokio::select! {
                () = work => {}
                () = deadline => {}
            }
        });
        StreamWriter {
            tx,
            room: Arc::new(Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS))),
            _closing: Some(closing),
        }
    }

    /// A writer without a connection (while a new one is being set up).
    pub(crate) fn closed() -> Self {
        StreamWriter {
            tx: unbounded_channel().0,
            room: Arc::new(Semaphore::new(0)),
            _closing: None,
        }
    }

    /// Queues one message, or drops it when the queue is full.
    pub(crate) fn send(&self, message: Bytes) -> Result<(), StreamSendError> {
        if self.tx.is_closed() {
            return Err(StreamSendError::Closed);
        }
        let len = u32::try_from(message.len()).map_err(|_| StreamSendError::Full)?;
        let permit = match self.room.clone().try_acquire_many_owned(len) {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Err(StreamSendError::Full),
            Err(TryAcquireError::Closed) => return Err(StreamSendError::Closed),
        };
        self.tx
            .send((message, permit))
            .map_err(|_| StreamSendError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const BOUND: usize = 256 * 1024;
    const LINGER: Duration = Duration::from_millis(100);

    #[actix_rt::test]
    async fn a_peer_that_does_not_read_costs_bounded_memory() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        let writer = StreamWriter::spawn(Box::pin(ours), BOUND, LINGER);
        let chunk = Bytes::from(vec![7u8; 1024]);
        let accepted = (0..400)
            .filter(|_| writer.send(chunk.clone()).is_ok())
            .count();
        assert_eq!(accepted * 1024, BOUND, "then the rest is dropped");
        assert_eq!(writer.send(chunk.clone()), Err(StreamSendError::Full));

        // Once the peer reads, the written messages make room again.
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < 32 * 1024 {
            read += peer.read(&mut buf).await.unwrap();
        }
        tokio::task::yield_now().await;
        assert!(writer.send(chunk.clone()).is_ok());

        // A connection that is gone says so.
        drop(peer);
        let closed = async {
            while writer.send(Bytes::from_static(b"x")) != Err(StreamSendError::Closed) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), closed)
            .await
            .expect("the writer notices the closed connection");
        assert_eq!(
            StreamWriter::closed().send(chunk),
            Err(StreamSendError::Closed)
        );
    }

    #[actix_rt::test]
    async fn a_peer_that_does_not_read_cannot_hold_the_stream_once_the_writer_is_dropped() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        let writer = StreamWriter::spawn(Box::pin(ours), BOUND, LINGER);
        writer.send(Bytes::from(vec![1u8; 64 * 1024])).unwrap();
        tokio::time::sleep(LINGER).await;
        // The task is stuck writing to a peer that does not read ...
        assert!(peer.write_all(b"still there").await.is_ok());
        drop(writer);
        // ... until the linger after the writer went: then our end of the stream is gone.
        let gone = async {
            while peer.write_all(b"x").await.is_ok() {
                tokio::time::sleep(LINGER).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("the stream is dropped after the linger");
    }
}
