//! The TURN layer's error type (RFC 8656).

use thiserror::Error;

/// RFC 8656: why TURN input was rejected. Bad network input is a value, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TurnError {
    /// RFC 8656 §12.4: shorter than the 4-byte ChannelData header.
    #[error("ChannelData truncated: {available} bytes, the header needs 4")]
    Truncated {
        /// Bytes that were available.
        available: usize,
    },
    /// RFC 8656 §12: a channel number outside 0x4000..=0x4FFF.
    #[error("invalid channel number {0:#06x}, RFC 8656 allows 0x4000..=0x4fff")]
    InvalidChannelNumber(u16),
    /// RFC 8656 §12.6: the Length field claims more data than arrived.
    #[error("ChannelData length {declared} exceeds the {available} bytes after the header")]
    LengthOverrun {
        /// The Length field.
        declared: u16,
        /// Bytes after the header.
        available: usize,
    },
    /// RFC 8656 §12.5: more bytes after the data than the at most 3 bytes of padding.
    #[error(
        "ChannelData carries {extra} bytes after its {declared}-byte data, padding is at most 3"
    )]
    TrailingBytes {
        /// The Length field.
        declared: u16,
        /// Bytes after the data.
        extra: usize,
    },
    /// RFC 8656 §12.4: data longer than the 16-bit Length field can express.
    #[error("ChannelData payload of {0} bytes exceeds 65535")]
    PayloadTooLong(usize),
    /// RFC 8489 §10: the client should try the server in ALTERNATE-SERVER instead (300).
    #[error("try the alternate server")]
    TryAlternate,
    /// RFC 8489 §6.3.1: a request is malformed or breaks a rule of its method (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// RFC 8489 §9.2.4: missing or wrong credentials (401).
    #[error("unauthorized")]
    Unauthorized,
    /// RFC 8656 §9.1, §21.3: the peer address is not allowed (403).
    #[error("forbidden peer address")]
    Forbidden,
    /// RFC 8489 §6.3.1: comprehension-required attributes the server does not know (420).
    #[error("unknown comprehension-required attributes {0:04x?}")]
    UnknownAttributes(Vec<u16>),
    /// RFC 8656 §7.2: the 5-tuple already has another allocation, or has none (437).
    #[error("allocation mismatch")]
    AllocationMismatch,
    /// RFC 8489 §9.2.4: the nonce expired or was not issued to this client (438).
    #[error("stale nonce")]
    StaleNonce,
    /// RFC 8656 §7.2: no relay of the requested address family (440).
    #[error("address family not supported")]
    AddressFamilyNotSupported,
    /// RFC 8656 §7.3: the request is signed by another user than the allocation's (441).
    #[error("wrong credentials for this allocation")]
    WrongCredentials,
    /// RFC 8656 §7.2: REQUESTED-TRANSPORT is not UDP (442).
    #[error("unsupported transport protocol")]
    UnsupportedTransport,
    /// RFC 8656 §9.1: the peer's family differs from the relayed address's (443).
    #[error("peer address family mismatch")]
    PeerAddressFamilyMismatch,
    /// RFC 8656 §7.2: a quota of allocations, permissions or channels is reached (486).
    #[error("allocation quota reached")]
    QuotaReached,
    /// RFC 8656 §7.2: no relay port is free, or the reservation token is unknown (508).
    #[error("insufficient capacity")]
    InsufficientCapacity,
}

impl TurnError {
    /// The STUN error code a server answers this error with.
    pub fn error_code(&self) -> u16 {
        match self {
            TurnError::TryAlternate => 300,
            TurnError::Unauthorized => 401,
            TurnError::Forbidden => 403,
            TurnError::UnknownAttributes(_) => 420,
            TurnError::AllocationMismatch => 437,
            TurnError::StaleNonce => 438,
            TurnError::AddressFamilyNotSupported => 440,
            TurnError::WrongCredentials => 441,
            TurnError::UnsupportedTransport => 442,
            TurnError::PeerAddressFamilyMismatch => 443,
            TurnError::QuotaReached => 486,
            TurnError::InsufficientCapacity => 508,
            _ => 400,
        }
    }
}
