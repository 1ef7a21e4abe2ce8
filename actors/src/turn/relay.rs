//! `Relay`: the life of one relay socket. The Arbiter's relay drain reads the socket
//! (`relay_drain`); the actor stands for it in supervision.
//!
//! A receive error (the drain reports it through the owner), or a panic of the actor,
//! reports [`RelayFailed`] to the supervisor, which binds the same address again and
//! starts a new `Relay`; the allocation's state (permissions, channels, lifetime) lives
//! with the Arbiter's owner and is kept.

use std::net::SocketAddr;

use actix::{Actor, ActorContext, Context, Handler, Message, Recipient};

use super::shard::Command;
use super::Fault;

/// A relay's socket failed, or its actor died; its address should be bound again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RelayFailed {
    pub(crate) addr: SocketAddr,
    pub(crate) error: String,
}

/// Stands for one relayed address.
pub(crate) struct Relay {
    addr: SocketAddr,
    supervisor: Recipient<RelayFailed>,
    /// Stopped on purpose, or its failure already reported.
    done: bool,
}

impl Relay {
    pub(crate) fn new(addr: SocketAddr, supervisor: Recipient<RelayFailed>) -> Self {
        Relay {
            addr,
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
