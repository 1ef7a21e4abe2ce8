//! Forming, pruning and ordering the pairs of a checklist (RFC 8445 §6.1.2.2 - §6.1.2.5).

use std::net::SocketAddr;

use rand::Rng;

use super::Checklist;
use crate::ice::candidate::CandidateKind;
use crate::ice::config::IceRole;
use crate::ice::pair::{pair_priority, CandidatePair, PairId, PairState};

impl Checklist {
    /// RFC 8445 §6.1.2.3: recomputes the pair priorities for the current role.
    pub(super) fn reprioritise(&mut self) {
        for i in 0..self.pairs.len() {
            let (l, r) = (self.pairs[i].local, self.pairs[i].remote);
            self.pairs[i].priority = self.priority_of(l, r);
        }
        self.sort_and_limit();
    }

    pub(super) fn priority_of(&self, l: usize, r: usize) -> u64 {
        let (local, remote) = (self.local[l].priority, self.remote[r].priority);
        match self.role {
            IceRole::Controlling => pair_priority(local, remote),
            IceRole::Controlled => pair_priority(remote, local),
        }
    }

    pub(super) fn pair_index(&self, id: PairId) -> Option<usize> {
        self.pairs.iter().position(|p| p.id == id)
    }

    pub(super) fn pair(&self, id: PairId) -> Option<&CandidatePair> {
        self.pairs.iter().find(|p| p.id == id)
    }

    pub(super) fn pair_at(&self, local_base: SocketAddr, remote: SocketAddr) -> Option<usize> {
        self.pairs
            .iter()
            .position(|p| p.local_base == local_base && p.remote_addr == remote)
    }

    /// Pairs remote candidate `r` with every local candidate that forms pairs.
    pub(super) fn pair_remote(&mut self, r: usize) {
        if self.remote[r].kind == CandidateKind::PeerReflexive {
            return;
        }
        for l in 0..self.local.len() {
            let c = &self.local[l];
            let pairable = match c.kind {
                CandidateKind::Host | CandidateKind::Relayed => !c.is_tcp_passive(),
                CandidateKind::ServerReflexive => !self
                    .local
                    .iter()
                    .any(|h| h.kind == CandidateKind::Host && Some(h.addr) == c.base),
                CandidateKind::PeerReflexive => false,
            };
            if pairable {
                self.add_pair(l, r);
            }
        }
        self.sort_and_limit();
    }

    /// After a peer-reflexive remote candidate was signalled: new priorities and
    /// foundations for its pairs.
    pub(super) fn refresh_pairs_of_remote(&mut self, r: usize) {
        for i in 0..self.pairs.len() {
            if self.pairs[i].remote == r {
                let l = self.pairs[i].local;
                self.pairs[i].priority = self.priority_of(l, r);
                self.pairs[i].foundation.1 = self.remote[r].foundation.clone();
            }
        }
        self.sort_and_limit();
    }

    /// RFC 8445 §6.1.2.2 and §6.1.2.4: forms the pair of local `l` and remote `r` unless
    /// it is redundant (same local base and remote address as a pair of higher
    /// priority). Returns the new pair's id.
    pub(super) fn add_pair(&mut self, l: usize, r: usize) -> Option<PairId> {
        let (local, remote) = (&self.local[l], &self.remote[r]);
        if !local.can_pair_with(remote) {
            return None;
        }
        let base = local.base_or_addr();
        let priority = self.priority_of(l, r);
        let foundation = (local.foundation.clone(), remote.foundation.clone());
        if let Some(i) = self.pair_at(base, remote.addr) {
            let p = &mut self.pairs[i];
            if priority > p.priority && matches!(p.state, PairState::Frozen | PairState::Waiting) {
                p.local = l;
                p.remote = r;
                p.priority = priority;
                p.foundation = foundation;
            }
            return None;
        }
        let state = if self.keeps_checking() {
            // RFC 8838 §10: a pair formed while checks run is Waiting unless a pair of
            // its foundation is already Waiting or In-Progress.
            let busy = self.pairs.iter().any(|p| {
                p.foundation == foundation
                    && matches!(p.state, PairState::Waiting | PairState::InProgress)
            });
            let succeeded = self
                .pairs
                .iter()
                .any(|p| p.foundation == foundation && p.state == PairState::Succeeded);
            if busy && !succeeded {
                PairState::Frozen
            } else {
                PairState::Waiting
            }
        } else {
            PairState::Frozen
        };
        let id = PairId(self.next_pair_id);
        self.next_pair_id += 1;
        self.pairs.push(CandidatePair {
            id,
            local: l,
            remote: r,
            local_base: base,
            remote_addr: remote.addr,
            component: local.component,
            transport: local.transport,
            foundation,
            priority,
            state,
            valid_local: None,
            nominated: false,
            nominating: false,
            remote_nominated: false,
            nomination: None,
        });
        Some(id)
    }

    /// RFC 8445 §6.1.2.3 and §6.1.2.5: orders the pairs by priority and drops the
    /// lowest-priority Frozen or Waiting ones beyond `max_pairs`.
    pub(super) fn sort_and_limit(&mut self) {
        self.pairs
            .sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        while self.pairs.len() > self.config.max_pairs.max(1) {
            let Some(i) = self
                .pairs
                .iter()
                .rposition(|p| matches!(p.state, PairState::Frozen | PairState::Waiting))
            else {
                break;
            };
            let id = self.pairs.remove(i).id;
            self.triggered.retain(|&t| t != id);
        }
    }

    pub(super) fn unique_remote_foundation(&mut self) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let f: String = (0..8)
                .map(|_| char::from(CHARS[self.rng.gen_range(0..CHARS.len())]))
                .collect();
            if !self.remote.iter().any(|c| c.foundation == f) {
                return f;
            }
        }
    }
}
