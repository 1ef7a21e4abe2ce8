//! Which check goes next and sending it (RFC 8445 §6.1.4.2, §7.2.2, §14.3).

use std::collections::HashSet;
use std::time::Instant;

use super::{CheckKind, Checklist, InFlight, CONSENT_TRANSACTION};
use crate::ice::candidate::CandidateKind;
use crate::ice::check::{encode_check, CheckRequest};
use crate::ice::config::{IceRole, Nomination};
use crate::ice::event::ChecklistState;
use crate::ice::pair::{PairId, PairState};
use crate::stun::transaction::ClientTransaction;
use crate::stun::TransactionId;
use crate::Transmit;

impl Checklist {
    /// Whether the checklist has a check to start in the next Ta slot (RFC 8445
    /// §6.1.4.2): a triggered check, a Waiting pair, or a Frozen pair whose foundation
    /// no Waiting or In-Progress pair has.
    pub fn wants_check(&self) -> bool {
        self.next_check(false).is_some()
    }

    /// Whether the checklist has a nomination check to send (RFC 8445 §8.1.1), which
    /// needs only the 5 ms floor ([`Pacer::take_nomination_slot`](crate::ice::Pacer::take_nomination_slot)).
    pub fn wants_nomination_check(&self) -> bool {
        self.next_check(true).is_some()
    }

    /// RFC 8445 §6.1.4.2: uses one Ta slot: sends the first triggered check, else the
    /// highest-priority Waiting pair's, else unfreezes and checks a Frozen pair whose
    /// foundation no pair has Waiting or In-Progress, in this checklist or the agent's
    /// others.
    /// Returns whether a check was sent.
    pub fn start_check(&mut self, now: Instant) -> bool {
        self.start_next(now, false)
    }

    /// RFC 8445 §8.1.1: uses a nomination slot: sends the first pending nomination check
    /// (USE-CANDIDATE on a pair that succeeded). Returns whether a check was sent.
    pub fn start_nomination_check(&mut self, now: Instant) -> bool {
        self.start_next(now, true)
    }

    pub(super) fn start_next(&mut self, now: Instant, nomination_only: bool) -> bool {
        let Some((id, triggered)) = self.next_check(nomination_only) else {
            return false;
        };
        if triggered && nomination_only {
            self.triggered.retain(|&t| t != id);
        } else if triggered {
            // Entries before it are for pairs no longer Waiting: drop them.
            while let Some(front) = self.triggered.pop_front() {
                if front == id {
                    break;
                }
            }
        }
        let Some(i) = self.pair_index(id) else {
            return false;
        };
        let aggressive = self.config.nomination == Nomination::Aggressive;
        let renomination = self.renomination();
        let pair = &mut self.pairs[i];
        let controlling = self.role == IceRole::Controlling;
        // draft-thatcher-ice-renomination-01 §3: NOMINATION instead of USE-CANDIDATE
        // (as libwebrtc: one or the other, never both).
        let nomination = pair
            .nomination
            .filter(|_| controlling && renomination && pair.nominating);
        let use_candidate = controlling && !renomination && (pair.nominating || aggressive);
        if pair.state != PairState::Succeeded {
            pair.state = PairState::InProgress;
        }
        self.send_check(now, id, CheckKind::Connectivity, use_candidate, nomination);
        true
    }

    /// The next check to start: `(pair, from the triggered queue)`. With
    /// `nomination_only`, only a pending nomination check.
    pub(super) fn next_check(&self, nomination_only: bool) -> Option<(PairId, bool)> {
        if self.config.lite
            || self.retiring
            || self.remote_key.is_none()
            || !matches!(
                self.state,
                ChecklistState::Running | ChecklistState::Completed
            )
        {
            return None;
        }
        for &id in &self.triggered {
            if let Some(p) = self.pair(id) {
                let nominating = p.nominating && self.role == IceRole::Controlling;
                if nominating && p.state == PairState::Succeeded {
                    return Some((id, true));
                }
                if p.state == PairState::Waiting && !nomination_only {
                    return Some((id, true));
                }
            }
        }
        if nomination_only || !self.keeps_checking() {
            return None;
        }
        if let Some(p) = self.pairs.iter().find(|p| p.state == PairState::Waiting) {
            return Some((p.id, false));
        }
        let busy: HashSet<&(String, String)> = self
            .pairs
            .iter()
            .filter(|p| matches!(p.state, PairState::Waiting | PairState::InProgress))
            .map(|p| &p.foundation)
            .collect();
        self.pairs
            .iter()
            .find(|p| {
                p.state == PairState::Frozen
                    && !busy.contains(&p.foundation)
                    && !self.foreign_busy.contains(&p.foundation)
            })
            .map(|p| (p.id, false))
    }

    /// RFC 8445 §7.2.2 and §14.3: sends a check on pair `id` as a new transaction.
    pub(super) fn send_check(
        &mut self,
        now: Instant,
        id: PairId,
        kind: CheckKind,
        use_candidate: bool,
        nomination: Option<u32>,
    ) {
        if self.check_waits_for_connection(id, kind, use_candidate, nomination) {
            return;
        }
        let (Some(remote), Some(key)) = (&self.remote_credentials, &self.remote_key) else {
            return;
        };
        let Some(pair) = self.pair(id) else {
            return;
        };
        let local = &self.local[pair.local];
        // RFC 8445 §7.1.1: the priority of a peer-reflexive candidate from this base.
        let priority =
            (CandidateKind::PeerReflexive.type_preference() << 24) | (local.priority & 0x00FF_FFFF);
        let transport = pair.transport.transport();
        let (source, destination) = (pair.local_base, pair.remote_addr);
        let username = format!("{}:{}", remote.ufrag, self.local_credentials.ufrag);
        let tid = TransactionId::random(&mut self.rng);
        let request = encode_check(
            tid,
            &CheckRequest {
                username: &username,
                priority,
                role: self.role,
                tie_breaker: self.tie_breaker,
                use_candidate,
                nomination,
                key: key.as_bytes(),
            },
        );
        let config = match kind {
            CheckKind::Connectivity => {
                // RFC 8445 §14.3: RTO = max(500 ms, Ta * (Waiting + In-Progress)).
                let busy = self
                    .pairs
                    .iter()
                    .filter(|p| matches!(p.state, PairState::Waiting | PairState::InProgress))
                    .count() as u32;
                let mut c = self.config.check_transaction;
                c.rto = c.rto.max(self.config.effective_ta() * busy);
                // RFC 6544 §7.1 / RFC 8489 §6.2.2: sent once over TCP, Ti = 39.5 s.
                c.reliable_timeout = crate::ice::tcp::TCP_CHECK_TIMEOUT;
                c
            }
            CheckKind::Consent => CONSENT_TRANSACTION,
        };
        let tx = ClientTransaction::new(now, tid, request, transport.is_reliable(), config);
        let key = key.clone();
        self.in_flight.push(InFlight {
            tx,
            pair: id,
            kind,
            use_candidate,
            nomination,
            priority,
            role: self.role,
            key,
            source,
            destination,
            transport,
        });
        self.flush_in_flight(now);
    }

    pub(super) fn flush_in_flight(&mut self, now: Instant) {
        for f in &mut self.in_flight {
            while let Some(payload) = f.tx.poll_transmit(now) {
                self.transmits.push_back(Transmit {
                    source: f.source,
                    destination: f.destination,
                    transport: f.transport,
                    payload,
                });
            }
        }
    }
}
