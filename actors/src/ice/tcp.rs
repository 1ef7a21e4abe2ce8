//! ICE-TCP sockets of an [`IceAgent`] (RFC 6544): a listener per passive host
//! candidate, the connections the core asks for with `poll_tcp_connect`, and RFC 4571
//! framing of every packet on them. The rules (which pairs, when to connect, no
//! retransmissions, peer-reflexive candidates of accepted connections) are the core's
//! (`floe::ice`'s `tcp` module); this module only moves bytes and reports connection
//! events back to it.
//!
//! Per stream and host IP the agent gathers a passive candidate (a listener on an
//! ephemeral port that no UDP host socket of that IP uses, since the core tells UDP from
//! TCP packets by the local address) and an active candidate (signalled with port 9;
//! its connections leave from ephemeral ports). Component 1 only: ICE-TCP carries one
//! component per connection, and WebRTC muxes RTCP (RFC 8843) anyway. Simultaneous-open
//! candidates are not gathered.
//!
//! Each connection is named as the core names it: (the candidate's base, the remote
//! address) — for an outgoing one the active candidate's `ip:9`, for an accepted one the
//! listener's address and the peer's. Its reads are a stream of the agent's context
//! (through an [`Rfc4571Framer`]), its writes go through a small task per connection.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use actix::{ActorFutureExt, AsyncContext, Context, StreamHandler, WrapFuture};
use bytes::Bytes;
use floe::ice::{Candidate, TcpConnect, TcpType};
use floe::rfc4571::{encode, Rfc4571Framer};
use floe::Transmit;
use futures_util::stream::{self, Stream};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::agent::IceAgent;
use crate::turn::stream_writer::StreamWriter;

/// How long an outgoing connection may take before its pair fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most connections an agent keeps; more accepted ones are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Bytes queued for one connection at most; beyond, packets are dropped as UDP would drop
/// them, so a peer that stops reading costs bounded memory.
const WRITE_QUEUE: usize = 256 * 1024;

/// How long a closed connection's queued packets have to leave.
const LINGER: Duration = Duration::from_secs(1);

/// What the TCP sockets tell the agent.
pub(crate) enum TcpInput {
    /// A passive candidate's listener accepted a connection.
    Accepted {
        listener: SocketAddr,
        stream: TcpStream,
        peer: SocketAddr,
    },
    /// One RFC 4571 packet arrived on connection `id`.
    Packet { id: u64, data: Bytes },
    /// Connection `id` closed or failed.
    Closed { id: u64 },
}

impl actix::Message for TcpInput {
    type Result = ();
}

struct Conn {
    id: u64,
    /// The core's name of the connection: the local candidate's base ...
    local: SocketAddr,
    /// ... and the remote address.
    remote: SocketAddr,
    /// Framed packets to write, bounded in bytes.
    writer: StreamWriter,
}

/// The agent's TCP connections.
#[derive(Default)]
pub(crate) struct TcpIo {
    conns: Vec<Conn>,
    next_id: u64,
}

impl TcpIo {
    /// Sends a TCP transmit on its connection (framed); `false` if there is none.
    pub(crate) fn send(&self, t: &Transmit) -> bool {
        let Some(c) = self
            .conns
            .iter()
            .find(|c| c.local == t.source && c.remote == t.destination)
        else {
            return false;
        };
        match encode(&t.payload) {
            Ok(frame) => c.writer.send(frame).is_ok(),
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP packet not sent");
                false
            }
        }
    }
}

/// A listener on `ip` whose port no UDP host socket of `ip` has.
fn bind_listener(ip: IpAddr, udp: &[SocketAddr]) -> io::Result<(TcpListener, SocketAddr)> {
    let mut held = Vec::new();
    for _ in 0..8 {
        let l = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        let addr = l.local_addr()?;
        if udp.contains(&addr) {
            held.push(l); // keep it bound so that the next try gets another port
            continue;
        }
        l.set_nonblocking(true)?;
        return Ok((TcpListener::from_std(l)?, addr));
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "every TCP port tried is a UDP host socket's",
    ))
}

/// The connections `listener` accepts.
fn accepts(addr: SocketAddr, listener: TcpListener) -> impl Stream<Item = TcpInput> + Unpin {
    Box::pin(stream::unfold(listener, move |l| async move {
        loop {
            match l.accept().await {
                Ok((stream, peer)) => {
                    let input = TcpInput::Accepted {
                        listener: addr,
                        stream,
                        peer,
                    };
                    return Some((input, l));
                }
                Err(e) => {
                    tracing::warn!(listener = %addr, error = %e, "ICE-TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

/// The packets of connection `id`, then `Closed`.
fn packets(id: u64, rd: OwnedReadHalf) -> impl Stream<Item = TcpInput> + Unpin {
    let state = Some((rd, Rfc4571Framer::new(), vec![0u8; 8192]));
    Box::pin(stream::unfold(state, move |state| async move {
        let (mut rd, mut framer, mut buf) = state?;
        loop {
            if let Some(data) = framer.next_frame() {
                return Some((TcpInput::Packet { id, data }, Some((rd, framer, buf))));
            }
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return Some((TcpInput::Closed { id }, None)),
                Ok(n) => framer.push(&buf[..n]),
            }
        }
    }))
}

/// Writes what it is given to `wr`, at most [`WRITE_QUEUE`] bytes waiting.
fn writer(wr: OwnedWriteHalf) -> StreamWriter {
    StreamWriter::spawn(Box::pin(wr), WRITE_QUEUE, LINGER)
}

async fn connect(local_ip: IpAddr, remote: SocketAddr) -> io::Result<TcpStream> {
    let socket = match remote {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local_ip, 0))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote)).await {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

impl IceAgent {
    /// RFC 6544 §4.5: a passive (listening) and an active TCP host candidate per stream
    /// and host IP, component 1. `udp` are the UDP host sockets' addresses.
    pub(super) fn gather_tcp(
        &mut self,
        ctx: &mut Context<Self>,
        ips: &[IpAddr],
        streams: usize,
        udp: &[SocketAddr],
    ) {
        for stream in 0..streams {
            for &ip in ips {
                match bind_listener(ip, udp) {
                    Ok((listener, addr)) => {
                        ctx.add_stream(accepts(addr, listener));
                        self.add_local(stream, Candidate::tcp_host(addr, TcpType::Passive));
                    }
                    Err(e) => tracing::warn!(%ip, error = %e, "no passive TCP candidate"),
                }
                let active = Candidate::tcp_host(SocketAddr::new(ip, 0), TcpType::Active);
                self.add_local(stream, active);
            }
        }
    }

    /// RFC 6544 §7.1: opens the connection the core asked for, and tells it the outcome.
    pub(super) fn tcp_connect(&mut self, ctx: &mut Context<Self>, c: TcpConnect) {
        tracing::debug!(local = %c.local, remote = %c.remote, "ICE-TCP connect");
        ctx.spawn(
            connect(c.local.ip(), c.remote)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let now = Instant::now();
                    match res {
                        Ok(stream) if act.tcp.conns.len() < MAX_CONNECTIONS => {
                            act.tcp_register(ctx, c.local, c.remote, stream);
                            act.core().handle_tcp_connected(now, c.local, c.remote);
                        }
                        res => {
                            let error = res.err().map(|e| e.to_string());
                            tracing::debug!(remote = %c.remote, ?error, "ICE-TCP connect failed");
                            act.core().handle_tcp_connect_failed(now, c.local, c.remote);
                        }
                    }
                    act.drive(ctx);
                }),
        );
    }

    fn tcp_register(
        &mut self,
        ctx: &mut Context<Self>,
        local: SocketAddr,
        remote: SocketAddr,
        stream: TcpStream,
    ) {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let id = self.tcp.next_id;
        self.tcp.next_id += 1;
        self.tcp.conns.push(Conn {
            id,
            local,
            remote,
            writer: writer(wr),
        });
        ctx.add_stream(packets(id, rd));
    }
}

impl StreamHandler<TcpInput> for IceAgent {
    fn handle(&mut self, msg: TcpInput, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg {
            TcpInput::Accepted {
                listener,
                stream,
                peer,
            } => {
                if self.tcp.conns.len() >= MAX_CONNECTIONS {
                    tracing::debug!(%peer, "ICE-TCP: too many connections, closed");
                    return;
                }
                self.tcp_register(ctx, listener, peer, stream);
                self.core().handle_tcp_accepted(now, listener, peer);
            }
            TcpInput::Packet { id, data } => {
                let Some(c) = self.tcp.conns.iter().find(|c| c.id == id) else {
                    return;
                };
                let (from, to) = (c.remote, c.local);
                self.input(now, from, to, data);
            }
            TcpInput::Closed { id } => {
                let Some(i) = self.tcp.conns.iter().position(|c| c.id == id) else {
                    return;
                };
                let c = self.tcp.conns.swap_remove(i);
                tracing::debug!(local = %c.local, remote = %c.remote, "ICE-TCP connection closed");
                self.core().handle_tcp_closed(now, c.local, c.remote);
            }
        }
        self.drive(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // A listener or a connection ended; `Closed` said so for connections.
    }
}
