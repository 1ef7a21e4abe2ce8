//! `AllocationSupervisor`: supervises one Arbiter of the TURN server. It owns the
//! Arbiter's [`ShardHandle`] (the owner of the core and its indexes), its listeners (UDP
//! and TCP on each listen address, TLS when configured), the one timer of the core, and
//! the actors of its allocations.
//!
//! Supervision, chosen per kind of failure:
//! - a **relay** whose socket fails, or whose actor panics, is restarted in place: the
//!   same address is bound again and a new `Relay` reads it, while the allocation's
//!   permissions, channels and lifetime (kept by the owner) carry on untouched; peers see
//!   the same relayed address. Subscribers get `RelayRestarted`. If the OS refuses the
//!   address, the allocation ends as below.
//! - an **allocation** whose actor panics is ended: it is deleted from the core (its
//!   client's next request, a Refresh say, gets 437 Allocation Mismatch and the client
//!   may allocate again), its relays close, and subscribers get `AllocationFailed` then
//!   `Deleted`. Its state is not trusted after a bug hit it, so it is not restarted.
//! - a bug hit while handling one datagram costs that datagram (`contain` in the owner).
//!
//! Every other allocation of the Arbiter keeps relaying through any of these.
//!
//! Timers: the core's next deadline (lifetimes, permissions, channels, reservations) is
//! one actor timer, re-armed when a batch moves the deadline earlier and when it fires.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    ResponseFuture, SpawnHandle, WrapFuture,
};
use floe::transmit::Transport;
use floe::turn::server::{AllocationId, FiveTuple, Reconfiguration, Server, ServerConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::allocation::{AllocationActor, AllocationEnded};
use super::binder::{ParkedRelays, RelayBinder};
use super::quota::Quotas;
use super::recv_loop::RecvLoop;
use super::relay::{Relay, RelayFailed};
use super::relay_drain::RelayDrain;
use super::sessions::{Session, SessionFilter};
use super::shard::{Command, RelayRestart, ShardHandle, Supervision, MAX_DATAGRAM};
use super::tcp_connection::{Accepted, TcpConnection};
use super::tcp_limits::{CapReached, ConnectionCaps, ConnectionSlot, TcpLimits};
use super::{EventSink, Fault};
use crate::metrics::Metrics;
use crate::tcp::{bind_tcp_listener, TcpListenerConfig};
use crate::tls;
use crate::udp::{BatchSocket, RecvBuffers, UdpSocketConfig};

/// Binds this Arbiter's listeners (UDP and TCP on each `listen` address, TLS on each
/// `tls` address) and starts serving.
#[derive(Message)]
#[rtype(result = "Result<BoundShard, String>")]
pub(crate) struct StartShard {
    pub listen: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub tls_acceptor: Option<tls::SharedTls>,
    /// The receive-coalescing pause (see `coalesce`); zero turns it off.
    pub coalesce: Duration,
    /// This Arbiter's share of `total-bps` (see `bandwidth`); 0 is no limit.
    pub total_bps_share: u64,
    /// The limits of TCP and TLS connections.
    pub tcp_limits: TcpLimits,
    /// The caps on open TCP and TLS connections, shared by every Arbiter.
    pub tcp_caps: Arc<ConnectionCaps>,
}

/// The addresses one Arbiter bound: with port 0 asked, the ports the OS gave.
pub(crate) struct BoundShard {
    pub listen: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

/// The core wants its timeouts handled at this instant.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WakeAt(Instant);

/// Deletes every allocation of the Arbiter and stops serving.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct ShutdownShard;

/// Operators' requests of one Arbiter (the admin API), answered by its owner.
#[derive(Message, Clone)]
#[rtype(result = "ShardAnswer")]
pub(crate) enum OperatorRequest {
    /// The allocations, of one user if given.
    Sessions(Option<String>),
    /// End the allocations the filter picks.
    End(SessionFilter),
    /// Refuse new allocations, or take them again.
    Drain(bool),
    /// How many allocations exist.
    Count,
    /// A reload: new credentials, peer policy and limits, and this Arbiter's share of
    /// `total-bps`; answers how many allocations exist (they all carry on).
    Reconfigure(Box<Reconfigure>),
}

/// What a reload changes in each Arbiter.
#[derive(Clone)]
pub(crate) struct Reconfigure {
    pub core: Reconfiguration,
    pub total_bps_share: u64,
}

/// What an Arbiter answers an [`OperatorRequest`].
#[derive(actix::MessageResponse)]
pub(crate) enum ShardAnswer {
    /// The sessions asked for.
    Sessions(Vec<Session>),
    /// How many allocations were ended, or exist.
    Count(usize),
}

/// Injects a fault into the allocation relaying on `relayed`.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct InjectFault {
    pub relayed: SocketAddr,
    pub fault: Fault,
}

/// The supervisor of one Arbiter's allocations.
pub(crate) struct AllocationSupervisor {
    start: Option<(ServerConfig, RelayBinder)>,
    metrics: Metrics,
    events: EventSink,
    shard: Option<ShardHandle>,
    /// The core's timer: when it fires, and its handle to cancel it.
    timer: Option<(Instant, SpawnHandle)>,
    /// This Arbiter's index among the server's, in session ids.
    thread: usize,
    /// The task of the relay drain, ended with the supervisor.
    drain: Option<actix_rt::task::JoinHandle<()>>,
}

impl AllocationSupervisor {
    pub(crate) fn new(
        config: ServerConfig,
        metrics: Metrics,
        events: EventSink,
        quotas: Arc<Quotas>,
        parked: ParkedRelays,
        thread: usize,
    ) -> Self {
        AllocationSupervisor {
            start: Some((config, RelayBinder::new(quotas, parked))),
            metrics,
            events,
            shard: None,
            timer: None,
            thread,
            drain: None,
        }
    }
}

/// What the owner may ask of its supervisor.
struct Link(Addr<AllocationSupervisor>);

impl Supervision for Link {
    fn start_allocation(&self, id: AllocationId, five_tuple: FiveTuple) -> Recipient<Command> {
        let ended: Recipient<AllocationEnded> = self.0.clone().recipient();
        AllocationActor::new(id, five_tuple, ended)
            .start()
            .recipient()
    }

    fn start_relay(&self, addr: SocketAddr) -> Recipient<Command> {
        let failed: Recipient<RelayFailed> = self.0.clone().recipient();
        Relay::new(addr, failed).start().recipient()
    }

    fn relay_failed(&self, addr: SocketAddr, error: String) {
        self.0.do_send(RelayFailed { addr, error });
    }

    fn wake_at(&self, at: Instant) {
        self.0.do_send(WakeAt(at));
    }
}

impl Actor for AllocationSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (config, binder) = self.start.take().expect("started once");
        let core = Server::new(config, StdRng::from_entropy());
        let shard = ShardHandle::new(
            core,
            binder,
            self.metrics.clone(),
            self.events.clone(),
            Box::new(Link(ctx.address())),
            self.thread,
        );
        let syncer = shard.clone();
        ctx.run_interval(super::usage::SYNC_EVERY, move |_, _| syncer.sync_usage());
        // Reads the relay sockets that became readable, all in one pass: a task of its
        // own, so a relay's readiness wakes it alone, not this actor's context.
        self.drain = Some(actix_rt::spawn(RelayDrain::new(shard.clone())));
        ctx.spawn(shard.coalescer().run().into_actor(self));
        self.shard = Some(shard);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(drain) = self.drain.take() {
            drain.abort();
        }
    }
}

impl Handler<WakeAt> for AllocationSupervisor {
    type Result = ();

    /// Arms the timer for `at` unless it is armed earlier already.
    fn handle(&mut self, WakeAt(at): WakeAt, ctx: &mut Context<Self>) {
        if self.timer.as_ref().is_some_and(|(armed, _)| *armed <= at) {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        let wait = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |act, _| {
            act.timer = None;
            if let Some(shard) = &act.shard {
                shard.on_timeout(Instant::now());
            }
        });
        self.timer = Some((at, handle));
    }
}

impl Handler<StartShard> for AllocationSupervisor {
    type Result = Result<BoundShard, String>;

    fn handle(&mut self, msg: StartShard, ctx: &mut Context<Self>) -> Self::Result {
        let shard = self.shard.clone().ok_or("not started")?;
        shard.coalescer().set_pause(msg.coalesce);
        shard.set_total_bps(msg.total_bps_share);
        let mut bound = Vec::new();
        let udp_config = UdpSocketConfig {
            ipv6_only: Some(true),
            ..UdpSocketConfig::listener()
        };
        let tcp_config = TcpListenerConfig {
            ipv6_only: Some(true),
            ..TcpListenerConfig::default()
        };
        for addr in msg.listen {
            // With port 0 the OS picks a free UDP port, which TCP may have in use: then
            // both are tried again on another port.
            let mut attempts = if addr.port() == 0 { 16 } else { 1 };
            let (udp, local, tcp) = loop {
                let udp = BatchSocket::bind(addr, &udp_config).map_err(|e| e.to_string())?;
                let local = udp.local_addr();
                match bind_tcp_listener(local, &tcp_config) {
                    Ok(tcp) => break (udp, local, tcp),
                    Err(_) if attempts > 1 => attempts -= 1,
                    Err(e) => return Err(e.to_string()),
                }
            };
            let udp = Rc::new(udp);
            shard.add_listener(udp.clone());
            let slot = if udp.gro_enabled() {
                crate::udp::MAX_SLOT_LEN
            } else {
                MAX_DATAGRAM + 1
            };
            let recv = RecvLoop {
                shard: shard.clone(),
                socket: udp,
                bufs: Rc::new(RefCell::new(RecvBuffers::new(32, slot))),
            };
            ctx.spawn(recv.into_actor(self).map(move |r, _, _| {
                if let Err(e) = r {
                    tracing::error!(%local, error = %e, "UDP listener failed");
                }
            }));
            let accept_shard = shard.clone();
            let (caps, limits, metrics) =
                (msg.tcp_caps.clone(), msg.tcp_limits, self.metrics.clone());
            ctx.spawn(
                async move {
                    loop {
                        match tcp.accept().await {
                            Ok((stream, client)) => {
                                let Some(slot) = admit(&caps, &stream, client, &metrics) else {
                                    continue;
                                };
                                let _ = stream.set_nodelay(true);
                                let accepted = Accepted {
                                    client,
                                    server: local,
                                    transport: Transport::Tcp,
                                    at: Instant::now(),
                                    slot,
                                };
                                TcpConnection::spawn(
                                    stream,
                                    accepted,
                                    &limits,
                                    accept_shard.clone(),
                                    metrics.clone(),
                                );
                            }
                            Err(e) => {
                                tracing::warn!(%local, error = %e, "TCP accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                }
                .into_actor(self),
            );
            bound.push(local);
        }
        let mut tls_bound = Vec::new();
        if let Some(acceptor) = msg.tls_acceptor {
            for addr in msg.tls {
                let listener = bind_tcp_listener(addr, &tcp_config).map_err(|e| e.to_string())?;
                let local = listener.local_addr().map_err(|e| e.to_string())?;
                let tls = AcceptTls {
                    local,
                    acceptor: acceptor.clone(),
                    shard: shard.clone(),
                    caps: msg.tcp_caps.clone(),
                    limits: msg.tcp_limits,
                    metrics: self.metrics.clone(),
                };
                ctx.spawn(tls.run(listener).into_actor(self));
                tls_bound.push(local);
            }
        }
        Ok(BoundShard {
            listen: bound,
            tls: tls_bound,
        })
    }
}

/// Takes a slot under the caps for a connection just accepted from `client`; over a cap,
/// the connection is closed at once with a reset (SO_LINGER 0: no TIME_WAIT kept for it).
fn admit(
    caps: &Arc<ConnectionCaps>,
    stream: &tokio::net::TcpStream,
    client: SocketAddr,
    metrics: &Metrics,
) -> Option<ConnectionSlot> {
    match caps.admit(client.ip()) {
        Ok(slot) => Some(slot),
        Err(cap) => {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
            match cap {
                CapReached::PerIp => metrics.tcp_refused_per_ip(),
                CapReached::Total => metrics.tcp_refused_total(),
            }
            tracing::debug!(%client, ?cap, "TCP connection over a cap; closed");
            None
        }
    }
}

/// Accepts TLS clients on one listener.
struct AcceptTls {
    local: SocketAddr,
    acceptor: tls::SharedTls,
    shard: ShardHandle,
    caps: Arc<ConnectionCaps>,
    limits: TcpLimits,
    metrics: Metrics,
}

impl AcceptTls {
    /// Each connection takes its slot under the caps before its handshake, which runs in
    /// its own task, so a slow or bad one costs only its own connection; a finished one
    /// becomes a [`TcpConnection`].
    async fn run(self, listener: tokio::net::TcpListener) {
        let local = self.local;
        loop {
            match listener.accept().await {
                Ok((stream, client)) => {
                    let Some(slot) = admit(&self.caps, &stream, client, &self.metrics) else {
                        continue;
                    };
                    let at = Instant::now();
                    let _ = stream.set_nodelay(true);
                    let (acceptor, shard) = (self.acceptor.current(), self.shard.clone());
                    let (limits, metrics) = (self.limits, self.metrics.clone());
                    actix_rt::spawn(async move {
                        match tls::accept(&acceptor, stream).await {
                            Ok(stream) => {
                                let accepted = Accepted {
                                    client,
                                    server: local,
                                    transport: Transport::Tls,
                                    at,
                                    slot,
                                };
                                TcpConnection::spawn(stream, accepted, &limits, shard, metrics)
                            }
                            Err(e) => {
                                tracing::debug!(%client, %local, error = %e, "TLS handshake failed")
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(%local, error = %e, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Handler<RelayFailed> for AllocationSupervisor {
    type Result = ();

    /// Restarts the relay on the same address; if the OS refuses, the allocation ends.
    fn handle(&mut self, msg: RelayFailed, _: &mut Context<Self>) {
        let Some(shard) = &self.shard else {
            return;
        };
        tracing::warn!(relay = %msg.addr, error = %msg.error, "relay failed; restarting it");
        match shard.restart_relay(msg.addr) {
            RelayRestart::Gone | RelayRestart::Restarted => {}
            RelayRestart::Failed(id, error) => {
                tracing::error!(relay = %msg.addr, %error, "cannot bind the relay again");
                shard.fail_allocation(id, "its relay failed and could not be bound again");
            }
        }
    }
}

impl Handler<AllocationEnded> for AllocationSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AllocationEnded, _: &mut Context<Self>) {
        if let Some(shard) = &self.shard {
            shard.fail_allocation(msg.id, "allocation actor stopped unexpectedly");
        }
    }
}

impl Handler<ShutdownShard> for AllocationSupervisor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: ShutdownShard, ctx: &mut Context<Self>) -> Self::Result {
        let n = self.shard.as_ref().map_or(0, ShardHandle::shutdown);
        ctx.stop();
        Box::pin(async move { n })
    }
}

impl Handler<InjectFault> for AllocationSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: InjectFault, _: &mut Context<Self>) -> bool {
        self.shard
            .as_ref()
            .is_some_and(|s| s.inject_fault(msg.relayed, msg.fault))
    }
}

impl Handler<OperatorRequest> for AllocationSupervisor {
    type Result = ShardAnswer;

    fn handle(&mut self, msg: OperatorRequest, _: &mut Context<Self>) -> ShardAnswer {
        let Some(shard) = &self.shard else {
            return match msg {
                OperatorRequest::Sessions(_) => ShardAnswer::Sessions(Vec::new()),
                _ => ShardAnswer::Count(0),
            };
        };
        match msg {
            OperatorRequest::Sessions(user) => {
                ShardAnswer::Sessions(shard.sessions(self.thread, user.as_deref()))
            }
            OperatorRequest::End(filter) => {
                ShardAnswer::Count(shard.end_allocations(self.thread, &filter))
            }
            OperatorRequest::Drain(on) => {
                shard.set_draining(on);
                ShardAnswer::Count(shard.allocation_count())
            }
            OperatorRequest::Count => ShardAnswer::Count(shard.allocation_count()),
            OperatorRequest::Reconfigure(r) => {
                let Reconfigure {
                    core,
                    total_bps_share,
                } = *r;
                shard.reconfigure(Instant::now(), core);
                shard.set_total_bps(total_bps_share);
                ShardAnswer::Count(shard.allocation_count())
            }
        }
    }
}
