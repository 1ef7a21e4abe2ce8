//! `Relay`: one relay socket and the loop that reads peers' datagrams from it.

use std::net::SocketAddr;
use std::rc::Rc;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture,
};

use super::shard::{LoopRole, RecvLoop, SharedShard};
use super::supervisor::{AllocationSupervisor, RelayFailed};
use crate::udp::BatchSocket;

/// Stops a relay for good (its allocation ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRelay;

/// Makes the relay fail as a socket error would (fault injection for tests and drills).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FailRelay;

/// Reads one relayed address. A receive error stops it and tells the supervisor, which
/// binds the same address again and starts a new `Relay`.
pub struct Relay {
    addr: SocketAddr,
    socket: Rc<BatchSocket>,
    shard: SharedShard,
    supervisor: Addr<AllocationSupervisor>,
    released: bool,
}

impl Relay {
    pub(crate) fn new(
        addr: SocketAddr,
        socket: Rc<BatchSocket>,
        shard: SharedShard,
        supervisor: Addr<AllocationSupervisor>,
    ) -> Self {
        Relay {
            addr,
            socket,
            shard,
            supervisor,
            released: false,
        }
    }

    fn fail(&mut self, ctx: &mut Context<Self>, error: String) {
        if !self.released {
            self.released = true;
            self.supervisor.do_send(RelayFailed {
                addr: self.addr,
                error,
            });
        }
        ctx.stop();
    }
}

impl Actor for Relay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let bufs = self.shard.borrow().relay_bufs.clone();
        let recv = RecvLoop {
            shard: self.shard.clone(),
            socket: self.socket.clone(),
            bufs,
            role: LoopRole::Relay,
        };
        ctx.spawn(recv.into_actor(self).map(|result, act, ctx| {
            let error = match result {
                Ok(()) => "receive loop ended".to_owned(),
                Err(e) => e.to_string(),
            };
            act.fail(ctx, error);
        }));
    }
}

impl Handler<StopRelay> for Relay {
    type Result = ();

    fn handle(&mut self, _: StopRelay, ctx: &mut Context<Self>) {
        self.released = true;
        ctx.stop();
    }
}

impl Handler<FailRelay> for Relay {
    type Result = ();

    fn handle(&mut self, _: FailRelay, ctx: &mut Context<Self>) {
        self.fail(ctx, "injected relay failure".to_owned());
    }
}
