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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{tls, TurnClientConfig, TurnClientError};
pub(super) use crate::turn::stream_writer::{StreamSendError, StreamWriter};
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
/// Time a closed connection's writer has to send what it queued (a Refresh with lifetime
/// 0, say) to a server that reads slowly, before the connection is dropped.
pub(super) const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(10);

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

pub(super) fn framed_reader(reader: Pin<Box<dyn AsyncRead>>) -> FramedReader {
    FramedReader {
        reader,
        framer: StreamFramer::with_capacity(STREAM_READ_LEN),
        buf: vec![0; STREAM_READ_LEN].into_boxed_slice(),
        done: false,
    }
}
