//! Sockets as actix streams: the datagrams of a [`BatchSocket`],
//! each item copied out of the receive buffers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::stream::{self, Stream};

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
