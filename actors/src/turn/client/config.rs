//! The configuration of a [`TurnClient`](super::TurnClient): the core session's, plus the
//! socket's (local address, connect timeout, TLS).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use floe::transmit::Transport;
use floe::turn::client::ClientConfig;

/// Whom to trust when the transport is TLS.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The operating system's trust store (read once per connection).
    #[default]
    Native,
    /// These CA certificates only (PEM, one or more), e.g. a test CA or a private PKI.
    Pem(Vec<u8>),
    /// Accept any certificate: the server is **not** authenticated. For tests against
    /// self-signed servers only; never in production.
    InsecureAcceptAnyCertificate,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsRoots::Native => f.write_str("Native"),
            TlsRoots::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            TlsRoots::InsecureAcceptAnyCertificate => f.write_str("InsecureAcceptAnyCertificate"),
        }
    }
}

/// TLS settings of a client session (RFC 8656 §3.1: TURN over TLS over TCP).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The name to verify the server's certificate against (and to send as SNI); the
    /// server's IP address when `None`.
    pub server_name: Option<String>,
    /// The trust anchors.
    pub roots: TlsRoots,
}

/// The configuration of one [`TurnClient`](super::TurnClient): the session the core runs
/// (server, transport, credentials, lifetime, SOFTWARE, timers ...) and how the actor reaches
/// the server. Its `Debug` output leaves the password out.
#[derive(Clone)]
#[non_exhaustive]
pub struct TurnClientConfig {
    /// The session with the server, as the core client runs it. Its `local` address is
    /// filled in with the socket's when the client connects.
    pub session: ClientConfig,
    /// Local address to bind; any address of the server's family when `None`.
    pub bind: Option<SocketAddr>,
    /// Bound on TCP connect plus TLS handshake (10 s).
    pub connect_timeout: Duration,
    /// TLS settings, used when the session's transport is [`Transport::Tls`].
    pub tls: TlsOptions,
}

impl TurnClientConfig {
    /// A session over UDP with long-term credentials, the RFC's timers, a 600 s lifetime and
    /// floe's SOFTWARE.
    pub fn new(
        server: SocketAddr,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        let mut session = ClientConfig::new(server, unspecified(server), username, password);
        session.software = Some(concat!("floe ", env!("CARGO_PKG_VERSION")).to_owned());
        TurnClientConfig {
            session,
            bind: None,
            connect_timeout: Duration::from_secs(10),
            tls: TlsOptions::default(),
        }
    }

    /// A session for STUN Binding only (no credentials).
    pub fn stun(server: SocketAddr) -> Self {
        Self::new(server, "", "")
    }

    /// The same session over `transport`.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.session.transport = transport;
        self
    }

    /// The same session over TLS, verifying the server with `tls`.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.session.transport = Transport::Tls;
        self.tls = tls;
        self
    }

    /// The server.
    pub fn server(&self) -> SocketAddr {
        self.session.server
    }

    /// The transport to the server.
    pub fn transport(&self) -> Transport {
        self.session.transport
    }

    /// The core's configuration for a socket bound to `local`.
    pub(super) fn session_from(&self, local: SocketAddr) -> ClientConfig {
        let mut c = self.session.clone();
        c.local = local;
        c
    }

    pub(super) fn bind_addr(&self) -> SocketAddr {
        self.bind
            .unwrap_or_else(|| unspecified(self.session.server))
    }
}

/// Any address of `server`'s family, any port.
fn unspecified(server: SocketAddr) -> SocketAddr {
    let ip = if server.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}

impl fmt::Debug for TurnClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The session's own Debug leaves the password out.
        f.debug_struct("TurnClientConfig")
            .field("session", &self.session)
            .field("bind", &self.bind)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}
