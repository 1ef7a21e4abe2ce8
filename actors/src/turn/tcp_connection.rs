//! `TcpConnection`: one client over TCP (or TLS). STUN and ChannelData arrive framed
//! (RFC 8656 §12.5); the allocation of the connection lives as long as it does.
//!
//! What a connection may cost is bounded (issue 13): it holds a [`ConnectionSlot`] under
//! the server's caps, its first bytes must be a STUN message, every message must
//! complete within the message timeout, and what waits for it to read is bounded in
//! bytes by its [`StreamWriter`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use floe::demux::{classify, PacketKind};
use floe::framing::StreamFramer;
use floe::stun::MAGIC_COOKIE;
use floe::transmit::Transport;
use floe::turn::server::FiveTuple;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::shard::ShardHandle;
use super::stream_writer::StreamWriter;
use super::tcp_limits::{ConnectionSlot, TcpLimits};
use crate::metrics::Metrics;

/// How long a connection may stay open without an allocation (coturn closes such
/// connections too): file descriptors are not spent on idle or half-open clients.
const IDLE_WITHOUT_ALLOCATION: Duration = Duration::from_secs(60);

/// A connection the listener accepted under the caps.
pub(crate) struct Accepted {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
    /// When it was accepted: its first message is due within the message timeout of it.
    pub at: Instant,
    pub slot: ConnectionSlot,
}

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The client closed it, or reading failed.
    Gone,
    /// Its first bytes are not a STUN message, or the stream cannot be framed.
    NotStun,
    /// A message did not complete within the message timeout.
    Timeout,
}

/// One client connection.
pub(crate) struct TcpConnection {
    five_tuple: FiveTuple,
    shard: ShardHandle,
    metrics: Metrics,
    reader: Option<Box<dyn AsyncRead + Unpin>>,
    accepted_at: Instant,
    message_timeout: Duration,
    /// Given back to the caps when the actor goes.
    _slot: ConnectionSlot,
}

impl TcpConnection {
    /// Serves `stream` on the current Arbiter (TLS streams come decrypted).
    pub(crate) fn spawn<S>(
        stream: S,
        accepted: Accepted,
        limits: &TcpLimits,
        shard: ShardHandle,
        metrics: Metrics,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let five_tuple = FiveTuple {
            client: accepted.client,
            server: accepted.server,
            transport: accepted.transport,
        };
        // Once the connection closes, what is queued has one message timeout to leave.
        let writer = StreamWriter::spawn(
            Box::pin(write),
            limits.write_queue_bytes,
            limits.message_timeout,
        );
        shard.tcp_connected(&five_tuple, writer);
        TcpConnection {
            five_tuple,
            shard,
            metrics,
            reader: Some(Box::new(read)),
            accepted_at: accepted.at,
            message_timeout: limits.message_timeout,
            _slot: accepted.slot,
        }
        .start();
    }
}

/// What the first bytes of a connection say, RFC 8489 §5: a STUN message has its two top
/// bits zero (RFC 7983 §7 narrows the first byte to 0..=3) and the magic cookie in bytes
/// 4..8. A connection has no channel before its first Allocate, so ChannelData cannot
/// come first; anything else (`GET / HTTP/1.1`, a TLS ClientHello on the TCP port) is
/// not STUN. `None` while fewer bytes than that have arrived.
fn starts_as_stun(head: &[u8]) -> Option<bool> {
    match head {
        [] => None,
        [first, ..] if classify(*first) != PacketKind::Stun => Some(false),
        [_, _, _, _, c0, c1, c2, c3, ..] => {
            Some([*c0, *c1, *c2, *c3] == MAGIC_COOKIE.to_be_bytes())
        }
        _ => None,
    }
}

impl Actor for TcpConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut reader = self.reader.take().expect("started once");
        let shard = self.shard.clone();
        let ft = self.five_tuple;
        let timeout = self.message_timeout;
        // Until its first message: what came of it so far.
        let mut head: Option<Vec<u8>> = Some(Vec::with_capacity(8));
        // The instant by which the message under way must be complete; none between
        // messages once the first is in.
        let mut due = Some(self.accepted_at + timeout);
        let read_loop = async move {
            let mut framer = StreamFramer::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let read = match due {
                    Some(at) => {
                        match tokio::time::timeout_at(at.into(), reader.read(&mut buf)).await {
                            Ok(r) => r,
                            Err(_) => return Cut::Timeout,
                        }
                    }
                    None => reader.read(&mut buf).await,
                };
                let n = read.unwrap_or(0);
                if n == 0 {
                    return Cut::Gone;
                }
                if let Some(h) = &mut head {
                    let take = n.min(8 - h.len());
                    h.extend_from_slice(&buf[..take]);
                    match starts_as_stun(h) {
                        Some(false) => return Cut::NotStun,
                        Some(true) => head = None,
                        None => {}
                    }
                }
                if framer.push(&buf[..n]).is_err() {
                    return Cut::NotStun;
                }
                let now = Instant::now();
                let before = framer.buffered_len();
                if head.is_none() && !shard.client_frames(now, &ft, &mut framer) {
                    return Cut::NotStun;
                }
                let left = framer.buffered_len();
                due = if left == 0 {
                    None
                } else if left < before || due.is_none() {
                    // A message is under way: complete or not, the clock restarts.
                    Some(now + timeout)
                } else {
                    due
                };
            }
        };
        ctx.spawn(read_loop.into_actor(self).map(|cut, act, ctx| {
            let client = act.five_tuple.client;
            match cut {
                Cut::Gone => {}
                Cut::NotStun => {
                    act.metrics.tcp_closed_not_stun();
                    tracing::debug!(%client, "TCP client does not speak STUN; closed");
                }
                Cut::Timeout => {
                    act.metrics.tcp_closed_timeout();
                    tracing::debug!(%client, "TCP client did not complete a message in time; closed");
                }
            }
            ctx.stop()
        }));
        ctx.run_interval(IDLE_WITHOUT_ALLOCATION, |act, ctx| {
            if !act.shard.has_allocation(&act.five_tuple) {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // RFC 8656 §3.1: a TCP allocation ends with its connection.
        self.shard.tcp_closed(&self.five_tuple);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stun_header_may_open_a_connection() {
        let binding = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 9, 9];
        assert_eq!(starts_as_stun(&binding), Some(true));
        assert_eq!(starts_as_stun(&binding[..8]), Some(true));
        // Too few bytes to tell.
        assert_eq!(starts_as_stun(&[]), None);
        assert_eq!(starts_as_stun(&binding[..5]), None);
        // HTTP, at its first byte.
        assert_eq!(starts_as_stun(b"G"), Some(false));
        // ChannelData (0x40..=0x7F) cannot come first.
        assert_eq!(starts_as_stun(&[0x40, 0x00, 0x00, 0x04]), Some(false));
        // A TLS ClientHello: 0x16 is in STUN's two-top-bits-zero range but not RFC 7983's,
        // and has no magic cookie.
        assert_eq!(starts_as_stun(&[0x16, 0x03, 0x01]), Some(false));
        // A STUN-looking first byte without the magic cookie (RFC 3489 or junk).
        assert_eq!(
            starts_as_stun(&[0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4]),
            Some(false)
        );
    }
}
