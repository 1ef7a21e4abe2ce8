//! RFC 8656 §18: the TURN attributes, and RFC 6062's CONNECTION-ID.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::stun::{StunError, TransactionId};

/// RFC 8656 §12: a channel number, in the CHANNEL-NUMBER attribute (§18.1, followed by 16
/// RFFU bits) and in the ChannelData header (§12.4). Always within RFC 5766's range
/// 0x4000..=0x7FFF: [`new`](Self::new) gives RFC 8656's 0x4000..=0x4FFF, which clients
/// pick from; receivers also accept the older, wider range (coturn's clients draw from all
/// of it, 0x7FFF included, and coturn's server takes it), and the attribute decodes it. A
/// value outside does not decode (the server answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelNumber(u16);

impl ChannelNumber {
    /// RFC 8656 §12: the lowest channel number, 0x4000.
    pub const MIN: Self = Self(0x4000);
    /// RFC 8656 §12: the highest channel number, 0x4FFF (0x5000..=0xFFFF are reserved).
    pub const MAX: Self = Self(0x4FFF);
    /// RFC 8656 §12: the number of channel numbers, 4096.
    pub const COUNT: usize = (Self::MAX.0 - Self::MIN.0) as usize + 1;

    /// RFC 8656 §12: `n` as a channel number, or `None` outside 0x4000..=0x4FFF.
    #[inline]
    pub const fn new(n: u16) -> Option<Self> {
        match n {
            0x4000..=0x4FFF => Some(Self(n)),
            _ => None,
        }
    }

    /// RFC 5766 §11: `n` as a channel number of the older, wider range 0x4000..=0x7FFF
    /// ("0x4000 through 0x7FFF"), which coturn's clients still use; `None` outside it.
    /// Receivers accept it.
    #[inline]
    pub const fn new_rfc5766(n: u16) -> Option<Self> {
        match n {
            0x4000..=0x7FFF => Some(Self(n)),
            _ => None,
        }
    }

    /// RFC 8656 §12: the 16-bit value on the wire.
    #[inline]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Offset from [`ChannelNumber::MIN`]: in `0..COUNT` for RFC 8656 numbers, larger for
    /// RFC 5766 ones.
    #[inline]
    pub const fn index(self) -> usize {
        (self.0 - Self::MIN.0) as usize
    }
}

impl From<ChannelNumber> for u16 {
    #[inline]
    fn from(c: ChannelNumber) -> u16 {
        c.0
    }
}

impl fmt::Display for ChannelNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

impl AttributeCodec for ChannelNumber {
    const TYPE: AttributeType = AttributeType(0x000C);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        let v = exact::<4>(Self::TYPE, value)?;
        ChannelNumber::new_rfc5766(u16::from_be_bytes([v[0], v[1]]))
            .ok_or_else(|| invalid(Self::TYPE, "channel number outside 0x4000-0x7FFF"))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_u16(self.get());
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

u32_attribute!(
    /// RFC 6062 §6.2.1: the id of a TCP connection to a peer.
    ConnectionId = 0x002A
);
