//! Binding, refresh, delete, and the permissions and channels kept alive.

use super::*;

// ---- Binding -------------------------------------------------------------------------------

#[test]
fn binding_reports_the_reflexive_address_and_rtt() {
    let mut h = ScriptedServer::new();
    h.client.binding(h.now);
    let t = h.client.poll_transmit().unwrap();
    let req = Message::decode(t.payload.clone()).unwrap();
    assert_eq!(req.typ(), MessageType::new(Method::BINDING, Class::Request));
    assert!(!req.has_integrity());
    h.now += ms(42);
    let answer = h.server().handle(t.payload).unwrap();
    h.input(answer);
    assert_eq!(
        h.take_events(),
        [ClientEvent::BindingSucceeded {
            mapped: addr("203.0.113.9:61000"),
            rtt: Some(ms(42))
        }]
    );
    assert_eq!(h.client.mapped_address(), Some(addr("203.0.113.9:61000")));
    assert_eq!(h.client.poll_timeout(), None);
}

#[test]
fn binding_rtt_is_unknown_after_a_retransmission() {
    let mut h = ScriptedServer::new();
    h.server().silent = true;
    h.client.binding(h.now);
    h.advance(ms(600));
    assert_eq!(h.request_times(Method::BINDING), [ms(0), ms(500)]);
    h.server().silent = false;
    let last = h.sent.last().unwrap().1.payload.clone();
    let answer = h.server().handle(last).unwrap();
    h.input(answer);
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::BindingSucceeded { rtt: None, .. }]
    ));
}

// ---- Refresh and delete ----------------------------------------------------------------------

#[test]
fn refresh_happens_60_s_before_expiry_exactly() {
    let mut h = ScriptedServer::allocated();
    h.advance(secs(540) - ms(1));
    assert!(h.request_times(Method::REFRESH).is_empty());
    h.advance(ms(1));
    assert_eq!(h.request_times(Method::REFRESH), [secs(540)]);
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(600)
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(600)
        }]
    );
    assert_eq!(h.client.allocation_expires(), Some(h.t0 + secs(1140)));
    h.advance(secs(1200));
    assert_eq!(
        h.request_times(Method::REFRESH),
        [secs(540), secs(1080), secs(1620)]
    );
}

#[test]
fn short_lifetimes_refresh_at_half() {
    let mut h = ScriptedServer::new();
    h.server().max_lifetime = 60;
    h.client.allocate(h.now).unwrap();
    h.advance(secs(100));
    assert_eq!(
        h.request_times(Method::REFRESH),
        [secs(30), secs(60), secs(90)]
    );
    let events = h.take_events();
    assert!(matches!(events[0], ClientEvent::Allocated { lifetime, .. } if lifetime == secs(60)));
    assert!(events[1..]
        .iter()
        .all(|e| *e == ClientEvent::Refreshed { lifetime: secs(60) }));
}

#[test]
fn explicit_refresh_sets_the_lifetime_of_later_refreshes() {
    let mut h = ScriptedServer::allocated();
    h.advance(secs(10));
    h.client.refresh(h.now, secs(1200)).unwrap();
    h.pump();
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(1200)
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::Refreshed {
            lifetime: secs(1200)
        }]
    );
    h.advance(secs(1140));
    assert_eq!(h.request_times(Method::REFRESH), [secs(10), secs(1150)]);
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(1200)
    );
}

#[test]
fn delete_sends_lifetime_zero_and_clears_the_session() {
    let mut h = ScriptedServer::allocated();
    let peer = addr("198.51.100.20:7000");
    h.client.channel_bind(h.now, peer).unwrap();
    h.pump();
    h.take_events();
    h.client.delete(h.now).unwrap();
    assert_eq!(h.client.state(), ClientState::Deleting);
    h.pump();
    assert_eq!(
        h.last_request().get::<Lifetime>().unwrap().unwrap(),
        Lifetime(0)
    );
    assert_eq!(h.take_events(), [ClientEvent::Deleted]);
    assert_eq!(h.client.state(), ClientState::Idle);
    assert!(h.client.relayed_addresses().is_empty());
    assert_eq!(h.client.channel(h.now, peer), None);
    assert_eq!(h.client.poll_timeout(), None);
    assert_eq!(
        h.client.send_to(h.now, peer, b"x"),
        Err(ClientError::NoAllocation)
    );
    // The session can allocate again, with the credentials it has.
    h.client.allocate(h.now).unwrap();
    h.pump();
    assert!(h.last_request().has_integrity());
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn refresh_with_zero_lifetime_is_delete() {
    let mut h = ScriptedServer::allocated();
    h.client.refresh(h.now, Duration::ZERO).unwrap();
    h.pump();
    assert_eq!(h.take_events(), [ClientEvent::Deleted]);
    assert_eq!(
        h.client.refresh(h.now, secs(60)),
        Err(ClientError::NoAllocation)
    );
}

#[test]
fn allocation_mismatch_on_delete_counts_as_deleted() {
    let mut h = ScriptedServer::allocated();
    h.server().fail_with = Some((Method::REFRESH, 437));
    h.client.delete(h.now).unwrap();
    h.pump();
    let events = h.take_events();
    assert!(matches!(
        events[..],
        [
            ClientEvent::Error {
                code: Some(437),
                ..
            },
            ClientEvent::Deleted
        ]
    ));
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn allocation_mismatch_on_refresh_means_the_allocation_is_gone() {
    let mut h = ScriptedServer::allocated();
    h.server().fail_with = Some((Method::REFRESH, 437));
    h.advance(secs(540));
    let events = h.take_events();
    assert!(matches!(
        events[..],
        [
            ClientEvent::Error {
                request: Method::REFRESH,
                code: Some(437),
                ..
            },
            ClientEvent::AllocationExpired
        ]
    ));
    assert_eq!(h.client.state(), ClientState::Idle);
}

#[test]
fn failed_refreshes_are_retried_then_the_allocation_expires() {
    let mut h = ScriptedServer::allocated();
    h.server().silent = true;
    h.advance(secs(600));
    let times = h.request_times(Method::REFRESH);
    assert_eq!(times[0], secs(540));
    assert!(times.iter().all(|t| *t < secs(600)));
    let events = h.take_events();
    assert!(events.len() >= 2);
    assert!(events[..events.len() - 1].iter().all(|e| matches!(
        e,
        ClientEvent::Error {
            request: Method::REFRESH,
            code: None,
            ..
        }
    )));
    assert_eq!(events.last(), Some(&ClientEvent::AllocationExpired));
    assert_eq!(h.client.state(), ClientState::Idle);
    assert_eq!(h.client.poll_timeout(), None);
}

// ---- Permissions and channels -------------------------------------------------------------

#[test]
fn permissions_go_in_one_request_and_are_recreated_every_4_minutes() {
    let mut h = ScriptedServer::allocated();
    let peers: [IpAddr; 2] = [
        "198.51.100.20".parse().unwrap(),
        "198.51.100.21".parse().unwrap(),
    ];
    h.advance(secs(10));
    h.client.create_permission(h.now, &peers).unwrap();
    h.pump();
    let req = h.last_request().clone();
    let listed: Vec<IpAddr> = req
        .attributes()
        .filter_map(|a| match a {
            Ok(Attribute::XorPeerAddress(p)) => Some(p.0.ip()),
            _ => None,
        })
        .collect();
    assert_eq!(listed, peers);
    assert_eq!(
        h.take_events(),
        [ClientEvent::PermissionCreated {
            peers: peers.to_vec()
        }]
    );
    assert!(h.client.has_permission(h.now, peers[1]));
    h.advance(secs(1000));
    assert_eq!(
        h.request_times(Method::CREATE_PERMISSION),
        [secs(10), secs(250), secs(490), secs(730), secs(970)]
    );
    assert!(h
        .take_events()
        .iter()
        .all(|e| matches!(e, ClientEvent::Refreshed { .. })));
    // Once removed, it is no longer refreshed and lapses after 5 minutes.
    h.client.remove_permission(peers[0]);
    h.client.remove_permission(peers[1]);
    h.advance(secs(600));
    assert_eq!(h.request_times(Method::CREATE_PERMISSION).len(), 5);
    assert!(!h.client.has_permission(h.now, peers[0]));
}

#[test]
fn channels_are_rebound_every_9_minutes_and_refresh_the_permission() {
    let mut h = ScriptedServer::allocated();
    let peer = addr("198.51.100.20:7000");
    h.advance(secs(10));
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
    h.pump();
    let req = h.last_request().clone();
    assert_eq!(
        req.get::<ChannelNumber>().unwrap().unwrap(),
        ChannelNumber::MIN
    );
    assert_eq!(
        req.get::<XorPeerAddress>().unwrap().unwrap(),
        XorPeerAddress(peer)
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::ChannelBound {
            peer,
            channel: 0x4000
        }]
    );
    assert_eq!(h.client.channel(h.now, peer), Some(0x4000));
    assert!(h.client.has_permission(h.now, peer.ip()));
    h.advance(secs(1400));
    assert_eq!(
        h.request_times(Method::CHANNEL_BIND),
        [secs(10), secs(550), secs(1090)]
    );
    // CreatePermission every 4 minutes, except that each ChannelBind counts as one.
    assert_eq!(
        h.request_times(Method::CREATE_PERMISSION),
        [secs(250), secs(490), secs(790), secs(1030), secs(1330)]
    );
    // A second peer gets the next number; the first keeps its own.
    let other = addr("198.51.100.21:7000");
    assert_eq!(h.client.channel_bind(h.now, other), Ok(0x4001));
    assert_eq!(h.client.channel_bind(h.now, peer), Ok(0x4000));
}

#[test]
fn commands_without_allocation_are_refused() {
    let mut h = ScriptedServer::new();
    let peer = addr("198.51.100.20:7000");
    assert_eq!(
        h.client.create_permission(h.now, &[peer.ip()]),
        Err(ClientError::NoAllocation)
    );
    assert_eq!(
        h.client.channel_bind(h.now, peer),
        Err(ClientError::NoAllocation)
    );
    assert_eq!(
        h.client.send_to(h.now, peer, b"x"),
        Err(ClientError::NoAllocation)
    );
    assert_eq!(h.client.delete(h.now), Err(ClientError::NoAllocation));
    assert!(h.client.poll_transmit().is_none());
}

#[test]
fn failed_permission_is_reported_and_not_refreshed() {
    let mut h = ScriptedServer::allocated();
    h.server().fail_with = Some((Method::CREATE_PERMISSION, 403));
    let peer: IpAddr = "198.51.100.20".parse().unwrap();
    h.client.create_permission(h.now, &[peer]).unwrap();
    h.pump();
    assert!(matches!(
        h.take_events()[..],
        [ClientEvent::Error {
            request: Method::CREATE_PERMISSION,
            code: Some(403),
            ..
        }]
    ));
    assert!(!h.client.has_permission(h.now, peer));
    h.advance(secs(600));
    assert_eq!(h.request_times(Method::CREATE_PERMISSION), [secs(0)]);
}

#[test]
fn peer_of_the_wrong_family_is_refused() {
    let mut h = ScriptedServer::allocated();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(
        h.client.create_permission(h.now, &[v6]),
        Err(ClientError::PeerAddressFamilyMismatch(v6))
    );
}
