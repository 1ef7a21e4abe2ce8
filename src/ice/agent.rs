//! The ICE agent (RFC 8445): credentials, role and tie-breaker, local candidates with
//! their priorities and foundations, Ta pacing, ICE restart, and the checklist of its
//! data stream.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::candidate::{prepare_local_candidate, Candidate, LocalPreferences};
use super::checklist::Checklist;
use super::config::{IceConfig, IceRole};
use super::credentials::IceCredentials;
use super::event::{IceConnectionState, IceEvent};
use super::pacer::Pacer;
use super::IceError;
use crate::demux::is_stun;
use crate::stun::{Class, Message};
use crate::Transmit;

/// A sans-IO ICE agent for one data stream (RFC 8445, RFC 8838 trickle, RFC 7675
/// consent), modelled on str0m's `IceAgent`.
///
/// ```
/// use std::time::Instant;
/// use rand::{rngs::StdRng, SeedableRng};
/// use floe::ice::{Candidate, Agent, IceConfig, IceRole};
///
/// let mut agent = Agent::new(IceConfig::new(IceRole::Controlling), StdRng::seed_from_u64(1));
/// let host = agent.add_local_candidate(Candidate::host("127.0.0.1:5000".parse().unwrap())).unwrap();
/// assert_eq!(host.priority(), 2130706431);
/// let (ufrag, pwd) = agent.local_credentials();
/// assert!(ufrag.len() >= 4 && pwd.len() >= 22);
/// agent.set_remote_credentials("abcd", "0123456789012345678901");
/// agent.add_remote_candidate("1 1 udp 2130706431 127.0.0.1 5001 typ host".parse().unwrap());
/// let now = Instant::now();
/// agent.start(now);
/// let check = agent.poll_transmit().unwrap(); // the first check goes at once
/// assert_eq!(check.destination.port(), 5001);
/// ```
///
/// The driver feeds it datagrams ([`Agent::handle_input`]) and time
/// ([`Agent::handle_timeout`]), and drains [`Agent::poll_transmit`] and
/// [`Agent::poll_event`] after every call, re-arming one timer at
/// [`Agent::poll_timeout`]. The `IceAgent` actor of `floe-actors` drives it this way
/// over real sockets and TURN allocations, and adds nothing to its rules.
pub struct Agent {
    config: IceConfig,
    rng: Box<dyn RngCore + Send>,
    tie_breaker: u64,
    role: IceRole,
    remote_lite: bool,
    local_candidates: Vec<Candidate>,
    /// Base IPs in the order first seen: local preference 65535 - index.
    local_preferences: LocalPreferences,
    end_of_local: bool,
    checklist: Checklist,
    /// The checklist before an ICE restart, still carrying data.
    previous: Option<Checklist>,
    pacer: Pacer,
    started: bool,
    last_now: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<IceEvent>,
    state: IceConnectionState,
}

fn checklist_rng(rng: &mut dyn RngCore) -> StdRng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    StdRng::from_seed(seed)
}

impl Agent {
    /// A new agent. `rng` must be a CSPRNG (`rand::rngs::OsRng` or `StdRng::from_entropy()`;
    /// tests inject a seeded `StdRng`): it draws the ufrag and password (RFC 8445 §5.3,
    /// 48 and 144 bits), the tie-breaker (§7.1.3), and the checklists' transaction ids.
    pub fn new(config: IceConfig, rng: impl RngCore + Send + 'static) -> Self {
        let mut rng: Box<dyn RngCore + Send> = Box::new(rng);
        let tie_breaker = rng.next_u64();
        let credentials = IceCredentials::random(&mut *rng);
        let checklist = Checklist::new(
            config.clone(),
            credentials,
            tie_breaker,
            checklist_rng(&mut *rng),
        );
        Agent {
            role: checklist.role(),
            pacer: Pacer::new(config.ta),
            config,
            rng,
            tie_breaker,
            remote_lite: false,
            local_candidates: Vec::new(),
            local_preferences: LocalPreferences::default(),
            end_of_local: false,
            checklist,
            previous: None,
            started: false,
            last_now: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            state: IceConnectionState::New,
        }
    }

    /// RFC 8445 §5.3: the local ufrag and password to signal.
    pub fn local_credentials(&self) -> (&str, &str) {
        let c = self.checklist.local_credentials();
        (&c.ufrag, &c.pwd)
    }

    /// The current role (RFC 8445 §6.1.1), after any role conflict.
    pub fn role(&self) -> IceRole {
        self.role
    }

    /// RFC 8445 §7.1.3: the tie-breaker.
    pub fn tie_breaker(&self) -> u64 {
        self.tie_breaker
    }

    /// The state the events so far leave the agent in.
    pub fn state(&self) -> IceConnectionState {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &IceConfig {
        &self.config
    }

    /// The current checklist (after a restart, the new one).
    pub fn checklist(&self) -> &Checklist {
        &self.checklist
    }

    /// The local candidates added so far, with priorities and foundations.
    pub fn local_candidates(&self) -> &[Candidate] {
        &self.local_candidates
    }

    /// The selected pair of component 1 that data goes over: the current checklist's,
    /// or during an ICE restart the old one's (RFC 8445 §9).
    pub fn selected_pair(&self) -> Option<(&Candidate, &Candidate)> {
        self.checklist
            .selected_pair(1)
            .or_else(|| self.previous.as_ref().and_then(|p| p.selected_pair(1)))
    }

    /// RFC 8445 §5.1: adds a local candidate built with [`Candidate::host`],
    /// [`Candidate::server_reflexive`] or [`Candidate::relayed`], and returns it with
    /// its priority (§5.1.2.1; type preference 126/100/0, local preference per base
    /// IP, component) and foundation (§5.1.1.3) to signal — or `None` when it is
    /// redundant (§5.1.3: same address and base as one already added, like a
    /// server-reflexive candidate equal to its host), peer-reflexive, or not a host
    /// candidate of a lite agent. Checks on it start at once if the agent runs
    /// (RFC 8838: gathering and checks overlap).
    pub fn add_local_candidate(&mut self, candidate: Candidate) -> Option<Candidate> {
        let candidate = prepare_local_candidate(
            candidate,
            &self.local_candidates,
            self.config.lite,
            &mut self.local_preferences,
        )?;
        self.local_candidates.push(candidate.clone());
        self.checklist.add_local_candidate(candidate.clone());
        Some(candidate)
    }

    /// RFC 8838 §8.2: local gathering is complete (the seed's GatheringComplete).
    pub fn end_of_local_candidates(&mut self) {
        self.end_of_local = true;
        self.checklist.end_of_local_candidates();
    }

    /// RFC 8445 §5.3: the peer's ufrag and password, as signalled (not checked against
    /// the RFC 8839 grammar, so that sloppy peers still work).
    pub fn set_remote_credentials(&mut self, ufrag: impl Into<String>, pwd: impl Into<String>) {
        self.checklist.set_remote_credentials(IceCredentials {
            ufrag: ufrag.into(),
            pwd: pwd.into(),
        });
    }

    /// RFC 8445 §6.1.1: the peer is lite (`a=ice-lite`); a full agent then controls.
    pub fn set_remote_lite(&mut self, lite: bool) {
        self.remote_lite = lite;
        self.checklist.set_remote_lite(lite);
        self.collect_events();
    }

    /// RFC 8838 §9: adds a remote candidate, at any time; it is paired into the
    /// running checklist.
    pub fn add_remote_candidate(&mut self, candidate: Candidate) {
        self.checklist.add_remote_candidate(candidate);
    }

    /// RFC 8838 §8.2: the peer signalled end-of-candidates.
    pub fn end_of_remote_candidates(&mut self) {
        self.checklist.end_of_remote_candidates();
    }

    /// RFC 8445 §6.1.2.6 and §6.1.4: starts checking (the seed's ProcessCandidates);
    /// the first check goes out at once, then one per Ta.
    pub fn start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.state = IceConnectionState::Checking;
        }
        self.checklist.start(now);
        self.drive(now);
    }

    /// RFC 8445 §9: ICE restart: new local credentials, returned to signal with the
    /// candidates (which are kept), and a fresh checklist; the peer's new credentials
    /// and candidates are set as before. The old selected pair keeps carrying data and
    /// consent until the new checklist selects a pair.
    pub fn restart(&mut self, now: Instant) -> IceCredentials {
        let credentials = IceCredentials::random(&mut *self.rng);
        let mut config = self.config.clone();
        config.role = self.role;
        let mut fresh = Checklist::new(
            config,
            credentials,
            self.tie_breaker,
            checklist_rng(&mut *self.rng),
        );
        fresh.set_remote_lite(self.remote_lite);
        for c in &self.local_candidates {
            fresh.add_local_candidate(c.clone());
        }
        if self.end_of_local {
            fresh.end_of_local_candidates();
        }
        let mut old = std::mem::replace(&mut self.checklist, fresh);
        if old.is_connected() {
            old.retire();
            self.previous = Some(old);
        }
        if self.started {
            self.checklist.start(now);
            if self.previous.is_none() {
                self.state = IceConnectionState::Checking;
            }
        }
        self.drive(now);
        self.checklist.local_credentials().clone()
    }

    /// A datagram from `from` arrived on the local address `to` (a host candidate's
    /// address, or a relayed address when the driver's TURN client unwrapped it).
    /// STUN (RFC 7983: first byte 0..=3 and the magic cookie) is handled here; anything
    /// else from a known remote candidate is application data and is returned.
    pub fn handle_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: Bytes,
    ) -> Option<Bytes> {
        self.last_now = Some(now);
        if !is_stun(&data) {
            let known = self.checklist.is_remote_address(from)
                || self
                    .previous
                    .as_ref()
                    .is_some_and(|p| p.is_remote_address(from));
            return known.then_some(data);
        }
        let Ok(msg) = Message::decode(data) else {
            return None;
        };
        let to_previous = match (msg.class(), &self.previous) {
            (_, None) => false,
            (Class::Request, Some(p)) => {
                p.is_addressed_to(&msg) && !self.checklist.is_addressed_to(&msg)
            }
            (Class::Success | Class::Error, Some(p)) => p.owns_transaction(msg.transaction_id()),
            (Class::Indication, _) => false,
        };
        match &mut self.previous {
            Some(p) if to_previous => p.handle_stun(now, from, to, &msg),
            _ => self.checklist.handle_stun(now, from, to, &msg),
        }
        self.drive(now);
        None
    }

    /// RFC 8445 §12.1: sends application data on component 1's selected pair (the old
    /// one during an ICE restart). The transmit's source is the local candidate's base:
    /// for a relayed candidate the relayed address, which the driver sends through its
    /// TURN client.
    pub fn send(&mut self, data: Bytes) -> Result<(), IceError> {
        self.send_component(1, data)
    }

    /// [`Agent::send`] on another component.
    pub fn send_component(&mut self, component: u16, data: Bytes) -> Result<(), IceError> {
        let t = match &mut self.previous {
            Some(p) if !self.checklist.has_selected_pair(component) => p.send(component, data),
            _ => self.checklist.send(component, data),
        }?;
        self.transmits.push_back(t);
        Ok(())
    }

    /// Advances the timers: Ta slots, retransmissions, nomination, consent, keepalives
    /// and timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.checklist.handle_timeout(now);
        if let Some(p) = &mut self.previous {
            p.handle_timeout(now);
        }
        self.drive(now);
    }

    /// The next instant [`Agent::handle_timeout`] must run (maybe already past).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.checklist.poll_timeout();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        min(self.previous.as_ref().and_then(|p| p.poll_timeout()));
        if self.started && self.checklist.wants_nomination_check() {
            min(self.pacer.next_nomination_slot().or(self.last_now));
        } else if self.started && self.checklist.wants_check() {
            min(self.pacer.next_slot().or(self.last_now));
        }
        t
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.checklist
            .poll_transmit()
            .or_else(|| self.previous.as_mut().and_then(|p| p.poll_transmit()))
            .or_else(|| self.transmits.pop_front())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.collect_events();
        self.events.pop_front()
    }

    /// Runs the Ta pacer (and the nomination slots), then gathers the checklists' events.
    fn drive(&mut self, now: Instant) {
        self.last_now = Some(now);
        if self.started {
            let checklist = &mut self.checklist;
            if self
                .pacer
                .take_slot(now, 1, |_| checklist.start_check(now))
                .is_none()
            {
                self.pacer
                    .take_nomination_slot(now, 1, |_| checklist.start_nomination_check(now));
            }
        }
        self.collect_events();
    }

    fn collect_events(&mut self) {
        while let Some(e) = self.checklist.poll_event() {
            match &e {
                IceEvent::RoleChanged(role) => {
                    self.role = *role;
                    if let Some(p) = &mut self.previous {
                        p.set_role(*role);
                    }
                }
                IceEvent::Connected => {
                    self.state = IceConnectionState::Connected;
                    // RFC 8445 §9: the restart is over once the new checklist selects.
                    self.previous = None;
                }
                IceEvent::Disconnected => self.state = IceConnectionState::Disconnected,
                IceEvent::Failed => self.state = IceConnectionState::Failed,
                _ => {}
            }
            self.events.push_back(e);
        }
        let mut drop_previous = false;
        if let Some(p) = &mut self.previous {
            while let Some(e) = p.poll_event() {
                match e {
                    IceEvent::ConsentLost { .. } => {
                        drop_previous = true;
                        self.events.push_back(e);
                    }
                    IceEvent::RoleChanged(role) => {
                        self.role = role;
                        self.checklist.set_role(role);
                        self.events.push_back(e);
                    }
                    _ => {}
                }
            }
        }
        if drop_previous {
            self.previous = None;
            if self.state == IceConnectionState::Connected {
                self.state = IceConnectionState::Checking;
            }
        }
    }
}
