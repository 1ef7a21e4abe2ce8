//! What an Allocate needs from the driver: relay sockets, and a quota check.
//!
//! RFC 8656 §7.2 in two phases. The core validates and authenticates the Allocate,
//! then asks for relays with a [`RelayRequest`] ([`Server::poll_relay_request`]). The
//! driver checks its quotas, binds (or parks, or takes over) sockets, and answers with
//! [`Server::relay_ready`]; the core then sends the success or error response. The RFC's
//! rules (EVEN-PORT, the reserved next port, RESERVATION-TOKEN, which error code) stay
//! here: the request says which ports to try, in which order, and the token to park the
//! reserved one under.
//!
//! [`Server::poll_relay_request`]: super::Server::poll_relay_request
//! [`Server::relay_ready`]: super::Server::relay_ready

use std::net::{IpAddr, SocketAddr};

use super::allocation::FiveTuple;
use crate::turn::TurnError;

/// Binds a driver tries before it answers 508: each is a syscall, and a full range
/// would otherwise cost thousands of them.
pub const MAX_RELAY_BINDS: u32 = 64;

/// Identifies one pending Allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayRequestId(pub u64);

/// An authenticated Allocate waiting for its relays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayRequest {
    /// Answer with [`Server::relay_ready`](super::Server::relay_ready) and this id.
    pub id: RelayRequestId,
    /// The client's 5-tuple.
    pub five_tuple: FiveTuple,
    /// The authenticated user, for per-user quotas.
    pub username: String,
    /// Which sockets the allocation needs.
    pub relays: RelayAsk,
}

/// The sockets an Allocate asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayAsk {
    /// Bind a new relay on one of `primary`'s candidates.
    Bind {
        /// Where the relayed address may go (RFC 8656 §7.2 EVEN-PORT: even ports only,
        /// and with R the next port free too).
        primary: PortCandidates,
        /// EVEN-PORT with R: park the candidate's `reserved` address under this token,
        /// where any thread of the server can redeem it.
        reservation: Option<[u8; 8]>,
        /// ADDITIONAL-ADDRESS-FAMILY IPv6: a second relay on one of these; when none
        /// binds, the allocation is IPv4 only and says so (ADDRESS-ERROR-CODE 440).
        additional: Option<PortCandidates>,
    },
    /// RESERVATION-TOKEN: take over the socket parked under `token`.
    Redeem {
        /// the token the client gave
        token: [u8; 8],
    },
}

/// One address to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Bind the relay here.
    pub relay: SocketAddr,
    /// And park this one (the next port) for the reservation token.
    pub reserved: Option<SocketAddr>,
}

/// The ports of the relay range in the order to try them: a random permutation (a
/// random start and a random stride coprime to the range's size), even ones only for
/// EVEN-PORT, and at most [`MAX_RELAY_BINDS`] of them. Random, so that nobody can guess
/// the next relayed address (CVE-2025-69217 was about predictable ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortCandidates {
    ip: IpAddr,
    first: u32,
    hi: u32,
    count: u32,
    step: u32,
    start: u32,
    stride: u32,
    reserve_next: bool,
    next: u32,
    tried: u32,
}

impl PortCandidates {
    /// Candidates on `ip` within `[min, max]`; `random` picks the order.
    pub(super) fn new(
        ip: IpAddr,
        min: u16,
        max: u16,
        even: bool,
        reserve_next: bool,
        random: u64,
    ) -> Self {
        // In u32: rounding 65535 up to even must not wrap to port 0.
        let (min, hi) = (u32::from(min), u32::from(max));
        let step = if even { 2 } else { 1 };
        let first = if even { min + min % 2 } else { min };
        let count = if first > hi {
            0
        } else {
            (hi - first) / step + 1
        };
        let (start, stride) = if count == 0 {
            (0, 1)
        } else {
            let start = (random as u32) % count;
            let mut stride = 1 + ((random >> 32) as u32) % count.max(2).saturating_sub(1);
            while gcd(stride, count) != 1 {
                stride += 1;
            }
            (start, stride)
        };
        PortCandidates {
            ip,
            first,
            hi,
            count,
            step,
            start,
            stride,
            reserve_next,
            next: 0,
            tried: 0,
        }
    }

    /// The IP the relay binds to.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The next address to try, skipping those `taken` says are in use (they cost no
    /// bind); `None` when the range or the bind budget is spent.
    pub fn next_free(&mut self, taken: impl Fn(SocketAddr) -> bool) -> Option<Candidate> {
        while self.next < self.count && self.tried < MAX_RELAY_BINDS {
            let i = (u64::from(self.start) + u64::from(self.next) * u64::from(self.stride))
                % u64::from(self.count);
            self.next += 1;
            let port = self.first + (i as u32) * self.step;
            // `count` keeps every port within [first, hi], and hi is a u16.
            let Ok(port16) = u16::try_from(port) else {
                continue;
            };
            let relay = SocketAddr::new(self.ip, port16);
            if taken(relay) {
                continue;
            }
            let reserved = if self.reserve_next {
                let Some(next) = u16::try_from(port + 1).ok().filter(|_| port < self.hi) else {
                    continue;
                };
                let next = SocketAddr::new(self.ip, next);
                if taken(next) {
                    continue;
                }
                Some(next)
            } else {
                None
            };
            self.tried += 1;
            return Some(Candidate { relay, reserved });
        }
        None
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// What the driver bound for a [`RelayRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayGrant {
    /// The relayed address (a bound address, not the advertised one).
    pub relayed: SocketAddr,
    /// The next port, parked under the request's reservation token.
    pub reserved: Option<SocketAddr>,
    /// The IPv6 relay of a dual allocation; `None` when it could not be bound.
    pub additional: Option<SocketAddr>,
}

/// Why the driver could not fulfil a [`RelayRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayRefusal {
    /// The user's allocation quota is reached (486).
    QuotaReached,
    /// The server's total allocation quota is reached: 486, or 300 to the
    /// `alternate_server` when one is configured (RFC 8489 §10).
    ServerFull,
    /// No relay port could be bound: 508, or 300 to the `alternate_server`.
    PortsExhausted,
    /// The reservation token is unknown or used, or its port cannot be taken over (508).
    InsufficientCapacity,
}

impl RelayRefusal {
    /// Whether the refusal is about this node, not the user or the request: another node
    /// may well allocate, so a configured alternate server is offered.
    pub fn node_is_full(self) -> bool {
        matches!(
            self,
            RelayRefusal::ServerFull | RelayRefusal::PortsExhausted
        )
    }
}

impl From<RelayRefusal> for TurnError {
    fn from(r: RelayRefusal) -> Self {
        match r {
            RelayRefusal::QuotaReached | RelayRefusal::ServerFull => TurnError::QuotaReached,
            RelayRefusal::PortsExhausted | RelayRefusal::InsufficientCapacity => {
                TurnError::InsufficientCapacity
            }
        }
    }
}
