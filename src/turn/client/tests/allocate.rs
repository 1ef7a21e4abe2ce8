//! Allocate: the 401 challenge, stale nonces, redirects, password algorithms, integrity.

use super::*;

// ---- Allocate ----------------------------------------------------------------------------

#[test]
fn allocate_answers_the_401_challenge_with_md5_credentials() {
    let mut h = ScriptedServer::new();
    h.client.allocate(h.now).unwrap();
    assert_eq!(h.client.state(), ClientState::Allocating);
    h.pump();

    let reqs = h.server().requests_of(Method::ALLOCATE);
    assert_eq!(
        reqs.len(),
        2,
        "one unauthenticated request, one answering the 401"
    );
    let (first, second) = (reqs[0].clone(), reqs[1].clone());
    assert!(!has(&first, Username::TYPE) && !first.has_integrity());
    assert_eq!(
        first.get::<RequestedTransport>().unwrap().unwrap(),
        RequestedTransport(17)
    );
    assert_eq!(first.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    assert!(first.has_fingerprint());
    assert_ne!(first.transaction_id(), second.transaction_id());
    assert_eq!(second.get::<Username>().unwrap().unwrap().as_str(), USER);
    assert_eq!(second.get::<Realm>().unwrap().unwrap().as_str(), REALM);
    assert_eq!(second.get::<Nonce>().unwrap().unwrap().as_str(), "nonce-0");
    assert_eq!(
        second.get::<Software>().unwrap().unwrap().as_str(),
        "floe test"
    );
    assert!(second.has_integrity() && !second.has_integrity_sha256());
    assert!(!has(&second, PasswordAlgorithm::TYPE));
    let md5 = IntegrityKey::long_term(PasswordAlgorithm::Md5, USER, REALM, PASS).unwrap();
    second.verify_integrity(md5.as_bytes()).unwrap();

    assert_eq!(
        h.take_events(),
        [ClientEvent::Allocated {
            relayed: vec![addr("198.51.100.7:50000")],
            mapped: Some(addr("203.0.113.9:61000")),
            lifetime: secs(600),
        }]
    );
    assert_eq!(h.client.state(), ClientState::Allocated);
    assert_eq!(h.client.relayed_addresses(), [addr("198.51.100.7:50000")]);
    assert_eq!(h.client.mapped_address(), Some(addr("203.0.113.9:61000")));
    assert_eq!(h.client.allocation_expires(), Some(h.t0 + secs(600)));
    assert_eq!(h.client.allocate(h.now), Err(ClientError::AllocationExists));
}

#[test]
fn dual_stack_allocation_reports_both_relayed_addresses() {
    let mut h = ScriptedServer::with(|c| c.additional_family = Some(AddressFamily::V6));
    let v6 = addr("[2001:db8::7]:50001");
    h.server().relayed.push(v6);
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.last_request().clone();
    assert_eq!(
        req.get::<AdditionalAddressFamily>().unwrap().unwrap(),
        AdditionalAddressFamily(AddressFamily::V6)
    );
    assert_eq!(
        h.client.relayed_addresses(),
        [addr("198.51.100.7:50000"), v6]
    );
}

#[test]
fn stale_nonce_on_allocate_retries_with_the_new_nonce() {
    let mut h = ScriptedServer::new();
    h.server().stale = 1;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let reqs = h.server().requests_of(Method::ALLOCATE);
    assert_eq!(reqs.len(), 3, "unauthenticated, 438, retry");
    assert_eq!(reqs[1].get::<Nonce>().unwrap().unwrap().as_str(), "nonce-0");
    assert_eq!(reqs[2].get::<Nonce>().unwrap().unwrap().as_str(), "nonce-1");
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn stale_nonce_retries_are_bounded() {
    let mut h = ScriptedServer::new();
    h.server().stale = 100;
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(h.server().requests_of(Method::ALLOCATE).len(), 3);
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(438),
            reason: "Stale Nonce".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn stale_nonce_on_later_requests_updates_the_nonce_and_resends_once() {
    let mut h = ScriptedServer::allocated();
    h.server().stale = 1;
    let peer: IpAddr = "198.51.100.20".parse().unwrap();
    h.client.create_permission(h.now, &[peer]).unwrap();
    h.pump();
    let reqs = h.server().requests_of(Method::CREATE_PERMISSION);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].get::<Nonce>().unwrap().unwrap().as_str(), "nonce-1");
    assert_eq!(
        h.take_events(),
        [ClientEvent::PermissionCreated { peers: vec![peer] }]
    );
    // Later requests use the new nonce from the start.
    h.client.refresh(h.now, secs(300)).unwrap();
    h.pump();
    let refresh = h.last_request();
    assert_eq!(refresh.get::<Nonce>().unwrap().unwrap().as_str(), "nonce-1");
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(300)
        }]
    );
}

#[test]
fn wrong_password_fails_after_one_authenticated_attempt() {
    let mut h = ScriptedServer::with(|c| c.password = "wrong".into());
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(h.server().requests_of(Method::ALLOCATE).len(), 2);
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(401),
            reason: "Unauthorized".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn redirect_follows_alternate_server() {
    let mut h = ScriptedServer::new();
    let alternate = addr("192.0.2.2:3478");
    h.server().redirect = Some(alternate);
    h.servers.push(FakeServer::new(alternate));
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(h.servers[0].requests.len(), 1);
    assert_eq!(h.servers[1].requests_of(Method::ALLOCATE).len(), 2);
    let events = h.take_events();
    assert_eq!(
        events[0],
        ClientEvent::Redirected {
            to: alternate,
            domain: None
        }
    );
    assert!(matches!(events[1], ClientEvent::Allocated { .. }));
    assert_eq!(h.client.server(), alternate);
    assert!(h
        .sent
        .iter()
        .skip(1)
        .all(|(_, t)| t.destination == alternate));
    // Answers from the old server are no longer taken.
    let stray = success(&h.servers[1].requests[1], |enc| {
        enc.add(&XorRelayedAddress(addr("192.0.2.99:1")));
    });
    h.client.handle_input(h.now, addr(SERVER), stray);
    assert!(h.take_events().is_empty());
}

#[test]
fn redirects_are_bounded() {
    let mut h = ScriptedServer::with(|c| c.max_redirects = 2);
    let chain = ["192.0.2.2:3478", "192.0.2.3:3478", "192.0.2.4:3478"].map(addr);
    h.server().redirect = Some(chain[0]);
    for (i, a) in chain.iter().enumerate() {
        let mut s = FakeServer::new(*a);
        s.redirect = chain.get(i + 1).copied();
        h.servers.push(s);
    }
    h.client.allocate(h.now).unwrap();
    h.pump();
    let events = h.take_events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(
        events[2],
        ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(300),
            ..
        }
    ));
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn redirect_to_a_visited_server_is_a_loop() {
    let mut h = ScriptedServer::new();
    let b = addr("192.0.2.2:3478");
    h.server().redirect = Some(b);
    let mut s = FakeServer::new(b);
    s.redirect = Some(addr(SERVER));
    h.servers.push(s);
    h.client.allocate(h.now).unwrap();
    h.pump();
    let events = h.take_events();
    assert!(
        matches!(&events[..], [ClientEvent::Redirected { .. }, ClientEvent::Error { code: Some(300), reason, .. }] if reason.contains("loop"))
    );
}

#[test]
fn sha256_and_message_integrity_sha256_when_password_algorithms_are_offered() {
    let mut h = ScriptedServer::new();
    h.server().algorithms = Some(vec![0x0002, 0x0001]);
    h.server().new_nonce();
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests_of(Method::ALLOCATE)[1].clone();
    assert_eq!(
        req.get::<PasswordAlgorithm>().unwrap().unwrap(),
        PasswordAlgorithm::Sha256
    );
    let echoed = req.get::<PasswordAlgorithms>().unwrap().unwrap();
    let codes: Vec<u16> = echoed.0.iter().map(|e| e.algorithm).collect();
    assert_eq!(codes, [2, 1]);
    assert!(req.has_integrity_sha256() && !req.has_integrity());
    assert_eq!(
        req.get::<MessageIntegritySha256>()
            .unwrap()
            .unwrap()
            .0
            .len(),
        32
    );
    let key = IntegrityKey::long_term(PasswordAlgorithm::Sha256, USER, REALM, PASS).unwrap();
    req.verify_integrity_sha256(key.as_bytes()).unwrap();
    assert!(has(&req, Username::TYPE));
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn first_supported_password_algorithm_is_used() {
    // RFC 8489 §9.2.5: the first algorithm of the server's list that the client supports.
    let mut h = ScriptedServer::new();
    h.server().algorithms = Some(vec![0x7777, 0x0001, 0x0002]);
    h.server().new_nonce();
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests_of(Method::ALLOCATE)[1].clone();
    assert_eq!(
        req.get::<PasswordAlgorithm>().unwrap().unwrap(),
        PasswordAlgorithm::Md5
    );
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn userhash_replaces_username_when_the_nonce_announces_anonymity() {
    let mut h = ScriptedServer::new();
    h.server().anonymity = true;
    h.server().algorithms = Some(vec![0x0002]);
    h.server().new_nonce();
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests_of(Method::ALLOCATE)[1].clone();
    assert!(!has(&req, Username::TYPE));
    assert_eq!(
        req.get::<Userhash>().unwrap().unwrap().0,
        userhash(USER, REALM).unwrap()
    );
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn bid_down_is_refused() {
    // RFC 8489 §9.2.5: the nonce announces PASSWORD-ALGORITHMS, the 401 lacks them.
    let mut h = ScriptedServer::new();
    let req = {
        h.client.allocate(h.now).unwrap();
        let t = h.client.poll_transmit().unwrap();
        Message::decode(t.payload).unwrap()
    };
    let features = SecurityFeatures {
        password_algorithms: true,
        username_anonymity: false,
    };
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::ALLOCATE.error(), req.transaction_id());
    enc.add(&ErrorCode::new(401))
        .add(&Realm::new(REALM))
        .add(&Nonce::new(format!("{}abc", features.nonce_prefix())));
    enc.finish().unwrap();
    h.input(buf.freeze());
    assert!(h.client.poll_transmit().is_none(), "no retry");
    assert!(
        matches!(&h.take_events()[..], [ClientEvent::Error { code: Some(401), reason, .. }] if reason.contains("PASSWORD-ALGORITHMS"))
    );
}

#[test]
fn other_errors_become_error_events() {
    let mut h = ScriptedServer::new();
    h.server().fail_with = Some((Method::ALLOCATE, 486));
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert_eq!(
        h.take_events(),
        [ClientEvent::Error {
            request: Method::ALLOCATE,
            code: Some(486),
            reason: "Allocation Quota Reached".into()
        }]
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn a_response_failing_integrity_is_dropped_over_udp() {
    let mut h = ScriptedServer::new();
    h.client.allocate(h.now).unwrap();
    h.pump();
    h.take_events();
    h.client.refresh(h.now, secs(600)).unwrap();
    let t = h.client.poll_transmit().unwrap();
    let req = Message::decode(t.payload).unwrap();
    let wrong = IntegrityKey::from_bytes(vec![0u8; 16]);
    let forged = {
        let mut buf = BytesMut::new();
        let mut enc =
            MessageEncoder::new(&mut buf, Method::REFRESH.success(), req.transaction_id());
        enc.add(&Lifetime(5)).message_integrity(wrong.as_bytes());
        enc.finish().unwrap();
        buf.freeze()
    };
    h.input(forged);
    assert!(h.take_events().is_empty(), "forged response dropped");
    // The retransmission gets a genuine answer.
    h.advance(secs(1));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
}

#[test]
fn a_response_failing_integrity_fails_the_transaction_over_tcp() {
    let mut h = ScriptedServer::with(|c| c.transport = Transport::Tcp);
    h.client.allocate(h.now).unwrap();
    h.pump();
    h.take_events();
    h.client.refresh(h.now, secs(600)).unwrap();
    let req = Message::decode(h.client.poll_transmit().unwrap().payload).unwrap();
    let forged = {
        let mut buf = BytesMut::new();
        let mut enc =
            MessageEncoder::new(&mut buf, Method::REFRESH.success(), req.transaction_id());
        enc.add(&Lifetime(5)).message_integrity(&[1; 16]);
        enc.finish().unwrap();
        buf.freeze()
    };
    h.input(forged);
    assert!(
        matches!(&h.take_events()[..], [ClientEvent::Error { request: Method::REFRESH, code: None, reason }] if reason.contains("integrity"))
    );
    assert_eq!(h.client.state(), ClientState::Allocated);
}

#[test]
fn unknown_comprehension_required_attributes_fail_the_transaction() {
    let mut h = ScriptedServer::new();
    h.server().silent = true;
    h.client.allocate(h.now).unwrap();
    h.pump();
    let req = h.server().requests[0].clone();
    h.input(success(&req, |enc| {
        enc.add(&XorRelayedAddress(addr("198.51.100.7:50000")))
            .add_raw(AttributeType(0x7F01), b"??");
    }));
    assert!(
        matches!(&h.take_events()[..], [ClientEvent::Error { request: Method::ALLOCATE, code: None, reason }] if reason.contains("comprehension-required"))
    );
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn config_debug_hides_the_password() {
    let config = ClientConfig::new(addr(SERVER), addr(LOCAL), USER, "hunter2");
    let text = format!("{config:?}");
    assert!(text.contains(USER) && !text.contains("hunter2"));
}

#[test]
fn a_peer_keeps_its_channel_number_after_the_binding_lapses() {
    // RFC 8656 §12: no re-binding of a peer to another number within 5 minutes of expiry.
    let mut h = ScriptedServer::allocated();
    let peer = addr("198.51.100.20:7000");
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
    h.pump();
    h.client.remove_permission(peer.ip());
    h.advance(secs(900));
    assert_eq!(h.client.channel(h.now, peer), None);
    assert_eq!(h.request_times(Method::CHANNEL_BIND), [secs(0)]);
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
}

#[test]
fn unsigned_success_responses_are_accepted() {
    let mut h = ScriptedServer::new();
    h.server().sign = false;
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}
