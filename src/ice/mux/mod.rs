//! Single-port mode: many ICE agents behind one UDP socket, as SFUs run them (str0m's
//! and pion's UDP mux, libwebrtc's single port). [`Demux`] is the routing table of such
//! a socket, sans-IO: which agent a datagram from a remote address belongs to.
//!
//! A datagram goes to an agent:
//! 1. by its 5-tuple: the socket's side is the same for every agent, so the remote
//!    address names the agent, once it is known ([`Demux::learn`], when the agent sends
//!    to it; or learnt from a check, below);
//! 2. else, if it is a STUN Binding request (a connectivity check), by its USERNAME:
//!    RFC 8445 §7.2.2 builds it as `RECIPIENT_UFRAG:SENDER_UFRAG`, so the part before
//!    the colon is a local ufrag, which an agent registered. The remote address is then
//!    learnt for that agent;
//! 3. else it is dropped, and counted ([`DemuxStats`]).
//!
//! Binding responses come back from the address the agent sent its request to, which it
//! announced with [`Demux::learn`], so they follow the 5-tuple.
//!
//! Every table is bounded: [`DemuxConfig::max_agents`] agents, each with at most
//! [`DemuxConfig::max_ufrags_per_agent`] ufrags and
//! [`DemuxConfig::max_addresses_per_agent`] remote addresses (the least recently used
//! one makes room for a new one). An agent's entries go with [`Demux::unregister`]; an
//! ICE restart replaces its ufrags ([`Demux::set_ufrags`]) and keeps its addresses, whose
//! selected pairs carry data and consent until the new checks select others (RFC 8445
//! §9). A remote address belongs to one agent at a time: a check naming another agent
//! from an address that is already taken goes to the address's agent (which rejects it
//! for its USERNAME), so a forged check cannot take a live session's address away.
//!
//! Reading a check's USERNAME ([`binding_request_ufrag`]) copies and allocates nothing;
//! a datagram that is not a well-formed STUN message costs one drop.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use crate::stun::{integrity, peek_header, Class, Method};

use super::is_ice_char;

#[cfg(test)]
mod tests;

/// RFC 8489 §14.3: USERNAME is shorter than 513 bytes.
const MAX_USERNAME: usize = 513;
/// RFC 8839 §5.4: a ufrag has 4 to 256 ice-chars.
const UFRAG_LENS: std::ops::RangeInclusive<usize> = 4..=256;
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
const FINGERPRINT: u16 = 0x8028;
const HEADER_LEN: usize = 20;

/// Why a datagram was not read as a connectivity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// Not a STUN message: too short, the top bits of the type set, no magic cookie, or
    /// a length that is not a multiple of 4 (RFC 8489 §5, §6.3).
    NotStun,
    /// A STUN message, but not a Binding request.
    NotBindingRequest,
    /// The header's length does not match the datagram.
    LengthMismatch,
    /// An attribute runs past the end of the message.
    AttributeOverrun,
    /// A FINGERPRINT that is not last or does not match (RFC 8489 §14.7).
    BadFingerprint,
    /// No USERNAME before MESSAGE-INTEGRITY.
    NoUsername,
    /// A USERNAME without a colon, too long, or whose first part is not a ufrag of 4 to
    /// 256 ice-chars (RFC 8839 §5.4).
    BadUsername,
}

/// RFC 8445 §7.2.2: the recipient's ufrag in a Binding request — the part of USERNAME
/// before the colon — without copying. The message must be one well-formed STUN
/// message that fills `packet`: every attribute inside it, a FINGERPRINT (if any) last
/// and correct, a USERNAME before MESSAGE-INTEGRITY.
pub fn binding_request_ufrag(packet: &[u8]) -> Result<&str, Malformed> {
    let (typ, _, len) = peek_header(packet).map_err(|_| Malformed::NotStun)?;
    if typ.method != Method::BINDING || typ.class != Class::Request {
        return Err(Malformed::NotBindingRequest);
    }
    if len != packet.len() {
        return Err(Malformed::LengthMismatch);
    }
    let mut username = None;
    let mut integrity_seen = false;
    let mut at = HEADER_LEN;
    while at < len {
        let Some(tlv) = packet.get(at..at + 4) else {
            return Err(Malformed::AttributeOverrun);
        };
        let typ = u16::from_be_bytes([tlv[0], tlv[1]]);
        let vlen = usize::from(u16::from_be_bytes([tlv[2], tlv[3]]));
        let start = at + 4;
        let next = start + ((vlen + 3) & !3);
        if next > len {
            return Err(Malformed::AttributeOverrun);
        }
        match typ {
            FINGERPRINT => {
                if vlen != 4 || next != len {
                    return Err(Malformed::BadFingerprint);
                }
                let v = &packet[start..start + 4];
                if integrity::fingerprint(&packet[..at])
                    != u32::from_be_bytes([v[0], v[1], v[2], v[3]])
                {
                    return Err(Malformed::BadFingerprint);
                }
            }
            MESSAGE_INTEGRITY | MESSAGE_INTEGRITY_SHA256 => integrity_seen = true,
            USERNAME if !integrity_seen && username.is_none() => {
                username = Some(&packet[start..start + vlen]);
            }
            _ => {}
        }
        at = next;
    }
    let username = username.ok_or(Malformed::NoUsername)?;
    if username.len() >= MAX_USERNAME {
        return Err(Malformed::BadUsername);
    }
    let colon = username
        .iter()
        .position(|&b| b == b':')
        .ok_or(Malformed::BadUsername)?;
    let ufrag = &username[..colon];
    if !is_ufrag(ufrag) {
        return Err(Malformed::BadUsername);
    }
    // All ASCII: is_ufrag checked every byte.
    std::str::from_utf8(ufrag).map_err(|_| Malformed::BadUsername)
}

fn is_ufrag(b: &[u8]) -> bool {
    UFRAG_LENS.contains(&b.len()) && b.iter().all(|&c| is_ice_char(char::from(c)))
}

/// The bounds of a [`Demux`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemuxConfig {
    /// Agents registered at once.
    pub max_agents: usize,
    /// Local ufrags of one agent (one per data stream on the socket).
    pub max_ufrags_per_agent: usize,
    /// Remote addresses of one agent; the least recently used one makes room.
    pub max_addresses_per_agent: usize,
}

impl Default for DemuxConfig {
    /// 4096 agents of up to 4 ufrags and 32 remote addresses each.
    fn default() -> Self {
        DemuxConfig {
            max_agents: 4096,
            max_ufrags_per_agent: 4,
            max_addresses_per_agent: 32,
        }
    }
}

/// Why [`Demux::register`] or [`Demux::set_ufrags`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DemuxError {
    /// [`DemuxConfig::max_agents`] agents are registered.
    #[error("the shared socket serves its maximum of {0} agents")]
    TooManyAgents(usize),
    /// More than [`DemuxConfig::max_ufrags_per_agent`] ufrags.
    #[error("an agent may register at most {0} ufrags")]
    TooManyUfrags(usize),
    /// The agent is registered already.
    #[error("the agent is registered already")]
    AlreadyRegistered,
    /// The agent is not registered.
    #[error("the agent is not registered")]
    NotRegistered,
    /// Not 4 to 256 ice-chars (RFC 8839 §5.4).
    #[error("{0:?} is not a ufrag of 4 to 256 ice-chars")]
    BadUfrag(String),
    /// Another agent has that ufrag.
    #[error("another agent on the shared socket has the ufrag {0:?}")]
    UfragInUse(String),
}

/// How a datagram found its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteBy {
    /// Its remote address is the agent's.
    Address,
    /// A Binding request naming the agent's ufrag; its address is now the agent's.
    Ufrag,
}

/// Why a datagram found no agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dropped {
    /// From an unknown address, and not a well-formed Binding request.
    Malformed(Malformed),
    /// A Binding request for a ufrag no agent has.
    UnknownUfrag,
}

/// What a [`Demux`] has routed and dropped, and what its tables hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Agents registered.
    pub agents: usize,
    /// Remote addresses known.
    pub addresses: usize,
    /// Datagrams routed by their remote address.
    pub routed_by_address: u64,
    /// Binding requests routed by their USERNAME.
    pub routed_by_ufrag: u64,
    /// Datagrams from unknown addresses that were not well-formed Binding requests.
    pub dropped_malformed: u64,
    /// Binding requests for a ufrag no agent has.
    pub dropped_unknown_ufrag: u64,
    /// Remote addresses forgotten to make room for newer ones.
    pub evicted_addresses: u64,
}

struct Entry {
    ufrags: Vec<Box<str>>,
    addresses: Vec<SocketAddr>,
}

/// The routing table of a UDP socket shared by ICE agents, each named by a key `K`:
/// see the [module documentation](self).
///
/// ```
/// use floe::ice::mux::{Demux, DemuxConfig, RouteBy};
/// let mut demux = Demux::new(DemuxConfig::default());
/// demux.register(1u32, &["aaaa"]).unwrap();
/// let peer = "192.0.2.7:5000".parse().unwrap();
/// demux.learn(1, peer);                      // agent 1 sent a check to the peer
/// assert_eq!(demux.route(peer, b"data"), Ok((1, RouteBy::Address)));
/// ```
pub struct Demux<K> {
    config: DemuxConfig,
    agents: HashMap<K, Entry>,
    by_ufrag: HashMap<Box<str>, K>,
    /// Each remote address's agent and when it last routed a datagram.
    by_address: HashMap<SocketAddr, (K, u64)>,
    clock: u64,
    stats: DemuxStats,
}

impl<K: Copy + Eq + Hash> Demux<K> {
    /// An empty table with these bounds (each at least 1).
    pub fn new(config: DemuxConfig) -> Self {
        let config = DemuxConfig {
            max_agents: config.max_agents.max(1),
            max_ufrags_per_agent: config.max_ufrags_per_agent.max(1),
            max_addresses_per_agent: config.max_addresses_per_agent.max(1),
        };
        Demux {
            config,
            agents: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_address: HashMap::new(),
            clock: 0,
            stats: DemuxStats::default(),
        }
    }

    /// The bounds.
    pub fn config(&self) -> DemuxConfig {
        self.config
    }

    /// Registers `agent` with its local ufrags (of the streams on this socket).
    pub fn register(&mut self, agent: K, ufrags: &[&str]) -> Result<(), DemuxError> {
        if self.agents.contains_key(&agent) {
            return Err(DemuxError::AlreadyRegistered);
        }
        if self.agents.len() >= self.config.max_agents {
            return Err(DemuxError::TooManyAgents(self.config.max_agents));
        }
        self.check_ufrags(agent, ufrags)?;
        let entry = Entry {
            ufrags: ufrags.iter().map(|u| Box::from(*u)).collect(),
            addresses: Vec::new(),
        };
        for u in &entry.ufrags {
            self.by_ufrag.insert(u.clone(), agent);
        }
        self.agents.insert(agent, entry);
        Ok(())
    }

    /// Replaces the ufrags of `agent` (RFC 8445 §9, ICE restart): the old ones no
    /// longer route; its remote addresses stay.
    pub fn set_ufrags(&mut self, agent: K, ufrags: &[&str]) -> Result<(), DemuxError> {
        if !self.agents.contains_key(&agent) {
            return Err(DemuxError::NotRegistered);
        }
        self.check_ufrags(agent, ufrags)?;
        let entry = self.agents.get_mut(&agent).expect("checked above");
        for u in entry.ufrags.drain(..) {
            self.by_ufrag.remove(&u);
        }
        entry.ufrags = ufrags.iter().map(|u| Box::from(*u)).collect();
        for u in &entry.ufrags {
            self.by_ufrag.insert(u.clone(), agent);
        }
        Ok(())
    }

    fn check_ufrags(&self, agent: K, ufrags: &[&str]) -> Result<(), DemuxError> {
        if ufrags.len() > self.config.max_ufrags_per_agent {
            return Err(DemuxError::TooManyUfrags(self.config.max_ufrags_per_agent));
        }
        for u in ufrags {
            if !is_ufrag(u.as_bytes()) {
                return Err(DemuxError::BadUfrag((*u).to_owned()));
            }
            if self.by_ufrag.get(*u).is_some_and(|owner| *owner != agent) {
                return Err(DemuxError::UfragInUse((*u).to_owned()));
            }
        }
        Ok(())
    }

    /// Forgets `agent`: its ufrags and remote addresses. Whether it was registered.
    pub fn unregister(&mut self, agent: K) -> bool {
        let Some(entry) = self.agents.remove(&agent) else {
            return false;
        };
        for u in &entry.ufrags {
            self.by_ufrag.remove(u);
        }
        for a in &entry.addresses {
            self.by_address.remove(a);
        }
        true
    }

    /// `agent` sends to `remote` (a check, a response, data): datagrams from there are
    /// its (Binding responses follow the 5-tuple). An address another agent has stays
    /// with it. Whether `remote` is now `agent`'s.
    pub fn learn(&mut self, agent: K, remote: SocketAddr) -> bool {
        if !self.agents.contains_key(&agent) {
            return false;
        }
        self.clock += 1;
        let clock = self.clock;
        if let Some((owner, used)) = self.by_address.get_mut(&remote) {
            if *owner == agent {
                *used = clock;
            }
            return *owner == agent;
        }
        let max = self.config.max_addresses_per_agent;
        let entry = self.agents.get_mut(&agent).expect("checked above");
        if entry.addresses.len() >= max {
            // The least recently used address of this agent makes room.
            let by_address = &self.by_address;
            let oldest = (0..entry.addresses.len())
                .min_by_key(|&i| by_address.get(&entry.addresses[i]).map_or(0, |e| e.1))
                .expect("at least one address");
            let old = entry.addresses.swap_remove(oldest);
            self.by_address.remove(&old);
            self.stats.evicted_addresses += 1;
        }
        entry.addresses.push(remote);
        self.by_address.insert(remote, (agent, clock));
        true
    }

    /// The agent a datagram from `from` goes to, and how it was found; or why it is
    /// dropped. Either way it is counted.
    pub fn route(&mut self, from: SocketAddr, packet: &[u8]) -> Result<(K, RouteBy), Dropped> {
        self.clock += 1;
        if let Some((agent, used)) = self.by_address.get_mut(&from) {
            *used = self.clock;
            self.stats.routed_by_address += 1;
            return Ok((*agent, RouteBy::Address));
        }
        let ufrag = match binding_request_ufrag(packet) {
            Ok(u) => u,
            Err(m) => {
                self.stats.dropped_malformed += 1;
                return Err(Dropped::Malformed(m));
            }
        };
        let Some(&agent) = self.by_ufrag.get(ufrag) else {
            self.stats.dropped_unknown_ufrag += 1;
            return Err(Dropped::UnknownUfrag);
        };
        self.learn(agent, from);
        self.stats.routed_by_ufrag += 1;
        Ok((agent, RouteBy::Ufrag))
    }

    /// Whether `agent` is registered.
    pub fn is_registered(&self, agent: K) -> bool {
        self.agents.contains_key(&agent)
    }

    /// The agent a ufrag belongs to.
    pub fn agent_of_ufrag(&self, ufrag: &str) -> Option<K> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// The agent a remote address belongs to.
    pub fn agent_of_address(&self, remote: SocketAddr) -> Option<K> {
        self.by_address.get(&remote).map(|e| e.0)
    }

    /// The remote addresses of `agent` (none if it is not registered).
    pub fn addresses_of(&self, agent: K) -> &[SocketAddr] {
        self.agents
            .get(&agent)
            .map_or(&[][..], |e| e.addresses.as_slice())
    }

    /// The ufrags of `agent`.
    pub fn ufrags_of(&self, agent: K) -> impl Iterator<Item = &str> + '_ {
        self.agents
            .get(&agent)
            .into_iter()
            .flat_map(|e| e.ufrags.iter().map(|u| &**u))
    }

    /// The counters and the tables' sizes.
    pub fn stats(&self) -> DemuxStats {
        DemuxStats {
            agents: self.agents.len(),
            addresses: self.by_address.len(),
            ..self.stats
        }
    }
}
