//! Multicast DNS (RFC 6762) for ICE host candidates (draft-ietf-mmusic-mdns-ice-candidates):
//! a responder that answers for the `UUID.local` names an agent signals instead of its
//! host addresses, and a resolver for the `.local` names that remote agents (Chromium by
//! default) signal. Sans-IO, like every floe core:
//!
//! ```text
//! let name = mdns.register(ip, &mut rng);        // signal `name` instead of `ip`
//! mdns.resolve(now, "1f0e....local");            // a remote candidate's name
//! mdns.handle_input(now, from, datagram);        // from the socket on port 5353
//! mdns.handle_timeout(now);
//! while let Some(t) = mdns.poll_transmit() { /* send t.payload to t.destination */ }
//! while let Some(e) = mdns.poll_event()    { /* Resolved { name, ip } or Failed */ }
//! ```
//!
//! The driver owns a UDP socket bound to port 5353, joined to 224.0.0.251 (IPv4 only so
//! far) on the interfaces it gathers on.

mod wire;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

pub use wire::{Answer, DnsMessage, Question, TYPE_A, TYPE_AAAA, TYPE_ANY};

/// RFC 6762 §3: the IPv4 multicast group and port.
pub const MDNS_V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353);
/// RFC 6762 §10: the TTL of a host's address records (120 s).
const TTL: u32 = 120;
/// RFC 6762 §5.2: queries go out again after 1 s, then 2 s; a name not answered by then
/// has failed.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(2),
];
/// Names being resolved at once, at most: a peer signalling names by the thousand costs
/// no more than this.
const MAX_PENDING: usize = 64;
/// Resolved names kept, at most.
const MAX_CACHE: usize = 256;

/// Errors of the mDNS layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MdnsError {
    /// A datagram that is not a well-formed DNS message.
    #[error("malformed mDNS message: {0}")]
    Malformed(&'static str),
    /// A name that is not `something.local`.
    #[error("{0:?} is not an mDNS name (NAME.local)")]
    NotLocal(String),
    /// Too many names are being resolved already.
    #[error("too many mDNS names being resolved")]
    TooManyPending,
}

/// A datagram to send from the mDNS socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsTransmit {
    /// The group ([`MDNS_V4`]) or, for a legacy unicast querier, its address.
    pub destination: SocketAddr,
    /// The DNS message.
    pub payload: Vec<u8>,
}

/// What came of a [`Mdns::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdnsEvent {
    /// The name has this address.
    Resolved {
        /// The name, lower case.
        name: String,
        /// Its address.
        ip: IpAddr,
    },
    /// Nobody answered for the name.
    Failed {
        /// The name, lower case.
        name: String,
    },
}

struct Pending {
    name: String,
    sent: usize,
    next: Instant,
}

/// The responder and resolver; see the module doc.
#[derive(Default)]
pub struct Mdns {
    /// Our names and their addresses.
    own: HashMap<String, IpAddr>,
    pending: Vec<Pending>,
    cache: HashMap<String, (IpAddr, Instant)>,
    transmits: VecDeque<MdnsTransmit>,
    events: VecDeque<MdnsEvent>,
}

/// Whether `name` is a multicast DNS name (RFC 6762 §3: under `.local`).
pub fn is_mdns_name(name: &str) -> bool {
    let n = name.trim_end_matches('.');
    n.len() > ".local".len() && n.to_ascii_lowercase().ends_with(".local")
}

impl Mdns {
    /// A responder with no names and a resolver with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name that stands for `ip`: a random version-4 UUID under `.local`, the same
    /// for every call with the same `ip` (draft-ietf-mmusic-mdns-ice-candidates §3.1.1).
    /// Queries for it are answered from now on.
    pub fn register<R: RngCore + ?Sized>(&mut self, ip: IpAddr, rng: &mut R) -> String {
        if let Some((name, _)) = self.own.iter().find(|(_, a)| **a == ip) {
            return name.clone();
        }
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0F) | 0x40;
        b[8] = (b[8] & 0x3F) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let name = format!(
            "{}-{}-{}-{}-{}.local",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        self.own.insert(name.clone(), ip);
        // RFC 6762 §8.3: announce the record once.
        self.queue(
            MDNS_V4,
            DnsMessage {
                response: true,
                answers: vec![Answer {
                    name: name.clone(),
                    ip,
                    ttl: TTL,
                }],
                ..DnsMessage::default()
            },
        );
        name
    }

    /// The address of one of our names.
    pub fn own_address(&self, name: &str) -> Option<IpAddr> {
        self.own
            .get(&name.trim_end_matches('.').to_ascii_lowercase())
            .copied()
    }

    /// Starts resolving `name`; the answer comes as an [`MdnsEvent`].
    pub fn resolve(&mut self, now: Instant, name: &str) -> Result<(), MdnsError> {
        if !is_mdns_name(name) {
            return Err(MdnsError::NotLocal(name.to_owned()));
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(ip) = self.own.get(&name).copied() {
            self.events.push_back(MdnsEvent::Resolved { name, ip });
            return Ok(());
        }
        if let Some((ip, until)) = self.cache.get(&name).copied() {
            if until > now {
                self.events.push_back(MdnsEvent::Resolved { name, ip });
                return Ok(());
            }
        }
        if self.pending.iter().any(|p| p.name == name) {
            return Ok(());
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(MdnsError::TooManyPending);
        }
        self.pending.push(Pending {
            name,
            sent: 0,
            next: now,
        });
        self.handle_timeout(now);
        Ok(())
    }

    /// A datagram that arrived on the mDNS socket from `from`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), MdnsError> {
        let m = DnsMessage::decode(data)?;
        if m.response {
            for a in m.answers {
                if let Some(i) = self.pending.iter().position(|p| p.name == a.name) {
                    self.pending.swap_remove(i);
                    self.events.push_back(MdnsEvent::Resolved {
                        name: a.name.clone(),
                        ip: a.ip,
                    });
                }
                if a.ttl > 0 && (self.cache.len() < MAX_CACHE || self.cache.contains_key(&a.name)) {
                    let until = now + Duration::from_secs(a.ttl.into());
                    self.cache.insert(a.name, (a.ip, until));
                }
            }
            return Ok(());
        }
        let answers: Vec<Answer> = m
            .questions
            .iter()
            .filter_map(|q| {
                let ip = *self.own.get(&q.name)?;
                let wanted = match q.qtype {
                    TYPE_A => ip.is_ipv4(),
                    TYPE_AAAA => ip.is_ipv6(),
                    TYPE_ANY => true,
                    _ => false,
                };
                wanted.then(|| Answer {
                    name: q.name.clone(),
                    ip,
                    ttl: TTL,
                })
            })
            .collect();
        if answers.is_empty() {
            return Ok(());
        }
        if from.port() != MDNS_V4.port() {
            // RFC 6762 §6.7: a legacy unicast querier gets a unicast answer carrying its
            // id and questions.
            let reply = DnsMessage {
                id: m.id,
                response: true,
                questions: m.questions,
                answers,
            };
            self.queue(from, reply);
        } else {
            let unicast = m.questions.iter().all(|q| q.unicast_response);
            let reply = DnsMessage {
                response: true,
                answers,
                ..DnsMessage::default()
            };
            self.queue(if unicast { from } else { MDNS_V4 }, reply);
        }
        Ok(())
    }

    /// Sends due queries and gives up on names nobody answered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].next > now {
                i += 1;
                continue;
            }
            let p = &mut self.pending[i];
            if p.sent == RETRIES.len() {
                let p = self.pending.swap_remove(i);
                self.events.push_back(MdnsEvent::Failed { name: p.name });
                continue;
            }
            p.next = now + RETRIES[p.sent];
            p.sent += 1;
            let name = p.name.clone();
            // RFC 6762 §5.1: one-shot queries from port 5353, answered to the group.
            let query = DnsMessage {
                questions: [TYPE_A, TYPE_AAAA]
                    .into_iter()
                    .map(|qtype| Question {
                        name: name.clone(),
                        qtype,
                        unicast_response: false,
                    })
                    .collect(),
                ..DnsMessage::default()
            };
            self.queue(MDNS_V4, query);
            i += 1;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.next).min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<MdnsTransmit> {
        self.transmits.pop_front()
    }

    /// The next resolution result.
    pub fn poll_event(&mut self) -> Option<MdnsEvent> {
        self.events.pop_front()
    }

    fn queue(&mut self, destination: SocketAddr, m: DnsMessage) {
        // Our own names and well-formed questions always encode.
        if let Ok(payload) = m.encode() {
            self.transmits.push_back(MdnsTransmit {
                destination,
                payload,
            });
        }
    }
}

#[cfg(test)]
mod tests;
