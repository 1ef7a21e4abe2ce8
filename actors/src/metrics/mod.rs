//! Operator metrics: lock-free counters shared by every actor, rendered in the Prometheus
//! text exposition format (version 0.0.4, `render`) and served over a minimal HTTP/1.1
//! endpoint (`endpoint`).
//!
//! Counters are relaxed atomics behind one `Arc`; cloning a [`Metrics`] is cheap. On the
//! data path, count once per batch ([`Metrics::relayed_to_peer`] takes packet and byte
//! totals), not once per packet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod endpoint;
mod render;
mod users;

pub(crate) use endpoint::PROMETHEUS_TYPE;
pub use endpoint::{MetricsError, MetricsServer};
pub use users::{UserAccount, UserSnapshot, DEFAULT_TOP_USERS, OTHER_USER};

/// The STUN error codes counted one by one (RFC 8489 §14.8, RFC 8656 §19); any other
/// code is counted as `other`.
pub const COUNTED_ERROR_CODES: [u16; 12] =
    [400, 401, 403, 420, 437, 438, 441, 442, 486, 487, 500, 508];

const ERROR_SLOTS: usize = COUNTED_ERROR_CODES.len() + 1;

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
    /// TLS certificate reloads the file watcher started: applied, failed.
    tls_reloads: [AtomicU64; 2],
    users: users::UserTable,
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
    /// TLS certificate reloads that the file watcher started (`tls-watch-interval`):
    /// applied, and failed (the old certificates stay).
    pub tls_reloads: [u64; 2],
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

    /// Fresh counters that give the first `top_users` users a label of their own in the
    /// per-user families (see `users`); [`Self::new`] gives [`DEFAULT_TOP_USERS`].
    pub fn with_top_users(top_users: u32) -> Self {
        Metrics {
            inner: Arc::new(Counters {
                users: users::UserTable::new(top_users),
                ..Counters::default()
            }),
        }
    }

    /// `username` authenticated and was given an allocation: counts it under the user's
    /// label (or `other`), and returns the account its relayed bytes go to.
    pub fn user_allocation_created(&self, username: &str) -> UserAccount {
        self.inner.users.allocation_created(username)
    }

    /// A 401 answered a request that carried `username`; never creates a label.
    pub fn user_unauthorized(&self, username: &str) {
        self.inner.users.unauthorized(username);
    }

    /// What the per-user label `label` counted (`other` for the shared one), if it exists.
    pub fn user_snapshot(&self, label: &str) -> Option<UserSnapshot> {
        self.inner.users.snapshot(label)
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

    /// The TLS file watcher reloaded the certificates (`ok`), or could not and kept
    /// the old ones.
    pub fn tls_reload(&self, ok: bool) {
        add(&self.inner.tls_reloads[usize::from(!ok)], 1);
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
            tls_reloads: [get(&c.tls_reloads[0]), get(&c.tls_reloads[1])],
        }
    }
}

#[cfg(test)]
mod tests;
