//! `AllocationActor`: the actor of one allocation, the unit of failure the supervisor watches.
//!
//! Its state (permissions, channels, lifetime, relayed addresses) is kept by the
//! Arbiter's owner (`shard`) so the data path needs no mailbox hop; the actor stands for
//! the allocation's life and takes its commands. If it dies (a panic in one of its
//! handlers), the supervisor ends the allocation with an `AllocationFailed` event, its
//! client's next request gets 437, and every other allocation carries on.

use actix::{Actor, ActorContext, Context, Handler, Message, Recipient};
use floe::turn::server::{AllocationId, FiveTuple};

use super::shard::Command;
use super::Fault;

/// An allocation actor is gone without being stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AllocationEnded {
    pub(crate) id: AllocationId,
}

/// One allocation.
pub(crate) struct AllocationActor {
    id: AllocationId,
    five_tuple: FiveTuple,
    supervisor: Recipient<AllocationEnded>,
    stopped_cleanly: bool,
}

impl AllocationActor {
    pub(crate) fn new(
        id: AllocationId,
        five_tuple: FiveTuple,
        supervisor: Recipient<AllocationEnded>,
    ) -> Self {
        AllocationActor {
            id,
            five_tuple,
            supervisor,
            stopped_cleanly: false,
        }
    }
}

impl Actor for AllocationActor {
    type Context = Context<Self>;
}

impl Handler<Command> for AllocationActor {
    type Result = ();

    fn handle(&mut self, command: Command, ctx: &mut Context<Self>) {
        match command {
            Command::Stop => {
                self.stopped_cleanly = true;
                ctx.stop();
            }
            Command::Fault(Fault::AllocationPanic) => panic!(
                "injected panic in the allocation of {}",
                self.five_tuple.client
            ),
            Command::Fault(_) => {}
        }
    }
}

impl Drop for AllocationActor {
    /// Runs on a clean stop and while a panic unwinds the actor's task alike; only the
    /// latter needs the supervisor to end the allocation.
    fn drop(&mut self) {
        if !self.stopped_cleanly {
            self.supervisor.do_send(AllocationEnded { id: self.id });
        }
    }
}
