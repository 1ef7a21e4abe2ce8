//! RFC 8445 §16.1: the ICE attributes of connectivity checks.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::stun::{StunError, TransactionId};

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

/// draft-thatcher-ice-renomination-01 §3 (libwebrtc's `STUN_ATTR_NOMINATION`): the
/// controlling agent nominates with a value; the controlled agent selects the pair of
/// the highest value it has seen. A 24-bit value in a 4-byte attribute (the top byte
/// is zero when sent and ignored when read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nomination(pub u32);

impl Nomination {
    /// The largest value the 24 bits carry.
    pub const MAX: u32 = 0x00FF_FFFF;
}

impl AttributeCodec for Nomination {
    const TYPE: AttributeType = AttributeType(0xC001);
    fn decode(value: &Bytes, _: &TransactionId) -> Result<Self, StunError> {
        decode_u32(Self::TYPE, value).map(|v| Nomination(v & Self::MAX))
    }
    fn encode(&self, _: &TransactionId, out: &mut BytesMut) {
        out.put_u32(self.0 & Self::MAX)
    }
}
