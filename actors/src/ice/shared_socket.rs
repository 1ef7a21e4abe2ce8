//! Single-port mode: [`IceUdpMux`], one UDP socket shared by many [`IceAgent`]s, as an
//! SFU runs them (one port to open in the firewall, one host candidate for every
//! peer).
//!
//! ```text
//!   remote peers ──▶ 127.0.0.1:P ──▶ IceUdpMux ──(route: floe::ice::mux::Demux)──▶ agent's queue ──▶ IceAgent
//!                         ▲                       by 5-tuple, else a check's USERNAME
//!                         └─────── each agent sends through the shared socket itself
//! ```
//!
//! The mux is the one owner of the index (`Demux`: remote address → agent, local ufrag
//! → agent) and of the socket's read loop. An agent registers its stream 0 ufrag when it
//! gathers, re-registers it after an ICE restart, says which remote it sends each check
//! to (so Binding responses follow the 5-tuple), and unregisters when it stops. A
//! datagram crosses one queue to its agent (a bounded channel the agent reads as a
//! stream of its own context, like its host sockets), then the subscriber's mailbox for
//! application data: the same as for a host socket of its own, plus that one queue.
//! Sending is a direct `sendmsg` on the shared socket.
//!
//! What no agent claims — unknown addresses that are not well-formed checks, checks for
//! unknown ufrags, datagrams for an agent whose queue is full — is dropped and counted
//! ([`MuxStats`]); the tables are bounded ([`IceUdpMuxConfig::demux`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, StreamHandler};
use bytes::Bytes;
use floe::ice::mux::{Demux, DemuxConfig, DemuxError, DemuxStats};
use futures_util::stream::{self, Stream};
use tokio::sync::mpsc;

use super::io::Datagram;
use crate::udp::{BatchSocket, Outgoing, UdpError, UdpSocketConfig};

/// Larger than any datagram ICE sends.
const MAX_DATAGRAM: usize = 2048;

/// The socket number an agent sees on datagrams from the shared socket (its own host
/// sockets count from 0).
pub(crate) const SHARED_SOCKET: usize = usize::MAX;

/// Agents' keys in the mux's table, unique in the process.
static NEXT_AGENT: AtomicU64 = AtomicU64::new(1);

/// The bounds of an [`IceUdpMux`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceUdpMuxConfig {
    /// Agents, ufrags per agent, remote addresses per agent.
    pub demux: DemuxConfig,
    /// Datagrams waiting for one agent; more are dropped (and counted).
    pub queue: usize,
}

impl Default for IceUdpMuxConfig {
    /// [`DemuxConfig::default`]; 1024 datagrams per agent.
    fn default() -> Self {
        IceUdpMuxConfig {
            demux: DemuxConfig::default(),
            queue: 1024,
        }
    }
}

/// What an [`IceUdpMux`] has routed and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, actix::MessageResponse)]
pub struct MuxStats {
    /// The routing table: agents and addresses it holds, datagrams routed by address and
    /// by ufrag, datagrams dropped as malformed or for an unknown ufrag.
    pub demux: DemuxStats,
    /// Datagrams handed to an agent.
    pub delivered: u64,
    /// Datagrams dropped because their agent's queue was full.
    pub dropped_queue_full: u64,
    /// Registrations refused (too many agents, a ufrag in use ...).
    pub refused: u64,
}

/// A UDP socket shared by ICE agents (single-port mode): it reads the socket and hands
/// each datagram to its agent. Spawn it with [`IceUdpMux::bind`] and give the handle to
/// each agent's [`AgentConfig::shared_socket`](super::AgentConfig::shared_socket).
///
/// It owns the socket's read loop and the one index of the agents on it
/// ([`floe::ice::mux::Demux`]: remote address → agent, else a check's local ufrag →
/// agent). An agent registers its stream 0 ufrag when it gathers, re-registers after an
/// ICE restart, announces each remote it sends a check to (so the Binding response
/// follows the 5-tuple) and unregisters when it stops. A datagram crosses one bounded
/// queue to its agent; what no agent claims, or what finds its agent's queue full, is
/// dropped and counted ([`MuxStats`]).
pub struct IceUdpMux {
    socket: Arc<BatchSocket>,
    demux: Demux<u64>,
    agents: std::collections::HashMap<u64, mpsc::Sender<Datagram>>,
    stats: MuxStats,
}

/// A running [`IceUdpMux`]: its address, and its socket for the agents to send on.
#[derive(Clone)]
pub struct IceUdpMuxHandle {
    addr: Addr<IceUdpMux>,
    socket: Arc<BatchSocket>,
    /// Each agent's queue length.
    queue: usize,
}

impl std::fmt::Debug for IceUdpMuxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("IceUdpMuxHandle")
            .field(&self.socket.local_addr())
            .finish()
    }
}

/// Two handles are equal when they are of the same mux.
impl PartialEq for IceUdpMuxHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.socket, &other.socket)
    }
}

impl Eq for IceUdpMuxHandle {}

impl IceUdpMux {
    /// Binds the shared socket on `addr` and starts the mux on the current Arbiter.
    /// `addr` is every agent's host candidate: a concrete address, not 0.0.0.0 or `::`.
    pub fn bind(addr: SocketAddr, config: IceUdpMuxConfig) -> Result<IceUdpMuxHandle, UdpError> {
        let socket = Arc::new(BatchSocket::bind(addr, &UdpSocketConfig::default())?);
        let mux = IceUdpMux {
            socket: socket.clone(),
            demux: Demux::new(config.demux),
            agents: std::collections::HashMap::new(),
            stats: MuxStats::default(),
        };
        Ok(IceUdpMuxHandle {
            addr: mux.start(),
            socket,
            queue: config.queue.max(1),
        })
    }
}

impl IceUdpMuxHandle {
    /// The shared socket's address: every agent's host candidate on it.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr()
    }

    /// The mux's address.
    pub fn addr(&self) -> &Addr<IceUdpMux> {
        &self.addr
    }

    /// What the mux has routed and dropped, and its table's size.
    pub async fn stats(&self) -> MuxStats {
        self.addr.send(GetMuxStats).await.unwrap_or_default()
    }

    /// Stops the mux and closes the socket (once the agents on it have stopped too).
    pub fn stop(&self) {
        self.addr.do_send(StopMux);
    }
}

/// A batch of datagrams read from the shared socket.
struct Batch(Vec<(SocketAddr, Bytes)>);

fn batches(socket: Arc<BatchSocket>) -> impl Stream<Item = Batch> + Unpin {
    let mut bufs = socket.recv_buffers(MAX_DATAGRAM);
    Box::pin(stream::poll_fn(move |cx| {
        match socket.poll_recv_batch(cx, &mut bufs) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(_)) => {
                let batch = bufs
                    .datagrams()
                    .map(|d| (d.source, Bytes::copy_from_slice(d.payload)))
                    .collect();
                Poll::Ready(Some(Batch(batch)))
            }
            Poll::Ready(Err(e)) => {
                tracing::warn!(local = %socket.local_addr(), error = %e, "the shared ICE socket stopped receiving");
                Poll::Ready(None)
            }
        }
    }))
}

impl Actor for IceUdpMux {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.add_stream(batches(self.socket.clone()));
    }
}

impl StreamHandler<Batch> for IceUdpMux {
    fn handle(&mut self, batch: Batch, _: &mut Context<Self>) {
        let to = self.socket.local_addr();
        for (from, data) in batch.0 {
            let Ok((agent, _)) = self.demux.route(from, &data) else {
                tracing::trace!(%from, "no agent for a datagram on the shared socket");
                continue;
            };
            let Some(tx) = self.agents.get(&agent) else {
                continue;
            };
            let d = Datagram {
                socket: SHARED_SOCKET,
                from,
                to,
                data,
            };
            match tx.try_send(d) {
                Ok(()) => self.stats.delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => self.stats.dropped_queue_full += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The agent is gone without unregistering (it panicked).
                    self.agents.remove(&agent);
                    self.demux.unregister(agent);
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// An agent's ufrags and its queue (crate-internal: [`SharedHost`] sends it).
#[derive(Message)]
#[rtype(result = "()")]
struct Register {
    agent: u64,
    ufrags: Vec<String>,
    tx: mpsc::Sender<Datagram>,
}

/// An ICE restart: the agent's new ufrags.
#[derive(Message)]
#[rtype(result = "()")]
struct SetUfrags {
    agent: u64,
    ufrags: Vec<String>,
}

/// The agent sends a check to `remote`: its answers are the agent's.
#[derive(Message)]
#[rtype(result = "()")]
struct Learn {
    agent: u64,
    remote: SocketAddr,
}

/// The agent stopped.
#[derive(Message)]
#[rtype(result = "()")]
struct Unregister {
    agent: u64,
}

/// [`MuxStats`].
#[derive(Message)]
#[rtype(result = "MuxStats")]
struct GetMuxStats;

/// Stops the mux.
#[derive(Message)]
#[rtype(result = "()")]
struct StopMux;

fn refs(ufrags: &[String]) -> Vec<&str> {
    ufrags.iter().map(String::as_str).collect()
}

impl IceUdpMux {
    fn refused(&mut self, agent: u64, e: &DemuxError) {
        self.stats.refused += 1;
        tracing::warn!(agent, error = %e, "the shared ICE socket refused an agent");
    }
}

impl Handler<Register> for IceUdpMux {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        match self.demux.register(msg.agent, &refs(&msg.ufrags)) {
            // A refused agent's queue is dropped: its stream ends.
            Err(e) => self.refused(msg.agent, &e),
            Ok(()) => {
                self.agents.insert(msg.agent, msg.tx);
            }
        }
    }
}

impl Handler<SetUfrags> for IceUdpMux {
    type Result = ();

    fn handle(&mut self, msg: SetUfrags, _: &mut Context<Self>) {
        if let Err(e) = self.demux.set_ufrags(msg.agent, &refs(&msg.ufrags)) {
            self.refused(msg.agent, &e);
        }
    }
}

impl Handler<Learn> for IceUdpMux {
    type Result = ();

    fn handle(&mut self, msg: Learn, _: &mut Context<Self>) {
        self.demux.learn(msg.agent, msg.remote);
    }
}

impl Handler<Unregister> for IceUdpMux {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        self.agents.remove(&msg.agent);
        self.demux.unregister(msg.agent);
    }
}

impl Handler<GetMuxStats> for IceUdpMux {
    type Result = MuxStats;

    fn handle(&mut self, _: GetMuxStats, _: &mut Context<Self>) -> MuxStats {
        MuxStats {
            demux: self.demux.stats(),
            ..self.stats
        }
    }
}

impl Handler<StopMux> for IceUdpMux {
    type Result = ();

    fn handle(&mut self, _: StopMux, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// An agent's side of the shared socket: its registration, and its sends.
pub(crate) struct SharedHost {
    mux: IceUdpMuxHandle,
    agent: u64,
    ufrag: String,
}

impl SharedHost {
    /// Registers an agent whose stream 0 has the local `ufrag`; the datagrams for it.
    pub(crate) fn open(
        mux: &IceUdpMuxHandle,
        ufrag: &str,
    ) -> (SharedHost, impl Stream<Item = Datagram> + Unpin) {
        let agent = NEXT_AGENT.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(mux.queue);
        mux.addr.do_send(Register {
            agent,
            ufrags: vec![ufrag.to_owned()],
            tx,
        });
        let host = SharedHost {
            mux: mux.clone(),
            agent,
            ufrag: ufrag.to_owned(),
        };
        (host, Box::pin(stream::poll_fn(move |cx| rx.poll_recv(cx))))
    }

    /// The shared socket's address: the host candidate's.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.mux.local_addr()
    }

    /// Sends from the shared socket. A check (a Binding request) tells the mux first,
    /// so its response comes back to this agent.
    pub(crate) fn send(&self, to: SocketAddr, payload: &[u8]) {
        if payload.starts_with(&[0x00, 0x01]) {
            self.mux.addr.do_send(Learn {
                agent: self.agent,
                remote: to,
            });
        }
        if let Err(e) = self.mux.socket.try_send(&Outgoing::new(to, payload)) {
            tracing::debug!(%to, error = %e, "ICE datagram not sent on the shared socket");
        }
    }

    /// After an ICE restart the local ufrag is new: the old one no longer routes.
    pub(crate) fn sync_ufrag(&mut self, ufrag: &str) {
        if self.ufrag != ufrag {
            self.ufrag = ufrag.to_owned();
            self.mux.addr.do_send(SetUfrags {
                agent: self.agent,
                ufrags: vec![self.ufrag.clone()],
            });
        }
    }

    /// The agent stopped: its entries go.
    pub(crate) fn close(&self) {
        self.mux.addr.do_send(Unregister { agent: self.agent });
    }
}
