//! The checklist of one data stream (RFC 8445 §6.1.2 - §8): pairing, pruning and
//! ordering, the frozen algorithm, ordinary and triggered checks, their responses,
//! nomination, and consent freshness on the selected pairs.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;

use super::candidate::{Candidate, CandidateKind};
use super::check::{
    encode_check, encode_error, encode_keepalive, encode_success, validate_check, CheckRequest,
};
use super::config::{IceConfig, IceRole, Nomination};
use super::consent::Consent;
use super::credentials::IceCredentials;
use super::event::{ChecklistState, IceEvent};
use super::pair::{pair_priority, CandidatePair, PairId, PairState};
use super::IceError;
use crate::stun::attribute::{ErrorCode, Username, XorMappedAddress};
use crate::stun::transaction::{ClientTransaction, TransactionConfig, TransactionState};
use crate::stun::{Class, IntegrityKey, Message, Method, TransactionId};
use crate::{Transmit, Transport};

/// RFC 7675 §5.1: a consent check is retransmitted like a check, at 0, 0.5, 1.5 and
/// 3.5 s, and counts as unanswered at 5.5 s, about when the next one is due.
const CONSENT_TRANSACTION: TransactionConfig = TransactionConfig {
    rto: Duration::from_millis(500),
    rc: 4,
    rm: 4,
    reliable_timeout: Duration::from_millis(5_500),
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckKind {
    /// RFC 8445 §7.2: an ordinary, triggered or nominating check.
    Connectivity,
    /// RFC 7675: a consent check on a selected pair.
    Consent,
}

/// A check waiting for its response.
struct InFlight {
    tx: ClientTransaction,
    pair: PairId,
    kind: CheckKind,
    use_candidate: bool,
    /// The PRIORITY sent, the priority of a local peer-reflexive candidate.
    priority: u32,
    /// The role the check was sent in (RFC 8445 §7.2.5.1).
    role: IceRole,
    /// The remote password the request was signed with.
    key: IntegrityKey,
    source: SocketAddr,
    destination: SocketAddr,
    transport: Transport,
}

/// The selected pair of one component (RFC 8445 §12.1).
struct Selected {
    component: u16,
    pair: PairId,
    priority: u64,
    local: SocketAddr,
    remote: SocketAddr,
    transport: Transport,
    local_candidate: Candidate,
    remote_candidate: Candidate,
    consent: Consent,
    /// RFC 8445 §11: whether anything was sent since the last keepalive tick.
    sent_since_tick: bool,
    next_keepalive: Instant,
}

/// The candidate pairs of one data stream and everything done with them (RFC 8445
/// §6.1.2 - §8, RFC 7675, RFC 8838).
///
/// A checklist is a sans-IO state machine on its own: it answers checks, sends its
/// own, nominates, and keeps consent on its selected pairs. Only the Ta pacing is
/// shared between the checklists of an agent: the driver asks
/// [`Checklist::wants_check`] and, when its [`Pacer`](super::Pacer) has a slot, calls
/// [`Checklist::start_check`]. [`IceAgent`](super::IceAgent) drives one checklist (one
/// data stream, one or more components) this way. A driver of several checklists
/// (one actor per stream) also relays [`IceEvent::RoleChanged`] from one checklist to
/// the others with [`Checklist::set_role`], and gives them all the same tie-breaker
/// and credentials. Each checklist runs the frozen algorithm (RFC 8445 §6.1.2.6) over
/// its own pairs: a foundation is unfrozen once per checklist, not once per checklist
/// set, and a success does not unfreeze other checklists' pairs.
///
/// Candidates given to a checklist already have their priority and foundation
/// ([`IceAgent::add_local_candidate`](super::IceAgent::add_local_candidate) computes
/// them).
pub struct Checklist {
    config: IceConfig,
    rng: StdRng,
    local_credentials: IceCredentials,
    local_key: IntegrityKey,
    remote_credentials: Option<IceCredentials>,
    remote_key: Option<IntegrityKey>,
    role: IceRole,
    tie_breaker: u64,
    remote_lite: bool,
    local: Vec<Candidate>,
    remote: Vec<Candidate>,
    /// Sorted by priority, highest first.
    pairs: Vec<CandidatePair>,
    next_pair_id: u32,
    /// RFC 8445 §6.1.4.1: the triggered-check queue.
    triggered: VecDeque<PairId>,
    in_flight: Vec<InFlight>,
    state: ChecklistState,
    started_at: Option<Instant>,
    end_of_local: bool,
    end_of_remote: bool,
    /// After an ICE restart: answers checks and keeps consent, starts no checks.
    retiring: bool,
    selected: Vec<Selected>,
    first_valid_at: Option<Instant>,
    nomination_deadline: Option<Instant>,
    connected: bool,
    disconnected: bool,
    consent_lost: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<IceEvent>,
}

impl Checklist {
    /// A checklist with these local credentials and tie-breaker (RFC 8445 §5.3,
    /// §7.1.3), starting in `config.role`. `rng` draws transaction ids, peer-reflexive
    /// foundations and consent jitter.
    pub fn new(
        config: IceConfig,
        local_credentials: IceCredentials,
        tie_breaker: u64,
        rng: StdRng,
    ) -> Self {
        let role = if config.lite {
            IceRole::Controlled
        } else {
            config.role
        };
        Checklist {
            local_key: local_credentials.key(),
            local_credentials,
            remote_credentials: None,
            remote_key: None,
            role,
            tie_breaker,
            remote_lite: false,
            config,
            rng,
            local: Vec::new(),
            remote: Vec::new(),
            pairs: Vec::new(),
            next_pair_id: 0,
            triggered: VecDeque::new(),
            in_flight: Vec::new(),
            state: ChecklistState::New,
            started_at: None,
            end_of_local: false,
            end_of_remote: false,
            retiring: false,
            selected: Vec::new(),
            first_valid_at: None,
            nomination_deadline: None,
            connected: false,
            disconnected: false,
            consent_lost: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The local ufrag and password.
    pub fn local_credentials(&self) -> &IceCredentials {
        &self.local_credentials
    }

    /// The remote ufrag and password, once known.
    pub fn remote_credentials(&self) -> Option<&IceCredentials> {
        self.remote_credentials.as_ref()
    }

    /// RFC 8445 §5.3: the peer's ufrag and password; checks start once they are known.
    pub fn set_remote_credentials(&mut self, credentials: IceCredentials) {
        self.remote_key = Some(credentials.key());
        self.remote_credentials = Some(credentials);
    }

    /// The current role.
    pub fn role(&self) -> IceRole {
        self.role
    }

    /// Sets the role without an event (the driver relays another checklist's
    /// [`IceEvent::RoleChanged`]); pair priorities are recomputed (RFC 8445 §7.3.1.1).
    pub fn set_role(&mut self, role: IceRole) {
        if self.config.lite || role == self.role {
            return;
        }
        self.role = role;
        self.reprioritise();
        if role == IceRole::Controlled {
            self.pairs.iter_mut().for_each(|p| p.nominating = false);
        }
    }

    /// RFC 8445 §7.1.3: the tie-breaker.
    pub fn tie_breaker(&self) -> u64 {
        self.tie_breaker
    }

    /// RFC 8445 §6.1.1: the peer is a lite implementation (`a=ice-lite`), so this
    /// (full) agent takes the controlling role.
    pub fn set_remote_lite(&mut self, lite: bool) {
        self.remote_lite = lite;
        if lite && !self.config.lite && self.role == IceRole::Controlled {
            self.role = IceRole::Controlling;
            self.reprioritise();
            self.events
                .push_back(IceEvent::RoleChanged(IceRole::Controlling));
        }
    }

    /// Whether the peer is a lite implementation.
    pub fn is_remote_lite(&self) -> bool {
        self.remote_lite
    }

    /// The state.
    pub fn state(&self) -> ChecklistState {
        self.state
    }

    /// Whether every component has a selected pair and consent is not lost.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.consent_lost
    }

    /// The local candidates, including peer-reflexive ones learnt from responses.
    pub fn local_candidates(&self) -> &[Candidate] {
        &self.local
    }

    /// The remote candidates, including peer-reflexive ones learnt from checks.
    pub fn remote_candidates(&self) -> &[Candidate] {
        &self.remote
    }

    /// The pairs, highest priority first.
    pub fn pairs(&self) -> &[CandidatePair] {
        &self.pairs
    }

    /// The local and remote candidates of a pair of this checklist. The local one is
    /// the valid pair's (RFC 8445 §7.2.5.3.2) once the pair succeeded.
    pub fn candidates(&self, pair: &CandidatePair) -> (&Candidate, &Candidate) {
        let local = pair.valid_local.unwrap_or(pair.local);
        (&self.local[local], &self.remote[pair.remote])
    }

    /// The selected pair of `component` (RFC 8445 §12.1).
    pub fn selected_pair(&self, component: u16) -> Option<(&Candidate, &Candidate)> {
        self.selected
            .iter()
            .find(|s| s.component == component)
            .map(|s| (&s.local_candidate, &s.remote_candidate))
    }

    /// Whether `addr` is the address of a remote candidate (data from elsewhere is
    /// dropped).
    pub fn is_remote_address(&self, addr: SocketAddr) -> bool {
        self.remote.iter().any(|c| c.addr == addr)
    }

    /// Whether a response with this transaction id belongs to this checklist.
    pub fn owns_transaction(&self, tid: TransactionId) -> bool {
        self.in_flight.iter().any(|f| f.tx.transaction_id() == tid)
    }

    /// Whether a request's USERNAME names this checklist's local ufrag (RFC 8445 §7.3).
    pub fn is_addressed_to(&self, msg: &Message) -> bool {
        match msg.get::<Username>() {
            Some(Ok(u)) => u
                .as_str()
                .split_once(':')
                .is_some_and(|(l, _)| l == self.local_credentials.ufrag),
            _ => false,
        }
    }

    /// After an ICE restart (RFC 8445 §9): the old checklist starts no more checks and
    /// nominates nothing, but answers checks and keeps consent on its selected pair,
    /// which carries data until the new checklist selects one.
    pub fn retire(&mut self) {
        self.retiring = true;
        self.triggered.clear();
        self.nomination_deadline = None;
        self.in_flight.retain(|f| f.kind == CheckKind::Consent);
    }

    /// RFC 8445 §6.1.2.2: adds a local candidate (priority and foundation set) and pairs
    /// it with the remote candidates. Host and relayed candidates are paired; a
    /// server-reflexive one is replaced by its base (§6.1.2.4), so it only forms pairs
    /// when its base is not a host candidate here.
    pub fn add_local_candidate(&mut self, candidate: Candidate) {
        if self
            .local
            .iter()
            .any(|c| c.addr == candidate.addr && c.base == candidate.base)
        {
            return;
        }
        let pairable = match candidate.kind {
            CandidateKind::Host | CandidateKind::Relayed => true,
            CandidateKind::ServerReflexive => !self
                .local
                .iter()
                .any(|c| c.kind == CandidateKind::Host && Some(c.addr) == candidate.base),
            CandidateKind::PeerReflexive => false,
        };
        self.local.push(candidate);
        if pairable {
            let l = self.local.len() - 1;
            for r in 0..self.remote.len() {
                if self.remote[r].kind != CandidateKind::PeerReflexive {
                    self.add_pair(l, r);
                }
            }
            self.sort_and_limit();
        }
    }

    /// RFC 8838 §9: adds a remote candidate at any time and pairs it into the running
    /// checklist. A candidate already known as peer-reflexive is updated in place
    /// (RFC 8445 §7.3.1.3); other duplicates, and candidates after end-of-candidates
    /// (RFC 8838 §13), are ignored.
    pub fn add_remote_candidate(&mut self, mut candidate: Candidate) {
        candidate.base = None;
        candidate.server = None;
        candidate.local_preference = None;
        if let Some(r) = self.remote.iter().position(|c| {
            c.addr == candidate.addr
                && c.component == candidate.component
                && c.transport == candidate.transport
        }) {
            if self.remote[r].kind == CandidateKind::PeerReflexive
                && candidate.kind != CandidateKind::PeerReflexive
            {
                tracing::debug!(%candidate, "peer-reflexive remote candidate signalled");
                self.remote[r] = candidate;
                self.refresh_pairs_of_remote(r);
                self.pair_remote(r);
            }
            return;
        }
        if self.end_of_remote {
            tracing::debug!(%candidate, "remote candidate after end-of-candidates ignored");
            return;
        }
        self.remote.push(candidate);
        self.pair_remote(self.remote.len() - 1);
    }

    /// RFC 8838 §8.2: no more local candidates will come.
    pub fn end_of_local_candidates(&mut self) {
        self.end_of_local = true;
    }

    /// RFC 8838 §8.2: the peer signalled end-of-candidates.
    pub fn end_of_remote_candidates(&mut self) {
        self.end_of_remote = true;
    }

    /// RFC 8445 §6.1.2.6: starts the checklist (the seed's ProcessCandidates): for each
    /// foundation, the pair with the lowest component ID and highest priority becomes
    /// Waiting; the rest stay Frozen.
    pub fn start(&mut self, now: Instant) {
        if self.state != ChecklistState::New {
            return;
        }
        self.state = ChecklistState::Running;
        self.started_at = Some(now);
        let mut seen: HashSet<(String, String)> = self
            .pairs
            .iter()
            .filter(|p| p.state != PairState::Frozen)
            .map(|p| p.foundation.clone())
            .collect();
        let mut order: Vec<usize> = (0..self.pairs.len()).collect();
        order.sort_by_key(|&i| {
            (
                self.pairs[i].component,
                std::cmp::Reverse(self.pairs[i].priority),
            )
        });
        for i in order {
            if self.pairs[i].state == PairState::Frozen
                && seen.insert(self.pairs[i].foundation.clone())
            {
                self.pairs[i].state = PairState::Waiting;
            }
        }
    }

    /// Whether the checklist has a check to start in the next Ta slot (RFC 8445
    /// §6.1.4.2): a triggered check, a Waiting pair, or a Frozen pair whose foundation
    /// no Waiting or In-Progress pair has.
    pub fn wants_check(&self) -> bool {
        self.next_check(false).is_some()
    }

    /// Whether the checklist has a nomination check to send (RFC 8445 §8.1.1), which
    /// needs only the 5 ms floor ([`Pacer::take_nomination_slot`](super::Pacer::take_nomination_slot)).
    pub fn wants_nomination_check(&self) -> bool {
        self.next_check(true).is_some()
    }

    /// RFC 8445 §6.1.4.2: uses one Ta slot: sends the first triggered check, else the
    /// highest-priority Waiting pair's, else unfreezes and checks a Frozen pair.
    /// Returns whether a check was sent.
    pub fn start_check(&mut self, now: Instant) -> bool {
        self.start_next(now, false)
    }

    /// RFC 8445 §8.1.1: uses a nomination slot: sends the first pending nomination check
    /// (USE-CANDIDATE on a pair that succeeded). Returns whether a check was sent.
    pub fn start_nomination_check(&mut self, now: Instant) -> bool {
        self.start_next(now, true)
    }

    fn start_next(&mut self, now: Instant, nomination_only: bool) -> bool {
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
        let pair = &mut self.pairs[i];
        let use_candidate = self.role == IceRole::Controlling && (pair.nominating || aggressive);
        if pair.state != PairState::Succeeded {
            pair.state = PairState::InProgress;
        }
        self.send_check(now, id, CheckKind::Connectivity, use_candidate);
        true
    }

    /// The next check to start: `(pair, from the triggered queue)`. With
    /// `nomination_only`, only a pending nomination check.
    fn next_check(&self, nomination_only: bool) -> Option<(PairId, bool)> {
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
        if nomination_only || self.state != ChecklistState::Running {
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
            .find(|p| p.state == PairState::Frozen && !busy.contains(&p.foundation))
            .map(|p| (p.id, false))
    }

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

    fn respond(&mut self, to: SocketAddr, from: SocketAddr, payload: Bytes) {
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
    fn handle_request(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, msg: &Message) {
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
                    let c = Candidate::remote_peer_reflexive(
                        from,
                        check.priority,
                        component,
                        transport,
                        foundation,
                    );
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
        if self.config.lite {
            // RFC 8445 §7.3.1.5: a lite agent nominates on USE-CANDIDATE, no checks.
            if check.use_candidate && !self.pairs[i].nominated {
                self.pairs[i].state = PairState::Succeeded;
                self.pairs[i].valid_local = Some(self.pairs[i].local);
                self.nominate(i, now);
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
        // RFC 8445 §7.3.1.5: the controlling agent nominated this pair.
        if check.use_candidate && self.role == IceRole::Controlled && !self.retiring {
            if self.pairs[i].state == PairState::Succeeded {
                if !self.pairs[i].nominated {
                    self.nominate(i, now);
                }
            } else {
                self.pairs[i].remote_nominated = true;
            }
        }
    }

    /// RFC 8445 §7.2.5: a response to one of this checklist's checks.
    fn handle_response(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, msg: &Message) {
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

    fn check_response(
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
                let c =
                    Candidate::local_peer_reflexive(mapped, base, f.priority, component, transport);
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
        let newly = pair.state != PairState::Succeeded;
        pair.state = PairState::Succeeded;
        let foundation = pair.foundation.clone();
        if newly {
            // RFC 8445 §7.2.5.3.3: unfreeze the pairs of the same foundation.
            for p in &mut self.pairs {
                if p.state == PairState::Frozen && p.foundation == foundation {
                    p.state = PairState::Waiting;
                }
            }
        }
        self.first_valid_at.get_or_insert(now);
        if self.retiring {
            return;
        }
        let nominate = match self.role {
            IceRole::Controlling => f.use_candidate,
            IceRole::Controlled => self.pairs[i].remote_nominated,
        };
        if nominate && !self.pairs[i].nominated {
            self.nominate(i, now);
        }
        self.maybe_nominate(now);
    }

    fn consent_response(
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

    fn fail_pair(&mut self, i: usize, now: Instant) {
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

    /// RFC 8445 §8.1.1: the controlling agent picks the best valid pair of each
    /// component and checks it again with USE-CANDIDATE, once no higher-priority pair
    /// is still pending or `nomination_delay` after the first valid pair.
    fn maybe_nominate(&mut self, now: Instant) {
        if self.role != IceRole::Controlling
            || self.config.lite
            || self.retiring
            || self.state != ChecklistState::Running
        {
            return;
        }
        let components: BTreeSet<u16> = self.pairs.iter().map(|p| p.component).collect();
        for component in components {
            if self.selected.iter().any(|s| s.component == component)
                || self
                    .pairs
                    .iter()
                    .any(|p| p.component == component && (p.nominating || p.nominated))
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
            let id = self.pairs[best].id;
            self.pairs[best].nominating = true;
            self.triggered.retain(|&t| t != id);
            self.triggered.push_back(id);
        }
    }

    /// RFC 8445 §8.1.1 / §7.3.1.5: the pair is nominated; the controlling agent selects
    /// the first (with regular nomination), the controlled agent the highest-priority
    /// nominated pair.
    fn nominate(&mut self, i: usize, now: Instant) {
        let pair = &mut self.pairs[i];
        pair.nominated = true;
        pair.nominating = false;
        pair.remote_nominated = false;
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
            Some(s) => follows_priority && priority > self.selected[s].priority,
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
        if complete && !self.connected {
            self.connected = true;
            self.nomination_deadline = None;
            if self.state == ChecklistState::Running {
                // RFC 8445 §8.1.2: the checklist is completed; pairs not yet checked
                // are removed.
                self.state = ChecklistState::Completed;
                self.pairs
                    .retain(|p| !matches!(p.state, PairState::Frozen | PairState::Waiting));
                let pairs = &self.pairs;
                self.triggered
                    .retain(|id| pairs.iter().any(|p| p.id == *id));
            }
            self.events.push_back(IceEvent::Connected);
        }
    }

    /// The components that need a selected pair: those of the local candidates (after
    /// the peer's end-of-candidates, only those the peer has candidates for too).
    fn required_components(&self) -> BTreeSet<u16> {
        let local: BTreeSet<u16> = self.local.iter().map(|c| c.component).collect();
        if self.end_of_remote {
            let remote: BTreeSet<u16> = self.remote.iter().map(|c| c.component).collect();
            local.intersection(&remote).copied().collect()
        } else {
            local
        }
    }

    fn switch_role(&mut self, role: IceRole, now: Instant) {
        if role == self.role {
            return;
        }
        tracing::debug!(?role, "role conflict: switching role");
        self.set_role(role);
        self.events.push_back(IceEvent::RoleChanged(role));
        self.maybe_nominate(now);
    }

    /// RFC 8445 §6.1.2.3: recomputes the pair priorities for the current role.
    fn reprioritise(&mut self) {
        for i in 0..self.pairs.len() {
            let (l, r) = (self.pairs[i].local, self.pairs[i].remote);
            self.pairs[i].priority = self.priority_of(l, r);
        }
        self.sort_and_limit();
    }

    fn priority_of(&self, l: usize, r: usize) -> u64 {
        let (local, remote) = (self.local[l].priority, self.remote[r].priority);
        match self.role {
            IceRole::Controlling => pair_priority(local, remote),
            IceRole::Controlled => pair_priority(remote, local),
        }
    }

    fn pair_index(&self, id: PairId) -> Option<usize> {
        self.pairs.iter().position(|p| p.id == id)
    }

    fn pair(&self, id: PairId) -> Option<&CandidatePair> {
        self.pairs.iter().find(|p| p.id == id)
    }

    fn pair_at(&self, local_base: SocketAddr, remote: SocketAddr) -> Option<usize> {
        self.pairs
            .iter()
            .position(|p| p.local_base == local_base && p.remote_addr == remote)
    }

    /// Pairs remote candidate `r` with every local candidate that forms pairs.
    fn pair_remote(&mut self, r: usize) {
        if self.remote[r].kind == CandidateKind::PeerReflexive {
            return;
        }
        for l in 0..self.local.len() {
            let c = &self.local[l];
            let pairable = match c.kind {
                CandidateKind::Host | CandidateKind::Relayed => true,
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
    fn refresh_pairs_of_remote(&mut self, r: usize) {
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
    fn add_pair(&mut self, l: usize, r: usize) -> Option<PairId> {
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
        let state = if self.state == ChecklistState::Running {
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
        });
        Some(id)
    }

    /// RFC 8445 §6.1.2.3 and §6.1.2.5: orders the pairs by priority and drops the
    /// lowest-priority Frozen or Waiting ones beyond `max_pairs`.
    fn sort_and_limit(&mut self) {
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

    fn unique_remote_foundation(&mut self) -> String {
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

    /// RFC 8445 §7.2.2 and §14.3: sends a check on pair `id` as a new transaction.
    fn send_check(&mut self, now: Instant, id: PairId, kind: CheckKind, use_candidate: bool) {
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
            priority,
            role: self.role,
            key,
            source,
            destination,
            transport,
        });
        self.flush_in_flight(now);
    }

    fn flush_in_flight(&mut self, now: Instant) {
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
                self.send_check(now, id, CheckKind::Consent, false);
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

    fn lose_consent(&mut self, s: usize) {
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
    fn check_failed(&mut self) {
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

    fn fail(&mut self) {
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
        if self.state == ChecklistState::Running && !self.retiring {
            min(self.started_at.map(|s| s + self.config.connect_timeout));
        }
        t
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// RFC 8445 §12.1: application data over the selected pair of `component`: a
    /// transmit from the local candidate's base (a relayed address for relayed
    /// candidates; the driver sends those through its TURN client).
    pub fn send(&mut self, component: u16, data: Bytes) -> Result<Transmit, IceError> {
        if self.consent_lost {
            return Err(IceError::ConsentLost);
        }
        let s = self
            .selected
            .iter_mut()
            .find(|s| s.component == component)
            .ok_or(IceError::NotConnected)?;
        s.sent_since_tick = true;
        Ok(Transmit {
            source: s.local,
            destination: s.remote,
            transport: s.transport,
            payload: data,
        })
    }

    /// Whether `component` has a selected pair data can go on.
    pub fn has_selected_pair(&self, component: u16) -> bool {
        !self.consent_lost && self.selected.iter().any(|s| s.component == component)
    }
}
