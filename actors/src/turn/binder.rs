//! Fulfils the core's relay requests (see `floe::turn::server::relay`): checks the
//! quotas, binds relay sockets, and parks or takes over the sockets of reservation
//! tokens. The RFC's rules (which ports, the token) come from the core's request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use floe::turn::server::{PortCandidates, RelayAsk, RelayGrant, RelayRefusal, RelayRequest};

use super::quota::Quotas;
use crate::udp::{BatchSocket, ParkedSocket, UdpSocketConfig};

/// Relay sockets held for a RESERVATION-TOKEN, shared by every Arbiter of a server:
/// bound but not registered with a reactor, so whichever Arbiter the redeeming Allocate
/// reaches (SO_REUSEPORT spreads clients by 5-tuple) can take them.
#[derive(Clone, Debug, Default)]
pub(crate) struct ParkedRelays(Arc<Mutex<HashMap<[u8; 8], ParkedSocket>>>);

impl ParkedRelays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 8], ParkedSocket>> {
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

    /// How relay sockets are made: no GRO (datagrams go one by one to the core), and
    /// 256 KiB kernel buffers.
    pub(crate) fn relay_config() -> UdpSocketConfig {
        UdpSocketConfig {
            gro: false,
            recv_buffer_size: Some(256 << 10),
            send_buffer_size: Some(256 << 10),
            ..UdpSocketConfig::default()
        }
    }

    /// Takes a quota and binds what `request` asks for; `in_use` tells addresses this
    /// Arbiter relays on already (they cost no bind). On a refusal nothing is held.
    pub(crate) fn fulfil(
        &self,
        request: RelayRequest,
        in_use: impl Fn(SocketAddr) -> bool,
    ) -> Result<(RelayGrant, BoundRelays), RelayRefusal> {
        if !self.quotas.acquire(&request.username) {
            return Err(RelayRefusal::QuotaReached);
        }
        let bound = self.bind(request.relays, &in_use);
        if bound.is_err() {
            self.quotas.release(&request.username);
        }
        bound
    }

    fn bind(
        &self,
        ask: RelayAsk,
        in_use: &impl Fn(SocketAddr) -> bool,
    ) -> Result<(RelayGrant, BoundRelays), RelayRefusal> {
        match ask {
            RelayAsk::Redeem { token } => {
                let parked = self
                    .parked
                    .lock()
                    .remove(&token)
                    .ok_or(RelayRefusal::InsufficientCapacity)?;
                let addr = parked.local_addr();
                let socket = BatchSocket::register(parked)
                    .map_err(|_| RelayRefusal::InsufficientCapacity)?;
                let grant = RelayGrant {
                    relayed: addr,
                    reserved: None,
                    additional: None,
                };
                Ok((grant, vec![(addr, socket)]))
            }
            RelayAsk::Bind {
                primary,
                reservation,
                additional,
            } => {
                let (relayed, socket, reserved) = self
                    .bind_one(primary, reservation, in_use)
                    .ok_or(RelayRefusal::InsufficientCapacity)?;
                let mut bound = vec![(relayed, socket)];
                let additional = additional.and_then(|c| self.bind_one(c, None, in_use)).map(
                    |(addr, socket, _)| {
                        bound.push((addr, socket));
                        addr
                    },
                );
                let grant = RelayGrant {
                    relayed,
                    reserved,
                    additional,
                };
                Ok((grant, bound))
            }
        }
    }

    /// Binds the first candidate the OS lets us have; with `token`, parks the next port
    /// under it too (a candidate whose next port is taken is passed over).
    fn bind_one(
        &self,
        mut candidates: PortCandidates,
        token: Option<[u8; 8]>,
        in_use: &impl Fn(SocketAddr) -> bool,
    ) -> Option<(SocketAddr, BatchSocket, Option<SocketAddr>)> {
        while let Some(c) = candidates.next_free(in_use) {
            let Ok(socket) = BatchSocket::bind(c.relay, &self.config) else {
                continue;
            };
            match (c.reserved, token) {
                (Some(next), Some(token)) => {
                    // A failed park drops (closes) `socket` and tries the next candidate.
                    if let Ok(parked) = BatchSocket::park(next, &self.config) {
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

    /// Closes the socket parked for `token`, if nobody redeemed it.
    pub(crate) fn unpark(&self, token: &[u8; 8]) {
        self.parked.lock().remove(token);
    }
}
