//! `IceAgent`: credentials, role, gathering, priorities, pacing; the public API.

use std::net::SocketAddr;
use std::time::Instant;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, SpawnHandle,
};
use bytes::Bytes;
use floe::ice::{
    prepare_local_candidate, Candidate, IceCredentials, IceError, IceRole, LocalPreferences, Pacer,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::checklist::{AddLocal, Checklist, Control, GatherOn, SendData};
use super::config::AgentConfig;
use super::gather::host_addresses;
use super::{CandidateErrorKind, IceEvent, Send};
use crate::events::{EventStream, Subscribe, SubscribeChannel, Subscribers};

/// Starts gathering (the seed's GatherCandidates): host candidates on the configured
/// addresses, server-reflexive ones from the STUN servers, relayed ones from the TURN
/// servers. Subscribe first: candidates come as [`IceEvent::Candidate`], then
/// [`IceEvent::GatheringComplete`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Gather;

/// The local ufrag, password and current role, to signal.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Description")]
pub struct LocalDescription;

/// The answer to [`LocalDescription`].
#[derive(Debug, Clone, PartialEq, Eq, actix::MessageResponse)]
pub struct Description {
    /// The local ufrag and password.
    pub credentials: IceCredentials,
    /// The current role.
    pub role: IceRole,
}

/// The remote side's ufrag and password (RFC 8445 §5.3) and the candidates known so
/// far (more may follow with [`AddRemoteCandidate`]).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SetRemote {
    /// ice-ufrag.
    pub ufrag: String,
    /// ice-pwd.
    pub pwd: String,
    /// Candidates.
    pub candidates: Vec<Candidate>,
}

/// A remote candidate, at any time (RFC 8838 trickle).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AddRemoteCandidate(pub Candidate);

/// The remote side signalled end-of-candidates (RFC 8838 §8.2).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct EndOfRemoteCandidates;

/// Starts the checks (the seed's ProcessCandidates; RFC 8445 §6.1.2.6). Checks go out
/// once the remote credentials are known; candidates may still trickle in.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Start;

/// RFC 8445 §9: ICE restart. The agent takes new local credentials (answered, to
/// signal with the candidates, which are kept) and every checklist starts afresh; the
/// pair selected before keeps carrying data and consent until the new checks select
/// one. Then give the remote side's new credentials and candidates with
/// [`SetRemote`] (the peer restarts too when it sees new credentials).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Description")]
pub struct Restart;

/// Stops the agent and its checklists; TURN allocations are deleted.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Checklist → agent: it has a check to start in the next Ta slot.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WantsSlot {
    pub stream: usize,
    /// The check is a nomination check, which may go at the 5 ms floor.
    pub nomination: bool,
}

/// Checklist → agent: a local candidate, without priority and foundation yet.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Gathered {
    pub stream: usize,
    pub candidate: Candidate,
}

/// Checklist → agent: a server gave no candidate.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct GatherError {
    pub stream: usize,
    pub server: SocketAddr,
    pub kind: CandidateErrorKind,
    pub code: Option<u16>,
    pub reason: String,
}

/// Checklist → agent: the stream has every candidate it will get.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct GatherDone {
    pub stream: usize,
}

/// Checklist → agent: an event of the stream.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StreamEvent {
    pub stream: usize,
    pub event: IceEvent,
}

/// One data stream as the agent sees it.
struct Stream {
    checklist: Addr<Checklist>,
    wants_slot: bool,
    wants_nomination_slot: bool,
    gathered: bool,
    local: Vec<Candidate>,
}

/// An ICE agent (RFC 8445): credentials, role and tie-breaker, gathering, the
/// priorities of local candidates, and the Ta pacer shared by its [`Checklist`]s. See
/// the [module documentation](super).
///
/// ```no_run
/// # async fn demo() {
/// use floe_actors::ice::{AgentConfig, GatherConfig, IceAgent, IceEvent};
/// use floe::ice::IceRole;
/// let mut config = AgentConfig::new(IceRole::Controlling);
/// config.gather = GatherConfig::loopback_only();
/// let agent = IceAgent::spawn(config);
/// let mut events = agent.events();
/// agent.gather();
/// let description = agent.local_description().await;
/// while let Some(e) = events.recv().await {
///     match e {
///         IceEvent::Candidate(c) => println!("a=candidate:{}", c.to_sdp()),
///         IceEvent::GatheringComplete => break,
///         _ => {}
///     }
/// }
/// // ... signal credentials and candidates, learn the remote's, then:
/// // agent.set_remote(ufrag, pwd, candidates); agent.start();
/// # }
/// ```
pub struct IceAgent {
    config: AgentConfig,
    credentials: IceCredentials,
    tie_breaker: u64,
    role: IceRole,
    rng: StdRng,
    streams: Vec<Stream>,
    /// Local preferences by base IP, shared by the streams.
    local_preferences: LocalPreferences,
    gathering: bool,
    gathering_complete: bool,
    pacer: Pacer,
    slot_timer: Option<SpawnHandle>,
    subscribers: Subscribers<IceEvent>,
}

/// A running [`IceAgent`]: its address and the API as methods.
#[derive(Clone)]
pub struct IceAgentHandle {
    addr: Addr<IceAgent>,
}

impl IceAgent {
    /// An agent with fresh credentials (RFC 8445 §5.3, from the OS CSPRNG) and
    /// tie-breaker (§7.1.3), not started.
    pub fn new(config: AgentConfig) -> Self {
        let mut rng = StdRng::from_entropy();
        let credentials = IceCredentials::random(&mut rng);
        let tie_breaker = rng.next_u64();
        IceAgent {
            role: if config.ice.lite {
                IceRole::Controlled
            } else {
                config.ice.role
            },
            pacer: Pacer::new(config.ice.ta),
            config,
            credentials,
            tie_breaker,
            rng,
            streams: Vec::new(),
            local_preferences: LocalPreferences::default(),
            gathering: false,
            gathering_complete: false,
            slot_timer: None,
            subscribers: Subscribers::default(),
        }
    }

    /// Starts an agent on the current Arbiter (its sockets are bound there).
    pub fn spawn(config: AgentConfig) -> IceAgentHandle {
        IceAgentHandle {
            addr: IceAgent::new(config).start(),
        }
    }

    /// RFC 8445 §5.1.2 and §5.1.1.3: the priority and foundation of a local candidate,
    /// as [`floe::ice::IceAgent::add_local_candidate`] computes them; `None` when it is
    /// redundant (§5.1.3).
    fn prioritise(&mut self, stream: usize, c: Candidate) -> Option<Candidate> {
        let c = prepare_local_candidate(
            c,
            &self.streams[stream].local,
            self.config.ice.lite,
            &mut self.local_preferences,
        )?;
        self.streams[stream].local.push(c.clone());
        Some(c)
    }

    fn to_all(&self, msg: impl Fn() -> Control) {
        for s in &self.streams {
            s.checklist.do_send(msg());
        }
    }

    /// RFC 8445 §6.1.4.2: one slot per Ta across all checklists, round-robin; a
    /// nomination check waits only for the 5 ms floor ([`Pacer::take_nomination_slot`]).
    fn offer_slot(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.slot_timer.take() {
            ctx.cancel_future(h);
        }
        if !self.streams.iter().any(|s| s.wants_slot) {
            return;
        }
        let now = Instant::now();
        let streams = &mut self.streams;
        let give = |s: &mut Stream, control: Control| {
            s.wants_slot = false;
            s.wants_nomination_slot = false;
            s.checklist.do_send(control);
        };
        let taken = self.pacer.take_slot(now, streams.len(), |i| {
            let wants = streams[i].wants_slot;
            if wants {
                give(&mut streams[i], Control::Slot);
            }
            wants
        });
        if taken.is_none() {
            self.pacer.take_nomination_slot(now, streams.len(), |i| {
                let wants = streams[i].wants_nomination_slot;
                if wants {
                    give(&mut streams[i], Control::NominationSlot);
                }
                wants
            });
        }
        let next = if self.streams.iter().any(|s| s.wants_nomination_slot) {
            self.pacer.next_nomination_slot()
        } else if self.streams.iter().any(|s| s.wants_slot) {
            self.pacer.next_slot()
        } else {
            None
        };
        if let Some(at) = next {
            let wait = at.saturating_duration_since(now);
            self.slot_timer = Some(ctx.run_later(wait, |act, ctx| {
                act.slot_timer = None;
                act.offer_slot(ctx);
            }));
        }
    }
}

impl Actor for IceAgent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let checklist = Checklist::new(
            0,
            ctx.address(),
            self.config.clone(),
            self.credentials.clone(),
            self.tie_breaker,
            StdRng::from_seed(seed),
        )
        .start();
        self.streams.push(Stream {
            checklist,
            wants_slot: false,
            wants_nomination_slot: false,
            gathered: false,
            local: Vec::new(),
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.to_all(|| Control::Stop);
    }
}

impl Handler<Gather> for IceAgent {
    type Result = ();

    fn handle(&mut self, _: Gather, _: &mut Context<Self>) {
        if std::mem::replace(&mut self.gathering, true) {
            return;
        }
        let ips = match host_addresses(&self.config.gather) {
            Ok(ips) => ips,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the network interfaces");
                Vec::new()
            }
        };
        tracing::debug!(?ips, "gathering");
        for s in &self.streams {
            s.checklist.do_send(GatherOn(ips.clone()));
        }
    }
}

impl Handler<Gathered> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: Gathered, _: &mut Context<Self>) {
        if let Some(c) = self.prioritise(msg.stream, msg.candidate) {
            self.streams[msg.stream]
                .checklist
                .do_send(AddLocal(c.clone()));
            self.subscribers.publish(IceEvent::Candidate(c));
        }
    }
}

impl Handler<GatherError> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: GatherError, _: &mut Context<Self>) {
        tracing::debug!(stream = msg.stream, server = %msg.server, reason = %msg.reason, "no candidate");
        self.subscribers.publish(IceEvent::CandidateError {
            server: msg.server,
            kind: msg.kind,
            code: msg.code,
            reason: msg.reason,
        });
    }
}

impl Handler<GatherDone> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: GatherDone, _: &mut Context<Self>) {
        if let Some(s) = self.streams.get_mut(msg.stream) {
            s.gathered = true;
            s.checklist.do_send(Control::EndOfLocal);
        }
        if !self.gathering_complete && self.streams.iter().all(|s| s.gathered) {
            self.gathering_complete = true;
            self.subscribers.publish(IceEvent::GatheringComplete);
        }
    }
}

impl Handler<WantsSlot> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: WantsSlot, ctx: &mut Context<Self>) {
        let Some(s) = self.streams.get_mut(msg.stream) else {
            return;
        };
        let sooner = msg.nomination && !s.wants_nomination_slot;
        s.wants_slot = true;
        s.wants_nomination_slot |= msg.nomination;
        if self.slot_timer.is_none() || sooner {
            self.offer_slot(ctx);
        }
    }
}

impl Handler<StreamEvent> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: StreamEvent, _: &mut Context<Self>) {
        if let IceEvent::RoleChanged(role) = msg.event {
            // RFC 8445 §7.3.1.1: the agent has one role; every checklist follows.
            self.role = role;
            for (i, s) in self.streams.iter().enumerate() {
                if i != msg.stream {
                    s.checklist.do_send(Control::SetRole(role));
                }
            }
        }
        self.subscribers.publish(msg.event);
    }
}

impl Handler<LocalDescription> for IceAgent {
    type Result = Description;

    fn handle(&mut self, _: LocalDescription, _: &mut Context<Self>) -> Self::Result {
        Description {
            credentials: self.credentials.clone(),
            role: self.role,
        }
    }
}

impl Handler<SetRemote> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: SetRemote, _: &mut Context<Self>) {
        let credentials = IceCredentials {
            ufrag: msg.ufrag,
            pwd: msg.pwd,
        };
        self.to_all(|| Control::RemoteCredentials(credentials.clone()));
        for c in msg.candidates {
            self.to_all(|| Control::AddRemote(c.clone()));
        }
    }
}

impl Handler<AddRemoteCandidate> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: AddRemoteCandidate, _: &mut Context<Self>) {
        self.to_all(|| Control::AddRemote(msg.0.clone()));
    }
}

impl Handler<EndOfRemoteCandidates> for IceAgent {
    type Result = ();

    fn handle(&mut self, _: EndOfRemoteCandidates, _: &mut Context<Self>) {
        self.to_all(|| Control::EndOfRemote);
    }
}

impl Handler<Start> for IceAgent {
    type Result = ();

    fn handle(&mut self, _: Start, _: &mut Context<Self>) {
        self.to_all(|| Control::Start);
    }
}

impl Handler<Send> for IceAgent {
    type Result = ResponseFuture<Result<(), IceError>>;

    fn handle(&mut self, msg: Send, _: &mut Context<Self>) -> Self::Result {
        let checklist = self.streams[0].checklist.clone();
        Box::pin(async move {
            checklist
                .send(SendData(msg.0))
                .await
                .unwrap_or(Err(IceError::NotConnected))
        })
    }
}

impl Handler<Restart> for IceAgent {
    type Result = Description;

    fn handle(&mut self, _: Restart, _: &mut Context<Self>) -> Self::Result {
        self.credentials = IceCredentials::random(&mut self.rng);
        let credentials = self.credentials.clone();
        tracing::debug!(ufrag = %credentials.ufrag, "ICE restart");
        self.to_all(|| Control::Restart(credentials.clone()));
        Description {
            credentials: self.credentials.clone(),
            role: self.role,
        }
    }
}

impl Handler<Stop> for IceAgent {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Subscribe<IceEvent>> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: Subscribe<IceEvent>, _: &mut Context<Self>) {
        self.subscribers.add(msg.0);
    }
}

impl Handler<SubscribeChannel<IceEvent>> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChannel<IceEvent>, _: &mut Context<Self>) {
        self.subscribers.add_channel(msg.0);
    }
}

impl IceAgentHandle {
    /// The agent's address, for [`Subscribe`] and the messages.
    pub fn addr(&self) -> &Addr<IceAgent> {
        &self.addr
    }

    /// The agent's events as a stream (subscribe before [`IceAgentHandle::gather`]).
    pub fn events(&self) -> EventStream<IceEvent> {
        let (stream, subscribe) = EventStream::new();
        self.addr.do_send(subscribe);
        stream
    }

    /// [`Gather`].
    pub fn gather(&self) {
        self.addr.do_send(Gather);
    }

    /// [`LocalDescription`]: the ufrag, password and role to signal.
    pub async fn local_description(&self) -> Description {
        self.addr
            .send(LocalDescription)
            .await
            .expect("the ICE agent is running")
    }

    /// [`SetRemote`].
    pub fn set_remote(
        &self,
        ufrag: impl Into<String>,
        pwd: impl Into<String>,
        candidates: Vec<Candidate>,
    ) {
        self.addr.do_send(SetRemote {
            ufrag: ufrag.into(),
            pwd: pwd.into(),
            candidates,
        });
    }

    /// [`AddRemoteCandidate`].
    pub fn add_remote_candidate(&self, candidate: Candidate) {
        self.addr.do_send(AddRemoteCandidate(candidate));
    }

    /// [`EndOfRemoteCandidates`].
    pub fn end_of_remote_candidates(&self) {
        self.addr.do_send(EndOfRemoteCandidates);
    }

    /// [`Start`] (the seed's ProcessCandidates).
    pub fn start(&self) {
        self.addr.do_send(Start);
    }

    /// [`Send`]: application data over the selected pair.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), IceError> {
        self.addr
            .send(Send(data.into()))
            .await
            .unwrap_or(Err(IceError::NotConnected))
    }

    /// [`Restart`]: answers the new ufrag and password to signal.
    pub async fn restart(&self) -> Description {
        self.addr
            .send(Restart)
            .await
            .expect("the ICE agent is running")
    }

    /// [`Stop`].
    pub fn stop(&self) {
        self.addr.do_send(Stop);
    }
}
