//! ICE-TCP (RFC 6544): TCP host candidates (active, passive, simultaneous-open), their
//! priorities (§4.2), and the agent's side of the connections checks and data go on
//! (§7): which connection to open, and what the driver reports back.
//!
//! Which pairs are formed (§6.2: active with passive, passive with active, S-O with S-O,
//! never UDP with TCP) is [`Candidate::can_pair_with`]; a local passive candidate forms
//! no pairs of its own (§6.2: its pairs are pruned) and is only checked over connections
//! the peer opened to it, on the pairs their checks create (§7.2: the remote is then
//! peer-reflexive, of type active). The checklist's half — waiting for a connection
//! before a check goes out, and failing pairs whose connection failed or closed — is in
//! `checklist/tcp.rs`.
//!
//! Every packet on a TCP pair (checks, responses, keepalives, application data) is one
//! [`Transmit`](crate::Transmit) with [`Transport::Tcp`](crate::Transport::Tcp); the
//! driver frames it on the connection with RFC 4571 ([`crate::rfc4571`]). Checks over
//! TCP are not retransmitted and time out after RFC 8489 §6.2.2's Ti, 39.5 s.
//!
//! ```text
//! driver                                     Agent
//!   ── add_local_candidate(tcp_host(.., Active)) ──▶ signals "... tcp .. 9 typ host tcptype active"
//!   ◀──────── poll_tcp_connect(): TcpConnect { local: ip:9, remote } (when the check is due)
//!   connect from ip:0 to remote; then
//!   ── handle_tcp_connected(now, ip:9, remote) ────▶ the check goes out (poll_transmit, Tcp)
//!   (or handle_tcp_connect_failed: the pair fails)
//!   bytes on the connection, unframed ──▶ receive(now, remote, ip:9, packet)
//!   a passive listener's accepted connection from peer:
//!   ── handle_tcp_accepted(now, listener, peer) ──▶ receive(now, peer, listener, packet) ...
//!   ── handle_tcp_closed(now, local, remote) ──────▶ pairs on it fail, a selected pair loses consent
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::agent::Agent;
use super::candidate::{Candidate, CandidateKind, CandidateTransport, TcpType};

/// RFC 6544 §4.5: the port an active candidate is signalled with (it never accepts).
pub const ACTIVE_PORT: u16 = 9;

/// RFC 8489 §6.2.2 (RFC 6544 §7.1): a check over TCP is sent once and times out after
/// Ti = 39.5 s.
pub const TCP_CHECK_TIMEOUT: Duration = Duration::from_millis(39_500);

/// RFC 6544 §7.1: open a TCP connection for a check, from the local candidate's IP (any
/// port) to `remote`; report the outcome with [`Agent::handle_tcp_connected`] or
/// [`Agent::handle_tcp_connect_failed`], naming the connection by this `local` (the
/// candidate's base, port 9 for an active candidate) and `remote`, as every later
/// transmit and [`Agent::receive`] on it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpConnect {
    /// The local candidate's base: packets on the connection use it as their source
    /// (transmits) and destination (`receive`).
    pub local: SocketAddr,
    /// The remote candidate's address.
    pub remote: SocketAddr,
}

/// RFC 6544 §4.2: the direction preference (0..=7) of a TCP candidate: for host
/// candidates active 6, passive 4, S-O 2; for the others (behind a NAT) active 6,
/// passive 2, S-O 4.
pub fn direction_preference(kind: CandidateKind, tcp_type: TcpType) -> u16 {
    match (kind, tcp_type) {
        (_, TcpType::Active) => 6,
        (CandidateKind::Host, TcpType::Passive) => 4,
        (CandidateKind::Host, TcpType::SimultaneousOpen) => 2,
        (_, TcpType::Passive) => 2,
        (_, TcpType::SimultaneousOpen) => 4,
    }
}

/// RFC 6544 §4.2: `local preference = 2^13 * direction-pref + other-pref`, with
/// other-pref (0..=8191) 8191 minus the interface's index.
///
/// A UDP candidate's local preference is 65535 minus that index, so a TCP candidate
/// (at most 6 * 8192 + 8191 = 57343) ranks below the UDP candidate of the same type on
/// the same interface: TCP pairs are checked after, and lose to, UDP pairs when both
/// are present.
pub fn tcp_local_preference(kind: CandidateKind, tcp_type: TcpType, interface: u16) -> u16 {
    (direction_preference(kind, tcp_type) << 13) | 8191u16.saturating_sub(interface)
}

/// The local preference of a local candidate without an explicit one, from the UDP
/// preference of its interface (`65535 - index`).
pub(crate) fn local_preference(candidate: &Candidate, udp_preference: u16) -> u16 {
    match (candidate.transport, candidate.tcp_type()) {
        (CandidateTransport::Tcp, Some(t)) => {
            tcp_local_preference(candidate.kind, t, u16::MAX - udp_preference)
        }
        _ => udp_preference,
    }
}

/// RFC 6544 §7.2: the type of the peer-reflexive candidate at the other end of a
/// connection whose local end is of type `local`.
pub fn counterpart(local: TcpType) -> TcpType {
    match local {
        TcpType::Active => TcpType::Passive,
        TcpType::Passive => TcpType::Active,
        TcpType::SimultaneousOpen => TcpType::SimultaneousOpen,
    }
}

impl Candidate {
    /// RFC 6544 §4.5: a TCP host candidate. A passive one is a listening socket's
    /// address; an active one is signalled with port 9 (its connections leave from
    /// ephemeral ports of `addr`'s IP, so `addr`'s port is ignored); a simultaneous-open
    /// one is the address connections leave from and are accepted on.
    ///
    /// ```
    /// use floe::ice::{Agent, Candidate, IceConfig, IceRole, TcpType};
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let mut agent = Agent::new(IceConfig::new(IceRole::Controlling), StdRng::seed_from_u64(1));
    /// let udp = agent.add_local_candidate(Candidate::host("127.0.0.1:5000".parse().unwrap())).unwrap();
    /// let active = Candidate::tcp_host("127.0.0.1:0".parse().unwrap(), TcpType::Active);
    /// let active = agent.add_local_candidate(active).unwrap();
    /// assert!(active.to_sdp().ends_with(" tcp 2128609279 127.0.0.1 9 typ host tcptype active"));
    /// assert!(active.priority() < udp.priority());
    /// ```
    pub fn tcp_host(addr: SocketAddr, tcp_type: TcpType) -> Self {
        let addr = match tcp_type {
            TcpType::Active => SocketAddr::new(addr.ip(), ACTIVE_PORT),
            _ => addr,
        };
        Candidate::host(addr)
            .with_transport(CandidateTransport::Tcp)
            .with_tcp_type(tcp_type)
    }

    /// Whether this is a TCP passive candidate (it forms no pairs of its own).
    pub(crate) fn is_tcp_passive(&self) -> bool {
        self.transport == CandidateTransport::Tcp && self.tcp_type() == Some(TcpType::Passive)
    }

    /// Whether checks from this (local) candidate need a connection the agent asks for:
    /// an active or simultaneous-open TCP candidate.
    pub(crate) fn opens_connections(&self) -> bool {
        self.transport == CandidateTransport::Tcp
            && matches!(
                self.tcp_type(),
                Some(TcpType::Active | TcpType::SimultaneousOpen)
            )
    }

    /// A peer-reflexive candidate learnt on a TCP connection gets a `tcptype`: `t`.
    pub(crate) fn with_tcp_type_of(self, t: Option<TcpType>) -> Self {
        match (self.transport, t) {
            (CandidateTransport::Tcp, Some(t)) => self.with_tcp_type(t),
            _ => self,
        }
    }
}

/// Whether `candidate` would share its base with a local candidate of the other
/// transport: the agent tells UDP from TCP packets by the local address they arrive
/// on, so the driver must keep their ports apart.
pub(crate) fn shares_base_across_transports(candidate: &Candidate, existing: &[Candidate]) -> bool {
    existing
        .iter()
        .any(|c| c.base == candidate.base && c.transport != candidate.transport)
}

impl Agent {
    /// RFC 6544 §7.1: the next TCP connection to open for a check (see [`TcpConnect`]).
    /// Drain it after every call, like [`Agent::poll_transmit`].
    pub fn poll_tcp_connect(&mut self) -> Option<TcpConnect> {
        self.streams
            .iter_mut()
            .find_map(|s| s.for_checklists_find(|c| c.poll_tcp_connect()))
    }

    /// RFC 6544 §7.1: the connection from `local` to `remote` asked for by
    /// [`Agent::poll_tcp_connect`] is open: the checks waiting for it go out.
    pub fn handle_tcp_connected(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        for s in &mut self.streams {
            s.for_checklists(|c| c.handle_tcp_connected(now, local, remote));
        }
        self.drive(now);
    }

    /// RFC 6544 §7.1: the connection could not be opened: the pairs waiting for it fail.
    pub fn handle_tcp_connect_failed(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        for s in &mut self.streams {
            s.for_checklists(|c| c.handle_tcp_connect_failed(now, local, remote));
        }
        self.drive(now);
    }

    /// RFC 6544 §7.2: a passive (or S-O) candidate's listener on `local` accepted a
    /// connection from `remote`. Checks arriving on it may create peer-reflexive
    /// candidates and pairs whose checks go back on the same connection.
    pub fn handle_tcp_accepted(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        for s in &mut self.streams {
            s.for_checklists(|c| c.handle_tcp_accepted(local, remote));
        }
        self.drive(now);
    }

    /// The connection between `local` and `remote` closed (or failed): checks on it
    /// fail, and a selected pair on it loses consent (RFC 7675: nothing can reach the
    /// peer on it any more).
    pub fn handle_tcp_closed(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        for s in &mut self.streams {
            s.for_checklists(|c| c.handle_tcp_closed(now, local, remote));
        }
        self.drive(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ice::{candidate_priority, IceConfig, IceRole};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc_6544_local_preferences() {
        let host = CandidateKind::Host;
        assert_eq!(
            tcp_local_preference(host, TcpType::Active, 0),
            6 * 8192 + 8191
        );
        assert_eq!(
            tcp_local_preference(host, TcpType::Passive, 0),
            4 * 8192 + 8191
        );
        assert_eq!(
            tcp_local_preference(host, TcpType::SimultaneousOpen, 1),
            2 * 8192 + 8190
        );
        let srflx = CandidateKind::ServerReflexive;
        assert_eq!(direction_preference(srflx, TcpType::Passive), 2);
        assert_eq!(direction_preference(srflx, TcpType::SimultaneousOpen), 4);
        assert_eq!(
            direction_preference(CandidateKind::Relayed, TcpType::Active),
            6
        );
    }

    #[test]
    fn tcp_candidates_rank_below_udp_on_the_same_interface() {
        let mut agent = Agent::new(
            IceConfig::new(IceRole::Controlling),
            StdRng::seed_from_u64(3),
        );
        let udp = agent
            .add_local_candidate(Candidate::host(addr("10.0.0.1:5000")))
            .unwrap();
        let udp2 = agent
            .add_local_candidate(Candidate::host(addr("10.0.1.1:5000")))
            .unwrap();
        let act = agent
            .add_local_candidate(Candidate::tcp_host(addr("10.0.0.1:0"), TcpType::Active))
            .unwrap();
        let pas = agent
            .add_local_candidate(Candidate::tcp_host(addr("10.0.0.1:5001"), TcpType::Passive))
            .unwrap();
        assert_eq!(act.addr(), addr("10.0.0.1:9"));
        assert_eq!(act.tcp_type(), Some(TcpType::Active));
        assert_eq!(
            act.priority(),
            candidate_priority(CandidateKind::Host, 57343, 1)
        );
        assert_eq!(
            pas.priority(),
            candidate_priority(CandidateKind::Host, 4 * 8192 + 8191, 1)
        );
        assert!(udp.priority() > udp2.priority());
        assert!(udp2.priority() > act.priority());
        assert!(act.priority() > pas.priority());
        assert_ne!(
            udp.foundation(),
            act.foundation(),
            "RFC 8445 §5.1.1.3: transport"
        );
        assert_eq!(act.foundation(), pas.foundation());
        let line = pas.to_sdp();
        assert!(
            line.ends_with("10.0.0.1 5001 typ host tcptype passive"),
            "{line}"
        );
        let back: Candidate = line.parse().unwrap();
        assert_eq!(back.tcp_type(), Some(TcpType::Passive));
    }

    #[test]
    fn a_tcp_candidate_on_a_udp_candidate_s_port_is_refused() {
        let mut agent = Agent::new(
            IceConfig::new(IceRole::Controlling),
            StdRng::seed_from_u64(3),
        );
        agent
            .add_local_candidate(Candidate::host(addr("10.0.0.1:5000")))
            .unwrap();
        let clash = Candidate::tcp_host(addr("10.0.0.1:5000"), TcpType::Passive);
        assert!(agent.add_local_candidate(clash).is_none());
    }

    #[test]
    fn rfc_6544_pairing() {
        let l = |t| Candidate::tcp_host(addr("10.0.0.1:5000"), t);
        let r = |t| Candidate::tcp_host(addr("10.0.0.2:6000"), t);
        use TcpType::*;
        assert!(l(Active).can_pair_with(&r(Passive)));
        assert!(l(Passive).can_pair_with(&r(Active)));
        assert!(l(SimultaneousOpen).can_pair_with(&r(SimultaneousOpen)));
        assert!(!l(Active).can_pair_with(&r(Active)));
        assert!(!l(Passive).can_pair_with(&r(Passive)));
        assert!(!l(Active).can_pair_with(&r(SimultaneousOpen)));
        let udp = Candidate::host(addr("10.0.0.2:6000"));
        assert!(!l(Passive).can_pair_with(&udp));
        assert!(!Candidate::host(addr("10.0.0.1:5000")).can_pair_with(&r(Passive)));
        assert_eq!(counterpart(Passive), Active);
        assert_eq!(counterpart(Active), Passive);
    }
}
