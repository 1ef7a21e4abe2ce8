//! The actor's side of the network: a UDP socket read in batches, or a TCP stream (optionally
//! TLS) cut into STUN and ChannelData messages, and the writers that send transmits.

use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use floe::framing::StreamFramer;
use floe::transmit::Transport;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::{tls, TurnClientConfig, TurnClientError};
use crate::udp::{BatchSocket, RecvBuffers};

/// Receive slots per batch on the UDP socket.
const UDP_SLOTS: usize = 8;
/// A receive slot holds the largest UDP datagram; one byte more marks truncation.
const UDP_SLOT_LEN: usize = 65_536;
/// Bytes read from a TCP or TLS stream at a time.
const STREAM_READ_LEN: usize = 16 * 1024;
/// Bytes a TCP or TLS connection holds queued at most, so that a server that reads slowly
/// costs bounded memory (issue 13). Beyond it a message is dropped, as UDP would drop it.
pub(super) const MAX_QUEUED_BYTES: usize = 256 * 1024;

/// What the socket delivers to the actor.
pub(super) enum Inbound {
    /// One batch of UDP datagrams.
    Datagrams(Vec<(SocketAddr, Bytes)>),
    /// One STUN or ChannelData message from the stream.
    Frame(Bytes),
    /// The socket or connection is unusable.
    Lost(String),
}

/// The UDP socket as a stream of datagram batches (recvmmsg).
pub(super) struct UdpReader {
    socket: Rc<BatchSocket>,
    bufs: RecvBuffers,
    done: bool,
}

impl UdpReader {
    pub(super) fn new(socket: Rc<BatchSocket>) -> Self {
        UdpReader {
            socket,
            bufs: RecvBuffers::new(UDP_SLOTS, UDP_SLOT_LEN),
            done: false,
        }
    }
}

impl futures_core::Stream for UdpReader {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match std::task::ready!(this.socket.poll_recv_batch(cx, &mut this.bufs)) {
            Ok(_) => {
                let batch = this
                    .bufs
                    .datagrams()
                    .map(|d| (d.source, Bytes::copy_from_slice(d.payload)))
                    .collect();
                Poll::Ready(Some(Inbound::Datagrams(batch)))
            }
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Inbound::Lost(e.to_string())))
            }
        }
    }
}

/// A TCP or TLS stream as a stream of STUN and ChannelData messages (RFC 8656 §12.5).
pub(super) struct FramedReader {
    reader: Pin<Box<dyn AsyncRead>>,
    framer: StreamFramer,
    buf: Box<[u8]>,
    done: bool,
}

impl futures_core::Stream for FramedReader {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.framer.next_frame() {
                Ok(Some(frame)) => return Poll::Ready(Some(Inbound::Frame(frame.into_bytes()))),
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    let reason = format!("the server's stream cannot be framed: {e}");
                    return Poll::Ready(Some(Inbound::Lost(reason)));
                }
            }
            let mut rb = ReadBuf::new(&mut this.buf);
            let read = std::task::ready!(this.reader.as_mut().poll_read(cx, &mut rb));
            let n = rb.filled().len();
            let lost = match read {
                Ok(()) if n == 0 => Some("the server closed the connection".to_owned()),
                Ok(()) => this
                    .framer
                    .push(&this.buf[..n])
                    .err()
                    .map(|e| format!("the server's stream cannot be framed: {e}")),
                Err(e) => Some(format!("reading from the server failed: {e}")),
            };
            if let Some(reason) = lost {
                this.done = true;
                return Poll::Ready(Some(Inbound::Lost(reason)));
            }
        }
    }
}

/// Where inbound messages come from.
pub(super) enum Reader {
    Udp(UdpReader),
    Stream(FramedReader),
}

/// Where transmits go.
pub(super) enum Writer {
    Udp(Rc<BatchSocket>),
    /// The sending half of a TCP or TLS connection.
    Stream(StreamWriter),
}

/// A connected TCP or TLS stream, split.
pub(super) struct StreamConn {
    pub(super) reader: Pin<Box<dyn AsyncRead>>,
    pub(super) writer: Pin<Box<dyn AsyncWrite>>,
    pub(super) local: SocketAddr,
}

pub(super) async fn connect_stream(
    config: &TurnClientConfig,
    server: SocketAddr,
    server_name: Option<String>,
) -> Result<StreamConn, TurnClientError> {
    let connect = async {
        let socket = if server.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|source| TurnClientError::Connect { server, source })?;
        if let Some(bind) = config.bind {
            socket
                .bind(bind)
                .map_err(|source| TurnClientError::Connect { server, source })?;
        }
        let tcp = socket
            .connect(server)
            .await
            .map_err(|source| TurnClientError::Connect { server, source })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp
            .local_addr()
            .map_err(|source| TurnClientError::Connect { server, source })?;
        if config.session.transport != Transport::Tls {
            let (r, w) = tokio::io::split(tcp);
            return Ok(StreamConn {
                reader: Box::pin(r),
                writer: Box::pin(w),
                local,
            });
        }
        let tls_err = |reason: String| TurnClientError::Tls { server, reason };
        let tls_config = tls::client_config(&config.tls.roots).map_err(tls_err)?;
        let name = server_name.map_or_else(
            || Ok(rustls::pki_types::ServerName::IpAddress(server.ip().into())),
            |n| {
                rustls::pki_types::ServerName::try_from(n)
                    .map_err(|e| tls_err(format!("invalid server name: {e}")))
            },
        )?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls_config))
            .connect(name, tcp)
            .await
            .map_err(|e| tls_err(e.to_string()))?;
        let (r, w) = tokio::io::split(stream);
        Ok(StreamConn {
            reader: Box::pin(r),
            writer: Box::pin(w),
            local,
        })
    };
    tokio::time::timeout(config.connect_timeout, connect)
        .await
        .unwrap_or(Err(TurnClientError::ConnectTimeout { server }))
}

/// The sending half of a TCP or TLS connection: its own task writes the messages in order,
/// with at most [`MAX_QUEUED_BYTES`] waiting.
pub(super) struct StreamWriter {
    tx: UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    /// One permit per byte that may still be queued.
    room: Arc<Semaphore>,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StreamSendError {
    /// [`MAX_QUEUED_BYTES`] are waiting: the message is dropped.
    Full,
    /// The connection is closed.
    Closed,
}

impl StreamWriter {
    /// Starts the task that writes to `writer`; it shuts the stream down once every
    /// `StreamWriter` for it is dropped and the queue is written.
    pub(super) fn spawn(mut writer: Pin<Box<dyn AsyncWrite>>) -> Self {
        let (tx, mut rx) = unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
        actix_rt::spawn(async move {
            // The permit goes back once its message is written.
            while let Some((b, _permit)) = rx.recv().await {
                if writer.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        StreamWriter {
            tx,
            room: Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
        }
    }

    /// A writer without a connection (while a new one is being set up).
    pub(super) fn closed() -> Self {
        StreamWriter {
            tx: unbounded_channel().0,
            room: Arc::new(Semaphore::new(0)),
        }
    }

    /// Queues one message, or drops it when the queue is full.
    pub(super) fn send(&self, message: Bytes) -> Result<(), StreamSendError> {
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

pub(super) fn framed_reader(reader: Pin<Box<dyn AsyncRead>>) -> FramedReader {
    FramedReader {
        reader,
        framer: StreamFramer::with_capacity(STREAM_READ_LEN),
        buf: vec![0; STREAM_READ_LEN].into_boxed_slice(),
        done: false,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[actix_rt::test]
    async fn a_server_that_does_not_read_costs_bounded_memory() {
        let (ours, mut server) = tokio::io::duplex(1024);
        let writer = StreamWriter::spawn(Box::pin(ours));
        let chunk = Bytes::from(vec![7u8; 1024]);
        let accepted = (0..400)
            .filter(|_| writer.send(chunk.clone()).is_ok())
            .count();
        assert_eq!(
            accepted * 1024,
            MAX_QUEUED_BYTES,
            "then the rest is dropped"
        );
        assert_eq!(writer.send(chunk.clone()), Err(StreamSendError::Full));

        // Once the server reads, the written messages make room again.
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < 32 * 1024 {
            read += server.read(&mut buf).await.unwrap();
        }
        tokio::task::yield_now().await;
        assert!(writer.send(chunk.clone()).is_ok());

        // A connection that is gone says so.
        drop(server);
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
}
