//! Typed STUN attributes of RFC 8489, RFC 8656, RFC 8445, RFC 5780 and RFC 6062.
//!
//! Each attribute is a type named as its RFC names it, implementing [`AttributeCodec`].
//! Variable-length values are `Bytes` slices of the received datagram: decoding copies
//! nothing. [`Attribute`] gathers them all, with [`Attribute::Unknown`] for the rest.
//!
//! This module holds the codec and the value types the attributes share; the attributes
//! live by specification: STUN's own (RFC 8489), TURN's (RFC 8656, RFC 6062), ICE's
//! (RFC 8445) and NAT behaviour discovery's (RFC 5780). Where an attribute carries one
//! protocol value, the value is the attribute: [`ChannelNumber`] is both the
//! CHANNEL-NUMBER attribute and the number in a ChannelData header, and
//! [`PasswordAlgorithm`] both the PASSWORD-ALGORITHM attribute and the algorithm that
//! derives the long-term key.

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

pub(crate) fn invalid(typ: AttributeType, reason: &'static str) -> StunError {
    StunError::InvalidAttribute { typ: typ.0, reason }
}

pub(crate) fn exact<const N: usize>(
    typ: AttributeType,
    value: &[u8],
) -> Result<[u8; N], StunError> {
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

    pub(crate) fn decode(typ: AttributeType, value: &Bytes, max: usize) -> Result<Self, StunError> {
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
    pub(crate) fn from_code(typ: AttributeType, code: u8) -> Result<Self, StunError> {
        match code {
            FAMILY_IPV4 => Ok(AddressFamily::V4),
            FAMILY_IPV6 => Ok(AddressFamily::V6),
            _ => Err(invalid(typ, "unknown address family")),
        }
    }

    pub(crate) fn code(self) -> u8 {
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
pub(crate) fn decode_address(typ: AttributeType, v: &[u8]) -> Result<SocketAddr, StunError> {
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

pub(crate) fn encode_address(addr: &SocketAddr, out: &mut BytesMut) {
    out.put_u8(0);
    out.put_u8(AddressFamily::of(addr.ip()).code());
    out.put_u16(addr.port());
    match addr.ip() {
        IpAddr::V4(ip) => out.put_slice(&ip.octets()),
        IpAddr::V6(ip) => out.put_slice(&ip.octets()),
    }
}

/// RFC 8489 §14.2: the XOR mask for an address: the magic cookie, then the transaction id.
pub(crate) fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(&tid.0);
    mask
}

pub(crate) fn xor_address(addr: SocketAddr, tid: &TransactionId) -> SocketAddr {
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

pub(crate) fn decode_u32(typ: AttributeType, v: &[u8]) -> Result<u32, StunError> {
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

mod ice;
mod nat;
mod stun;
mod turn;

pub use ice::*;
pub use nat::*;
pub use stun::*;
pub use turn::*;

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
    Nomination,
    ChangeRequest,
    ResponseOrigin,
    OtherAddress,
    ResponsePort,
    Padding,
    ConnectionId,
);
