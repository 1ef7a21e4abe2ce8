//! STUN (RFC 8489): message codec, typed attributes, integrity, fingerprint,
//! credentials and client transactions.

use std::fmt;

/// RFC 8489 §5: the fixed magic cookie in every STUN header.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// RFC 8489 §5: size of the STUN message header in bytes.
pub const HEADER_LEN: usize = 20;

/// RFC 8489 §5: the 96-bit transaction id that matches responses to requests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// A fresh transaction id from the given random source (RFC 8489 §5: uniformly random).
    pub fn random<R: rand::RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; 12];
        rng.fill_bytes(&mut id);
        TransactionId(id)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

pub mod attribute;
pub mod credentials;
mod error;
pub mod integrity;
mod message;
pub mod transaction;

pub use attribute::{Attribute, AttributeCodec, AttributeType, PasswordAlgorithm};
pub use credentials::IntegrityKey;
pub use error::StunError;
pub use message::{peek_header, Class, Message, MessageEncoder, MessageType, Method};

#[cfg(test)]
mod tests;
