//! Usage accounting for one Arbiter: per-user metrics from the core's per-allocation
//! counters (the ones `/sessions` shows), and one log line (target `floe::usage`) per
//! allocation that ends.
//!
//! The data path counts nothing more: [`UsageBook::sync`] adds what each allocation
//! relayed since the last sync to its user's account (the supervisor calls it every
//! [`SYNC_EVERY`]), and an ending allocation's final count (the core's
//! `AllocationUsage`) settles the rest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use floe::turn::server::{AllocationId, AllocationUsage, Server};

use crate::metrics::{Metrics, UserAccount};

/// How often per-user relayed bytes catch up with the allocations' counters.
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(2);

/// Why an allocation ended, as the usage log says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// Its lifetime ran out.
    Expired,
    /// Its client deleted it (Refresh with LIFETIME 0).
    Client,
    /// An operator deleted it (the admin API).
    Operator,
    /// A drain ended (its timeout) with the allocation still there.
    Drained,
    /// The server stopped (SIGINT).
    Shutdown,
    /// Its actor or relay failed.
    Failed,
    /// Its TCP or TLS connection closed (RFC 8656 §3.1).
    ConnectionClosed,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Client => "client",
            EndReason::Operator => "operator",
            EndReason::Drained => "drained",
            EndReason::Shutdown => "shutdown",
            EndReason::Failed => "failed",
            EndReason::ConnectionClosed => "connection_closed",
        }
    }
}

struct Account {
    user: UserAccount,
    /// Payload bytes already added to `user`: to peers, to the client.
    reported: [u64; 2],
    /// Why the driver is deleting it, when the driver is.
    ending: Option<EndReason>,
    /// The core's final count, between `AllocationUsage` and the event that ends it.
    last: Option<Box<AllocationUsage>>,
}

/// The usage accounts of one Arbiter's allocations.
pub(crate) struct UsageBook {
    metrics: Metrics,
    /// This Arbiter's index, the first part of session ids.
    thread: usize,
    accounts: HashMap<AllocationId, Account>,
}

impl UsageBook {
    pub(crate) fn new(metrics: Metrics, thread: usize) -> Self {
        UsageBook {
            metrics,
            thread,
            accounts: HashMap::new(),
        }
    }

    /// Allocation `id` of `username` was created.
    pub(crate) fn created(&mut self, id: AllocationId, username: &str) {
        let account = Account {
            user: self.metrics.user_allocation_created(username),
            reported: [0; 2],
            ending: None,
            last: None,
        };
        self.accounts.insert(id, account);
    }

    /// The driver is about to delete `id` for `reason`.
    pub(crate) fn ending(&mut self, id: AllocationId, reason: EndReason) {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.ending.get_or_insert(reason);
        }
    }

    /// The core's final count of an allocation that is ending.
    pub(crate) fn last_count(&mut self, usage: Box<AllocationUsage>) {
        if let Some(a) = self.accounts.get_mut(&usage.id) {
            a.last = Some(usage);
        }
    }

    /// Adds what every allocation relayed since the last sync to its user.
    pub(crate) fn sync(&mut self, core: &Server, now: Instant) {
        for info in core.allocations(now) {
            if let Some(a) = self.accounts.get_mut(&info.id) {
                a.catch_up(info.to_peers.bytes, info.to_client.bytes);
            }
        }
    }

    /// Allocation `id` ended (`reason` unless the driver said why): settles its account
    /// and logs its usage.
    pub(crate) fn ended(&mut self, id: AllocationId, reason: EndReason, core: &Server) {
        let Some(mut a) = self.accounts.remove(&id) else {
            return;
        };
        a.user.allocation_ended();
        let Some(u) = a.last.take() else {
            return;
        };
        a.catch_up(u.to_peers.bytes, u.to_client.bytes);
        let relayed: Vec<String> = u
            .relayed
            .iter()
            .map(|r| core.advertised_address(*r).to_string())
            .collect();
        let duration = Instant::now().saturating_duration_since(u.created);
        tracing::info!(
            target: "floe::usage",
            user = %u.username,
            id = %format_args!("{}-{}", self.thread, id.0),
            client = %u.five_tuple.client,
            server = %u.five_tuple.server,
            transport = super::sessions::transport_name(u.five_tuple.transport),
            relayed = %relayed.join(","),
            duration_s = duration.as_millis() as f64 / 1000.0,
            bytes_to_peer = u.to_peers.bytes,
            bytes_to_client = u.to_client.bytes,
            packets_to_peer = u.to_peers.packets,
            packets_to_client = u.to_client.packets,
            reason = a.ending.unwrap_or(reason).as_str(),
            "allocation ended"
        );
    }
}

impl Account {
    fn catch_up(&mut self, to_peer: u64, to_client: u64) {
        let [p, c] = self.reported;
        self.user
            .relayed(to_peer.saturating_sub(p), to_client.saturating_sub(c));
        self.reported = [to_peer, to_client];
    }
}
