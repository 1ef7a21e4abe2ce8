//! The DNS message format (RFC 1035 §4) as multicast DNS uses it (RFC 6762 §18): a
//! header, questions, and A / AAAA answers. Names are read with compression pointers
//! (bounded) and written without.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::MdnsError;

/// RFC 1035 §3.2.2: the A record type.
pub const TYPE_A: u16 = 1;
/// RFC 3596 §2.1: the AAAA record type.
pub const TYPE_AAAA: u16 = 28;
/// RFC 1035 §3.2.3: a question for any type.
pub const TYPE_ANY: u16 = 255;
/// RFC 1035 §3.2.4: the Internet class.
const CLASS_IN: u16 = 1;
/// RFC 6762 §5.4 / §10.2: the top bit of a question's class asks for a unicast
/// response; of an answer's class, flushes caches.
const CLASS_TOP_BIT: u16 = 0x8000;
/// RFC 6762 §18.2 / §18.4: a response with the Authoritative Answer bit.
const FLAGS_RESPONSE: u16 = 0x8400;
/// RFC 1035 §2.3.4: the longest name, in bytes on the wire.
const MAX_NAME: usize = 255;
/// Compression pointers followed while reading one name, at most.
const MAX_JUMPS: usize = 16;

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name, lower case, without the final dot.
    pub name: String,
    /// The record type asked for.
    pub qtype: u16,
    /// RFC 6762 §5.4: the querier asks for a unicast response.
    pub unicast_response: bool,
}

/// One A or AAAA answer (other record types are skipped when reading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The name, lower case, without the final dot.
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// Seconds it may be cached.
    pub ttl: u32,
}

/// A DNS message: what multicast DNS needs of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsMessage {
    /// The query id (0 in multicast DNS; a legacy unicast querier's own id).
    pub id: u16,
    /// Whether it is a response (the QR bit).
    pub response: bool,
    /// The questions.
    pub questions: Vec<Question>,
    /// The A and AAAA records of the answer, authority and additional sections.
    pub answers: Vec<Answer>,
}

impl DnsMessage {
    /// Reads a message; anything malformed is an error, never a panic.
    pub fn decode(buf: &[u8]) -> Result<Self, MdnsError> {
        let mut r = Reader { buf, pos: 0 };
        let id = r.u16()?;
        let flags = r.u16()?;
        let (qd, an, ns, ar) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
        let mut m = DnsMessage {
            id,
            response: flags & 0x8000 != 0,
            questions: Vec::new(),
            answers: Vec::new(),
        };
        for _ in 0..qd {
            let name = r.name()?;
            let qtype = r.u16()?;
            let class = r.u16()?;
            if class & !CLASS_TOP_BIT == CLASS_IN {
                m.questions.push(Question {
                    name,
                    qtype,
                    unicast_response: class & CLASS_TOP_BIT != 0,
                });
            }
        }
        for _ in 0..u32::from(an) + u32::from(ns) + u32::from(ar) {
            let name = r.name()?;
            let (rtype, class, ttl) = (r.u16()?, r.u16()?, r.u32()?);
            let len = usize::from(r.u16()?);
            let data = r.take(len)?;
            if class & !CLASS_TOP_BIT != CLASS_IN {
                continue;
            }
            let ip = match (rtype, len) {
                (TYPE_A, 4) => IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                (TYPE_AAAA, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(data);
                    IpAddr::V6(Ipv6Addr::from(b))
                }
                (TYPE_A | TYPE_AAAA, _) => return Err(MdnsError::Malformed("address length")),
                _ => continue,
            };
            m.answers.push(Answer { name, ip, ttl });
        }
        Ok(m)
    }

    /// Writes the message (names uncompressed).
    pub fn encode(&self) -> Result<Vec<u8>, MdnsError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.id.to_be_bytes());
        let flags = if self.response { FLAGS_RESPONSE } else { 0 };
        out.extend_from_slice(&flags.to_be_bytes());
        let count =
            |n: usize| u16::try_from(n).map_err(|_| MdnsError::Malformed("too many records"));
        out.extend_from_slice(&count(self.questions.len())?.to_be_bytes());
        out.extend_from_slice(&count(self.answers.len())?.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        for q in &self.questions {
            write_name(&mut out, &q.name)?;
            out.extend_from_slice(&q.qtype.to_be_bytes());
            let class = CLASS_IN | if q.unicast_response { CLASS_TOP_BIT } else { 0 };
            out.extend_from_slice(&class.to_be_bytes());
        }
        for a in &self.answers {
            write_name(&mut out, &a.name)?;
            let (rtype, data): (u16, Vec<u8>) = match a.ip {
                IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
                IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
            };
            out.extend_from_slice(&rtype.to_be_bytes());
            // RFC 6762 §10.2: the record is unique to this host, so caches flush.
            out.extend_from_slice(&(CLASS_IN | CLASS_TOP_BIT).to_be_bytes());
            out.extend_from_slice(&a.ttl.to_be_bytes());
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(&data);
        }
        Ok(out)
    }
}

fn write_name(out: &mut Vec<u8>, name: &str) -> Result<(), MdnsError> {
    let start = out.len();
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(MdnsError::Malformed("label length"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() - start > MAX_NAME {
        return Err(MdnsError::Malformed("name too long"));
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MdnsError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or(MdnsError::Malformed("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, MdnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MdnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// RFC 1035 §4.1.4: a name of labels, possibly ending in a pointer to an earlier one.
    fn name(&mut self) -> Result<String, MdnsError> {
        let mut name = String::new();
        let mut pos = self.pos;
        let mut jumps = 0;
        let mut resume = None;
        loop {
            let len = *self
                .buf
                .get(pos)
                .ok_or(MdnsError::Malformed("truncated name"))?;
            match len {
                0 => {
                    pos += 1;
                    break;
                }
                l if l & 0xC0 == 0xC0 => {
                    let low = *self
                        .buf
                        .get(pos + 1)
                        .ok_or(MdnsError::Malformed("pointer"))?;
                    jumps += 1;
                    if jumps > MAX_JUMPS {
                        return Err(MdnsError::Malformed("pointer loop"));
                    }
                    resume.get_or_insert(pos + 2);
                    pos = usize::from(l & 0x3F) << 8 | usize::from(low);
                }
                l if l & 0xC0 != 0 => return Err(MdnsError::Malformed("label type")),
                l => {
                    let l = usize::from(l);
                    let label = self
                        .buf
                        .get(pos + 1..pos + 1 + l)
                        .ok_or(MdnsError::Malformed("truncated label"))?;
                    if !name.is_empty() {
                        name.push('.');
                    }
                    for &b in label {
                        name.push(char::from(b.to_ascii_lowercase()));
                    }
                    if name.len() > MAX_NAME {
                        return Err(MdnsError::Malformed("name too long"));
                    }
                    pos += 1 + l;
                }
            }
        }
        self.pos = resume.unwrap_or(pos);
        Ok(name)
    }
}
