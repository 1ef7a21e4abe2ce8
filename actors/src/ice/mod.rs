//! ICE (RFC 8445) as an actor: [`IceAgent`] drives the sans-IO core
//! [`floe::ice::Agent`] and adds only what the core leaves out: sockets, one timer,
//! gathering IO, and subscribers.
//!
//! ```text
//!   application ──Gather/SetRemote/AddRemoteCandidate/Start/Send/Restart──▶ IceAgent
//!        ▲                                                                 │
//!        └────────── IceEvent (Subscribe / events()) ──────────────────────┤ floe::ice::Agent
//!                                                                          │ (credentials, role,
//!                      host UDP sockets (one per address) ◀──────────────▶ │  priorities, checklist,
//!                      STUN Bindings on them (srflx) ◀───────────────────▶ │  Ta pacer, nomination,
//!                      TurnClient actors (relayed candidates) ◀──────────▶ ┘  consent, restart)
//! ```
//!
//! # What the actor does, and what it leaves to the core
//!
//! Every protocol rule — priorities and foundations of local candidates, pairing,
//! the frozen algorithm, Ta pacing, triggered checks, nomination, role conflicts,
//! consent freshness, keepalives, ICE restart, remote ice-lite — lives in
//! [`floe::ice::Agent`]. The actor:
//!
//! - feeds it every datagram (`handle_input`) and runs `handle_timeout` from exactly
//!   one actor timer, re-armed after every input at `poll_timeout` (the earliest of
//!   the core's deadline and the STUN Bindings');
//! - sends each `poll_transmit` from its source: a host socket, or — when the source is
//!   a relayed address — through that TURN server's client (`SendTo`; a channel is
//!   bound once a relayed pair is selected, RFC 8656 §12);
//! - hands each `poll_event` to the subscribers as [`IceEvent::Core`], with the events
//!   only the actor knows about: [`IceEvent::Candidate`], [`IceEvent::CandidateError`],
//!   [`IceEvent::GatheringComplete`] and [`IceEvent::Data`];
//! - gathers: a host socket per allowed address, a Binding from each to each STUN
//!   server (RFC 8445 §5.1.1.2), an allocation on each TURN server; what they give goes
//!   to the core's `add_local_candidate`, which names its priority and foundation.
//!
//! There is no checklist actor: the core agent owns the checklists (one per data
//! stream, and during a restart the retiring ones) and the one pacer.
//!
//! # Several streams and components
//!
//! [`AgentConfig::streams`] data streams of [`AgentConfig::components`] components
//! each (RTP and RTCP: 2): a host socket per stream, component and address, and a TURN
//! allocation per stream and component. Each stream has its own credentials
//! ([`Description::streams`]); messages name the stream (`stream: 0` in the handle's
//! methods without one), and so do events ([`IceEvent::stream`]).
//!
//! # The data path
//!
//! Application data from a host socket to a subscriber crosses one mailbox: the
//! subscriber's. The host sockets are streams of the agent's own context, so a
//! datagram goes socket → `Agent::handle_input` → one publish, with no hop between
//! actors. Relayed data is read by the [`TurnClient`](crate::turn::client::TurnClient)
//! actor that owns the connection to the TURN server (UDP or TCP, with its refreshes
//! and channels); it reaches the agent through that client's event channel, which the
//! agent polls as a stream of its context, and then takes the same one publish: two
//! queues in all, the least that keeps the TURN session in its own actor. Sending is a
//! direct call: [`Send`] → `Agent::send` → the socket (or the client's `SendTo`).
//!
//! In single-port mode ([`AgentConfig::shared_socket`]) an [`IceUdpMux`] reads the one
//! socket many agents share and routes each datagram through its index (remote address,
//! else a check's ufrag) to its agent's bounded queue: one queue more than a host socket
//! of the agent's own. The agent sends on the shared socket directly.
//!
//! # ICE restart
//!
//! [`Restart`] (RFC 8445 §9) answers the new local credentials to signal; the core
//! keeps the old selected pair carrying data and consent until the new checklist
//! selects one. The remote side's new credentials and candidates come with
//! [`SetRemote`] as before.
//!
//! # Renomination and continual gathering
//!
//! Renomination (draft-thatcher-ice-renomination-01) is the core's: the actor passes
//! the peer's offer ([`SetRemote::renomination`]) and [`Renominate`] through. With
//! [`GatherConfig::continual`] it lists the interfaces ([`GatherConfig::interfaces`])
//! again every period: a new address gets host sockets and candidates (trickled as
//! [`IceEvent::Candidate`]), a gone one's sockets stop and the core removes its
//! candidates (`Agent::remove_local_candidates`), moving the selection by its rules.
//!
//! # Events
//!
//! [`IceEvent`] uses the seed's names: `Candidate` (OnICECandidate), `CandidateError`
//! (OnICECandidateError), `GatheringComplete`, `Data`, and the core's events
//! (`PairNominated`, `PairFailed`, `SelectedPairChanged`, `RoleChanged`, `Connected`,
//! `Disconnected`, `ConsentLost`, `Failed` ...) wrapped in [`IceEvent::Core`].

mod agent;
mod api;
pub mod command;
mod config;
mod gather;
mod io;
mod mdns;
mod relay;
mod session;
mod shared_socket;
mod tcp;

use std::net::SocketAddr;

use actix::Message;
use bytes::Bytes;
pub use floe::ice::{Candidate, IceCredentials, IceError, IceRole};

pub use agent::IceAgent;
pub use api::{
    AddRemoteCandidate, AddRemoteCandidateSdp, Description, EndOfRemoteCandidates, Gather,
    IceAgentHandle, LocalDescription, Renominate, Restart, SetRemote, Start, Stop,
    StreamDescription,
};
pub use config::{AgentConfig, GatherConfig, InterfaceSource, TurnServerConfig, TurnTransport};
pub use gather::host_addresses;
pub use shared_socket::{IceUdpMux, IceUdpMuxConfig, IceUdpMuxHandle, MuxStats};

/// Sends application data over the selected pair of stream 0, component 1 (RFC 8445
/// §12.1).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), IceError>")]
pub struct Send(pub Bytes);

/// Sends application data over the selected pair of `component` of `stream`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), IceError>")]
pub struct SendOn {
    /// The data stream (0 is the first).
    pub stream: usize,
    /// The component (1 is RTP, 2 RTCP).
    pub component: u16,
    /// The datagram.
    pub data: Bytes,
}

/// Why a STUN or TURN server gave no candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateErrorKind {
    /// No answer (RFC 8489 §6.2.1 timeout), or the connection to it failed.
    Unreachable,
    /// RFC 8489 §9.2: the server refused the credentials (401, 441).
    AuthFailed,
    /// Any other error response or failure; see the code and reason.
    Rejected,
}

/// What an [`IceAgent`] tells its subscribers: the core agent's events, and what only
/// the actor knows (gathering, received data). Each names its data stream (0 is the
/// first); a candidate's and a pair's component is the candidate's own.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum IceEvent {
    /// OnICECandidate: a local candidate of `stream` to signal, with its priority,
    /// foundation and component. Its SDP form is [`Candidate::to_sdp`].
    Candidate {
        /// The data stream.
        stream: usize,
        /// The candidate.
        candidate: Candidate,
    },
    /// OnICECandidateError: a STUN or TURN server gave no candidate.
    CandidateError {
        /// The server.
        server: SocketAddr,
        /// What went wrong.
        kind: CandidateErrorKind,
        /// The STUN error code of the server's answer, if it answered.
        code: Option<u16>,
        /// A description.
        reason: String,
    },
    /// Every host, server-reflexive and relayed candidate of every stream has been
    /// signalled (or has failed): signal end-of-candidates (RFC 8838 §8.2).
    GatheringComplete,
    /// Application data from a remote candidate, relayed or direct.
    Data {
        /// The data stream.
        stream: usize,
        /// The component it arrived on.
        component: u16,
        /// The datagram.
        data: Bytes,
    },
    /// An event of the core agent about `stream`: `PairNominated`,
    /// `SelectedPairChanged`, `Connected` (every component of the stream has a selected
    /// pair), `ConsentLost`, `Failed` ...
    Core {
        /// The data stream.
        stream: usize,
        /// The event.
        event: floe::ice::IceEvent,
    },
}

impl IceEvent {
    /// The seed's name of the event (`OnICECandidate`, `OnICECandidatePairNominated` ...).
    pub fn seed_name(&self) -> &'static str {
        match self {
            IceEvent::Candidate { .. } => "OnICECandidate",
            IceEvent::CandidateError { .. } => "OnICECandidateError",
            IceEvent::GatheringComplete => "OnICEGatheringComplete",
            IceEvent::Data { .. } => "OnICEData",
            IceEvent::Core { event, .. } => event.seed_name(),
        }
    }

    /// The data stream the event is about, if it is about one.
    pub fn stream(&self) -> Option<usize> {
        match self {
            IceEvent::Candidate { stream, .. }
            | IceEvent::Data { stream, .. }
            | IceEvent::Core { stream, .. } => Some(*stream),
            IceEvent::CandidateError { .. } | IceEvent::GatheringComplete => None,
        }
    }
}
