//! Application data through Send/Data indications and ChannelData.

use super::*;

// ---- Data ------------------------------------------------------------------------------------

#[test]
fn send_uses_a_send_indication_until_a_channel_is_bound() {
    let mut h = ScriptedServer::allocated();
    let peer = addr("198.51.100.20:7000");
    assert_eq!(
        h.client.send_to(h.now, peer, b"hello"),
        Err(ClientError::NoPermission(peer.ip()))
    );
    h.client.create_permission(h.now, &[peer.ip()]).unwrap();
    h.pump();
    h.client.send_to(h.now, peer, b"hello").unwrap();
    h.pump();
    let ind = Message::decode(h.data_sent()[0].clone()).unwrap();
    assert_eq!(ind.typ(), Method::SEND.indication());
    assert_eq!(
        ind.get::<XorPeerAddress>().unwrap().unwrap(),
        XorPeerAddress(peer)
    );
    assert_eq!(&ind.get::<Data>().unwrap().unwrap().0[..], b"hello");
    assert!(!ind.has_integrity());

    // While the ChannelBind is in flight, data still goes as Send indications.
    h.client.channel_bind(h.now, peer).unwrap();
    let bind = h.client.poll_transmit().unwrap();
    h.client.send_to(h.now, peer, b"again").unwrap();
    let t = h.client.poll_transmit().unwrap();
    assert_eq!(Message::decode(t.payload).unwrap().method(), Method::SEND);
    let answer = h.server().handle(bind.payload).unwrap();
    h.input(answer);

    h.client.send_to(h.now, peer, b"hello").unwrap();
    h.pump();
    let last = h.data_sent().last().unwrap().clone();
    assert_eq!(
        &last[..],
        b"\x40\x00\x00\x05hello",
        "UDP ChannelData is not padded"
    );
}

#[test]
fn channel_data_is_padded_over_tcp() {
    let mut h = ScriptedServer::with(|c| c.transport = Transport::Tcp);
    h.client.allocate(h.now).unwrap();
    h.pump();
    let peer = addr("198.51.100.20:7000");
    h.client.channel_bind(h.now, peer).unwrap();
    h.pump();
    h.client.send_to(h.now, peer, b"hello").unwrap();
    h.pump();
    let last = h.data_sent().last().unwrap().clone();
    assert_eq!(&last[..], b"\x40\x00\x00\x05hello\0\0\0");
    assert!(h.sent.iter().all(|(_, t)| t.transport == Transport::Tcp));
}

#[test]
fn oversized_data_is_refused() {
    let mut h = ScriptedServer::allocated();
    let peer = addr("198.51.100.20:7000");
    h.client.create_permission(h.now, &[peer.ip()]).unwrap();
    h.pump();
    let big = vec![0u8; 70_000];
    assert_eq!(
        h.client.send_to(h.now, peer, &big),
        Err(ClientError::TooLarge(70_000))
    );
}

fn data_indication(peer: SocketAddr, data: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::DATA.indication(), TransactionId([9; 12]));
    enc.add(&XorPeerAddress(peer))
        .add(&Data(Bytes::copy_from_slice(data)));
    enc.finish().unwrap();
    buf.freeze()
}

#[test]
fn data_indications_and_channel_data_become_data_events() {
    let mut h = ScriptedServer::allocated();
    let peer = addr("198.51.100.20:7000");
    h.input(data_indication(peer, b"ind"));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Data {
            peer,
            data: Bytes::from_static(b"ind")
        }]
    );
    h.client.channel_bind(h.now, peer).unwrap();
    h.pump();
    h.take_events();
    h.input(Bytes::from_static(b"\x40\x00\x00\x02hi\0\0"));
    h.input(Bytes::from_static(b"\x40\x00\x00\x03abc"));
    assert_eq!(
        h.take_events(),
        [
            ClientEvent::Data {
                peer,
                data: Bytes::from_static(b"hi")
            },
            ClientEvent::Data {
                peer,
                data: Bytes::from_static(b"abc")
            }
        ]
    );
    // Unknown channel, or data not from the server: dropped.
    h.input(Bytes::from_static(b"\x40\x01\x00\x02hi"));
    h.client
        .handle_input(h.now, addr("192.0.2.66:3478"), data_indication(peer, b"x"));
    h.client.handle_input(
        h.now,
        addr("192.0.2.66:3478"),
        Bytes::from_static(b"\x40\x00\x00\x02hi"),
    );
    assert!(h.take_events().is_empty());
}

#[test]
fn data_before_allocation_is_dropped() {
    let mut h = ScriptedServer::new();
    h.input(data_indication(addr("198.51.100.20:7000"), b"x"));
    assert!(h.take_events().is_empty());
}
