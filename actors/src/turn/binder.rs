//! Fulfils the core's relay requests (see `floe::turn::server::relay`): checks the
//! quotas, binds relay sockets, and parks or takes over the sockets of reservation
//! tokens. The RFC's rules (which ports, the token) come from the core's request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use floe::turn::server::{PortCandidates, RelayAsk, RelayGrant, RelayRefusal, RelayRequest};

use super::quota::Quotas;
use crate::udp::{BatchSocket, ParkedSocket, UdpSocketConfig};

/// A relay socket held for a RESERVATION-TOKEN, and the user whose quota it counts in.
#[derive(Debug)]
struct Parked {
    socket: ParkedSocket,
    user: String,
}

/// Relay sockets held for a RESERVATION-TOKEN, shared by every Arbiter of a server:
/// bound but not registered with a reactor, so whichever Arbiter the redeeming Allocate
/// reaches (SO_REUSEPORT spreads clients by 5-tuple) can take them.
#[derive(Clone, Debug, Default)]
pub(crate) struct ParkedRelays(Arc<Mutex<HashMap<[u8; 8], Parked>>>);

impl ParkedRelays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 8], Parked>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sockets bound for a grant, by relayed address, until their relays start.
pub(crate) type BoundRelays = Vec<(SocketAddr, BatchSocket)>;

/// Binds relay sockets for the core of one Arbiter.
pub(crate) struct RelayBinder {
    config: UdpSocketConfig,
    quotas: Arc<Quotas>,
    parked: ParkedRelays,
}

impl RelayBinder {
    pub(crate) fn new(quotas: Arc<Quotas>, parked: ParkedRelays) -> Self {
        RelayBinder {
            config: Self::relay_config(),
            quotas,
            parked,
        }
    }

    /// How relay sockets are made: no GRO (datagrams go one by one to the core), 256 KiB
    /// kernel buffers, and no wake-ups for writability (they only send with
    /// `try_send_batch`, which drops on a full buffer as a router would; without it
    /// every datagram sent toward a peer came back as an epoll event).
    pub(crate) fn relay_config() -> UdpSocketConfig {
        UdpSocketConfig {
            gro: false,
            writable_wakeups: false,
            recv_buffer_size: Some(256 << 10),
            send_buffer_size: Some(256 << 10),
            ..UdpSocketConfig::default()
        }
    }

    /// Takes a quota and binds what `request` asks for; `in_use` tells addresses this
    /// Arbiter relays on already (they cost no bind). On a refusal nothing is held.
    ///
    /// A reservation (EVEN-PORT with R) takes two allocations of the quota: the one made
    /// now and the reserved port. Redeeming a token takes none: the reserved port's
    /// allocation moves to the redeemer.
    pub(crate) fn fulfil(
        &self,
        request: RelayRequest,
        in_use: impl Fn(SocketAddr) -> bool,
    ) -> Result<(RelayGrant, BoundRelays), RelayRefusal> {
        let user = request.username;
        match request.relays {
            RelayAsk::Redeem { token } => self.redeem(token, &user),
            RelayAsk::Bind {
                primary,
                reservation,
                additional,
            } => {
                let units = if reservation.is_some() { 2 } else { 1 };
                self.quotas.acquire(&user, units)?;
                let Some((relayed, socket, reserved)) =
                    self.bind_one(primary, reservation.map(|t| (t, user.as_str())), &in_use)
                else {
                    for _ in 0..units {
                        self.quotas.release(&user);
                    }
                    return Err(RelayRefusal::PortsExhausted);
                };
                if reservation.is_some() && reserved.is_none() {
                    self.quotas.release(&user);
                }
                let mut bound = vec![(relayed, socket)];
                let additional = additional
                    .and_then(|c| self.bind_one(c, None, &in_use))
                    .map(|(addr, socket, _)| {
                        bound.push((addr, socket));
                        addr
                    });
                let grant = RelayGrant {
                    relayed,
                    reserved,
                    additional,
                };
                Ok((grant, bound))
            }
        }
    }

    /// RESERVATION-TOKEN: takes over the socket parked under `token`, and its place in
    /// the quota.
    fn redeem(
        &self,
        token: [u8; 8],
        user: &str,
    ) -> Result<(RelayGrant, BoundRelays), RelayRefusal> {
        let mut parked = self.parked.lock();
        let owner = &parked
            .get(&token)
            .ok_or(RelayRefusal::InsufficientCapacity)?
            .user;
        if !self.quotas.transfer(owner, user) {
            return Err(RelayRefusal::QuotaReached);
        }
        let Parked { socket, .. } = parked.remove(&token).expect("looked up");
        drop(parked);
        let addr = socket.local_addr();
        let Ok(socket) = BatchSocket::register(socket) else {
            self.quotas.release(user);
            return Err(RelayRefusal::InsufficientCapacity);
        };
        let grant = RelayGrant {
            relayed: addr,
            reserved: None,
            additional: None,
        };
        Ok((grant, vec![(addr, socket)]))
    }

    /// Binds the first candidate the OS lets us have; with `token`, parks the next port
    /// under it too (a candidate whose next port is taken is passed over).
    fn bind_one(
        &self,
        mut candidates: PortCandidates,
        token: Option<([u8; 8], &str)>,
        in_use: &impl Fn(SocketAddr) -> bool,
    ) -> Option<(SocketAddr, BatchSocket, Option<SocketAddr>)> {
        while let Some(c) = candidates.next_free(in_use) {
            let Ok(socket) = BatchSocket::bind(c.relay, &self.config) else {
                continue;
            };
            match (c.reserved, token) {
                (Some(next), Some((token, user))) => {
                    // A failed park drops (closes) `socket` and tries the next candidate.
                    if let Ok(parked) = BatchSocket::park(next, &self.config) {
                        let user = user.to_owned();
                        let parked = Parked {
                            socket: parked,
                            user,
                        };
                        self.parked.lock().insert(token, parked);
                        return Some((c.relay, socket, Some(next)));
                    }
                }
                _ => return Some((c.relay, socket, None)),
            }
        }
        None
    }

    /// Gives back the quota of an allocation of `user` that ended.
    pub(crate) fn release(&self, user: &str) {
        self.quotas.release(user);
    }

    /// Closes the socket parked for `token`, if nobody redeemed it, and gives its place
    /// in the quota back.
    pub(crate) fn unpark(&self, token: &[u8; 8]) {
        let parked = self.parked.lock().remove(token);
        if let Some(p) = parked {
            self.quotas.release(&p.user);
        }
    }
}
