//! Operator metrics: lock-free counters shared by every actor, rendered in the Prometheus
//! text exposition format (version 0.0.4) and served over a minimal HTTP/1.1 endpoint.
//!
//! Counters are relaxed atomics behind one `Arc`; cloning a [`Metrics`] is cheap. On the
//! data path, count once per batch ([`Metrics::relayed_to_peer`] takes packet and byte
//! totals), not once per packet.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::http::{read_request, Response};

/// The STUN error codes counted one by one (RFC 8489 §14.8, RFC 8656 §19); any other
/// code is counted as `other`.
pub const COUNTED_ERROR_CODES: [u16; 12] =
    [400, 401, 403, 420, 437, 438, 441, 442, 486, 487, 500, 508];

const ERROR_SLOTS: usize = COUNTED_ERROR_CODES.len() + 1;

/// Time a client has to send its request and read the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's counters. Clone it into every actor that counts something.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    allocations_active: AtomicU64,
    allocations_created: AtomicU64,
    allocations_ended_by_operator: AtomicU64,
    packets_to_peer: AtomicU64,
    bytes_to_peer: AtomicU64,
    packets_to_client: AtomicU64,
    bytes_to_client: AtomicU64,
    auth_failures: AtomicU64,
    binding_requests: AtomicU64,
    error_responses: [AtomicU64; ERROR_SLOTS],
    unauth_dropped: AtomicU64,
    over_max_bps: [AtomicU64; 2],
    over_total_bps: [AtomicU64; 2],
    permissions_refused: AtomicU64,
    channels_refused: AtomicU64,
    tcp_connections_active: AtomicU64,
    tcp_refused_per_ip: AtomicU64,
    tcp_refused_total: AtomicU64,
    tcp_closed_not_stun: AtomicU64,
    tcp_closed_timeout: AtomicU64,
    tcp_dropped_messages: AtomicU64,
    tcp_dropped_bytes: AtomicU64,
    /// Configuration reloads: applied, rejected.
    config_reloads: [AtomicU64; 2],
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Allocations that exist now.
    pub allocations_active: u64,
    /// Allocations created since start.
    pub allocations_created: u64,
    /// Allocations an operator ended (the admin API's `DELETE /sessions`).
    pub allocations_ended_by_operator: u64,
    /// Packets relayed from clients to peers.
    pub packets_to_peer: u64,
    /// Payload bytes relayed from clients to peers.
    pub bytes_to_peer: u64,
    /// Packets relayed from peers to clients.
    pub packets_to_client: u64,
    /// Payload bytes relayed from peers to clients.
    pub bytes_to_client: u64,
    /// Requests refused for bad or missing credentials.
    pub auth_failures: u64,
    /// Binding requests answered.
    pub binding_requests: u64,
    /// Error responses by code, in the order of [`COUNTED_ERROR_CODES`], then `other`.
    pub error_responses: [u64; ERROR_SLOTS],
    /// Error responses to unauthenticated requests not sent: over `unauth-rate`.
    pub unauth_dropped: u64,
    /// Relayed packets and payload bytes dropped over an allocation's `max-bps`.
    pub over_max_bps: [u64; 2],
    /// Relayed packets and payload bytes dropped over `total-bps`.
    pub over_total_bps: [u64; 2],
    /// CreatePermission and ChannelBind refused at `max-permissions` (508).
    pub permissions_refused: u64,
    /// ChannelBind refused at `max-channels` (508).
    pub channels_refused: u64,
    /// TCP and TLS client connections open now.
    pub tcp_connections_active: u64,
    /// TCP and TLS connections closed on accept: their source IP held its cap.
    pub tcp_refused_per_ip: u64,
    /// TCP and TLS connections closed on accept: the total cap was reached.
    pub tcp_refused_total: u64,
    /// TCP and TLS connections closed because they did not start with a STUN message or
    /// could not be framed.
    pub tcp_closed_not_stun: u64,
    /// TCP and TLS connections closed because a message did not complete in time.
    pub tcp_closed_timeout: u64,
    /// Messages for TCP and TLS clients dropped because the client's write queue was full.
    pub tcp_dropped_messages: u64,
    /// Bytes of those messages.
    pub tcp_dropped_bytes: u64,
    /// Configuration reloads applied, and rejected.
    pub config_reloads: [u64; 2],
}

impl MetricsSnapshot {
    /// Error responses sent with `code` (codes not in [`COUNTED_ERROR_CODES`] share a count).
    pub fn error_responses(&self, code: u16) -> u64 {
        self.error_responses[error_slot(code)]
    }
}

fn error_slot(code: u16) -> usize {
    COUNTED_ERROR_CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(COUNTED_ERROR_CODES.len())
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// An allocation was created.
    pub fn allocation_created(&self) {
        add(&self.inner.allocations_created, 1);
        add(&self.inner.allocations_active, 1);
    }

    /// An allocation ended (deleted, expired or failed). Never goes below zero.
    pub fn allocation_ended(&self) {
        let _ =
            self.inner
                .allocations_active
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// An operator ended an allocation (it also counts in [`Self::allocation_ended`]).
    pub fn allocation_ended_by_operator(&self) {
        add(&self.inner.allocations_ended_by_operator, 1);
    }

    /// `packets` carrying `bytes` of payload went from clients to peers.
    pub fn relayed_to_peer(&self, packets: u64, bytes: u64) {
        add(&self.inner.packets_to_peer, packets);
        add(&self.inner.bytes_to_peer, bytes);
    }

    /// `packets` carrying `bytes` of payload went from peers to clients.
    pub fn relayed_to_client(&self, packets: u64, bytes: u64) {
        add(&self.inner.packets_to_client, packets);
        add(&self.inner.bytes_to_client, bytes);
    }

    /// A request was refused for its credentials (401 with credentials present, 441 ...).
    pub fn auth_failure(&self) {
        add(&self.inner.auth_failures, 1);
    }

    /// A Binding request was answered.
    pub fn binding_request(&self) {
        add(&self.inner.binding_requests, 1);
    }

    /// `n` Binding requests were answered (a batch).
    pub fn binding_requests(&self, n: u64) {
        add(&self.inner.binding_requests, n);
    }

    /// An error response with this STUN code was sent.
    pub fn error_response(&self, code: u16) {
        add(&self.inner.error_responses[error_slot(code)], 1);
    }

    /// What a server core refused or dropped in one batch.
    pub fn core_counters(&self, c: &floe::turn::server::ServerCounters) {
        let i = &*self.inner;
        add(&i.unauth_dropped, c.unauth_dropped);
        add(&i.over_max_bps[0], c.over_bps_packets);
        add(&i.over_max_bps[1], c.over_bps_bytes);
        add(&i.permissions_refused, c.permissions_refused);
        add(&i.channels_refused, c.channels_refused);
    }

    /// `packets` carrying `bytes` of payload were dropped over `total-bps`.
    pub fn over_total_bps(&self, packets: u64, bytes: u64) {
        add(&self.inner.over_total_bps[0], packets);
        add(&self.inner.over_total_bps[1], bytes);
    }

    /// A TCP or TLS client connection was admitted.
    pub fn tcp_connection_opened(&self) {
        add(&self.inner.tcp_connections_active, 1);
    }

    /// An admitted TCP or TLS connection closed. Never goes below zero.
    pub fn tcp_connection_closed(&self) {
        let _ = self.inner.tcp_connections_active.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |n| n.checked_sub(1),
        );
    }

    /// A TCP or TLS connection was closed on accept: its source IP held its cap.
    pub fn tcp_refused_per_ip(&self) {
        add(&self.inner.tcp_refused_per_ip, 1);
    }

    /// A TCP or TLS connection was closed on accept: the total cap was reached.
    pub fn tcp_refused_total(&self) {
        add(&self.inner.tcp_refused_total, 1);
    }

    /// A TCP or TLS connection was closed: it did not speak STUN.
    pub fn tcp_closed_not_stun(&self) {
        add(&self.inner.tcp_closed_not_stun, 1);
    }

    /// A TCP or TLS connection was closed: a message did not complete in time.
    pub fn tcp_closed_timeout(&self) {
        add(&self.inner.tcp_closed_timeout, 1);
    }

    /// A message of `bytes` for a TCP or TLS client was dropped: its write queue was full.
    pub fn tcp_dropped(&self, bytes: u64) {
        add(&self.inner.tcp_dropped_messages, 1);
        add(&self.inner.tcp_dropped_bytes, bytes);
    }

    /// A configuration reload was applied (`ok`) or rejected.
    pub fn config_reload(&self, ok: bool) {
        add(&self.inner.config_reloads[usize::from(!ok)], 1);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &*self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            allocations_active: get(&c.allocations_active),
            allocations_created: get(&c.allocations_created),
            allocations_ended_by_operator: get(&c.allocations_ended_by_operator),
            packets_to_peer: get(&c.packets_to_peer),
            bytes_to_peer: get(&c.bytes_to_peer),
            packets_to_client: get(&c.packets_to_client),
            bytes_to_client: get(&c.bytes_to_client),
            auth_failures: get(&c.auth_failures),
            binding_requests: get(&c.binding_requests),
            error_responses: std::array::from_fn(|i| get(&c.error_responses[i])),
            unauth_dropped: get(&c.unauth_dropped),
            over_max_bps: [get(&c.over_max_bps[0]), get(&c.over_max_bps[1])],
            over_total_bps: [get(&c.over_total_bps[0]), get(&c.over_total_bps[1])],
            permissions_refused: get(&c.permissions_refused),
            channels_refused: get(&c.channels_refused),
            tcp_connections_active: get(&c.tcp_connections_active),
            tcp_refused_per_ip: get(&c.tcp_refused_per_ip),
            tcp_refused_total: get(&c.tcp_refused_total),
            tcp_closed_not_stun: get(&c.tcp_closed_not_stun),
            tcp_closed_timeout: get(&c.tcp_closed_timeout),
            tcp_dropped_messages: get(&c.tcp_dropped_messages),
            tcp_dropped_bytes: get(&c.tcp_dropped_bytes),
            config_reloads: [get(&c.config_reloads[0]), get(&c.config_reloads[1])],
        }
    }

    /// The counters in the Prometheus text exposition format, names prefixed `floe_`.
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP floe_{name} {help}");
            let _ = writeln!(out, "# TYPE floe_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "floe_{name}{labels} {value}");
            }
        };
        family(
            "allocations_active",
            "gauge",
            "TURN allocations that exist now.",
            &[("", s.allocations_active)],
        );
        family(
            "allocations_created_total",
            "counter",
            "TURN allocations created since start.",
            &[("", s.allocations_created)],
        );
        family(
            "allocations_ended_by_operator_total",
            "counter",
            "TURN allocations an operator ended through the admin API.",
            &[("", s.allocations_ended_by_operator)],
        );
        family(
            "relayed_packets_total",
            "counter",
            "Packets relayed, by direction.",
            &[
                (r#"{direction="client_to_peer"}"#, s.packets_to_peer),
                (r#"{direction="peer_to_client"}"#, s.packets_to_client),
            ],
        );
        family(
            "relayed_bytes_total",
            "counter",
            "Payload bytes relayed, by direction.",
            &[
                (r#"{direction="client_to_peer"}"#, s.bytes_to_peer),
                (r#"{direction="peer_to_client"}"#, s.bytes_to_client),
            ],
        );
        family(
            "auth_failures_total",
            "counter",
            "Requests refused for bad or missing credentials.",
            &[("", s.auth_failures)],
        );
        family(
            "binding_requests_total",
            "counter",
            "STUN Binding requests answered.",
            &[("", s.binding_requests)],
        );
        const LABELS: [&str; ERROR_SLOTS] = [
            r#"{code="400"}"#,
            r#"{code="401"}"#,
            r#"{code="403"}"#,
            r#"{code="420"}"#,
            r#"{code="437"}"#,
            r#"{code="438"}"#,
            r#"{code="441"}"#,
            r#"{code="442"}"#,
            r#"{code="486"}"#,
            r#"{code="487"}"#,
            r#"{code="500"}"#,
            r#"{code="508"}"#,
            r#"{code="other"}"#,
        ];
        let samples: [(&str, u64); ERROR_SLOTS] =
            std::array::from_fn(|i| (LABELS[i], s.error_responses[i]));
        family(
            "error_responses_total",
            "counter",
            "STUN error responses sent, by error code.",
            &samples,
        );
        family(
            "unauth_responses_dropped_total",
            "counter",
            "Error responses to unauthenticated requests not sent: over --unauth-rate.",
            &[("", s.unauth_dropped)],
        );
        family(
            "relay_dropped_packets_total",
            "counter",
            "Relayed packets dropped over a bandwidth limit.",
            &[
                (r#"{limit="max_bps"}"#, s.over_max_bps[0]),
                (r#"{limit="total_bps"}"#, s.over_total_bps[0]),
            ],
        );
        family(
            "relay_dropped_bytes_total",
            "counter",
            "Payload bytes of relayed packets dropped over a bandwidth limit.",
            &[
                (r#"{limit="max_bps"}"#, s.over_max_bps[1]),
                (r#"{limit="total_bps"}"#, s.over_total_bps[1]),
            ],
        );
        family(
            "cap_refusals_total",
            "counter",
            "Requests refused with 508 at a per-allocation cap.",
            &[
                (r#"{cap="permissions"}"#, s.permissions_refused),
                (r#"{cap="channels"}"#, s.channels_refused),
            ],
        );
        family(
            "tcp_connections_active",
            "gauge",
            "TCP and TLS client connections open now.",
            &[("", s.tcp_connections_active)],
        );
        family(
            "tcp_connections_refused_total",
            "counter",
            "TCP and TLS connections closed on accept, by the cap that was reached.",
            &[
                (r#"{limit="per_ip"}"#, s.tcp_refused_per_ip),
                (r#"{limit="total"}"#, s.tcp_refused_total),
            ],
        );
        family(
            "tcp_connections_closed_total",
            "counter",
            "TCP and TLS connections closed by the server, by reason.",
            &[
                (r#"{reason="not_stun"}"#, s.tcp_closed_not_stun),
                (r#"{reason="timeout"}"#, s.tcp_closed_timeout),
            ],
        );
        family(
            "tcp_dropped_messages_total",
            "counter",
            "Messages for TCP and TLS clients dropped because the client's write queue was full.",
            &[("", s.tcp_dropped_messages)],
        );
        family(
            "tcp_dropped_bytes_total",
            "counter",
            "Bytes of the messages for TCP and TLS clients dropped because the write queue was full.",
            &[("", s.tcp_dropped_bytes)],
        );
        family(
            "config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP, POST /reload), by result.",
            &[
                (r#"{result="ok"}"#, s.config_reloads[0]),
                (r#"{result="error"}"#, s.config_reloads[1]),
            ],
        );
        out
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `request` raw and returns (status code, headers, body).
    async fn http(addr: SocketAddr, request: &str) -> (u16, HashMap<String, String>, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap();
        assert!(status.starts_with("HTTP/1.1 "), "{status}");
        let code = status[9..12].parse().unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        (code, headers, body.to_owned())
    }

    /// Parses the exposition text: every sample belongs to a family announced by HELP and
    /// TYPE lines; returns sample (name with labels) to value.
    fn parse_prometheus(text: &str) -> HashMap<String, u64> {
        let mut typed = Vec::new();
        let mut samples = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
                typed.push(name.to_owned());
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(name.starts_with("floe_"), "{line}");
                assert!(typed.iter().any(|t| t == name), "no TYPE for {name}");
                samples.insert(series.to_owned(), value.parse().unwrap());
            }
        }
        samples
    }

    #[test]
    fn counters_count() {
        let m = Metrics::new();
        m.allocation_created();
        m.allocation_created();
        m.allocation_ended();
        m.allocation_ended();
        m.allocation_ended(); // one too many: stays at zero
        m.allocation_ended_by_operator();
        m.relayed_to_peer(3, 300);
        m.relayed_to_client(2, 150);
        m.auth_failure();
        m.binding_request();
        m.error_response(401);
        m.error_response(401);
        m.error_response(508);
        m.error_response(599);
        let mut core = floe::turn::server::ServerCounters::default();
        core.unauth_dropped = 5;
        core.over_bps_packets = 2;
        core.over_bps_bytes = 300;
        core.channels_refused = 1;
        m.core_counters(&core);
        m.over_total_bps(1, 100);
        let s = m.clone().snapshot();
        assert_eq!(s.unauth_dropped, 5);
        assert_eq!((s.over_max_bps, s.over_total_bps), ([2, 300], [1, 100]));
        assert_eq!((s.permissions_refused, s.channels_refused), (0, 1));
        assert_eq!((s.allocations_active, s.allocations_created), (0, 2));
        assert_eq!(s.allocations_ended_by_operator, 1);
        assert_eq!((s.packets_to_peer, s.bytes_to_peer), (3, 300));
        assert_eq!((s.packets_to_client, s.bytes_to_client), (2, 150));
        assert_eq!((s.auth_failures, s.binding_requests), (1, 1));
        assert_eq!(s.error_responses(401), 2);
        assert_eq!(s.error_responses(508), 1);
        assert_eq!(s.error_responses(599), 1);
        assert_eq!(s.error_responses(400), 0);

        m.tcp_connection_opened();
        m.tcp_connection_opened();
        m.tcp_connection_closed();
        m.tcp_refused_per_ip();
        m.tcp_refused_total();
        m.tcp_closed_not_stun();
        m.tcp_closed_timeout();
        m.tcp_closed_timeout();
        m.tcp_dropped(1500);
        m.tcp_dropped(500);
        let s = m.snapshot();
        assert_eq!(s.tcp_connections_active, 1);
        assert_eq!((s.tcp_refused_per_ip, s.tcp_refused_total), (1, 1));
        assert_eq!((s.tcp_closed_not_stun, s.tcp_closed_timeout), (1, 2));
        assert_eq!((s.tcp_dropped_messages, s.tcp_dropped_bytes), (2, 2000));
    }

    #[test]
    fn config_reloads_are_counted_by_result() {
        let m = Metrics::new();
        m.config_reload(true);
        m.config_reload(false);
        m.config_reload(false);
        assert_eq!(m.snapshot().config_reloads, [1, 2]);
        let samples = parse_prometheus(&m.render_prometheus());
        assert_eq!(samples[r#"floe_config_reloads_total{result="ok"}"#], 1);
        assert_eq!(samples[r#"floe_config_reloads_total{result="error"}"#], 2);
    }

    #[test]
    fn rendering_is_prometheus_text() {
        let m = Metrics::new();
        m.allocation_created();
        m.relayed_to_client(7, 700);
        m.error_response(438);
        m.error_response(999);
        let samples = parse_prometheus(&m.render_prometheus());
        assert_eq!(samples["floe_allocations_active"], 1);
        assert_eq!(samples["floe_allocations_created_total"], 1);
        assert_eq!(
            samples[r#"floe_relayed_packets_total{direction="peer_to_client"}"#],
            7
        );
        assert_eq!(
            samples[r#"floe_relayed_bytes_total{direction="peer_to_client"}"#],
            700
        );
        assert_eq!(
            samples[r#"floe_relayed_packets_total{direction="client_to_peer"}"#],
            0
        );
        assert_eq!(samples[r#"floe_error_responses_total{code="438"}"#], 1);
        assert_eq!(samples[r#"floe_error_responses_total{code="other"}"#], 1);
        assert_eq!(samples["floe_auth_failures_total"], 0);
        assert_eq!(samples["floe_binding_requests_total"], 0);
        assert_eq!(samples["floe_allocations_ended_by_operator_total"], 0);
        m.tcp_refused_per_ip();
        m.tcp_dropped(100);
        let samples = parse_prometheus(&m.render_prometheus());
        assert_eq!(
            samples[r#"floe_tcp_connections_refused_total{limit="per_ip"}"#],
            1
        );
        assert_eq!(samples["floe_tcp_dropped_bytes_total"], 100);
        assert_eq!(samples["floe_tcp_connections_active"], 0);
        assert_eq!(
            samples.len(),
            3 + 2 + 2 + 2 + COUNTED_ERROR_CODES.len() + 1 + (1 + 2 + 2 + 2) + (1 + 2 + 2 + 1 + 1)
        );
    }

    #[actix_rt::test]
    async fn endpoint_serves_metrics_and_404s_the_rest() {
        let metrics = Metrics::new();
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone()).unwrap();
        let addr = server.local_addr();
        metrics.allocation_created();
        metrics.relayed_to_peer(10, 1000);

        let (code, headers, body) =
            http(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(code, 200);
        assert!(headers["content-type"].starts_with("text/plain; version=0.0.4"));
        assert_eq!(
            headers["content-length"].parse::<usize>().unwrap(),
            body.len()
        );
        let samples = parse_prometheus(&body);
        assert_eq!(samples["floe_allocations_active"], 1);
        assert_eq!(
            samples[r#"floe_relayed_bytes_total{direction="client_to_peer"}"#],
            1000
        );

        // The counters are live.
        metrics.allocation_created();
        let (_, _, body) = http(addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert_eq!(parse_prometheus(&body)["floe_allocations_active"], 2);

        let (code, headers, body) = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(code, 200);
        assert!(body.is_empty());
        assert!(headers["content-length"].parse::<usize>().unwrap() > 0);

        let (code, _, _) = http(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert_eq!(code, 404);
        let (code, _, _) = http(addr, "GET /metricsx HTTP/1.1\r\n\r\n").await;
        assert_eq!(code, 404);
        let (code, _, _) = http(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(code, 405);
        let (code, _, _) = http(addr, "garbage\r\n\r\n").await;
        assert_eq!(code, 400);

        drop(server);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "stopped when dropped"
        );
    }

    #[test]
    fn start_outside_a_runtime_is_an_error() {
        let err = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Metrics::new()).unwrap_err();
        assert!(matches!(err, MetricsError::NoRuntime));
    }
}
