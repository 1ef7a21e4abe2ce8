//! Candidate pairs (RFC 8445 §6.1.2): priority, states and the pair itself.

use std::fmt;
use std::net::SocketAddr;

use super::candidate::CandidateTransport;

/// RFC 8445 §6.1.2.6: the state of a candidate pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PairState {
    /// Not checked yet, and waiting for a pair of the same foundation to succeed.
    Frozen,
    /// Will be checked when it comes first.
    Waiting,
    /// A check is outstanding.
    InProgress,
    /// A check produced a valid pair.
    Succeeded,
    /// The check timed out or got a non-recoverable error.
    Failed,
}

/// RFC 8445 §6.1.2.3: pair priority from the controlling agent's candidate priority `g`
/// and the controlled agent's `d`: `2^32 * min(G,D) + 2 * max(G,D) + (G > D ? 1 : 0)`.
pub fn pair_priority(g: u32, d: u32) -> u64 {
    let (g, d) = (u64::from(g), u64::from(d));
    (1 << 32) * g.min(d) + 2 * g.max(d) + u64::from(g > d)
}

/// A stable name for a pair within its checklist.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairId(pub(crate) u32);

impl fmt::Debug for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pair#{}", self.0)
    }
}

/// A local and a remote candidate, and the state of checking them (RFC 8445 §6.1.2).
///
/// The local side is the base the checks leave from (RFC 8445 §6.1.2.4: a reflexive
/// local candidate is replaced by its base), so a pair is named by
/// (`local_addr`, `remote_addr`), unique in its checklist after pruning.
#[derive(Clone, Debug)]
pub struct CandidatePair {
    pub(crate) id: PairId,
    /// Index of the local candidate in the checklist.
    pub(crate) local: usize,
    /// Index of the remote candidate in the checklist.
    pub(crate) remote: usize,
    pub(crate) local_base: SocketAddr,
    pub(crate) remote_addr: SocketAddr,
    pub(crate) component: u16,
    pub(crate) transport: CandidateTransport,
    /// RFC 8445 §6.1.2.6: the local foundation and the remote one.
    pub(crate) foundation: (String, String),
    pub(crate) priority: u64,
    pub(crate) state: PairState,
    /// RFC 8445 §7.2.5.3.2: the local candidate of the valid pair this pair's check
    /// produced (the candidate matching XOR-MAPPED-ADDRESS, maybe peer-reflexive).
    pub(crate) valid_local: Option<usize>,
    /// RFC 8445 §8.1.1: nominated.
    pub(crate) nominated: bool,
    /// Controlling: a check with USE-CANDIDATE is queued or outstanding.
    pub(crate) nominating: bool,
    /// Controlled: a check with USE-CANDIDATE arrived before this pair succeeded
    /// (RFC 8445 §7.3.1.5), so it is nominated when its own check succeeds.
    pub(crate) remote_nominated: bool,
    /// draft-thatcher-ice-renomination-01: controlling, the NOMINATION value of the
    /// pending nomination check; controlled, a NOMINATION that arrived before this pair
    /// succeeded.
    pub(crate) nomination: Option<u32>,
}

impl CandidatePair {
    /// The pair's id.
    pub fn id(&self) -> PairId {
        self.id
    }

    /// The local base address checks and data leave from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_base
    }

    /// The remote candidate's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The component.
    pub fn component(&self) -> u16 {
        self.component
    }

    /// RFC 8445 §6.1.2.3: the pair priority in the agent's current role.
    pub fn priority(&self) -> u64 {
        self.priority
    }

    /// The state.
    pub fn state(&self) -> PairState {
        self.state
    }

    /// RFC 8445 §8.1.1: whether the pair has been nominated.
    pub fn is_nominated(&self) -> bool {
        self.nominated
    }

    /// RFC 8445 §6.1.2.6: the pair foundation, local and remote.
    pub fn foundation(&self) -> (&str, &str) {
        (&self.foundation.0, &self.foundation.1)
    }
}
