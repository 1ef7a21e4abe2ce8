//! The TURN server as actors: [`TurnServer`] runs one `AllocationSupervisor` per
//! Arbiter, each with its own SO_REUSEPORT listeners, an `AllocationActor` per
//! allocation, a `Relay` actor per relayed address, and a `TcpConnection` per TCP
//! client. The state of an Arbiter's allocations has one owner, `shard`; its module doc
//! states the data-path rule, and `supervisor`'s what happens when something fails.
//! What operators see of the allocations (the admin API) is `sessions`, which `shard`,
//! `supervisor` and `server` use and which uses none of them.
//!
//! Modules depend one way, with no cycle:
//!
//! ```text
//! server ─→ supervisor ─→ relay_drain ─→ shard ─→ binder ─→ quota
//!              │  │                          └────→ bandwidth
//!              │  ├─────→ relay ────────────→ shard (its Command only)
//!              │  ├─────→ allocation ───────→ shard ─→ outbox
//!              │  └─────→ tcp_connection ───→ shard ─→ stream_writer
//!              │                 └──────────→ tcp_limits, stream_writer
//!              │                     shard ─→ usage ─→ sessions
//!              │                     shard ─→ relay_drain (the ready set and its wakers)
//!              └────────→ shard, recv_loop, binder, quota, tcp_limits
//! ```
//!
//! (`server` also makes the cross-thread `quota`, `binder`'s parked-socket table and
//! `tcp_limits`' connection caps that every Arbiter shares; `client` writes to its
//! server through `stream_writer` too.) `shard` reaches its supervisor only through the `Supervision` trait object, and the
//! actors report failures through `Recipient`s of their own messages.

mod allocation;
mod bandwidth;
mod binder;
pub mod client;
mod coalesce;
mod outbox;
mod quota;
mod recv_loop;
mod relay;
mod relay_drain;
mod server;
mod sessions;
mod shard;
pub(crate) mod stream_writer;
mod supervisor;
mod tcp_connection;
mod tcp_limits;
mod usage;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix::Message;
pub use floe::turn::server::FiveTuple;

pub use client::{
    TurnClient, TurnClientConfig, TurnClientError, TurnClientEvent, TurnClientHandle,
};
pub(crate) use server::relay_ips;
pub use server::{core_config, core_config_with, ServerHandle, TurnServer};
pub use sessions::{
    Session, SessionChannel, SessionFilter, SessionId, SessionIdError, SessionPermission,
};

/// What the TURN server tells its subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum TurnEvent {
    /// RFC 8656 §7.2: an allocation was created.
    AllocationCreated {
        /// its 5-tuple
        five_tuple: FiveTuple,
        /// the user
        username: String,
        /// its relayed addresses
        relayed: Vec<SocketAddr>,
        /// its lifetime
        lifetime: Duration,
    },
    /// RFC 8656 §7.3: refreshed.
    Refreshed {
        /// its 5-tuple
        five_tuple: FiveTuple,
        /// the new lifetime
        lifetime: Duration,
    },
    /// Deleted by its client, its TCP connection closing, or shutdown.
    Deleted {
        /// its 5-tuple
        five_tuple: FiveTuple,
    },
    /// Its lifetime ran out.
    Expired {
        /// its 5-tuple
        five_tuple: FiveTuple,
    },
    /// Its actor died, or its relay could not be bound again; the allocation was freed
    /// (a `Deleted` follows) and its client's next request gets 437.
    AllocationFailed {
        /// its 5-tuple
        five_tuple: FiveTuple,
        /// why
        reason: String,
    },
    /// RFC 8656 §9: a permission was installed.
    PermissionCreated {
        /// the allocation's 5-tuple
        five_tuple: FiveTuple,
        /// the peer IP
        peer: IpAddr,
    },
    /// RFC 8656 §11: a channel was bound.
    ChannelBound {
        /// the allocation's 5-tuple
        five_tuple: FiveTuple,
        /// the peer
        peer: SocketAddr,
        /// the channel number
        channel: u16,
    },
    /// A request failed authentication (401, 438 or 441).
    AuthFailed {
        /// the client
        client: SocketAddr,
        /// the username it gave
        username: Option<String>,
        /// the error code
        code: u16,
    },
    /// An operator ended the allocation (the admin API's `DELETE /sessions`); a
    /// `Deleted` follows and its client's next request gets 437.
    EndedByOperator {
        /// its 5-tuple
        five_tuple: FiveTuple,
        /// the user
        username: String,
    },
    /// A relay socket failed (or its actor panicked) and was bound again on the same
    /// address; the allocation kept its permissions and channels.
    RelayRestarted {
        /// the allocation's 5-tuple
        five_tuple: FiveTuple,
        /// the relayed address
        relayed: SocketAddr,
    },
}

/// Where the Arbiters send their [`TurnEvent`]s: the [`TurnServer`] actor, but only once
/// someone subscribed. Sending is a message to another thread (an eventfd write and a
/// wake-up there); with no subscriber, as under `floe serve`, it was a sixth of the
/// server's CPU per allocation.
#[derive(Clone)]
pub(crate) struct EventSink {
    recipient: actix::Recipient<TurnEvent>,
    wanted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl EventSink {
    pub(crate) fn new(
        recipient: actix::Recipient<TurnEvent>,
        wanted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        EventSink { recipient, wanted }
    }

    /// Sends `event` if anyone subscribed.
    pub(crate) fn do_send(&self, event: TurnEvent) {
        if self.wanted.load(std::sync::atomic::Ordering::Relaxed) {
            self.recipient.do_send(event);
        }
    }
}

/// Faults that can be injected to drill the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The relay socket fails as on a receive error.
    RelaySocketError,
    /// The relay's actor panics.
    RelayPanic,
    /// The allocation's actor panics.
    AllocationPanic,
}
