//! `TcpConnection`: one client over TCP (or TLS). STUN and ChannelData arrive framed
//! (RFC 8656 §12.5); the allocation of the connection lives as long as it does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytes::Bytes;
use floe::framing::StreamFramer;
use floe::transmit::Transport;
use floe::turn::server::FiveTuple;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::channel;

use super::shard::ShardHandle;

/// How long a connection may stay open without an allocation (coturn closes such
/// connections too): file descriptors are not spent on idle or half-open clients.
const IDLE_WITHOUT_ALLOCATION: Duration = Duration::from_secs(60);

/// Messages queued for a client that reads slowly; beyond this, relayed data is dropped.
const MAX_BUFFERED_FRAMES: usize = 1024;

/// One client connection.
pub(crate) struct TcpConnection {
    five_tuple: FiveTuple,
    shard: ShardHandle,
    reader: Option<Box<dyn AsyncRead + Unpin>>,
}

impl TcpConnection {
    /// Serves `stream` on the current Arbiter.
    pub(crate) fn spawn<S>(stream: S, client: SocketAddr, server: SocketAddr, shard: ShardHandle)
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        Self::spawn_with(stream, client, server, Transport::Tcp, shard)
    }

    /// As [`spawn`](Self::spawn), naming the transport (TLS streams come decrypted).
    pub(crate) fn spawn_with<S>(
        stream: S,
        client: SocketAddr,
        server: SocketAddr,
        transport: Transport,
        shard: ShardHandle,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let (read, mut write) = tokio::io::split(stream);
        let (tx, mut rx) = channel::<Bytes>(MAX_BUFFERED_FRAMES);
        let five_tuple = FiveTuple {
            client,
            server,
            transport,
        };
        shard.tcp_connected(&five_tuple, tx);
        actix_rt::spawn(async move {
            while let Some(b) = rx.recv().await {
                if write.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        TcpConnection {
            five_tuple,
            shard,
            reader: Some(Box::new(read)),
        }
        .start();
    }
}

impl Actor for TcpConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let mut reader = self.reader.take().expect("started once");
        let shard = self.shard.clone();
        let ft = self.five_tuple;
        let read_loop = async move {
            let mut framer = StreamFramer::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = reader.read(&mut buf).await.unwrap_or(0);
                if n == 0 || framer.push(&buf[..n]).is_err() {
                    return;
                }
                if !shard.client_frames(Instant::now(), &ft, &mut framer) {
                    return;
                }
            }
        };
        ctx.spawn(read_loop.into_actor(self).map(|_, _, ctx| ctx.stop()));
        ctx.run_interval(IDLE_WITHOUT_ALLOCATION, |act, ctx| {
            if !act.shard.has_allocation(&act.five_tuple) {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // RFC 8656 §3.1: a TCP allocation ends with its connection.
        self.shard.tcp_closed(&self.five_tuple);
    }
}
