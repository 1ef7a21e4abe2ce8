//! `Relay`: one relay socket and the loop that reads peers' datagrams from it.
//!
//! A receive error, or a panic of the actor, reports [`RelayFailed`] to the supervisor,
//! which binds the same address again and starts a new `Relay`; the allocation's state
//! (permissions, channels, lifetime) lives with the Arbiter's owner and is kept.

use std::net::SocketAddr;
use std::rc::Rc;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};

use super::recv_loop::{LoopRole, RecvLoop};
use super::shard::{Command, ShardHandle};
use super::Fault;
use crate::udp::BatchSocket;

/// A relay's socket failed, or its actor died; its address should be bound again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RelayFailed {
    pub(crate) addr: SocketAddr,
    pub(crate) error: String,
}

/// Reads one relayed address.
pub(crate) struct Relay {
    addr: SocketAddr,
    socket: Rc<BatchSocket>,
    shard: ShardHandle,
    supervisor: Recipient<RelayFailed>,
    /// Stopped on purpose, or its failure already reported.
    done: bool,
}

impl Relay {
    pub(crate) fn new(
        addr: SocketAddr,
        socket: Rc<BatchSocket>,
        shard: ShardHandle,
        supervisor: Recipient<RelayFailed>,
    ) -> Self {
        Relay {
            addr,
            socket,
            shard,
            supervisor,
            done: false,
        }
    }

    fn fail(&mut self, ctx: &mut Context<Self>, error: String) {
        if !self.done {
            self.done = true;
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
        let recv = RecvLoop {
            shard: self.shard.clone(),
            socket: self.socket.clone(),
            bufs: self.shard.relay_buffers(),
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

impl Handler<Command> for Relay {
    type Result = ();

    fn handle(&mut self, command: Command, ctx: &mut Context<Self>) {
        match command {
            Command::Stop => {
                self.done = true;
                ctx.stop();
            }
            Command::Fault(Fault::RelaySocketError) => {
                self.fail(ctx, "injected relay failure".to_owned())
            }
            Command::Fault(Fault::RelayPanic) => {
                panic!("injected panic in the relay on {}", self.addr)
            }
            Command::Fault(_) => {}
        }
    }
}

impl Drop for Relay {
    /// A panic unwinds the actor's task without `fail`: report it here.
    fn drop(&mut self) {
        if !self.done {
            self.supervisor.do_send(RelayFailed {
                addr: self.addr,
                error: "relay actor died".to_owned(),
            });
        }
    }
}
