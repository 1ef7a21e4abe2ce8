//! One data stream of an [`Agent`](super::Agent): its local candidates, its checklist,
//! and during an ICE restart (RFC 8445 §9) the retiring checklist that still carries
//! data and consent.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::candidate::Candidate;
use super::checklist::Checklist;
use super::config::IceRole;
use super::event::IceEvent;
use super::IceError;
use crate::stun::{Message, TransactionId};
use crate::Transmit;

pub(super) struct Stream {
    pub(super) checklist: Checklist,
    /// The checklist before an ICE restart, still carrying data.
    pub(super) previous: Option<Checklist>,
    /// The local candidates added to this stream, with priorities and foundations.
    pub(super) local: Vec<Candidate>,
}

impl Stream {
    pub(super) fn new(checklist: Checklist) -> Self {
        Stream {
            checklist,
            previous: None,
            local: Vec::new(),
        }
    }

    /// RFC 8445 §9: `fresh` takes over; the old checklist retires if it carries data.
    pub(super) fn restart(&mut self, fresh: Checklist) {
        let mut old = std::mem::replace(&mut self.checklist, fresh);
        if old.is_connected() {
            old.retire();
            self.previous = Some(old);
        }
    }

    pub(super) fn selected_pair(&self, component: u16) -> Option<(&Candidate, &Candidate)> {
        self.checklist.selected_pair(component).or_else(|| {
            self.previous
                .as_ref()
                .and_then(|p| p.selected_pair(component))
        })
    }

    pub(super) fn is_remote_address(&self, addr: SocketAddr) -> bool {
        self.checklist.is_remote_address(addr)
            || self
                .previous
                .as_ref()
                .is_some_and(|p| p.is_remote_address(addr))
    }

    pub(super) fn data_component(&self, from: SocketAddr, to: SocketAddr) -> Option<u16> {
        self.checklist
            .data_component(from, to)
            .or_else(|| self.previous.as_ref()?.data_component(from, to))
    }

    pub(super) fn is_addressed_to(&self, msg: &Message) -> bool {
        self.checklist.is_addressed_to(msg)
            || self
                .previous
                .as_ref()
                .is_some_and(|p| p.is_addressed_to(msg))
    }

    pub(super) fn owns_transaction(&self, tid: TransactionId) -> bool {
        self.checklist.owns_transaction(tid)
            || self
                .previous
                .as_ref()
                .is_some_and(|p| p.owns_transaction(tid))
    }

    /// A request for the old credentials, or a response to an old check, goes to the
    /// retiring checklist; everything else to the current one.
    pub(super) fn handle_stun(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        msg: &Message,
    ) {
        let to_previous = match (msg.class(), &self.previous) {
            (_, None) => false,
            (crate::stun::Class::Request, Some(p)) => {
                p.is_addressed_to(msg) && !self.checklist.is_addressed_to(msg)
            }
            (crate::stun::Class::Success | crate::stun::Class::Error, Some(p)) => {
                p.owns_transaction(msg.transaction_id())
            }
            (crate::stun::Class::Indication, _) => false,
        };
        match &mut self.previous {
            Some(p) if to_previous => p.handle_stun(now, from, to, msg),
            _ => self.checklist.handle_stun(now, from, to, msg),
        }
    }

    pub(super) fn send(&mut self, component: u16, data: Bytes) -> Result<Transmit, IceError> {
        match &mut self.previous {
            Some(p) if !self.checklist.has_selected_pair(component) => p.send(component, data),
            _ => self.checklist.send(component, data),
        }
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.checklist.handle_timeout(now);
        if let Some(p) = &mut self.previous {
            p.handle_timeout(now);
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let t = self.checklist.poll_timeout();
        let p = self.previous.as_ref().and_then(Checklist::poll_timeout);
        match (t, p) {
            (Some(t), Some(p)) => Some(t.min(p)),
            (t, p) => t.or(p),
        }
    }

    pub(super) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.checklist
            .poll_transmit()
            .or_else(|| self.previous.as_mut().and_then(|p| p.poll_transmit()))
    }

    /// Runs `f` on the current checklist and the retiring one (ICE-TCP connection events).
    pub(super) fn for_checklists(&mut self, mut f: impl FnMut(&mut Checklist)) {
        f(&mut self.checklist);
        if let Some(p) = &mut self.previous {
            f(p);
        }
    }

    /// The first answer of `f` from the current checklist or the retiring one.
    pub(super) fn for_checklists_find<T>(
        &mut self,
        mut f: impl FnMut(&mut Checklist) -> Option<T>,
    ) -> Option<T> {
        f(&mut self.checklist).or_else(|| self.previous.as_mut().and_then(f))
    }

    pub(super) fn set_role(&mut self, role: IceRole) {
        self.checklist.set_role(role);
        if let Some(p) = &mut self.previous {
            p.set_role(role);
        }
    }

    /// The next event, and whether it comes from the retiring checklist (which reports
    /// only `ConsentLost`, after which it is dropped, and `RoleChanged`).
    pub(super) fn poll_event(&mut self) -> Option<(IceEvent, bool)> {
        if let Some(e) = self.checklist.poll_event() {
            if e == IceEvent::Connected {
                // RFC 8445 §9: the restart is over once the new checklist selects.
                self.previous = None;
            }
            return Some((e, false));
        }
        let p = self.previous.as_mut()?;
        while let Some(e) = p.poll_event() {
            match e {
                IceEvent::ConsentLost { .. } => {
                    self.previous = None;
                    return Some((e, true));
                }
                IceEvent::RoleChanged(_) => return Some((e, true)),
                _ => {}
            }
        }
        None
    }
}
