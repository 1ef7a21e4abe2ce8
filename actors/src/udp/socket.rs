//! [`BatchSocket`]: creating, configuring and registering a socket, and its counters.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use quinn_udp::{UdpSockRef, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::recv::RecvBuffers;
use super::{sockopt, Counters, UdpError, UdpSocketConfig, UdpStats, MAX_BATCH, MAX_SLOT_LEN};

/// A UDP socket registered with the current thread's tokio reactor, read with `recvmmsg`
/// (and GRO) and written with `sendmsg` (and GSO) through `quinn-udp`.
#[derive(Debug)]
pub struct BatchSocket {
    pub(super) io: AsyncFd<std::net::UdpSocket>,
    pub(super) state: UdpSocketState,
    /// Registered for writability too (see [`UdpSocketConfig::writable_wakeups`]).
    pub(super) writable_wakeups: bool,
    pub(super) local: SocketAddr,
    gro: bool,
    pub(super) counters: Counters,
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
        // Packet info is needed only on a wildcard-bound socket: on a socket bound to one
        // address the destination is that address.
        sockopt::quiet_receive_cmsgs(&std_socket, addr.is_ipv6(), !addr.ip().is_unspecified());
        let mut gro = state.gro_segments() > 1;
        if gro && !config.gro {
            sockopt::set_gro(&std_socket, false).map_err(option("UDP_GRO"))?;
            gro = false;
        }
        let interest = match config.writable_wakeups {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        // Deprecated because an arbitrary `AsRawFd` may change its descriptor under the
        // registration; a std `UdpSocket` owns one descriptor for its whole life and
        // closes it only when dropped with the `AsyncFd`, which is the contract that the
        // `unsafe` replacement (`register_with_interest`) asks its caller to uphold.
        #[allow(deprecated)]
        let io = AsyncFd::with_interest(std_socket, interest)
            .map_err(|source| UdpError::Register { addr, source })?;
        let local = io
            .get_ref()
            .local_addr()
            .map_err(|source| UdpError::Register { addr, source })?;
        let socket = BatchSocket {
            io,
            state,
            writable_wakeups: config.writable_wakeups,
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
        sockopt::set_dont_fragment(self.io.get_ref(), self.local.is_ipv4(), dont_fragment)
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
