//! The [`TurnClient`] actor: a thin driver of the sans-IO [`floe::turn::client::Client`]. It
//! owns the socket and one timer re-armed from the core's `poll_timeout`, runs commands on
//! the core, and publishes the core's events to its subscribers.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, ResponseFuture,
    SpawnHandle, StreamHandler, WrapFuture,
};
use floe::transmit::{Transmit, Transport};
use floe::turn::client::{Client as ClientCore, ClientError, ClientEvent, ClientState};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::oneshot;

use super::transport::{
    connect_stream, framed_reader, Inbound, Reader, StreamSendError, StreamWriter, UdpReader,
    Writer, CLOSE_LINGER, MAX_QUEUED_BYTES,
};
use super::{
    Allocate, Binding, ChannelBind, Close, CreatePermission, Refresh, SendTo, TurnClientConfig,
    TurnClientError, TurnClientEvent, TurnClientHandle,
};
use crate::events::{Subscribe, SubscribeChannel, Subscribers};
use crate::udp::{BatchSocket, Outgoing, SendError, UdpSocketConfig};

/// One client session with one STUN/TURN server (RFC 8489, RFC 8656).
pub struct TurnClient {
    config: TurnClientConfig,
    core: ClientCore,
    writer: Writer,
    reader: Option<SpawnHandle>,
    /// The pending `run_later` and the deadline it is for.
    timer: Option<(SpawnHandle, Instant)>,
    subscribers: Subscribers<TurnClientEvent>,
    /// A reconnect (after a redirect over TCP/TLS) is under way: transmits wait.
    reconnecting: bool,
    closing: bool,
    closed: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
}

impl TurnClient {
    /// Opens the socket (binds UDP, or connects TCP and does the TLS handshake) and starts
    /// the actor on the current Arbiter. Nothing is sent to the server yet.
    pub async fn connect(config: TurnClientConfig) -> Result<TurnClientHandle, TurnClientError> {
        let server = config.session.server;
        let transport = config.session.transport;
        let (local, writer, reader) = match transport {
            Transport::Udp => {
                let socket_config = UdpSocketConfig {
                    gro: false,
                    ..UdpSocketConfig::default()
                };
                let socket = Rc::new(BatchSocket::bind(config.bind_addr(), &socket_config)?);
                let reader = Reader::Udp(UdpReader::new(socket.clone()));
                (socket.local_addr(), Writer::Udp(socket), reader)
            }
            Transport::Tcp | Transport::Tls => {
                let conn = connect_stream(&config, server, config.tls.server_name.clone()).await?;
                let writer = Writer::Stream(StreamWriter::spawn(
                    conn.writer,
                    MAX_QUEUED_BYTES,
                    CLOSE_LINGER,
                ));
                (
                    conn.local,
                    writer,
                    Reader::Stream(framed_reader(conn.reader)),
                )
            }
        };
        let core = ClientCore::new(config.session_from(local), StdRng::from_entropy());
        let addr = TurnClient::create(move |ctx| {
            let reader = match reader {
                Reader::Udp(r) => ctx.add_stream(r),
                Reader::Stream(r) => ctx.add_stream(r),
            };
            TurnClient {
                config,
                core,
                writer,
                reader: Some(reader),
                timer: None,
                subscribers: Subscribers::default(),
                reconnecting: false,
                closing: false,
                closed: false,
                close_waiters: Vec::new(),
            }
        });
        Ok(TurnClientHandle {
            addr,
            local,
            server,
            transport,
        })
    }

    /// Hands everything the core has queued to the socket and the subscribers, and re-arms
    /// the timer. Called after every input to the core.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        // Events first: a redirect over TCP/TLS reconnects before the next request leaves.
        while let Some(e) = self.core.poll_event() {
            if let ClientEvent::Redirected { to, domain } = &e {
                if self.config.session.transport.is_reliable() {
                    self.reconnect(*to, domain.clone(), ctx);
                }
            }
            self.subscribers.publish(TurnClientEvent::Session(e));
        }
        if self.closing && self.advance_close(ctx) {
            return;
        }
        if !self.reconnecting {
            while let Some(t) = self.core.poll_transmit() {
                self.send(t, ctx);
            }
        }
        self.arm_timer(ctx);
    }

    fn send(&mut self, t: Transmit, ctx: &mut Context<Self>) {
        match &self.writer {
            Writer::Udp(socket) => {
                match socket.try_send(&Outgoing::new(t.destination, &t.payload)) {
                    Ok(()) => {}
                    Err(SendError::WouldBlock) => {
                        let socket = socket.clone();
                        actix_rt::spawn(async move {
                            let _ = socket.send_to(&t.payload, t.destination).await;
                        });
                    }
                    // Lost like a datagram: requests are retransmitted and time out.
                    Err(e) => tracing::debug!(error = %e, "TURN client: UDP send failed"),
                }
            }
            Writer::Stream(w) => match w.send(t.payload) {
                Ok(()) => {}
                // Dropped like a datagram: a request times out, data is lost.
                Err(StreamSendError::Full) => {
                    tracing::debug!("TURN client: the server reads too slowly; message dropped")
                }
                Err(StreamSendError::Closed) => {
                    self.lost("the connection to the server is closed".into(), ctx)
                }
            },
        }
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.core.poll_timeout();
        if self.timer.as_ref().map(|(_, at)| *at) == next {
            return;
        }
        if let Some((handle, _)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = next {
            let delay = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.core.handle_timeout(Instant::now());
                act.flush(ctx);
            });
            self.timer = Some((handle, at));
        }
    }

    /// RFC 8656 §7.4 over TCP/TLS: the session continues on a new connection to `to`.
    fn reconnect(&mut self, to: SocketAddr, domain: Option<String>, ctx: &mut Context<Self>) {
        if let Some(h) = self.reader.take() {
            ctx.cancel_future(h);
        }
        // Dropping the writer closes the old connection once its queue is written.
        self.writer = Writer::Stream(StreamWriter::closed());
        self.reconnecting = true;
        let config = self.config.clone();
        let name = domain.or_else(|| config.tls.server_name.clone());
        let fut = async move { connect_stream(&config, to, name).await };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(conn) => {
                act.writer = Writer::Stream(StreamWriter::spawn(
                    conn.writer,
                    MAX_QUEUED_BYTES,
                    CLOSE_LINGER,
                ));
                act.reader = Some(ctx.add_stream(framed_reader(conn.reader)));
                act.reconnecting = false;
                act.flush(ctx);
            }
            Err(e) => act.lost(e.to_string(), ctx),
        }));
    }

    /// Moves a [`Close`] along: deletes the allocation once there is one to delete, and
    /// finishes once there is none. Returns whether the client is closed.
    fn advance_close(&mut self, ctx: &mut Context<Self>) -> bool {
        match self.core.state() {
            ClientState::Allocated => {
                let _ = self.core.delete(Instant::now());
                self.flush(ctx);
                self.closed
            }
            ClientState::Allocating | ClientState::Deleting => false,
            ClientState::Idle => {
                self.finish(ctx);
                true
            }
        }
    }

    /// The socket is unusable: says why (unless nothing was left to lose), then closes.
    fn lost(&mut self, reason: String, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        tracing::debug!(server = %self.core.server(), %reason, "TURN client lost its server");
        // A server may close a TCP/TLS connection that carries nothing any more (coturn
        // does right after a delete): with no allocation and no request pending, that is
        // just the end of the session.
        let idle = self.core.state() == ClientState::Idle && self.core.poll_timeout().is_none();
        if !idle {
            self.subscribers
                .publish(TurnClientEvent::ConnectionLost { reason });
        }
        self.finish(ctx);
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.subscribers.publish(TurnClientEvent::Closed);
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
        ctx.stop();
    }

    /// Runs a command on the core and flushes what it queued.
    fn command<T>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut ClientCore, Instant) -> Result<T, ClientError>,
    ) -> Result<T, TurnClientError> {
        if self.closing || self.closed {
            return Err(TurnClientError::Closed);
        }
        let result = f(&mut self.core, Instant::now());
        self.flush(ctx);
        Ok(result?)
    }
}

impl Actor for TurnClient {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if !self.closed {
            self.closed = true;
            self.subscribers.publish(TurnClientEvent::Closed);
        }
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

impl StreamHandler<Inbound> for TurnClient {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match item {
            Inbound::Datagrams(batch) => {
                for (from, bytes) in batch {
                    self.core.handle_input(now, from, bytes);
                }
            }
            Inbound::Frame(bytes) => {
                let from = self.core.server();
                self.core.handle_input(now, from, bytes);
            }
            Inbound::Lost(reason) => return self.lost(reason, ctx),
        }
        self.flush(ctx);
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // `Inbound::Lost` said why; a cancelled reader (reconnect) ends silently.
    }
}

impl Handler<Allocate> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, _: Allocate, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.allocate(now))
    }
}

impl Handler<Refresh> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, msg: Refresh, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.refresh(now, msg.lifetime))
    }
}

impl Handler<CreatePermission> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, msg: CreatePermission, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.create_permission(now, &msg.peers))
    }
}

impl Handler<ChannelBind> for TurnClient {
    type Result = Result<u16, TurnClientError>;

    fn handle(&mut self, msg: ChannelBind, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.channel_bind(now, msg.peer))
    }
}

impl Handler<SendTo> for TurnClient {
    type Result = Result<(), TurnClientError>;

    fn handle(&mut self, msg: SendTo, ctx: &mut Context<Self>) -> Self::Result {
        self.command(ctx, |core, now| core.send_to(now, msg.peer, &msg.bytes))
    }
}

impl Handler<Binding> for TurnClient {
    type Result = ();

    fn handle(&mut self, _: Binding, ctx: &mut Context<Self>) {
        let _ = self.command(ctx, |core, now| {
            core.binding(now);
            Ok(())
        });
    }
}

impl Handler<Close> for TurnClient {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.close_waiters.push(tx);
        if !self.closing && !self.closed {
            self.closing = true;
            self.flush(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Subscribe<TurnClientEvent>> for TurnClient {
    type Result = ();

    fn handle(&mut self, msg: Subscribe<TurnClientEvent>, _: &mut Context<Self>) {
        self.subscribers.add(msg.0);
    }
}

impl Handler<SubscribeChannel<TurnClientEvent>> for TurnClient {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChannel<TurnClientEvent>, _: &mut Context<Self>) {
        self.subscribers.add_channel(msg.0);
    }
}
