//! `Checklist`: the candidate pairs of one data stream, its checks, and its sockets.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle,
    StreamHandler,
};
use bytes::Bytes;
use floe::ice::{self, Candidate, CandidateKind, IceConfig, IceCredentials, IceError, IceRole};
use floe::stun::{Class, Message as StunMessage, MAGIC_COOKIE};
use floe::turn::client::{Client, ClientConfig, ClientEvent};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::agent::{GatherDone, GatherError, Gathered, IceAgent, StreamEvent, WantsSlot};
use super::config::AgentConfig;
use super::io::{udp_datagrams, Datagram};
use super::relay::{spawn_relay, RelayCommand, RelayEvent, RelayNotice};
use super::{CandidateErrorKind, IceEvent};
use crate::events::{EventStream, Subscribe, SubscribeChannel, Subscribers};
use crate::udp::{BatchSocket, Outgoing, UdpSocketConfig};

/// RFC 7983 §7: a STUN message starts with 0..=3 and carries the magic cookie.
fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 4 && data[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// A host socket of the stream.
struct HostSocket {
    addr: SocketAddr,
    socket: Rc<BatchSocket>,
}

/// A Binding to a STUN server from a host socket (RFC 8445 §5.1.1.2).
struct Binding {
    socket: usize,
    server: SocketAddr,
    client: Client,
    done: bool,
}

/// A TURN session of the stream.
struct RelaySlot {
    server: SocketAddr,
    commands: Recipient<RelayCommand>,
    relayed: Option<SocketAddr>,
    done: bool,
    permitted: HashSet<IpAddr>,
}

/// The checks of one data stream (RFC 8445 §6.1.2 - §8) and the sockets they use; see
/// the [module documentation](super) for how it shares the work with its
/// [`IceAgent`].
///
/// It is created by its agent; applications talk to the agent, and may subscribe to
/// the checklist's own events (`PairNominated`, `PairFailed`, `Connected`,
/// `Disconnected`, `Failed`, `Data`) with [`Subscribe`] or [`Checklist::events`].
pub struct Checklist {
    stream: usize,
    agent: Addr<IceAgent>,
    core: ice::Checklist,
    /// RFC 8445 §9: during an ICE restart, the old checklist; its selected pair carries
    /// the data (and keeps consent) until `core` selects one.
    previous: Option<ice::Checklist>,
    tie_breaker: u64,
    started: bool,
    end_of_local: bool,
    config: AgentConfig,
    sockets: Vec<HostSocket>,
    bindings: Vec<Binding>,
    relays: Vec<RelaySlot>,
    gather_done: bool,
    remote_ips: HashSet<IpAddr>,
    /// A slot was asked for (`Some`), and whether for a nomination check.
    asked_slot: Option<bool>,
    timer: Option<SpawnHandle>,
    timer_at: Option<Instant>,
    subscribers: Subscribers<IceEvent>,
}

impl Checklist {
    pub(crate) fn new(
        stream: usize,
        agent: Addr<IceAgent>,
        config: AgentConfig,
        credentials: IceCredentials,
        tie_breaker: u64,
        rng: StdRng,
    ) -> Self {
        let core_config: IceConfig = config.ice.clone();
        Checklist {
            stream,
            agent,
            core: ice::Checklist::new(core_config, credentials, tie_breaker, rng),
            previous: None,
            tie_breaker,
            started: false,
            end_of_local: false,
            config,
            sockets: Vec::new(),
            bindings: Vec::new(),
            relays: Vec::new(),
            gather_done: false,
            remote_ips: HashSet::new(),
            asked_slot: None,
            timer: None,
            timer_at: None,
            subscribers: Subscribers::default(),
        }
    }

    /// The checklist's events as a stream.
    pub fn events(addr: &Addr<Checklist>) -> EventStream<IceEvent> {
        let (stream, subscribe) = EventStream::new();
        addr.do_send(subscribe);
        stream
    }

    fn publish(&mut self, event: IceEvent) {
        self.subscribers.publish(event.clone());
        self.agent.do_send(StreamEvent {
            stream: self.stream,
            event,
        });
    }

    /// Binds a host socket on each address, starts Bindings and TURN sessions.
    fn gather(&mut self, ctx: &mut Context<Self>, ips: Vec<IpAddr>) {
        let now = Instant::now();
        let transaction = self.config.gather.transaction();
        for ip in &ips {
            let socket =
                match BatchSocket::bind(SocketAddr::new(*ip, 0), &UdpSocketConfig::default()) {
                    Ok(s) => Rc::new(s),
                    Err(e) => {
                        tracing::warn!(%ip, error = %e, "no host candidate");
                        continue;
                    }
                };
            let addr = socket.local_addr();
            let index = self.sockets.len();
            ctx.add_stream(udp_datagrams(index, socket.clone()));
            self.sockets.push(HostSocket { addr, socket });
            if !self.config.gather.relay_only {
                self.agent.do_send(Gathered {
                    stream: self.stream,
                    candidate: Candidate::host(addr),
                });
            }
        }
        if !self.config.gather.relay_only {
            for server in self.config.stun.clone() {
                for (index, s) in self.sockets.iter().enumerate() {
                    if s.addr.is_ipv4() != server.is_ipv4() {
                        continue;
                    }
                    let mut c = ClientConfig::new(server, s.addr, "", "");
                    c.transaction = transaction;
                    let mut client = Client::new(c, StdRng::from_entropy());
                    client.binding(now);
                    self.bindings.push(Binding {
                        socket: index,
                        server,
                        client,
                        done: false,
                    });
                }
            }
        }
        for (relay, server) in self.config.turn.clone().into_iter().enumerate() {
            let local_ip = self
                .sockets
                .iter()
                .map(|s| s.addr.ip())
                .find(|ip| ip.is_ipv4() == server.addr.is_ipv4())
                .unwrap_or(if server.addr.is_ipv4() {
                    IpAddr::from([0, 0, 0, 0])
                } else {
                    IpAddr::from([0u16; 8])
                });
            let addr = server.addr;
            let commands = spawn_relay(
                relay,
                server,
                local_ip,
                transaction,
                ctx.address().recipient(),
            );
            self.relays.push(RelaySlot {
                server: addr,
                commands,
                relayed: None,
                done: false,
                permitted: HashSet::new(),
            });
        }
        self.check_gather_done();
        self.drive(ctx);
    }

    fn check_gather_done(&mut self) {
        if self.gather_done
            || self.bindings.iter().any(|b| !b.done)
            || self.relays.iter().any(|r| !r.done)
        {
            return;
        }
        self.gather_done = true;
        self.agent.do_send(GatherDone {
            stream: self.stream,
        });
    }

    fn gather_error(
        &mut self,
        server: SocketAddr,
        kind: CandidateErrorKind,
        code: Option<u16>,
        reason: String,
    ) {
        self.agent.do_send(GatherError {
            stream: self.stream,
            server,
            kind,
            code,
            reason,
        });
    }

    /// RFC 8656 §9: the remote's IPs need permissions on every relay.
    fn permit_remotes(&mut self) {
        for r in &mut self.relays {
            if r.relayed.is_none() {
                continue;
            }
            for ip in &self.remote_ips {
                if r.relayed.is_some_and(|a| a.is_ipv4() == ip.is_ipv4()) && r.permitted.insert(*ip)
                {
                    r.commands.do_send(RelayCommand::Permit(*ip));
                }
            }
        }
    }

    /// RFC 8656 §12: once a relayed pair carries the data, a channel to the remote
    /// replaces Send and Data indications (4 bytes of overhead instead of 36).
    fn bind_channel(&mut self, local: &Candidate, remote: &Candidate) {
        let base = local.base().unwrap_or(local.addr());
        if let Some(r) = self.relays.iter().find(|r| r.relayed == Some(base)) {
            r.commands.do_send(RelayCommand::Bind(remote.addr()));
        }
    }

    /// A datagram (or relayed data) for the ICE core.
    fn ice_input(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Bytes) {
        if is_stun(&data) {
            let Ok(msg) = StunMessage::decode(data) else {
                return;
            };
            // RFC 8445 §9: during a restart, what belongs to the old checklist (checks
            // with the old ufrag, answers to its consent checks) goes to it.
            let to_previous = match (msg.class(), &self.previous) {
                (_, None) => false,
                (Class::Request, Some(p)) => {
                    p.is_addressed_to(&msg) && !self.core.is_addressed_to(&msg)
                }
                (Class::Success | Class::Error, Some(p)) => {
                    p.owns_transaction(msg.transaction_id())
                }
                (Class::Indication, _) => false,
            };
            match &mut self.previous {
                Some(p) if to_previous => p.handle_stun(now, from, to, &msg),
                _ => self.core.handle_stun(now, from, to, &msg),
            }
        } else if self.core.is_remote_address(from)
            || self
                .previous
                .as_ref()
                .is_some_and(|p| p.is_remote_address(from))
        {
            self.publish(IceEvent::Data(data));
        }
    }

    /// RFC 8445 §9: ICE restart with new local credentials: a fresh checklist with the
    /// same local candidates; the old one, if it had selected a pair, keeps carrying
    /// data and consent until the new one selects.
    fn restart(&mut self, now: Instant, credentials: IceCredentials) {
        let mut config: IceConfig = self.config.ice.clone();
        config.role = self.core.role();
        let mut fresh = ice::Checklist::new(
            config,
            credentials,
            self.tie_breaker,
            StdRng::from_entropy(),
        );
        for c in self.core.local_candidates() {
            if c.kind() != CandidateKind::PeerReflexive {
                fresh.add_local_candidate(c.clone());
            }
        }
        if self.end_of_local {
            fresh.end_of_local_candidates();
        }
        let mut old = std::mem::replace(&mut self.core, fresh);
        if old.is_connected() {
            old.retire();
            self.previous = Some(old);
        } else if let Some(p) = &self.previous {
            // A restart during a restart: the pair that carries data stays.
            tracing::debug!(connected = p.is_connected(), "ICE restart during a restart");
        }
        self.asked_slot = None;
        if self.started {
            self.core.start(now);
        }
    }

    fn route(&mut self, t: floe::Transmit) {
        if let Some(s) = self.sockets.iter().find(|s| s.addr == t.source) {
            if let Err(e) = s.socket.try_send(&Outgoing::new(t.destination, &t.payload)) {
                tracing::debug!(from = %t.source, to = %t.destination, error = %e, "ICE datagram not sent");
            }
        } else if let Some(r) = self.relays.iter().find(|r| r.relayed == Some(t.source)) {
            r.commands.do_send(RelayCommand::SendTo {
                peer: t.destination,
                data: t.payload,
            });
        } else {
            tracing::debug!(from = %t.source, "no socket for an ICE transmit");
        }
    }

    /// After every input: transmits out, events up, slot wanted, timer re-armed.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while let Some(t) = self.core.poll_transmit() {
            self.route(t);
        }
        while let Some(t) = self.previous.as_mut().and_then(|p| p.poll_transmit()) {
            self.route(t);
        }
        self.previous_events();
        for i in 0..self.bindings.len() {
            while let Some(t) = self.bindings[i].client.poll_transmit() {
                let s = &self.sockets[self.bindings[i].socket];
                let _ = s.socket.try_send(&Outgoing::new(t.destination, &t.payload));
            }
        }
        while let Some(e) = self.core.poll_event() {
            let event = match e {
                ice::IceEvent::PairNominated { local, remote } => {
                    IceEvent::PairNominated { local, remote }
                }
                ice::IceEvent::PairFailed { local, remote } => {
                    IceEvent::PairFailed { local, remote }
                }
                ice::IceEvent::SelectedPairChanged { local, remote } => {
                    self.bind_channel(&local, &remote);
                    IceEvent::SelectedPairChanged { local, remote }
                }
                ice::IceEvent::RoleChanged(role) => {
                    if let Some(p) = &mut self.previous {
                        p.set_role(role);
                    }
                    IceEvent::RoleChanged(role)
                }
                ice::IceEvent::Connected => {
                    // RFC 8445 §9: the restart is over once the new checklist selects.
                    self.previous = None;
                    IceEvent::Connected
                }
                ice::IceEvent::Disconnected => IceEvent::Disconnected,
                ice::IceEvent::Failed => IceEvent::Failed,
                other => {
                    tracing::debug!(event = ?other, "ICE");
                    continue;
                }
            };
            self.publish(event);
        }
        // Ask again when a nomination check appears: it needs only the 5 ms floor.
        let wants = if self.core.wants_nomination_check() {
            Some(true)
        } else if self.core.wants_check() {
            Some(false)
        } else {
            None
        };
        if let Some(nomination) = wants {
            if self.asked_slot.is_none_or(|asked| nomination && !asked) {
                self.asked_slot = Some(nomination);
                self.agent.do_send(WantsSlot {
                    stream: self.stream,
                    nomination,
                });
            }
        }
        let mut next = self.core.poll_timeout();
        if let Some(t) = self.previous.as_ref().and_then(|p| p.poll_timeout()) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        for b in &self.bindings {
            if let Some(t) = b.client.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        if next != self.timer_at {
            if let Some(h) = self.timer.take() {
                ctx.cancel_future(h);
            }
            self.timer_at = next;
            if let Some(at) = next {
                let wait = at.saturating_duration_since(Instant::now());
                self.timer = Some(ctx.run_later(wait, |act, ctx| {
                    act.timer = None;
                    act.timer_at = None;
                    act.on_timeout();
                    act.drive(ctx);
                }));
            }
        }
    }

    /// The old checklist's events during a restart: only losing consent on its pair
    /// (which ends the restart's grace) and a role change matter.
    fn previous_events(&mut self) {
        let mut lost = false;
        let mut role = None;
        if let Some(p) = &mut self.previous {
            while let Some(e) = p.poll_event() {
                match e {
                    ice::IceEvent::ConsentLost { .. } => lost = true,
                    ice::IceEvent::RoleChanged(r) => role = Some(r),
                    _ => {}
                }
            }
        }
        if let Some(r) = role {
            self.core.set_role(r);
            self.publish(IceEvent::RoleChanged(r));
        }
        if lost {
            tracing::debug!("ICE restart: the old pair lost consent");
            self.previous = None;
            if !self.core.is_connected() {
                self.publish(IceEvent::Disconnected);
            }
        }
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        self.core.handle_timeout(now);
        if let Some(p) = &mut self.previous {
            p.handle_timeout(now);
        }
        for i in 0..self.bindings.len() {
            self.bindings[i].client.handle_timeout(now);
            self.binding_events(i);
        }
    }

    fn binding_events(&mut self, i: usize) {
        while let Some(e) = self.bindings[i].client.poll_event() {
            if self.bindings[i].done {
                continue;
            }
            let server = self.bindings[i].server;
            match e {
                ClientEvent::BindingSucceeded { mapped, .. } => {
                    self.bindings[i].done = true;
                    let base = self.sockets[self.bindings[i].socket].addr;
                    self.agent.do_send(Gathered {
                        stream: self.stream,
                        candidate: Candidate::server_reflexive(mapped, base, server),
                    });
                }
                ClientEvent::Error { code, reason, .. } => {
                    self.bindings[i].done = true;
                    let kind = match code {
                        None => CandidateErrorKind::Unreachable,
                        Some(_) => CandidateErrorKind::Rejected,
                    };
                    self.gather_error(server, kind, code, reason);
                }
                _ => {}
            }
        }
        self.check_gather_done();
    }
}

impl Actor for Checklist {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        for r in &self.relays {
            r.commands.do_send(RelayCommand::Close);
        }
    }
}

impl StreamHandler<Datagram> for Checklist {
    fn handle(&mut self, d: Datagram, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(i) = self
            .bindings
            .iter()
            .position(|b| !b.done && b.socket == d.socket && b.server == d.from)
        {
            self.bindings[i].client.handle_input(now, d.from, d.data);
            self.binding_events(i);
        } else {
            self.ice_input(now, d.from, d.to, d.data);
        }
        self.drive(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // One socket stopped receiving (logged); the others carry on.
    }
}

impl Handler<RelayNotice> for Checklist {
    type Result = ();

    fn handle(&mut self, msg: RelayNotice, ctx: &mut Context<Self>) {
        let Some(slot) = self.relays.get_mut(msg.relay) else {
            return;
        };
        match msg.event {
            RelayEvent::Allocated { relayed, mapped } => {
                slot.relayed = Some(relayed);
                let was_done = std::mem::replace(&mut slot.done, true);
                let server = slot.server;
                let local = self
                    .sockets
                    .iter()
                    .find(|s| s.addr.is_ipv4() == relayed.is_ipv4())
                    .map(|s| s.addr);
                let mapped = mapped.or(local).unwrap_or(relayed);
                if !was_done {
                    self.agent.do_send(Gathered {
                        stream: self.stream,
                        candidate: Candidate::relayed(relayed, mapped, server),
                    });
                }
                self.permit_remotes();
                self.check_gather_done();
            }
            RelayEvent::Data { peer, data } => {
                if let Some(relayed) = slot.relayed {
                    self.ice_input(Instant::now(), peer, relayed, data);
                }
            }
            RelayEvent::Failed { kind, code, reason } => {
                let server = slot.server;
                let was_done = std::mem::replace(&mut slot.done, true);
                if !was_done {
                    self.gather_error(server, kind, code, reason);
                }
                self.check_gather_done();
            }
        }
        self.drive(ctx);
    }
}

/// Agent → checklist: gather on these host addresses.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct GatherOn(pub Vec<IpAddr>);

impl Handler<GatherOn> for Checklist {
    type Result = ();

    fn handle(&mut self, msg: GatherOn, ctx: &mut Context<Self>) {
        self.gather(ctx, msg.0);
    }
}

/// Agent → checklist: a local candidate with its priority and foundation.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AddLocal(pub Candidate);

impl Handler<AddLocal> for Checklist {
    type Result = ();

    fn handle(&mut self, msg: AddLocal, ctx: &mut Context<Self>) {
        self.core.add_local_candidate(msg.0);
        self.drive(ctx);
    }
}

/// Agent → checklist: what the application said about the remote side, or asked.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) enum Control {
    EndOfLocal,
    RemoteCredentials(IceCredentials),
    AddRemote(Candidate),
    EndOfRemote,
    Start,
    /// RFC 8445 §9: ICE restart with these new local credentials.
    Restart(IceCredentials),
    /// One Ta slot (RFC 8445 §6.1.4.2): start one check if there is one.
    Slot,
    /// A slot at the 5 ms floor: start a nomination check if there is one.
    NominationSlot,
    SetRole(IceRole),
    Stop,
}

impl Handler<Control> for Checklist {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg {
            Control::EndOfLocal => {
                self.end_of_local = true;
                self.core.end_of_local_candidates();
            }
            Control::RemoteCredentials(c) => self.core.set_remote_credentials(c),
            Control::AddRemote(c) => {
                self.remote_ips.insert(c.addr().ip());
                self.core.add_remote_candidate(c);
                self.permit_remotes();
            }
            Control::EndOfRemote => self.core.end_of_remote_candidates(),
            Control::Start => {
                self.started = true;
                self.core.start(now);
            }
            Control::Restart(credentials) => self.restart(now, credentials),
            Control::Slot => {
                self.asked_slot = None;
                self.core.start_check(now);
            }
            Control::NominationSlot => {
                self.asked_slot = None;
                self.core.start_nomination_check(now);
            }
            Control::SetRole(role) => {
                self.core.set_role(role);
                if let Some(p) = &mut self.previous {
                    p.set_role(role);
                }
            }
            Control::Stop => {
                ctx.stop();
                return;
            }
        }
        self.drive(ctx);
    }
}

/// Agent → checklist: application data for the selected pair of component 1.
#[derive(Message)]
#[rtype(result = "Result<(), IceError>")]
pub(crate) struct SendData(pub Bytes);

impl Handler<SendData> for Checklist {
    type Result = Result<(), IceError>;

    fn handle(&mut self, msg: SendData, ctx: &mut Context<Self>) -> Self::Result {
        let t = match &mut self.previous {
            Some(p) if !self.core.has_selected_pair(1) => p.send(1, msg.0),
            _ => self.core.send(1, msg.0),
        }?;
        self.route(t);
        self.drive(ctx);
        Ok(())
    }
}

impl Handler<Subscribe<IceEvent>> for Checklist {
    type Result = ();

    fn handle(&mut self, msg: Subscribe<IceEvent>, _: &mut Context<Self>) {
        self.subscribers.add(msg.0);
    }
}

impl Handler<SubscribeChannel<IceEvent>> for Checklist {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChannel<IceEvent>, _: &mut Context<Self>) {
        self.subscribers.add_channel(msg.0);
    }
}
