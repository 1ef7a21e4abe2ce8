//! What the server answers: responses matched to their transaction, checked for integrity,
//! and folded into the session (RFC 8489 §6.3, §9.2.5, §10; RFC 8656 §7-§12), and Data
//! indications (RFC 8656 §11.4).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::auth::{self, Auth};
use super::request::{Pending, Request, Retries};
use super::session::ClientAllocation;
use super::{
    later, refresh_delay, Client, ClientEvent, ClientState, CHANNEL_LIFETIME, CHANNEL_REFRESH,
    PERMISSION_LIFETIME, PERMISSION_REFRESH,
};
use crate::stun::attribute::{
    AddressErrorCode, AlternateDomain, AlternateServer, Data, Lifetime, MappedAddress,
    XorMappedAddress, XorPeerAddress, XorRelayedAddress,
};
use crate::stun::transaction::RtoEstimator;
use crate::stun::{AttributeCodec, Class, Message};
use crate::turn::ChannelNumber;

impl Client {
    pub(super) fn handle_response(&mut self, now: Instant, msg: Message) {
        let tid = msg.transaction_id();
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.tx.transaction_id() == tid && p.request.method() == msg.method())
        else {
            return;
        };
        let (code, reason) = match msg.class() {
            Class::Error => auth::error_code(&msg),
            _ => (None, String::new()),
        };
        let challenge = matches!(code, Some(401 | 438));
        if !challenge {
            // RFC 8489 §9.2.5: check the integrity of responses to signed requests; over UDP
            // a forged or corrupted one is dropped as if never received, over TCP/TLS the
            // transaction fails at once.
            let authentic =
                !self.pending[i].signed || self.auth.as_ref().is_none_or(|a| a.verify(&msg));
            if !authentic || auth::is_bid_down(&msg) {
                if self.config.transport.is_reliable() {
                    let p = self.pending.swap_remove(i);
                    let reason = "response failed the integrity check".to_owned();
                    self.request_failed(now, p.request, None, reason);
                } else {
                    self.pending[i].integrity_failed = true;
                }
                return;
            }
        }
        let mut p = self.pending.swap_remove(i);
        let rtt = p.tx.complete(now);
        if let Some(rtt) = rtt {
            self.rto.sample(rtt);
            self.rto_sampled = Some(now);
        }
        // RFC 8489 §6.3.3, §6.3.4: a response with unknown comprehension-required
        // attributes fails the transaction.
        let unknown = msg.unknown_comprehension_required();
        if !unknown.is_empty() {
            let reason =
                format!("response with unknown comprehension-required attributes {unknown:?}");
            return self.request_failed(now, p.request, code, reason);
        }
        match msg.class() {
            Class::Success => self.on_success(now, p, &msg, rtt),
            _ => self.on_error(now, p, &msg, code, reason),
        }
    }

    pub(super) fn on_success(
        &mut self,
        now: Instant,
        p: Pending,
        msg: &Message,
        rtt: Option<Duration>,
    ) {
        let tid = msg.transaction_id();
        match p.request {
            Request::Binding => {
                let mapped = msg
                    .get::<XorMappedAddress>()
                    .and_then(Result::ok)
                    .map(|a| a.0)
                    .or_else(|| msg.get::<MappedAddress>().and_then(Result::ok).map(|a| a.0));
                match mapped {
                    Some(mapped) => {
                        self.mapped = Some(mapped);
                        self.events
                            .push_back(ClientEvent::BindingSucceeded { mapped, rtt });
                    }
                    None => {
                        let reason = "Binding success without XOR-MAPPED-ADDRESS".into();
                        self.request_failed(now, p.request, None, reason);
                    }
                }
            }
            Request::Allocate => {
                // RFC 8656 §7.3: one XOR-RELAYED-ADDRESS, or two for a dual-stack allocation.
                let relayed: Vec<SocketAddr> = msg
                    .raw_attributes()
                    .filter(|(t, _)| *t == XorRelayedAddress::TYPE)
                    .filter_map(|(_, v)| XorRelayedAddress::decode(&v, &tid).ok())
                    .map(|a| a.0)
                    .collect();
                if relayed.is_empty() {
                    let reason = "Allocate success without XOR-RELAYED-ADDRESS".into();
                    self.request_failed(now, p.request, None, reason);
                    return;
                }
                if let Some(Ok(e)) = msg.get::<AddressErrorCode>() {
                    debug!(family = ?e.family, code = e.code, "TURN server refused one address family");
                }
                let lifetime = match msg.get::<Lifetime>() {
                    Some(Ok(l)) => Duration::from_secs(u64::from(l.0)),
                    _ => self.requested_lifetime,
                };
                if lifetime.is_zero() {
                    let reason = "Allocate success with LIFETIME 0".into();
                    self.request_failed(now, p.request, None, reason);
                    return;
                }
                let mapped = msg
                    .get::<XorMappedAddress>()
                    .and_then(Result::ok)
                    .map(|a| a.0);
                if mapped.is_some() {
                    self.mapped = mapped;
                }
                debug!(server = %self.server, ?relayed, ?lifetime, "TURN allocation created");
                self.allocation = Some(ClientAllocation {
                    relayed: relayed.clone(),
                    expires: later(p.started, lifetime),
                    refresh_at: Some(later(p.started, refresh_delay(lifetime))),
                });
                self.state = ClientState::Allocated;
                self.events.push_back(ClientEvent::Allocated {
                    relayed,
                    mapped,
                    lifetime,
                });
            }
            Request::Refresh { lifetime } => {
                let granted = match msg.get::<Lifetime>() {
                    Some(Ok(l)) => Duration::from_secs(u64::from(l.0)),
                    _ => lifetime,
                };
                if lifetime.is_zero() || granted.is_zero() {
                    debug!(server = %self.server, "TURN allocation deleted");
                    self.clear();
                    self.events.push_back(ClientEvent::Deleted);
                    return;
                }
                let Some(alloc) = self.allocated_mut() else {
                    return;
                };
                alloc.expires = later(p.started, granted);
                alloc.refresh_at = Some(later(p.started, refresh_delay(granted)));
                self.events
                    .push_back(ClientEvent::Refreshed { lifetime: granted });
            }
            Request::CreatePermission { peers, auto } => {
                for ip in &peers {
                    if let Some(perm) = self.permissions.get_mut(ip) {
                        perm.installed_until = Some(later(p.started, PERMISSION_LIFETIME));
                        if perm.wanted {
                            perm.refresh_at = Some(later(p.started, PERMISSION_REFRESH));
                        }
                    }
                }
                if !auto {
                    self.events
                        .push_back(ClientEvent::PermissionCreated { peers });
                }
            }
            Request::ChannelBind {
                peer,
                channel,
                auto,
            } => {
                let Some(ch) = self.channels.get_mut(&peer).filter(|c| c.number == channel) else {
                    return;
                };
                ch.bound_until = Some(later(p.started, CHANNEL_LIFETIME));
                if ch.wanted {
                    ch.refresh_at = Some(later(p.started, CHANNEL_REFRESH));
                }
                // RFC 8656 §12.3: the binding installed or refreshed the peer's permission.
                let perm = self.permissions.entry(peer.ip()).or_default();
                perm.installed_until = Some(later(p.started, PERMISSION_LIFETIME));
                if perm.wanted {
                    perm.refresh_at = Some(later(p.started, PERMISSION_REFRESH));
                }
                if !auto {
                    self.events.push_back(ClientEvent::ChannelBound {
                        peer,
                        channel: channel.get(),
                    });
                }
            }
        }
    }

    pub(super) fn on_error(
        &mut self,
        now: Instant,
        p: Pending,
        msg: &Message,
        code: Option<u16>,
        reason: String,
    ) {
        match code {
            // RFC 8489 §9.2.5: answer the challenge with a new transaction. A request that
            // already carried credentials is retried once, and only when the challenge
            // brings a new realm or nonce; otherwise the credentials are wrong.
            Some(401) if p.request.authenticated() => {
                let fresh =
                    match Auth::from_challenge(msg, &self.config.username, &self.config.password) {
                        Ok(a) => a,
                        Err(why) => return self.request_failed(now, p.request, code, why),
                    };
                if p.signed {
                    let same = self
                        .auth
                        .as_ref()
                        .is_some_and(|a| a.realm() == fresh.realm() && a.nonce() == fresh.nonce());
                    if same || p.retries.auth >= 1 {
                        return self.request_failed(now, p.request, code, reason);
                    }
                }
                self.auth = Some(fresh);
                let retries = Retries {
                    auth: p.retries.auth + u32::from(p.signed),
                    ..p.retries
                };
                self.send_request(now, p.request, retries);
            }
            // RFC 8489 §9.2.5: retry with the NONCE of the 438 (bounded).
            Some(438) if p.signed => {
                if p.retries.nonce >= self.config.max_stale_nonce_retries {
                    return self.request_failed(now, p.request, code, reason);
                }
                let Some(auth) = self.auth.as_mut() else {
                    return self.request_failed(now, p.request, code, reason);
                };
                if let Err(why) = auth.update_nonce(msg) {
                    return self.request_failed(now, p.request, code, why);
                }
                let retries = Retries {
                    nonce: p.retries.nonce + 1,
                    ..p.retries
                };
                self.send_request(now, p.request, retries);
            }
            // RFC 8656 §7.4, RFC 8489 §10: 300 Try Alternate to an Allocate.
            Some(300) if matches!(p.request, Request::Allocate) => self.redirect(now, msg, reason),
            _ => self.request_failed(now, p.request, code, reason),
        }
    }

    /// RFC 8489 §10: follows ALTERNATE-SERVER: forgets the realm and nonce of the old
    /// server, cancels what was pending there, and starts the Allocate over.
    pub(super) fn redirect(&mut self, now: Instant, msg: &Message, reason: String) {
        let to = match msg.get::<AlternateServer>() {
            Some(Ok(a)) => a.0,
            _ => {
                let reason = format!("{reason} (300 without a valid ALTERNATE-SERVER)");
                return self.request_failed(now, Request::Allocate, Some(300), reason);
            }
        };
        if to == self.server || self.visited.contains(&to) {
            let reason = format!("redirect loop to {to}");
            return self.request_failed(now, Request::Allocate, Some(300), reason);
        }
        if self.visited.len() >= self.config.max_redirects as usize {
            let reason = format!("more than {} redirects", self.config.max_redirects);
            return self.request_failed(now, Request::Allocate, Some(300), reason);
        }
        let domain = msg
            .get::<AlternateDomain>()
            .and_then(Result::ok)
            .map(|d| d.as_str().to_owned());
        debug!(from = %self.server, %to, "TURN server redirects (300 Try Alternate)");
        self.visited.push(self.server);
        self.server = to;
        self.auth = None;
        self.rto = RtoEstimator::default();
        self.rto_sampled = None;
        for p in std::mem::take(&mut self.pending) {
            let reason = format!("cancelled: redirected to {to}");
            self.request_failed(now, p.request, None, reason);
        }
        self.events
            .push_back(ClientEvent::Redirected { to, domain });
        self.send_request(now, Request::Allocate, Retries::default());
    }

    /// Reports a failed request and undoes what it was meant to set up.
    pub(super) fn request_failed(
        &mut self,
        now: Instant,
        request: Request,
        code: Option<u16>,
        reason: String,
    ) {
        let method = request.method();
        debug!(server = %self.server, request = ?method, ?code, %reason, "TURN request failed");
        self.events.push_back(ClientEvent::Error {
            request: method,
            code,
            reason,
        });
        match request {
            Request::Binding => {}
            Request::Allocate => {
                if self.state == ClientState::Allocating {
                    self.state = ClientState::Idle;
                }
            }
            Request::Refresh { lifetime } if lifetime.is_zero() => {
                // RFC 8656 §8.3: a 437 to a delete means the allocation is already gone.
                let gone = code == Some(437);
                self.clear();
                if gone {
                    self.events.push_back(ClientEvent::Deleted);
                }
            }
            Request::Refresh { .. } => {
                if code == Some(437) {
                    self.clear();
                    self.events.push_back(ClientEvent::AllocationExpired);
                } else if let Some(alloc) = self.allocated_mut() {
                    // Try again half-way to expiry while that leaves time for a transaction.
                    let left = alloc.expires.saturating_duration_since(now);
                    if left > Duration::from_secs(2) {
                        alloc.refresh_at = Some(later(now, left / 2));
                    }
                }
            }
            Request::CreatePermission { peers, .. } => {
                for ip in peers {
                    if let Some(p) = self.permissions.get_mut(&ip) {
                        p.wanted = false;
                        p.refresh_at = None;
                    }
                }
            }
            Request::ChannelBind { peer, .. } => {
                if let Some(c) = self.channels.get_mut(&peer) {
                    c.wanted = false;
                    c.refresh_at = None;
                }
            }
        }
    }

    /// RFC 8656 §11.4: a Data indication from the server: XOR-PEER-ADDRESS and DATA.
    pub(super) fn handle_data(&mut self, msg: Message) {
        if self.allocation.is_none() {
            return;
        }
        if let (Some(Ok(XorPeerAddress(peer))), Some(Ok(Data(data)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        {
            self.events.push_back(ClientEvent::Data { peer, data });
        }
    }

    /// Forgets the allocation, its permissions and channels, and the requests about them.
    pub(super) fn clear(&mut self) {
        self.state = ClientState::Idle;
        self.allocation = None;
        self.permissions.clear();
        self.channels.clear();
        self.channel_peers.clear();
        self.next_channel = ChannelNumber::MIN.get();
        self.pending
            .retain(|p| matches!(p.request, Request::Binding));
    }
}
