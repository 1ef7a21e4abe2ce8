//! RFC 8656 §7.2: Allocate, in two phases. [`Server::allocate`] checks the request and
//! asks the driver for relays ([`RelayRequest`]); [`Server::relay_ready`] takes the
//! driver's answer and sends the response.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::allocation::{Allocation, FiveTuple};
use super::authenticate::Authenticated;
use super::event::{AllocationId, ServerEvent};
use super::relay::{
    PortCandidates, RelayAsk, RelayGrant, RelayRefusal, RelayRequest, RelayRequestId,
};
use super::{Reservation, Server, RESERVATION_LIFETIME};
use crate::stun::attribute::*;
use crate::stun::{Message, Method};
use crate::transmit::Transmit;
use crate::turn::TurnError;

/// An authenticated Allocate waiting for the driver.
pub(super) struct PendingAllocate {
    request: RelayRequestId,
    msg: Message,
    auth: Authenticated,
    /// The token to answer with when the driver parks the next port.
    reservation: Option<[u8; 8]>,
    /// ADDITIONAL-ADDRESS-FAMILY IPv6 was asked.
    additional: bool,
}

impl Server {
    /// RFC 8656 §7.2: Allocate. On success the request waits for the driver.
    pub(super) fn allocate(
        &mut self,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        if let Some(alloc) = self
            .by_five_tuple
            .get(ft)
            .and_then(|id| self.allocations.get(id))
        {
            // A retransmission of the Allocate that made it gets the same answer.
            if alloc.allocate_tid == msg.transaction_id() && !alloc.allocate_response.is_empty() {
                self.transmits.push_back(Transmit {
                    source: ft.server,
                    destination: ft.client,
                    transport: ft.transport,
                    payload: alloc.allocate_response.clone(),
                });
                return Ok(());
            }
            return Err(TurnError::AllocationMismatch);
        }
        if let Some(p) = self.pending.get(ft) {
            // A retransmission while the driver works on the first: its answer will do.
            if p.msg.transaction_id() == msg.transaction_id() {
                return Ok(());
            }
            return Err(TurnError::AllocationMismatch);
        }
        self.lifetime(msg)?;
        match msg.get::<RequestedTransport>() {
            Some(Ok(RequestedTransport(RequestedTransport::UDP))) => {}
            Some(Ok(_)) => return Err(TurnError::UnsupportedTransport),
            _ => return Err(TurnError::BadRequest("REQUESTED-TRANSPORT missing")),
        }
        let token = match msg.get::<ReservationToken>() {
            Some(Ok(t)) => Some(t.0),
            Some(Err(_)) => return Err(TurnError::BadRequest("bad RESERVATION-TOKEN")),
            None => None,
        };
        let even_port = match msg.get::<EvenPort>() {
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Err(TurnError::BadRequest("bad EVEN-PORT")),
            None => None,
        };
        let requested = match msg.get::<RequestedAddressFamily>() {
            Some(Ok(f)) => Some(f.0),
            Some(Err(_)) => return Err(TurnError::AddressFamilyNotSupported),
            None => None,
        };
        let additional = match msg.get::<AdditionalAddressFamily>() {
            Some(Ok(AdditionalAddressFamily(AddressFamily::V6))) => true,
            Some(_) => {
                return Err(TurnError::BadRequest(
                    "ADDITIONAL-ADDRESS-FAMILY must be IPv6",
                ))
            }
            None => false,
        };
        if token.is_some() && (even_port.is_some() || requested.is_some() || additional) {
            return Err(TurnError::BadRequest(
                "RESERVATION-TOKEN with EVEN-PORT or an address family",
            ));
        }
        if additional && requested.is_some() {
            return Err(TurnError::BadRequest(
                "ADDITIONAL-ADDRESS-FAMILY with REQUESTED-ADDRESS-FAMILY",
            ));
        }
        let family = requested.unwrap_or(AddressFamily::V4);
        let relay_ip = match family {
            AddressFamily::V4 => self.config.relay_ipv4,
            AddressFamily::V6 => self.config.relay_ipv6,
        };
        let relay_ip = relay_ip.ok_or(TurnError::AddressFamilyNotSupported)?;
        let (min, max) = (self.config.min_port, self.config.max_port);
        let (relays, reservation) = match token {
            Some(token) => (RelayAsk::Redeem { token }, None),
            None => {
                let reserve = even_port.is_some_and(|e| e.reserve);
                let primary = PortCandidates::new(
                    relay_ip,
                    min,
                    max,
                    even_port.is_some(),
                    reserve,
                    self.rng.next_u64(),
                );
                let reservation = reserve.then(|| {
                    let mut t = [0u8; 8];
                    self.rng.fill_bytes(&mut t);
                    t
                });
                let additional = match self.config.relay_ipv6 {
                    Some(ip6) if additional => Some(PortCandidates::new(
                        ip6,
                        min,
                        max,
                        false,
                        false,
                        self.rng.next_u64(),
                    )),
                    _ => None,
                };
                let ask = RelayAsk::Bind {
                    primary,
                    reservation,
                    additional,
                };
                (ask, reservation)
            }
        };
        let id = RelayRequestId(self.next_request);
        self.next_request += 1;
        self.pending.insert(
            *ft,
            PendingAllocate {
                request: id,
                msg: msg.clone(),
                auth: auth.clone(),
                reservation,
                additional,
            },
        );
        self.relay_requests.push_back(RelayRequest {
            id,
            five_tuple: *ft,
            username: auth.username.clone(),
            relays,
        });
        Ok(())
    }

    /// An Allocate waiting for relays: the driver answers each with
    /// [`Server::relay_ready`], in the same pass if it can.
    pub fn poll_relay_request(&mut self) -> Option<RelayRequest> {
        self.relay_requests.pop_front()
    }

    /// The driver's answer to [`RelayRequest`] `id`: the relays it bound (and parked,
    /// for a reservation), or why it could not. Sends the Allocate's response.
    ///
    /// Returns the new allocation, or `None` when there is none: the request was
    /// refused, is unknown (already answered), or asked for a reservation that the grant
    /// lacks (508). With `None` after a grant, the driver closes what it bound.
    pub fn relay_ready(
        &mut self,
        now: Instant,
        id: RelayRequestId,
        result: Result<RelayGrant, RelayRefusal>,
    ) -> Option<AllocationId> {
        // Pending requests are few (the driver answers in the same pass): a scan is cheap.
        let ft = self
            .pending
            .iter()
            .find(|(_, p)| p.request == id)
            .map(|(ft, _)| *ft)?;
        let p = self.pending.remove(&ft).expect("found");
        let grant = match result {
            Ok(g) if p.reservation.is_none() || g.reserved.is_some() => g,
            Ok(_) => {
                self.error(
                    now,
                    &ft,
                    &p.msg,
                    &TurnError::InsufficientCapacity,
                    Some(&p.auth),
                    |_| {},
                );
                return None;
            }
            Err(refusal) if refusal.node_is_full() => {
                self.refuse_to_alternate(now, &ft, &p.msg, &p.auth, refusal.into());
                return None;
            }
            Err(refusal) => {
                self.error(now, &ft, &p.msg, &refusal.into(), Some(&p.auth), |_| {});
                return None;
            }
        };
        let relayed: Vec<SocketAddr> = std::iter::once(grant.relayed)
            .chain(grant.additional)
            .collect();
        let v6_error = p.additional && grant.additional.is_none();
        let new_token = match (p.reservation, grant.reserved) {
            (Some(token), Some(addr)) => {
                self.reservations.push_back(Reservation {
                    token,
                    relayed: addr,
                    expires: now + RESERVATION_LIFETIME,
                });
                Some(token)
            }
            _ => None,
        };
        let (msg, auth) = (&p.msg, &p.auth);
        // Checked by `allocate` before the request went to the driver.
        let lifetime = self
            .lifetime(msg)
            .unwrap_or(self.config.default_lifetime)
            .max(Duration::from_secs(1));
        let id = AllocationId(self.next_id);
        self.next_id += 1;
        let mut alloc = Allocation::new(
            now,
            ft,
            relayed.clone(),
            auth.username.clone(),
            now + lifetime,
            msg.transaction_id(),
            (now, self.config.max_bps),
        );
        alloc.dont_fragment = msg.contains(DontFragment::TYPE);
        let advertised: Vec<SocketAddr> = relayed.iter().map(|r| self.advertised(*r)).collect();
        let payload = self.respond(&ft, msg, Method::ALLOCATE.success(), Some(auth), |e| {
            for a in &advertised {
                e.add(&XorRelayedAddress(*a));
            }
            if v6_error {
                e.add(&AddressErrorCode {
                    family: AddressFamily::V6,
                    code: 440,
                    reason: Text::from_static("Address Family not Supported"),
                });
            }
            e.add(&Lifetime(lifetime.as_secs() as u32))
                .add(&XorMappedAddress(ft.client));
            if let Some(t) = new_token {
                e.add(&ReservationToken(t));
            }
        });
        alloc.allocate_response = payload;
        for r in &relayed {
            self.by_relay.insert(*r, id);
        }
        self.by_five_tuple.insert(ft, id);
        self.allocations.insert(id, alloc);
        self.timers.push(std::cmp::Reverse((now + lifetime, id)));
        self.events.push_back(ServerEvent::AllocationCreated {
            id,
            five_tuple: ft,
            username: p.auth.username,
            relayed,
            lifetime,
        });
        Some(id)
    }

    /// The address advertised for a relay: the external IP behind 1:1 NAT.
    fn advertised(&self, relay: SocketAddr) -> SocketAddr {
        self.advertised_address(relay)
    }
}
