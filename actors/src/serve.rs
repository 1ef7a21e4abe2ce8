//! What `floe serve` runs once its configuration is loaded: [`run`] starts the TURN
//! server actors (UDP and TCP, and TLS when configured), serves metrics, and waits for
//! SIGINT/SIGTERM.

use crate::config::ServeConfig;
use crate::metrics::{Metrics, MetricsError, MetricsServer};
use crate::shutdown::{ShutdownError, ShutdownSignals};
use crate::turn::TurnServer;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
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

/// Runs the server with `config` (already validated, credentials ensured) on the current
/// actix-rt System until SIGINT or SIGTERM; then deletes the allocations cleanly and
/// returns `Ok`.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
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
