//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT computations.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::StunError;

/// RFC 8489 §14.7: the value FINGERPRINT's CRC-32 is XORed with ("STUN").
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// RFC 8489 §14.7: CRC-32 of `msg` (header and attributes before FINGERPRINT, with
/// the header length already covering FINGERPRINT) XOR 0x5354554E.
pub fn fingerprint(msg: &[u8]) -> u32 {
    crc32fast::hash(msg) ^ FINGERPRINT_XOR
}

/// Feeds the message prefix to a MAC with the header length replaced by `len`
/// (RFC 8489 §14.5: the length counts up to the end of the integrity attribute).
fn feed<M: Mac>(mac: &mut M, prefix: &[u8], len: u16) {
    mac.update(&prefix[..2]);
    mac.update(&len.to_be_bytes());
    mac.update(&prefix[4..]);
}

/// RFC 8489 §14.5: HMAC-SHA1 over `prefix` (the message before MESSAGE-INTEGRITY)
/// with its length field set to `len`.
pub fn hmac_sha1(key: &[u8], prefix: &[u8], len: u16) -> [u8; 20] {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    feed(&mut mac, prefix, len);
    mac.finalize().into_bytes().into()
}

/// RFC 8489 §14.6: HMAC-SHA256 over `prefix` (the message before
/// MESSAGE-INTEGRITY-SHA256) with its length field set to `len`.
pub fn hmac_sha256(key: &[u8], prefix: &[u8], len: u16) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    feed(&mut mac, prefix, len);
    mac.finalize().into_bytes().into()
}

/// Compares a computed MAC with the received one in constant time.
pub fn ct_eq(computed: &[u8], received: &[u8]) -> Result<(), StunError> {
    if computed.len() == received.len() && bool::from(computed.ct_eq(received)) {
        Ok(())
    } else {
        Err(StunError::IntegrityMismatch)
    }
}
