//! The checklist of one data stream (RFC 8445 §6.1.2 - §8): pairing, pruning and
//! ordering, the frozen algorithm, ordinary and triggered checks, their responses,
//! nomination, and consent freshness on the selected pairs.

mod checks;
mod nomination;
mod pairing;
mod receive;
mod renomination;
mod tcp;
mod timers;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;

use super::candidate::{Candidate, CandidateKind};
use super::config::{IceConfig, IceRole};
use super::consent::Consent;
use super::credentials::IceCredentials;
use super::event::{ChecklistState, IceEvent};
use super::pair::{CandidatePair, PairId, PairState};
use super::IceError;
use crate::stun::attribute::Username;
use crate::stun::transaction::{ClientTransaction, TransactionConfig};
use crate::stun::{IntegrityKey, Message, TransactionId};
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
    /// draft-thatcher-ice-renomination-01: the NOMINATION value sent.
    nomination: Option<u32>,
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
/// [`Checklist::start_check`]. [`Agent`](super::Agent) is that driver: it runs the
/// checklist of each data stream (one or more components) this way, and during an ICE
/// restart also the retiring ones, relaying [`IceEvent::RoleChanged`] between them
/// with [`Checklist::set_role`]. The frozen algorithm (RFC 8445 §6.1.2.6) spans the
/// checklists: the agent tells each which foundations the others have Waiting or
/// In-Progress, and unfreezes a foundation everywhere when a pair of it succeeds.
///
/// Candidates given to a checklist already have their priority and foundation
/// ([`Agent::add_local_candidate`](super::Agent::add_local_candidate) computes
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
    /// draft-thatcher-ice-renomination-01: the peer offered the `renomination` option.
    remote_renomination: bool,
    /// Controlling: the last NOMINATION value sent (values grow across components).
    nomination_counter: u32,
    /// Controlling: the latest NOMINATION value sent, per component.
    latest_nomination: BTreeMap<u16, u32>,
    /// Controlled: the highest NOMINATION value received, per component.
    highest_nomination: BTreeMap<u16, u32>,
    /// A component lost its selected pair (its local candidate was removed): the
    /// checklist fails unless every component has one again by then.
    reselect_deadline: Option<Instant>,
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
    /// RFC 8445 §6.1.4.2: the foundations Waiting or In-Progress in the agent's other
    /// checklists (a Frozen pair of one of them is not unfrozen here).
    foreign_busy: HashSet<(String, String)>,
    /// RFC 8445 §7.2.5.3.3: foundations of pairs that just succeeded, for the agent to
    /// unfreeze in its other checklists.
    succeeded: Vec<(String, String)>,
    /// RFC 6544 §7: the TCP connections checks go on.
    tcp: tcp::TcpConnections,
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
            remote_renomination: false,
            nomination_counter: 0,
            latest_nomination: BTreeMap::new(),
            highest_nomination: BTreeMap::new(),
            reselect_deadline: None,
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
            foreign_busy: HashSet::new(),
            succeeded: Vec::new(),
            tcp: tcp::TcpConnections::default(),
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
            // RFC 6544 §6.2: pairs of a local passive candidate are pruned.
            CandidateKind::Host | CandidateKind::Relayed => !candidate.is_tcp_passive(),
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
        self.start_as(now, true);
    }

    /// RFC 8445 §6.1.2.6: starts the checklist; only the first checklist of an agent is
    /// `active` (one pair per foundation Waiting). The pairs of the others stay Frozen
    /// until a pair of their foundation succeeds elsewhere, or no pair of it is Waiting
    /// or In-Progress in any checklist (§6.1.4.2).
    pub(crate) fn start_as(&mut self, now: Instant, active: bool) {
        if self.state != ChecklistState::New {
            return;
        }
        self.state = ChecklistState::Running;
        self.started_at = Some(now);
        if !active {
            return;
        }
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

    /// The foundations of the Waiting and In-Progress pairs (RFC 8445 §6.1.4.2).
    pub(crate) fn busy_foundations(&self) -> impl Iterator<Item = &(String, String)> {
        self.pairs
            .iter()
            .filter(|p| matches!(p.state, PairState::Waiting | PairState::InProgress))
            .map(|p| &p.foundation)
    }

    /// The busy foundations of the agent's other checklists.
    pub(crate) fn set_foreign_busy(&mut self, busy: HashSet<(String, String)>) {
        self.foreign_busy = busy;
    }

    /// The foundations of pairs that succeeded since the last call.
    pub(crate) fn take_succeeded(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.succeeded)
    }

    /// RFC 8445 §7.2.5.3.3: a pair of `foundation` succeeded in another checklist: the
    /// Frozen pairs of that foundation here become Waiting.
    pub(crate) fn unfreeze_foundation(&mut self, foundation: &(String, String)) {
        if !self.keeps_checking() || self.retiring {
            return;
        }
        for p in &mut self.pairs {
            if p.state == PairState::Frozen && &p.foundation == foundation {
                p.state = PairState::Waiting;
            }
        }
    }

    /// The component of data from `from` arriving on `to`: `to` is the base of one of
    /// this checklist's local candidates and `from` a remote candidate's address.
    pub(crate) fn data_component(&self, from: SocketAddr, to: SocketAddr) -> Option<u16> {
        if !self.is_remote_address(from) {
            return None;
        }
        self.local
            .iter()
            .find(|c| c.base_or_addr() == to)
            .map(|c| c.component)
    }

    /// Whether `component` has a selected pair data can go on.
    pub fn has_selected_pair(&self, component: u16) -> bool {
        !self.consent_lost && self.selected.iter().any(|s| s.component == component)
    }
}
