//! Short-term and long-term credentials (RFC 8489 §9), USERHASH, the NONCE
//! security-feature cookie, and the OpaqueString profile (RFC 8265 §4.2).
//!
//! OpaqueString coverage: non-ASCII spaces are mapped to U+0020, and empty strings and
//! control characters (Cc) are rejected. Not covered: Unicode NFC normalisation and the
//! full FreeformClass tables (no Unicode database in the core). Input that is already
//! NFC, which includes all ASCII, is handled exactly.

use std::borrow::Cow;

use base64::Engine as _;
use md5::{Digest, Md5};
use sha2::Sha256;

use super::attribute::PasswordAlgorithm;
use super::StunError;

/// RFC 8265 §4.2: prepares a username, realm or password with the OpaqueString profile.
pub fn opaque_string(s: &str) -> Result<Cow<'_, str>, StunError> {
    if s.is_empty() {
        return Err(StunError::OpaqueString("empty"));
    }
    if s.chars().any(char::is_control) {
        return Err(StunError::OpaqueString("control character"));
    }
    if s.is_ascii() {
        return Ok(Cow::Borrowed(s));
    }
    // RFC 8265 §4.2.1 step 1: map non-ASCII space (Zs) to ASCII space.
    let is_non_ascii_space = |c: char| {
        matches!(
            c,
            '\u{00A0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
        )
    };
    if s.chars().any(is_non_ascii_space) {
        Ok(Cow::Owned(
            s.chars()
                .map(|c| if is_non_ascii_space(c) { ' ' } else { c })
                .collect(),
        ))
    } else {
        Ok(Cow::Borrowed(s))
    }
}

/// The key of a MESSAGE-INTEGRITY HMAC: 16 or 32 bytes for long-term credentials, the
/// password for short-term ones.
#[derive(Clone, PartialEq, Eq)]
pub struct IntegrityKey(Vec<u8>);

impl IntegrityKey {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 8489 §9.1.1: the short-term key is OpaqueString(password) (ICE passwords).
    pub fn short_term(password: &str) -> Result<Self, StunError> {
        Ok(IntegrityKey(opaque_string(password)?.as_bytes().to_vec()))
    }

    /// RFC 8489 §9.2.2: the long-term key.
    ///
    /// The username is used as given (it arrives already prepared in USERNAME); realm
    /// and password go through OpaqueString.
    pub fn long_term(
        algorithm: PasswordAlgorithm,
        username: &str,
        realm: &str,
        password: &str,
    ) -> Result<Self, StunError> {
        let realm = opaque_string(realm)?;
        let password = opaque_string(password)?;
        let parts: [&[u8]; 5] = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        Ok(IntegrityKey(match algorithm {
            PasswordAlgorithm::Md5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
            PasswordAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                h.finalize().to_vec()
            }
        }))
    }

    /// Wraps key bytes the application already holds (for example coturn's stored
    /// MD5 keys, or a key derived once and cached).
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Self {
        IntegrityKey(key.into())
    }
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IntegrityKey({} bytes)", self.0.len())
    }
}

/// RFC 8489 §14.4: USERHASH = SHA-256(OpaqueString(username) ":" OpaqueString(realm)).
pub fn userhash(username: &str, realm: &str) -> Result<[u8; 32], StunError> {
    let u = opaque_string(username)?;
    let r = opaque_string(realm)?;
    let mut h = Sha256::new();
    h.update(u.as_bytes());
    h.update(b":");
    h.update(r.as_bytes());
    Ok(h.finalize().into())
}

/// RFC 8489 §9.2: the prefix of a nonce that carries security features.
pub const NONCE_COOKIE: &str = "obMatJos2";

/// RFC 8489 §9.2 and §18.1: the security features a server announces in its nonce.
///
/// Per the RFC 8489 errata (and libjuice, which follows it), bit 0 is the least
/// significant bit of the 24-bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SecurityFeatures {
    /// Bit 0: the server supports PASSWORD-ALGORITHMS.
    pub password_algorithms: bool,
    /// Bit 1: the server supports USERHASH.
    pub username_anonymity: bool,
}

impl SecurityFeatures {
    /// RFC 8489 §9.2: "obMatJos2" followed by the 24-bit feature set in 4 base64 characters.
    pub fn nonce_prefix(self) -> String {
        let bits = u32::from(self.password_algorithms) | u32::from(self.username_anonymity) << 1;
        let mut s = String::with_capacity(13);
        s.push_str(NONCE_COOKIE);
        base64::engine::general_purpose::STANDARD.encode_string(&bits.to_be_bytes()[1..], &mut s);
        s
    }

    /// Reads the features from a nonce; `None` when it has no security-feature cookie.
    pub fn from_nonce(nonce: &str) -> Option<Self> {
        let rest = nonce.strip_prefix(NONCE_COOKIE)?;
        let b64 = rest.get(..4)?;
        let mut out = [0u8; 3];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(b64, &mut out)
            .ok()?;
        if n != 3 {
            return None;
        }
        Some(SecurityFeatures {
            password_algorithms: out[2] & 0x01 != 0,
            username_anonymity: out[2] & 0x02 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_cookie_round_trip() {
        for (pa, ua) in [(false, false), (true, false), (false, true), (true, true)] {
            let f = SecurityFeatures {
                password_algorithms: pa,
                username_anonymity: ua,
            };
            let nonce = format!("{}abcdef", f.nonce_prefix());
            assert_eq!(SecurityFeatures::from_nonce(&nonce), Some(f));
        }
        assert_eq!(
            SecurityFeatures::from_nonce("f//499k954d6OL34oL9FSTvy64sA"),
            None
        );
        // RFC 8489 B.1 nonce "obMatJos2AAAC...": 0x000002, username anonymity.
        let f = SecurityFeatures::from_nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA").unwrap();
        assert!(!f.password_algorithms && f.username_anonymity);
    }

    #[test]
    fn opaque_string_rules() {
        assert_eq!(
            opaque_string("The\u{00A0}Password").unwrap(),
            "The Password"
        );
        assert!(opaque_string("").is_err());
        assert!(opaque_string("a\u{0007}b").is_err());
        assert!(matches!(opaque_string("mañana").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn long_term_md5_key_matches_rfc5769() {
        // RFC 5769 §2.4: username "マトリックス" realm "example.org" password "TheMatrIX".
        let key = IntegrityKey::long_term(
            PasswordAlgorithm::Md5,
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        )
        .unwrap();
        assert_eq!(key.as_bytes().len(), 16);
    }
}
