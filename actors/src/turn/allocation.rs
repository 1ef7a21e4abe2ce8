//! `Allocation`: the actor of one allocation, the unit of failure the supervisor watches.
//!
//! Its state (permissions, channels, lifetime) lives in the Arbiter's sans-IO core so the
//! data path needs no mailbox hop; the actor stands for the allocation's life. If it dies
//! (a panic in one of its handlers), the supervisor frees the allocation and says so,
//! and every other allocation carries on.

use std::net::SocketAddr;

use actix::{Actor, ActorContext, Addr, Context, Handler, Message};
use floe::turn::server::AllocationId;

use super::supervisor::{AllocationEnded, AllocationSupervisor};

/// Stops the actor (its allocation was deleted or expired).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAllocation;

/// Makes the actor panic (fault injection for tests and drills).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PanicAllocation;

/// One allocation.
pub struct Allocation {
    id: AllocationId,
    relayed: Vec<SocketAddr>,
    supervisor: Addr<AllocationSupervisor>,
    stopped_cleanly: bool,
}

impl Allocation {
    pub(crate) fn new(
        id: AllocationId,
        relayed: Vec<SocketAddr>,
        supervisor: Addr<AllocationSupervisor>,
    ) -> Self {
        Allocation {
            id,
            relayed,
            supervisor,
            stopped_cleanly: false,
        }
    }
}

impl Actor for Allocation {
    type Context = Context<Self>;
}

impl Handler<StopAllocation> for Allocation {
    type Result = ();

    fn handle(&mut self, _: StopAllocation, ctx: &mut Context<Self>) {
        self.stopped_cleanly = true;
        ctx.stop();
    }
}

impl Handler<PanicAllocation> for Allocation {
    type Result = ();

    fn handle(&mut self, _: PanicAllocation, _: &mut Context<Self>) {
        panic!(
            "injected panic in the allocation relaying on {:?}",
            self.relayed
        );
    }
}

impl Drop for Allocation {
    /// Runs on a clean stop and while a panic unwinds the actor's task alike; only the
    /// latter needs the supervisor to free the allocation.
    fn drop(&mut self) {
        if !self.stopped_cleanly {
            self.supervisor.do_send(AllocationEnded { id: self.id });
        }
    }
}
