//! ICE (RFC 8445) as a sans-IO core: candidates and their SDP lines (RFC 8839),
//! checklists with pacing, triggered checks, nomination and role conflicts, consent
//! freshness (RFC 7675), trickle ICE (RFC 8838), ICE restart, ice-lite,
//! renomination (draft-thatcher-ice-renomination-01) with the removal of local
//! candidates whose address went away (continual gathering), and ICE-TCP (RFC 6544: TCP
//! host candidates, connections asked of the driver with [`Agent::poll_tcp_connect`],
//! RFC 4571 framing by the driver).
//!
//! [`Agent`] owns the role and tie-breaker, computes candidate priorities and
//! foundations, and drives one [`Checklist`] per data stream (each stream with its own
//! credentials and components), paced by one [`Pacer`] with the frozen algorithm across
//! the checklists (RFC 8445 §6.1.2.6). Like every floe core it reads no clock and opens
//! no socket:
//!
//! ```text
//! agent.handle_input(now, from, to, datagram)  // -> Some(app data) for non-STUN
//! agent.handle_timeout(now);
//! while let Some(t) = agent.poll_transmit() { /* send t.payload from t.source */ }
//! while let Some(e) = agent.poll_event()    { /* PairNominated, Connected ... */ }
//! let next = agent.poll_timeout();
//! ```
//!
//! Interoperability notes (aioice 0.13): aioice's controlling agent nominates
//! aggressively (USE-CANDIDATE on every check, RFC 5245 style); floe's controlled side
//! handles that (RFC 8445 §7.3.1.5), selecting the highest-priority nominated pair.
//! floe's controlling side uses regular nomination, which aioice's controlled side
//! accepts. aioice's 4-character ufrags and 22-character passwords are accepted.
//! libnice 0.1.21 (RFC 5245 mode, trickle) pairs with floe in both roles, on one or two
//! components, and either side may restart ICE (`nice_agent_restart_stream`): the other
//! answers with new credentials. aioice 0.13 cannot restart.

mod agent;
mod candidate;
mod check;
mod checklist;
mod config;
mod consent;
mod credentials;
mod error;
mod event;
pub mod mux;
mod pacer;
mod pair;
mod stream;
mod tcp;

pub use agent::{Agent, Received};
pub use candidate::{
    candidate_foundation, candidate_priority, is_valid_foundation, Candidate, CandidateKind,
    CandidateTransport, TcpType,
};
pub use checklist::Checklist;
pub use config::{IceConfig, IceRole, Nomination, DEFAULT_TA, MIN_TA};
pub use credentials::{is_ice_char, IceCredentials, PWD_LEN, UFRAG_LEN};
pub use error::IceError;
pub use event::{ChecklistState, IceConnectionState, IceEvent};
pub use pacer::Pacer;
pub use pair::{pair_priority, CandidatePair, PairId, PairState};
pub use tcp::{
    counterpart, direction_preference, tcp_local_preference, TcpConnect, ACTIVE_PORT,
    TCP_CHECK_TIMEOUT,
};

#[cfg(test)]
mod tests;
