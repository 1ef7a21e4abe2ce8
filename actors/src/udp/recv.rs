//! Receiving: one `recvmmsg` (through `quinn-udp`) fills [`RecvBuffers`], and [`Datagrams`]
//! reads them out, GRO trains split into single datagrams.

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use nix::errno::Errno;
use quinn_udp::{RecvMeta, UdpSockRef};
use tokio::io::Interest;

use super::socket::BatchSocket;
use super::{bump, canonical, UdpError, MAX_BATCH, TRANSIENT_RECV_SPIN};

impl BatchSocket {
    /// Waits for datagrams and fills `bufs` with one batch; returns how many datagrams it
    /// holds (GRO trains counted per datagram). Read them with [`RecvBuffers::datagrams`].
    ///
    /// Errors about one datagram (ECONNREFUSED from an earlier ICMP message, ENOBUFS ...)
    /// are counted in [`UdpStats::recv_errors`](super::UdpStats::recv_errors) and skipped; an `Err` means the socket is
    /// unusable.
    pub async fn recv_batch<'b>(
        &self,
        bufs: &'b mut RecvBuffers,
    ) -> Result<Datagrams<'b>, UdpError> {
        poll_fn(|cx| self.poll_recv_batch(cx, bufs)).await?;
        Ok(bufs.datagrams())
    }

    /// The polling form of [`recv_batch`](Self::recv_batch), for hand-written futures and
    /// streams. On `Ready(Ok(n))`, `bufs` holds `n` datagrams.
    pub fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut RecvBuffers,
    ) -> Poll<Result<usize, UdpError>> {
        let mut transient = 0;
        loop {
            if let Err(source) = std::task::ready!(self.io.poll_read_ready(cx)) {
                return Poll::Ready(Err(self.recv_error(source)));
            }
            match self.io.try_io(Interest::READABLE, |_| self.recv_into(bufs)) {
                Ok(n) => {
                    if bufs.filled < bufs.slots {
                        // The queue was drained: the next datagram raises a new edge
                        // (epoll is edge-triggered), so mark the socket not readable now
                        // rather than learn it from one more recvmmsg failing with EAGAIN.
                        let _ = self.io.try_io(Interest::READABLE, |_| -> io::Result<()> {
                            Err(io::ErrorKind::WouldBlock.into())
                        });
                    }
                    return Poll::Ready(Ok(n));
                }
                // try_io cleared the readiness; polling again registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if is_transient_recv_error(&e) => {
                    bump(&self.counters.recv_errors, 1);
                    tracing::trace!(local = %self.local, error = %e, "transient UDP receive error");
                    transient += 1;
                    if transient >= TRANSIENT_RECV_SPIN {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Err(source) => return Poll::Ready(Err(self.recv_error(source))),
            }
        }
    }

    fn recv_error(&self, source: io::Error) -> UdpError {
        UdpError::Recv {
            local: self.local,
            source,
        }
    }

    /// One non-blocking `recvmmsg` into `bufs`.
    fn recv_into(&self, bufs: &mut RecvBuffers) -> io::Result<usize> {
        bufs.filled = 0;
        bufs.local_port = self.local.port();
        bufs.local_ip = (!self.local.ip().is_unspecified()).then(|| self.local.ip().to_canonical());
        let slots = bufs.slots;
        let slot_len = bufs.slot_len;
        let mut chunks = bufs.storage.chunks_mut(slot_len);
        let mut slices: [IoSliceMut<'_>; MAX_BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let n = self.state.recv(
            UdpSockRef::from(self.io.get_ref()),
            &mut slices[..slots],
            &mut bufs.meta[..slots],
        )?;
        let mut datagrams = 0;
        for meta in &mut bufs.meta[..n] {
            meta.addr = canonical(meta.addr);
            meta.dst_ip = meta.dst_ip.map(|ip| ip.to_canonical());
            if meta.len >= slot_len {
                // The datagram may have been cut to fit: drop it rather than misparse it.
                bump(&self.counters.truncated, 1);
                meta.len = 0;
            }
            if meta.len > 0 {
                let stride = meta.stride.max(1);
                datagrams += meta.len.div_ceil(stride);
            }
        }
        bufs.filled = n;
        bump(&self.counters.datagrams_received, datagrams as u64);
        Ok(datagrams)
    }
}

/// Receive errors that concern one datagram or a passing condition, not the socket.
fn is_transient_recv_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(
            Errno::ECONNREFUSED
                | Errno::ECONNRESET
                | Errno::EHOSTUNREACH
                | Errno::ENETUNREACH
                | Errno::EMSGSIZE
                | Errno::ENOBUFS
                | Errno::ENOMEM
                | Errno::EPERM
                | Errno::EINTR
        )
    )
}

/// Reusable receive memory: up to [`MAX_BATCH`] slots, each filled by one datagram or,
/// with GRO, a train of equal-size datagrams from one source.
#[derive(Debug)]
pub struct RecvBuffers {
    storage: Box<[u8]>,
    meta: Box<[RecvMeta]>,
    slots: usize,
    slot_len: usize,
    filled: usize,
    local_port: u16,
    /// The socket's own IP when it is bound to one (no packet info is asked for then).
    local_ip: Option<IpAddr>,
}

impl RecvBuffers {
    /// `slots` slots (at most [`MAX_BATCH`], at least 1) of `slot_len` bytes. A datagram
    /// that fills a slot completely may have been truncated and is dropped, so make slots
    /// one byte longer than the largest datagram, or [`MAX_SLOT_LEN`](super::MAX_SLOT_LEN) for GRO sockets.
    pub fn new(slots: usize, slot_len: usize) -> Self {
        let slots = slots.clamp(1, MAX_BATCH.min(quinn_udp::BATCH_SIZE.max(1)));
        let slot_len = slot_len.max(1);
        RecvBuffers {
            storage: vec![0; slots * slot_len].into_boxed_slice(),
            meta: vec![RecvMeta::default(); slots].into_boxed_slice(),
            slots,
            slot_len,
            filled: 0,
            local_port: 0,
            local_ip: None,
        }
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The size of each slot in bytes.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The datagrams of the last receive, GRO trains split into single datagrams.
    pub fn datagrams(&self) -> Datagrams<'_> {
        Datagrams {
            bufs: self,
            slot: 0,
            offset: 0,
        }
    }
}

/// A received datagram, borrowed from [`RecvBuffers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Who sent it (canonical: IPv4 peers as IPv4 even on a dual-stack socket).
    pub source: SocketAddr,
    /// The local address it was sent to, where the OS reports it (IP_PKTINFO); useful
    /// on a wildcard-bound socket to answer from the same address.
    pub destination: Option<SocketAddr>,
    /// The payload.
    pub payload: &'a [u8],
}

/// Iterator over the datagrams of one receive. Zero-length datagrams are skipped.
#[derive(Debug)]
pub struct Datagrams<'a> {
    bufs: &'a RecvBuffers,
    slot: usize,
    offset: usize,
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = Datagram<'a>;

    fn next(&mut self) -> Option<Datagram<'a>> {
        let bufs = self.bufs;
        while self.slot < bufs.filled {
            let meta = &bufs.meta[self.slot];
            if self.offset >= meta.len {
                self.slot += 1;
                self.offset = 0;
                continue;
            }
            let base = self.slot * bufs.slot_len;
            let stride = meta.stride.max(1);
            let end = (self.offset + stride).min(meta.len);
            let payload = &bufs.storage[base + self.offset..base + end];
            self.offset = end;
            return Some(Datagram {
                source: meta.addr,
                destination: meta
                    .dst_ip
                    .or(bufs.local_ip)
                    .map(|ip| SocketAddr::new(ip, bufs.local_port)),
                payload,
            });
        }
        None
    }
}
