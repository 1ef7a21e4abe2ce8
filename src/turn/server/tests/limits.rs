//! What an attacker meets (issue 13): small, rate-limited unauthenticated answers, the
//! RFC's lifetime and attribute rules, relay ports in range and unpredictable, and the
//! caps of one allocation.

use super::*;

use proptest::prelude::*;

/// An Allocate as a client first sends it: REQUESTED-TRANSPORT only (28 bytes).
fn bare_allocate(n: u32) -> Bytes {
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(n));
    e.add(&RequestedTransport(17));
    e.finish().unwrap();
    buf.freeze()
}

/// Sends `data` from `ft` and returns the answer, if any.
fn answer(h: &mut ScriptedClient, ft: FiveTuple, data: &[u8]) -> Option<Message> {
    h.server.handle_client(h.now, &ft, data);
    let t = h.server.poll_transmit()?;
    Some(Message::decode(t.payload).unwrap())
}

#[test]
fn unauthenticated_errors_are_small_and_carry_no_software() {
    // As `floe serve` runs: SHA-256 offered, SOFTWARE set.
    let mut h = ScriptedClient::with(|c| c.password_algorithms = true);
    assert!(h.server.config().software.is_some());
    let req = bare_allocate(1);
    let ft = h.ft;
    let r = answer(&mut h, ft, &req).unwrap();
    assert_eq!(ScriptedClient::code(&r), Some(401));
    assert!(r.get::<Software>().is_none(), "SOFTWARE in a 401");
    let ratio = r.as_bytes().len() as f64 / req.len() as f64;
    assert!(
        ratio < 3.6,
        "the 401 is {} bytes, {ratio:.1}× the {}-byte request",
        r.as_bytes().len(),
        req.len()
    );
    // Other errors before authentication: no SOFTWARE either.
    let r = h.request(Method::ALLOCATE, false, &[]);
    assert!(r.get::<Software>().is_none());
    let r = h.request(Method::REFRESH, false, &[Username::new(USER).into()]);
    assert!(r.get::<Software>().is_none());
    let unknown = Attribute::Unknown {
        typ: AttributeType(0x7777),
        value: Bytes::from_static(b"?"),
    };
    let r = h.request(Method::BINDING, false, &[unknown]);
    assert_eq!(ScriptedClient::code(&r), Some(420));
    assert!(r.get::<Software>().is_none());
    // An authenticated client's errors do carry it.
    h.nonce.clear();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(437));
    assert!(r.get::<Software>().is_some());
}

#[test]
fn unauthenticated_errors_are_rate_limited_per_source_ip_over_udp() {
    let mut h = ScriptedClient::with(|c| c.unauth_rate = 5);
    let burst = 5 * limit::UNAUTH_BURST_SECONDS;
    let a = h.ft;
    // One source, many ports: one bucket.
    let answered = (0..100u16)
        .filter(|i| {
            let ft = FiveTuple {
                client: SocketAddr::new(a.client.ip(), 1000 + i),
                ..a
            };
            answer(&mut h, ft, &bare_allocate(u32::from(*i))).is_some()
        })
        .count();
    assert_eq!(answered as u64, burst);
    assert_eq!(h.server.take_counters().unauth_dropped, 100 - burst);
    assert_eq!(h.server.take_counters(), ServerCounters::default());
    let dropped_events = h
        .events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::ErrorResponse { .. }))
        .count();
    assert_eq!(
        dropped_events as u64, burst,
        "no event for a dropped answer"
    );
    // Another source has its own bucket; TCP sources are not limited.
    let b = five_tuple("203.0.113.10:40000");
    assert!(answer(&mut h, b, &bare_allocate(200)).is_some());
    let tcp = FiveTuple {
        transport: Transport::Tcp,
        ..a
    };
    assert!((0..50).all(|i| answer(&mut h, tcp, &bare_allocate(300 + i)).is_some()));
    // The bucket refills at the rate.
    assert!(answer(&mut h, a, &bare_allocate(400)).is_none());
    h.now += Duration::from_millis(200);
    assert!(answer(&mut h, a, &bare_allocate(401)).is_some());
    assert!(answer(&mut h, a, &bare_allocate(402)).is_none());
    // Authenticated traffic from a limited source still works: its errors carry
    // integrity and are not counted.
    h.now += Duration::from_secs(10);
    h.allocate();
    for i in 0..100 {
        answer(&mut h, a, &bare_allocate(500 + i));
    }
    let r = h.request(Method::REFRESH, true, &[Lifetime(600).into()]);
    assert_eq!(r.class(), Class::Success);
    // Binding is a success response, answered regardless.
    let r = h.request(Method::BINDING, false, &[]);
    assert_eq!(r.class(), Class::Success);
}

#[test]
fn a_flood_from_spoofed_sources_leaves_no_state() {
    let mut h = ScriptedClient::with(|c| c.unauth_rate = 20);
    for i in 0..20_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
        let ft = FiveTuple {
            client: SocketAddr::new(IpAddr::V4(ip), 5000),
            ..h.ft
        };
        answer(&mut h, ft, &bare_allocate(i));
    }
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
    assert!(h.server.unauth.slots_len() <= limit::UNAUTH_BUCKETS);
}

#[test]
fn lifetime_zero_on_allocate_gets_the_default_and_a_malformed_one_400() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let short = Attribute::Unknown {
        typ: Lifetime::TYPE,
        value: Bytes::from_static(&[0, 0]),
    };
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), short.clone()],
    );
    assert_eq!(ScriptedClient::code(&r), Some(400), "a 2-byte LIFETIME");
    assert_eq!(h.server.allocation_count(), 0);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), Lifetime(0).into()],
    );
    assert_eq!(r.class(), Class::Success, "{:?}", ScriptedClient::code(&r));
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    h.advance(Duration::from_secs(2));
    assert_eq!(h.server.allocation_count(), 1, "not a 1-second allocation");
    let r = h.request(Method::REFRESH, true, &[short]);
    assert_eq!(ScriptedClient::code(&r), Some(400));
    assert_eq!(h.server.allocation_count(), 1);
    // On a Refresh, 0 still deletes.
    let r = h.request(Method::REFRESH, true, &[Lifetime(0).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(0));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn change_request_gets_420_and_unknown_attributes_lists_each_type_once() {
    let mut h = ScriptedClient::new();
    let change = ChangeRequest {
        change_ip: true,
        change_port: false,
    };
    let r = h.request(Method::BINDING, false, &[change.into()]);
    assert_eq!(ScriptedClient::code(&r), Some(420));
    assert_eq!(
        r.get::<UnknownAttributes>().unwrap().unwrap().0,
        vec![ChangeRequest::TYPE]
    );
    let unknown = |t: u16| Attribute::Unknown {
        typ: AttributeType(t),
        value: Bytes::from_static(b"?"),
    };
    let r = h.request(
        Method::BINDING,
        false,
        &[
            unknown(0x7777),
            unknown(0x7778),
            unknown(0x7777),
            change.into(),
        ],
    );
    assert_eq!(
        r.get::<UnknownAttributes>().unwrap().unwrap().0,
        vec![
            AttributeType(0x7777),
            AttributeType(0x7778),
            ChangeRequest::TYPE
        ]
    );
}

proptest! {
    #[test]
    fn relay_ports_stay_in_the_range(
        min in 1u16..=u16::MAX,
        len in 0u16..40,
        top in any::<bool>(),
        even in any::<bool>(),
        reserve in any::<bool>(),
        random in any::<u64>(),
    ) {
        // Half the cases end at 65535, where rounding to even used to wrap.
        let (min, max) = if top {
            (u16::MAX - len.min(u16::MAX - 1), u16::MAX)
        } else {
            (min, min.saturating_add(len))
        };
        let reserve = even && reserve;
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let mut c = PortCandidates::new(ip, min, max, even, reserve, random);
        let got: Vec<Candidate> = std::iter::from_fn(|| c.next_free(|_| false)).collect();
        let mut ports: Vec<u16> = got.iter().map(|c| c.relay.port()).collect();
        for c in &got {
            prop_assert!((min..=max).contains(&c.relay.port()), "{:?} outside {}-{}", c, min, max);
            if even {
                prop_assert_eq!(c.relay.port() % 2, 0);
            }
            if let Some(r) = c.reserved {
                prop_assert!(reserve);
                prop_assert_eq!(r.port(), c.relay.port() + 1);
                prop_assert!(r.port() <= max);
            }
        }
        ports.sort_unstable();
        ports.dedup();
        prop_assert_eq!(ports.len(), got.len(), "a port offered twice");
        // Every usable port of a small range is offered.
        let usable = (u32::from(min)..=u32::from(max))
            .filter(|p| !even || p % 2 == 0)
            .filter(|p| !reserve || *p < u32::from(max))
            .count();
        prop_assert_eq!(got.len(), usable.min(MAX_RELAY_BINDS as usize));
    }
}

#[test]
fn the_top_port_alone_gives_no_even_port_and_no_wrapped_one() {
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    let mut c = PortCandidates::new(ip, 65535, 65535, true, false, 12345);
    assert_eq!(c.next_free(|_| false), None);
    let mut c = PortCandidates::new(ip, 65535, 65535, false, false, 12345);
    assert_eq!(c.next_free(|_| false).unwrap().relay.port(), 65535);
    let mut h = ScriptedClient::with(|c| {
        c.min_port = 65535;
        c.max_port = 65535;
    });
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: false }.into(),
        ],
    );
    assert_eq!(ScriptedClient::code(&r), Some(508));
    assert!(h.driver.bound.is_empty());
}

#[test]
fn two_servers_do_not_pick_the_same_relay_ports() {
    // As the actors make them: seeded from the OS.
    let ports = |_: u8| -> Vec<u16> {
        let mut h = ScriptedClient::new();
        h.server = Server::new(h.server.config().clone(), StdRng::from_entropy());
        (0..8)
            .map(|i| {
                h.ft = five_tuple(&format!("203.0.113.9:{}", 41000 + i));
                h.nonce.clear();
                h.allocate().port()
            })
            .collect()
    };
    let (a, b) = (ports(1), ports(2));
    assert_ne!(a, b, "two servers allocated the same port sequence");
    // Not a walk up the range either.
    assert!(a.windows(2).any(|w| w[1] != w[0].wrapping_add(1)));
}

#[test]
fn permissions_and_channels_are_capped_per_allocation_with_508() {
    let mut h = ScriptedClient::with(|c| {
        c.max_permissions = 2;
        c.max_channels = 1;
    });
    h.allocate();
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("192.0.2.1:1"), peer_attr("192.0.2.2:1")],
    );
    assert_eq!(r.class(), Class::Success);
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.3:1")]);
    assert_eq!(ScriptedClient::code(&r), Some(508));
    // Refreshing one that exists is no new permission.
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.2:9")]);
    assert_eq!(r.class(), Class::Success);
    let r = h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.3:1")],
    );
    assert_eq!(
        ScriptedClient::code(&r),
        Some(508),
        "a third permission through ChannelBind"
    );
    let r = h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.1:1")],
    );
    assert_eq!(r.class(), Class::Success);
    let r = h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4001), peer_attr("192.0.2.2:1")],
    );
    assert_eq!(ScriptedClient::code(&r), Some(508));
    let c = h.server.take_counters();
    assert_eq!((c.permissions_refused, c.channels_refused), (2, 1));
}

#[test]
fn relayed_data_beyond_max_bps_is_dropped_and_counted() {
    let mut h = ScriptedClient::with(|c| c.max_bps = 1000);
    let relay = h.allocate();
    let r = h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.1:7")],
    );
    assert_eq!(r.class(), Class::Success);
    let ft = h.ft;
    let mut data = BytesMut::new();
    ChannelData::new(
        ChannelNumber::new(0x4000).unwrap(),
        Bytes::from(vec![7u8; 600]),
    )
    .unwrap()
    .encode(&mut data, false);
    let relayed = |h: &mut ScriptedClient| {
        matches!(
            h.server.handle_client(h.now, &ft, &data),
            ClientOutput::Relay { .. }
        )
    };
    assert!(relayed(&mut h));
    assert!(!relayed(&mut h), "1200 bytes in no time");
    h.now += Duration::from_millis(700);
    assert!(relayed(&mut h));
    // The other way has its own budget.
    let payload = [9u8; 600];
    assert!(matches!(
        h.peer_data(relay, "192.0.2.1:7", &payload),
        PeerOutput::ChannelData { .. }
    ));
    assert_eq!(
        h.peer_data(relay, "192.0.2.1:7", &payload),
        PeerOutput::Drop
    );
    let c = h.server.take_counters();
    assert_eq!((c.over_bps_packets, c.over_bps_bytes), (2, 1200));
}
