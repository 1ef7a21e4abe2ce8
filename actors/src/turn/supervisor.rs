//! `AllocationSupervisor`: the allocation table of one Arbiter. It owns the listeners of
//! its Arbiter (UDP and TCP on each listen address, TLS when configured), runs the core's timers, restarts failed relays and frees allocations
//! whose actor died.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture,
    WrapFuture,
};
use floe::transmit::Transport;
use floe::turn::server::{AllocationId, Server, ServerConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio_rustls::TlsAcceptor;

use super::allocation::PanicAllocation;
use super::relay::FailRelay;
use super::shard::{
    LoopRole, ParkedRelays, RecvLoop, Shard, SharedShard, SocketBinder, MAX_DATAGRAM, NAP,
    NAP_DATAGRAMS, NAP_MIN_PER_RECEIVE,
};
use super::tcp_connection::TcpConnection;
use super::{EventSink, Fault, TurnEvent};
use crate::metrics::Metrics;
use crate::tcp::{bind_tcp_listener, TcpListenerConfig};
use crate::tls;
use crate::udp::{BatchSocket, RecvBuffers, UdpSocketConfig};

/// How often the core's timers (lifetimes, permissions, channels, reservations) are run.
const TICK: Duration = Duration::from_millis(100);

/// Binds this Arbiter's listeners (UDP and TCP on each `listen` address, TLS on each
/// `tls` address) and starts serving.
#[derive(Message)]
#[rtype(result = "Result<BoundShard, String>")]
pub(crate) struct StartShard {
    pub listen: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub tls_acceptor: Option<TlsAcceptor>,
}

/// The addresses one Arbiter bound: with port 0 asked, the ports the OS gave.
pub(crate) struct BoundShard {
    pub listen: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

/// A relay's socket failed; the supervisor binds the address again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RelayFailed {
    pub addr: SocketAddr,
    pub error: String,
}

/// An allocation actor is gone without being stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AllocationEnded {
    pub id: AllocationId,
}

/// Deletes every allocation of the Arbiter and stops serving.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct ShutdownShard;

/// Injects a fault into the allocation relaying on `relayed`.
#[derive(Message)]
#[rtype(result = "bool")]
pub(crate) struct InjectFault {
    pub relayed: SocketAddr,
    pub fault: Fault,
}

/// The supervisor of one Arbiter's allocations.
pub struct AllocationSupervisor {
    config: Option<ServerConfig>,
    metrics: Metrics,
    events: EventSink,
    parked: ParkedRelays,
    shard: Option<SharedShard>,
}

impl AllocationSupervisor {
    pub(crate) fn new(
        config: ServerConfig,
        metrics: Metrics,
        events: EventSink,
        parked: ParkedRelays,
    ) -> Self {
        AllocationSupervisor {
            config: Some(config),
            metrics,
            events,
            parked,
            shard: None,
        }
    }

    fn tick(&mut self) {
        let Some(shard) = &self.shard else { return };
        let now = Instant::now();
        let mut s = shard.borrow_mut();
        if s.core.poll_timeout().is_some_and(|t| t <= now) {
            s.core.handle_timeout(now);
            s.after(shard);
        }
    }
}

impl Actor for AllocationSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let config = self.config.take().expect("started once");
        let core = Server::new(config, StdRng::from_entropy());
        let shard = Shard::new(
            core,
            self.metrics.clone(),
            self.events.clone(),
            ctx.address(),
            self.parked.clone(),
        );
        let shard = Rc::new(RefCell::new(shard));
        // Sends what the relays of one round of wake-ups queued for clients, after them.
        let (flusher, wanted) = (shard.clone(), shard.borrow().flush_wanted.clone());
        ctx.spawn(
            async move {
                loop {
                    wanted.notified().await;
                    flusher.borrow_mut().flush_deferred();
                }
            }
            .into_actor(self),
        );
        // After a wake-up that brought data, lets the other tasks woken with it (relays,
        // the flusher) run and send, then naps (see `shard::NAP`) so that the next
        // wake-up finds more datagrams waiting.
        let (napper, nap) = (shard.clone(), shard.borrow().nap_wanted.clone());
        ctx.spawn(
            async move {
                loop {
                    nap.notified().await;
                    tokio::task::yield_now().await;
                    tokio::task::yield_now().await;
                    let (received, receives) = {
                        let mut s = napper.borrow_mut();
                        s.nap_scheduled = false;
                        (
                            std::mem::take(&mut s.received),
                            std::mem::take(&mut s.receives),
                        )
                    };
                    if NAP_DATAGRAMS.contains(&received)
                        && received >= NAP_MIN_PER_RECEIVE * receives
                    {
                        std::thread::sleep(NAP);
                    }
                }
            }
            .into_actor(self),
        );
        self.shard = Some(shard);
        ctx.run_interval(TICK, |act, _| act.tick());
    }
}

impl Handler<StartShard> for AllocationSupervisor {
    type Result = Result<BoundShard, String>;

    fn handle(&mut self, msg: StartShard, ctx: &mut Context<Self>) -> Self::Result {
        let shard = self.shard.clone().ok_or("not started")?;
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
            let udp = BatchSocket::bind(addr, &udp_config).map_err(|e| e.to_string())?;
            let local = udp.local_addr();
            let tcp = bind_tcp_listener(local, &tcp_config).map_err(|e| e.to_string())?;
            let udp = Rc::new(udp);
            shard.borrow_mut().listeners.push(udp.clone());
            let slot = if udp.gro_enabled() {
                crate::udp::MAX_SLOT_LEN
            } else {
                MAX_DATAGRAM + 1
            };
            let recv = RecvLoop {
                shard: shard.clone(),
                socket: udp,
                bufs: Rc::new(RefCell::new(RecvBuffers::new(32, slot))),
                role: LoopRole::Listener,
            };
            ctx.spawn(recv.into_actor(self).map(move |r, _, _| {
                if let Err(e) = r {
                    tracing::error!(%local, error = %e, "UDP listener failed");
                }
            }));
            let accept_shard = shard.clone();
            ctx.spawn(
                async move {
                    loop {
                        match tcp.accept().await {
                            Ok((stream, client)) => {
                                let _ = stream.set_nodelay(true);
                                TcpConnection::spawn(stream, client, local, accept_shard.clone());
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
                ctx.spawn(
                    accept_tls(listener, local, acceptor.clone(), shard.clone()).into_actor(self),
                );
                tls_bound.push(local);
            }
        }
        Ok(BoundShard {
            listen: bound,
            tls: tls_bound,
        })
    }
}

/// Accepts TLS clients on `listener`: each handshake runs in its own task, so a slow or
/// bad one costs only its own connection; a finished one becomes a [`TcpConnection`].
async fn accept_tls(
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    shard: SharedShard,
) {
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let _ = stream.set_nodelay(true);
                let (acceptor, shard) = (acceptor.clone(), shard.clone());
                actix_rt::spawn(async move {
                    match tls::accept(&acceptor, stream).await {
                        Ok(stream) => {
                            TcpConnection::spawn_with(stream, client, local, Transport::Tls, shard)
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

impl Handler<RelayFailed> for AllocationSupervisor {
    type Result = ();

    /// Restarts the relay on the same address; if the OS refuses, the allocation goes.
    fn handle(&mut self, msg: RelayFailed, _: &mut Context<Self>) {
        let Some(shard) = self.shard.clone() else {
            return;
        };
        let mut s = shard.borrow_mut();
        let Some(entry) = s.relays.remove(&msg.addr) else {
            return;
        };
        let id = entry.allocation;
        drop(entry);
        tracing::warn!(relay = %msg.addr, error = %msg.error, "relay failed; restarting it");
        match BatchSocket::bind(msg.addr, &SocketBinder::relay_config()) {
            Ok(socket) => {
                s.start_relay(id, msg.addr, Rc::new(socket), &shard);
                if let Some(a) = s.allocations.get(&id) {
                    let five_tuple = a.five_tuple;
                    s.events.do_send(TurnEvent::RelayRestarted {
                        five_tuple,
                        relayed: msg.addr,
                    });
                }
            }
            Err(e) => {
                tracing::error!(relay = %msg.addr, error = %e, "cannot rebind relay; deleting its allocation");
                s.core.delete(id);
                s.after(&shard);
            }
        }
    }
}

impl Handler<AllocationEnded> for AllocationSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AllocationEnded, _: &mut Context<Self>) {
        let Some(shard) = self.shard.clone() else {
            return;
        };
        let mut s = shard.borrow_mut();
        if let Some(a) = s.allocations.get(&msg.id) {
            let five_tuple = a.five_tuple;
            tracing::error!(client = %five_tuple.client, "allocation actor died; freeing its allocation");
            s.events.do_send(TurnEvent::AllocationFailed {
                five_tuple,
                reason: "allocation actor stopped unexpectedly".into(),
            });
            s.core.delete(msg.id);
            s.after(&shard);
        }
    }
}

impl Handler<ShutdownShard> for AllocationSupervisor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: ShutdownShard, ctx: &mut Context<Self>) -> Self::Result {
        let n = match self.shard.clone() {
            Some(shard) => {
                let mut s = shard.borrow_mut();
                let n = s.core.allocation_count();
                s.core.delete_all();
                s.after(&shard);
                s.listeners.clear();
                n
            }
            None => 0,
        };
        ctx.stop();
        Box::pin(async move { n })
    }
}

impl Handler<InjectFault> for AllocationSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: InjectFault, _: &mut Context<Self>) -> bool {
        let Some(shard) = &self.shard else {
            return false;
        };
        let s = shard.borrow();
        let Some(relay) = s.relays.get(&msg.relayed) else {
            return false;
        };
        match msg.fault {
            Fault::RelaySocketError => relay.actor.do_send(FailRelay),
            Fault::AllocationPanic => match s.allocations.get(&relay.allocation) {
                Some(a) => a.actor.do_send(PanicAllocation),
                None => return false,
            },
        }
        true
    }
}
