//! Errors of the STUN layer.

use thiserror::Error;

/// Everything that can go wrong decoding, verifying or encoding a STUN message.
///
/// Bad input from the network is always one of these values, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StunError {
    /// Fewer bytes than the 20-byte header, or than the header's declared length.
    #[error("truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// bytes the message needs
        needed: usize,
        /// bytes that arrived
        available: usize,
    },
    /// RFC 8489 §5: the two most significant bits of a STUN message are zero.
    #[error("not a STUN message (first byte {0:#04x})")]
    NotStun(u8),
    /// RFC 8489 §5: the magic cookie is not 0x2112A442.
    #[error("bad magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    /// RFC 8489 §5: the message length is always a multiple of 4.
    #[error("message length {0} is not a multiple of 4")]
    UnalignedLength(u16),
    /// The datagram holds more bytes than the header declares.
    #[error("declared length {declared} but {available} bytes follow the header")]
    LengthMismatch {
        /// length from the header
        declared: usize,
        /// bytes after the header
        available: usize,
    },
    /// RFC 8489 §14: an attribute (with its padding) runs past the end of the message.
    #[error("attribute {typ:#06x} of length {len} overruns the message")]
    AttributeOverrun {
        /// attribute type
        typ: u16,
        /// declared value length
        len: usize,
    },
    /// An attribute value that does not have the form its RFC gives it.
    #[error("invalid {typ:#06x} attribute: {reason}")]
    InvalidAttribute {
        /// attribute type
        typ: u16,
        /// what is wrong with it
        reason: &'static str,
    },
    /// RFC 8489 §14.7: FINGERPRINT does not match the CRC-32 of the message.
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    /// RFC 8489 §14.7: FINGERPRINT must be the last attribute.
    #[error("FINGERPRINT is not the last attribute")]
    FingerprintNotLast,
    /// The message carries no MESSAGE-INTEGRITY of the kind asked for.
    #[error("no MESSAGE-INTEGRITY attribute")]
    MissingIntegrity,
    /// RFC 8489 §14.5/§14.6: the HMAC does not match the key.
    #[error("MESSAGE-INTEGRITY does not match")]
    IntegrityMismatch,
    /// A value that cannot be encoded (too long, out of range).
    #[error("cannot encode: {0}")]
    Encode(&'static str),
    /// RFC 8265 OpaqueString: a username or password the profile rejects.
    #[error("string rejected by the OpaqueString profile: {0}")]
    OpaqueString(&'static str),
}

impl StunError {
    /// The STUN error code a server answers this error with (RFC 8489 §14.8):
    /// 401 when integrity fails, 400 for everything malformed.
    pub fn error_code(&self) -> u16 {
        match self {
            StunError::IntegrityMismatch | StunError::MissingIntegrity => 401,
            _ => 400,
        }
    }
}
