//! ICE credentials: the username fragment and password of RFC 8445 §5.3 and RFC 8839 §5.4.

use std::fmt;

use rand::{Rng, RngCore};

use super::IceError;
use crate::stun::IntegrityKey;

/// RFC 8839 §5.4: `ice-char = ALPHA / DIGIT / "+" / "/"`.
pub fn is_ice_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/'
}

const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Length of a generated ufrag: 8 ice-chars, 48 bits (RFC 8445 §5.3 asks at least 24).
pub const UFRAG_LEN: usize = 8;
/// Length of a generated password: 24 ice-chars, 144 bits (RFC 8445 §5.3 asks at least 128).
pub const PWD_LEN: usize = 24;

fn random_ice_string<R: RngCore + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ICE_CHARS[rng.gen_range(0..ICE_CHARS.len())]))
        .collect()
}

/// One side's ICE username fragment and password (RFC 8445 §5.3).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IceCredentials {
    /// ice-ufrag: the left (remote) or right (local) half of a check's USERNAME.
    pub ufrag: String,
    /// ice-pwd: the short-term key of MESSAGE-INTEGRITY (RFC 8489 §9.1).
    pub pwd: String,
}

impl IceCredentials {
    /// Fresh credentials from a CSPRNG: 8 and 24 ice-chars, 48 and 144 bits of entropy
    /// (RFC 8445 §5.3: at least 24 and 128 bits).
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        IceCredentials {
            ufrag: random_ice_string(rng, UFRAG_LEN),
            pwd: random_ice_string(rng, PWD_LEN),
        }
    }

    /// Credentials checked against RFC 8839 §5.4: a ufrag of 4..=256 ice-chars and a
    /// password of 22..=256.
    pub fn new(ufrag: impl Into<String>, pwd: impl Into<String>) -> Result<Self, IceError> {
        let (ufrag, pwd) = (ufrag.into(), pwd.into());
        if !(4..=256).contains(&ufrag.len()) || !ufrag.chars().all(is_ice_char) {
            return Err(IceError::InvalidCredentials(
                "ufrag must be 4..=256 ice-chars",
            ));
        }
        if !(22..=256).contains(&pwd.len()) || !pwd.chars().all(is_ice_char) {
            return Err(IceError::InvalidCredentials(
                "pwd must be 22..=256 ice-chars",
            ));
        }
        Ok(IceCredentials { ufrag, pwd })
    }

    /// RFC 8445 §7.2.2 / RFC 8489 §9.1.1: the short-term key, the password itself.
    pub fn key(&self) -> IntegrityKey {
        IntegrityKey::short_term(&self.pwd)
            .unwrap_or_else(|_| IntegrityKey::from_bytes(self.pwd.as_bytes()))
    }
}

impl fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"<redacted>")
            .finish()
    }
}
