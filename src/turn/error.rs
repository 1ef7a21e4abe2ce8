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
}
