//! TCP listeners for STUN/TURN over TCP, sharing their port across Arbiters with
//! SO_REUSEPORT like the UDP listeners.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues per listener.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// How to create a TCP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpListenerConfig {
    /// Set SO_REUSEPORT so several listeners (one per Arbiter) share the address.
    pub reuse_port: bool,
    /// IPV6_V6ONLY for IPv6 addresses; `None` keeps the system default.
    pub ipv6_only: Option<bool>,
    /// The accept queue length.
    pub backlog: i32,
}

impl Default for TcpListenerConfig {
    fn default() -> Self {
        TcpListenerConfig {
            reuse_port: true,
            ipv6_only: None,
            backlog: DEFAULT_BACKLOG,
        }
    }
}

/// Why a TCP listener could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpError {
    /// Listeners register with the tokio reactor of the calling thread; there was none.
    #[error("no tokio runtime on this thread: create TCP listeners inside an actix-rt System or Arbiter")]
    NoRuntime,
    /// Creating, configuring, binding or registering the socket failed.
    #[error("cannot listen on TCP {addr} ({step}): {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What failed: `socket`, `SO_REUSEPORT`, `bind`, `listen` ...
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Creates a non-blocking listener on `addr` registered with the current thread's reactor.
pub fn bind_tcp_listener(
    addr: SocketAddr,
    config: &TcpListenerConfig,
) -> Result<tokio::net::TcpListener, TcpError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TcpError::NoRuntime);
    }
    let err = |step| move |source| TcpError::Listen { addr, step, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(err("socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(err("SO_REUSEADDR"))?;
    #[cfg(unix)]
    if config.reuse_port {
        socket.set_reuse_port(true).map_err(err("SO_REUSEPORT"))?;
    }
    if addr.is_ipv6() {
        if let Some(only) = config.ipv6_only {
            socket.set_only_v6(only).map_err(err("IPV6_V6ONLY"))?;
        }
    }
    socket.set_nonblocking(true).map_err(err("O_NONBLOCK"))?;
    socket.bind(&addr.into()).map_err(err("bind"))?;
    socket.listen(config.backlog).map_err(err("listen"))?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(err("register"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[actix_rt::test]
    async fn two_listeners_share_a_port_and_accept() {
        let config = TcpListenerConfig::default();
        let a = bind_tcp_listener("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_tcp_listener(addr, &config).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let (mut conn, _) = tokio::select! {
            r = a.accept() => r.unwrap(),
            r = b.accept() => r.unwrap(),
        };
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[actix_rt::test]
    async fn without_reuse_port_the_second_bind_fails() {
        let config = TcpListenerConfig {
            reuse_port: false,
            ..TcpListenerConfig::default()
        };
        let a = bind_tcp_listener("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        let err = bind_tcp_listener(a.local_addr().unwrap(), &config).unwrap_err();
        assert!(
            matches!(err, TcpError::Listen { step: "bind", .. }),
            "{err}"
        );
    }
}
