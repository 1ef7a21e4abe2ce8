//! `IceAgent`: the actor around the core [`floe::ice::Agent`]: its sockets, its one
//! timer, gathering IO, and its subscribers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Instant;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, SpawnHandle, StreamHandler, WrapFuture};
use bytes::Bytes;
use floe::ice::{Agent, Candidate, IceCredentials, IceError};
use floe::Transmit;
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::api::{Description, StreamDescription};
use super::config::AgentConfig;
use super::gather::{host_addresses, BindingOutcome, ServerBinding};
use super::io::{udp_datagrams, Datagram};
use super::mdns::{self, MdnsDatagram, MdnsService};
use super::relay::{self, RelayOutcome, RelaySession};
use super::shared_socket::SharedHost;
use super::{CandidateErrorKind, IceEvent};

mod continual;
use crate::events::Subscribers;
use crate::turn::client::{Allocate, TurnClientEvent, TurnClientHandle};
use crate::udp::{BatchSocket, Outgoing, UdpSocketConfig};

/// A host socket: a host candidate's base, of one component of one data stream.
struct HostSocket {
    addr: SocketAddr,
    stream: usize,
    component: u16,
    socket: Rc<BatchSocket>,
    /// Its read loop, a stream of the agent's context.
    reader: SpawnHandle,
    /// Continual gathering: its address went away; it neither reads nor sends.
    gone: bool,
}

/// An event of the TURN client of relay number `relay`.
pub(crate) struct RelayInput {
    relay: usize,
    event: TurnClientEvent,
}

/// An ICE agent (RFC 8445) as an actor: it drives one core [`floe::ice::Agent`] (which
/// holds every protocol rule: candidates' priorities, pairing, Ta pacing, checks,
/// nomination, role conflicts, consent, restart) and adds the IO: host UDP sockets,
/// Bindings to STUN servers, TURN sessions for relayed candidates, one timer, and
/// the subscribers of its [`IceEvent`]s. See the [module documentation](super).
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
///         IceEvent::Candidate { candidate, .. } => println!("a=candidate:{}", candidate.to_sdp()),
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
    core: Agent,
    sockets: Vec<HostSocket>,
    /// Single-port mode: stream 0, component 1 on a socket shared with other agents.
    shared: Option<SharedHost>,
    bindings: Vec<ServerBinding>,
    relays: Vec<RelaySession>,
    /// The stream and component of each relay.
    relay_owners: Vec<(usize, u16)>,
    gathering: bool,
    gathering_complete: bool,
    /// The host addresses gathered on (continual gathering compares the next list).
    gathered_ips: Vec<IpAddr>,
    /// The remote candidates' IPs: each relay installs permissions for them.
    remote_ips: HashSet<IpAddr>,
    timer: Option<SpawnHandle>,
    timer_at: Option<Instant>,
    /// Multicast DNS, opened when host candidates are hidden or a remote one needs it.
    mdns: Option<MdnsService>,
    /// Streams whose remote end-of-candidates waits for mDNS names being resolved: a
    /// candidate signalled before it still counts (RFC 8838 §14).
    end_deferred: HashSet<usize>,
    pub(super) subscribers: Subscribers<IceEvent>,
    /// ICE-TCP connections (RFC 6544).
    pub(super) tcp: super::tcp::TcpIo,
}

impl IceAgent {
    /// An agent with fresh credentials (RFC 8445 §5.3) and tie-breaker (§7.1.3) from
    /// the OS CSPRNG, not started.
    pub fn new(config: AgentConfig) -> Self {
        let mut core = Agent::new(config.ice.clone(), StdRng::from_entropy());
        for _ in 1..config.streams.max(1) {
            core.add_stream();
        }
        IceAgent {
            core,
            config,
            sockets: Vec::new(),
            shared: None,
            bindings: Vec::new(),
            relays: Vec::new(),
            relay_owners: Vec::new(),
            gathering: false,
            gathering_complete: false,
            gathered_ips: Vec::new(),
            remote_ips: HashSet::new(),
            timer: None,
            timer_at: None,
            mdns: None,
            end_deferred: HashSet::new(),
            subscribers: Subscribers::default(),
            tcp: Default::default(),
        }
    }

    /// The local credentials, the current role and the local candidates.
    pub(super) fn description(&self) -> Description {
        let streams: Vec<StreamDescription> = (0..self.core.stream_count())
            .map(|i| {
                let (ufrag, pwd) = self.core.local_credentials_of(i);
                StreamDescription {
                    credentials: IceCredentials {
                        ufrag: ufrag.to_owned(),
                        pwd: pwd.to_owned(),
                    },
                    candidates: self.core.local_candidates_of(i).to_vec(),
                }
            })
            .collect();
        Description {
            credentials: streams[0].credentials.clone(),
            role: self.core.role(),
            candidates: streams[0].candidates.clone(),
            streams,
        }
    }

    /// The streams and components, in order: `(0, 1), (0, 2) ... (1, 1) ...`.
    fn components(&self) -> Vec<(usize, u16)> {
        let n = self.core.stream_count();
        let m = self.config.components.max(1);
        (0..n).flat_map(|s| (1..=m).map(move |c| (s, c))).collect()
    }

    /// Binds a host socket on each allowed address, starts the Bindings to STUN
    /// servers and the TURN sessions.
    pub(super) fn gather(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.gathering, true) {
            return;
        }
        let ips = host_addresses(&self.config.gather).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the network interfaces");
            Vec::new()
        });
        tracing::debug!(?ips, "gathering");
        if self.config.gather.mdns {
            self.open_mdns(ctx, &ips);
        }
        let now = Instant::now();
        let transaction = self.config.gather.transaction();
        let components = self.components();
        if let Some(mux) = self.config.shared_socket.clone() {
            let (host, datagrams) = SharedHost::open(&mux, self.core.local_credentials_of(0).0);
            ctx.add_stream(datagrams);
            if !self.config.gather.relay_only {
                self.add_local(0, Candidate::host(host.addr()));
            }
            self.shared = Some(host);
        }
        for &(stream, component) in &components {
            if !self.binds_udp_host(stream, component) {
                continue;
            }
            for &ip in &ips {
                self.bind_host(ctx, stream, component, ip);
            }
        }
        if self.config.gather.gathers_tcp() {
            // TCP candidates must not share a local address with a UDP one.
            let udp: Vec<SocketAddr> = self
                .sockets
                .iter()
                .map(|s| s.addr)
                .chain(self.shared.as_ref().map(|h| h.addr()))
                .collect();
            self.gather_tcp(ctx, &ips, self.core.stream_count(), &udp);
        }
        self.gathered_ips = ips;
        for i in 0..self.sockets.len() {
            self.start_bindings(now, i);
        }
        // A relayed candidate per TURN server, stream and component.
        let turn = match self.config.gather.tcp_only {
            true => Vec::new(),
            false => self.config.turn.clone(),
        };
        for server in turn {
            for &owner in &components {
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
                let session = RelaySession::new(server.clone());
                let config = session.client_config(local_ip, transaction);
                let index = self.relays.len();
                self.relays.push(session);
                self.relay_owners.push(owner);
                ctx.spawn(
                    relay::connect(config)
                        .into_actor(self)
                        .map(move |res, act, ctx| act.relay_connected(ctx, index, res)),
                );
            }
        }
        if let Some(every) = self.config.gather.continual {
            ctx.run_interval(every, |act, ctx| act.poll_interfaces(ctx));
        }
        self.check_gathering_done();
        self.drive(ctx);
    }

    /// Whether `component` of `stream` gets UDP host sockets of its own: not with
    /// tcp_only (RFC 6544: no UDP socket, no UDP candidate), and not for stream 0,
    /// component 1 in single-port mode (it lives on the shared socket).
    pub(super) fn binds_udp_host(&self, stream: usize, component: u16) -> bool {
        let on_shared_socket = self.shared.is_some() && (stream, component) == (0, 1);
        !self.config.gather.tcp_only && !on_shared_socket
    }

    /// A host socket of `component` of `stream` on `ip`, and its host candidate
    /// (RFC 8445 §5.1.1.1); its number.
    fn bind_host(
        &mut self,
        ctx: &mut Context<Self>,
        stream: usize,
        component: u16,
        ip: IpAddr,
    ) -> Option<usize> {
        let config = UdpSocketConfig::default();
        let socket = match BatchSocket::bind(SocketAddr::new(ip, 0), &config) {
            Ok(s) => Rc::new(s),
            Err(e) => {
                tracing::warn!(%ip, error = %e, "no host candidate");
                return None;
            }
        };
        let addr = socket.local_addr();
        let reader = ctx.add_stream(udp_datagrams(self.sockets.len(), socket.clone()));
        self.sockets.push(HostSocket {
            addr,
            stream,
            component,
            socket,
            reader,
            gone: false,
        });
        if !self.config.gather.relay_only {
            let mut c = Candidate::host(addr).with_component(component);
            if let (true, Some(m)) = (self.config.gather.mdns, &mut self.mdns) {
                c = m.hide(c);
            }
            self.add_local(stream, c);
        }
        Some(self.sockets.len() - 1)
    }

    /// RFC 8445 §5.1.1.2: a Binding from host socket `i` to each STUN server of its
    /// family.
    fn start_bindings(&mut self, now: Instant, i: usize) {
        if self.config.gather.relay_only {
            return;
        }
        let transaction = self.config.gather.transaction();
        let base = self.sockets[i].addr;
        for server in self.config.stun.clone() {
            if base.is_ipv4() == server.is_ipv4() {
                let b = ServerBinding::start(now, i, base, server, transaction);
                self.bindings.push(b);
            }
        }
    }

    fn relay_connected(
        &mut self,
        ctx: &mut Context<Self>,
        relay: usize,
        res: Result<TurnClientHandle, String>,
    ) {
        let client = match res {
            Ok(client) => client,
            Err(reason) => {
                let outcome =
                    self.relays[relay].fail(CandidateErrorKind::Unreachable, None, reason);
                self.relay_outcome(relay, outcome);
                self.drive(ctx);
                return;
            }
        };
        ctx.add_stream(
            client
                .events()
                .map(move |event| RelayInput { relay, event }),
        );
        let allocate = client.addr().send(Allocate);
        self.relays[relay].connected(client);
        ctx.spawn(allocate.into_actor(self).map(move |res, act, ctx| {
            let reason = match res {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            let outcome = act.relays[relay].fail(CandidateErrorKind::Rejected, None, reason);
            act.relay_outcome(relay, outcome);
            act.drive(ctx);
        }));
    }

    /// RFC 8445 §5.1: the core gives the candidate its priority and foundation, or
    /// drops it as redundant; what it keeps is signalled.
    pub(super) fn add_local(&mut self, stream: usize, candidate: Candidate) {
        if let Some(candidate) = self.core.add_local_candidate_to(stream, candidate) {
            self.subscribers
                .publish(IceEvent::Candidate { stream, candidate });
        }
    }

    fn candidate_error(
        &mut self,
        server: SocketAddr,
        kind: CandidateErrorKind,
        code: Option<u16>,
        reason: String,
    ) {
        tracing::debug!(%server, %reason, "no candidate");
        self.subscribers.publish(IceEvent::CandidateError {
            server,
            kind,
            code,
            reason,
        });
    }

    /// RFC 8838 §8.2: once every server has answered or failed, gathering is complete.
    fn check_gathering_done(&mut self) {
        // Continual gathering never completes (RFC 8838 §13: the peer would ignore
        // candidates after end-of-candidates).
        if self.gathering_complete
            || self.config.gather.continual.is_some()
            || !self.gathering
            || self.bindings.iter().any(|b| !b.is_done())
            || self.relays.iter().any(|r| !r.is_done())
        {
            return;
        }
        self.gathering_complete = true;
        self.core.end_of_local_candidates();
        self.subscribers.publish(IceEvent::GatheringComplete);
    }

    fn binding_outcome(&mut self, i: usize) {
        let Some(outcome) = self.bindings[i].poll_outcome() else {
            return;
        };
        let server = self.bindings[i].server();
        match outcome {
            BindingOutcome::Mapped(mapped) => {
                let s = &self.sockets[self.bindings[i].socket()];
                let (base, stream, component) = (s.addr, s.stream, s.component);
                let mut c =
                    Candidate::server_reflexive(mapped, base, server).with_component(component);
                if self.config.gather.mdns {
                    c = c.with_related_address_hidden();
                }
                self.add_local(stream, c);
            }
            BindingOutcome::Failed { kind, code, reason } => {
                self.candidate_error(server, kind, code, reason)
            }
        }
        self.check_gathering_done();
    }

    fn relay_outcome(&mut self, relay: usize, outcome: Option<RelayOutcome>) {
        let server = self.relays[relay].server();
        match outcome {
            None => {}
            Some(RelayOutcome::Allocated { relayed, mapped }) => {
                let mapped = mapped
                    .or_else(|| {
                        let s = self
                            .sockets
                            .iter()
                            .find(|s| s.addr.is_ipv4() == relayed.is_ipv4());
                        s.map(|s| s.addr)
                    })
                    .unwrap_or(relayed);
                let (stream, component) = self.relay_owners[relay];
                let c = Candidate::relayed(relayed, mapped, server).with_component(component);
                self.add_local(stream, c);
                for ip in self.remote_ips.clone() {
                    self.relays[relay].permit(ip);
                }
                self.check_gathering_done();
            }
            Some(RelayOutcome::Data { peer, data }) => {
                if let Some(relayed) = self.relays[relay].relayed() {
                    self.input(Instant::now(), peer, relayed, data);
                }
            }
            Some(RelayOutcome::Failed { kind, code, reason }) => {
                self.candidate_error(server, kind, code, reason);
                self.check_gathering_done();
            }
        }
    }

    /// A datagram (or relayed data) for the core; application data goes straight to
    /// the subscribers.
    pub(super) fn input(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Bytes) {
        if let Some(r) = self.core.receive(now, from, to, data) {
            self.subscribers.publish(IceEvent::Data {
                stream: r.stream,
                component: r.component,
                data: r.data,
            });
        }
    }

    /// RFC 8656 §9: relays let the remote candidates' IPs in.
    pub(super) fn add_remote(&mut self, stream: usize, candidate: Candidate) {
        if self.remote_ips.insert(candidate.addr().ip()) {
            for r in &mut self.relays {
                r.permit(candidate.addr().ip());
            }
        }
        self.core.add_remote_candidate_to(stream, candidate);
    }

    /// Opens the mDNS socket on `ips` unless it is open; whether it is.
    fn open_mdns(&mut self, ctx: &mut Context<Self>, ips: &[IpAddr]) -> bool {
        if self.mdns.is_some() {
            return true;
        }
        match mdns::open(ips) {
            Ok((service, datagrams)) => {
                ctx.add_stream(datagrams);
                self.mdns = Some(service);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "no multicast DNS: .local names are not used");
                false
            }
        }
    }

    /// A remote candidate whose address is the mDNS name `name`: resolved, then added.
    pub(super) fn resolve_remote(
        &mut self,
        ctx: &mut Context<Self>,
        name: &str,
        stream: usize,
        sdp: String,
    ) {
        let ips = match self.sockets.is_empty() {
            false => self.sockets.iter().map(|s| s.addr.ip()).collect(),
            true => host_addresses(&self.config.gather).unwrap_or_default(),
        };
        if self.open_mdns(ctx, &ips) {
            if let Some(m) = &mut self.mdns {
                m.resolve(Instant::now(), name, stream, sdp);
            }
        }
    }

    /// RFC 8838 §8.2: the remote signalled end-of-candidates for `stream`; applied
    /// once its candidates being resolved are in.
    pub(super) fn end_of_remote_candidates(&mut self, stream: usize) {
        if self.mdns.as_ref().is_some_and(|m| m.resolving(stream)) {
            self.end_deferred.insert(stream);
        } else {
            self.core.end_of_remote_candidates_of(stream);
        }
    }

    pub(super) fn core(&mut self) -> &mut Agent {
        &mut self.core
    }

    /// Application data on the selected pair of `component` of `stream`.
    pub(super) fn send(
        &mut self,
        ctx: &mut Context<Self>,
        stream: usize,
        component: u16,
        data: Bytes,
    ) -> Result<(), IceError> {
        self.core.send_on(stream, component, data)?;
        self.drive(ctx);
        Ok(())
    }

    /// Sends a transmit from its source: a host socket, or a relay for a relayed base.
    fn route(&mut self, t: Transmit) {
        if t.transport == floe::Transport::Tcp {
            if !self.tcp.send(&t) {
                tracing::debug!(from = %t.source, to = %t.destination, "no ICE-TCP connection");
            }
        } else if let Some(h) = self.shared.as_ref().filter(|h| h.addr() == t.source) {
            h.send(t.destination, &t.payload);
        } else if let Some(s) = self.sockets.iter().find(|s| s.addr == t.source && !s.gone) {
            if let Err(e) = s.socket.try_send(&Outgoing::new(t.destination, &t.payload)) {
                tracing::debug!(from = %t.source, to = %t.destination, error = %e, "ICE datagram not sent");
            }
        } else if let Some(r) = self
            .relays
            .iter_mut()
            .find(|r| r.relayed() == Some(t.source))
        {
            r.send_to(t.destination, t.payload);
        } else {
            tracing::debug!(from = %t.source, "no socket for an ICE transmit");
        }
    }

    /// After every input: transmits out, events to the subscribers, the timer re-armed
    /// at the earliest deadline of the core and the Bindings.
    pub(super) fn drive(&mut self, ctx: &mut Context<Self>) {
        let resolved = self
            .mdns
            .as_mut()
            .map(MdnsService::drive)
            .unwrap_or_default();
        for (stream, c) in resolved {
            self.add_remote(stream, c);
        }
        if !self.end_deferred.is_empty() {
            let mdns = self.mdns.as_ref();
            let done: Vec<usize> = self
                .end_deferred
                .iter()
                .copied()
                .filter(|s| !mdns.is_some_and(|m| m.resolving(*s)))
                .collect();
            for stream in done {
                self.end_deferred.remove(&stream);
                self.core.end_of_remote_candidates_of(stream);
            }
        }
        if let Some(h) = &mut self.shared {
            h.sync_ufrag(self.core.local_credentials_of(0).0);
        }
        while let Some(t) = self.core.poll_transmit() {
            self.route(t);
        }
        while let Some(c) = self.core.poll_tcp_connect() {
            self.tcp_connect(ctx, c);
        }
        for i in 0..self.bindings.len() {
            while let Some(t) = self.bindings[i].poll_transmit() {
                let s = &self.sockets[self.bindings[i].socket()];
                if !s.gone {
                    let _ = s.socket.try_send(&Outgoing::new(t.destination, &t.payload));
                }
            }
        }
        while let Some((stream, e)) = self.core.poll_stream_event() {
            if let floe::ice::IceEvent::SelectedPairChanged { local, remote } = &e {
                // RFC 8656 §12: a relayed pair that carries data gets a channel.
                let base = local.base().unwrap_or(local.addr());
                if let Some(r) = self.relays.iter_mut().find(|r| r.relayed() == Some(base)) {
                    r.bind(remote.addr());
                }
            }
            self.subscribers
                .publish(IceEvent::Core { stream, event: e });
        }
        let next = self
            .bindings
            .iter()
            .filter_map(ServerBinding::poll_timeout)
            .chain(self.core.poll_timeout())
            .chain(self.mdns.as_ref().and_then(MdnsService::poll_timeout))
            .min();
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

    fn on_timeout(&mut self) {
        let now = Instant::now();
        self.core.handle_timeout(now);
        if let Some(m) = &mut self.mdns {
            m.handle_timeout(now);
        }
        for i in 0..self.bindings.len() {
            self.bindings[i].handle_timeout(now);
            self.binding_outcome(i);
        }
    }
}

impl Actor for IceAgent {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(h) = &self.shared {
            h.close();
        }
        for r in &mut self.relays {
            r.close();
        }
    }
}

impl StreamHandler<Datagram> for IceAgent {
    fn handle(&mut self, d: Datagram, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if let Some(i) = self
            .bindings
            .iter()
            .position(|b| b.is_for(d.socket, d.from))
        {
            self.bindings[i].handle_input(now, d.from, d.data);
            self.binding_outcome(i);
        } else {
            self.input(now, d.from, d.to, d.data);
        }
        self.drive(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // One socket stopped receiving (logged); the others carry on.
    }
}

impl StreamHandler<MdnsDatagram> for IceAgent {
    fn handle(&mut self, d: MdnsDatagram, ctx: &mut Context<Self>) {
        if let Some(m) = &mut self.mdns {
            m.handle_input(Instant::now(), d);
        }
        self.drive(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The mDNS socket stopped (logged); remote names are no longer resolved.
    }
}

impl StreamHandler<RelayInput> for IceAgent {
    fn handle(&mut self, msg: RelayInput, ctx: &mut Context<Self>) {
        let outcome = self.relays[msg.relay].on_event(msg.event);
        self.relay_outcome(msg.relay, outcome);
        self.drive(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // A TURN client stopped; its Closed event said so.
    }
}
