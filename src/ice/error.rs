//! Errors of the ICE layer.

use thiserror::Error;

use crate::stun::{AttributeType, StunError};

/// Everything that can go wrong in the ICE core: bad candidate lines, checks the agent
/// refuses, and data the agent cannot send.
///
/// Bad input from the network is always one of these values, never a panic. The check
/// errors map to the STUN error code the agent answers with ([`IceError::error_code`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IceError {
    /// RFC 8839 §5.1: a candidate attribute that does not follow the grammar.
    #[error("invalid candidate: {0}")]
    InvalidCandidate(String),
    /// RFC 8839 §5.1: the connection address is a host name (for example an mDNS
    /// `.local` name); resolve it and build the candidate with an IP address.
    #[error("candidate address {0:?} is a host name, not an IP address")]
    HostnameCandidate(String),
    /// RFC 8839 §5.4: an ice-ufrag or ice-pwd outside the grammar (4..=256 and
    /// 22..=256 ice-chars).
    #[error("invalid ICE credentials: {0}")]
    InvalidCredentials(&'static str),
    /// RFC 8445 §7.3 / RFC 8489 §6.3.1: a malformed check (answered with 400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// RFC 8445 §7.3 / RFC 8489 §9.1.3: wrong USERNAME or MESSAGE-INTEGRITY
    /// (answered with 401).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// RFC 8489 §6.3.1: comprehension-required attributes the agent does not know
    /// (answered with 420).
    #[error("unknown comprehension-required attributes {0:?}")]
    UnknownAttributes(Vec<AttributeType>),
    /// RFC 8445 §7.3.1.1: both agents claim the same role and this one keeps it
    /// (answered with 487).
    #[error("role conflict")]
    RoleConflict,
    /// There is no selected pair to send on yet (RFC 8445 §12.1).
    #[error("not connected: no selected candidate pair")]
    NotConnected,
    /// RFC 7675 §5.1: consent expired; the agent must stop sending.
    #[error("consent to send expired")]
    ConsentLost,
    /// draft-thatcher-ice-renomination-01: the pair cannot be nominated again (not
    /// negotiated, not the controlling agent, or no such valid pair).
    #[error("cannot renominate: {0}")]
    CannotRenominate(&'static str),
    /// A STUN encoding or decoding error.
    #[error(transparent)]
    Stun(#[from] StunError),
}

impl IceError {
    /// The STUN error code a Binding request that fails this way is answered with
    /// (RFC 8489 §14.8, RFC 8445 §7.3): 400, 401, 420 or 487; `None` for errors that
    /// are not about a received check.
    pub fn error_code(&self) -> Option<u16> {
        match self {
            IceError::BadRequest(_) => Some(400),
            IceError::Unauthorized(_) => Some(401),
            IceError::UnknownAttributes(_) => Some(420),
            IceError::RoleConflict => Some(487),
            IceError::Stun(e) => Some(e.error_code()),
            _ => None,
        }
    }
}
