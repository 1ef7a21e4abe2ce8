//! The configuration of an [`IceAgent`](super::IceAgent): the core's timers and role,
//! the STUN and TURN servers, and which addresses host candidates are gathered on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use floe::ice::{IceConfig, IceRole};
use floe::stun::transaction::TransactionConfig;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// How an agent reaches a TURN server (RFC 8656 §3.1). The relayed address is UDP
/// either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnTransport {
    /// UDP to the server.
    #[default]
    Udp,
    /// TCP to the server, STUN and ChannelData framed on the stream (RFC 8656 §12.5).
    Tcp,
}

/// One TURN server to gather a relayed candidate from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TurnServerConfig {
    /// The server.
    pub addr: SocketAddr,
    /// UDP or TCP to it.
    #[serde(default)]
    pub transport: TurnTransport,
    /// Long-term credential username (RFC 8489 §9.2).
    pub username: String,
    /// Long-term credential password.
    pub password: Secret,
}

impl TurnServerConfig {
    /// A TURN server reached over UDP.
    pub fn udp(addr: SocketAddr, username: impl Into<String>, password: impl Into<String>) -> Self {
        TurnServerConfig {
            addr,
            transport: TurnTransport::Udp,
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// The same server reached over TCP.
    pub fn over_tcp(mut self) -> Self {
        self.transport = TurnTransport::Tcp;
        self
    }
}

/// Which local addresses host candidates are gathered on (RFC 8445 §5.1.1.1), and
/// which candidate types are signalled.
///
/// The defaults are safe for a real deployment: every interface that is up, IPv4 and
/// IPv6, without loopback and IPv6 link-local addresses. Tests set
/// [`GatherConfig::loopback_only`] (INTEROP.md: tests send to 127.0.0.1 and ::1 only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct GatherConfig {
    /// Include loopback addresses (off by default).
    pub loopback: bool,
    /// Only loopback addresses: a machine-local test or lab setup.
    pub loopback_only: bool,
    /// IPv4 addresses.
    pub ipv4: bool,
    /// IPv6 addresses.
    pub ipv6: bool,
    /// IPv6 link-local addresses (fe80::/10; off by default).
    pub link_local: bool,
    /// When not empty, only these addresses (after the filters above).
    pub addresses: Vec<IpAddr>,
    /// Signal relayed candidates only (host sockets are still opened to reach the
    /// TURN servers, but neither host nor server-reflexive candidates are used).
    pub relay_only: bool,
    /// How long a Binding or Allocate may take before the server counts as
    /// unreachable (retransmitted at 0.5, 1.5, 3.5 s ... within it).
    pub server_timeout: Duration,
    /// Signal IPv4 host candidates as mDNS `UUID.local` names and answer for them
    /// (draft-ietf-mmusic-mdns-ice-candidates), as browsers do; off by default. Remote
    /// `.local` candidates are resolved either way.
    pub mdns: bool,
    /// Continual gathering (libwebrtc's GATHER_CONTINUALLY; off by default): the
    /// interfaces are listed again this often. A new address gets host (and
    /// server-reflexive) candidates, trickled as they come; a gone one's candidates
    /// and pairs are removed. Gathering then never completes: no
    /// [`IceEvent::GatheringComplete`](super::IceEvent::GatheringComplete), since a
    /// peer ignores candidates after end-of-candidates (RFC 8838 §13).
    pub continual: Option<Duration>,
    /// Where the host's addresses come from (the interfaces through `if_addrs` unless
    /// replaced, as tests do); the filters above apply to what it lists.
    #[serde(skip)]
    pub interfaces: InterfaceSource,
    /// RFC 6544: also gather TCP host candidates (a passive one, listening, and an
    /// active one, signalled with port 9) per host IP, for component 1; they rank below
    /// the UDP ones. Off by default.
    pub tcp: bool,
    /// RFC 6544: TCP host candidates only: no UDP socket, no server-reflexive or relayed
    /// candidate.
    pub tcp_only: bool,
}

/// Lists the host's interface addresses that are up: the system's (through
/// `if_addrs`) by default, or a closure — so that a test can make addresses appear and
/// go without touching the host's interfaces.
#[derive(Clone)]
pub struct InterfaceSource(Arc<InterfaceFn>);

type InterfaceFn = dyn Fn() -> std::io::Result<Vec<IpAddr>> + Send + Sync;

impl InterfaceSource {
    /// Addresses from `list`, called at gathering and at each continual poll.
    pub fn new(list: impl Fn() -> std::io::Result<Vec<IpAddr>> + Send + Sync + 'static) -> Self {
        InterfaceSource(Arc::new(list))
    }

    /// The addresses now.
    pub fn list(&self) -> std::io::Result<Vec<IpAddr>> {
        (self.0)()
    }
}

impl Default for InterfaceSource {
    /// The system's interfaces that are up.
    fn default() -> Self {
        InterfaceSource::new(super::gather::system_addresses)
    }
}

impl std::fmt::Debug for InterfaceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InterfaceSource")
    }
}

impl PartialEq for InterfaceSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for InterfaceSource {}

impl Default for GatherConfig {
    fn default() -> Self {
        GatherConfig {
            loopback: false,
            loopback_only: false,
            ipv4: true,
            ipv6: true,
            link_local: false,
            addresses: Vec::new(),
            relay_only: false,
            server_timeout: Duration::from_secs(8),
            mdns: false,
            continual: None,
            interfaces: InterfaceSource::default(),
            tcp: false,
            tcp_only: false,
        }
    }
}

impl GatherConfig {
    /// Loopback only (127.0.0.1 and ::1): what tests use.
    pub fn loopback_only() -> Self {
        GatherConfig {
            loopback: true,
            loopback_only: true,
            ..GatherConfig::default()
        }
    }

    /// Whether TCP host candidates are gathered (`tcp` or `tcp_only`, and not
    /// `relay_only`).
    pub fn gathers_tcp(&self) -> bool {
        (self.tcp || self.tcp_only) && !self.relay_only
    }

    /// Whether host candidates may be gathered on `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let loopback = ip.is_loopback();
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        let family = match ip {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        };
        family
            && !ip.is_unspecified()
            && !ip.is_multicast()
            && (self.loopback || !loopback)
            && (!self.loopback_only || loopback)
            && (self.link_local || !link_local)
            && (self.addresses.is_empty() || self.addresses.contains(&ip))
    }

    /// The retransmission timers of Bindings and Allocates, fitted into
    /// [`GatherConfig::server_timeout`]: RTO 500 ms doubling, the last wait up to the
    /// timeout.
    pub(crate) fn transaction(&self) -> TransactionConfig {
        let rto = Duration::from_millis(500);
        // Sends at 0, 0.5, 1.5, 3.5, 7.5 ... s: as many as fit, then wait Rm * RTO.
        let total = self.server_timeout.max(Duration::from_secs(1));
        let mut rc = 1;
        let mut sent_at = Duration::ZERO;
        let mut gap = rto;
        while sent_at + gap + rto <= total && rc < 7 {
            sent_at += gap;
            gap *= 2;
            rc += 1;
        }
        let rm = ((total - sent_at).as_millis() / rto.as_millis()).max(1) as u32;
        TransactionConfig {
            rto,
            rc,
            rm,
            reliable_timeout: total,
        }
    }
}

/// Everything an [`IceAgent`](super::IceAgent) is started with.
///
/// ```
/// use floe_actors::ice::{AgentConfig, GatherConfig, TurnServerConfig};
/// use floe::ice::IceRole;
/// let mut config = AgentConfig::new(IceRole::Controlling);
/// config.gather = GatherConfig::loopback_only();
/// config.turn.push(TurnServerConfig::udp("127.0.0.1:3478".parse().unwrap(), "bob", "secret"));
/// config.gather.relay_only = true;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct AgentConfig {
    /// The core's role, Ta, timers and limits (built in code; not read from TOML).
    #[serde(skip)]
    pub ice: IceConfig,
    /// STUN servers: a server-reflexive candidate from each, per host address of
    /// the same family (RFC 8445 §5.1.1.2).
    pub stun: Vec<SocketAddr>,
    /// TURN servers: a relayed candidate from each (RFC 8445 §5.1.1.2, RFC 8656).
    pub turn: Vec<TurnServerConfig>,
    /// Host addresses and candidate types.
    pub gather: GatherConfig,
    /// Data streams (m-lines), each with its own credentials and checklist (1).
    pub streams: usize,
    /// Components of each stream (1; 2 for RTP and RTCP).
    pub components: u16,
    /// Single-port mode: stream 0, component 1 has its one host candidate on this
    /// socket shared with other agents (an [`IceUdpMux`](super::IceUdpMux)), instead of
    /// sockets of its own; no server-reflexive candidate is gathered on it. Other
    /// streams and components gather as usual.
    #[serde(skip)]
    pub shared_socket: Option<super::IceUdpMuxHandle>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig::new(IceRole::Controlling)
    }
}

impl AgentConfig {
    /// The defaults with the given starting role.
    pub fn new(role: IceRole) -> Self {
        AgentConfig {
            ice: IceConfig::new(role),
            stun: Vec::new(),
            turn: Vec::new(),
            gather: GatherConfig::default(),
            streams: 1,
            components: 1,
            shared_socket: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_leaves_loopback_and_link_local_out() {
        let g = GatherConfig::default();
        assert!(g.allows("192.0.2.1".parse().unwrap()));
        assert!(g.allows("2001:db8::1".parse().unwrap()));
        assert!(!g.allows("127.0.0.1".parse().unwrap()));
        assert!(!g.allows("::1".parse().unwrap()));
        assert!(!g.allows("fe80::1".parse().unwrap()));
        assert!(!g.allows("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn loopback_only_allows_loopback_alone() {
        let g = GatherConfig::loopback_only();
        assert!(g.allows("127.0.0.1".parse().unwrap()));
        assert!(g.allows("::1".parse().unwrap()));
        assert!(!g.allows("192.0.2.1".parse().unwrap()));
        let mut v4 = GatherConfig::loopback_only();
        v4.ipv6 = false;
        assert!(!v4.allows("::1".parse().unwrap()));
    }

    #[test]
    fn server_transactions_fit_the_timeout() {
        let g = GatherConfig::default();
        let t = g.transaction();
        // 0, 0.5, 1.5, 3.5, 7.5 s, then one RTO: 8 s.
        assert_eq!((t.rc, t.rm), (5, 1));
        assert_eq!(t.reliable_timeout, Duration::from_secs(8));
    }
}
