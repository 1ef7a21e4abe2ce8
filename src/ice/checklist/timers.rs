//! Timers: retransmissions, consent and keepalives, nomination delay, connect timeout
//! and failure (RFC 8445 §7.2.5.2, §8.1.2, §11; RFC 7675).

use std::time::Instant;

use super::{CheckKind, Checklist};
use crate::ice::check::encode_keepalive;
use crate::ice::event::{ChecklistState, IceEvent};
use crate::ice::pair::PairState;
use crate::stun::transaction::TransactionState;
use crate::stun::TransactionId;
use crate::Transmit;

impl Checklist {
    /// Advances every timer: retransmissions and check timeouts, nomination, consent
    /// checks and expiry, keepalives, and the connect timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Transactions: timeouts fail their pair (RFC 8445 §7.2.5.2.2).
        let mut timed_out = Vec::new();
        for f in &mut self.in_flight {
            f.tx.handle_timeout(now);
        }
        let mut k = 0;
        while k < self.in_flight.len() {
            if self.in_flight[k].tx.state() == TransactionState::TimedOut {
                timed_out.push(self.in_flight.swap_remove(k));
            } else {
                k += 1;
            }
        }
        for f in timed_out {
            match f.kind {
                CheckKind::Connectivity => {
                    if let Some(i) = self.pair_index(f.pair) {
                        tracing::debug!(pair = ?f.pair, "check timed out");
                        self.fail_pair(i, now);
                    }
                }
                CheckKind::Consent => {
                    let newly = self
                        .selected
                        .iter_mut()
                        .find(|s| s.pair == f.pair)
                        .is_some_and(|s| s.consent.check_timed_out());
                    if newly && !self.disconnected && !self.consent_lost {
                        self.disconnected = true;
                        self.events.push_back(IceEvent::Disconnected);
                    }
                }
            }
        }
        self.flush_in_flight(now);

        // Consent (RFC 7675) and keepalives (RFC 8445 §11).
        if !self.consent_lost {
            if let Some(s) = self.selected.iter().position(|s| s.consent.is_expired(now)) {
                self.lose_consent(s);
            }
        }
        if !self.consent_lost {
            let mut consent_checks = Vec::new();
            let mut keepalives = Vec::new();
            for s in &mut self.selected {
                if s.consent.check_due(now) {
                    s.consent.sent(now, &mut self.rng);
                    s.sent_since_tick = true;
                    consent_checks.push(s.pair);
                }
                if now >= s.next_keepalive {
                    if !std::mem::replace(&mut s.sent_since_tick, false) {
                        keepalives.push((s.local, s.remote, s.transport));
                    }
                    s.next_keepalive = now + self.config.keepalive_interval;
                }
            }
            for id in consent_checks {
                self.send_check(now, id, CheckKind::Consent, false, None);
            }
            for (source, destination, transport) in keepalives {
                let tid = TransactionId::random(&mut self.rng);
                self.transmits.push_back(Transmit {
                    source,
                    destination,
                    transport,
                    payload: encode_keepalive(tid),
                });
            }
        }

        if self.nomination_deadline.is_some_and(|t| now >= t) {
            self.nomination_deadline = None;
            self.maybe_nominate(now);
        }
        if self.reselect_deadline.is_some_and(|t| now >= t) {
            tracing::debug!("no pair selected again after a local candidate was removed");
            self.reselect_deadline = None;
            self.fail();
        }
        if self.state == ChecklistState::Running
            && !self.retiring
            && self
                .started_at
                .is_some_and(|t| now >= t + self.config.connect_timeout)
        {
            tracing::debug!("connect timeout");
            self.fail();
        }
        self.check_failed();
    }

    pub(super) fn lose_consent(&mut self, s: usize) {
        self.consent_lost = true;
        self.connected = false;
        let s = &self.selected[s];
        self.events.push_back(IceEvent::ConsentLost {
            local: s.local_candidate.clone(),
            remote: s.remote_candidate.clone(),
        });
        if !self.disconnected {
            self.disconnected = true;
            self.events.push_back(IceEvent::Disconnected);
        }
        self.selected.clear();
        self.in_flight.clear();
        self.fail();
    }

    /// RFC 8445 §8.1.2 / RFC 8838 §8: with both end-of-candidates, a checklist whose
    /// pairs all failed fails.
    pub(super) fn check_failed(&mut self) {
        if self.state != ChecklistState::Running
            || self.retiring
            || !self.end_of_local
            || !self.end_of_remote
            || self.pairs.is_empty()
            || self.pairs.iter().any(|p| p.state != PairState::Failed)
            || self
                .in_flight
                .iter()
                .any(|f| f.kind == CheckKind::Connectivity)
        {
            return;
        }
        self.fail();
    }

    pub(super) fn fail(&mut self) {
        if self.state == ChecklistState::Failed {
            return;
        }
        self.state = ChecklistState::Failed;
        self.triggered.clear();
        self.nomination_deadline = None;
        self.in_flight.retain(|f| f.kind == CheckKind::Consent);
        self.events.push_back(IceEvent::Failed);
    }

    /// The next instant [`Checklist::handle_timeout`] must run, not counting Ta slots
    /// (ask [`Checklist::wants_check`] for those).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for f in &self.in_flight {
            min(f.tx.poll_timeout());
        }
        if !self.consent_lost {
            for s in &self.selected {
                min(s.consent.next_check());
                min(s.consent.expires_at());
                min(Some(s.next_keepalive));
            }
        }
        min(self.nomination_deadline);
        min(self.reselect_deadline);
        if self.state == ChecklistState::Running && !self.retiring {
            min(self.started_at.map(|s| s + self.config.connect_timeout));
        }
        t
    }
}
