//! What `floe serve` runs once its configuration is loaded: [`run`] starts the TURN
//! server actors (UDP and TCP, and TLS when configured), serves metrics, and waits for
//! SIGINT/SIGTERM.

use std::net::SocketAddr;

use crate::config::ServerConfig;
use crate::metrics::{Metrics, MetricsError, MetricsServer};
use crate::shutdown::{ShutdownError, ShutdownSignals};
use crate::tcp::{bind_tcp_listener, TcpError, TcpListenerConfig};
use crate::turn::TurnServer;
use crate::udp::{BatchSocket, UdpError, UdpSocketConfig};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A UDP listener could not be bound.
    #[error(transparent)]
    Udp(#[from] UdpError),
    /// A TCP listener could not be bound.
    #[error(transparent)]
    Tcp(#[from] TcpError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The signal handlers could not be installed.
    #[error(transparent)]
    Shutdown(#[from] ShutdownError),
    /// The TURN server could not start (a listener could not be bound).
    #[error("cannot start the TURN server: {0}")]
    Start(String),
}

/// The client-facing sockets of one Arbiter: UDP and TCP on each listen address.
#[derive(Debug)]
pub struct Listeners {
    /// One UDP socket per listen address, in the order of `ServerConfig::listen`.
    pub udp: Vec<BatchSocket>,
    /// One TCP listener per listen address, on the same port as its UDP socket.
    pub tcp: Vec<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds UDP and TCP on every listen address, with SO_REUSEPORT so each Arbiter can
    /// bind its own set. IPv6 addresses are IPv6-only: list `0.0.0.0` as well for IPv4.
    /// With port 0, TCP takes the port the OS gave the UDP socket.
    /// Call it on the Arbiter that will serve the sockets.
    pub fn bind(config: &ServerConfig) -> Result<Self, ServeError> {
        let udp_config = UdpSocketConfig {
            ipv6_only: Some(true),
            ..UdpSocketConfig::listener()
        };
        let tcp_config = TcpListenerConfig {
            ipv6_only: Some(true),
            ..TcpListenerConfig::default()
        };
        let mut listeners = Listeners {
            udp: Vec::with_capacity(config.listen.len()),
            tcp: Vec::with_capacity(config.listen.len()),
        };
        for addr in &config.listen {
            let udp = BatchSocket::bind(*addr, &udp_config)?;
            let tcp_addr = SocketAddr::new(addr.ip(), udp.local_addr().port());
            let tcp = bind_tcp_listener(tcp_addr, &tcp_config)?;
            listeners.udp.push(udp);
            listeners.tcp.push(tcp);
        }
        Ok(listeners)
    }

    /// The bound addresses (UDP and TCP share each one).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(BatchSocket::local_addr).collect()
    }
}

/// Runs the server with `config` (already validated, credentials ensured) on the current
/// actix-rt System until SIGINT or SIGTERM; then deletes the allocations cleanly and
/// returns `Ok`.
pub async fn run(config: ServerConfig) -> Result<(), ServeError> {
    // Install the handlers first: a signal during start-up then still stops cleanly.
    let mut signals = ShutdownSignals::new()?;
    let metrics = Metrics::new();
    let _metrics_server = match config.metrics {
        Some(addr) => {
            let server = MetricsServer::start(addr, metrics.clone())?;
            tracing::info!(addr = %server.local_addr(), "serving metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    let server = TurnServer::start(&config, metrics)
        .await
        .map_err(ServeError::Start)?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, realm = %config.realm, threads = config.threads, "serving STUN and TURN on UDP and TCP");
    }
    for addr in server.tls_local_addrs() {
        tracing::info!(%addr, "serving STUN and TURN over TLS");
    }
    let signal = signals.recv().await;
    tracing::info!(%signal, "shutting down: no new allocations, deleting the current ones");
    let deleted = server.shutdown().await;
    tracing::info!(deleted, "stopped");
    Ok(())
}
