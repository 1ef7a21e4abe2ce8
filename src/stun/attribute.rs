//! Typed STUN attributes of RFC 8489, RFC 8656, RFC 8445, RFC 5780 and RFC 6062.
//!
//! Each attribute is a type named as its RFC names it, implementing [`AttributeCodec`].
//! Variable-length values are `Bytes` slices of the received datagram: decoding copies
//! nothing. [`Attribute`] gathers them all, with [`Attribute::Unknown`] for the rest.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use super::{StunError, TransactionId, MAGIC_COOKIE};

/// A STUN attribute type (RFC 8489 §14 and the IANA registry).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

impl AttributeType {
    /// RFC 8489 §14: types 0x0000-0x7FFF are comprehension-required.
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }
}

impl fmt::Debug for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttributeType({:#06x})", self.0)
    }
}

/// The TRANSACTION-ID-dependent context an attribute value is read and written in.
pub trait AttributeCodec: Sized {
    /// The attribute's type code.
    const TYPE: AttributeType;
    /// Decodes the attribute's value (without the 4-byte TLV header).
    fn decode(value: &Bytes, tid: &TransactionId) -> Result<Self, StunError>;
    /// Appends the attribute's value (without the TLV header or padding).
    fn encode(&self, tid: &TransactionId, out: &mut BytesMut);
}

fn invalid(typ: AttributeType, reason: &'static str) -> StunError {
    StunError::InvalidAttribute { typ: typ.0, reason }
}

fn exact<const N: usize>(typ: AttributeType, value: &[u8]) -> Result<[u8; N], StunError> {
    value.try_into().map_err(|_| invalid(typ, "wrong length"))
}

/// UTF-8 text carried in an attribute (USERNAME, REALM, NONCE, SOFTWARE, reason phrases).
/// It shares the received buffer.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// Wraps a string.
    pub fn new(s: impl Into<String>) -> Self {
        Text(Bytes::from(s.into()))
    }

    /// Wraps a static string without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Text(Bytes::from_static(s.as_bytes()))
    }

    fn decode(typ: AttributeType, value: &Bytes, max: usize) -> Result<Self, StunError> {
        if value.len() > max {
            return Err(invalid(typ, "too long"));
        }
        std::str::from_utf8(value).map_err(|_| invalid(typ, "not UTF-8"))?;
        Ok(Text(value.clone()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Validated as UTF-8 on construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// RFC 8489 §14.1: the address family code of an IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// 0x01
    V4,
    /// 0x02
    V6,
}

impl AddressFamily {
    fn from_code(typ: AttributeType, code: u8) -> Result<Self, StunError> {
        match code {
            FAMILY_IPV4 => Ok(AddressFamily::V4),
            FAMILY_IPV6 => Ok(AddressFamily::V6),
            _ => Err(invalid(typ, "unknown address family")),
        }
    }

    fn code(self) -> u8 {
        match self {
            AddressFamily::V4 => FAMILY_IPV4,
            AddressFamily::V6 => FAMILY_IPV6,
        }
    }

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }
}

/// RFC 8489 §14.1: family, port and address, in the clear.
fn decode_address(typ: AttributeType, v: &[u8]) -> Result<SocketAddr, StunError> {
    if v.len() < 4 {
        return Err(invalid(typ, "shorter than 4 bytes"));
    }
    let port = u16::from_be_bytes([v[2], v[3]]);
    let ip = match (AddressFamily::from_code(typ, v[1])?, v.len()) {
        (AddressFamily::V4, 8) => IpAddr::V4(Ipv4Addr::from(exact::<4>(typ, &v[4..])?)),
        (AddressFamily::V6, 20) => IpAddr::V6(Ipv6Addr::from(exact::<16>(typ, &v[4..])?)),
        _ => return Err(invalid(typ, "length does not fit the family")),
    };
    Ok(SocketAddr::new(ip, port))
}

fn encode_address(addr: &SocketAddr, out: &mut BytesMut) {
    out.put_u8(0);
    out.put_u8(AddressFamily::of(addr.ip()).code());
    out.put_u16(addr.port());
    match addr.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
}

/// RFC 8489 §14.2: the XOR mask for an address: the magic cookie, then the transaction id.
fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(&tid.0);
    mask
}

fn xor_address(addr: SocketAddr, tid: &TransactionId) -> SocketAddr {
    let mask = xor_mask(tid);
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match addr.ip() {
        IpAddr::V4(ip) => {
            let mut o = ip.octets();
            o.iter_mut().zip(&mask).for_each(|(b, m)| *b ^= m);
            IpAddr::V4(o.into())
        }
        IpAddr::V6(ip) => {
            let mut o = ip.octets();
            o.iter_mut().zip(&mask).for_each(|(b, m)| *b ^= m);
            IpAddr::V6(o.into())
        }
    };
    SocketAddr::new(ip, port)
}

fn decode_u32(typ: AttributeType, v: &[u8]) -> Result<u32, StunError> {
    Ok(u32::from_be_bytes(exact::<4>(typ, v)?))
}

macro_rules! address_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal, xor = $xor:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub SocketAddr);

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, tid: &TransactionId) -> Result<Self, StunError> {
                let addr = decode_address(Self::TYPE, value)?;
                Ok($name(if $xor { xor_address(addr, tid) } else { addr }))
            }
            fn encode(&self, tid: &TransactionId, out: &mut BytesMut) {
                let addr = if $xor { xor_address(self.0, tid) } else { self.0 };
                encode_address(&addr, out)
            }
        }
    };
}

macro_rules! text_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal, max = $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub Text);

        impl $name {
            /// Wraps a string.
            pub fn new(s: impl Into<String>) -> Self {
                $name(Text::new(s))
            }
            /// The text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
                Text::decode(Self::TYPE, value, $max).map($name)
            }
            fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
                out.put_slice(self.0.as_bytes())
            }
        }
    };
}

macro_rules! u32_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
                decode_u32(Self::TYPE, value).map($name)
            }
            fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
                out.put_u32(self.0)
            }
        }
    };
}

macro_rules! u64_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub u64);

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
                Ok($name(u64::from_be_bytes(exact::<8>(Self::TYPE, value)?)))
            }
            fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
                out.put_u64(self.0)
            }
        }
    };
}

macro_rules! flag_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
        pub struct $name;

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
                if value.is_empty() {
                    Ok($name)
                } else {
                    Err(invalid(Self::TYPE, "must be empty"))
                }
            }
            fn encode(&self, _: &TransactionId, _: &mut BytesMut) {}
        }
    };
}

macro_rules! bytes_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub Bytes);

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
                Ok($name(value.clone()))
            }
            fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
                out.put_slice(&self.0)
            }
        }
    };
}

macro_rules! family_attribute {
    ($(#[$doc:meta])* $name:ident = $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub AddressFamily);

        impl AttributeCodec for $name {
            const TYPE: AttributeType = AttributeType($code);
            fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
                let v = exact::<4>(Self::TYPE, value)?;
                AddressFamily::from_code(Self::TYPE, v[0]).map($name)
            }
            fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
                out.put_slice(&[self.0.code(), 0, 0, 0])
            }
        }
    };
}

// RFC 8489 §14: STUN attributes.
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
/// [`MessageEncoder::message_integrity`](super::MessageEncoder::message_integrity),
/// checked by [`Message::verify_integrity`](super::Message::verify_integrity).
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
    /// [`MessageEncoder::fingerprint`](super::MessageEncoder::fingerprint) and checked on decode.
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

fn decode_error_code(
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

fn encode_error_code(code: u16, reason: &Text, out: &mut BytesMut) {
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

/// RFC 8489 §18.5: a password algorithm and its parameters.
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

/// RFC 8489 §14.12: the algorithm the client chose.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithm(pub PasswordAlgorithmEntry);

impl AttributeCodec for PasswordAlgorithm {
    const TYPE: AttributeType = AttributeType(0x001D);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let (a, end) = decode_algorithm(Self::TYPE, value, 0)?;
        if end < value.len() {
            return Err(invalid(Self::TYPE, "trailing bytes"));
        }
        Ok(PasswordAlgorithm(a))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        encode_algorithm(&self.0, out)
    }
}

// RFC 8656 §18: TURN attributes.

/// RFC 8656 §18.1: a channel number (0x4000-0x4FFF for a valid binding) and 16 RFFU bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelNumber(pub u16);

impl AttributeCodec for ChannelNumber {
    const TYPE: AttributeType = AttributeType(0x000C);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let v = exact::<4>(Self::TYPE, value)?;
        Ok(ChannelNumber(u16::from_be_bytes([v[0], v[1]])))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_u16(self.0);
        out.put_u16(0);
    }
}

u32_attribute!(
    /// RFC 8656 §18.2: the allocation's remaining lifetime in seconds.
    Lifetime = 0x000D
);
address_attribute!(
    /// RFC 8656 §18.3: the peer's address as the server sees it, XORed.
    XorPeerAddress = 0x0012, xor = true
);
bytes_attribute!(
    /// RFC 8656 §18.4: application data in a Send or Data indication.
    Data = 0x0013
);
address_attribute!(
    /// RFC 8656 §18.5: the relayed transport address of an allocation, XORed.
    XorRelayedAddress = 0x0016, xor = true
);
family_attribute!(
    /// RFC 8656 §18.6: the family of the relayed address the client wants.
    RequestedAddressFamily = 0x0017
);

/// RFC 8656 §18.7: ask for an even relayed port; R reserves the next one too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct EvenPort {
    /// R: reserve the next higher port.
    pub reserve: bool,
}

impl AttributeCodec for EvenPort {
    const TYPE: AttributeType = AttributeType(0x0018);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let [v] = exact::<1>(Self::TYPE, value)?;
        Ok(EvenPort {
            reserve: v & 0x80 != 0,
        })
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_u8(if self.reserve { 0x80 } else { 0 })
    }
}

/// RFC 8656 §18.8: the transport protocol of the relay (17 = UDP, 6 = TCP per RFC 6062).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestedTransport(pub u8);

impl RequestedTransport {
    /// IANA protocol number of UDP.
    pub const UDP: u8 = 17;
    /// IANA protocol number of TCP.
    pub const TCP: u8 = 6;
}

impl AttributeCodec for RequestedTransport {
    const TYPE: AttributeType = AttributeType(0x0019);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let v = exact::<4>(Self::TYPE, value)?;
        Ok(RequestedTransport(v[0]))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_slice(&[self.0, 0, 0, 0])
    }
}

flag_attribute!(
    /// RFC 8656 §18.9: set the DF bit on the relayed IPv4 datagrams.
    DontFragment = 0x001A
);

/// RFC 8656 §18.10: a token naming a relayed port reserved by EVEN-PORT R.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservationToken(pub [u8; 8]);

impl AttributeCodec for ReservationToken {
    const TYPE: AttributeType = AttributeType(0x0022);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        exact::<8>(Self::TYPE, value).map(ReservationToken)
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_slice(&self.0)
    }
}

family_attribute!(
    /// RFC 8656 §18.11: ask for a second relayed address of this family (IPv6).
    AdditionalAddressFamily = 0x8000
);

/// RFC 8656 §18.12: why the relayed address of one family could not be allocated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddressErrorCode {
    /// The family that failed.
    pub family: AddressFamily,
    /// The error code, 300 to 699.
    pub code: u16,
    /// The reason phrase.
    pub reason: Text,
}

impl AttributeCodec for AddressErrorCode {
    const TYPE: AttributeType = AttributeType(0x8001);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let (code, reason) = decode_error_code(Self::TYPE, value, 763)?;
        let family = AddressFamily::from_code(Self::TYPE, value[0])?;
        Ok(AddressErrorCode {
            family,
            code,
            reason,
        })
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        let at = out.len();
        encode_error_code(self.code, &self.reason, out);
        out[at] = self.family.code();
    }
}

/// RFC 8656 §18.13: an ICMP error a relay received from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Icmp {
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Error data (e.g. the MTU for "fragmentation needed").
    pub error_data: u32,
}

impl AttributeCodec for Icmp {
    const TYPE: AttributeType = AttributeType(0x8004);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let v = exact::<8>(Self::TYPE, value)?;
        Ok(Icmp {
            icmp_type: v[2],
            code: v[3],
            error_data: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        })
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_slice(&[0, 0, self.icmp_type, self.code]);
        out.put_u32(self.error_data);
    }
}

// RFC 8445 §16.1: ICE attributes.
u32_attribute!(
    /// RFC 8445 §7.1.1: the priority a peer-reflexive candidate would get.
    Priority = 0x0024
);
flag_attribute!(
    /// RFC 8445 §7.1.2: the controlling agent nominates this pair.
    UseCandidate = 0x0025
);
u64_attribute!(
    /// RFC 8445 §7.1.3: the sender is controlled; its tie-breaker.
    IceControlled = 0x8029
);
u64_attribute!(
    /// RFC 8445 §7.1.3: the sender is controlling; its tie-breaker.
    IceControlling = 0x802A
);

// RFC 5780 §7: NAT behaviour discovery.

/// RFC 5780 §7.2: ask the server to answer from another IP and/or port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// A: change the IP address.
    pub change_ip: bool,
    /// B: change the port.
    pub change_port: bool,
}

impl AttributeCodec for ChangeRequest {
    const TYPE: AttributeType = AttributeType(0x0003);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let v = decode_u32(Self::TYPE, value)?;
        Ok(ChangeRequest {
            change_ip: v & 0x4 != 0,
            change_port: v & 0x2 != 0,
        })
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_u32(u32::from(self.change_ip) << 2 | u32::from(self.change_port) << 1)
    }
}

address_attribute!(
    /// RFC 5780 §7.3: the address the response was sent from.
    ResponseOrigin = 0x802B, xor = false
);
address_attribute!(
    /// RFC 5780 §7.4: the server's alternate address for CHANGE-REQUEST.
    OtherAddress = 0x802C, xor = false
);

/// RFC 5780 §7.5: the port the response should be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponsePort(pub u16);

impl AttributeCodec for ResponsePort {
    const TYPE: AttributeType = AttributeType(0x0027);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let v = exact::<4>(Self::TYPE, value)?;
        Ok(ResponsePort(u16::from_be_bytes([v[0], v[1]])))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_u16(self.0);
        out.put_u16(0);
    }
}

bytes_attribute!(
    /// RFC 5780 §7.6: padding to probe MTU behaviour.
    Padding = 0x0026
);

u32_attribute!(
    /// RFC 6062 §6.2.1: the id of a TCP connection to a peer.
    ConnectionId = 0x002A
);

macro_rules! attributes {
    ($($name:ident),* $(,)?) => {
        /// Any STUN attribute: one variant for each typed attribute, and `Unknown` for the rest.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Attribute {
            $(
                #[allow(missing_docs)]
                $name($name),
            )*
            /// An attribute floe does not know, kept raw.
            Unknown {
                /// its type
                typ: AttributeType,
                /// its value, without padding
                value: Bytes,
            },
        }

        impl Attribute {
            /// The attribute's type code.
            pub fn typ(&self) -> AttributeType {
                match self {
                    $(Attribute::$name(_) => $name::TYPE,)*
                    Attribute::Unknown { typ, .. } => *typ,
                }
            }

            /// Decodes a value of the given type. Unknown types come back as `Unknown`.
            pub fn decode(typ: AttributeType, value: &Bytes, tid: &TransactionId) -> Result<Self, StunError> {
                Ok(match typ {
                    $(<$name as AttributeCodec>::TYPE => Attribute::$name($name::decode(value, tid)?),)*
                    _ => Attribute::Unknown { typ, value: value.clone() },
                })
            }

            /// Appends the value (without TLV header or padding).
            pub fn encode(&self, tid: &TransactionId, out: &mut BytesMut) {
                match self {
                    $(Attribute::$name(a) => a.encode(tid, out),)*
                    Attribute::Unknown { value, .. } => out.put_slice(value),
                }
            }

            /// Whether floe knows this attribute type.
            pub fn is_known(typ: AttributeType) -> bool {
                matches!(typ, $(<$name as AttributeCodec>::TYPE)|*)
            }
        }

        $(
            impl From<$name> for Attribute {
                fn from(a: $name) -> Self {
                    Attribute::$name(a)
                }
            }
        )*
    };
}

attributes!(
    MappedAddress,
    XorMappedAddress,
    Username,
    Userhash,
    MessageIntegrity,
    MessageIntegritySha256,
    Fingerprint,
    ErrorCode,
    Realm,
    Nonce,
    PasswordAlgorithms,
    PasswordAlgorithm,
    UnknownAttributes,
    Software,
    AlternateServer,
    AlternateDomain,
    ChannelNumber,
    Lifetime,
    XorPeerAddress,
    Data,
    XorRelayedAddress,
    RequestedAddressFamily,
    EvenPort,
    RequestedTransport,
    DontFragment,
    ReservationToken,
    AdditionalAddressFamily,
    AddressErrorCode,
    Icmp,
    Priority,
    UseCandidate,
    IceControlled,
    IceControlling,
    ChangeRequest,
    ResponseOrigin,
    OtherAddress,
    ResponsePort,
    Padding,
    ConnectionId,
);
