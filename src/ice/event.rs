//! What the ICE core tells its driver.

use super::candidate::Candidate;
use super::config::IceRole;

/// An event of an [`Agent`](super::Agent) or a [`Checklist`](super::Checklist),
/// named as the seed names them (`PairNominated`, `PairFailed`, `Connected`,
/// `Failed` ...). Local candidates are not events: `add_local_candidate` returns the
/// candidate to signal. Application data is returned by `handle_input`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceEvent {
    /// RFC 8445 §7.2.5.3.1 (local) and §7.3.1.3 (remote): a peer-reflexive candidate
    /// was learnt from a check or its response. Local ones are not signalled.
    PeerReflexive {
        /// The new candidate.
        candidate: Candidate,
        /// Whether it is a local candidate (else remote).
        local: bool,
    },
    /// RFC 8445 §7.2.5.3.4 / §7.3.1.5: a pair was nominated (`OnICECandidatePairNominated`).
    /// `local` is the local candidate of the valid pair (RFC 8445 §7.2.5.3.2).
    PairNominated {
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// RFC 8445 §7.2.5.2: a pair's check timed out or got a non-recoverable error
    /// (`OnICECandidatePairFailed`).
    PairFailed {
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// RFC 8445 §12.1: data now goes over this pair (the first nominated pair, a
    /// higher-priority one the controlling agent nominated too, or the new pair after
    /// an ICE restart).
    SelectedPairChanged {
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// RFC 8445 §7.3.1.1 / §7.2.5.1: a role conflict switched this agent's role.
    RoleChanged(IceRole),
    /// RFC 8445 §8.1.2: every component has a selected pair (and again after
    /// consent came back, RFC 7675).
    Connected,
    /// RFC 7675: a consent check on the selected pair got no response.
    Disconnected,
    /// RFC 7675 §5.1: no authenticated response for 30 s: the agent stops sending on
    /// this pair. `Failed` follows.
    ConsentLost {
        /// The local candidate.
        local: Candidate,
        /// The remote candidate.
        remote: Candidate,
    },
    /// RFC 8445 §8.1.2: every pair failed after end-of-candidates, the connect timeout
    /// passed, or consent was lost.
    Failed,
}

impl IceEvent {
    /// The seed's name of the event (`OnICECandidatePairNominated`, `OnICEConnected` ...).
    pub fn seed_name(&self) -> &'static str {
        match self {
            IceEvent::PeerReflexive { .. } => "OnICEPeerReflexiveCandidate",
            IceEvent::PairNominated { .. } => "OnICECandidatePairNominated",
            IceEvent::PairFailed { .. } => "OnICECandidatePairFailed",
            IceEvent::SelectedPairChanged { .. } => "OnICESelectedPairChanged",
            IceEvent::RoleChanged(_) => "OnICERoleChanged",
            IceEvent::Connected => "OnICEConnected",
            IceEvent::Disconnected => "OnICEDisconnected",
            IceEvent::ConsentLost { .. } => "OnICEConsentLost",
            IceEvent::Failed => "OnICEFailed",
        }
    }
}

/// The overall state of an agent, as its events leave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceConnectionState {
    /// Not started.
    New,
    /// Checks are running; nothing selected yet.
    Checking,
    /// Every component has a selected pair with consent.
    Connected,
    /// A consent check went unanswered; consent is not lost yet.
    Disconnected,
    /// See [`IceEvent::Failed`].
    Failed,
}

/// RFC 8445 §6.1.2.1: the state of a checklist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecklistState {
    /// Not started (candidates and early checks are accepted).
    New,
    /// Checks are running.
    Running,
    /// Every component has a nominated pair (RFC 8445 §8.1.2).
    Completed,
    /// No pair can succeed any more, or consent was lost.
    Failed,
}
