//! The messages an application sends an [`IceAgent`], and [`IceAgentHandle`], the same
//! API as methods.

use std::net::SocketAddr;
use std::time::Instant;

use actix::{Actor, ActorContext, Addr, Context, Handler, Message};
use bytes::Bytes;
use floe::ice::{Candidate, IceCredentials, IceError, IceRole};

use super::agent::IceAgent;
use super::config::AgentConfig;
use super::{IceEvent, Send, SendOn};
use crate::events::{EventStream, Subscribe, SubscribeChannel};

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

/// The answer to [`LocalDescription`] and [`Restart`].
#[derive(Debug, Clone, PartialEq, Eq, actix::MessageResponse)]
pub struct Description {
    /// The local ufrag and password of stream 0.
    pub credentials: IceCredentials,
    /// The current role.
    pub role: IceRole,
    /// The local candidates of stream 0 gathered so far, with their priorities and
    /// foundations (each was also an [`IceEvent::Candidate`]); after a [`Restart`], the
    /// ones to signal again with the new credentials.
    pub candidates: Vec<Candidate>,
    /// Every stream's credentials and candidates, stream 0 first.
    pub streams: Vec<StreamDescription>,
}

/// The local ufrag, password and candidates of one data stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// The local ufrag and password (RFC 8445 §5.3: per data stream).
    pub credentials: IceCredentials,
    /// The local candidates, each of its component.
    pub candidates: Vec<Candidate>,
}

/// The remote side's ufrag and password (RFC 8445 §5.3), the candidates known so far
/// (more may follow with [`AddRemoteCandidate`]), and whether it is a lite
/// implementation (`a=ice-lite`, RFC 8445 §6.1.1: a full agent then controls).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SetRemote {
    /// The data stream (0 is the first).
    pub stream: usize,
    /// ice-ufrag.
    pub ufrag: String,
    /// ice-pwd.
    pub pwd: String,
    /// Candidates.
    pub candidates: Vec<Candidate>,
    /// The remote agent is lite (RFC 8445 §2.5).
    pub lite: bool,
    /// The remote agent's ice-options include `renomination`
    /// (draft-thatcher-ice-renomination-01); negotiated when
    /// [`IceConfig::renomination`](floe::ice::IceConfig::renomination) is set here too.
    pub renomination: bool,
}

impl SetRemote {
    /// The credentials of a full remote agent without ice-options, no candidates yet.
    pub fn new(stream: usize, ufrag: impl Into<String>, pwd: impl Into<String>) -> Self {
        SetRemote {
            stream,
            ufrag: ufrag.into(),
            pwd: pwd.into(),
            candidates: Vec::new(),
            lite: false,
            renomination: false,
        }
    }
}

/// draft-thatcher-ice-renomination-01: the controlling agent nominates the valid pair
/// of `local` (a local candidate's base or address) and `remote` in `component` of
/// `stream` again; the controlled agent selects it whatever its priority. The core
/// decides; the error says why it cannot (not negotiated, not controlling, no such
/// valid pair).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), IceError>")]
pub struct Renominate {
    /// The data stream (0 is the first).
    pub stream: usize,
    /// The component.
    pub component: u16,
    /// The local candidate's base or address.
    pub local: SocketAddr,
    /// The remote candidate's address.
    pub remote: SocketAddr,
}

/// A remote candidate of `stream`, at any time (RFC 8838 trickle); its component is
/// its own.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AddRemoteCandidate {
    /// The data stream (0 is the first).
    pub stream: usize,
    /// The candidate.
    pub candidate: Candidate,
}

/// A remote candidate of `stream` as signalled: its candidate-attribute value
/// (RFC 8839 §5.1, with or without `a=candidate:`). A host name under `.local` (as
/// Chromium signals its host candidates) is resolved with multicast DNS first
/// (draft-ietf-mmusic-mdns-ice-candidates); a name nobody answers for is dropped with a
/// warning. Answers an error for an attribute that does not parse.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), IceError>")]
pub struct AddRemoteCandidateSdp {
    /// The data stream (0 is the first).
    pub stream: usize,
    /// The candidate-attribute value.
    pub sdp: String,
}

/// The remote side signalled end-of-candidates for `stream` (RFC 8838 §8.2).
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct EndOfRemoteCandidates {
    /// The data stream (0 is the first).
    pub stream: usize,
}

/// Starts the checks (the seed's ProcessCandidates; RFC 8445 §6.1.2.6). Checks go out
/// once the remote credentials are known; candidates may still trickle in.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Start;

/// RFC 8445 §9: ICE restart of every stream. The agent takes new local credentials
/// (answered, to signal with the candidates, which are kept and answered too) and
/// starts fresh checklists; the pairs selected before keep carrying data and consent
/// until the new checks select others.
/// Then give the remote side's new credentials and candidates with [`SetRemote`]
/// (the peer restarts too when it sees new credentials).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Description")]
pub struct Restart;

/// Stops the agent; its TURN allocations are deleted.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Gather> for IceAgent {
    type Result = ();

    fn handle(&mut self, _: Gather, ctx: &mut Context<Self>) {
        self.gather(ctx);
    }
}

impl Handler<LocalDescription> for IceAgent {
    type Result = Description;

    fn handle(&mut self, _: LocalDescription, _: &mut Context<Self>) -> Description {
        self.description()
    }
}

impl Handler<SetRemote> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: SetRemote, ctx: &mut Context<Self>) {
        if msg.stream >= self.core().stream_count() {
            tracing::warn!(stream = msg.stream, "no such ICE data stream");
            return;
        }
        self.core()
            .set_remote_credentials_of(msg.stream, msg.ufrag, msg.pwd);
        if msg.lite {
            self.core().set_remote_lite(true);
        }
        if msg.renomination {
            self.core().set_remote_renomination(true);
        }
        for c in msg.candidates {
            self.add_remote(msg.stream, c);
        }
        self.drive(ctx);
    }
}

impl Handler<AddRemoteCandidate> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: AddRemoteCandidate, ctx: &mut Context<Self>) {
        if msg.stream >= self.core().stream_count() {
            tracing::warn!(stream = msg.stream, "no such ICE data stream");
            return;
        }
        self.add_remote(msg.stream, msg.candidate);
        self.drive(ctx);
    }
}

impl Handler<AddRemoteCandidateSdp> for IceAgent {
    type Result = Result<(), IceError>;

    fn handle(&mut self, msg: AddRemoteCandidateSdp, ctx: &mut Context<Self>) -> Self::Result {
        if msg.stream >= self.core().stream_count() {
            tracing::warn!(stream = msg.stream, "no such ICE data stream");
            return Ok(());
        }
        match Candidate::from_sdp(&msg.sdp) {
            Ok(c) => self.add_remote(msg.stream, c),
            Err(IceError::HostnameCandidate(name)) if floe::mdns::is_mdns_name(&name) => {
                self.resolve_remote(ctx, &name, msg.stream, msg.sdp)
            }
            Err(e) => return Err(e),
        }
        self.drive(ctx);
        Ok(())
    }
}

impl Handler<EndOfRemoteCandidates> for IceAgent {
    type Result = ();

    fn handle(&mut self, msg: EndOfRemoteCandidates, ctx: &mut Context<Self>) {
        if msg.stream < self.core().stream_count() {
            self.end_of_remote_candidates(msg.stream);
            self.drive(ctx);
        }
    }
}

impl Handler<Start> for IceAgent {
    type Result = ();

    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) {
        self.core().start(Instant::now());
        self.drive(ctx);
    }
}

impl Handler<Renominate> for IceAgent {
    type Result = Result<(), IceError>;

    fn handle(&mut self, msg: Renominate, ctx: &mut Context<Self>) -> Self::Result {
        self.core()
            .renominate(msg.stream, msg.component, msg.local, msg.remote)?;
        self.drive(ctx);
        Ok(())
    }
}

impl Handler<Send> for IceAgent {
    type Result = Result<(), IceError>;

    fn handle(&mut self, msg: Send, ctx: &mut Context<Self>) -> Self::Result {
        self.send(ctx, 0, 1, msg.0)
    }
}

impl Handler<SendOn> for IceAgent {
    type Result = Result<(), IceError>;

    fn handle(&mut self, msg: SendOn, ctx: &mut Context<Self>) -> Self::Result {
        self.send(ctx, msg.stream, msg.component, msg.data)
    }
}

impl Handler<Restart> for IceAgent {
    type Result = Description;

    fn handle(&mut self, _: Restart, ctx: &mut Context<Self>) -> Description {
        let credentials = self.core().restart(Instant::now());
        tracing::debug!(ufrag = %credentials.ufrag, "ICE restart");
        self.drive(ctx);
        self.description()
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

/// A running [`IceAgent`]: its address and the API as methods.
#[derive(Clone)]
pub struct IceAgentHandle {
    addr: Addr<IceAgent>,
}

impl IceAgent {
    /// Starts an agent on the current Arbiter (its sockets are bound there).
    pub fn spawn(config: AgentConfig) -> IceAgentHandle {
        IceAgentHandle {
            addr: IceAgent::new(config).start(),
        }
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

    /// [`SetRemote`] of stream 0 for a full (not lite) remote agent.
    pub fn set_remote(
        &self,
        ufrag: impl Into<String>,
        pwd: impl Into<String>,
        candidates: Vec<Candidate>,
    ) {
        self.set_remote_of(0, ufrag, pwd, candidates);
    }

    /// [`SetRemote`] of `stream` for a full (not lite) remote agent.
    pub fn set_remote_of(
        &self,
        stream: usize,
        ufrag: impl Into<String>,
        pwd: impl Into<String>,
        candidates: Vec<Candidate>,
    ) {
        self.addr.do_send(SetRemote {
            stream,
            ufrag: ufrag.into(),
            pwd: pwd.into(),
            candidates,
            lite: false,
            renomination: false,
        });
    }

    /// [`SetRemote`] of stream 0 for a lite remote agent (`a=ice-lite`): this agent
    /// controls.
    pub fn set_remote_lite(
        &self,
        ufrag: impl Into<String>,
        pwd: impl Into<String>,
        candidates: Vec<Candidate>,
    ) {
        self.set_remote_lite_of(0, ufrag, pwd, candidates);
    }

    /// [`SetRemote`] of `stream` for a lite remote agent.
    pub fn set_remote_lite_of(
        &self,
        stream: usize,
        ufrag: impl Into<String>,
        pwd: impl Into<String>,
        candidates: Vec<Candidate>,
    ) {
        self.addr.do_send(SetRemote {
            stream,
            ufrag: ufrag.into(),
            pwd: pwd.into(),
            candidates,
            lite: true,
            renomination: false,
        });
    }

    /// [`SetRemote`] as built: credentials, candidates and the remote's options
    /// (`lite`, `renomination`).
    pub fn set_remote_description(&self, remote: SetRemote) {
        self.addr.do_send(remote);
    }

    /// [`Renominate`]: nominates the valid pair of `local` and `remote` again.
    pub async fn renominate(
        &self,
        stream: usize,
        component: u16,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), IceError> {
        self.addr
            .send(Renominate {
                stream,
                component,
                local,
                remote,
            })
            .await
            .unwrap_or(Err(IceError::NotConnected))
    }

    /// [`AddRemoteCandidate`] of stream 0.
    pub fn add_remote_candidate(&self, candidate: Candidate) {
        self.add_remote_candidate_to(0, candidate);
    }

    /// [`AddRemoteCandidate`] of `stream`.
    pub fn add_remote_candidate_to(&self, stream: usize, candidate: Candidate) {
        self.addr.do_send(AddRemoteCandidate { stream, candidate });
    }

    /// [`AddRemoteCandidateSdp`]: a remote candidate of `stream` as signalled, mDNS
    /// names resolved first.
    pub async fn add_remote_candidate_sdp(
        &self,
        stream: usize,
        sdp: impl Into<String>,
    ) -> Result<(), IceError> {
        let sdp = sdp.into();
        self.addr
            .send(AddRemoteCandidateSdp { stream, sdp })
            .await
            .unwrap_or(Ok(()))
    }

    /// [`EndOfRemoteCandidates`] of stream 0.
    pub fn end_of_remote_candidates(&self) {
        self.end_of_remote_candidates_of(0);
    }

    /// [`EndOfRemoteCandidates`] of `stream`.
    pub fn end_of_remote_candidates_of(&self, stream: usize) {
        self.addr.do_send(EndOfRemoteCandidates { stream });
    }

    /// [`Start`] (the seed's ProcessCandidates).
    pub fn start(&self) {
        self.addr.do_send(Start);
    }

    /// [`Send`]: application data over the selected pair (stream 0, component 1).
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), IceError> {
        self.addr
            .send(Send(data.into()))
            .await
            .unwrap_or(Err(IceError::NotConnected))
    }

    /// [`SendOn`]: application data over the selected pair of `component` of `stream`.
    pub async fn send_on(
        &self,
        stream: usize,
        component: u16,
        data: impl Into<Bytes>,
    ) -> Result<(), IceError> {
        let data = data.into();
        self.addr
            .send(SendOn {
                stream,
                component,
                data,
            })
            .await
            .unwrap_or(Err(IceError::NotConnected))
    }

    /// [`Restart`]: answers the new ufrag and password, and the candidates, to signal.
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
