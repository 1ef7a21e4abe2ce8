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
//!
//! The module holds no `unsafe`: system calls go through `quinn-udp` (`recvmmsg`, `sendmsg`
//! with GSO and packet info), `nix` (`sendmmsg` of single datagrams to many destinations),
//! `socket2`, `nix` and `rustix` (socket options).
//!
//! - `socket`: [`BatchSocket`] creation, options and counters; [`ParkedSocket`];
//! - `recv`: receiving into [`RecvBuffers`] and reading [`Datagrams`];
//! - `send`: [`Outgoing`], [`SendQueue`] and the sends, one by one or batched;
//! - `mmsg`: `sendmmsg` for a batch's single datagrams;
//! - `sockopt`: the socket options `quinn-udp` sets that floe turns off or toggles.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

mod mmsg;
mod recv;
mod send;
mod socket;
mod sockopt;
#[cfg(test)]
mod tests;

pub use recv::{Datagram, Datagrams, RecvBuffers};
pub use send::{Outgoing, SendQueue, SendReport};
pub use socket::{BatchSocket, ParkedSocket};

/// The most slots one receive call fills (the `recvmmsg` batch of `quinn-udp` on Linux).
pub const MAX_BATCH: usize = 32;

/// Slot size that holds any UDP datagram and any GRO train the kernel builds (64 KiB).
pub const MAX_SLOT_LEN: usize = 64 * 1024;

/// Most bytes one GSO send may carry (the IP length limit less headers, rounded down).
const MAX_GSO_BYTES: usize = 65_000;

/// [`BatchSocket::try_send_batch`] sends in groups of this many sends (datagrams or GSO
/// runs): a full send buffer costs the rest of its group, and the next group is tried.
const SEND_GROUP: usize = 32;

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
    /// Register for writability with the reactor as well as readability. The waiting
    /// sends ([`BatchSocket::send`], [`BatchSocket::send_batch`]) need it; a socket that
    /// only sends with `try_send` and `try_send_batch` does without, and then costs no
    /// epoll event each time a datagram it sent leaves its send buffer (with edge-triggered
    /// epoll that is once per datagram sent). Without it, a waiting send that meets a full
    /// buffer fails with [`SendError::WouldBlock`] instead of waiting.
    pub writable_wakeups: bool,
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
            writable_wakeups: true,
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
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ENETUNREACH | Errno::EHOSTUNREACH | Errno::ECONNREFUSED) => {
                SendError::Unreachable {
                    destination,
                    source: e,
                }
            }
            Some(Errno::EPERM | Errno::EACCES) => SendError::NotPermitted {
                destination,
                source: e,
            },
            Some(Errno::EMSGSIZE) => SendError::TooLarge { destination, len },
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

/// The canonical form of an address: IPv4-mapped IPv6 becomes IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
