//! What `floe serve` runs once its configuration is loaded: [`run`] starts the TURN
//! server actors (UDP and TCP, and TLS when configured), serves metrics and the admin
//! API, and waits for a signal or a drain.
//!
//! - SIGINT stops at once: the allocations are deleted cleanly and the process exits.
//! - SIGTERM, or `POST /drain` on the admin API, drains: new Allocates are refused (403,
//!   or 300 Try Alternate with `alternate-server`), `/readyz` answers 503, existing
//!   allocations carry on; the process exits when none remain or after `drain-timeout`
//!   seconds (deleting the rest). A SIGINT or a second SIGTERM while draining stops at once.
//! - SIGHUP, or `POST /reload`, reloads the configuration (see [`reload`](crate::reload)).
//! - `external-ip auto` (or `aws`, `gcp`, `azure`) is discovered first
//!   ([`external_ip`](crate::external_ip)); when no STUN server (or the cloud's metadata
//!   service) tells the address, the server does not start.

use std::time::Duration;

use crate::admin::{AdminError, AdminServer, AdminState, DrainSwitch};
use crate::config::ServeConfig;
use crate::metrics::{Metrics, MetricsError, MetricsServer};
use crate::reload::{ConfigSource, Reloader};
use crate::shutdown::{HangupSignal, ShutdownError, ShutdownSignal, ShutdownSignals};
use crate::turn::{ServerHandle, TurnServer};

/// How often a drain looks whether allocations remain.
const DRAIN_POLL: Duration = Duration::from_millis(250);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The admin API could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The signal handlers could not be installed.
    #[error(transparent)]
    Shutdown(#[from] ShutdownError),
    /// `external-ip auto` (or `aws`, `gcp`, `azure`) found no public address.
    #[error(transparent)]
    ExternalIp(#[from] crate::external_ip::DiscoveryError),
    /// The TURN server could not start (a listener could not be bound).
    #[error("cannot start the TURN server: {0}")]
    Start(String),
}

/// Runs the server with `config` (already validated, credentials ensured) on the current
/// actix-rt System until SIGINT, or until a drain (SIGTERM, `POST /drain`) ends; then
/// deletes the remaining allocations cleanly and returns `Ok`. A reload applies `config`
/// again: see [`run_reloadable`] to read a file.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    let same = config.clone();
    run_reloadable(config, ConfigSource::new(move || Ok(same.clone()), None)).await
}

/// As [`run`]; SIGHUP and `POST /reload` apply what `source` gives then.
pub async fn run_reloadable(config: ServeConfig, source: ConfigSource) -> Result<(), ServeError> {
    // Before the signal handlers: a SIGINT while asking still stops the process. The
    // server runs with the discovered mappings; reloads compare and reconfigure with
    // `config` as given (`auto`), so they neither ask again nor see a change.
    let started = crate::external_ip::resolve(&config).await?;
    // Install the handlers first: a signal during start-up then still stops cleanly, and
    // a SIGHUP waits for the server.
    let mut signals = ShutdownSignals::new()?;
    let mut hangup = HangupSignal::new()?;
    let metrics = Metrics::with_top_users(config.usage_top_users);
    let _metrics_server = match config.metrics {
        Some(addr) => {
            let server = MetricsServer::start(addr, metrics.clone())?;
            tracing::info!(addr = %server.local_addr(), "serving metrics at /metrics");
            Some(server)
        }
        None => None,
    };
    let server = TurnServer::start(&started, metrics.clone())
        .await
        .map_err(ServeError::Start)?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, realm = %config.realm, threads = config.threads, "serving STUN and TURN on UDP and TCP");
    }
    for addr in server.tls_local_addrs() {
        tracing::info!(%addr, "serving STUN and TURN over TLS");
    }
    let reloader = Reloader::new(source, server.clone(), metrics.clone(), config.clone());
    let hangups = {
        let reloader = reloader.clone();
        tokio::spawn(async move {
            loop {
                hangup.recv().await;
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reloader.reload().await;
            }
        })
    };
    let drain = DrainSwitch::new();
    let _admin_server = match config.admin {
        Some(addr) => {
            let state = AdminState {
                server: server.clone(),
                metrics,
                token: config.admin_token.clone(),
                drain: drain.clone(),
                reload: Some(reloader),
            };
            let admin = AdminServer::start(addr, state)?;
            tracing::info!(addr = %admin.local_addr(), token = config.admin_token.is_some(), "serving the admin API");
            Some(admin)
        }
        None => None,
    };
    let drains = tokio::select! {
        signal = signals.recv() => match signal {
            ShutdownSignal::Interrupt => {
                tracing::info!(%signal, "stopping now");
                false
            }
            ShutdownSignal::Terminate => {
                drain.pull();
                tracing::info!(%signal, "draining");
                true
            }
        },
        () = drain.pulled() => {
            tracing::info!("draining, as the admin API asked");
            true
        }
    };
    if drains {
        drain_out(
            &server,
            &mut signals,
            Duration::from_secs(config.drain_timeout),
        )
        .await;
    }
    hangups.abort();
    tracing::info!("shutting down: no new allocations, deleting the current ones");
    let deleted = server.shutdown().await;
    tracing::info!(deleted, "stopped");
    Ok(())
}

/// Refuses new allocations and waits until none remain, `timeout` passes, or a signal
/// asks to stop now.
async fn drain_out(server: &ServerHandle, signals: &mut ShutdownSignals, timeout: Duration) {
    let remaining = server.set_draining(true).await;
    tracing::info!(
        remaining,
        timeout_s = timeout.as_secs(),
        "refusing new allocations; waiting for the current ones to end"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Sleep first: the admin API's answer to `POST /drain` goes out before an idle
        // server exits.
        tokio::select! {
            signal = signals.recv() => {
                tracing::info!(%signal, "stopping the drain now");
                return;
            }
            () = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + DRAIN_POLL)) => {}
        }
        let n = server.allocation_count().await;
        if n == 0 {
            tracing::info!("drained: no allocations remain");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(remaining = n, "drain timeout reached");
            return;
        }
    }
}
