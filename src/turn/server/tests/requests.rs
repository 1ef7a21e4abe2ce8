//! Binding, authentication, Refresh, permissions, channels, the data path and timers.

use super::*;

use proptest::prelude::*;

#[test]
fn binding_answers_without_authentication() {
    let mut h = ScriptedClient::new();
    let r = h.request(Method::BINDING, false, &[]);
    assert_eq!(r.class(), Class::Success);
    assert_eq!(r.get::<XorMappedAddress>().unwrap().unwrap().0, h.ft.client);
    assert_eq!(r.get::<MappedAddress>().unwrap().unwrap().0, h.ft.client);
    assert!(r.has_fingerprint());
}

#[test]
fn wrong_password_and_unknown_user_get_401() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    h.tid += 1;
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(h.tid));
    let wrong = IntegrityKey::long_term(Algorithm::Md5, USER, "floe", "nope").unwrap();
    e.add(&RequestedTransport(17))
        .add(&Username::new(USER))
        .add(&Realm::new("floe"))
        .add(&Nonce::new(h.nonce.clone()))
        .message_integrity(wrong.as_bytes());
    e.finish().unwrap();
    let r = h.send(&buf).unwrap();
    assert_eq!(ScriptedClient::code(&r), Some(401));
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ServerEvent::AuthFailed { code: 401, .. })));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn stale_nonce_gets_438_and_the_client_recovers() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    h.advance(Duration::from_secs(601));
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(438));
    // The 438 carried a fresh nonce: retrying with it works.
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(r.class(), Class::Success);
}

#[test]
fn refresh_clamps_and_zero_deletes() {
    let mut h = ScriptedClient::new();
    let relay = h.allocate();
    let r = h.request(Method::REFRESH, true, &[Lifetime(100_000).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(3600));
    h.events();
    let r = h.request(Method::REFRESH, true, &[Lifetime(0).into()]);
    assert_eq!(r.class(), Class::Success);
    assert_eq!(h.server.allocation_count(), 0);
    let ev = h.events();
    assert!(ev.contains(&ServerEvent::RelayReleased(relay)));
    assert!(ev
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationDeleted { .. })));
    let r = h.request(Method::REFRESH, true, &[Lifetime(600).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(437));
}

#[test]
fn permissions_are_checked_against_the_peer_policy() {
    let mut h = ScriptedClient::new();
    h.allocate();
    for denied in [
        "127.0.0.1:1",
        "10.0.0.1:1",
        "169.254.169.254:80",
        "[::ffff:127.0.0.1]:1",
        "0.0.0.0:1",
        "198.51.100.1:9",
    ] {
        let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr(denied)]);
        assert_eq!(ScriptedClient::code(&r), Some(403), "{denied}");
    }
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("[2001:db8::1]:1")],
    );
    assert_eq!(ScriptedClient::code(&r), Some(443));
    let r = h.request(Method::CREATE_PERMISSION, true, &[]);
    assert_eq!(ScriptedClient::code(&r), Some(400));
    // Several peers in one request, all or nothing.
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[
            peer_attr("192.0.2.7:1"),
            peer_attr("192.0.2.8:1"),
            peer_attr("10.1.1.1:1"),
        ],
    );
    assert_eq!(ScriptedClient::code(&r), Some(403));
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("192.0.2.7:1"), peer_attr("192.0.2.8:1")],
    );
    assert_eq!(r.class(), Class::Success);
    let perms = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::PermissionCreated { .. }))
        .count();
    assert_eq!(perms, 2);
}

#[test]
fn send_indications_and_data_indications_need_a_permission() {
    let mut h = ScriptedClient::new();
    let relay = h.allocate();
    let send = |h: &mut ScriptedClient| {
        let d = h.build(Method::SEND, false, &[]);
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(
            &mut buf,
            Method::SEND.indication(),
            Message::decode(d).unwrap().transaction_id(),
        );
        e.add(&XorPeerAddress("192.0.2.7:5000".parse().unwrap()))
            .add(&Data(Bytes::from_static(b"hello")));
        e.finish().unwrap();
        let ft = h.ft;
        match h.server.handle_client(h.now, &ft, &buf) {
            ClientOutput::RelayOwned {
                relay,
                peer,
                payload,
                ..
            } => Some((relay, peer, payload)),
            ClientOutput::None => None,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(send(&mut h), None);
    assert_eq!(
        h.peer_data(relay, "192.0.2.7:5000", b"hi"),
        PeerOutput::Drop
    );
    h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.7:1")]);
    let (r, peer, payload) = send(&mut h).unwrap();
    assert_eq!(
        (r, peer, &payload[..]),
        (relay, "192.0.2.7:5000".parse().unwrap(), &b"hello"[..])
    );
    match h.peer_data(relay, "192.0.2.7:6000", b"back") {
        PeerOutput::DataIndication { client, message } => {
            assert_eq!(client, h.ft);
            let m = Message::decode(message).unwrap();
            assert_eq!(m.typ(), Method::DATA.indication());
            assert_eq!(
                m.get::<Data>().unwrap().unwrap().0,
                Bytes::from_static(b"back")
            );
            assert_eq!(
                m.get::<XorPeerAddress>().unwrap().unwrap().0,
                "192.0.2.7:6000".parse().unwrap()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn channels_relay_both_ways_and_follow_the_rebinding_rules() {
    let mut h = ScriptedClient::new();
    let relay = h.allocate();
    let bind = |h: &mut ScriptedClient, ch: u16, peer: &str| {
        let r = h.request(
            Method::CHANNEL_BIND,
            true,
            &[channel_number(ch), peer_attr(peer)],
        );
        ScriptedClient::code(&r)
    };
    assert_eq!(bind(&mut h, 0x3FFF, "192.0.2.7:5000"), Some(400));
    assert_eq!(
        bind(&mut h, 0x7FFF, "192.0.2.99:5000"),
        None,
        "RFC 5766's top channel number (coturn's clients draw it)"
    );
    assert_eq!(bind(&mut h, 0x8000, "192.0.2.7:5000"), Some(400));
    assert_eq!(bind(&mut h, 0x4000, "10.0.0.1:5000"), Some(403));
    assert_eq!(bind(&mut h, 0x4000, "192.0.2.7:5000"), None);
    assert_eq!(bind(&mut h, 0x4000, "192.0.2.7:5000"), None, "refresh");
    assert_eq!(
        bind(&mut h, 0x4000, "192.0.2.8:5000"),
        Some(400),
        "number taken"
    );
    assert_eq!(
        bind(&mut h, 0x4001, "192.0.2.7:5000"),
        Some(400),
        "peer taken"
    );

    let mut cd = BytesMut::new();
    ChannelData::encode_into(ChannelNumber::new(0x4000).unwrap(), b"ping", &mut cd, false).unwrap();
    let ft = h.ft;
    assert_eq!(
        h.server.handle_client(h.now, &ft, &cd),
        ClientOutput::Relay {
            relay,
            peer: "192.0.2.7:5000".parse().unwrap(),
            payload: b"ping",
            dont_fragment: false
        }
    );
    // Unbound channel: dropped.
    let mut cd2 = BytesMut::new();
    ChannelData::encode_into(ChannelNumber::new(0x4002).unwrap(), b"x", &mut cd2, false).unwrap();
    assert_eq!(h.server.handle_client(h.now, &ft, &cd2), ClientOutput::None);
    assert_eq!(
        h.peer_data(relay, "192.0.2.7:5000", b"pong"),
        PeerOutput::ChannelData {
            client: h.ft,
            len: 8
        }
    );
}

#[test]
fn tcp_channel_data_to_the_client_is_padded() {
    let mut h = ScriptedClient::new();
    h.ft.transport = Transport::Tcp;
    let relay = h.allocate();
    h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.7:5000")],
    );
    assert!(matches!(
        h.peer_data(relay, "192.0.2.7:5000", b"abcde"),
        PeerOutput::ChannelData { len: 12, .. }
    ));
}

#[test]
fn lifetimes_expire_allocations_permissions_and_channels() {
    let mut h = ScriptedClient::with(|c| {
        c.default_lifetime = Duration::from_secs(30);
        c.permission_lifetime = Duration::from_secs(5);
        c.channel_lifetime = Duration::from_secs(10);
    });
    let relay = h.allocate();
    h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.7:5000")],
    );
    h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.9:1")]);
    assert!(matches!(
        h.peer_data(relay, "192.0.2.7:5000", b"a"),
        PeerOutput::ChannelData { .. }
    ));
    // Deadlines come from poll_timeout, not from polling.
    assert_eq!(
        h.server.poll_timeout(),
        Some(h.now + Duration::from_secs(5))
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(
        h.peer_data(relay, "192.0.2.9:1", b"a"),
        PeerOutput::Drop,
        "permission expired"
    );
    assert_eq!(
        h.peer_data(relay, "192.0.2.7:5000", b"a"),
        PeerOutput::Drop,
        "channel's permission expired"
    );
    let alloc = h.server.allocation_of(&h.ft).unwrap();
    assert_eq!(
        h.server.allocation(alloc).unwrap().permission_count(h.now),
        0
    );
    h.advance(Duration::from_secs(5));
    assert_eq!(h.server.allocation(alloc).unwrap().channel_count(h.now), 0);
    h.events();
    h.advance(Duration::from_secs(20));
    assert_eq!(h.server.allocation_count(), 0);
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationExpired { .. })));
    assert!(ev.contains(&ServerEvent::RelayReleased(relay)));
}

#[test]
fn another_user_on_the_same_five_tuple_gets_441() {
    let mut h = ScriptedClient::with(|c| c.credentials.users.insert("eve", "other"));
    h.allocate();
    h.tid += 1;
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::REFRESH.request(), tid(h.tid));
    let key = IntegrityKey::long_term(Algorithm::Md5, "eve", "floe", "other").unwrap();
    e.add(&Username::new("eve"))
        .add(&Realm::new("floe"))
        .add(&Nonce::new(h.nonce.clone()))
        .message_integrity(key.as_bytes());
    e.finish().unwrap();
    let r = h.send(&buf).unwrap();
    assert_eq!(ScriptedClient::code(&r), Some(441));
}

#[test]
fn rest_api_credentials() {
    let mut h = ScriptedClient::with(|c| {
        c.credentials.users = StaticUsers::new();
        c.credentials.rest_secrets = RestApiSecrets::new(["old", "current"]);
    });
    let user = "1700003600:alice";
    let pass = RestApiSecrets::password("current", user);
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let sign = |h: &mut ScriptedClient, user: &str, pass: &str| {
        h.tid += 1;
        let mut buf = BytesMut::new();
        let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(h.tid));
        let key = IntegrityKey::long_term(Algorithm::Md5, user, "floe", pass).unwrap();
        e.add(&RequestedTransport(17))
            .add(&Username::new(user))
            .add(&Realm::new("floe"))
            .add(&Nonce::new(h.nonce.clone()))
            .message_integrity(key.as_bytes());
        e.finish().unwrap();
        h.send(&buf).unwrap()
    };
    assert_eq!(sign(&mut h, user, &pass).class(), Class::Success);
    // Expired usernames are refused.
    h.ft = five_tuple("203.0.113.9:40001");
    let old = "1699999999:alice";
    let r = sign(&mut h, old, &RestApiSecrets::password("current", old));
    assert_eq!(ScriptedClient::code(&r), Some(401));
}

#[test]
fn sha256_and_userhash_when_offered() {
    let mut h = ScriptedClient::with(|c| c.password_algorithms = true);
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let offered = r.get::<PasswordAlgorithms>().unwrap().unwrap();
    assert_eq!(offered.0[0].algorithm, Algorithm::Sha256.code());
    let features = SecurityFeatures::from_nonce(&h.nonce).unwrap();
    assert!(features.password_algorithms && features.username_anonymity);
    h.tid += 1;
    let key = IntegrityKey::long_term(Algorithm::Sha256, USER, "floe", PASS).unwrap();
    let mut buf = BytesMut::new();
    let mut e = MessageEncoder::new(&mut buf, Method::ALLOCATE.request(), tid(h.tid));
    e.add(&RequestedTransport(17))
        .add(&Userhash(userhash(USER, "floe").unwrap()))
        .add(&Realm::new("floe"))
        .add(&Nonce::new(h.nonce.clone()))
        .add(&offered)
        .add(&Algorithm::Sha256)
        .message_integrity_sha256(key.as_bytes(), 32);
    e.finish().unwrap();
    let r = h.send(&buf).unwrap();
    assert_eq!(r.class(), Class::Success, "{:?}", ScriptedClient::code(&r));
    r.verify_integrity_sha256(key.as_bytes()).unwrap();
}

#[test]
fn unknown_comprehension_required_attribute_gets_420() {
    let mut h = ScriptedClient::new();
    let r = h.request(
        Method::BINDING,
        false,
        &[Attribute::Unknown {
            typ: AttributeType(0x7777),
            value: Bytes::from_static(b"?"),
        }],
    );
    assert_eq!(ScriptedClient::code(&r), Some(420));
    assert_eq!(
        r.get::<UnknownAttributes>().unwrap().unwrap().0,
        vec![AttributeType(0x7777)]
    );
}

proptest! {
    #[test]
    fn arbitrary_client_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut h = ScriptedClient::new();
        h.allocate();
        let ft = h.ft;
        let _ = h.server.handle_client(h.now, &ft, &data);
        let mut buf = data.clone();
        buf.extend_from_slice(&[0; 8]);
        let n = data.len();
        let _ = h.server.handle_peer(h.now, "198.51.100.1:50000".parse().unwrap(), "192.0.2.1:1".parse().unwrap(), &mut buf, n);
    }
}

#[test]
fn rfc3489_binding_without_magic_cookie_gets_mapped_address() {
    let mut h = ScriptedClient::new();
    let mut req = vec![0x00, 0x01, 0x00, 0x00];
    req.extend_from_slice(&[0xA5; 16]); // a 128-bit transaction id, no cookie
    let ft = h.ft;
    assert_eq!(h.server.handle_client(h.now, &ft, &req), ClientOutput::None);
    let t = h.server.poll_transmit().expect("an answer");
    let r = &t.payload[..];
    assert_eq!(&r[..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&r[4..20], &[0xA5; 16], "the transaction id echoed");
    assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), r.len() - 20);
    // MAPPED-ADDRESS, IPv4, the client's port and address in the clear.
    assert_eq!(&r[20..24], &[0x00, 0x01, 0x00, 0x08]);
    assert_eq!(u16::from_be_bytes([r[26], r[27]]), ft.client.port());
    assert_eq!(&r[28..32], &[203, 0, 113, 9]);
    // Anything else without a cookie is dropped.
    req[1] = 0x03;
    let _ = h.server.handle_client(h.now, &ft, &req);
    assert!(h.server.poll_transmit().is_none());
}
