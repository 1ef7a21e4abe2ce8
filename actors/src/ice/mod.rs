//! ICE (RFC 8445) as actors: an [`IceAgent`] and one [`Checklist`] per data stream,
//! driving the sans-IO core of [`floe::ice`].
//!
//! ```text
//!   application ──SetRemote/AddRemoteCandidate/Start/Send──▶ IceAgent
//!        ▲                                                   │  credentials, role, tie-breaker,
//!        └──────────── IceEvent (Subscribe / events()) ──────┤  gathering plan, priorities,
//!                                                            │  the Ta pacer
//!                                 Slot / AddLocal / SetRole ─▼─▲─ WantsSlot / Gathered / events
//!                                                         Checklist (one per data stream)
//!                                                            │  floe::ice::Checklist: pairs, checks,
//!                                                            │  nomination, selected pair, consent;
//!                                                            │  the stream's sockets
//!                                      host UDP sockets ─────┤
//!                              STUN Bindings on them (srflx) ┤
//!                          TurnClient (one per TURN server) ─┘  relayed candidates
//! ```
//!
//! # How the core is split between the two actors
//!
//! The core's [`floe::ice::IceAgent`] bundles an agent and the checklist of its one
//! stream. The actors take it apart along the line RFC 8445 draws:
//!
//! - **[`IceAgent`]** owns what is per agent: the credentials and tie-breaker
//!   (§5.3, §7.1.3), the role (§6.1.1, updated on a role conflict and relayed to every
//!   checklist), the gathering plan (which interfaces, STUN and TURN servers), the
//!   priorities and foundations of local candidates (§5.1.2, §5.1.1.3, the same
//!   computation as [`floe::ice::IceAgent::add_local_candidate`]), the signalling of
//!   them ([`IceEvent::Candidate`], [`IceEvent::GatheringComplete`]), and the one
//!   [`floe::ice::Pacer`] of §6.1.4.2 / §14.2: a checklist that has a check to start
//!   says so (`WantsSlot`); at each Ta the agent hands the slot to the next such
//!   checklist, round-robin, which starts exactly one check with it (a nomination check
//!   gets its slot at the 5 ms floor instead).
//! - **[`Checklist`]** owns what is per data stream: a [`floe::ice::Checklist`] (pairs,
//!   the frozen algorithm, triggered checks, retransmissions, nomination, consent, the
//!   selected pair), the stream's sockets (a UDP socket per host address, the Binding
//!   transactions to STUN servers on them, one `TurnClient` per TURN server) and
//!   its timers. Datagrams never pass through the agent: a check arrives on a socket of
//!   the checklist and is answered from there.
//!
//! One data stream is the main case; the agent is written for several (a `Vec` of
//! checklists sharing the pacer), but the public API addresses stream 0 only.
//!
//! # Relayed candidates
//!
//! The checklist reaches TURN servers through a small seam, `relay`: it sends
//! `RelayCommand`s (send to a peer, install a permission, bind a channel) and receives
//! `RelayEvent`s (allocated, data from a peer, error). The seam is implemented by
//! `TurnRelay`, a small adapter over the [`TurnClient`](crate::turn::client::TurnClient)
//! actor (UDP or TCP to the server) that holds data for a peer until its permission is
//! installed. A local candidate whose base is a relayed address is just another local
//! socket: a transmit from the core with `source == relayed` goes out through the
//! client's `SendTo(peer)`, and data the client receives from `peer` is fed to the core
//! as `handle_input(from = peer, to = relayed)`. Once the selected pair is a relayed
//! one, the checklist binds a channel to the remote (RFC 8656 §12), and data goes as
//! ChannelData instead of Send and Data indications.
//!
//! # ICE restart
//!
//! [`Restart`] (RFC 8445 §9) gives the agent new local credentials, which it answers
//! to signal, and each checklist a fresh [`floe::ice::Checklist`] with the same local
//! candidates. The old one, if it had selected a pair, is retired: it keeps that pair's
//! consent and carries the data until the new one selects a pair (its `Connected`);
//! checks with the old ufrag and answers to its transactions still reach it. The
//! remote side's new credentials and candidates come with [`SetRemote`] as before.
//!
//! # Events
//!
//! [`IceEvent`] uses the seed's names: `Candidate` (OnICECandidate), `CandidateError`
//! (OnICECandidateError), `GatheringComplete`, `PairNominated`
//! (OnICECandidatePairNominated), `PairFailed` (OnICECandidatePairFailed), `Connected`,
//! `Disconnected`, `Failed`, and `Data` for what arrives, relayed or direct.

mod agent;
mod checklist;
pub mod command;
mod config;
mod gather;
mod io;
mod relay;

use std::net::SocketAddr;

use actix::Message;
use bytes::Bytes;
pub use floe::ice::{Candidate, IceCredentials, IceError, IceRole};

pub use agent::{
    AddRemoteCandidate, Description, EndOfRemoteCandidates, Gather, IceAgent, IceAgentHandle,
    LocalDescription, Restart, SetRemote, Start, Stop,
};
pub use checklist::Checklist;
pub use config::{AgentConfig, GatherConfig, TurnServerConfig, TurnTransport};
pub use gather::host_addresses;

/// Sends application data over the selected pair (RFC 8445 §12.1).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), IceError>")]
pub struct Send(pub Bytes);

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

/// What an [`IceAgent`] and its [`Checklist`]s tell their subscribers, named as the
/// seed names them.
#[derive(Clone, Debug, PartialEq, Eq, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum IceEvent {
    /// OnICECandidate: a local candidate to signal, with its priority and foundation.
    /// Its SDP form is [`Candidate::to_sdp`].
    Candidate(Candidate),
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
    /// Every host, server-reflexive and relayed candidate has been signalled (or has
    /// failed): signal end-of-candidates (RFC 8838 §8.2).
    GatheringComplete,
    /// OnICECandidatePairNominated (RFC 8445 §8.1.1, §7.3.1.5).
    PairNominated {
        /// The local candidate of the valid pair.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// OnICECandidatePairFailed (RFC 8445 §7.2.5.2).
    PairFailed {
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// Data now goes over this pair (RFC 8445 §12.1).
    SelectedPairChanged {
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// A role conflict switched the agent's role (RFC 8445 §7.3.1.1).
    RoleChanged(IceRole),
    /// Every component of the stream has a selected pair (again, after a consent gap).
    Connected,
    /// A consent check went unanswered (RFC 7675); data may still flow.
    Disconnected,
    /// The stream failed: every pair failed, the connect timeout passed, or consent
    /// was lost (RFC 8445 §8.1.2, RFC 7675 §5.1).
    Failed,
    /// Application data that arrived on the selected pair or any valid one, relayed or
    /// direct.
    Data(Bytes),
}

impl IceEvent {
    /// The seed's name of the event (`OnICECandidate`, `OnICECandidatePairNominated` ...).
    pub fn seed_name(&self) -> &'static str {
        match self {
            IceEvent::Candidate(_) => "OnICECandidate",
            IceEvent::CandidateError { .. } => "OnICECandidateError",
            IceEvent::GatheringComplete => "OnICEGatheringComplete",
            IceEvent::PairNominated { .. } => "OnICECandidatePairNominated",
            IceEvent::PairFailed { .. } => "OnICECandidatePairFailed",
            IceEvent::SelectedPairChanged { .. } => "OnICESelectedPairChanged",
            IceEvent::RoleChanged(_) => "OnICERoleChanged",
            IceEvent::Connected => "OnICEConnected",
            IceEvent::Disconnected => "OnICEDisconnected",
            IceEvent::Failed => "OnICEFailed",
            IceEvent::Data(_) => "OnICEData",
        }
    }
}
