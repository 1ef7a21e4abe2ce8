//! Requests other than Allocate (RFC 8489 Binding, RFC 8656 Refresh, CreatePermission,
//! ChannelBind), their dispatch, and the encoding of every response.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::allocation::FiveTuple;
use super::authenticate::Authenticated;
use super::event::{AllocationId, ServerEvent};
use super::{policy, Server};
use crate::stun::attribute::*;
use crate::stun::{Message, MessageEncoder, MessageType, Method, TransactionId, HEADER_LEN};
use crate::transmit::Transmit;
use crate::turn::{ChannelNumber, TurnError};

impl Server {
    /// A request from a client: Binding, or one that needs credentials.
    pub(super) fn request(&mut self, now: Instant, ft: &FiveTuple, msg: &Message) {
        let mut unknown = msg.unknown_comprehension_required();
        // RFC 5780 is not served: CHANGE-REQUEST is an attribute this server does not
        // understand (RFC 5780 §7.2).
        if msg.contains(ChangeRequest::TYPE) {
            unknown.push(ChangeRequest::TYPE);
        }
        // RFC 8489 §14.9: each type once, however often the request repeats it.
        let mut seen = Vec::with_capacity(unknown.len());
        unknown.retain(|t| {
            let new = !seen.contains(t);
            seen.push(*t);
            new
        });
        if !unknown.is_empty() {
            let err = TurnError::UnknownAttributes(unknown.iter().map(|t| t.0).collect());
            self.error(now, ft, msg, &err, None, |e| {
                e.add(&UnknownAttributes(unknown));
            });
            return;
        }
        match msg.method() {
            Method::BINDING => self.binding(ft, msg),
            Method::ALLOCATE
            | Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND => {
                let Some(auth) = self.authenticate(now, ft, msg) else {
                    return;
                };
                let result = match msg.method() {
                    Method::ALLOCATE if self.refuse_while_draining(now, ft, msg, &auth) => Ok(()),
                    Method::ALLOCATE => self.allocate(ft, msg, &auth),
                    Method::REFRESH => self.refresh(now, ft, msg, &auth),
                    Method::CREATE_PERMISSION => self.create_permission(now, ft, msg, &auth),
                    _ => self.channel_bind(now, ft, msg, &auth),
                };
                if let Err(e) = result {
                    if e == TurnError::WrongCredentials {
                        self.events.push_back(ServerEvent::AuthFailed {
                            client: ft.client,
                            username: Some(auth.username.clone()),
                            code: 441,
                        });
                    }
                    self.error(now, ft, msg, &e, Some(&auth), |_| {});
                }
            }
            _ => self.error(
                now,
                ft,
                msg,
                &TurnError::BadRequest("unknown method"),
                None,
                |_| {},
            ),
        }
    }

    /// RFC 8489 §6.3.1, RFC 5780: Binding gets XOR-MAPPED-ADDRESS, and MAPPED-ADDRESS for
    /// RFC 3489-era clients.
    /// Nothing else is added: an unauthenticated answer should not be much larger than
    /// the request it answers (reflection amplification).
    pub(super) fn binding(&mut self, ft: &FiveTuple, msg: &Message) {
        self.respond(ft, msg, Method::BINDING.success(), None, |e| {
            e.add(&XorMappedAddress(ft.client))
                .add(&MappedAddress(ft.client));
        });
    }

    /// RFC 3489 §11.2.1 (RFC 8489 §12.2): a Binding request from a client that predates
    /// the magic cookie gets MAPPED-ADDRESS, echoing its 128-bit transaction id. Other
    /// RFC 3489 requests and attributes (CHANGE-REQUEST) are not served.
    pub(super) fn classic_binding(&mut self, ft: &FiveTuple, data: &[u8]) {
        if data.len() < HEADER_LEN || data[..2] != [0x00, 0x01] {
            return;
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if data.len() != HEADER_LEN + len || len % 4 != 0 {
            return;
        }
        let mut out = BytesMut::with_capacity(HEADER_LEN + 24);
        out.extend_from_slice(&[0x01, 0x01, 0, 0]);
        out.extend_from_slice(&data[4..HEADER_LEN]);
        let tid = TransactionId([0; 12]); // MAPPED-ADDRESS is not XORed
        let mut value = BytesMut::new();
        MappedAddress(ft.client).encode(&tid, &mut value);
        out.extend_from_slice(&MappedAddress::TYPE.0.to_be_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(&value);
        let body = (out.len() - HEADER_LEN) as u16;
        out[2..4].copy_from_slice(&body.to_be_bytes());
        self.transmits.push_back(Transmit {
            source: ft.server,
            destination: ft.client,
            transport: ft.transport,
            payload: out.freeze(),
        });
    }

    /// Encodes and queues a response. With `auth`, it carries the same kind of
    /// MESSAGE-INTEGRITY as the request; with a FINGERPRINT when the request had one.
    pub(super) fn respond(
        &mut self,
        ft: &FiveTuple,
        req: &Message,
        typ: MessageType,
        auth: Option<&Authenticated>,
        attrs: impl FnOnce(&mut MessageEncoder<'_>),
    ) -> Bytes {
        self.buf.clear();
        let mut enc = MessageEncoder::new(&mut self.buf, typ, req.transaction_id());
        attrs(&mut enc);
        if let Some(a) = auth {
            if a.sha256 {
                enc.message_integrity_sha256(a.key.as_bytes(), 32);
            } else {
                enc.message_integrity(a.key.as_bytes());
            }
        }
        if req.has_fingerprint() {
            enc.fingerprint();
        }
        if enc.finish().is_err() {
            return Bytes::new();
        }
        let payload = self.buf.split().freeze();
        self.transmits.push_back(Transmit {
            source: ft.server,
            destination: ft.client,
            transport: ft.transport,
            payload: payload.clone(),
        });
        payload
    }

    /// Sends an error response; one to a request that did not authenticate (`auth`
    /// `None`) only within `unauth_rate` (see [`Server::admit_unauthenticated`]).
    pub(super) fn error(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        req: &Message,
        err: &TurnError,
        auth: Option<&Authenticated>,
        attrs: impl FnOnce(&mut MessageEncoder<'_>),
    ) {
        if auth.is_none() && !self.admit_unauthenticated(now, ft) {
            return;
        }
        self.send_error(ft, req, err, auth, attrs);
    }

    /// RFC 8656 §21.3 (amplification): whether an error response to an unauthenticated
    /// request may go to this client now. Over UDP, per source IP, within `unauth_rate`;
    /// TCP and TLS clients completed a handshake, so their address is not spoofed.
    pub(super) fn admit_unauthenticated(&mut self, now: Instant, ft: &FiveTuple) -> bool {
        if ft.transport.is_reliable() || self.unauth.allow(now, ft.client.ip()) {
            return true;
        }
        self.counters.unauth_dropped += 1;
        false
    }

    /// Encodes and queues an error response; the caller has admitted it.
    pub(super) fn send_error(
        &mut self,
        ft: &FiveTuple,
        req: &Message,
        err: &TurnError,
        auth: Option<&Authenticated>,
        attrs: impl FnOnce(&mut MessageEncoder<'_>),
    ) {
        let code = err.error_code();
        self.events.push_back(ServerEvent::ErrorResponse {
            method: req.method(),
            code,
        });
        // SOFTWARE only to authenticated clients: unauthenticated answers stay small.
        let software = auth.and(self.config.software.clone());
        let error_code = match err {
            TurnError::BadRequest(why) => ErrorCode {
                code,
                reason: Text::from_static(why),
            },
            _ => ErrorCode::new(code),
        };
        self.respond(ft, req, req.method().error(), auth, |e| {
            e.add(&error_code);
            attrs(e);
            if let Some(s) = software {
                e.add(&Software::new(s));
            }
        });
    }

    /// RFC 8656 §7.2, §7.3: the requested lifetime, raised to the default and capped at
    /// the maximum. 0 on a Refresh deletes and stays 0; on an Allocate it is below the
    /// default like any other small value. A LIFETIME that does not decode is a 400.
    pub(super) fn lifetime(&self, msg: &Message) -> Result<Duration, TurnError> {
        let default = self.config.default_lifetime.min(self.config.max_lifetime);
        match msg.get::<Lifetime>() {
            Some(Ok(Lifetime(0))) if msg.method() == Method::REFRESH => Ok(Duration::ZERO),
            Some(Ok(Lifetime(s))) => {
                Ok(Duration::from_secs(u64::from(s)).clamp(default, self.config.max_lifetime))
            }
            Some(Err(_)) => Err(TurnError::BadRequest("bad LIFETIME")),
            None => Ok(default),
        }
    }

    /// Makes sure the allocation's timer fires by `at`; one heap entry per allocation.
    fn schedule(&mut self, id: AllocationId, at: Instant) {
        if let Some(a) = self.allocations.get_mut(&id) {
            if at < a.timer {
                a.timer = at;
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    fn own_allocation(
        &self,
        ft: &FiveTuple,
        auth: &Authenticated,
    ) -> Result<AllocationId, TurnError> {
        let id = *self
            .by_five_tuple
            .get(ft)
            .ok_or(TurnError::AllocationMismatch)?;
        if self.allocations[&id].username != auth.username {
            return Err(TurnError::WrongCredentials);
        }
        Ok(id)
    }

    /// RFC 8656 §7.3: Refresh; LIFETIME 0 deletes.
    fn refresh(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        let id = self.own_allocation(ft, auth)?;
        if let Some(Ok(RequestedAddressFamily(f))) = msg.get::<RequestedAddressFamily>() {
            let v4 = f == AddressFamily::V4;
            if !self.allocations[&id]
                .relayed
                .iter()
                .any(|r| r.is_ipv4() == v4)
            {
                return Err(TurnError::PeerAddressFamilyMismatch);
            }
        }
        let lifetime = self.lifetime(msg)?;
        if lifetime.is_zero() {
            self.remove(id);
            self.events.push_back(ServerEvent::AllocationDeleted {
                id,
                five_tuple: *ft,
            });
        } else {
            let alloc = self.allocations.get_mut(&id).expect("looked up");
            alloc.expires = now + lifetime;
            self.schedule(id, now + lifetime);
            self.events
                .push_back(ServerEvent::AllocationRefreshed { id, lifetime });
        }
        self.respond(ft, msg, Method::REFRESH.success(), Some(auth), |e| {
            e.add(&Lifetime(lifetime.as_secs() as u32));
        });
        Ok(())
    }

    fn check_peer(&self, id: AllocationId, peer: SocketAddr) -> Result<(), TurnError> {
        if self.allocations[&id].relay_for(peer.ip()).is_none() {
            return Err(TurnError::PeerAddressFamilyMismatch);
        }
        if !self.config.policy.permits(peer.ip()) {
            return Err(TurnError::Forbidden);
        }
        Ok(())
    }

    /// RFC 8656 §9.2: CreatePermission, with one or more XOR-PEER-ADDRESS; all or none.
    fn create_permission(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        let id = self.own_allocation(ft, auth)?;
        let mut peers = Vec::new();
        for (t, v) in msg.raw_attributes() {
            if t == XorPeerAddress::TYPE {
                let XorPeerAddress(p) = XorPeerAddress::decode(&v, &msg.transaction_id())
                    .map_err(|_| TurnError::BadRequest("bad XOR-PEER-ADDRESS"))?;
                let p = policy::canonical_peer(p);
                self.check_peer(id, p)?;
                if !peers.contains(&p.ip()) {
                    peers.push(p.ip());
                }
            }
        }
        if peers.is_empty() {
            return Err(TurnError::BadRequest("XOR-PEER-ADDRESS missing"));
        }
        let alloc = &self.allocations[&id];
        let new = peers
            .iter()
            .filter(|p| alloc.is_new_permission(**p))
            .count();
        // Only new permissions count against the cap: one that exists may be refreshed
        // even above a cap lowered since it was made (a reload).
        if new > 0 && alloc.permission_count(now) + new > self.config.max_permissions {
            self.counters.permissions_refused += 1;
            return Err(TurnError::InsufficientCapacity);
        }
        let expires = now + self.config.permission_lifetime;
        let alloc = self.allocations.get_mut(&id).expect("looked up");
        for p in peers {
            if alloc.install_permission(now, p, expires) {
                self.events
                    .push_back(ServerEvent::PermissionCreated { id, peer: p });
            }
        }
        self.schedule(id, expires);
        self.respond(
            ft,
            msg,
            Method::CREATE_PERMISSION.success(),
            Some(auth),
            |_| {},
        );
        Ok(())
    }

    /// RFC 8656 §11.2: ChannelBind; installs or refreshes the peer's permission too.
    fn channel_bind(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> Result<(), TurnError> {
        let id = self.own_allocation(ft, auth)?;
        let number = match msg.get::<ChannelNumber>() {
            // RFC 8656 §11.2 allows 0x4000-0x4FFF; RFC 5766 clients (coturn's) use up to 0x7FFF.
            Some(Ok(n)) => n,
            Some(Err(_)) => return Err(TurnError::BadRequest("channel number out of range")),
            _ => return Err(TurnError::BadRequest("CHANNEL-NUMBER missing")),
        };
        let peer = match msg.get::<XorPeerAddress>() {
            Some(Ok(XorPeerAddress(p))) => policy::canonical_peer(p),
            _ => return Err(TurnError::BadRequest("XOR-PEER-ADDRESS missing")),
        };
        self.check_peer(id, peer)?;
        let perm_expires = now + self.config.permission_lifetime;
        let chan_expires = now + self.config.channel_lifetime;
        let max_channels = self.config.max_channels;
        let max_permissions = self.config.max_permissions;
        let alloc = self.allocations.get_mut(&id).expect("looked up");
        if alloc.is_new_permission(peer.ip()) && alloc.permission_count(now) >= max_permissions {
            self.counters.permissions_refused += 1;
            return Err(TurnError::InsufficientCapacity);
        }
        let new_channel = match alloc.bind_channel(now, number, peer, chan_expires, max_channels) {
            Ok(new) => new,
            Err(e) => {
                if e == TurnError::InsufficientCapacity {
                    self.counters.channels_refused += 1;
                }
                return Err(e);
            }
        };
        if alloc.install_permission(now, peer.ip(), perm_expires) {
            self.events.push_back(ServerEvent::PermissionCreated {
                id,
                peer: peer.ip(),
            });
        }
        if new_channel {
            self.events.push_back(ServerEvent::ChannelBound {
                id,
                peer,
                channel: number.get(),
            });
        }
        self.schedule(id, perm_expires);
        self.respond(ft, msg, Method::CHANNEL_BIND.success(), Some(auth), |_| {});
        Ok(())
    }
}
