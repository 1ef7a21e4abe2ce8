//! RFC 8489 §14: the attributes of STUN itself: addresses, credentials, integrity,
//! errors, and the password algorithms of the long-term mechanism.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::stun::{StunError, TransactionId};

address_attribute!(
    /// RFC 8489 §14.1: the reflexive address in the clear, for RFC 3489 clients.
    MappedAddress = 0x0001, xor = false
);
address_attribute!(
    /// RFC 8489 §14.2: the reflexive transport address, XORed with the cookie and transaction id.
    XorMappedAddress = 0x0020, xor = true
);
address_attribute!(
    /// RFC 8489 §14.15: a server the client should try instead (with 300).
    AlternateServer = 0x8023, xor = false
);
text_attribute!(
    /// RFC 8489 §14.3: the username (OpaqueString), fewer than 509 bytes (513 allowed for RFC 5389).
    Username = 0x0006, max = 513
);
text_attribute!(
    /// RFC 8489 §14.9: the long-term credential realm.
    Realm = 0x0014, max = 763
);
text_attribute!(
    /// RFC 8489 §14.10: the server's nonce.
    Nonce = 0x0015, max = 763
);
text_attribute!(
    /// RFC 8489 §14.14: the agent's software description.
    Software = 0x8022, max = 763
);
text_attribute!(
    /// RFC 8489 §14.16: the domain name of the ALTERNATE-SERVER, for TLS.
    AlternateDomain = 0x8003, max = 255
);

/// RFC 8489 §14.4: SHA-256 of the username and realm, sent instead of USERNAME.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Userhash(pub [u8; 32]);

impl AttributeCodec for Userhash {
    const TYPE: AttributeType = AttributeType(0x001E);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        exact::<32>(Self::TYPE, value).map(Userhash)
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_slice(&self.0)
    }
}

/// RFC 8489 §14.5: HMAC-SHA1 of the message (20 bytes). Written by
/// [`MessageEncoder::message_integrity`](crate::stun::MessageEncoder::message_integrity),
/// checked by [`Message::verify_integrity`](crate::stun::Message::verify_integrity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageIntegrity(pub [u8; 20]);

impl AttributeCodec for MessageIntegrity {
    const TYPE: AttributeType = AttributeType(0x0008);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        exact::<20>(Self::TYPE, value).map(MessageIntegrity)
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_slice(&self.0)
    }
}

/// RFC 8489 §14.6: HMAC-SHA256 of the message, possibly truncated to 16..=32 bytes
/// in steps of 4.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageIntegritySha256(pub Bytes);

impl AttributeCodec for MessageIntegritySha256 {
    const TYPE: AttributeType = AttributeType(0x001C);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        if !(16..=32).contains(&value.len()) || value.len() % 4 != 0 {
            return Err(invalid(
                Self::TYPE,
                "length must be 16..=32 and a multiple of 4",
            ));
        }
        Ok(MessageIntegritySha256(value.clone()))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_slice(&self.0)
    }
}

u32_attribute!(
    /// RFC 8489 §14.7: CRC-32 of the message XOR 0x5354554E. Written by
    /// [`MessageEncoder::fingerprint`](crate::stun::MessageEncoder::fingerprint) and checked on decode.
    Fingerprint = 0x8028
);

/// RFC 8489 §14.8: an error code (300..=699) and a reason phrase.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// The code, 300 to 699.
    pub code: u16,
    /// The reason phrase.
    pub reason: Text,
}

impl ErrorCode {
    /// An error code with its RFC reason phrase.
    pub fn new(code: u16) -> Self {
        ErrorCode {
            code,
            reason: Text::from_static(reason_phrase(code)),
        }
    }
}

/// The reason phrase RFC 8489 §14.8, RFC 8656 §18 and RFC 8445 §7.3 give a code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        405 => "Mobility Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        486 => "Allocation Quota Reached",
        487 => "Role Conflict",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "Error",
    }
}

pub(crate) fn decode_error_code(
    typ: AttributeType,
    v: &Bytes,
    reason_max: usize,
) -> Result<(u16, Text), StunError> {
    if v.len() < 4 {
        return Err(invalid(typ, "shorter than 4 bytes"));
    }
    let class = u16::from(v[2] & 0x07);
    let number = u16::from(v[3]);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(invalid(typ, "code out of range"));
    }
    let reason = Text::decode(typ, &v.slice(4..), reason_max)?;
    Ok((class * 100 + number, reason))
}

pub(crate) fn encode_error_code(code: u16, reason: &Text, out: &mut BytesMut) {
    out.put_u16(0);
    out.put_u8((code / 100) as u8 & 0x07);
    out.put_u8((code % 100) as u8);
    out.put_slice(reason.as_bytes());
}

impl AttributeCodec for ErrorCode {
    const TYPE: AttributeType = AttributeType(0x0009);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let (code, reason) = decode_error_code(Self::TYPE, value, 763)?;
        Ok(ErrorCode { code, reason })
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        encode_error_code(self.code, &self.reason, out)
    }
}

/// RFC 8489 §14.13: the comprehension-required attributes a server did not understand.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct UnknownAttributes(pub Vec<AttributeType>);

impl AttributeCodec for UnknownAttributes {
    const TYPE: AttributeType = AttributeType(0x000A);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        if value.len() % 2 != 0 {
            return Err(invalid(Self::TYPE, "odd length"));
        }
        Ok(UnknownAttributes(
            value
                .chunks_exact(2)
                .map(|c| AttributeType(u16::from_be_bytes([c[0], c[1]])))
                .collect(),
        ))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        for t in &self.0 {
            out.put_u16(t.0)
        }
    }
}

/// RFC 8489 §14.11: one entry of PASSWORD-ALGORITHMS: an algorithm code and its
/// parameters, kept as sent so that the client can echo the list (RFC 8489 §9.2.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithmEntry {
    /// 0x0001 MD5, 0x0002 SHA-256.
    pub algorithm: u16,
    /// Parameters (none are defined for MD5 and SHA-256).
    pub params: Bytes,
}

fn decode_algorithm(
    typ: AttributeType,
    v: &Bytes,
    at: usize,
) -> Result<(PasswordAlgorithmEntry, usize), StunError> {
    if v.len() < at + 4 {
        return Err(invalid(typ, "truncated algorithm"));
    }
    let algorithm = u16::from_be_bytes([v[at], v[at + 1]]);
    let len = usize::from(u16::from_be_bytes([v[at + 2], v[at + 3]]));
    let end = at + 4 + len;
    if v.len() < end {
        return Err(invalid(typ, "algorithm parameters overrun"));
    }
    let params = v.slice(at + 4..end);
    Ok((PasswordAlgorithmEntry { algorithm, params }, (end + 3) & !3))
}

fn encode_algorithm(a: &PasswordAlgorithmEntry, out: &mut BytesMut) {
    out.put_u16(a.algorithm);
    out.put_u16(a.params.len() as u16);
    out.put_slice(&a.params);
    out.put_bytes(0, (4 - a.params.len() % 4) % 4);
}

/// RFC 8489 §14.11: the algorithms a server supports, in order of preference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PasswordAlgorithms(pub Vec<PasswordAlgorithmEntry>);

impl AttributeCodec for PasswordAlgorithms {
    const TYPE: AttributeType = AttributeType(0x8002);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let mut at = 0;
        let mut list = Vec::new();
        while at < value.len() {
            let (a, next) = decode_algorithm(Self::TYPE, value, at)?;
            list.push(a);
            at = next;
        }
        Ok(PasswordAlgorithms(list))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        self.0.iter().for_each(|a| encode_algorithm(a, out))
    }
}

/// RFC 8489 §18.5: the password algorithms of the long-term mechanism that floe
/// implements; also RFC 8489 §14.12, the PASSWORD-ALGORITHM attribute: the algorithm the
/// client chose. Neither takes parameters; another algorithm, or parameters, do not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PasswordAlgorithm {
    /// 0x0001: key = MD5(username ":" realm ":" password), 16 bytes.
    #[default]
    Md5,
    /// 0x0002: key = SHA-256(username ":" realm ":" password), 32 bytes.
    Sha256,
}

impl PasswordAlgorithm {
    /// The IANA code.
    pub fn code(self) -> u16 {
        match self {
            PasswordAlgorithm::Md5 => 0x0001,
            PasswordAlgorithm::Sha256 => 0x0002,
        }
    }

    /// The algorithm of an IANA code, if floe implements it.
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            0x0001 => Some(PasswordAlgorithm::Md5),
            0x0002 => Some(PasswordAlgorithm::Sha256),
            _ => None,
        }
    }

    /// As a PASSWORD-ALGORITHMS entry (no parameters).
    pub fn entry(self) -> PasswordAlgorithmEntry {
        PasswordAlgorithmEntry {
            algorithm: self.code(),
            params: Bytes::new(),
        }
    }
}

impl AttributeCodec for PasswordAlgorithm {
    const TYPE: AttributeType = AttributeType(0x001D);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let (a, end) = decode_algorithm(Self::TYPE, value, 0)?;
        if end < value.len() {
            return Err(invalid(Self::TYPE, "trailing bytes"));
        }
        if !a.params.is_empty() {
            return Err(invalid(Self::TYPE, "MD5 and SHA-256 take no parameters"));
        }
        PasswordAlgorithm::from_code(a.algorithm)
            .ok_or_else(|| invalid(Self::TYPE, "unsupported algorithm"))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        encode_algorithm(&self.entry(), out)
    }
}
