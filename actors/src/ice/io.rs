//! Sockets as actix streams: the datagrams of a [`BatchSocket`] and the frames of a TCP
//! connection to a TURN server, each item copied out of the receive buffers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use floe::framing::StreamFramer;
use futures_util::stream::{self, Stream};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

use crate::udp::BatchSocket;

/// Larger than any datagram ICE or TURN sends.
const MAX_DATAGRAM: usize = 2048;

/// One datagram received on a socket.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// The local socket, as the owner numbered it.
    pub socket: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// The socket's own address.
    pub to: SocketAddr,
    /// The payload.
    pub data: Bytes,
}

impl actix::Message for Datagram {
    type Result = ();
}

/// The datagrams arriving on `socket`, numbered `index`. The stream ends (after a
/// warning) when the socket can no longer receive.
pub(crate) fn udp_datagrams(
    index: usize,
    socket: Rc<BatchSocket>,
) -> impl Stream<Item = Datagram> + Unpin {
    let bufs = socket.recv_buffers(MAX_DATAGRAM);
    let state = (socket, bufs, VecDeque::new());
    Box::pin(stream::unfold(
        state,
        move |(socket, mut bufs, mut queue)| async move {
            loop {
                if let Some(d) = queue.pop_front() {
                    return Some((d, (socket, bufs, queue)));
                }
                let to = socket.local_addr();
                match socket.recv_batch(&mut bufs).await {
                    Ok(datagrams) => {
                        for d in datagrams {
                            queue.push_back(Datagram {
                                socket: index,
                                from: d.source,
                                to,
                                data: Bytes::copy_from_slice(d.payload),
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(local = %to, error = %e, "ICE socket stopped receiving");
                        return None;
                    }
                }
            }
        },
    ))
}

/// The STUN and ChannelData messages on a TCP connection (RFC 8489 §6.2.2, RFC 8656
/// §12.5). Ends when the connection closes or cannot be framed.
pub(crate) fn tcp_frames(read: OwnedReadHalf) -> impl Stream<Item = Bytes> + Unpin {
    let state = (read, StreamFramer::new(), vec![0u8; 16 * 1024]);
    Box::pin(stream::unfold(
        state,
        |(mut read, mut framer, mut buf)| async move {
            loop {
                match framer.next_frame() {
                    Ok(Some(frame)) => return Some((frame.into_bytes(), (read, framer, buf))),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "TURN TCP stream cannot be framed");
                        return None;
                    }
                }
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => {
                        if framer.push(&buf[..n]).is_err() {
                            return None;
                        }
                    }
                }
            }
        },
    ))
}
