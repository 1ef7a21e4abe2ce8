//! The TCP connections of a checklist (RFC 6544 §7): a check from an active (or S-O)
//! candidate waits for its connection, which the agent asks its driver for; a failed
//! or closed connection fails its pairs, and a selected pair on a closed connection
//! loses consent.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::{CheckKind, Checklist};
use crate::ice::pair::PairId;
use crate::ice::tcp::TcpConnect;

/// A check waiting for its pair's connection.
struct WaitingCheck {
    local: SocketAddr,
    remote: SocketAddr,
    pair: PairId,
    kind: CheckKind,
    use_candidate: bool,
    /// The NOMINATION value of a renomination (draft-thatcher-ice-renomination).
    nomination: Option<u32>,
}

/// The connections a checklist knows of, by (local base, remote address).
#[derive(Default)]
pub(super) struct TcpConnections {
    established: HashSet<(SocketAddr, SocketAddr)>,
    waiting: Vec<WaitingCheck>,
    requests: VecDeque<TcpConnect>,
}

impl Checklist {
    /// RFC 6544 §7.1: whether the check on pair `id` must wait for a connection (the
    /// pair's local candidate opens connections and none is open to the remote yet);
    /// if so the check is kept, and the connection asked for once.
    pub(super) fn check_waits_for_connection(
        &mut self,
        id: PairId,
        kind: CheckKind,
        use_candidate: bool,
        nomination: Option<u32>,
    ) -> bool {
        let Some(pair) = self.pair(id) else {
            return false;
        };
        let (local, remote) = (pair.local_base, pair.remote_addr);
        if !self.local[pair.local].opens_connections()
            || self.tcp.established.contains(&(local, remote))
        {
            return false;
        }
        let tcp = &mut self.tcp;
        let asked = tcp
            .waiting
            .iter()
            .any(|w| w.local == local && w.remote == remote);
        match tcp
            .waiting
            .iter_mut()
            .find(|w| w.pair == id && w.kind == kind)
        {
            Some(w) => {
                w.use_candidate |= use_candidate;
                w.nomination = nomination.max(w.nomination);
            }
            None => tcp.waiting.push(WaitingCheck {
                local,
                remote,
                pair: id,
                kind,
                use_candidate,
                nomination,
            }),
        }
        if !asked {
            tracing::debug!(%local, %remote, "ICE-TCP: connection asked for");
            tcp.requests.push_back(TcpConnect { local, remote });
        }
        true
    }

    /// RFC 6544 §7.1: the next connection to open.
    pub fn poll_tcp_connect(&mut self) -> Option<TcpConnect> {
        self.tcp.requests.pop_front()
    }

    fn take_waiting(&mut self, local: SocketAddr, remote: SocketAddr) -> Vec<WaitingCheck> {
        let (mine, rest) = std::mem::take(&mut self.tcp.waiting)
            .into_iter()
            .partition(|w| w.local == local && w.remote == remote);
        self.tcp.waiting = rest;
        mine
    }

    /// RFC 6544 §7.1: the connection is open; the checks waiting for it go out.
    pub fn handle_tcp_connected(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        self.tcp.established.insert((local, remote));
        for w in self.take_waiting(local, remote) {
            self.send_check(now, w.pair, w.kind, w.use_candidate, w.nomination);
        }
    }

    /// RFC 6544 §7.2: a listener accepted a connection from `remote`.
    pub fn handle_tcp_accepted(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.tcp.established.insert((local, remote));
    }

    /// RFC 6544 §7.1: the connection could not be opened: its pairs fail.
    pub fn handle_tcp_connect_failed(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        for w in self.take_waiting(local, remote) {
            if w.kind == CheckKind::Connectivity {
                if let Some(i) = self.pair_index(w.pair) {
                    tracing::debug!(%local, %remote, "ICE-TCP: connection failed");
                    self.fail_pair(i, now);
                }
            }
        }
        self.check_failed();
    }

    /// The connection closed: checks on it fail, and a selected pair on it loses consent.
    pub fn handle_tcp_closed(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        self.tcp.established.remove(&(local, remote));
        let on_it = |s: SocketAddr, d: SocketAddr| s == local && d == remote;
        let mut failed: Vec<PairId> = Vec::new();
        self.in_flight.retain(|f| {
            let hit = on_it(f.source, f.destination) && f.kind == CheckKind::Connectivity;
            if hit {
                failed.push(f.pair);
            }
            !hit
        });
        for id in failed {
            if let Some(i) = self.pair_index(id) {
                self.fail_pair(i, now);
            }
        }
        self.handle_tcp_connect_failed(now, local, remote);
        if !self.consent_lost {
            if let Some(s) = self
                .selected
                .iter()
                .position(|s| s.transport.is_reliable() && on_it(s.local, s.remote))
            {
                tracing::debug!(%local, %remote, "ICE-TCP: the selected pair's connection closed");
                self.lose_consent(s);
            }
        }
    }

    /// After an ICE restart: the connections the old checklist had stay open.
    pub(crate) fn adopt_tcp_connections(&mut self, old: &Checklist) {
        self.tcp
            .established
            .extend(old.tcp.established.iter().copied());
    }
}
