//! Datagrams queued during one batch and sent together, and the counts kept per batch.

use std::net::{IpAddr, SocketAddr};

use crate::udp::{BatchSocket, SendQueue};

/// Counts kept per batch and added to the shared metrics once.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) to_peer: (u64, u64),
    pub(crate) to_client: (u64, u64),
    pub(crate) bindings: u64,
    /// Relayed packets and bytes dropped over `total-bps`.
    pub(crate) over_total_bps: (u64, u64),
}

/// Datagrams waiting to leave one socket, and what they weigh.
#[derive(Default)]
pub(crate) struct Pending {
    queue: SendQueue,
    bytes: u64,
}

impl Pending {
    pub(crate) fn push(&mut self, to: SocketAddr, source: Option<IpAddr>, payload: &[u8]) {
        self.queue.push_from(to, source, payload);
        self.bytes += payload.len() as u64;
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Sends everything with one `sendmmsg` (runs to one destination as GSO sends);
    /// returns the datagrams and bytes that left. A failed send costs only its own
    /// datagrams; bytes are prorated when some failed (they are equal-sized in practice).
    pub(crate) fn flush(&mut self, socket: &BatchSocket) -> (u64, u64) {
        let queued = self.queue.len() as u64;
        if queued == 0 {
            return (0, 0);
        }
        let report = socket.try_send_batch(&mut self.queue);
        let sent = report.sent as u64;
        let bytes = if sent == queued {
            self.bytes
        } else {
            self.bytes * sent / queued
        };
        self.bytes = 0;
        (sent, bytes)
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}
