//! Renomination (draft-thatcher-ice-renomination-01, as libwebrtc does it) and the
//! removal of local candidates whose address went away (continual gathering).
//!
//! Negotiated when both agents offer the `renomination` ice-option: the controlling
//! agent nominates with a NOMINATION value that grows with each nomination, and may
//! nominate again — automatically when a pair of higher priority becomes valid after
//! the first nomination, when the selected pair's local candidate is removed, or when
//! the application asks ([`Checklist::renominate`]). The controlled agent selects the
//! pair of a NOMINATION above the highest it has seen for the component, whatever its
//! priority (§3); lower or equal values do not change the selection. Checks go on
//! after the checklist completes, so that a later pair can become valid.

use std::net::SocketAddr;
use std::time::Instant;

use super::Checklist;
use crate::ice::config::IceRole;
use crate::ice::event::ChecklistState;
use crate::ice::pair::{PairId, PairState};
use crate::ice::IceError;
use crate::stun::attribute::Nomination;

impl Checklist {
    /// draft-thatcher-ice-renomination-01: the peer's ice-options include
    /// `renomination` (signalled with its credentials, like `a=ice-lite`).
    pub fn set_remote_renomination(&mut self, renomination: bool) {
        self.remote_renomination = renomination;
    }

    /// Whether renomination is negotiated: this agent's
    /// [`IceConfig::renomination`](crate::ice::IceConfig::renomination) and the peer's
    /// option.
    pub fn renomination(&self) -> bool {
        self.config.renomination && self.remote_renomination
    }

    /// Whether pairs are still checked: while Running, and with renomination also
    /// once Completed.
    pub(super) fn keeps_checking(&self) -> bool {
        self.state == ChecklistState::Running
            || (self.state == ChecklistState::Completed && self.renomination())
    }

    /// Controlling: queues the nomination check of pair `i` (RFC 8445 §8.1.1), with the
    /// next NOMINATION value when renomination is negotiated.
    pub(super) fn queue_nomination(&mut self, i: usize) {
        if self.renomination() {
            self.nomination_counter = (self.nomination_counter + 1).min(Nomination::MAX);
            let n = self.nomination_counter;
            self.pairs[i].nomination = Some(n);
            self.latest_nomination.insert(self.pairs[i].component, n);
        }
        let id = self.pairs[i].id;
        self.pairs[i].nominating = true;
        self.triggered.retain(|&t| t != id);
        self.triggered.push_back(id);
    }

    /// Controlled: a NOMINATION value `n` arrived for `component`; whether it is above
    /// the highest seen (and now is the highest).
    pub(super) fn take_nomination(&mut self, component: u16, n: u32) -> bool {
        let highest = self.highest_nomination.entry(component).or_insert(0);
        if n > *highest {
            *highest = n;
            true
        } else {
            tracing::debug!(
                n,
                highest = *highest,
                "NOMINATION not above the highest seen"
            );
            false
        }
    }

    /// Controlling, renomination negotiated: pair `id` just became valid; it is
    /// nominated if its priority is above the selected pair's of its component (and
    /// above any pair being nominated).
    pub(super) fn maybe_renominate(&mut self, id: PairId) {
        if self.role != IceRole::Controlling || self.retiring || !self.renomination() {
            return;
        }
        let Some(i) = self.pair_index(id) else {
            return;
        };
        let (component, priority) = (self.pairs[i].component, self.pairs[i].priority);
        let Some(selected) = self.selected.iter().find(|s| s.component == component) else {
            return; // the first nomination is maybe_nominate's
        };
        let bar = self
            .pairs
            .iter()
            .filter(|p| p.component == component && p.nominating)
            .map(|p| p.priority)
            .chain([selected.priority])
            .max()
            .unwrap_or(0);
        if priority > bar && selected.pair != id {
            tracing::debug!(pair = ?id, "renominating a better valid pair");
            self.queue_nomination(i);
        }
    }

    /// draft-thatcher-ice-renomination-01: the controlling agent nominates the valid
    /// pair of `local` (its base, or its local candidate's address) and `remote` in
    /// `component`; once the check succeeds both agents select it, whatever its
    /// priority. A pair that becomes valid later with a higher priority is nominated
    /// again automatically.
    pub fn renominate(
        &mut self,
        component: u16,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), IceError> {
        if !self.renomination() {
            return Err(IceError::CannotRenominate("renomination is not negotiated"));
        }
        if self.role != IceRole::Controlling || self.retiring {
            return Err(IceError::CannotRenominate("not the controlling agent"));
        }
        let Some(i) = self.pairs.iter().position(|p| {
            p.component == component
                && p.remote_addr == remote
                && (p.local_base == local || self.candidates(p).0.addr == local)
        }) else {
            return Err(IceError::CannotRenominate("no such pair"));
        };
        if self.pairs[i].state != PairState::Succeeded {
            return Err(IceError::CannotRenominate("the pair is not valid"));
        }
        self.queue_nomination(i);
        Ok(())
    }

    /// Removes the local candidates whose base is `base` (an address that went away)
    /// and their pairs and checks; returns how many candidates went. A component whose
    /// selected pair went with them: with renomination, the controlling agent
    /// nominates its best other valid pair (or the next to succeed), and the
    /// controlled agent waits for that nomination; either fails if the component has
    /// no selected pair again within the consent timeout. Without renomination RFC
    /// 8445 §8.1.1 allows no second nomination: the checklist fails (an ICE restart
    /// is the application's call).
    pub fn remove_local_candidates(&mut self, now: Instant, base: SocketAddr) -> usize {
        let gone: Vec<bool> = self
            .local
            .iter()
            .map(|c| c.base_or_addr() == base)
            .collect();
        let count = gone.iter().filter(|g| **g).count();
        if count == 0 {
            return 0;
        }
        let removed: Vec<PairId> = self
            .pairs
            .iter()
            .filter(|p| {
                p.local_base == base || gone[p.local] || p.valid_local.is_some_and(|v| gone[v])
            })
            .map(|p| p.id)
            .collect();
        self.pairs.retain(|p| !removed.contains(&p.id));
        self.triggered.retain(|id| !removed.contains(id));
        self.in_flight
            .retain(|f| !removed.contains(&f.pair) && f.source != base);
        // The remaining pairs' candidate indices, after the removal.
        let mut index = Vec::with_capacity(gone.len());
        let mut next = 0;
        for g in &gone {
            index.push(next);
            next += usize::from(!g);
        }
        for p in &mut self.pairs {
            p.local = index[p.local];
            p.valid_local = p.valid_local.map(|v| index[v]);
        }
        let mut k = 0;
        self.local.retain(|_| {
            k += 1;
            !gone[k - 1]
        });
        let lost: Vec<u16> = self
            .selected
            .iter()
            .filter(|s| s.local == base || removed.contains(&s.pair))
            .map(|s| s.component)
            .collect();
        self.selected.retain(|s| !lost.contains(&s.component));
        if !lost.is_empty() && !self.retiring && self.state != ChecklistState::Failed {
            tracing::debug!(%base, ?lost, "the selected pair's local candidate was removed");
            if self.renomination() {
                self.reselect_deadline = Some(now + self.config.consent_timeout);
                self.maybe_nominate(now);
            } else {
                self.fail();
            }
        }
        self.check_failed();
        count
    }
}
