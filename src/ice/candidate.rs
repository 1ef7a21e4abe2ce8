//! Candidates (RFC 8445 §5.1): their types, priorities and foundations, and the SDP
//! candidate attribute of RFC 8839 §5.1, parsed and written.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::credentials::is_ice_char;
use super::IceError;
use crate::Transport;

/// RFC 8445 §5.1.1: the four candidate types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CandidateKind {
    /// A transport address on a local interface (`typ host`).
    Host,
    /// The address a STUN server saw, allocated by a NAT (`typ srflx`).
    ServerReflexive,
    /// The address a peer saw in a check (`typ prflx`), RFC 8445 §7.2.5.3.1 / §7.3.1.3.
    PeerReflexive,
    /// An address relayed by a TURN server (`typ relay`).
    Relayed,
}

impl CandidateKind {
    /// RFC 8445 §5.1.2.2: the recommended type preferences: host 126, peer-reflexive
    /// 110, server-reflexive 100, relayed 0.
    pub fn type_preference(self) -> u32 {
        match self {
            CandidateKind::Host => 126,
            CandidateKind::PeerReflexive => 110,
            CandidateKind::ServerReflexive => 100,
            CandidateKind::Relayed => 0,
        }
    }

    /// RFC 8839 §5.1: the `cand-type` token.
    pub fn as_sdp(self) -> &'static str {
        match self {
            CandidateKind::Host => "host",
            CandidateKind::ServerReflexive => "srflx",
            CandidateKind::PeerReflexive => "prflx",
            CandidateKind::Relayed => "relay",
        }
    }

    /// RFC 8839 §5.1: reads a `cand-type` token.
    pub fn from_sdp(s: &str) -> Option<Self> {
        match s {
            "host" => Some(CandidateKind::Host),
            "srflx" => Some(CandidateKind::ServerReflexive),
            "prflx" => Some(CandidateKind::PeerReflexive),
            "relay" => Some(CandidateKind::Relayed),
            _ => None,
        }
    }
}

/// RFC 8839 §5.1 and RFC 6544 §4.5: the transport of a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateTransport {
    /// `UDP`
    Udp,
    /// `TCP` (RFC 6544).
    Tcp,
}

impl CandidateTransport {
    /// The lower-case SDP token, as browsers and aioice write it.
    pub fn as_sdp(self) -> &'static str {
        match self {
            CandidateTransport::Udp => "udp",
            CandidateTransport::Tcp => "tcp",
        }
    }

    /// The transport a [`Transmit`](crate::Transmit) on this candidate uses.
    pub fn transport(self) -> Transport {
        match self {
            CandidateTransport::Udp => Transport::Udp,
            CandidateTransport::Tcp => Transport::Tcp,
        }
    }
}

/// RFC 6544 §4.5: the `tcptype` of a TCP candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpType {
    /// Opens connections, never accepts them.
    Active,
    /// Accepts connections, never opens them.
    Passive,
    /// Simultaneous open.
    SimultaneousOpen,
}

impl TcpType {
    /// The SDP token.
    pub fn as_sdp(self) -> &'static str {
        match self {
            TcpType::Active => "active",
            TcpType::Passive => "passive",
            TcpType::SimultaneousOpen => "so",
        }
    }

    /// Reads the SDP token.
    pub fn from_sdp(s: &str) -> Option<Self> {
        match s {
            "active" => Some(TcpType::Active),
            "passive" => Some(TcpType::Passive),
            "so" => Some(TcpType::SimultaneousOpen),
            _ => None,
        }
    }

    /// RFC 6544 §6.2: whether a local candidate of this type pairs with a remote one
    /// of type `remote` (active with passive, so with so).
    pub fn pairs_with(self, remote: TcpType) -> bool {
        matches!(
            (self, remote),
            (TcpType::Active, TcpType::Passive)
                | (TcpType::Passive, TcpType::Active)
                | (TcpType::SimultaneousOpen, TcpType::SimultaneousOpen)
        )
    }
}

/// RFC 8445 §5.1.2.1: `priority = 2^24 * type preference + 2^8 * local preference +
/// (256 - component ID)`.
pub fn candidate_priority(kind: CandidateKind, local_preference: u16, component: u16) -> u32 {
    let component = u32::from(component.clamp(1, 256));
    (kind.type_preference() << 24) + (u32::from(local_preference) << 8) + (256 - component)
}

/// RFC 8445 §5.1.1.3: candidates of the same type, base IP, STUN/TURN server IP and
/// transport share a foundation. floe derives it from a CRC-32 of those four, written
/// in decimal (at most 10 digits), so equal inputs give equal foundations anywhere.
pub fn candidate_foundation(
    kind: CandidateKind,
    base: IpAddr,
    server: Option<IpAddr>,
    transport: CandidateTransport,
) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(kind.as_sdp().as_bytes());
    match base {
        IpAddr::V4(ip) => h.update(&ip.octets()),
        IpAddr::V6(ip) => h.update(&ip.octets()),
    }
    match server {
        Some(IpAddr::V4(ip)) => h.update(&ip.octets()),
        Some(IpAddr::V6(ip)) => h.update(&ip.octets()),
        None => h.update(b"-"),
    }
    h.update(transport.as_sdp().as_bytes());
    h.finalize().to_string()
}

/// RFC 8839 §5.1: `foundation = 1*32ice-char`.
pub fn is_valid_foundation(f: &str) -> bool {
    (1..=32).contains(&f.len()) && f.chars().all(is_ice_char)
}

/// An ICE candidate (RFC 8445 §5.1), local or remote.
///
/// Local candidates are built with [`Candidate::host`], [`Candidate::server_reflexive`]
/// and [`Candidate::relayed`]; the agent fills in priority and foundation. Remote ones
/// come from SDP through [`Candidate::from_sdp`] (or `str::parse`), which keeps unknown
/// extensions (`generation 0`, `ufrag x`, `network-id 1` ...) so that
/// [`Candidate::to_sdp`] writes them back in the order they came.
///
/// ```
/// use floe::ice::Candidate;
/// let line = "6815297761 1 udp 2130706431 127.0.0.1 50000 typ host";
/// let c: Candidate = line.parse().unwrap();
/// assert_eq!(c.to_sdp(), line);
/// assert_eq!(c.addr().port(), 50000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    pub(crate) foundation: String,
    pub(crate) component: u16,
    pub(crate) transport: CandidateTransport,
    pub(crate) priority: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) kind: CandidateKind,
    pub(crate) related_ip: Option<IpAddr>,
    pub(crate) related_port: Option<u16>,
    /// Extension attributes after `typ` other than raddr/rport, in order (tcptype too).
    pub(crate) extensions: Vec<(String, String)>,
    /// Local candidates only: the base (RFC 8445 §5.1.1.1).
    pub(crate) base: Option<SocketAddr>,
    /// Local candidates only: the STUN/TURN server that gave the address.
    pub(crate) server: Option<IpAddr>,
    /// Local candidates only: the local preference asked for (RFC 8445 §5.1.2.1).
    pub(crate) local_preference: Option<u16>,
    /// The mDNS name signalled in place of the address
    /// (draft-ietf-mmusic-mdns-ice-candidates): a local host candidate's own name, or
    /// the name a remote candidate was resolved from.
    pub(crate) mdns_name: Option<String>,
}

impl Candidate {
    fn local(kind: CandidateKind, addr: SocketAddr, base: SocketAddr) -> Self {
        Candidate {
            foundation: String::new(),
            component: 1,
            transport: CandidateTransport::Udp,
            priority: 0,
            addr,
            kind,
            related_ip: None,
            related_port: None,
            extensions: Vec::new(),
            base: Some(base),
            server: None,
            local_preference: None,
            mdns_name: None,
        }
    }

    /// RFC 8445 §5.1.1.1: a host candidate on a local interface; its base is itself.
    /// Component 1, UDP; the agent computes priority and foundation.
    pub fn host(addr: SocketAddr) -> Self {
        Candidate::local(CandidateKind::Host, addr, addr)
    }

    /// RFC 8445 §5.1.1.2: a server-reflexive candidate `addr`, learnt by a Binding from
    /// `base` to the STUN `server`. `raddr`/`rport` are the base (RFC 8839 §5.1).
    pub fn server_reflexive(addr: SocketAddr, base: SocketAddr, server: SocketAddr) -> Self {
        let mut c = Candidate::local(CandidateKind::ServerReflexive, addr, base);
        c.server = Some(server.ip());
        c.related_ip = Some(base.ip());
        c.related_port = Some(base.port());
        c
    }

    /// RFC 8445 §5.1.1.2: a relayed candidate `relayed` allocated on the TURN `server`;
    /// `mapped` is the server-reflexive address the allocation reported, written as
    /// `raddr`/`rport` (RFC 8839 §5.1). Its base is the relayed address itself, so
    /// checks and data on it have `Transmit::source == relayed`: the driver sends them
    /// through its TURN client.
    pub fn relayed(relayed: SocketAddr, mapped: SocketAddr, server: SocketAddr) -> Self {
        let mut c = Candidate::local(CandidateKind::Relayed, relayed, relayed);
        c.server = Some(server.ip());
        c.related_ip = Some(mapped.ip());
        c.related_port = Some(mapped.port());
        c
    }

    /// RFC 8445 §7.2.5.3.1: a local peer-reflexive candidate.
    pub(crate) fn local_peer_reflexive(
        addr: SocketAddr,
        base: SocketAddr,
        priority: u32,
        component: u16,
        transport: CandidateTransport,
    ) -> Self {
        let mut c = Candidate::local(CandidateKind::PeerReflexive, addr, base);
        c.priority = priority;
        c.component = component;
        c.transport = transport;
        c.foundation = candidate_foundation(c.kind, base.ip(), None, transport);
        c.related_ip = Some(base.ip());
        c.related_port = Some(base.port());
        c
    }

    /// RFC 8445 §7.3.1.3: a remote peer-reflexive candidate learnt from a check.
    pub(crate) fn remote_peer_reflexive(
        addr: SocketAddr,
        priority: u32,
        component: u16,
        transport: CandidateTransport,
        foundation: String,
    ) -> Self {
        Candidate {
            foundation,
            component,
            transport,
            priority,
            addr,
            kind: CandidateKind::PeerReflexive,
            related_ip: None,
            related_port: None,
            extensions: Vec::new(),
            base: None,
            server: None,
            local_preference: None,
            mdns_name: None,
        }
    }

    /// The same candidate for another component (RFC 8445 §5.1.1; 1 = RTP or muxed).
    pub fn with_component(mut self, component: u16) -> Self {
        self.component = component;
        self
    }

    /// The same candidate over another transport (RFC 6544 for TCP).
    pub fn with_transport(mut self, transport: CandidateTransport) -> Self {
        self.transport = transport;
        self
    }

    /// RFC 8445 §5.1.2.1: the local preference (0..=65535) the agent computes the
    /// priority with; without it the agent uses 65535 minus the order in which it
    /// first saw the candidate's base IP (a proxy for the interface index).
    pub fn with_local_preference(mut self, local_preference: u16) -> Self {
        self.local_preference = Some(local_preference);
        self
    }

    /// An explicit priority (RFC 8445 §5.1.2), which the agent then keeps.
    pub fn with_priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// An explicit foundation (RFC 8839 §5.1: 1 to 32 ice-chars).
    pub fn with_foundation(mut self, foundation: impl Into<String>) -> Result<Self, IceError> {
        let foundation = foundation.into();
        if !is_valid_foundation(&foundation) {
            return Err(IceError::InvalidCandidate(format!(
                "foundation {foundation:?} is not 1..=32 ice-chars"
            )));
        }
        self.foundation = foundation;
        Ok(self)
    }

    /// RFC 6544 §4.5: sets the `tcptype` extension.
    pub fn with_tcp_type(self, tcp_type: TcpType) -> Self {
        self.with_extension("tcptype", tcp_type.as_sdp())
    }

    /// Sets (or replaces) an extension attribute written after `typ` (RFC 8839 §5.1).
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match self.extensions.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = value,
            None => self.extensions.push((name, value)),
        }
        self
    }

    /// RFC 8445 §5.1.1.3: the foundation.
    pub fn foundation(&self) -> &str {
        &self.foundation
    }

    /// RFC 8445 §5.1.1: the component ID (1 for RTP or a muxed stream).
    pub fn component(&self) -> u16 {
        self.component
    }

    /// The transport.
    pub fn transport(&self) -> CandidateTransport {
        self.transport
    }

    /// RFC 8445 §5.1.2: the priority.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// The candidate's transport address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The type.
    pub fn kind(&self) -> CandidateKind {
        self.kind
    }

    /// RFC 8445 §5.1.1.1: the base of a local candidate: the address checks and data
    /// are sent from (a host address, or the relayed address of a relayed candidate).
    /// `None` for remote candidates.
    pub fn base(&self) -> Option<SocketAddr> {
        self.base
    }

    /// RFC 8839 §5.1: `raddr`/`rport`, when both are present.
    pub fn related_address(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.related_ip?, self.related_port?))
    }

    /// The IP of the STUN or TURN server of a local reflexive or relayed candidate.
    pub fn server(&self) -> Option<IpAddr> {
        self.server
    }

    /// RFC 6544 §4.5: the `tcptype` extension, when present and known.
    pub fn tcp_type(&self) -> Option<TcpType> {
        self.extension("tcptype").and_then(TcpType::from_sdp)
    }

    /// The extension attributes after `typ` (except raddr/rport), in order.
    pub fn extensions(&self) -> &[(String, String)] {
        &self.extensions
    }

    /// The value of one extension attribute (`generation`, `ufrag`, `network-id` ...).
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The local preference asked for with [`Candidate::with_local_preference`].
    pub fn local_preference(&self) -> Option<u16> {
        self.local_preference
    }

    /// The address checks and data on this candidate leave from: the base for local
    /// candidates, the address itself for remote ones.
    pub(crate) fn base_or_addr(&self) -> SocketAddr {
        self.base.unwrap_or(self.addr)
    }

    /// RFC 8445 §6.1.2.2 (and RFC 6544 §6.2): whether local `self` pairs with remote
    /// `remote`: same component, transport and address family (and compatible tcptype).
    pub fn can_pair_with(&self, remote: &Candidate) -> bool {
        if self.component != remote.component
            || self.transport != remote.transport
            || self.addr.is_ipv4() != remote.addr.is_ipv4()
        {
            return false;
        }
        match (self.transport, self.tcp_type(), remote.tcp_type()) {
            (CandidateTransport::Tcp, Some(l), Some(r)) => l.pairs_with(r),
            (CandidateTransport::Tcp, _, _) => false,
            _ => true,
        }
    }

    /// RFC 8839 §5.1: parses a candidate attribute, with or without the `a=candidate:`
    /// or `candidate:` prefix:
    ///
    /// ```text
    /// foundation component transport priority address port typ type
    ///     [raddr addr] [rport port] *(extension-name extension-value)
    /// ```
    ///
    /// Unknown transports and types, host names and odd trailing tokens are errors.
    pub fn from_sdp(sdp: &str) -> Result<Self, IceError> {
        Self::parse(sdp, None)
    }

    /// A candidate whose connection-address is a host name (an mDNS `NAME.local`, as
    /// Chromium signals its host candidates), resolved to `ip` by the caller. The name
    /// is kept ([`mdns_name`](Self::mdns_name)) and signalled again by
    /// [`to_sdp`](Self::to_sdp). A candidate with an IP address is read as by
    /// [`from_sdp`](Self::from_sdp), and `ip` is not used.
    pub fn from_sdp_resolved(sdp: &str, ip: IpAddr) -> Result<Self, IceError> {
        Self::parse(sdp, Some(ip))
    }

    fn parse(sdp: &str, resolved: Option<IpAddr>) -> Result<Self, IceError> {
        let bad = |what: String| Err(IceError::InvalidCandidate(what));
        let s = sdp.trim();
        let s = s.strip_prefix("a=candidate:").unwrap_or(s);
        let s = s.strip_prefix("candidate:").unwrap_or(s);
        let mut tokens = s.split_ascii_whitespace();
        let mut next = |name: &'static str| {
            tokens
                .next()
                .ok_or_else(|| IceError::InvalidCandidate(format!("missing {name}")))
        };
        let foundation = next("foundation")?;
        if !is_valid_foundation(foundation) {
            return bad(format!("foundation {foundation:?} is not 1..=32 ice-chars"));
        }
        let component = next("component")?;
        let component = match component.parse::<u16>() {
            Ok(c) if (1..=256).contains(&c) && component.len() <= 3 => c,
            _ => return bad(format!("component {component:?} is not 1..=256")),
        };
        let transport = next("transport")?;
        let transport = if transport.eq_ignore_ascii_case("udp") {
            CandidateTransport::Udp
        } else if transport.eq_ignore_ascii_case("tcp") {
            CandidateTransport::Tcp
        } else {
            return bad(format!("unsupported transport {transport:?}"));
        };
        let priority = next("priority")?;
        let Ok(priority) = priority.parse::<u32>() else {
            return bad(format!("priority {priority:?} is not a 32-bit number"));
        };
        let address = next("connection-address")?;
        let mut mdns_name = None;
        let ip = match address.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if !address.is_empty() && address.chars().all(is_hostname_char) => {
                match resolved {
                    Some(ip) => {
                        mdns_name = Some(address.to_ascii_lowercase());
                        ip
                    }
                    None => return Err(IceError::HostnameCandidate(address.to_owned())),
                }
            }
            Err(_) => return bad(format!("connection-address {address:?}")),
        };
        let port = next("port")?;
        let Ok(port) = port.parse::<u16>() else {
            return bad(format!("port {port:?}"));
        };
        let typ = next("typ")?;
        if typ != "typ" {
            return bad(format!("expected \"typ\", found {typ:?}"));
        }
        let kind = next("cand-type")?;
        let Some(kind) = CandidateKind::from_sdp(kind) else {
            return bad(format!("unknown candidate type {kind:?}"));
        };
        let mut c = Candidate {
            foundation: foundation.to_owned(),
            component,
            transport,
            priority,
            addr: SocketAddr::new(ip, port),
            kind,
            related_ip: None,
            related_port: None,
            extensions: Vec::new(),
            base: None,
            server: None,
            local_preference: None,
            mdns_name,
        };
        while let Some(name) = tokens.next() {
            let Some(value) = tokens.next() else {
                return bad(format!("extension {name:?} has no value"));
            };
            match name {
                "raddr" => match value.parse::<IpAddr>() {
                    Ok(ip) => c.related_ip = Some(ip),
                    Err(_) => return bad(format!("raddr {value:?}")),
                },
                "rport" => match value.parse::<u16>() {
                    Ok(p) => c.related_port = Some(p),
                    Err(_) => return bad(format!("rport {value:?}")),
                },
                _ => c.extensions.push((name.to_owned(), value.to_owned())),
            }
        }
        Ok(c)
    }

    /// The candidate with its address signalled as the mDNS name `name`
    /// (draft-ietf-mmusic-mdns-ice-candidates §3.1.1: host candidates only).
    pub fn with_mdns_name(mut self, name: impl Into<String>) -> Self {
        self.mdns_name = Some(name.into());
        self
    }

    /// The candidate with `raddr`/`rport` signalled as the unspecified address of its
    /// family and port 0, as libwebrtc does once host addresses are hidden behind mDNS
    /// names (draft-ietf-mmusic-mdns-ice-candidates §3.1.2.2: a server-reflexive
    /// candidate's related address is the host address). Only what is signalled
    /// changes: the base stays, and ICE does not use the related address.
    pub fn with_related_address_hidden(mut self) -> Self {
        if let Some(ip) = self.related_ip {
            self.related_ip = Some(match ip {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            });
            self.related_port = Some(0);
        }
        self
    }

    /// The mDNS name signalled in place of the address, if any.
    pub fn mdns_name(&self) -> Option<&str> {
        self.mdns_name.as_deref()
    }

    /// RFC 8839 §5.1: the candidate attribute's value, without a prefix, as aioice's
    /// `Candidate.to_sdp()` writes it:
    /// `6815297761 1 udp 2130706431 127.0.0.1 50000 typ host`.
    pub fn to_sdp(&self) -> String {
        self.to_string()
    }

    /// RFC 8839 §5.1: the full SDP line, `a=candidate:...`.
    pub fn to_sdp_line(&self) -> String {
        format!("a=candidate:{self}")
    }
}

fn is_hostname_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.'
}

impl fmt::Display for Candidate {
    /// Writes [`Candidate::to_sdp`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            self.transport.as_sdp(),
            self.priority,
            AddressOrName(self),
            self.addr.port(),
            self.kind.as_sdp()
        )?;
        if let Some(ip) = self.related_ip {
            write!(f, " raddr {ip}")?;
        }
        if let Some(port) = self.related_port {
            write!(f, " rport {port}")?;
        }
        for (name, value) in &self.extensions {
            write!(f, " {name} {value}")?;
        }
        Ok(())
    }
}

/// The connection-address as signalled: the mDNS name if there is one, else the IP.
struct AddressOrName<'a>(&'a Candidate);

impl fmt::Display for AddressOrName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.mdns_name {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0.addr.ip()),
        }
    }
}

impl FromStr for Candidate {
    type Err = IceError;

    /// [`Candidate::from_sdp`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Candidate::from_sdp(s)
    }
}

/// RFC 8445 §5.1.2.1: local preferences by base IP, 65535 for the first base seen, then
/// 65534 and so on, so each interface keeps one preference for all its candidates.
#[derive(Clone, Debug, Default)]
pub(crate) struct LocalPreferences(Vec<IpAddr>);

impl LocalPreferences {
    /// The local preference of candidates on `base`.
    pub(crate) fn of(&mut self, base: IpAddr) -> u16 {
        let index = match self.0.iter().position(|ip| *ip == base) {
            Some(i) => i,
            None => {
                self.0.push(base);
                self.0.len() - 1
            }
        };
        u16::MAX.saturating_sub(u16::try_from(index).unwrap_or(u16::MAX))
    }
}

/// RFC 8445 §5.1.1.3, §5.1.2.1, §5.1.3: a local candidate ready to signal — priority and
/// foundation filled in where unset — or `None` when it is redundant with one of
/// `existing` (same address, base, component and transport), has no base, is
/// peer-reflexive, or is not a host candidate of a lite agent.
pub(crate) fn prepare_local_candidate(
    mut candidate: Candidate,
    existing: &[Candidate],
    lite: bool,
    preferences: &mut LocalPreferences,
) -> Option<Candidate> {
    let base = candidate.base?;
    if candidate.kind == CandidateKind::PeerReflexive
        || (lite && candidate.kind != CandidateKind::Host)
    {
        return None;
    }
    if super::tcp::shares_base_across_transports(&candidate, existing) {
        tracing::debug!(%candidate, "a UDP and a TCP candidate cannot share a base");
        return None;
    }
    if existing.iter().any(|c| {
        c.addr == candidate.addr
            && c.base == candidate.base
            && c.component == candidate.component
            && c.transport == candidate.transport
    }) {
        return None;
    }
    if candidate.priority == 0 {
        let preference = candidate
            .local_preference
            .unwrap_or_else(|| super::tcp::local_preference(&candidate, preferences.of(base.ip())));
        candidate.priority = candidate_priority(candidate.kind, preference, candidate.component);
    }
    if candidate.foundation.is_empty() {
        candidate.foundation = candidate_foundation(
            candidate.kind,
            base.ip(),
            candidate.server,
            candidate.transport,
        );
    }
    Some(candidate)
}
