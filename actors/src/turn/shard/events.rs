//! The owner's answers to the core's events: allocations started and ended, relays
//! started and released, and what subscribers and metrics hear of them.

use std::net::SocketAddr;
use std::rc::Rc;

use floe::turn::server::{AllocationId, ServerEvent};

use super::super::usage::EndReason;
use super::super::TurnEvent;
use super::{AllocationEntry, Command, RelayEntry, Shard};
use crate::udp::BatchSocket;

impl Shard {
    pub(super) fn on_event(&mut self, e: ServerEvent) {
        match e {
            ServerEvent::AllocationCreated {
                id,
                five_tuple,
                username,
                relayed,
                lifetime,
            } => {
                // RFC 8656 §7.2: DONT-FRAGMENT sets DF on what the relay sends.
                let dont_fragment = self.core.allocation(id).is_some_and(|a| a.dont_fragment);
                for addr in &relayed {
                    if let Some(i) = self.bound.iter().position(|(a, _)| a == addr) {
                        let (_, socket) = self.bound.swap_remove(i);
                        if dont_fragment {
                            let _ = socket.set_dont_fragment(true);
                        }
                        self.start_relay(id, *addr, Rc::new(socket));
                    }
                }
                let actor = self.supervision.start_allocation(id, five_tuple);
                self.metrics.allocation_created();
                self.usage.created(id, &username);
                self.events.do_send(TurnEvent::AllocationCreated {
                    five_tuple,
                    username: username.clone(),
                    relayed,
                    lifetime,
                });
                self.allocations.insert(
                    id,
                    AllocationEntry {
                        actor,
                        five_tuple,
                        username,
                    },
                );
            }
            ServerEvent::AllocationRefreshed { id, lifetime } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::Refreshed {
                        five_tuple: a.five_tuple,
                        lifetime,
                    });
                }
            }
            ServerEvent::AllocationUsage(usage) => self.usage.last_count(usage),
            ServerEvent::AllocationDeleted { id, five_tuple } => {
                self.usage.ended(id, EndReason::Client, &self.core);
                self.ended(id, TurnEvent::Deleted { five_tuple })
            }
            ServerEvent::AllocationExpired { id, five_tuple } => {
                self.usage.ended(id, EndReason::Expired, &self.core);
                self.ended(id, TurnEvent::Expired { five_tuple })
            }
            ServerEvent::PermissionCreated { id, peer } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::PermissionCreated {
                        five_tuple: a.five_tuple,
                        peer,
                    });
                }
            }
            ServerEvent::ChannelBound { id, peer, channel } => {
                if let Some(a) = self.allocations.get(&id) {
                    self.events.do_send(TurnEvent::ChannelBound {
                        five_tuple: a.five_tuple,
                        peer,
                        channel,
                    });
                }
            }
            ServerEvent::AuthFailed {
                client,
                username,
                code,
            } => {
                self.metrics.auth_failure();
                if let (401, Some(name)) = (code, &username) {
                    self.metrics.user_unauthorized(name);
                }
                self.events.do_send(TurnEvent::AuthFailed {
                    client,
                    username,
                    code,
                });
            }
            ServerEvent::ErrorResponse { code, .. } => self.metrics.error_response(code),
            ServerEvent::RelayReleased(addr) => {
                self.bound.retain(|(a, _)| *a != addr);
                self.stop_relay(addr);
            }
            ServerEvent::ReservationExpired { token, .. } => self.binder.unpark(&token),
            _ => {}
        }
    }

    pub(super) fn ended(&mut self, id: AllocationId, event: TurnEvent) {
        if let Some(a) = self.allocations.remove(&id) {
            a.actor.do_send(Command::Stop);
            self.binder.release(&a.username);
            self.metrics.allocation_ended();
            self.events.do_send(event);
        }
    }

    /// Starts serving the relay bound to `addr`: its actor, and its socket in the table
    /// the relay drain reads.
    pub(super) fn start_relay(
        &mut self,
        allocation: AllocationId,
        addr: SocketAddr,
        socket: Rc<BatchSocket>,
    ) {
        let actor = self.supervision.start_relay(addr);
        let slot = self.relay_slots.insert(addr, socket.clone());
        self.relays.insert(
            addr,
            RelayEntry {
                socket,
                slot,
                actor,
                allocation,
            },
        );
    }

    /// Stops serving the relay bound to `addr`: its actor stops, its socket closes.
    pub(super) fn stop_relay(&mut self, addr: SocketAddr) -> Option<AllocationId> {
        let r = self.relays.remove(&addr)?;
        r.actor.do_send(Command::Stop);
        self.relay_slots.remove(r.slot);
        Some(r.allocation)
    }
}
