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
