//! The agent's configuration and role.

use std::time::Duration;

use crate::stun::transaction::TransactionConfig;

/// RFC 8445 §14.2: the smallest Ta an agent may pace checks with, across all checklists.
pub const MIN_TA: Duration = Duration::from_millis(5);

/// RFC 8445 §14.2: the default Ta (50 ms, as for RTP media).
pub const DEFAULT_TA: Duration = Duration::from_millis(50);

/// RFC 8445 §6.1.1: which agent nominates pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceRole {
    /// Nominates pairs (USE-CANDIDATE); sends ICE-CONTROLLING in checks.
    Controlling,
    /// Follows the controlling agent's nominations; sends ICE-CONTROLLED.
    Controlled,
}

impl IceRole {
    /// The other role (RFC 8445 §7.3.1.1: the switch a role conflict makes).
    pub fn opposite(self) -> Self {
        match self {
            IceRole::Controlling => IceRole::Controlled,
            IceRole::Controlled => IceRole::Controlling,
        }
    }
}

/// How the controlling agent nominates (RFC 8445 §8.1.1; RFC 5245 §8.1.1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Nomination {
    /// RFC 8445 §8.1.1: once a pair has succeeded, check it again with USE-CANDIDATE.
    #[default]
    Regular,
    /// RFC 5245 §8.1.1.2 (libnice's default, removed from RFC 8445): USE-CANDIDATE on
    /// every check; the first pair to succeed is selected, and a higher-priority pair
    /// that succeeds later replaces it. Saves one round trip and the nomination slot,
    /// at the cost of the selected pair changing while checks finish. A controlled
    /// agent of either kind follows USE-CANDIDATE whenever it arrives; when the
    /// responses on a pair are lost but the requests are not, the controlled agent may
    /// select a pair the controlling one saw fail, lose what it sends on it, and
    /// finally lose consent (RFC 5245's known weakness, which regular nomination has
    /// not).
    Aggressive,
}

/// Timers and limits of an ICE agent (RFC 8445 §14, RFC 7675 §5.1).
///
/// ```
/// use std::time::Duration;
/// use floe::ice::{IceConfig, IceRole};
/// let mut config = IceConfig::new(IceRole::Controlling);
/// config.ta = Duration::from_millis(20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IceConfig {
    /// The role the agent starts in (RFC 8445 §6.1.1); a role conflict may change it.
    pub role: IceRole,
    /// RFC 8445 §14.2: one new check per Ta across all checklists (50 ms). Values
    /// below [`MIN_TA`] (5 ms) are raised to it.
    pub ta: Duration,
    /// RFC 8445 §2.5: this agent is a lite implementation: it gathers host candidates
    /// only, sends no checks and answers the full peer's (which then controls).
    pub lite: bool,
    /// RFC 8445 §6.1.2.5: the most candidate pairs a checklist keeps (100); the
    /// lowest-priority Frozen and Waiting pairs are dropped beyond it.
    pub max_pairs: usize,
    /// Retransmissions of a connectivity check (RFC 8445 §14.3). `rto` is the floor
    /// (500 ms); a check's RTO is `max(rto, Ta * (Waiting + In-Progress pairs))`.
    /// floe sends a check `rc` = 5 times (at 0, 0.5, 1.5, 3.5 and 7.5 s) and fails the
    /// pair `rm` = 8 RTOs after the last send: 11.5 s after the first, instead of the
    /// 39.5 s of RFC 8489's Rc = 7 and Rm = 16, which would hold a dead pair up too long.
    pub check_transaction: TransactionConfig,
    /// RFC 8445 §8.1.1: once a pair has succeeded, how long the controlling agent waits
    /// for higher-priority pairs still being checked before it nominates the best valid
    /// pair (it nominates at once when no higher-priority pair is pending).
    pub nomination_delay: Duration,
    /// Regular (RFC 8445, the default) or aggressive (RFC 5245) nomination.
    pub nomination: Nomination,
    /// RFC 7675 §5.1: a consent check on each selected pair about every 5 s, randomised
    /// by a factor of 0.8..1.2. `None` turns consent freshness off (lite agents send no
    /// consent checks whatever this says).
    pub consent_interval: Option<Duration>,
    /// RFC 7675 §5.1: consent is lost after 30 s without an authenticated response.
    pub consent_timeout: Duration,
    /// RFC 8445 §11: a Binding indication on a selected pair on which nothing was sent
    /// for this long (15 s). Consent checks already count as traffic.
    pub keepalive_interval: Duration,
    /// RFC 8445 §8.1.2 and RFC 8838 §8: the checklist fails if no pair is selected this
    /// long after it started (30 s), even without end-of-candidates.
    pub connect_timeout: Duration,
    /// draft-thatcher-ice-renomination-01: offer the `renomination` ice-option (off by
    /// default). Negotiated when the peer offers it too
    /// ([`Agent::set_remote_renomination`](super::Agent::set_remote_renomination)): the
    /// controlling agent then nominates with NOMINATION values instead of USE-CANDIDATE
    /// and may nominate again; the controlled agent selects the pair of the highest
    /// value. Without the peer's option, nomination is RFC 8445's. Once negotiated,
    /// [`Nomination::Aggressive`] is not used (NOMINATION replaces USE-CANDIDATE).
    pub renomination: bool,
}

impl IceConfig {
    /// The defaults, with the given starting role.
    pub fn new(role: IceRole) -> Self {
        IceConfig {
            role,
            ta: DEFAULT_TA,
            lite: false,
            max_pairs: 100,
            check_transaction: TransactionConfig {
                rto: Duration::from_millis(500),
                rc: 5,
                rm: 8,
                reliable_timeout: Duration::from_millis(11_500),
            },
            nomination_delay: Duration::from_millis(200),
            nomination: Nomination::Regular,
            consent_interval: Some(Duration::from_secs(5)),
            consent_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(30),
            renomination: false,
        }
    }

    /// A lite agent (RFC 8445 §2.5): always controlled, answers checks, sends none.
    pub fn lite() -> Self {
        IceConfig {
            lite: true,
            ..IceConfig::new(IceRole::Controlled)
        }
    }

    /// Ta, raised to the 5 ms floor of RFC 8445 §14.2.
    pub fn effective_ta(&self) -> Duration {
        self.ta.max(MIN_TA)
    }
}

impl Default for IceConfig {
    /// Controlling, with the defaults above.
    fn default() -> Self {
        IceConfig::new(IceRole::Controlling)
    }
}
