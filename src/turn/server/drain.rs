//! Draining: the server takes no new allocations while its current ones run out (an
//! operator takes the node out of a pool). A full node, like a draining one, sends new
//! Allocates to the alternate server when one is configured.

use std::time::Instant;

use super::allocation::FiveTuple;
use super::authenticate::Authenticated;
use super::Server;
use crate::stun::attribute::AlternateServer;
use crate::stun::Message;
use crate::turn::TurnError;

impl Server {
    /// Starts (`true`) or ends draining. While draining, Allocates that would make a new
    /// allocation are refused; everything else, on existing allocations, carries on.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Whether the server is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Refuses an authenticated Allocate while draining; returns whether it did.
    ///
    /// RFC 8489 §10 and RFC 8656 §7.2: with an `alternate_server` configured, the answer
    /// is 300 (Try Alternate) with ALTERNATE-SERVER, which sends the client there;
    /// without, 403 (Forbidden), the server being unwilling to allocate. A 5-tuple that
    /// has an allocation, or one on its way, is not refused here: a retransmission of its
    /// Allocate gets the first answer again, another Allocate 437.
    pub(super) fn refuse_while_draining(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
    ) -> bool {
        if !self.draining || self.by_five_tuple.contains_key(ft) || self.pending.contains_key(ft) {
            return false;
        }
        self.refuse_to_alternate(now, ft, msg, auth, TurnError::Forbidden);
        true
    }

    /// Answers an authenticated Allocate this node will not serve: 300 (Try Alternate)
    /// with ALTERNATE-SERVER when an `alternate_server` is configured (RFC 8489 §10),
    /// else `fallback` (403 while draining; 486 or 508 when full).
    pub(super) fn refuse_to_alternate(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
        auth: &Authenticated,
        fallback: TurnError,
    ) {
        match self.config.alternate_server {
            Some(alternate) => {
                let err = TurnError::TryAlternate;
                self.error(now, ft, msg, &err, Some(auth), |e| {
                    e.add(&AlternateServer(alternate));
                });
            }
            None => self.error(now, ft, msg, &fallback, Some(auth), |_| {}),
        }
    }
}
