//! Checks and responses that arrive (RFC 8445 §7.2.5, §7.3; RFC 7675 consent responses).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::{CheckKind, Checklist, InFlight};
use crate::ice::candidate::{Candidate, CandidateKind};
use crate::ice::check::{encode_error, encode_success, validate_check};
use crate::ice::config::IceRole;
use crate::ice::event::IceEvent;
use crate::ice::pair::PairState;
use crate::ice::IceError;
use crate::stun::attribute::{ErrorCode, XorMappedAddress};
use crate::stun::{Class, Message, Method};
use crate::{Transmit, Transport};

impl Checklist {
    /// Handles a STUN message that arrived from `from` on the local address `to` (a
    /// host address, or a relayed address whose TURN client unwrapped it): Binding
    /// requests (RFC 8445 §7.3), responses to this checklist's checks (§7.2.5), and
    /// Binding indications (keepalives, ignored).
    pub fn handle_stun(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, msg: &Message) {
        if msg.method() != Method::BINDING {
            return;
        }
        match msg.class() {
            Class::Request => self.handle_request(now, from, to, msg),
            Class::Success | Class::Error => self.handle_response(now, from, to, msg),
            Class::Indication => {}
        }
        self.check_failed();
    }

    pub(super) fn respond(&mut self, to: SocketAddr, from: SocketAddr, payload: Bytes) {
        let transport = self
            .local
            .iter()
            .find(|c| c.base_or_addr() == to)
            .map_or(Transport::Udp, |c| c.transport.transport());
        self.transmits.push_back(Transmit {
            source: to,
            destination: from,
            transport,
            payload,
        });
    }

    /// RFC 8445 §7.3: answers a check, learns a peer-reflexive remote candidate, and
    /// queues the triggered check.
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        msg: &Message,
    ) {
        let tid = msg.transaction_id();
        let check = match validate_check(
            msg,
            &self.local_credentials.ufrag,
            self.local_key.as_bytes(),
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%from, error = %e, "check refused");
                let payload = encode_error(tid, &e, self.local_key.as_bytes());
                self.respond(to, from, payload);
                return;
            }
        };
        // RFC 8445 §7.3.1.1: role conflicts.
        let conflict = match (self.role, check.role) {
            (IceRole::Controlling, IceRole::Controlling) => {
                if self.tie_breaker >= check.tie_breaker {
                    true
                } else {
                    self.switch_role(IceRole::Controlled, now);
                    false
                }
            }
            (IceRole::Controlled, IceRole::Controlled) => {
                // A lite agent is always controlled (RFC 8445 §6.1.1).
                if self.config.lite || self.tie_breaker < check.tie_breaker {
                    true
                } else {
                    self.switch_role(IceRole::Controlling, now);
                    false
                }
            }
            _ => false,
        };
        if conflict {
            let payload = encode_error(tid, &IceError::RoleConflict, self.local_key.as_bytes());
            self.respond(to, from, payload);
            return;
        }
        // RFC 8445 §7.3.1.2: the success response.
        let payload = encode_success(tid, from, self.local_key.as_bytes());
        self.respond(to, from, payload);

        let Some(l) = self.local.iter().position(|c| {
            matches!(c.kind, CandidateKind::Host | CandidateKind::Relayed) && c.addr == to
        }) else {
            tracing::debug!(%to, "check on an address without a local candidate");
            return;
        };
        let (component, transport) = (self.local[l].component, self.local[l].transport);
        // RFC 8445 §7.3.1.3: a peer-reflexive remote candidate.
        let r =
            match self.remote.iter().position(|c| {
                c.addr == from && c.component == component && c.transport == transport
            }) {
                Some(r) => r,
                None => {
                    let foundation = self.unique_remote_foundation();
                    // RFC 6544 §7.2: on TCP, the peer's end of the connection.
                    let tcp_type = self.local[l].tcp_type().map(crate::ice::counterpart);
                    let c = Candidate::remote_peer_reflexive(
                        from,
                        check.priority,
                        component,
                        transport,
                        foundation,
                    )
                    .with_tcp_type_of(tcp_type);
                    self.events.push_back(IceEvent::PeerReflexive {
                        candidate: c.clone(),
                        local: false,
                    });
                    self.remote.push(c);
                    self.remote.len() - 1
                }
            };
        // RFC 8445 §7.3.1.4: the triggered check.
        let id = match self.pair_at(to, from) {
            Some(i) => self.pairs[i].id,
            None => {
                let Some(id) = self.add_pair(l, r) else {
                    return;
                };
                self.sort_and_limit();
                id
            }
        };
        let Some(i) = self.pair_index(id) else {
            return;
        };
        // draft-thatcher-ice-renomination-01 §3: a NOMINATION above the highest seen
        // for the component (ignored unless negotiated, and when lower or equal).
        let renominated = match check.nomination {
            Some(n)
                if self.renomination() && self.role == IceRole::Controlled && !self.retiring =>
            {
                self.take_nomination(component, n)
            }
            _ => false,
        };
        if self.config.lite {
            // RFC 8445 §7.3.1.5: a lite agent nominates on USE-CANDIDATE, no checks.
            if renominated || (check.use_candidate && !self.pairs[i].nominated) {
                self.pairs[i].state = PairState::Succeeded;
                self.pairs[i].valid_local = Some(self.pairs[i].local);
                self.nominate(i, now, renominated);
            }
            return;
        }
        match self.pairs[i].state {
            PairState::Succeeded => {}
            // floe lets a running check run on rather than cancel and repeat it for
            // every retransmitted request (RFC 8445 §7.3.1.4 cancels it).
            PairState::InProgress => {}
            PairState::Frozen | PairState::Waiting | PairState::Failed => {
                self.pairs[i].state = PairState::Waiting;
                if !self.triggered.contains(&id) {
                    self.triggered.push_back(id);
                }
            }
        }
        if renominated {
            // Selected once valid: now, or when its triggered check succeeds.
            if self.pairs[i].state == PairState::Succeeded {
                self.nominate(i, now, true);
            } else {
                self.pairs[i].nomination = check.nomination;
            }
        } else if check.use_candidate && self.role == IceRole::Controlled && !self.retiring {
            // RFC 8445 §7.3.1.5: the controlling agent nominated this pair.
            if self.pairs[i].state == PairState::Succeeded {
                if !self.pairs[i].nominated {
                    self.nominate(i, now, false);
                }
            } else {
                self.pairs[i].remote_nominated = true;
            }
        }
    }

    /// RFC 8445 §7.2.5: a response to one of this checklist's checks.
    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        msg: &Message,
    ) {
        let tid = msg.transaction_id();
        let Some(i) = self
            .in_flight
            .iter()
            .position(|f| f.tx.transaction_id() == tid)
        else {
            return;
        };
        let authentic = msg.has_integrity()
            && msg
                .verify_integrity(self.in_flight[i].key.as_bytes())
                .is_ok();
        let code = match msg.get::<ErrorCode>() {
            Some(Ok(e)) => Some(e.code),
            _ => None,
        };
        // RFC 8489 §9.1.4: unauthenticated responses are dropped and the check goes on,
        // except the 400 and 401 answers RFC 8489 §9.1.3 sends unsigned.
        let unsigned_ok = msg.class() == Class::Error && matches!(code, Some(400 | 401));
        if !authentic && !unsigned_ok {
            tracing::debug!(%from, "unauthenticated response dropped");
            return;
        }
        let mut f = self.in_flight.swap_remove(i);
        f.tx.complete(now);
        match f.kind {
            CheckKind::Consent => self.consent_response(now, from, to, msg, &f),
            CheckKind::Connectivity => self.check_response(now, from, to, msg, code, &f),
        }
    }

    pub(super) fn check_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        msg: &Message,
        code: Option<u16>,
        f: &InFlight,
    ) {
        let Some(i) = self.pair_index(f.pair) else {
            return;
        };
        if msg.class() == Class::Error {
            if code == Some(487) {
                // RFC 8445 §7.2.5.1: switch role as the request's attribute says, and
                // check the pair again.
                if f.role == self.role {
                    self.switch_role(f.role.opposite(), now);
                }
                let Some(i) = self.pair_index(f.pair) else {
                    return;
                };
                let p = &mut self.pairs[i];
                if p.state != PairState::Succeeded {
                    p.state = PairState::Waiting;
                }
                if !self.triggered.contains(&f.pair) {
                    self.triggered.push_back(f.pair);
                }
                return;
            }
            tracing::debug!(?code, pair = ?f.pair, "check failed with an error response");
            self.fail_pair(i, now);
            return;
        }
        // RFC 8445 §7.2.5.2.1: source and destination must be symmetric.
        let pair = &self.pairs[i];
        let (component, transport, base) = (pair.component, pair.transport, pair.local_base);
        if from != pair.remote_addr || to != base {
            tracing::debug!(%from, %to, "asymmetric response");
            self.fail_pair(i, now);
            return;
        }
        let Some(Ok(XorMappedAddress(mapped))) = msg.get::<XorMappedAddress>() else {
            self.fail_pair(i, now);
            return;
        };
        // RFC 8445 §7.2.5.3.1: the mapped address names the valid pair's local
        // candidate; an unknown one is peer-reflexive.
        let valid_local = match self
            .local
            .iter()
            .position(|c| c.addr == mapped && c.component == component && c.transport == transport)
        {
            Some(l) => l,
            None => {
                let tcp_type = self.local[self.pairs[i].local].tcp_type();
                let c =
                    Candidate::local_peer_reflexive(mapped, base, f.priority, component, transport)
                        .with_tcp_type_of(tcp_type);
                self.events.push_back(IceEvent::PeerReflexive {
                    candidate: c.clone(),
                    local: true,
                });
                self.local.push(c);
                self.local.len() - 1
            }
        };
        let pair = &mut self.pairs[i];
        pair.valid_local = Some(valid_local);
        let id = pair.id;
        let newly = pair.state != PairState::Succeeded;
        pair.state = PairState::Succeeded;
        let foundation = pair.foundation.clone();
        if newly {
            // RFC 8445 §7.2.5.3.3: unfreeze the pairs of the same foundation, here and
            // (through the agent) in the other checklists.
            for p in &mut self.pairs {
                if p.state == PairState::Frozen && p.foundation == foundation {
                    p.state = PairState::Waiting;
                }
            }
            self.succeeded.push(foundation);
        }
        self.first_valid_at.get_or_insert(now);
        if self.retiring {
            return;
        }
        // draft-thatcher-ice-renomination-01 §3: the latest NOMINATION value (sent, or
        // received before the pair was valid) selects the pair.
        let renominated = match (self.role, f.nomination, self.pairs[i].nomination) {
            (IceRole::Controlling, Some(n), _) => {
                if self.pairs[i].nomination == Some(n) {
                    self.pairs[i].nominating = false;
                }
                self.latest_nomination.get(&component) == Some(&n)
            }
            (IceRole::Controlled, _, Some(n)) => {
                self.highest_nomination.get(&component) == Some(&n)
            }
            _ => false,
        };
        let nominate = match self.role {
            IceRole::Controlling => f.use_candidate,
            IceRole::Controlled => self.pairs[i].remote_nominated,
        };
        if renominated || (nominate && !self.pairs[i].nominated) {
            self.nominate(i, now, renominated);
        }
        if newly {
            self.maybe_renominate(id);
        }
        self.maybe_nominate(now);
    }

    pub(super) fn consent_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        msg: &Message,
        f: &InFlight,
    ) {
        let Some(s) = self.selected.iter_mut().find(|s| s.pair == f.pair) else {
            return;
        };
        // RFC 7675 §5.1: only an authenticated success from the pair renews consent.
        if msg.class() != Class::Success || from != s.remote || to != s.local {
            return;
        }
        if s.consent.refreshed(now) && self.disconnected && !self.consent_lost {
            let all_fresh = self.selected.iter().all(|s| !s.consent.is_expired(now));
            if all_fresh {
                self.disconnected = false;
                self.events.push_back(IceEvent::Connected);
            }
        }
    }

    pub(super) fn fail_pair(&mut self, i: usize, now: Instant) {
        let pair = &mut self.pairs[i];
        if pair.state == PairState::Failed {
            return;
        }
        pair.state = PairState::Failed;
        pair.nominating = false;
        let (local, remote) = self.candidates(&self.pairs[i]);
        let (local, remote) = (local.clone(), remote.clone());
        self.events
            .push_back(IceEvent::PairFailed { local, remote });
        self.maybe_nominate(now);
    }
}
