//! Batched UDP I/O: a thin layer over `quinn-udp` (recvmmsg, GRO, GSO, packet info) on
//! sockets created with `socket2` and registered with the tokio reactor that actix-rt runs.
//!
//! - [`BatchSocket`] owns one socket. Bind it on the thread (Arbiter) that will use it.
//! - [`RecvBuffers`] holds the receive memory: a few slots filled by one `recvmmsg`.
//!   It is separate from the socket so one set can serve every socket of an Arbiter.
//! - [`SendQueue`] collects outgoing datagrams and coalesces runs to the same
//!   destination into GSO sends.
//!
//! Nothing here allocates per datagram. Errors that concern one datagram (an unreachable
//! peer, EPERM from a firewall, a full buffer) are returned or counted and never stop
//! the socket; only errors that make the socket itself unusable end a receive loop.
//!
//! Addresses are canonical: on a dual-stack IPv6 socket an IPv4 peer is reported as
//! `SocketAddr::V4`, and an IPv4 destination is mapped to `::ffff:a.b.c.d` when sending.

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

/// The most slots one receive call fills (the `recvmmsg` batch of `quinn-udp` on Linux).
pub const MAX_BATCH: usize = 32;

/// Slot size that holds any UDP datagram and any GRO train the kernel builds (64 KiB).
pub const MAX_SLOT_LEN: usize = 64 * 1024;

/// Most bytes one GSO send may carry (the IP length limit less headers, rounded down).
const MAX_GSO_BYTES: usize = 65_000;

/// The most sends (datagrams or GSO runs) one `sendmmsg` call carries.
pub const MMSG_BATCH: usize = 32;

/// Consecutive transient receive errors tolerated before a receive yields to the runtime.
const TRANSIENT_RECV_SPIN: u32 = 16;

/// How to create a [`BatchSocket`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpSocketConfig {
    /// Set SO_REUSEPORT so several sockets (one per Arbiter) share the address; the
    /// kernel spreads clients over them by 4-tuple hash.
    pub reuse_port: bool,
    /// SO_RCVBUF in bytes; `None` keeps the system default. The kernel may cap it
    /// (`net.core.rmem_max`).
    pub recv_buffer_size: Option<usize>,
    /// SO_SNDBUF in bytes; `None` keeps the system default (`net.core.wmem_max` caps it).
    pub send_buffer_size: Option<usize>,
    /// IPV6_V6ONLY for IPv6 sockets; `None` keeps the system default (dual-stack on Linux).
    /// Ignored for IPv4 sockets.
    pub ipv6_only: Option<bool>,
    /// Let the kernel coalesce datagrams of one flow (UDP GRO). Receive slots then must be
    /// [`MAX_SLOT_LEN`] bytes; without GRO they only need to hold one datagram.
    pub gro: bool,
    /// Let the IP layer fragment datagrams larger than the path MTU (DF bit clear).
    /// RFC 8656 §14: a relay sets DF only when the client asked with DONT-FRAGMENT.
    /// `quinn-udp` sets DF by default; this turns it back off.
    pub allow_fragmentation: bool,
}

impl Default for UdpSocketConfig {
    fn default() -> Self {
        UdpSocketConfig {
            reuse_port: false,
            recv_buffer_size: None,
            send_buffer_size: None,
            ipv6_only: None,
            gro: true,
            allow_fragmentation: true,
        }
    }
}

impl UdpSocketConfig {
    /// A listener shared by several Arbiters: SO_REUSEPORT and 4 MiB kernel buffers.
    pub fn listener() -> Self {
        UdpSocketConfig {
            reuse_port: true,
            recv_buffer_size: Some(4 << 20),
            send_buffer_size: Some(4 << 20),
            ..Self::default()
        }
    }
}

/// Why a socket could not be created or can no longer receive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// Sockets register with the tokio reactor of the calling thread; there was none.
    #[error(
        "no tokio runtime on this thread: create UDP sockets inside an actix-rt System or Arbiter"
    )]
    NoRuntime,
    /// `socket(2)` failed.
    #[error("cannot create a UDP socket for {addr}: {source}")]
    Create {
        /// The address that was to be bound.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A socket option could not be set.
    #[error("cannot set {option} on the UDP socket for {addr}: {source}")]
    SocketOption {
        /// The option, e.g. `SO_REUSEPORT`.
        option: &'static str,
        /// The address that was to be bound.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// `bind(2)` failed (address in use, not local, privileged port ...).
    #[error("cannot bind UDP to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Registering with the reactor or reading the socket's own address failed.
    #[error("cannot register the UDP socket {addr} with the runtime: {source}")]
    Register {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The socket cannot receive any more (closed descriptor, invalid state). Errors that
    /// concern one datagram are not reported here: they are counted and skipped.
    #[error("UDP socket {local} cannot receive: {source}")]
    Recv {
        /// The socket's local address.
        local: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Why a datagram was not sent. The socket stays usable in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The socket's send buffer is full; try again when it is writable.
    #[error("the socket's send buffer is full")]
    WouldBlock,
    /// An IPv6 destination on an IPv4 socket.
    #[error("cannot send to {destination} from an IPv4 socket")]
    AddressFamily {
        /// The destination.
        destination: SocketAddr,
    },
    /// Port 0 or an unspecified address, which the kernel refuses.
    #[error("{destination} is not a valid destination")]
    InvalidDestination {
        /// The destination.
        destination: SocketAddr,
    },
    /// ENETUNREACH, EHOSTUNREACH, or ECONNREFUSED left by an earlier ICMP port unreachable.
    #[error("{destination} is unreachable: {source}")]
    Unreachable {
        /// The destination.
        destination: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// EPERM or EACCES, typically from a firewall rule.
    #[error("sending to {destination} is not permitted: {source}")]
    NotPermitted {
        /// The destination.
        destination: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// EMSGSIZE: larger than a UDP datagram, or than the path MTU with DF set.
    #[error("datagram of {len} bytes to {destination} is too large")]
    TooLarge {
        /// The destination.
        destination: SocketAddr,
        /// The payload length.
        len: usize,
    },
    /// Any other error from `sendmsg(2)`.
    #[error("sending to {destination} failed: {source}")]
    Io {
        /// The destination.
        destination: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

impl SendError {
    fn from_io(destination: SocketAddr, len: usize, e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::WouldBlock {
            return SendError::WouldBlock;
        }
        match e.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ECONNREFUSED) => {
                SendError::Unreachable {
                    destination,
                    source: e,
                }
            }
            Some(libc::EPERM | libc::EACCES) => SendError::NotPermitted {
                destination,
                source: e,
            },
            Some(libc::EMSGSIZE) => SendError::TooLarge { destination, len },
            _ => SendError::Io {
                destination,
                source: e,
            },
        }
    }
}

/// Counters of one socket, as a plain copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams received (a GRO train counts each datagram in it).
    pub datagrams_received: u64,
    /// Datagrams handed to the kernel.
    pub datagrams_sent: u64,
    /// Datagrams not sent because of an error (including a full send buffer).
    pub send_errors: u64,
    /// Receive calls that failed with an error about one datagram and were skipped.
    pub recv_errors: u64,
    /// Datagrams dropped because they filled a whole receive slot (possibly truncated).
    pub truncated: u64,
}

#[derive(Debug, Default)]
struct Counters {
    datagrams_received: AtomicU64,
    datagrams_sent: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    truncated: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A UDP socket registered with the current thread's tokio reactor, read with `recvmmsg`
/// (and GRO) and written with `sendmsg` (and GSO) through `quinn-udp`.
#[derive(Debug)]
pub struct BatchSocket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    gro: bool,
    counters: Counters,
}

impl BatchSocket {
    /// Creates, configures and binds a non-blocking socket on `addr`, and registers it with
    /// the tokio reactor of the calling thread (call it inside the Arbiter that will use it).
    pub fn bind(addr: SocketAddr, config: &UdpSocketConfig) -> Result<Self, UdpError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(UdpError::NoRuntime);
        }
        Self::register(Self::park(addr, config)?)
    }

    /// Creates, configures and binds a socket without registering it anywhere, so that it
    /// can be handed to another Arbiter and [`register`](Self::register)ed there (a relay
    /// port reserved by one Arbiter and allocated by another).
    pub fn park(addr: SocketAddr, config: &UdpSocketConfig) -> Result<ParkedSocket, UdpError> {
        let option = |option: &'static str| {
            move |source| UdpError::SocketOption {
                option,
                addr,
                source,
            }
        };
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(|source| UdpError::Create { addr, source })?;
        if addr.is_ipv6() {
            if let Some(only) = config.ipv6_only {
                socket.set_only_v6(only).map_err(option("IPV6_V6ONLY"))?;
            }
        }
        if config.reuse_port {
            #[cfg(unix)]
            socket
                .set_reuse_port(true)
                .map_err(option("SO_REUSEPORT"))?;
        }
        if let Some(size) = config.recv_buffer_size {
            socket
                .set_recv_buffer_size(size)
                .map_err(option("SO_RCVBUF"))?;
        }
        if let Some(size) = config.send_buffer_size {
            socket
                .set_send_buffer_size(size)
                .map_err(option("SO_SNDBUF"))?;
        }
        socket.set_nonblocking(true).map_err(option("O_NONBLOCK"))?;
        socket
            .bind(&addr.into())
            .map_err(|source| UdpError::Bind { addr, source })?;

        Ok(ParkedSocket {
            socket: socket.into(),
            addr,
            config: config.clone(),
        })
    }

    /// Registers a parked socket with the calling thread's tokio reactor.
    pub fn register(parked: ParkedSocket) -> Result<Self, UdpError> {
        let ParkedSocket {
            socket: std_socket,
            addr,
            config,
        } = parked;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(UdpError::NoRuntime);
        }
        let option = |option: &'static str| {
            move |source| UdpError::SocketOption {
                option,
                addr,
                source,
            }
        };
        let state = UdpSocketState::new(UdpSockRef::from(&std_socket))
            .map_err(|source| UdpError::Register { addr, source })?;
        let mut gro = state.gro_segments() > 1;
        #[cfg(target_os = "linux")]
        {
            // quinn-udp turns on receive timestamps we never read; each costs a clock read.
            let _ = sockopt::set_int(&std_socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 0);
            // And the TOS byte (ECN) of every datagram, a cmsg we never read.
            let _ = sockopt::set_int(&std_socket, libc::IPPROTO_IP, libc::IP_RECVTOS, 0);
            if addr.is_ipv6() {
                let _ = sockopt::set_int(&std_socket, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 0);
            }
            // And packet info, which only a wildcard-bound socket needs: on a socket bound
            // to one address the destination is that address, and the kernel's cmsg per
            // datagram costs about 5% of a receive.
            if !addr.ip().is_unspecified() {
                let _ = sockopt::set_int(&std_socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 0);
                if addr.is_ipv6() {
                    let _ = sockopt::set_int(
                        &std_socket,
                        libc::IPPROTO_IPV6,
                        libc::IPV6_RECVPKTINFO,
                        0,
                    );
                }
            }
            if gro && !config.gro {
                sockopt::set_int(&std_socket, libc::SOL_UDP, libc::UDP_GRO, 0)
                    .map_err(option("UDP_GRO"))?;
                gro = false;
            }
        }
        let io = tokio::net::UdpSocket::from_std(std_socket)
            .map_err(|source| UdpError::Register { addr, source })?;
        let local = io
            .local_addr()
            .map_err(|source| UdpError::Register { addr, source })?;
        let socket = BatchSocket {
            io,
            state,
            local,
            gro,
            counters: Counters::default(),
        };
        socket
            .set_dont_fragment(!config.allow_fragmentation)
            .map_err(option("IP_MTU_DISCOVER"))?;
        Ok(socket)
    }

    /// The address the socket is bound to (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the kernel may hand one receive slot several datagrams (UDP GRO).
    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    /// The most datagrams one GSO send may carry; 1 where the kernel has no GSO.
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Receive buffers fit for this socket: [`MAX_BATCH`] slots of `max_datagram` bytes
    /// (rounded up past a full datagram), or of [`MAX_SLOT_LEN`] when GRO is on.
    pub fn recv_buffers(&self, max_datagram: usize) -> RecvBuffers {
        let slot_len = if self.gro {
            MAX_SLOT_LEN
        } else {
            max_datagram.saturating_add(1).min(MAX_SLOT_LEN)
        };
        RecvBuffers::new(MAX_BATCH, slot_len)
    }

    /// Sets or clears the DF bit on everything this socket sends from now on
    /// (RFC 8656 §14, DONT-FRAGMENT). A no-op where the OS has no such switch.
    pub fn set_dont_fragment(&self, dont_fragment: bool) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            // PROBE sets DF and ignores the cached path MTU, as quinn-udp does; DONT clears DF.
            let (v4, v6) = if dont_fragment {
                (libc::IP_PMTUDISC_PROBE, libc::IPV6_PMTUDISC_PROBE)
            } else {
                (libc::IP_PMTUDISC_DONT, libc::IPV6_PMTUDISC_DONT)
            };
            let v6_dontfrag = libc::c_int::from(dont_fragment);
            if self.local.is_ipv4() {
                sockopt::set_int(&self.io, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4)?;
            } else {
                // IPv4-mapped traffic on a dual-stack socket follows the IPv4 option.
                let _ = sockopt::set_int(&self.io, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4);
                sockopt::set_int(&self.io, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v6)?;
                sockopt::set_int(
                    &self.io,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_DONTFRAG,
                    v6_dontfrag,
                )?;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = dont_fragment;
        Ok(())
    }

    /// A copy of this socket's counters.
    pub fn stats(&self) -> UdpStats {
        let c = &self.counters;
        UdpStats {
            datagrams_received: c.datagrams_received.load(Ordering::Relaxed),
            datagrams_sent: c.datagrams_sent.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
            recv_errors: c.recv_errors.load(Ordering::Relaxed),
            truncated: c.truncated.load(Ordering::Relaxed),
        }
    }

    /// Waits for datagrams and fills `bufs` with one batch; returns how many datagrams it
    /// holds (GRO trains counted per datagram). Read them with [`RecvBuffers::datagrams`].
    ///
    /// Errors about one datagram (ECONNREFUSED from an earlier ICMP message, ENOBUFS ...)
    /// are counted in [`UdpStats::recv_errors`] and skipped; an `Err` means the socket is
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
            if let Err(source) = std::task::ready!(self.io.poll_recv_ready(cx)) {
                return Poll::Ready(Err(self.recv_error(source)));
            }
            match self.io.try_io(Interest::READABLE, || self.recv_into(bufs)) {
                Ok(n) => {
                    if bufs.filled < bufs.slots {
                        // The queue was drained: the next datagram raises a new edge
                        // (epoll is edge-triggered), so mark the socket not readable now
                        // rather than learn it from one more recvmmsg failing with EAGAIN.
                        let _ = self.io.try_io(Interest::READABLE, || -> io::Result<()> {
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
            UdpSockRef::from(&self.io),
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

    /// Sends one datagram, waiting while the send buffer is full.
    pub async fn send_to(&self, payload: &[u8], destination: SocketAddr) -> Result<(), SendError> {
        self.send(&Outgoing::new(destination, payload)).await
    }

    /// Sends one datagram or GSO run, waiting while the send buffer is full.
    pub async fn send(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        loop {
            match self.try_send(out) {
                Err(SendError::WouldBlock) => {
                    if let Err(source) = self.io.writable().await {
                        return Err(SendError::Io {
                            destination: out.destination,
                            source,
                        });
                    }
                }
                other => return other,
            }
        }
    }

    /// Sends one datagram or GSO run now, or fails with [`SendError::WouldBlock`].
    /// Errors are counted in [`UdpStats::send_errors`], except `WouldBlock`.
    pub fn try_send(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        let count = out.datagram_count() as u64;
        let result = self.send_now(out);
        match &result {
            Ok(()) => bump(&self.counters.datagrams_sent, count),
            Err(SendError::WouldBlock) => {}
            Err(_) => bump(&self.counters.send_errors, count),
        }
        result
    }

    fn send_now(&self, out: &Outgoing<'_>) -> Result<(), SendError> {
        let destination = self.os_destination(out.destination)?;
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: out.payload,
            segment_size: out.segment_size,
            src_ip: out.source.map(|ip| ip.to_canonical()),
        };
        let send = || self.state.try_send(UdpSockRef::from(&self.io), &transmit);
        match self.io.try_io(Interest::WRITABLE, send) {
            // tokio refuses without a syscall until its reactor has seen the socket writable,
            // which a socket bound within the current batch (a new relay) has not yet: ask
            // the kernel. A real EAGAIN leaves tokio's readiness clear, so `send` still waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => send(),
            result => result,
        }
        .map_err(|e| SendError::from_io(out.destination, out.payload.len(), e))
    }

    /// The destination as the socket's family needs it; rejects what the kernel would
    /// answer with EINVAL, which would also make quinn-udp turn GSO off for good.
    fn os_destination(&self, destination: SocketAddr) -> Result<SocketAddr, SendError> {
        if destination.port() == 0 || destination.ip().is_unspecified() {
            return Err(SendError::InvalidDestination { destination });
        }
        match (self.local, destination) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => Ok(SocketAddr::new(
                IpAddr::V6(v4.ip().to_ipv6_mapped()),
                v4.port(),
            )),
            (SocketAddr::V4(_), SocketAddr::V6(v6)) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), v6.port())),
                None => Err(SendError::AddressFamily { destination }),
            },
            _ => Ok(destination),
        }
    }

    /// Sends everything in `queue`, waiting while the send buffer is full, then clears it.
    /// A failed send costs only the datagrams of that send: the rest still go.
    pub async fn send_batch(&self, queue: &mut SendQueue) -> SendReport {
        let mut report = SendReport::default();
        for i in 0..queue.runs.len() {
            let run = queue.runs[i];
            for out in self.split_run(queue, run) {
                report.record(out.datagram_count(), self.send(&out).await);
            }
        }
        queue.clear();
        report
    }

    /// Sends everything in `queue` without waiting, then clears it. Datagrams that meet a
    /// full send buffer are dropped and counted in [`SendReport::would_block`], as a
    /// router would drop them; use [`send_batch`](Self::send_batch) to wait instead.
    ///
    /// On Linux the sends go out with `sendmmsg(2)`, up to [`MMSG_BATCH`] sends (each a
    /// datagram or a GSO run) per system call; elsewhere one `sendmsg` per send.
    pub fn try_send_batch(&self, queue: &mut SendQueue) -> SendReport {
        let mut report = SendReport::default();
        #[cfg(target_os = "linux")]
        {
            let none: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 0));
            let mut outs = [Outgoing::new(none, &[]); MMSG_BATCH];
            let mut n = 0;
            for run in &queue.runs {
                for out in self.split_run(queue, *run) {
                    outs[n] = out;
                    n += 1;
                    if n == MMSG_BATCH {
                        self.try_send_mmsg(&outs[..n], &mut report);
                        n = 0;
                    }
                }
            }
            if n > 0 {
                self.try_send_mmsg(&outs[..n], &mut report);
            }
        }
        #[cfg(not(target_os = "linux"))]
        for run in &queue.runs {
            for out in self.split_run(queue, *run) {
                let count = out.datagram_count();
                let result = self.try_send(&out);
                if matches!(result, Err(SendError::WouldBlock)) {
                    bump(&self.counters.send_errors, count as u64);
                }
                report.record(count, result);
            }
        }
        queue.clear();
        report
    }

    /// Sends up to [`MMSG_BATCH`] datagrams or GSO runs with as few `sendmmsg` calls as
    /// the kernel allows. A send that fails costs only its own datagrams; a full send
    /// buffer drops the rest.
    #[cfg(target_os = "linux")]
    fn try_send_mmsg(&self, outs: &[Outgoing<'_>], report: &mut SendReport) {
        debug_assert!(outs.len() <= MMSG_BATCH);
        let mut batch = mmsg::Batch::new();
        // Index in `outs` of each message in `batch`.
        let mut index = [0usize; MMSG_BATCH];
        for (i, out) in outs.iter().enumerate() {
            match self.os_destination(out.destination) {
                Ok(destination) => {
                    index[batch.len()] = i;
                    let source = out.source.map(|ip| ip.to_canonical());
                    batch.push(destination, source, out.payload, out.segment_size);
                }
                Err(e) => {
                    let count = out.datagram_count();
                    bump(&self.counters.send_errors, count as u64);
                    report.record(count, Err(e));
                }
            }
        }
        let mut at = 0;
        while at < batch.len() {
            // Straight to the kernel: tokio's readiness may not know yet that a new
            // socket is writable. On EAGAIN the readiness is cleared below, so an async
            // sender waiting for `writable()` still waits.
            let result = batch.send(&self.io, at);
            match result {
                Ok(sent) => {
                    let count: usize = index[at..at + sent]
                        .iter()
                        .map(|i| outs[*i].datagram_count())
                        .sum();
                    bump(&self.counters.datagrams_sent, count as u64);
                    report.sent += count;
                    at += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = self.io.try_io(Interest::WRITABLE, || -> io::Result<()> {
                        Err(io::ErrorKind::WouldBlock.into())
                    });
                    let count: usize = index[at..batch.len()]
                        .iter()
                        .map(|i| outs[*i].datagram_count())
                        .sum();
                    bump(&self.counters.send_errors, count as u64);
                    report.would_block += count;
                    return;
                }
                Err(e) => {
                    // The error is the first message's: it alone is lost.
                    let out = &outs[index[at]];
                    let count = out.datagram_count();
                    bump(&self.counters.send_errors, count as u64);
                    report.record(
                        count,
                        Err(SendError::from_io(out.destination, out.payload.len(), e)),
                    );
                    at += 1;
                }
            }
        }
    }

    /// Cuts a run into sends of at most `max_gso_segments` datagrams.
    fn split_run<'q>(
        &self,
        queue: &'q SendQueue,
        run: Run,
    ) -> impl Iterator<Item = Outgoing<'q>> + use<'q> {
        let max_segments = self.max_gso_segments().max(1);
        let bytes = &queue.buf[run.start..run.end];
        let chunk = if max_segments > 1 {
            run.segment_size * max_segments
        } else {
            run.segment_size
        };
        // An empty datagram is still one datagram to send.
        let empty = bytes.is_empty().then_some(bytes);
        bytes
            .chunks(chunk.max(1))
            .chain(empty)
            .map(move |payload| Outgoing {
                destination: run.destination,
                source: run.source,
                payload,
                segment_size: (payload.len() > run.segment_size).then_some(run.segment_size),
            })
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Receive errors that concern one datagram or a passing condition, not the socket.
fn is_transient_recv_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::ECONNRESET
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EMSGSIZE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EPERM
                | libc::EINTR
        )
    )
}

/// One datagram to send, or a GSO run of equal-size datagrams to one destination.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Where to send.
    pub destination: SocketAddr,
    /// The local IP to send from, for sockets bound to a wildcard address; `None` lets the
    /// kernel choose.
    pub source: Option<IpAddr>,
    /// The datagram, or the datagrams back to back when `segment_size` is set.
    pub payload: &'a [u8],
    /// With GSO: the size of each datagram in `payload` (the last may be shorter).
    pub segment_size: Option<usize>,
}

impl<'a> Outgoing<'a> {
    /// One datagram to `destination`, from the address the kernel chooses.
    pub fn new(destination: SocketAddr, payload: &'a [u8]) -> Self {
        Outgoing {
            destination,
            source: None,
            payload,
            segment_size: None,
        }
    }

    /// How many datagrams this send carries.
    pub fn datagram_count(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 => self.payload.len().div_ceil(size).max(1),
            _ => 1,
        }
    }
}

/// What a batch send did.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Datagrams lost to an error other than a full buffer.
    pub failed: usize,
    /// Datagrams dropped because the send buffer was full (only [`BatchSocket::try_send_batch`]).
    pub would_block: usize,
    /// The first error other than a full buffer, for logging.
    pub first_error: Option<SendError>,
}

impl SendReport {
    fn record(&mut self, count: usize, result: Result<(), SendError>) {
        match result {
            Ok(()) => self.sent += count,
            Err(SendError::WouldBlock) => self.would_block += count,
            Err(e) => {
                self.failed += count;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// A bound socket not yet registered with a reactor; see [`BatchSocket::park`].
#[derive(Debug)]
pub struct ParkedSocket {
    socket: std::net::UdpSocket,
    addr: SocketAddr,
    config: UdpSocketConfig,
}

impl ParkedSocket {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or(self.addr)
    }
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
    /// one byte longer than the largest datagram, or [`MAX_SLOT_LEN`] for GRO sockets.
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

#[derive(Debug, Clone, Copy)]
struct Run {
    destination: SocketAddr,
    source: Option<IpAddr>,
    start: usize,
    end: usize,
    segment_size: usize,
    /// A shorter datagram ended the run; GSO allows only the last one to be shorter.
    closed: bool,
}

/// Outgoing datagrams collected for one [`BatchSocket::send_batch`]. Consecutive datagrams
/// to the same destination from the same source, of equal size, become one GSO send.
/// The memory is kept between batches.
#[derive(Debug, Default)]
pub struct SendQueue {
    buf: Vec<u8>,
    runs: Vec<Run>,
    datagrams: usize,
    /// Never join datagrams into GSO runs: each one leaves as its own datagram.
    no_gso: bool,
}

impl SendQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue with room for `bytes` of payload in `datagrams` datagrams.
    pub fn with_capacity(bytes: usize, datagrams: usize) -> Self {
        SendQueue {
            buf: Vec::with_capacity(bytes),
            runs: Vec::with_capacity(datagrams),
            datagrams: 0,
            no_gso: false,
        }
    }

    /// Whether runs to one destination may become GSO sends (the default), or every
    /// datagram is sent on its own (still batched by `sendmmsg` on Linux). A load
    /// generator turns GSO off so a GRO-enabled receiver sees what real clients send.
    pub fn set_gso(&mut self, gso: bool) {
        self.no_gso = !gso;
    }

    /// Queues one datagram (copied), from the kernel's choice of source address.
    pub fn push(&mut self, destination: SocketAddr, payload: &[u8]) {
        self.push_from(destination, None, payload);
    }

    /// Queues one datagram (copied), sent from the local IP `source` if given.
    pub fn push_from(&mut self, destination: SocketAddr, source: Option<IpAddr>, payload: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        self.datagrams += 1;
        let len = payload.len();
        if let Some(run) = self.runs.last_mut() {
            let run_len = run.end - run.start;
            let joins = !self.no_gso
                && !run.closed
                && len > 0
                && run.destination == destination
                && run.source == source
                && len <= run.segment_size
                && run_len + len <= MAX_GSO_BYTES;
            if joins {
                run.end += len;
                run.closed = len < run.segment_size;
                return;
            }
        }
        self.runs.push(Run {
            destination,
            source,
            start,
            end: start + len,
            segment_size: len,
            closed: len == 0,
        });
    }

    /// The number of datagrams queued.
    pub fn len(&self) -> usize {
        self.datagrams
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.datagrams == 0
    }

    /// The number of sends the queue needs at most (before splitting by the GSO limit).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Drops everything queued, keeping the memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.runs.clear();
        self.datagrams = 0;
    }
}

/// `sendmmsg(2)` with GSO (UDP_SEGMENT) and source address (IP_PKTINFO) per message.
#[cfg(target_os = "linux")]
mod mmsg {
    use std::io;
    use std::mem::MaybeUninit;
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::AsRawFd;

    use super::MMSG_BATCH;

    /// Room for UDP_SEGMENT (u16) and IPV6_PKTINFO (20 bytes), each with its header.
    const CMSG_SPACE: usize = 64;

    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct Cmsg([u8; CMSG_SPACE]);

    /// The message headers of one call, on the stack; payloads are borrowed. Only the
    /// entries in use are ever written (a batch of one costs one entry, not 32).
    pub(super) struct Batch<'a> {
        hdrs: [MaybeUninit<libc::mmsghdr>; MMSG_BATCH],
        iovs: [MaybeUninit<libc::iovec>; MMSG_BATCH],
        addrs: [MaybeUninit<libc::sockaddr_in6>; MMSG_BATCH],
        cmsgs: [MaybeUninit<Cmsg>; MMSG_BATCH],
        len: usize,
        _payloads: std::marker::PhantomData<&'a [u8]>,
    }

    impl<'a> Batch<'a> {
        pub(super) fn new() -> Self {
            Batch {
                hdrs: [const { MaybeUninit::uninit() }; MMSG_BATCH],
                iovs: [const { MaybeUninit::uninit() }; MMSG_BATCH],
                addrs: [const { MaybeUninit::uninit() }; MMSG_BATCH],
                cmsgs: [const { MaybeUninit::uninit() }; MMSG_BATCH],
                len: 0,
                _payloads: std::marker::PhantomData,
            }
        }

        pub(super) fn len(&self) -> usize {
            self.len
        }

        /// Adds one message: `payload` to `destination` (already in the socket's family),
        /// from `source` if given, cut into `segment`-byte datagrams by GSO if given.
        pub(super) fn push(
            &mut self,
            destination: SocketAddr,
            source: Option<IpAddr>,
            payload: &'a [u8],
            segment: Option<usize>,
        ) {
            let i = self.len;
            assert!(i < MMSG_BATCH);
            self.len += 1;
            // SAFETY: sockaddr_in6, iovec and mmsghdr are plain C structs for which all
            // zeroes is a valid value.
            let addr = self.addrs[i].write(unsafe { std::mem::zeroed() });
            let addr_len = write_sockaddr(addr, destination);
            self.iovs[i].write(libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            });
            let mmsg: &mut libc::mmsghdr = self.hdrs[i].write(unsafe { std::mem::zeroed() });
            let hdr = &mut mmsg.msg_hdr;
            hdr.msg_namelen = addr_len;
            hdr.msg_iovlen = 1;
            if segment.is_none() && source.is_none() {
                return;
            }
            // Pointers are set again in `send`, after any move of the batch.
            let cmsgs = self.cmsgs[i].write(Cmsg([0; CMSG_SPACE]));
            hdr.msg_control = cmsgs.0.as_mut_ptr().cast();
            hdr.msg_controllen = CMSG_SPACE as _;
            let mut used = 0usize;
            // SAFETY: msg_control points to CMSG_SPACE aligned bytes owned by self; the
            // CMSG_* macros stay within msg_controllen, and each value written fits the
            // space CMSG_SPACE reserved for it.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
                if let Some(segment) = segment {
                    let c = &mut *cmsg;
                    c.cmsg_level = libc::SOL_UDP;
                    c.cmsg_type = libc::UDP_SEGMENT;
                    c.cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as _) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment as u16);
                    used += libc::CMSG_SPACE(std::mem::size_of::<u16>() as _) as usize;
                    cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
                }
                match source {
                    Some(IpAddr::V4(ip)) => {
                        let c = &mut *cmsg;
                        c.cmsg_level = libc::IPPROTO_IP;
                        c.cmsg_type = libc::IP_PKTINFO;
                        let size = std::mem::size_of::<libc::in_pktinfo>();
                        c.cmsg_len = libc::CMSG_LEN(size as _) as _;
                        let info = libc::in_pktinfo {
                            ipi_ifindex: 0,
                            ipi_spec_dst: libc::in_addr {
                                s_addr: u32::from_ne_bytes(ip.octets()),
                            },
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                        used += libc::CMSG_SPACE(size as _) as usize;
                    }
                    Some(IpAddr::V6(ip)) => {
                        let c = &mut *cmsg;
                        c.cmsg_level = libc::IPPROTO_IPV6;
                        c.cmsg_type = libc::IPV6_PKTINFO;
                        let size = std::mem::size_of::<libc::in6_pktinfo>();
                        c.cmsg_len = libc::CMSG_LEN(size as _) as _;
                        let info = libc::in6_pktinfo {
                            ipi6_addr: libc::in6_addr {
                                s6_addr: ip.octets(),
                            },
                            ipi6_ifindex: 0,
                        };
                        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                        used += libc::CMSG_SPACE(size as _) as usize;
                    }
                    None => {}
                }
            }
            hdr.msg_controllen = used as _;
        }

        /// One `sendmmsg` of the messages from `from` on; how many the kernel took.
        pub(super) fn send(&mut self, socket: &impl AsRawFd, from: usize) -> io::Result<usize> {
            let count = self.len - from;
            for i in from..self.len {
                // SAFETY: push initialised hdrs, addrs and iovs up to len, and cmsgs[i]
                // wherever msg_controllen is not zero.
                unsafe {
                    let hdr = &mut self.hdrs[i].assume_init_mut().msg_hdr;
                    hdr.msg_name = self.addrs[i].as_mut_ptr().cast();
                    hdr.msg_iov = self.iovs[i].as_mut_ptr();
                    hdr.msg_control = if hdr.msg_controllen == 0 {
                        std::ptr::null_mut()
                    } else {
                        self.cmsgs[i].assume_init_mut().0.as_mut_ptr().cast()
                    };
                }
            }
            loop {
                // SAFETY: hdrs[from..len] were filled by push and point into self and into
                // payloads that outlive 'a; the kernel reads at most `count` of them.
                let n = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        self.hdrs[from..].as_mut_ptr().cast::<libc::mmsghdr>(),
                        count as libc::c_uint,
                        0,
                    )
                };
                if n >= 0 {
                    return Ok(n as usize);
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }

    fn write_sockaddr(out: &mut libc::sockaddr_in6, addr: SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is smaller than sockaddr_in6 and has a looser alignment.
                let sin =
                    unsafe { &mut *(out as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                out.sin6_port = a.port().to_be();
                out.sin6_flowinfo = a.flowinfo();
                out.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                out.sin6_scope_id = a.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod sockopt {
    use std::io;
    use std::os::fd::AsRawFd;

    /// `setsockopt(2)` with an `int` value.
    pub(super) fn set_int(
        socket: &impl AsRawFd,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: the descriptor is open for the duration of the call (borrowed from a
        // live socket), and the option value points to a c_int whose size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    /// tokio learns a new socket is writable only when its reactor next runs; a send right
    /// after bind (a relay created and used within one batch) must not be refused for that.
    #[actix_rt::test]
    async fn a_new_socket_sends_before_the_reactor_has_run() {
        let config = UdpSocketConfig::default();
        let a = BatchSocket::bind(loopback(), &config).unwrap();
        let b = BatchSocket::bind(loopback(), &config).unwrap();
        a.try_send(&Outgoing::new(b.local_addr(), b"first"))
            .expect("the first datagram is sent");
        let mut bufs = b.recv_buffers(1500);
        let got = tokio::time::timeout(Duration::from_secs(10), b.recv_batch(&mut bufs))
            .await
            .expect("it arrives")
            .unwrap()
            .next()
            .map(|d| d.payload.to_vec());
        assert_eq!(got.as_deref(), Some(&b"first"[..]));
    }

    #[test]
    fn bind_outside_a_runtime_is_an_error() {
        let err = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap_err();
        assert!(matches!(err, UdpError::NoRuntime), "{err}");
    }

    /// Sends 1000 numbered datagrams from one socket to another on loopback, at most 100 in
    /// flight, and checks each arrives once. Returns (receive calls, largest batch).
    async fn thousand_datagrams(gso: bool, gro: bool) -> (u32, u32) {
        let config = UdpSocketConfig {
            gro,
            ..UdpSocketConfig::listener()
        };
        let a = BatchSocket::bind(loopback(), &config).unwrap();
        let b = BatchSocket::bind(loopback(), &config).unwrap();
        let mut bufs = b.recv_buffers(1500);
        let mut queue = SendQueue::with_capacity(64 * 1024, 64);

        const TOTAL: u32 = 1000;
        let mut seen = vec![false; TOTAL as usize];
        let (mut received, mut sent, mut receives, mut largest_batch) = (0u32, 0u32, 0, 0);
        while received < TOTAL {
            // Keep at most 100 in flight so the loopback receive buffer never overflows.
            while sent < TOTAL && sent - received < 100 {
                let mut payload = [0u8; 100];
                payload[..4].copy_from_slice(&sent.to_be_bytes());
                if gso {
                    queue.push(b.local_addr(), &payload);
                } else {
                    a.send_to(&payload, b.local_addr()).await.unwrap();
                }
                sent += 1;
                if queue.len() == 32 {
                    let report = a.send_batch(&mut queue).await;
                    assert_eq!(report.failed, 0, "{:?}", report.first_error);
                }
            }
            let report = a.send_batch(&mut queue).await;
            assert_eq!(report.failed, 0, "{:?}", report.first_error);

            let batch = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
                .await
                .expect("datagrams within 5 s")
                .unwrap();
            let mut n = 0;
            for d in batch {
                assert_eq!(d.source, a.local_addr());
                assert_eq!(d.destination, Some(b.local_addr()));
                assert_eq!(d.payload.len(), 100);
                let seq = u32::from_be_bytes(d.payload[..4].try_into().unwrap());
                assert!(!seen[seq as usize], "datagram {seq} twice");
                seen[seq as usize] = true;
                n += 1;
            }
            received += n;
            receives += 1;
            largest_batch = largest_batch.max(n);
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(a.stats().datagrams_sent, u64::from(TOTAL));
        assert_eq!(a.stats().send_errors, 0);
        assert_eq!(b.stats().datagrams_received, u64::from(TOTAL));
        (receives, largest_batch)
    }

    #[actix_rt::test]
    async fn thousand_datagrams_arrive_in_recvmmsg_batches() {
        let (receives, largest) = thousand_datagrams(false, false).await;
        assert!(receives < 1000, "{receives} receives for 1000 datagrams");
        assert!(largest > 1);
    }

    #[actix_rt::test]
    async fn thousand_datagrams_arrive_with_gso_and_gro() {
        let (receives, largest) = thousand_datagrams(true, true).await;
        assert!(receives < 1000, "{receives} receives for 1000 datagrams");
        assert!(largest > 1);
    }

    #[actix_rt::test]
    async fn gso_run_arrives_as_separate_datagrams() {
        let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let mut queue = SendQueue::new();
        for i in 0..10u8 {
            queue.push(b.local_addr(), &[i; 200]);
        }
        queue.push(b.local_addr(), &[10; 50]);
        assert_eq!(queue.len(), 11);
        assert_eq!(queue.runs(), 1, "equal sizes then one shorter form one run");
        let report = a.send_batch(&mut queue).await;
        assert_eq!(report.sent, 11);
        assert!(queue.is_empty());

        let mut bufs = b.recv_buffers(1500);
        let mut got = Vec::new();
        while got.len() < 11 {
            let batch = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
                .await
                .unwrap()
                .unwrap();
            got.extend(batch.map(|d| (d.payload[0], d.payload.len())));
        }
        let mut want: Vec<_> = (0..10u8).map(|i| (i, 200)).collect();
        want.push((10, 50));
        assert_eq!(got, want);
    }

    /// Receives until `n` datagrams came or 5 s passed; (first byte, length, source).
    async fn receive_n(socket: &BatchSocket, n: usize) -> Vec<(u8, usize, SocketAddr)> {
        let mut bufs = socket.recv_buffers(1500);
        let mut got = Vec::new();
        while got.len() < n {
            let batch = tokio::time::timeout(Duration::from_secs(5), socket.recv_batch(&mut bufs))
                .await
                .expect("datagrams within 5 s")
                .unwrap();
            got.extend(batch.map(|d| (d.payload[0], d.payload.len(), d.source)));
        }
        got
    }

    #[actix_rt::test]
    async fn try_send_batch_reaches_many_destinations_and_skips_bad_ones() {
        let a = BatchSocket::bind(loopback(), &UdpSocketConfig::listener()).unwrap();
        let rx: Vec<BatchSocket> = (0..3)
            .map(|_| BatchSocket::bind(loopback(), &UdpSocketConfig::listener()).unwrap())
            .collect();
        let mut queue = SendQueue::new();
        // 70 datagrams, more than one sendmmsg carries, to three sockets in turn, with
        // a destination the kernel refuses in the middle.
        for i in 0..70u8 {
            if i == 40 {
                queue.push("127.0.0.1:0".parse().unwrap(), &[0xEE; 10]);
            }
            queue.push(rx[usize::from(i) % 3].local_addr(), &[i; 100]);
        }
        assert_eq!(queue.runs(), 71);
        let report = a.try_send_batch(&mut queue);
        assert_eq!((report.sent, report.failed, report.would_block), (70, 1, 0));
        assert!(matches!(
            report.first_error,
            Some(SendError::InvalidDestination { .. })
        ));
        assert!(queue.is_empty());
        for (r, socket) in rx.iter().enumerate() {
            let want = (0..70u8).filter(|i| usize::from(*i) % 3 == r).count();
            let got = receive_n(socket, want).await;
            let firsts: Vec<u8> = got.iter().map(|g| g.0).collect();
            let expected: Vec<u8> = (0..70u8).filter(|i| usize::from(*i) % 3 == r).collect();
            assert_eq!(firsts, expected, "in order, each once");
            assert!(got.iter().all(|g| g.1 == 100 && g.2 == a.local_addr()));
        }
        assert_eq!(a.stats().datagrams_sent, 70);
        assert_eq!(a.stats().send_errors, 1);
    }

    #[actix_rt::test]
    async fn try_send_batch_sends_gso_runs_and_sets_the_source() {
        // A wildcard-bound sender answering from a chosen local IP, as a listener does.
        let a =
            BatchSocket::bind("0.0.0.0:0".parse().unwrap(), &UdpSocketConfig::listener()).unwrap();
        let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let c = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let from = Some("127.0.0.1".parse().unwrap());
        let mut queue = SendQueue::new();
        for i in 0..10u8 {
            queue.push_from(b.local_addr(), from, &[i; 200]);
        }
        queue.push_from(c.local_addr(), from, &[99; 20]);
        queue.push_from(b.local_addr(), from, &[10; 50]);
        assert_eq!(queue.runs(), 3);
        let report = a.try_send_batch(&mut queue);
        assert_eq!((report.sent, report.failed), (12, 0));
        let expect_src = SocketAddr::new("127.0.0.1".parse().unwrap(), a.local_addr().port());
        let got = receive_n(&b, 11).await;
        let mut want: Vec<_> = (0..10u8).map(|i| (i, 200, expect_src)).collect();
        want.push((10, 50, expect_src));
        assert_eq!(got, want);
        assert_eq!(receive_n(&c, 1).await, vec![(99, 20, expect_src)]);
    }

    #[actix_rt::test]
    async fn the_destination_is_reported_on_wildcard_and_specific_sockets() {
        let wild =
            BatchSocket::bind("0.0.0.0:0".parse().unwrap(), &UdpSocketConfig::default()).unwrap();
        let specific = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let sender = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let to_wild = SocketAddr::new("127.0.0.1".parse().unwrap(), wild.local_addr().port());
        sender.send_to(b"w", to_wild).await.unwrap();
        sender.send_to(b"s", specific.local_addr()).await.unwrap();
        for (socket, want) in [(&wild, to_wild), (&specific, specific.local_addr())] {
            let mut bufs = socket.recv_buffers(1500);
            let d = tokio::time::timeout(Duration::from_secs(5), socket.recv_batch(&mut bufs))
                .await
                .unwrap()
                .unwrap()
                .next()
                .unwrap();
            assert_eq!(d.destination, Some(want));
        }
    }

    #[test]
    fn a_queue_without_gso_keeps_every_datagram_apart() {
        let p: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let mut queue = SendQueue::new();
        queue.set_gso(false);
        for _ in 0..5 {
            queue.push(p, &[0; 100]);
        }
        assert_eq!((queue.len(), queue.runs()), (5, 5));
    }

    #[actix_rt::test]
    async fn empty_datagrams_are_sent_and_skipped_on_receive() {
        let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let mut queue = SendQueue::new();
        queue.push(b.local_addr(), b"");
        queue.push(b.local_addr(), b"after");
        let report = a.send_batch(&mut queue).await;
        assert_eq!((report.sent, report.failed), (2, 0));
        let mut bufs = b.recv_buffers(1500);
        let mut got = Vec::new();
        while got.is_empty() {
            let batch = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
                .await
                .unwrap()
                .unwrap();
            got.extend(batch.map(|d| d.payload.to_vec()));
        }
        assert_eq!(got, vec![b"after".to_vec()]);
    }

    #[test]
    fn send_queue_runs_follow_gso_rules() {
        let p: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let q: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let mut queue = SendQueue::new();
        queue.push(p, &[0; 100]);
        queue.push(p, &[0; 100]);
        queue.push(q, &[0; 100]); // other destination
        queue.push(q, &[0; 120]); // larger than the segment
        queue.push(q, &[0; 60]); // shorter: joins and closes
        queue.push(q, &[0; 60]); // closed run: new one
        queue.push_from(q, Some("127.0.0.2".parse().unwrap()), &[0; 60]); // other source
        assert_eq!(queue.len(), 7);
        assert_eq!(queue.runs(), 5);
        queue.clear();
        assert!(queue.is_empty());
        assert_eq!(queue.runs(), 0);
    }

    #[actix_rt::test]
    async fn dual_stack_reports_ipv4_peers_as_ipv4() {
        let v6 = match BatchSocket::bind(
            "[::ffff:127.0.0.1]:0".parse().unwrap(),
            &UdpSocketConfig {
                ipv6_only: Some(false),
                ..UdpSocketConfig::default()
            },
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("no IPv6 here, skipping: {e}");
                return;
            }
        };
        let v4 = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let to_v6: SocketAddr =
            SocketAddr::new("127.0.0.1".parse().unwrap(), v6.local_addr().port());
        v4.send_to(b"hello", to_v6).await.unwrap();
        let mut bufs = v6.recv_buffers(1500);
        let d = tokio::time::timeout(Duration::from_secs(5), v6.recv_batch(&mut bufs))
            .await
            .unwrap()
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(d.source, v4.local_addr());
        assert_eq!(d.destination, Some(to_v6));
        // Answer an IPv4 peer from the IPv6 socket with a plain IPv4 address.
        v6.send_to(b"back", d.source).await.unwrap();
        let mut bufs4 = v4.recv_buffers(1500);
        let back = tokio::time::timeout(Duration::from_secs(5), v4.recv_batch(&mut bufs4))
            .await
            .unwrap()
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(back.payload, b"back");
    }

    #[actix_rt::test]
    async fn bad_destinations_are_errors_and_the_socket_keeps_working() {
        let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let port0: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(matches!(
            a.send_to(b"x", port0).await,
            Err(SendError::InvalidDestination { .. })
        ));
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert!(matches!(
            a.send_to(b"x", v6).await,
            Err(SendError::AddressFamily { .. })
        ));
        let too_big = vec![0u8; 70_000];
        assert!(matches!(
            a.send_to(&too_big, b.local_addr()).await,
            Err(SendError::TooLarge { len: 70_000, .. })
        ));
        assert_eq!(a.stats().send_errors, 3);
        assert!(a.max_gso_segments() >= 1);
        a.send_to(b"still here", b.local_addr()).await.unwrap();
        let mut bufs = b.recv_buffers(1500);
        let d = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs))
            .await
            .unwrap()
            .unwrap()
            .next()
            .unwrap();
        assert_eq!(d.payload, b"still here");
    }

    #[actix_rt::test]
    async fn icmp_port_unreachable_does_not_stop_the_socket() {
        let a = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        let b = BatchSocket::bind(loopback(), &UdpSocketConfig::default()).unwrap();
        // A port nobody listens on: the kernel answers with ICMP port unreachable.
        let closed = {
            let s = std::net::UdpSocket::bind(loopback()).unwrap();
            s.local_addr().unwrap()
        };
        // Make the kernel report ICMP errors on this unconnected socket, the worst case.
        #[cfg(target_os = "linux")]
        sockopt::set_int(&a.io, libc::IPPROTO_IP, libc::IP_RECVERR, 1).unwrap();

        let mut bufs_a = a.recv_buffers(1500);
        let mut bufs_b = b.recv_buffers(1500);
        for round in 0..5u8 {
            let _ = a.send_to(b"to nobody", closed).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            // Whatever the kernel left (ECONNREFUSED on send or receive), both directions
            // keep working.
            let mut sent = false;
            for _ in 0..3 {
                if a.send_to(&[round], b.local_addr()).await.is_ok() {
                    sent = true;
                    break;
                }
            }
            assert!(sent, "round {round}: send kept failing");
            let d = tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut bufs_b))
                .await
                .unwrap()
                .unwrap()
                .next()
                .unwrap();
            assert_eq!(d.payload, [round]);
            b.send_to(&[round], a.local_addr()).await.unwrap();
            let d = tokio::time::timeout(Duration::from_secs(5), a.recv_batch(&mut bufs_a))
                .await
                .unwrap()
                .unwrap()
                .next()
                .unwrap();
            assert_eq!(d.payload, [round]);
        }
        // The kernel did report the ICMP errors (as failed sends or skipped receives).
        #[cfg(target_os = "linux")]
        assert!(
            a.stats().send_errors + a.stats().recv_errors > 0,
            "{:?}",
            a.stats()
        );
    }

    #[test]
    fn recv_buffers_are_clamped() {
        let b = RecvBuffers::new(1000, 0);
        assert!(b.slots() <= MAX_BATCH);
        assert_eq!(b.slot_len(), 1);
        assert_eq!(b.datagrams().count(), 0);
    }
}
