//! The session's requests (RFC 8656 §7-§12, RFC 8489 §6): how each is encoded, signed and
//! run as a client transaction, retried with a new transaction id after 401 and 438.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::Auth;
use super::{lifetime_secs, Client, RTO_CACHE};
use crate::stun::attribute::{
    AdditionalAddressFamily, Lifetime, RequestedAddressFamily, RequestedTransport, Software,
    XorPeerAddress,
};
use crate::stun::transaction::{ClientTransaction, TransactionConfig};
use crate::stun::{MessageEncoder, Method, StunError, TransactionId};
use crate::turn::ChannelNumber;

/// A request of the session, re-encoded with a new transaction id on every retry.
#[derive(Clone, Debug)]
pub(super) enum Request {
    Binding,
    Allocate,
    Refresh {
        lifetime: Duration,
    },
    CreatePermission {
        peers: Vec<IpAddr>,
        auto: bool,
    },
    ChannelBind {
        peer: SocketAddr,
        channel: ChannelNumber,
        auto: bool,
    },
}

impl Request {
    pub(super) fn method(&self) -> Method {
        match self {
            Request::Binding => Method::BINDING,
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh { .. } => Method::REFRESH,
            Request::CreatePermission { .. } => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
        }
    }

    /// RFC 8656 §7: every TURN request uses the long-term credentials; Binding does not.
    pub(super) fn authenticated(&self) -> bool {
        !matches!(self, Request::Binding)
    }
}

/// Retry budget of one request across its 401 / 438 rounds.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Retries {
    pub(super) auth: u32,
    pub(super) nonce: u32,
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) request: Request,
    pub(super) tx: ClientTransaction,
    pub(super) started: Instant,
    pub(super) signed: bool,
    pub(super) retries: Retries,
    pub(super) integrity_failed: bool,
}

impl Client {
    /// RFC 8489 §6.2.1: the initial RTO is the cached estimate for this server while it is
    /// fresh (10 minutes), the configured one otherwise.
    pub(super) fn transaction_config(&self, now: Instant) -> TransactionConfig {
        let mut config = self.config.transaction;
        if self
            .rto_sampled
            .is_some_and(|t| now.saturating_duration_since(t) < RTO_CACHE)
        {
            config.rto = self.rto.rto();
        }
        config
    }

    /// Encodes `request` with a fresh transaction id and starts its transaction.
    pub(super) fn send_request(&mut self, now: Instant, request: Request, retries: Retries) {
        let tid = TransactionId::random(&mut *self.rng);
        let auth = self.auth.as_ref().filter(|_| request.authenticated());
        let signed = auth.is_some();
        let payload = match self.encode_request(tid, &request, auth) {
            Ok(p) => p,
            Err(e) => {
                self.request_failed(
                    now,
                    request,
                    None,
                    format!("cannot encode the request: {e}"),
                );
                return;
            }
        };
        let reliable = self.config.transport.is_reliable();
        let mut tx =
            ClientTransaction::new(now, tid, payload, reliable, self.transaction_config(now));
        if let Some(payload) = tx.poll_transmit(now) {
            self.queue(payload);
        }
        self.pending.push(Pending {
            request,
            tx,
            started: now,
            signed,
            retries,
            integrity_failed: false,
        });
    }

    pub(super) fn encode_request(
        &self,
        tid: TransactionId,
        request: &Request,
        auth: Option<&Auth>,
    ) -> Result<Bytes, StunError> {
        let mut buf = BytesMut::with_capacity(256);
        let mut enc = MessageEncoder::new(&mut buf, request.method().request(), tid);
        match request {
            Request::Binding => {}
            Request::Allocate => {
                enc.add(&RequestedTransport(RequestedTransport::UDP));
                if let Some(f) = self.config.requested_family {
                    enc.add(&RequestedAddressFamily(f));
                }
                if let Some(f) = self.config.additional_family {
                    enc.add(&AdditionalAddressFamily(f));
                }
                enc.add(&Lifetime(lifetime_secs(self.requested_lifetime)));
            }
            Request::Refresh { lifetime } => {
                enc.add(&Lifetime(lifetime_secs(*lifetime)));
            }
            Request::CreatePermission { peers, .. } => {
                for ip in peers {
                    enc.add(&XorPeerAddress(SocketAddr::new(*ip, 0)));
                }
            }
            Request::ChannelBind { peer, channel, .. } => {
                enc.add(channel).add(&XorPeerAddress(*peer));
            }
        }
        if let Some(software) = &self.config.software {
            enc.add(&Software::new(software.as_str()));
        }
        if let Some(auth) = auth {
            auth.sign(&mut enc);
        }
        if self.config.fingerprint {
            enc.fingerprint();
        }
        enc.finish()?;
        Ok(buf.freeze())
    }
}
