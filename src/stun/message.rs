//! The STUN message: header, zero-copy decoding, and an encoder into a reusable buffer.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::attribute::{
    Attribute, AttributeCodec, AttributeType, Fingerprint, MessageIntegrity, MessageIntegritySha256,
};
use super::integrity;
use super::{StunError, TransactionId, HEADER_LEN, MAGIC_COOKIE};

/// RFC 8489 §5: the message class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// 0b00
    Request,
    /// 0b01
    Indication,
    /// 0b10
    Success,
    /// 0b11
    Error,
}

/// RFC 8489 §18.2 and RFC 8656 §17: a STUN method (12 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// RFC 8489 §18.2
    pub const BINDING: Method = Method(0x001);
    /// RFC 8656 §17
    pub const ALLOCATE: Method = Method(0x003);
    /// RFC 8656 §17
    pub const REFRESH: Method = Method(0x004);
    /// RFC 8656 §17
    pub const SEND: Method = Method(0x006);
    /// RFC 8656 §17
    pub const DATA: Method = Method(0x007);
    /// RFC 8656 §17
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// RFC 8656 §17
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// RFC 6062 §6.1
    pub const CONNECT: Method = Method(0x00A);
    /// RFC 6062 §6.1
    pub const CONNECTION_BIND: Method = Method(0x00B);
    /// RFC 6062 §6.1
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);

    /// This method as a request.
    pub const fn request(self) -> MessageType {
        MessageType::new(self, Class::Request)
    }
    /// This method as an indication.
    pub const fn indication(self) -> MessageType {
        MessageType::new(self, Class::Indication)
    }
    /// This method as a success response.
    pub const fn success(self) -> MessageType {
        MessageType::new(self, Class::Success)
    }
    /// This method as an error response.
    pub const fn error(self) -> MessageType {
        MessageType::new(self, Class::Error)
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Method::BINDING => "Binding",
            Method::ALLOCATE => "Allocate",
            Method::REFRESH => "Refresh",
            Method::SEND => "Send",
            Method::DATA => "Data",
            Method::CREATE_PERMISSION => "CreatePermission",
            Method::CHANNEL_BIND => "ChannelBind",
            Method::CONNECT => "Connect",
            Method::CONNECTION_BIND => "ConnectionBind",
            Method::CONNECTION_ATTEMPT => "ConnectionAttempt",
            _ => return write!(f, "Method({:#05x})", self.0),
        };
        f.write_str(name)
    }
}

/// RFC 8489 §5: method and class, interleaved in the 14-bit message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// A message type of this method and class.
    pub const fn new(method: Method, class: Class) -> Self {
        MessageType { method, class }
    }

    /// RFC 8489 §5 Figure 3: the 16-bit wire value.
    pub const fn to_u16(self) -> u16 {
        let m = self.method.0;
        let c = match self.class {
            Class::Request => 0,
            Class::Indication => 1,
            Class::Success => 2,
            Class::Error => 3,
        };
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    /// Reads the 16-bit wire value (the two top bits must already be zero).
    pub const fn from_u16(t: u16) -> Self {
        let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
        let class = match ((t & 0x0010) >> 4) | ((t & 0x0100) >> 7) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::Success,
            _ => Class::Error,
        };
        MessageType {
            method: Method(method),
            class,
        }
    }
}

/// Reads the header fields of a STUN message without looking at its attributes:
/// the message type, transaction id and total length (header included).
/// Useful to route a datagram before decoding it.
pub fn peek_header(buf: &[u8]) -> Result<(MessageType, TransactionId, usize), StunError> {
    if buf.len() < HEADER_LEN {
        return Err(StunError::Truncated {
            needed: HEADER_LEN,
            available: buf.len(),
        });
    }
    if buf[0] & 0xC0 != 0 {
        return Err(StunError::NotStun(buf[0]));
    }
    let cookie = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if cookie != MAGIC_COOKIE {
        return Err(StunError::BadMagicCookie(cookie));
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]);
    if len % 4 != 0 {
        return Err(StunError::UnalignedLength(len));
    }
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&buf[8..20]);
    let typ = MessageType::from_u16(u16::from_be_bytes([buf[0], buf[1]]));
    Ok((typ, TransactionId(tid), HEADER_LEN + usize::from(len)))
}

/// A decoded STUN message. It keeps the datagram and reads attributes from it on demand;
/// decoding validates the structure and the FINGERPRINT and copies nothing.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    typ: MessageType,
    tid: TransactionId,
    /// Attributes in `20..attrs_end` count; later ones (after MESSAGE-INTEGRITY) are ignored.
    attrs_end: usize,
    integrity: Option<usize>,
    integrity_sha256: Option<usize>,
    fingerprint: bool,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("type", &self.typ)
            .field("tid", &self.tid)
            .field(
                "attributes",
                &self.raw_attributes().map(|(t, _)| t).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Iterates the TLVs of a message: (type, value range).
struct Tlvs<'a> {
    buf: &'a [u8],
    at: usize,
    end: usize,
}

impl Iterator for Tlvs<'_> {
    type Item = (AttributeType, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at + 4 > self.end {
            return None;
        }
        let b = &self.buf[self.at..self.at + 4];
        let typ = AttributeType(u16::from_be_bytes([b[0], b[1]]));
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let start = self.at + 4;
        self.at = start + ((len + 3) & !3);
        Some((typ, start, start + len))
    }
}

impl Message {
    /// RFC 8489 §6.3: decodes one message that fills `buf` exactly.
    ///
    /// Checks the header, the TLV structure and padding, and FINGERPRINT (which must be
    /// last). Attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and
    /// FINGERPRINT are ignored (§14.5, §14.6).
    pub fn decode(buf: Bytes) -> Result<Self, StunError> {
        let (typ, tid, len) = peek_header(&buf)?;
        if buf.len() != len {
            if buf.len() < len {
                return Err(StunError::Truncated {
                    needed: len,
                    available: buf.len(),
                });
            }
            return Err(StunError::LengthMismatch {
                declared: len - HEADER_LEN,
                available: buf.len() - HEADER_LEN,
            });
        }
        let mut msg = Message {
            typ,
            tid,
            attrs_end: len,
            integrity: None,
            integrity_sha256: None,
            fingerprint: false,
            buf,
        };
        let mut ignore_from = None;
        let mut at = HEADER_LEN;
        while at < len {
            if at + 4 > len {
                return Err(StunError::Truncated {
                    needed: at + 4,
                    available: len,
                });
            }
            let b = &msg.buf[at..at + 4];
            let t = AttributeType(u16::from_be_bytes([b[0], b[1]]));
            let vlen = usize::from(u16::from_be_bytes([b[2], b[3]]));
            let next = at + 4 + ((vlen + 3) & !3);
            if next > len {
                return Err(StunError::AttributeOverrun {
                    typ: t.0,
                    len: vlen,
                });
            }
            match t {
                Fingerprint::TYPE => {
                    if vlen != 4 {
                        return Err(StunError::InvalidAttribute {
                            typ: t.0,
                            reason: "wrong length",
                        });
                    }
                    if next != len {
                        return Err(StunError::FingerprintNotLast);
                    }
                    let v = &msg.buf[at + 4..at + 8];
                    let got = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                    if integrity::fingerprint(&msg.buf[..at]) != got {
                        return Err(StunError::BadFingerprint);
                    }
                    msg.fingerprint = true;
                    ignore_from.get_or_insert(at);
                }
                _ if ignore_from.is_some() => {}
                MessageIntegrity::TYPE
                    if msg.integrity.is_none() && msg.integrity_sha256.is_none() =>
                {
                    if vlen != 20 {
                        return Err(StunError::InvalidAttribute {
                            typ: t.0,
                            reason: "wrong length",
                        });
                    }
                    msg.integrity = Some(at);
                }
                MessageIntegritySha256::TYPE if msg.integrity_sha256.is_none() => {
                    if !(16..=32).contains(&vlen) || vlen % 4 != 0 {
                        return Err(StunError::InvalidAttribute {
                            typ: t.0,
                            reason: "length must be 16..=32 and a multiple of 4",
                        });
                    }
                    msg.integrity_sha256 = Some(at);
                }
                _ if msg.integrity.is_some() || msg.integrity_sha256.is_some() => {
                    ignore_from = Some(at);
                }
                _ => {}
            }
            at = next;
        }
        msg.attrs_end = ignore_from.unwrap_or(len);
        Ok(msg)
    }

    /// The message type.
    pub fn typ(&self) -> MessageType {
        self.typ
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.typ.method
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.typ.class
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// Whether the message ends with a valid FINGERPRINT.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint
    }

    /// Whether the message carries MESSAGE-INTEGRITY (HMAC-SHA1).
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether the message carries MESSAGE-INTEGRITY-SHA256.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    fn tlvs(&self) -> Tlvs<'_> {
        Tlvs {
            buf: &self.buf,
            at: HEADER_LEN,
            end: self.attrs_end,
        }
    }

    /// The attributes that count, raw: type and value (a slice of the datagram).
    /// Includes MESSAGE-INTEGRITY(-SHA256), excludes FINGERPRINT and what follows integrity.
    pub fn raw_attributes(&self) -> impl Iterator<Item = (AttributeType, Bytes)> + '_ {
        self.tlvs().map(|(t, s, e)| (t, self.buf.slice(s..e)))
    }

    /// The raw value of the first attribute of this type.
    pub fn raw(&self, typ: AttributeType) -> Option<Bytes> {
        self.tlvs()
            .find(|(t, _, _)| *t == typ)
            .map(|(_, s, e)| self.buf.slice(s..e))
    }

    /// Whether an attribute of this type is present.
    pub fn contains(&self, typ: AttributeType) -> bool {
        self.tlvs().any(|(t, _, _)| t == typ)
    }

    /// Decodes the first attribute of type `A`, if present.
    pub fn get<A: AttributeCodec>(&self) -> Option<Result<A, StunError>> {
        self.tlvs()
            .find(|(t, _, _)| *t == A::TYPE)
            .map(|(_, s, e)| A::decode(&self.buf.slice(s..e), &self.tid))
    }

    /// Decodes every attribute that counts, in order.
    pub fn attributes(&self) -> impl Iterator<Item = Result<Attribute, StunError>> + '_ {
        self.raw_attributes()
            .map(|(t, v)| Attribute::decode(t, &v, &self.tid))
    }

    /// RFC 8489 §6.3.1: comprehension-required attributes floe does not know.
    /// A server answers a request that has any with 420 and UNKNOWN-ATTRIBUTES.
    pub fn unknown_comprehension_required(&self) -> Vec<AttributeType> {
        self.tlvs()
            .map(|(t, _, _)| t)
            .filter(|t| t.is_comprehension_required() && !Attribute::is_known(*t))
            .collect()
    }

    /// RFC 8489 §14.5: checks MESSAGE-INTEGRITY (HMAC-SHA1) with `key`, in constant time.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        let at = self.integrity.ok_or(StunError::MissingIntegrity)?;
        let mac = integrity::hmac_sha1(key, &self.buf[..at], (at + 24 - HEADER_LEN) as u16);
        integrity::ct_eq(&mac, &self.buf[at + 4..at + 24])
    }

    /// RFC 8489 §14.6: checks MESSAGE-INTEGRITY-SHA256 (possibly truncated) with `key`,
    /// in constant time.
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Result<(), StunError> {
        let at = self.integrity_sha256.ok_or(StunError::MissingIntegrity)?;
        let len = usize::from(u16::from_be_bytes([self.buf[at + 2], self.buf[at + 3]]));
        let mac = integrity::hmac_sha256(key, &self.buf[..at], (at + 4 + len - HEADER_LEN) as u16);
        integrity::ct_eq(&mac[..len], &self.buf[at + 4..at + 4 + len])
    }
}

/// Builds a STUN message at the end of a reusable buffer.
///
/// ```
/// use bytes::BytesMut;
/// use floe::stun::{attribute::XorMappedAddress, Message, MessageEncoder, Method, TransactionId};
/// let mut buf = BytesMut::with_capacity(1500);
/// let tid = TransactionId([7; 12]);
/// let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.success(), tid);
/// enc.add(&XorMappedAddress("192.0.2.1:32853".parse().unwrap()));
/// enc.fingerprint();
/// enc.finish().unwrap();
/// let msg = Message::decode(buf.freeze()).unwrap();
/// assert_eq!(msg.get::<XorMappedAddress>().unwrap().unwrap().0.port(), 32853);
/// ```
pub struct MessageEncoder<'a> {
    out: &'a mut BytesMut,
    start: usize,
    tid: TransactionId,
    pad: u8,
    error: Option<StunError>,
}

impl<'a> MessageEncoder<'a> {
    /// Starts a message of type `typ` at the end of `out`.
    pub fn new(out: &'a mut BytesMut, typ: MessageType, tid: TransactionId) -> Self {
        let start = out.len();
        out.reserve(HEADER_LEN + 64);
        out.put_u16(typ.to_u16());
        out.put_u16(0);
        out.put_u32(MAGIC_COOKIE);
        out.put_slice(&tid.0);
        MessageEncoder {
            out,
            start,
            tid,
            pad: 0,
            error: None,
        }
    }

    /// Sets the byte attribute padding is filled with (0 by default). RFC 8489 §14 lets
    /// padding take any value; RFC 5769's vectors pad with 0x20.
    pub fn padding_byte(&mut self, pad: u8) -> &mut Self {
        self.pad = pad;
        self
    }

    /// The transaction id of the message being built.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    fn set_length(&mut self) {
        let len = self.out.len() - self.start - HEADER_LEN;
        match u16::try_from(len) {
            Ok(len) => self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes()),
            Err(_) => self.error = Some(StunError::Encode("message longer than 65535 bytes")),
        }
    }

    fn tlv(&mut self, typ: AttributeType, write: impl FnOnce(&TransactionId, &mut BytesMut)) {
        let at = self.out.len();
        self.out.put_u16(typ.0);
        self.out.put_u16(0);
        write(&self.tid, self.out);
        let len = self.out.len() - at - 4;
        match u16::try_from(len) {
            Ok(l) => self.out[at + 2..at + 4].copy_from_slice(&l.to_be_bytes()),
            Err(_) => self.error = Some(StunError::Encode("attribute longer than 65535 bytes")),
        }
        self.out.put_bytes(self.pad, (4 - len % 4) % 4);
        self.set_length();
    }

    /// Appends a typed attribute.
    pub fn add<A: AttributeCodec>(&mut self, attr: &A) -> &mut Self {
        self.tlv(A::TYPE, |tid, out| attr.encode(tid, out));
        self
    }

    /// Appends any attribute.
    pub fn add_attribute(&mut self, attr: &Attribute) -> &mut Self {
        self.tlv(attr.typ(), |tid, out| attr.encode(tid, out));
        self
    }

    /// Appends an attribute from its raw value.
    pub fn add_raw(&mut self, typ: AttributeType, value: &[u8]) -> &mut Self {
        self.tlv(typ, |_, out| out.put_slice(value));
        self
    }

    /// RFC 8489 §14.5: appends MESSAGE-INTEGRITY (HMAC-SHA1 keyed with `key`).
    pub fn message_integrity(&mut self, key: &[u8]) -> &mut Self {
        let at = self.out.len();
        let len = (at - self.start + 24 - HEADER_LEN) as u16;
        let mac = integrity::hmac_sha1(key, &self.out[self.start..at], len);
        self.add_raw(MessageIntegrity::TYPE, &mac)
    }

    /// RFC 8489 §14.6: appends MESSAGE-INTEGRITY-SHA256 truncated to `len` bytes
    /// (16..=32, a multiple of 4; other values are rounded into that range).
    pub fn message_integrity_sha256(&mut self, key: &[u8], len: usize) -> &mut Self {
        let len = (len.clamp(16, 32) + 3) & !3;
        let at = self.out.len();
        let total = (at - self.start + 4 + len - HEADER_LEN) as u16;
        let mac = integrity::hmac_sha256(key, &self.out[self.start..at], total);
        self.add_raw(MessageIntegritySha256::TYPE, &mac[..len])
    }

    /// RFC 8489 §14.7: appends FINGERPRINT. It must be the last attribute.
    pub fn fingerprint(&mut self) -> &mut Self {
        let at = self.out.len();
        let len = (at - self.start + 8 - HEADER_LEN) as u16;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
        let crc = integrity::fingerprint(&self.out[self.start..at]);
        self.add(&Fingerprint(crc))
    }

    /// Finishes the message; returns its length in bytes.
    pub fn finish(self) -> Result<usize, StunError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out.len() - self.start),
        }
    }
}

#[cfg(test)]
#[path = "vectors.rs"]
mod vectors;
