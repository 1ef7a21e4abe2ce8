//! The data path of the owner: datagrams and frames from clients and peers, the sends
//! they queue, and the end of every batch (responses, flushes, events, the timer, counts).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use floe::transmit::Transport;
use floe::turn::server::{ClientOutput, FiveTuple, PeerOutput, RelayAsk, PEER_HEADROOM};

use super::super::outbox::Pending;
use super::super::stream_writer::StreamSendError;
use super::{Shard, MAX_DATAGRAM};

impl Shard {
    /// The listener (its index in `listeners`) that serves `server`.
    pub(super) fn listener_for(&self, server: SocketAddr) -> Option<usize> {
        self.listeners
            .iter()
            .position(|l| l.local_addr() == server)
            .or_else(|| {
                self.listeners.iter().position(|l| {
                    l.local_addr().port() == server.port()
                        && l.local_addr().ip().is_unspecified()
                        && l.local_addr().is_ipv4() == server.is_ipv4()
                })
            })
    }

    /// Data or a request from a client.
    #[inline]
    pub(super) fn on_client(&mut self, now: Instant, ft: &FiveTuple, data: &[u8]) {
        let stun = data.first().is_some_and(|b| *b <= 3);
        if stun && data.get(..2) == Some(&[0, 1]) {
            self.tally.bindings += 1;
        }
        match self.core.handle_client(now, ft, data) {
            ClientOutput::None => {}
            ClientOutput::Relay {
                relay,
                peer,
                payload,
                ..
            } => {
                if self.within_total_bps(0, now, payload.len()) {
                    self.send_to_peer(relay, peer, payload)
                }
            }
            ClientOutput::RelayOwned {
                relay,
                peer,
                payload,
                ..
            } => {
                if self.within_total_bps(0, now, payload.len()) {
                    self.send_to_peer(relay, peer, &payload)
                }
            }
        }
        if stun {
            self.serve_relay_requests(now);
        }
    }

    /// Answers the core's relay requests in the same pass: quotas, then sockets.
    pub(super) fn serve_relay_requests(&mut self, now: Instant) {
        while let Some(request) = self.core.poll_relay_request() {
            let (id, user) = (request.id, request.username.clone());
            let token = match &request.relays {
                RelayAsk::Bind { reservation, .. } => *reservation,
                RelayAsk::Redeem { .. } => None,
            };
            let relays = &self.relays;
            match self.binder.fulfil(request, |a| relays.contains_key(&a)) {
                Ok((grant, bound)) => {
                    if self.core.relay_ready(now, id, Ok(grant)).is_some() {
                        self.bound.extend(bound);
                    } else {
                        // No allocation came of it: `bound` closes as it drops.
                        self.binder.release(&user);
                        if let Some(token) = token {
                            self.binder.unpark(&token);
                        }
                    }
                }
                Err(refusal) => {
                    self.core.relay_ready(now, id, Err(refusal));
                }
            }
        }
    }

    /// Queues a datagram for `peer` on the relay socket `relay`. Consecutive datagrams
    /// from one relay leave together (one `sendmmsg`, GSO for runs to one peer).
    #[inline]
    pub(super) fn send_to_peer(&mut self, relay: SocketAddr, peer: SocketAddr, payload: &[u8]) {
        if self.to_peers_relay != Some(relay) {
            self.flush_peers();
            self.to_peers_relay = Some(relay);
        }
        self.to_peers.push(peer, None, payload);
    }

    /// Sends what is queued for peers. A send error (unreachable peer, ICMP refused)
    /// costs only the datagrams of that send.
    pub(super) fn flush_peers(&mut self) {
        let Some(relay) = self.to_peers_relay.take() else {
            return;
        };
        match self.relays.get(&relay) {
            Some(entry) => {
                let (n, bytes) = self.to_peers.flush(&entry.socket);
                self.tally.to_peer.0 += n;
                self.tally.to_peer.1 += bytes;
            }
            None => self.to_peers.clear(),
        }
    }

    /// Sends what is queued for UDP clients.
    pub(super) fn flush_clients(&mut self) {
        for (pending, listener) in self.to_clients.iter_mut().zip(&self.listeners) {
            pending.flush(listener);
        }
    }

    /// Data from a peer on a relay.
    #[inline]
    pub(super) fn on_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        payload: &[u8],
    ) {
        let len = payload.len();
        if len > MAX_DATAGRAM {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch[PEER_HEADROOM..PEER_HEADROOM + len].copy_from_slice(payload);
        match self.core.handle_peer(now, relay, peer, &mut scratch, len) {
            PeerOutput::Drop => {}
            PeerOutput::ChannelData { .. } | PeerOutput::DataIndication { .. }
                if !self.within_total_bps(1, now, len) => {}
            PeerOutput::ChannelData { client, len: n } => {
                self.send_to_client(&client, &scratch[..n]);
                self.tally.to_client.0 += 1;
                self.tally.to_client.1 += len as u64;
            }
            PeerOutput::DataIndication { client, message } => {
                self.send_to_client(&client, &message);
                self.tally.to_client.0 += 1;
                self.tally.to_client.1 += len as u64;
            }
        }
        self.scratch = scratch;
    }

    /// Whether `len` relayed bytes fit this Arbiter's share of `total-bps` (`way` 0 to
    /// peers, 1 to clients); counts them if not.
    #[inline]
    pub(super) fn within_total_bps(&mut self, way: usize, now: Instant, len: usize) -> bool {
        if self.total_bps[way].take(now, len) {
            return true;
        }
        self.tally.over_total_bps.0 += 1;
        self.tally.over_total_bps.1 += len as u64;
        false
    }

    /// Queues a datagram for a UDP client (sent at the end of the batch), or hands it to
    /// the client's TCP connection.
    pub(super) fn send_to_client(&mut self, ft: &FiveTuple, data: &[u8]) {
        match ft.transport {
            Transport::Udp => {
                if let Some(i) = self.listener_for(ft.server) {
                    let local = self.listeners[i].local_addr();
                    let source = (local.ip().is_unspecified() && !ft.server.ip().is_unspecified())
                        .then_some(ft.server.ip());
                    if self.to_clients.len() < self.listeners.len() {
                        self.to_clients
                            .resize_with(self.listeners.len(), Pending::default);
                    }
                    self.to_clients[i].push(ft.client, source, data);
                }
            }
            Transport::Tcp | Transport::Tls => {
                // Bounded in bytes: a client that stops reading loses data, the server
                // no memory.
                if let Some(w) = self.tcp.get(&(ft.client, ft.server)) {
                    if w.send(Bytes::copy_from_slice(data)) == Err(StreamSendError::Full) {
                        self.metrics.tcp_dropped(data.len() as u64);
                    }
                }
            }
        }
    }

    /// Sends the core's responses and everything queued, acts on the core's events, and
    /// re-arms the timer if the core's deadline moved earlier. Ends every batch.
    pub(super) fn finish_batch(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            let ft = FiveTuple {
                client: t.destination,
                server: t.source,
                transport: t.transport,
            };
            self.send_to_client(&ft, &t.payload);
        }
        // Before the events: a relay released below must still send what it queued.
        self.flush_peers();
        while let Some(e) = self.core.poll_event() {
            self.on_event(e);
        }
        // After them: a client told its allocation is gone finds its quota given back,
        // whichever thread its next Allocate reaches.
        self.flush_clients();
        if let Some(at) = self.core.poll_timeout() {
            if self.timer.is_none_or(|armed| at < armed) {
                self.timer = Some(at);
                self.supervision.wake_at(at);
            }
        }
        let tally = std::mem::take(&mut self.tally);
        if tally.to_peer.0 > 0 {
            self.metrics
                .relayed_to_peer(tally.to_peer.0, tally.to_peer.1);
        }
        if tally.to_client.0 > 0 {
            self.metrics
                .relayed_to_client(tally.to_client.0, tally.to_client.1);
        }
        if tally.bindings > 0 {
            self.metrics.binding_requests(tally.bindings);
        }
        if tally.over_total_bps.0 > 0 {
            let (packets, bytes) = tally.over_total_bps;
            self.metrics.over_total_bps(packets, bytes);
        }
        let refused = self.core.take_counters();
        if !refused.is_zero() {
            self.metrics.core_counters(&refused);
        }
    }
}
