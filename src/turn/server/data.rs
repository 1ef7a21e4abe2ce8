//! The data path (RFC 8656 §10, §12): ChannelData and Send indications from clients,
//! datagrams from peers. Nothing here allocates for ChannelData, in either direction.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;

use super::allocation::FiveTuple;
use super::event::{ClientOutput, PeerOutput, PEER_HEADROOM};
use super::{policy, Server};
use crate::stun::attribute::*;
use crate::stun::{Message, MessageEncoder, Method, TransactionId};
use crate::turn::ChannelData;

impl Server {
    #[inline]
    pub(super) fn client_channel_data<'a>(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        data: &'a [u8],
    ) -> ClientOutput<'a> {
        let Ok((channel, payload)) = ChannelData::decode_slice(data) else {
            return ClientOutput::None;
        };
        let Some(alloc) = self
            .by_five_tuple
            .get(ft)
            .and_then(|id| self.allocations.get_mut(id))
        else {
            return ClientOutput::None;
        };
        let Some(peer) = alloc.channel_peer(now, channel) else {
            return ClientOutput::None;
        };
        match alloc.relay_for(peer.ip()) {
            Some(relay)
                if alloc.has_permission(now, peer.ip()) && self.config.policy.may_send_to(peer) =>
            {
                if !alloc.to_peers.take(now, payload.len()) {
                    self.counters.over_bps_packets += 1;
                    self.counters.over_bps_bytes += payload.len() as u64;
                    return ClientOutput::None;
                }
                alloc.usage.to_peers.count(payload.len());
                ClientOutput::Relay {
                    relay,
                    peer,
                    payload,
                    dont_fragment: alloc.dont_fragment,
                }
            }
            _ => ClientOutput::None,
        }
    }

    /// Data from `peer` arrived on the relay bound to `relay`. `buf` holds
    /// [`PEER_HEADROOM`] free bytes, then the `len` data bytes, then at least 3 spare
    /// bytes for padding over TCP.
    #[inline]
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> PeerOutput {
        let Some(alloc) = self
            .by_relay
            .get(&relay)
            .and_then(|id| self.allocations.get_mut(id))
        else {
            return PeerOutput::Drop;
        };
        if !alloc.has_permission(now, peer.ip()) || buf.len() < PEER_HEADROOM + len {
            return PeerOutput::Drop;
        }
        if !alloc.to_client.take(now, len) {
            self.counters.over_bps_packets += 1;
            self.counters.over_bps_bytes += len as u64;
            return PeerOutput::Drop;
        }
        let client = alloc.five_tuple;
        match alloc.peer_channel(now, peer) {
            Some(channel) if len <= usize::from(u16::MAX) => {
                let header: &mut [u8; 4] = (&mut buf[..4]).try_into().expect("4 bytes");
                ChannelData::write_header(header, channel, len as u16);
                let mut total = PEER_HEADROOM + len;
                if client.transport.is_reliable() {
                    let pad = ChannelData::padding_len(len);
                    if buf.len() < total + pad {
                        return PeerOutput::Drop;
                    }
                    buf[total..total + pad].fill(0);
                    total += pad;
                }
                alloc.usage.to_client.count(len);
                PeerOutput::ChannelData { client, len: total }
            }
            _ => {
                let payload = &buf[PEER_HEADROOM..PEER_HEADROOM + len];
                let mut out = BytesMut::with_capacity(len + 48);
                let tid = TransactionId::random(&mut self.rng);
                let mut enc = MessageEncoder::new(&mut out, Method::DATA.indication(), tid);
                enc.add(&XorPeerAddress(peer)).add_raw(Data::TYPE, payload);
                match enc.finish() {
                    Ok(_) => {
                        alloc.usage.to_client.count(len);
                        PeerOutput::DataIndication {
                            client,
                            message: out.freeze(),
                        }
                    }
                    Err(_) => PeerOutput::Drop,
                }
            }
        }
    }

    /// RFC 8656 §10.2: a Send indication.
    pub(super) fn send_indication<'a>(
        &mut self,
        now: Instant,
        ft: &FiveTuple,
        msg: &Message,
    ) -> ClientOutput<'a> {
        let Some(alloc) = self
            .by_five_tuple
            .get(ft)
            .and_then(|id| self.allocations.get_mut(id))
        else {
            return ClientOutput::None;
        };
        let (Some(Ok(XorPeerAddress(peer))), Some(Ok(Data(payload)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        else {
            return ClientOutput::None;
        };
        // RFC 8489 §6.3.1: an indication with unknown comprehension-required attributes
        // is discarded.
        if !msg.unknown_comprehension_required().is_empty() {
            return ClientOutput::None;
        }
        let peer = policy::canonical_peer(peer);
        match alloc.relay_for(peer.ip()) {
            Some(relay)
                if alloc.has_permission(now, peer.ip()) && self.config.policy.may_send_to(peer) =>
            {
                if !alloc.to_peers.take(now, payload.len()) {
                    self.counters.over_bps_packets += 1;
                    self.counters.over_bps_bytes += payload.len() as u64;
                    return ClientOutput::None;
                }
                alloc.usage.to_peers.count(payload.len());
                ClientOutput::RelayOwned {
                    relay,
                    peer,
                    payload,
                    dont_fragment: msg.contains(DontFragment::TYPE),
                }
            }
            _ => ClientOutput::None,
        }
    }
}
