//! What operators read and do: the allocation view, ending allocations, draining.

use super::*;

fn channel_data(n: u16, payload: &[u8]) -> BytesMut {
    let mut cd = BytesMut::new();
    ChannelData::encode_into(ChannelNumber::new(n).unwrap(), payload, &mut cd, false).unwrap();
    cd
}

#[test]
fn the_view_shows_user_addresses_times_permissions_channels_and_traffic() {
    let mut h = ScriptedClient::new();
    let t0 = h.now;
    let relay = h.allocate();
    assert!(h.server.allocations(h.now).next().is_some());
    h.advance(Duration::from_secs(10));
    h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.8:1")]);
    let r = h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.7:5000")],
    );
    assert_eq!(ScriptedClient::code(&r), None);
    let ft = h.ft;
    for payload in [&b"ping"[..], b"pingping"] {
        let cd = channel_data(0x4000, payload);
        assert!(matches!(
            h.server.handle_client(h.now, &ft, &cd),
            ClientOutput::Relay { .. }
        ));
    }
    assert!(matches!(
        h.peer_data(relay, "192.0.2.7:5000", b"pong!"),
        PeerOutput::ChannelData { .. }
    ));
    // No channel for this peer: a Data indication, counted by its payload.
    assert!(matches!(
        h.peer_data(relay, "192.0.2.8:7000", b"abc"),
        PeerOutput::DataIndication { .. }
    ));
    // No permission: dropped, not counted.
    assert_eq!(h.peer_data(relay, "192.0.2.9:1", b"zzz"), PeerOutput::Drop);

    let all: Vec<AllocationInfo<'_>> = h.server.allocations(h.now).collect();
    assert_eq!(all.len(), 1);
    let a = &all[0];
    assert_eq!(a.five_tuple, h.ft);
    assert_eq!(a.username, USER);
    assert_eq!(a.relayed, &[relay]);
    assert_eq!(a.created, t0);
    assert_eq!(a.expires, t0 + Duration::from_secs(600));
    assert_eq!(
        a.to_peers,
        Traffic {
            packets: 2,
            bytes: 12
        }
    );
    assert_eq!(
        a.to_client,
        Traffic {
            packets: 2,
            bytes: 8
        }
    );
    let mut perms: Vec<IpAddr> = a.permissions().map(|(ip, _)| ip).collect();
    perms.sort();
    let want: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap(), "192.0.2.8".parse().unwrap()];
    assert_eq!(perms, want);
    let channels: Vec<_> = a.channels().collect();
    assert_eq!(
        channels,
        vec![(
            ChannelNumber::new(0x4000).unwrap(),
            "192.0.2.7:5000".parse().unwrap(),
            t0 + Duration::from_secs(10 + 600)
        )]
    );
    // The configuration's clock reading converts instants to Unix time.
    assert_eq!(h.server.unix_time(a.created), 1_700_000_000);
    assert_eq!(h.server.unix_time(a.expires), 1_700_000_600);
    assert_eq!(h.server.advertised_address(relay), relay);

    // Permissions (300 s) that ran out are no longer shown; the channel (600 s) is.
    h.advance(Duration::from_secs(305));
    let a = h.server.allocations(h.now).next().unwrap();
    assert_eq!(a.permissions().count(), 0);
    assert_eq!(a.channels().count(), 1);
}

#[test]
fn an_allocation_ended_by_the_operator_answers_437() {
    let mut h = ScriptedClient::new();
    h.allocate();
    h.events();
    let id = h.server.allocations(h.now).next().unwrap().id;
    assert!(h.server.delete(id));
    let events = h.events();
    assert!(events.contains(&ServerEvent::AllocationDeleted {
        id,
        five_tuple: h.ft
    }));
    assert_eq!(h.server.allocations(h.now).count(), 0);
    let r = h.request(Method::REFRESH, true, &[]);
    assert_eq!(ScriptedClient::code(&r), Some(437));
    assert!(!h.server.delete(id), "once");
}

#[test]
fn draining_refuses_new_allocations_with_403_and_keeps_the_old_ones() {
    let mut h = ScriptedClient::new();
    let relay = h.allocate();
    h.server.set_draining(true);
    assert!(h.server.is_draining());

    // The existing allocation carries on: Refresh, permissions, data.
    let r = h.request(Method::REFRESH, true, &[]);
    assert_eq!(r.class(), Class::Success);
    let r = h.request(Method::CREATE_PERMISSION, true, &[peer_attr("192.0.2.7:1")]);
    assert_eq!(r.class(), Class::Success);
    assert!(matches!(
        h.peer_data(relay, "192.0.2.7:1", b"x"),
        PeerOutput::DataIndication { .. }
    ));
    // Another Allocate on its 5-tuple is still a 437, not a refusal for draining.
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(437));

    // A new client is refused, with an authenticated 403 (after its 401).
    h.ft = five_tuple("203.0.113.10:40000");
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(401));
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(403));
    r.verify_integrity(h.key().as_bytes()).unwrap();
    assert!(r.get::<AlternateServer>().is_none());
    assert_eq!(h.server.allocation_count(), 1);
    assert!(
        h.server.poll_relay_request().is_none(),
        "no relay asked for"
    );

    // Draining undone: allocations are made again.
    h.server.set_draining(false);
    h.allocate();
    assert_eq!(h.server.allocation_count(), 2);
}

#[test]
fn draining_with_an_alternate_server_answers_300_try_alternate() {
    let alternate: SocketAddr = "198.51.100.2:3478".parse().unwrap();
    let mut h = ScriptedClient::with(|c| c.alternate_server = Some(alternate));
    h.server.set_draining(true);
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(401));
    let r = h.request(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(300));
    assert_eq!(
        r.get::<AlternateServer>().unwrap().unwrap(),
        AlternateServer(alternate)
    );
    r.verify_integrity(h.key().as_bytes()).unwrap();
    let events = h.events();
    assert!(events.contains(&ServerEvent::ErrorResponse {
        method: Method::ALLOCATE,
        code: 300
    }));
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn a_full_node_sends_new_allocates_to_the_alternate_server() {
    let alternate: SocketAddr = "198.51.100.2:3478".parse().unwrap();
    let mut h = ScriptedClient::with(|c| c.alternate_server = Some(alternate));
    h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    // The node is full (total quota or relay ports): 300 to the alternate. The user's
    // own quota is the user's, wherever it allocates: 486 still.
    for (refusal, code) in [
        (RelayRefusal::ServerFull, 300),
        (RelayRefusal::PortsExhausted, 300),
        (RelayRefusal::QuotaReached, 486),
        (RelayRefusal::InsufficientCapacity, 508),
    ] {
        let req = h.build(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
        let ft = h.ft;
        h.server.handle_client(h.now, &ft, &req);
        let id = h.server.poll_relay_request().unwrap().id;
        assert_eq!(h.server.relay_ready(h.now, id, Err(refusal)), None);
        let m = Message::decode(h.server.poll_transmit().unwrap().payload).unwrap();
        assert_eq!(ScriptedClient::code(&m), Some(code), "{refusal:?}");
        let offered = m.get::<AlternateServer>().map(|a| a.unwrap());
        assert_eq!(offered, (code == 300).then_some(AlternateServer(alternate)));
        m.verify_integrity(h.key().as_bytes()).unwrap();
    }
    assert_eq!(h.server.allocation_count(), 0);
}

#[test]
fn a_retransmitted_allocate_gets_its_success_again_while_draining() {
    let mut h = ScriptedClient::new();
    let r = h.request(Method::ALLOCATE, false, &[RequestedTransport(17).into()]);
    assert_eq!(ScriptedClient::code(&r), Some(401));
    let first = h.build(Method::ALLOCATE, true, &[RequestedTransport(17).into()]);
    let r = h.send(&first).unwrap();
    assert_eq!(r.class(), Class::Success);
    h.server.set_draining(true);
    let again = h.send(&first).unwrap();
    assert_eq!(again.class(), Class::Success);
    assert_eq!(again.transaction_id(), r.transaction_id());
}

/// The `AllocationUsage` event of an allocation that ended, if exactly one came.
fn usage_of(events: &[ServerEvent]) -> &AllocationUsage {
    let mut usages = events.iter().filter_map(|e| match e {
        ServerEvent::AllocationUsage(u) => Some(&**u),
        _ => None,
    });
    let u = usages.next().expect("an AllocationUsage event");
    assert!(usages.next().is_none(), "one only");
    u
}

#[test]
fn an_ending_allocation_reports_what_it_relayed_before_it_is_deleted_or_expires() {
    // Deleted by its client (Refresh with LIFETIME 0), after relaying both ways.
    let mut h = ScriptedClient::new();
    let t0 = h.now;
    let relay = h.allocate();
    h.request(
        Method::CHANNEL_BIND,
        true,
        &[channel_number(0x4000), peer_attr("192.0.2.7:1")],
    );
    let ft = h.ft;
    let cd = channel_data(0x4000, b"hello");
    assert!(matches!(
        h.server.handle_client(h.now, &ft, &cd),
        ClientOutput::Relay { .. }
    ));
    h.peer_data(relay, "192.0.2.7:1", b"hi");
    h.events();
    h.advance(Duration::from_secs(7));
    let r = h.request(Method::REFRESH, true, &[Lifetime(0).into()]);
    assert_eq!(r.class(), Class::Success);
    let events = h.events();
    let u = usage_of(&events);
    assert_eq!((u.username.as_str(), u.five_tuple), (USER, ft));
    assert_eq!((u.relayed.as_slice(), u.created), (&[relay][..], t0));
    let sent = (u.to_peers.packets, u.to_peers.bytes);
    let got = (u.to_client.packets, u.to_client.bytes);
    assert_eq!((sent, got), ((1, 5), (1, 2)));
    // It comes before the event that says why the allocation ended.
    let at = |f: fn(&ServerEvent) -> bool| events.iter().position(f).unwrap();
    assert!(
        at(|e| matches!(e, ServerEvent::AllocationUsage(_)))
            < at(|e| matches!(e, ServerEvent::AllocationDeleted { .. }))
    );

    // Expired, and deleted by the driver: one report each, nothing relayed.
    let mut h = ScriptedClient::new();
    h.allocate();
    h.events();
    h.advance(Duration::from_secs(601));
    let events = h.events();
    assert_eq!(usage_of(&events).to_peers, Traffic::default());
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationExpired { .. })));
    h.ft = five_tuple("203.0.113.10:40000");
    h.allocate();
    h.events();
    let id = h.server.allocations(h.now).next().unwrap().id;
    h.server.delete(id);
    assert_eq!(usage_of(&h.events()).id, id);
}
