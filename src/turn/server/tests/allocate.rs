//! Allocate in two phases: the core's checks, the driver's answers, reservations.

use super::*;

#[test]
fn allocate_without_credentials_gets_401_and_creates_nothing() {
    let mut h = ScriptedClient::new();
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(401));
    assert!(r.get::<Realm>().is_some() && r.get::<Nonce>().is_some());
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.driver.bound.is_empty());
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn allocate_grants_a_relay_in_range_and_retransmissions_get_the_same_answer() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let req = h.build(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    let first = h.send(&req).unwrap();
    let relay = first.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relay.ip(), "198.51.100.1".parse::<IpAddr>().unwrap());
    assert!(relay.port() >= 49152);
    assert_eq!(first.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    assert_eq!(
        first.get::<XorMappedAddress>().unwrap().unwrap().0,
        h.ft.client
    );
    let again = h.send(&req).unwrap();
    assert_eq!(again.as_bytes(), first.as_bytes());
    // Any other Allocate on this 5-tuple is a mismatch.
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(437));
    assert!(r.verify_integrity(h.key().as_bytes()).is_ok());
    let created: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::AllocationCreated { .. }))
        .collect();
    assert_eq!(created.len(), 1);
}

#[test]
fn quotas_and_port_exhaustion() {
    let mut h = ScriptedClient::with(|c| {
        c.min_port = 50000;
        c.max_port = 50001;
    });
    h.driver.user_quota = 1;
    h.allocate();
    h.ft = five_tuple("203.0.113.9:40001");
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(486));

    let mut h = ScriptedClient::with(|c| {
        c.min_port = 50000;
        c.max_port = 50001;
    });
    h.driver.taken.insert("198.51.100.1:50000".parse().unwrap());
    h.allocate();
    h.ft = five_tuple("203.0.113.9:40001");
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(508));
    // The failed Allocate gave its quota back.
    assert_eq!(h.driver.total, 1);
}

#[test]
fn even_port_reserves_the_next_one_for_a_token() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(relay.port() % 2, 0);
    let token = r.get::<ReservationToken>().unwrap().unwrap();
    h.ft = five_tuple("203.0.113.9:40001");
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), token.into()],
    );
    assert_eq!(
        r.get::<XorRelayedAddress>().unwrap().unwrap().0.port(),
        relay.port() + 1
    );
    h.ft = five_tuple("203.0.113.9:40002");
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), token.into()],
    );
    assert_eq!(ScriptedClient::code(&r), Some(508), "token used up");
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            token.into(),
            EvenPort { reserve: false }.into(),
        ],
    );
    assert_eq!(ScriptedClient::code(&r), Some(400));
}

#[test]
fn reservations_expire() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    h.events();
    h.advance(Duration::from_secs(31));
    let next = SocketAddr::new(relay.ip(), relay.port() + 1);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ServerEvent::ReservationExpired { relayed, .. } if *relayed == next)));
    assert!(!h.driver.is_parked(next), "the parked socket was released");
}

#[test]
fn transport_and_family_checks() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(6).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(442));
    let r = h.request(Method::ALLOCATE, true, &[]);
    assert_eq!(ScriptedClient::code(&r), Some(400));
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            RequestedAddressFamily(AddressFamily::V6).into(),
        ],
    );
    assert_eq!(ScriptedClient::code(&r), Some(440));
    // Dual-stack asked, only IPv4 here: success with ADDRESS-ERROR-CODE for IPv6.
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            AdditionalAddressFamily(AddressFamily::V6).into(),
        ],
    );
    assert_eq!(r.class(), Class::Success);
    assert_eq!(r.get::<AddressErrorCode>().unwrap().unwrap().code, 440);
}

#[test]
fn dual_stack_allocation_relays_both_families() {
    let mut h = ScriptedClient::with(|c| c.relay_ipv6 = Some("2001:db8::1".parse().unwrap()));
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            AdditionalAddressFamily(AddressFamily::V6).into(),
        ],
    );
    let relays: Vec<SocketAddr> = r
        .raw_attributes()
        .filter(|(t, _)| *t == XorRelayedAddress::TYPE)
        .map(|(_, v)| {
            XorRelayedAddress::decode(&v, &r.transaction_id())
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(relays.len(), 2);
    assert!(relays[0].is_ipv4() && relays[1].is_ipv6());
    let r = h.request(
        Method::CREATE_PERMISSION,
        true,
        &[peer_attr("[2606:4700::1]:1")],
    );
    assert_eq!(r.class(), Class::Success);
}

#[test]
fn many_unauthenticated_allocates_leave_no_state() {
    let mut h = ScriptedClient::new();
    for port in 0..2000u16 {
        h.ft = five_tuple(&format!("203.0.113.9:{}", 10000 + port));
        let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
        assert_eq!(ScriptedClient::code(&r), Some(401));
    }
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
    assert!(h.driver.bound.is_empty());
}

#[test]
fn a_reservation_is_redeemed_on_another_thread() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    let token = r.get::<ReservationToken>().unwrap().unwrap();
    // A second core with the same shared state, as another Arbiter has.
    let mut other = ScriptedClient::new();
    other.server = Server::new(h.server.config().clone(), StdRng::seed_from_u64(8));
    other.driver.parked = std::mem::take(&mut h.driver.parked);
    other.nonce = h.nonce.clone();
    other.ft = five_tuple("203.0.113.9:40001");
    let r = other.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), token.into()],
    );
    assert_eq!(r.class(), Class::Success, "{:?}", ScriptedClient::code(&r));
    assert_eq!(
        r.get::<XorRelayedAddress>().unwrap().unwrap().0.port(),
        relay.port() + 1
    );
}

#[test]
fn a_reserved_port_is_not_handed_to_another_allocation() {
    let mut h = ScriptedClient::with(|c| {
        c.min_port = 50001;
        c.max_port = 50004;
    });
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[
            RequestedTransport(17).into(),
            EvenPort { reserve: true }.into(),
        ],
    );
    let relay = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
    assert_eq!(
        relay.port(),
        50002,
        "the only even port with a free neighbour"
    );
    let reserved = SocketAddr::new(relay.ip(), relay.port() + 1);
    for (i, client) in ["203.0.113.9:40001", "203.0.113.9:40002"]
        .iter()
        .enumerate()
    {
        h.ft = five_tuple(client);
        let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
        let got = r.get::<XorRelayedAddress>().unwrap().unwrap().0;
        assert_ne!(got, reserved, "allocation {i} took the reserved port");
    }
    h.ft = five_tuple("203.0.113.9:40003");
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(
        ScriptedClient::code(&r),
        Some(508),
        "only the reserved port is left"
    );
}

#[test]
fn lifetimes_are_raised_to_the_default_and_capped() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let r = h.request(
        Method::ALLOCATE,
        true,
        &[RequestedTransport(17).into(), Lifetime(30).into()],
    );
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
    let r = h.request(Method::REFRESH, true, &[Lifetime(1200).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(1200));
    let r = h.request(Method::REFRESH, true, &[Lifetime(60).into()]);
    assert_eq!(r.get::<Lifetime>().unwrap().unwrap(), Lifetime(600));
}

#[test]
fn a_retransmitted_allocate_while_the_driver_works_makes_one_allocation() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    let req = h.build(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    let ft = h.ft;
    // Twice before the driver answers: one relay request, no response yet.
    for _ in 0..2 {
        assert_eq!(h.server.handle_client(h.now, &ft, &req), ClientOutput::None);
        assert!(h.server.poll_transmit().is_none());
    }
    let first = h.server.poll_relay_request().expect("a relay request");
    assert!(h.server.poll_relay_request().is_none(), "one request only");
    let id = first.id;
    let result = h.driver.fulfil(first);
    assert!(h.server.relay_ready(h.now, id, result).is_some());
    let t = h.server.poll_transmit().expect("the response");
    assert_eq!(Message::decode(t.payload).unwrap().class(), Class::Success);
    // An answer for a request already answered creates nothing.
    assert_eq!(h.server.relay_ready(h.now, id, result), None);
    assert_eq!(h.server.allocation_count(), 1);
    let created = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::AllocationCreated { .. }))
        .count();
    assert_eq!(created, 1);
}

#[test]
fn a_refused_relay_request_gets_486_or_508_and_leaves_nothing() {
    let mut h = ScriptedClient::new();
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    for (refusal, code) in [
        (RelayRefusal::QuotaReached, 486),
        (RelayRefusal::ServerFull, 486),
        (RelayRefusal::PortsExhausted, 508),
        (RelayRefusal::InsufficientCapacity, 508),
    ] {
        let req = h.build(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
        let ft = h.ft;
        h.server.handle_client(h.now, &ft, &req);
        let r = h.server.poll_relay_request().unwrap();
        assert_eq!(r.username, USER);
        assert_eq!(h.server.relay_ready(h.now, r.id, Err(refusal)), None);
        let m = Message::decode(h.server.poll_transmit().unwrap().payload).unwrap();
        assert_eq!(ScriptedClient::code(&m), Some(code));
        assert!(m.verify_integrity(h.key().as_bytes()).is_ok());
    }
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(h.server.poll_timeout(), None);
}

#[test]
fn port_candidates_stay_in_range_and_within_the_bind_budget() {
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    let mut c = PortCandidates::new(ip, 50001, 50004, true, true, 0);
    let got: Vec<Candidate> = std::iter::from_fn(|| c.next_free(|_| false)).collect();
    // Even ports only, and only where the next port is in range too.
    assert_eq!(
        got,
        vec![Candidate {
            relay: SocketAddr::new(ip, 50002),
            reserved: Some(SocketAddr::new(ip, 50003)),
        }]
    );
    let mut c = PortCandidates::new(ip, 1000, 60000, false, false, 12345);
    let got: Vec<Candidate> = std::iter::from_fn(|| c.next_free(|_| false)).collect();
    assert_eq!(got.len() as u32, MAX_RELAY_BINDS);
    assert!(got
        .iter()
        .all(|c| (1000..=60000).contains(&c.relay.port()) && c.reserved.is_none()));
    // Taken ports cost no bind.
    let mut c = PortCandidates::new(ip, 1000, 1009, false, false, 0);
    let got: Vec<Candidate> = std::iter::from_fn(|| c.next_free(|a| a.port() % 2 == 0)).collect();
    assert_eq!(got.len(), 5);
}
