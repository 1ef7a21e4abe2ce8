//! Nomination and the selected pairs (RFC 8445 §8.1, §7.3.1.5, §12.1) and role switches.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{Checklist, Selected};
use crate::ice::config::{IceRole, Nomination};
use crate::ice::consent::Consent;
use crate::ice::event::{ChecklistState, IceEvent};
use crate::ice::pair::PairState;

impl Checklist {
    /// RFC 8445 §8.1.1: the controlling agent picks the best valid pair of each
    /// component and checks it again with USE-CANDIDATE, once no higher-priority pair
    /// is still pending or `nomination_delay` after the first valid pair.
    pub(super) fn maybe_nominate(&mut self, now: Instant) {
        if self.role != IceRole::Controlling
            || self.config.lite
            || self.retiring
            || !self.keeps_checking()
        {
            return;
        }
        let renomination = self.renomination();
        let components: BTreeSet<u16> = self.pairs.iter().map(|p| p.component).collect();
        for component in components {
            // RFC 8445 §8.1.1: one nomination per component in a session; with
            // renomination, a component without a selected pair (its pair's local
            // candidate was removed) is nominated again.
            if self.selected.iter().any(|s| s.component == component)
                || self.pairs.iter().any(|p| {
                    p.component == component && (p.nominating || (p.nominated && !renomination))
                })
            {
                continue;
            }
            let Some(best) = self
                .pairs
                .iter()
                .position(|p| p.component == component && p.state == PairState::Succeeded)
            else {
                continue;
            };
            let pending_higher = self.pairs[..best].iter().any(|p| {
                p.component == component
                    && matches!(
                        p.state,
                        PairState::Frozen | PairState::Waiting | PairState::InProgress
                    )
            });
            let deadline = self.first_valid_at.unwrap_or(now) + self.config.nomination_delay;
            if pending_higher && now < deadline {
                self.nomination_deadline = Some(deadline);
                continue;
            }
            self.queue_nomination(best);
        }
    }

    /// RFC 8445 §8.1.1 / §7.3.1.5: the pair is nominated; the controlling agent selects
    /// the first (with regular nomination), the controlled agent the highest-priority
    /// nominated pair.
    ///
    /// `renominated`: the nomination carries the latest NOMINATION value
    /// (draft-thatcher-ice-renomination-01 §3), so it is selected whatever its priority.
    pub(super) fn nominate(&mut self, i: usize, now: Instant, renominated: bool) {
        let pair = &mut self.pairs[i];
        pair.nominated = true;
        pair.nominating = false;
        pair.remote_nominated = false;
        pair.nomination = None;
        let (id, component, priority) = (pair.id, pair.component, pair.priority);
        let pair = &self.pairs[i];
        let (local, remote) = self.candidates(pair);
        let (local, remote) = (local.clone(), remote.clone());
        self.events.push_back(IceEvent::PairNominated {
            local: local.clone(),
            remote: remote.clone(),
        });
        // The controlled agent (and an aggressive controlling one, RFC 5245 §8.1.2)
        // selects the highest-priority nominated pair.
        let follows_priority =
            self.role == IceRole::Controlled || self.config.nomination == Nomination::Aggressive;
        let replace = match self.selected.iter().position(|s| s.component == component) {
            None => true,
            Some(s) if self.selected[s].pair == id => false,
            Some(s) => renominated || (follows_priority && priority > self.selected[s].priority),
        };
        if replace {
            let consent_interval = if self.config.lite {
                None
            } else {
                self.config.consent_interval
            };
            let consent = Consent::new(
                now,
                consent_interval,
                self.config.consent_timeout,
                &mut self.rng,
            );
            let s = Selected {
                component,
                pair: id,
                priority,
                local: pair.local_base,
                remote: pair.remote_addr,
                transport: pair.transport.transport(),
                local_candidate: local.clone(),
                remote_candidate: remote.clone(),
                consent,
                sent_since_tick: false,
                next_keepalive: now + self.config.keepalive_interval,
            };
            self.selected.retain(|s| s.component != component);
            self.selected.push(s);
            self.events
                .push_back(IceEvent::SelectedPairChanged { local, remote });
        }
        let required = self.required_components();
        let complete = required
            .iter()
            .all(|c| self.selected.iter().any(|s| s.component == *c));
        if complete {
            self.reselect_deadline = None;
        }
        if complete && !self.connected {
            self.connected = true;
            self.nomination_deadline = None;
            if self.state == ChecklistState::Running {
                // RFC 8445 §8.1.2: the checklist is completed; pairs not yet checked
                // are removed. With renomination they are checked on (libwebrtc), as
                // a better pair may still be nominated.
                self.state = ChecklistState::Completed;
                let keep = self.renomination();
                self.pairs
                    .retain(|p| keep || !matches!(p.state, PairState::Frozen | PairState::Waiting));
                let pairs = &self.pairs;
                self.triggered
                    .retain(|id| pairs.iter().any(|p| p.id == *id));
            }
            self.events.push_back(IceEvent::Connected);
        }
    }

    /// The components that need a selected pair: those of the local candidates (after
    /// the peer's end-of-candidates, only those the peer has candidates for too).
    pub(super) fn required_components(&self) -> BTreeSet<u16> {
        let local: BTreeSet<u16> = self.local.iter().map(|c| c.component).collect();
        if self.end_of_remote {
            let remote: BTreeSet<u16> = self.remote.iter().map(|c| c.component).collect();
            local.intersection(&remote).copied().collect()
        } else {
            local
        }
    }

    pub(super) fn switch_role(&mut self, role: IceRole, now: Instant) {
        if role == self.role {
            return;
        }
        tracing::debug!(?role, "role conflict: switching role");
        self.set_role(role);
        self.events.push_back(IceEvent::RoleChanged(role));
        self.maybe_nominate(now);
    }
}
