//! RFC 5780 §7: the attributes of NAT behaviour discovery.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::stun::{StunError, TransactionId};

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
