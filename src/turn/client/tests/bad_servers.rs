//! Servers that answer garbage, nothing, or the unexpected; and properties over random input.

use super::*;

// ---- Bad servers ------------------------------------------------------------------------------

#[test]
fn a_response_with_an_unknown_transaction_id_is_ignored() {
    let mut h = ScriptedServer::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests[0].clone();
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(
        &mut buf,
        Method::ALLOCATE.success(),
        TransactionId([0xEE; 12]),
    );
    enc.add(&XorRelayedAddress(addr("192.0.2.99:1")));
    enc.finish().unwrap();
    h.input(buf.freeze());
    // Right id, wrong method: ignored too.
    let wrong_method = {
        let mut buf = BytesMut::new();
        let mut enc =
            MessageEncoder::new(&mut buf, Method::REFRESH.success(), req.transaction_id());
        enc.add(&Lifetime(1));
        enc.finish().unwrap();
        buf.freeze()
    };
    h.input(wrong_method);
    assert_eq!(h.client.state(), ClientState::Allocating);
    let events = h.take_events();
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, ClientEvent::Allocated { .. })),
        "{events:?}"
    );
}

#[test]
fn success_without_xor_relayed_address_is_an_error() {
    let mut h = ScriptedServer::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests[0].clone();
    h.input(success(&req, |enc| {
        enc.add(&XorMappedAddress(addr("203.0.113.9:61000")))
            .add(&Lifetime(600));
    }));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: None,
            reason: "Allocate success without XOR-RELAYED-ADDRESS".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
    assert_eq!(h.client.poll_timeout(), None, "the transaction is over");
}

#[test]
fn garbage_is_dropped() {
    let mut h = ScriptedServer::allocated();
    let before = h.client.poll_timeout();
    for junk in [
        &b""[..],
        b"\x00",
        b"\x00\x01\x00\x00\x21\x12\xa4\x42",
        b"\x01\x01\x00\x04\x21\x12\xa4\x42abcdefghijkl\x00\x20\x00\x08",
        b"\x40",
        b"\x4f\xff\xff\xff",
        b"\x80hello rtp",
        b"\x16\x03\x01 tls",
        &[0xff; 1500],
    ] {
        h.input(Bytes::copy_from_slice(junk));
    }
    assert!(h.take_events().is_empty());
    assert_eq!(h.client.state(), ClientState::Allocated);
    assert_eq!(h.client.poll_timeout(), before);
}

#[test]
fn silence_over_udp_times_out_after_7_sends_and_39_5_s() {
    let mut h = ScriptedServer::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.advance(secs(60));
    assert_eq!(
        h.request_times(Method::ALLOCATE),
        [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms)
    );
    assert_eq!(
        h.events,
        [(
            ms(39_500),
            ClientEvent::Error {
                request: Method::ALLOCATE,
                code: None,
                reason: "timed out".into()
            }
        )]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn silence_over_tcp_times_out_after_1_send_and_39_5_s() {
    let mut h = ScriptedServer::with(|c| c.transport = Transport::Tcp);
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.advance(secs(60));
    assert_eq!(h.request_times(Method::ALLOCATE), [ms(0)]);
    assert_eq!(
        h.events,
        [(
            ms(39_500),
            ClientEvent::Error {
                request: Method::ALLOCATE,
                code: None,
                reason: "timed out".into()
            }
        )]
    );
}

#[test]
fn later_requests_use_the_measured_rto() {
    // RFC 8489 §6.2.1: the RTO measured on this server is reused for 10 minutes.
    let mut h = ScriptedServer::new();
    h.client.binding(h.now);
    let t = h.client.poll_transmit().unwrap();
    h.now += ms(20);
    let answer = h.server().handle(t.payload).unwrap();
    h.input(answer);
    h.server().silent = true;
    let start = h.elapsed();
    h.client.binding(h.now);
    h.advance(ms(200));
    let times: Vec<Duration> = h
        .request_times(Method::BINDING)
        .iter()
        .map(|t| *t - start)
        .collect();
    assert_eq!(
        times,
        [ms(0), ms(100)],
        "RTO = 20 ms + 4 * 10 ms, clamped to 100 ms"
    );
}

// ---- Properties ------------------------------------------------------------------------------

/// A message of `class` for a pending transaction of `h`, with arbitrary attributes.
fn response_with(
    h: &ScriptedServer,
    method: Method,
    class: Class,
    attrs: &[(u16, Vec<u8>)],
) -> Bytes {
    let tid = h.servers[0]
        .requests
        .last()
        .map_or(TransactionId([0; 12]), |m| m.transaction_id());
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, MessageType::new(method, class), tid);
    for (t, v) in attrs {
        enc.add_raw(AttributeType(*t), v);
    }
    let _ = enc.finish();
    buf.freeze()
}

const INTERESTING: [u16; 14] = [
    0x0001, 0x0006, 0x0008, 0x0009, 0x000C, 0x000D, 0x0012, 0x0013, 0x0014, 0x0015, 0x0016, 0x001C,
    0x8002, 0x8023,
];

fn state_for(phase: u8) -> ScriptedServer {
    match phase % 3 {
        0 => ScriptedServer::new(),
        1 => {
            let mut h = ScriptedServer::new();
            h.server().silent = true;
            h.client.allocate(h.now).unwrap();
            h.pump();
            h
        }
        _ => {
            let mut h = ScriptedServer::allocated();
            h.client
                .channel_bind(h.now, addr("198.51.100.20:7000"))
                .unwrap();
            h.pump();
            h.server().silent = true;
            h.client.refresh(h.now, secs(100)).unwrap();
            h.pump();
            h
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(phase in 0u8..3, packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..8)) {
        let mut h = state_for(phase);
        for p in packets {
            h.input(Bytes::from(p));
        }
        h.advance(secs(700));
    }

    #[test]
    fn random_responses_never_panic(
        phase in 0u8..3,
        method in prop::sample::select(vec![Method::ALLOCATE, Method::REFRESH, Method::BINDING, Method::CHANNEL_BIND, Method::DATA]),
        class in prop::sample::select(vec![Class::Success, Class::Error, Class::Indication]),
        attrs in prop::collection::vec((prop::sample::select(INTERESTING.to_vec()), prop::collection::vec(any::<u8>(), 0..40)), 0..6),
    ) {
        let mut h = state_for(phase);
        let msg = response_with(&h, method, class, &attrs);
        h.input(msg);
        h.advance(secs(700));
    }
}

#[test]
fn channel_numbers_come_from_rfc_8656s_range_and_run_out_after_0x4fff() {
    let mut h = ScriptedServer::allocated();
    for i in 0..ChannelNumber::COUNT as u32 {
        let ip = std::net::Ipv4Addr::from(0xC633_6400u32 + i / 64);
        let peer = SocketAddr::new(IpAddr::V4(ip), 7000 + (i % 64) as u16);
        let n = h.client.channel_bind(h.now, peer).unwrap();
        assert_eq!(n, 0x4000 + i as u16);
        while h.client.poll_transmit().is_some() {}
    }
    assert_eq!(
        h.client.channel_bind(h.now, addr("198.51.100.250:9")),
        Err(ClientError::NoChannelNumber)
    );
}

#[test]
fn channel_data_in_rfc_5766s_wider_range_is_decoded_and_dropped_as_unknown() {
    let mut h = ScriptedServer::allocated();
    h.take_events();
    // 0x5000..=0x7FFF decode (the shared codec is liberal) but this client never binds them.
    h.input(Bytes::from_static(b"\x50\x00\x00\x02hi"));
    h.input(Bytes::from_static(b"\x7f\xfe\x00\x00"));
    h.input(Bytes::from_static(b"\x7f\xff\x00\x00"));
    assert!(h.take_events().is_empty());
}
