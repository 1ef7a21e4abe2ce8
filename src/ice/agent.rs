//! The ICE agent (RFC 8445): role and tie-breaker, local candidates with their
//! priorities and foundations, Ta pacing across its data streams' checklists (with the
//! frozen algorithm across them, §6.1.2.6), ICE restart, and the streams themselves.

use std::collections::{HashSet, VecDeque};
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
use super::stream::Stream;
use super::IceError;
use crate::demux::is_stun;
use crate::stun::{Class, Message};
use crate::Transmit;

/// A sans-IO ICE agent (RFC 8445, RFC 8838 trickle, RFC 7675 consent), modelled on
/// str0m's `IceAgent`: one data stream (number 0) from the start, more with
/// [`Agent::add_stream`], each with its own credentials (RFC 8445 §5.3), components
/// (the candidates' own) and checklist; one pacer and one frozen algorithm for all.
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
///
/// The methods without a stream number act on stream 0; their `_of` / `_to` / `_on`
/// forms take the stream:
///
/// ```
/// use std::time::Instant;
/// use rand::{rngs::StdRng, SeedableRng};
/// use floe::ice::{Agent, Candidate, IceConfig, IceRole};
///
/// let mut agent = Agent::new(IceConfig::new(IceRole::Controlling), StdRng::seed_from_u64(1));
/// let video = agent.add_stream();
/// assert_eq!(video, 1);
/// assert_ne!(agent.local_credentials_of(0), agent.local_credentials_of(video));
/// let rtcp = Candidate::host("127.0.0.1:5003".parse().unwrap()).with_component(2);
/// let rtcp = agent.add_local_candidate_to(video, rtcp).unwrap();
/// assert_eq!(rtcp.component(), 2);
/// agent.set_remote_credentials_of(video, "abcd", "0123456789012345678901");
/// ```
pub struct Agent {
    config: IceConfig,
    rng: Box<dyn RngCore + Send>,
    tie_breaker: u64,
    role: IceRole,
    remote_lite: bool,
    remote_renomination: bool,
    /// Base IPs in the order first seen: local preference 65535 - index.
    local_preferences: LocalPreferences,
    end_of_local: bool,
    pub(super) streams: Vec<Stream>,
    pacer: Pacer,
    started: bool,
    last_now: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(usize, IceEvent)>,
    state: IceConnectionState,
}

fn checklist_rng(rng: &mut dyn RngCore) -> StdRng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    StdRng::from_seed(seed)
}

/// Application data that arrived on a data stream's component (RFC 8445 §12.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The data stream.
    pub stream: usize,
    /// The component.
    pub component: u16,
    /// The datagram.
    pub data: Bytes,
}

impl Agent {
    /// A new agent with one data stream. `rng` must be a CSPRNG (`rand::rngs::OsRng` or
    /// `StdRng::from_entropy()`; tests inject a seeded `StdRng`): it draws the ufrags
    /// and passwords (RFC 8445 §5.3, 48 and 144 bits), the tie-breaker (§7.1.3), and
    /// the checklists' transaction ids.
    pub fn new(config: IceConfig, rng: impl RngCore + Send + 'static) -> Self {
        let mut rng: Box<dyn RngCore + Send> = Box::new(rng);
        let tie_breaker = rng.next_u64();
        let mut agent = Agent {
            role: if config.lite {
                IceRole::Controlled
            } else {
                config.role
            },
            pacer: Pacer::new(config.ta),
            config,
            rng,
            tie_breaker,
            remote_lite: false,
            remote_renomination: false,
            local_preferences: LocalPreferences::default(),
            end_of_local: false,
            streams: Vec::new(),
            started: false,
            last_now: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            state: IceConnectionState::New,
        };
        agent.add_stream();
        agent
    }

    /// A checklist with fresh credentials (RFC 8445 §5.3), in the current role.
    fn new_checklist(&mut self) -> Checklist {
        let credentials = IceCredentials::random(&mut *self.rng);
        let mut config = self.config.clone();
        config.role = self.role;
        let mut checklist = Checklist::new(
            config,
            credentials,
            self.tie_breaker,
            checklist_rng(&mut *self.rng),
        );
        checklist.set_remote_lite(self.remote_lite);
        checklist.set_remote_renomination(self.remote_renomination);
        while checklist.poll_event().is_some() {}
        checklist
    }

    /// Adds a data stream (an m-line) with its own credentials and checklist; returns
    /// its number (0 is the first). Its candidates are added with
    /// [`Agent::add_local_candidate_to`], each with its component.
    pub fn add_stream(&mut self) -> usize {
        let mut checklist = self.new_checklist();
        if self.started {
            checklist.start_as(self.last_now.unwrap_or_else(Instant::now), false);
        }
        self.streams.push(Stream::new(checklist));
        self.streams.len() - 1
    }

    /// The number of data streams.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    fn stream(&self, stream: usize) -> &Stream {
        self.streams
            .get(stream)
            .unwrap_or_else(|| panic!("no ICE data stream {stream}"))
    }

    fn stream_mut(&mut self, stream: usize) -> &mut Stream {
        self.streams
            .get_mut(stream)
            .unwrap_or_else(|| panic!("no ICE data stream {stream}"))
    }

    /// RFC 8445 §5.3: the local ufrag and password of stream 0 to signal.
    pub fn local_credentials(&self) -> (&str, &str) {
        self.local_credentials_of(0)
    }

    /// RFC 8445 §5.3: the local ufrag and password of `stream` (panics on a stream not
    /// added).
    pub fn local_credentials_of(&self, stream: usize) -> (&str, &str) {
        let c = self.stream(stream).checklist.local_credentials();
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

    /// The current checklist of stream 0 (after a restart, the new one).
    pub fn checklist(&self) -> &Checklist {
        self.checklist_of(0)
    }

    /// The current checklist of `stream`.
    pub fn checklist_of(&self, stream: usize) -> &Checklist {
        &self.stream(stream).checklist
    }

    /// The local candidates of stream 0 added so far, with priorities and foundations.
    pub fn local_candidates(&self) -> &[Candidate] {
        self.local_candidates_of(0)
    }

    /// The local candidates of `stream`.
    pub fn local_candidates_of(&self, stream: usize) -> &[Candidate] {
        &self.stream(stream).local
    }

    /// The selected pair of stream 0's component 1 that data goes over: the current
    /// checklist's, or during an ICE restart the old one's (RFC 8445 §9).
    pub fn selected_pair(&self) -> Option<(&Candidate, &Candidate)> {
        self.selected_pair_of(0, 1)
    }

    /// The selected pair of `component` of `stream`.
    pub fn selected_pair_of(
        &self,
        stream: usize,
        component: u16,
    ) -> Option<(&Candidate, &Candidate)> {
        self.stream(stream).selected_pair(component)
    }

    /// RFC 8445 §5.1: adds a local candidate of stream 0 built with [`Candidate::host`],
    /// [`Candidate::server_reflexive`] or [`Candidate::relayed`], and returns it with
    /// its priority (§5.1.2.1; type preference 126/100/0, local preference per base
    /// IP, component) and foundation (§5.1.1.3) to signal — or `None` when it is
    /// redundant (§5.1.3: same address and base as one already added, like a
    /// server-reflexive candidate equal to its host), peer-reflexive, or not a host
    /// candidate of a lite agent. Checks on it start at once if the agent runs
    /// (RFC 8838: gathering and checks overlap).
    pub fn add_local_candidate(&mut self, candidate: Candidate) -> Option<Candidate> {
        self.add_local_candidate_to(0, candidate)
    }

    /// [`Agent::add_local_candidate`] for `stream`; the candidate's component is its own
    /// ([`Candidate::with_component`]). Foundations are shared by the streams (§5.1.1.3:
    /// same type, base IP, server and transport), which the frozen algorithm relies on.
    pub fn add_local_candidate_to(
        &mut self,
        stream: usize,
        candidate: Candidate,
    ) -> Option<Candidate> {
        let lite = self.config.lite;
        let local_preferences = &mut self.local_preferences;
        let s = self
            .streams
            .get_mut(stream)
            .unwrap_or_else(|| panic!("no ICE data stream {stream}"));
        let candidate = prepare_local_candidate(candidate, &s.local, lite, local_preferences)?;
        s.local.push(candidate.clone());
        s.checklist.add_local_candidate(candidate.clone());
        Some(candidate)
    }

    /// RFC 8838 §8.2: local gathering is complete, for every stream (the seed's
    /// GatheringComplete).
    pub fn end_of_local_candidates(&mut self) {
        self.end_of_local = true;
        for s in &mut self.streams {
            s.checklist.end_of_local_candidates();
        }
    }

    /// RFC 8445 §5.3: the peer's ufrag and password for stream 0, as signalled (not
    /// checked against the RFC 8839 grammar, so that sloppy peers still work).
    pub fn set_remote_credentials(&mut self, ufrag: impl Into<String>, pwd: impl Into<String>) {
        self.set_remote_credentials_of(0, ufrag, pwd);
    }

    /// RFC 8445 §5.3: the peer's ufrag and password for `stream`.
    pub fn set_remote_credentials_of(
        &mut self,
        stream: usize,
        ufrag: impl Into<String>,
        pwd: impl Into<String>,
    ) {
        self.stream_mut(stream)
            .checklist
            .set_remote_credentials(IceCredentials {
                ufrag: ufrag.into(),
                pwd: pwd.into(),
            });
    }

    /// RFC 8445 §6.1.1: the peer is lite (`a=ice-lite`); a full agent then controls.
    pub fn set_remote_lite(&mut self, lite: bool) {
        self.remote_lite = lite;
        for s in &mut self.streams {
            s.checklist.set_remote_lite(lite);
        }
        self.collect_events();
    }

    /// draft-thatcher-ice-renomination-01: the peer's ice-options include
    /// `renomination`. With [`IceConfig::renomination`] set too, renomination is
    /// negotiated for every stream (and the checklists of a later restart).
    pub fn set_remote_renomination(&mut self, renomination: bool) {
        self.remote_renomination = renomination;
        for s in &mut self.streams {
            s.checklist.set_remote_renomination(renomination);
        }
    }

    /// Whether renomination is negotiated (both sides offered it).
    pub fn renomination(&self) -> bool {
        self.config.renomination && self.remote_renomination
    }

    /// draft-thatcher-ice-renomination-01: the controlling agent nominates the valid
    /// pair of `local` (its base or its local candidate's address) and `remote` in
    /// `component` of `stream` again; both agents select it once its check succeeds,
    /// whatever its priority. Errors when renomination is not negotiated, the agent is
    /// not controlling, or there is no such valid pair.
    pub fn renominate(
        &mut self,
        stream: usize,
        component: u16,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), IceError> {
        let s = self
            .streams
            .get_mut(stream)
            .ok_or(IceError::CannotRenominate("no such stream"))?;
        s.checklist.renominate(component, local, remote)
    }

    /// Continual gathering: the local address `base` went away. Its local candidates
    /// (host, and the server-reflexive and peer-reflexive ones of that base; a relayed
    /// candidate is named by its relayed address) leave every stream, with their pairs.
    /// Where a selected pair used it: with renomination the controlling agent
    /// nominates the best other valid pair; without, RFC 8445 §8.1.1 allows no second
    /// nomination and that stream fails (restart ICE to go on). Returns how many
    /// candidates went.
    pub fn remove_local_candidates(&mut self, now: Instant, base: SocketAddr) -> usize {
        let mut count = 0;
        for s in &mut self.streams {
            s.local.retain(|c| c.base_or_addr() != base);
            count += s.checklist.remove_local_candidates(now, base);
            if let Some(p) = &mut s.previous {
                p.remove_local_candidates(now, base);
            }
        }
        self.drive(now);
        count
    }

    /// RFC 8838 §9: adds a remote candidate of stream 0, at any time; it is paired into
    /// the running checklist.
    pub fn add_remote_candidate(&mut self, candidate: Candidate) {
        self.add_remote_candidate_to(0, candidate);
    }

    /// [`Agent::add_remote_candidate`] for `stream`.
    pub fn add_remote_candidate_to(&mut self, stream: usize, candidate: Candidate) {
        self.stream_mut(stream)
            .checklist
            .add_remote_candidate(candidate);
    }

    /// RFC 8838 §8.2: the peer signalled end-of-candidates for stream 0.
    pub fn end_of_remote_candidates(&mut self) {
        self.end_of_remote_candidates_of(0);
    }

    /// RFC 8838 §8.2: the peer signalled end-of-candidates for `stream`.
    pub fn end_of_remote_candidates_of(&mut self, stream: usize) {
        self.stream_mut(stream).checklist.end_of_remote_candidates();
    }

    /// RFC 8445 §6.1.2.6 and §6.1.4: starts checking (the seed's ProcessCandidates);
    /// the first check goes out at once, then one per Ta across the streams. Only the
    /// first stream's checklist starts active: the others' pairs stay Frozen until a
    /// pair of their foundation succeeds (§7.2.5.3.3), or none of it is Waiting or
    /// In-Progress anywhere (§6.1.4.2).
    pub fn start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.state = IceConnectionState::Checking;
        }
        for (i, s) in self.streams.iter_mut().enumerate() {
            s.checklist.start_as(now, i == 0);
        }
        self.drive(now);
    }

    /// RFC 8445 §9: ICE restart of every stream: new local credentials (stream 0's are
    /// returned; [`Agent::local_credentials_of`] gives the others) to signal with the
    /// candidates (which are kept), and fresh checklists; the peer's new credentials and
    /// candidates are set as before. The old selected pairs keep carrying data and
    /// consent until the new checklists select pairs.
    pub fn restart(&mut self, now: Instant) -> IceCredentials {
        for i in 0..self.streams.len() {
            let mut fresh = self.new_checklist();
            for c in &self.streams[i].local {
                fresh.add_local_candidate(c.clone());
            }
            if self.end_of_local {
                fresh.end_of_local_candidates();
            }
            fresh.adopt_tcp_connections(&self.streams[i].checklist);
            if self.started {
                fresh.start_as(now, i == 0);
            }
            self.streams[i].restart(fresh);
        }
        if self.started && self.streams.iter().all(|s| s.previous.is_none()) {
            self.state = IceConnectionState::Checking;
        }
        self.drive(now);
        self.streams[0].checklist.local_credentials().clone()
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
        self.receive(now, from, to, data).map(|r| r.data)
    }

    /// [`Agent::handle_input`], saying which stream and component application data
    /// came on (by the local base it arrived on and the remote address it came from).
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: Bytes,
    ) -> Option<Received> {
        self.last_now = Some(now);
        if !is_stun(&data) {
            let found = self
                .streams
                .iter()
                .enumerate()
                .find_map(|(i, s)| s.data_component(from, to).map(|c| (i, c)))
                .or_else(|| {
                    // Data on an address no local candidate has (yet): by its source.
                    let i = self
                        .streams
                        .iter()
                        .position(|s| s.is_remote_address(from))?;
                    Some((i, 1))
                });
            return found.map(|(stream, component)| Received {
                stream,
                component,
                data,
            });
        }
        let Ok(msg) = Message::decode(data) else {
            return None;
        };
        let stream = match msg.class() {
            Class::Request => self.streams.iter().position(|s| s.is_addressed_to(&msg)),
            Class::Success | Class::Error => self
                .streams
                .iter()
                .position(|s| s.owns_transaction(msg.transaction_id())),
            Class::Indication => None,
        };
        self.streams[stream.unwrap_or(0)].handle_stun(now, from, to, &msg);
        self.drive(now);
        None
    }

    /// RFC 8445 §12.1: sends application data on stream 0's component 1's selected pair
    /// (the old one during an ICE restart). The transmit's source is the local
    /// candidate's base: for a relayed candidate the relayed address, which the driver
    /// sends through its TURN client.
    pub fn send(&mut self, data: Bytes) -> Result<(), IceError> {
        self.send_on(0, 1, data)
    }

    /// [`Agent::send`] on another component of stream 0.
    pub fn send_component(&mut self, component: u16, data: Bytes) -> Result<(), IceError> {
        self.send_on(0, component, data)
    }

    /// [`Agent::send`] on `component` of `stream`.
    pub fn send_on(&mut self, stream: usize, component: u16, data: Bytes) -> Result<(), IceError> {
        let s = self.streams.get_mut(stream).ok_or(IceError::NotConnected)?;
        let t = s.send(component, data)?;
        self.transmits.push_back(t);
        Ok(())
    }

    /// Advances the timers: Ta slots, retransmissions, nomination, consent, keepalives
    /// and timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        for s in &mut self.streams {
            s.handle_timeout(now);
        }
        self.drive(now);
    }

    /// The next instant [`Agent::handle_timeout`] must run (maybe already past).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.streams.iter().filter_map(Stream::poll_timeout).min();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.started
            && self
                .streams
                .iter()
                .any(|s| s.checklist.wants_nomination_check())
        {
            min(self.pacer.next_nomination_slot().or(self.last_now));
        } else if self.started && self.streams.iter().any(|s| s.checklist.wants_check()) {
            min(self.pacer.next_slot().or(self.last_now));
        }
        t
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.streams
            .iter_mut()
            .find_map(Stream::poll_transmit)
            .or_else(|| self.transmits.pop_front())
    }

    /// The next event, of any stream (see [`Agent::poll_stream_event`]).
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.poll_stream_event().map(|(_, e)| e)
    }

    /// The next event, with the stream it is about. `Connected` is per stream: every
    /// component of that stream has a selected pair; [`Agent::state`] is `Connected`
    /// once every stream is.
    pub fn poll_stream_event(&mut self) -> Option<(usize, IceEvent)> {
        self.collect_events();
        self.events.pop_front()
    }

    /// RFC 8445 §6.1.4.2: every checklist learns which foundations the others have
    /// Waiting or In-Progress.
    fn share_foundations(&mut self) {
        if self.streams.len() < 2 {
            return;
        }
        let busy: Vec<HashSet<(String, String)>> = self
            .streams
            .iter()
            .map(|s| s.checklist.busy_foundations().cloned().collect())
            .collect();
        for (i, s) in self.streams.iter_mut().enumerate() {
            let foreign = busy
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, b)| b.iter().cloned())
                .collect();
            s.checklist.set_foreign_busy(foreign);
        }
    }

    /// Runs the Ta pacer (and the nomination slots) over the streams' checklists
    /// round-robin, then gathers their events.
    pub(super) fn drive(&mut self, now: Instant) {
        self.last_now = Some(now);
        if self.started {
            self.share_foundations();
            let n = self.streams.len();
            let streams = &mut self.streams;
            if self
                .pacer
                .take_slot(now, n, |i| streams[i].checklist.start_check(now))
                .is_none()
            {
                self.pacer.take_nomination_slot(now, n, |i| {
                    streams[i].checklist.start_nomination_check(now)
                });
            }
        }
        self.collect_events();
        self.share_foundations();
    }

    fn collect_events(&mut self) {
        for i in 0..self.streams.len() {
            // RFC 8445 §7.2.5.3.3: a success unfreezes its foundation everywhere.
            for f in self.streams[i].checklist.take_succeeded() {
                for (j, s) in self.streams.iter_mut().enumerate() {
                    if j != i {
                        s.checklist.unfreeze_foundation(&f);
                    }
                }
            }
            while let Some((e, retiring)) = self.streams[i].poll_event() {
                match &e {
                    IceEvent::RoleChanged(role) => {
                        self.role = *role;
                        for s in &mut self.streams {
                            s.set_role(*role);
                        }
                    }
                    IceEvent::Connected
                        if self.streams.iter().all(|s| s.checklist.is_connected()) =>
                    {
                        self.state = IceConnectionState::Connected;
                    }
                    IceEvent::Disconnected => self.state = IceConnectionState::Disconnected,
                    IceEvent::Failed => self.state = IceConnectionState::Failed,
                    // The retiring checklist of a restart lost consent before the new
                    // one selected: no pair carries data until it does.
                    IceEvent::ConsentLost { .. }
                        if retiring && self.state == IceConnectionState::Connected =>
                    {
                        self.state = IceConnectionState::Checking;
                    }
                    _ => {}
                }
                self.events.push_back((i, e));
            }
        }
    }
}
