//! The HTTP endpoint of `--metrics`: `GET /metrics` answers the Prometheus text.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::Metrics;
use crate::http::{read_request, Response};

/// Time a client has to send its request and read the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The endpoint runs on the tokio runtime of the calling thread; there was none.
    #[error(
        "no tokio runtime on this thread: start the metrics endpoint inside an actix-rt System"
    )]
    NoRuntime,
    /// The address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// The HTTP endpoint: `GET /metrics` answers the Prometheus text, any other path 404.
/// It stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` on the current runtime until dropped.
    pub fn start(addr: SocketAddr, metrics: Metrics) -> Result<Self, MetricsError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MetricsError::NoRuntime);
        }
        let bind_err = |source| MetricsError::Bind { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(std_listener).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let task = tokio::spawn(accept_loop(listener, metrics));
        Ok(MetricsServer { local_addr, task })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, metrics: Metrics) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &metrics)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics request failed"),
                        Err(_) => tracing::debug!(%peer, "metrics request timed out"),
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                tracing::warn!(error = %e, "metrics endpoint cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and writes one response, then closes.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let request = read_request(&mut stream).await?;
    let head_only = request.as_ref().is_some_and(|r| r.method == "HEAD");
    let response = match request {
        Some(r) if r.path == "/metrics" && matches!(r.method.as_str(), "GET" | "HEAD") => {
            Response::new("200 OK", PROMETHEUS_TYPE, metrics.render_prometheus())
        }
        Some(r) if r.path == "/metrics" => {
            Response::text("405 Method Not Allowed", "only GET /metrics\n")
        }
        Some(_) => Response::text("404 Not Found", "not found; try /metrics\n"),
        None => Response::text("400 Bad Request", "bad request\n"),
    };
    // HEAD gets the headers GET would get, without the body.
    response.write_to(&mut stream, head_only).await
}

/// The Prometheus text exposition format, version 0.0.4.
pub(crate) const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
