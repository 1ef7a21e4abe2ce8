//! The core's own integration tests: floe's TURN client core against floe's TURN server
//! core, through their public API only, on the sans-IO [`Pair`] with a fake clock.

#[path = "core/mod.rs"]
mod pairs;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use floe::stun::attribute::ErrorCode;
use floe::stun::{Class, Method};
use floe::transmit::Transport;
use floe::turn::client::{ClientEvent, ClientState};
use floe::turn::server::ServerEvent;

use pairs::pair::{addr, Direction, Pair, PASS, RELAY_IP, USER};

const PEER: &str = "192.0.2.7:5000";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The error code of a STUN error response, if it is one.
fn error_code(m: &floe::stun::Message) -> Option<u16> {
    (m.class() == Class::Error).then(|| m.get::<ErrorCode>().unwrap().unwrap().code)
}

#[test]
fn allocate_answers_the_401_challenge_then_succeeds() {
    let mut p = Pair::new();
    let relayed = p.allocate();
    assert_eq!(relayed.ip(), RELAY_IP.parse::<IpAddr>().unwrap());
    assert_eq!(p.client.state(), ClientState::Allocated);
    assert_eq!(p.client.relayed_addresses(), [relayed]);

    // RFC 8489 §9.2: the first request carries no credentials and draws a 401; the
    // second answers it, signed, and succeeds.
    let requests = p.stun_log(Direction::ToServer);
    let responses = p.stun_log(Direction::ToClient);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(!requests[0].has_integrity() && !requests[0].has_integrity_sha256());
    assert!(requests[1].has_integrity() || requests[1].has_integrity_sha256());
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].method(), Method::ALLOCATE);
    assert_eq!(error_code(&responses[0]), Some(401));
    assert_eq!(responses[1].class(), Class::Success);

    let events = p.take_server_events();
    assert!(
        events.iter().any(|e| matches!(e,
            ServerEvent::AllocationCreated { username, relayed: r, .. }
                if username == USER && r == &vec![relayed])),
        "{events:?}"
    );
    assert_eq!(p.server.allocation_count(), 1);
}

#[test]
fn allocate_with_md5_only_when_the_server_offers_no_algorithms() {
    let mut p = Pair::with(|_| {}, |s| s.password_algorithms = false);
    p.allocate();
    let requests = p.stun_log(Direction::ToServer);
    assert!(requests[1].has_integrity() && !requests[1].has_integrity_sha256());
    assert_eq!(p.server.allocation_count(), 1);
}

#[test]
fn wrong_password_fails_with_an_error_event_and_no_allocation() {
    let mut p = Pair::with(|c| c.password = format!("not {PASS}"), |_| {});
    p.client.allocate(p.now).unwrap();
    let (code, request) = p.expect_client("Error", |e| match e {
        ClientEvent::Error { request, code, .. } => Some((*code, *request)),
        _ => None,
    });
    assert_eq!((request, code), (Method::ALLOCATE, Some(401)));
    assert_eq!(p.client.state(), ClientState::Idle);
    assert_eq!(p.server.allocation_count(), 0);
    let events = p.take_server_events();
    assert!(
        events.iter().any(|e| matches!(e,
            ServerEvent::AuthFailed { code: 401, username: Some(u), .. } if u == USER)),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationCreated { .. })));
    // One unauthenticated try, one with the wrong key; the client does not loop.
    assert_eq!(p.stun_log(Direction::ToServer).len(), 2);
}

#[test]
fn explicit_and_automatic_refreshes_keep_the_allocation() {
    let mut p = Pair::new();
    p.allocate();
    p.client.refresh(p.now, secs(1200)).unwrap();
    let granted = p.expect_client("Refreshed", |e| match e {
        ClientEvent::Refreshed { lifetime } => Some(*lifetime),
        _ => None,
    });
    assert_eq!(granted, secs(1200));
    assert!(p
        .take_server_events()
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationRefreshed { lifetime, .. } if *lifetime == secs(1200))));

    // Three lifetimes later the allocation is alive on both sides, refreshed each time.
    p.run_for(secs(3 * 1200));
    assert_eq!(p.client.state(), ClientState::Allocated);
    assert_eq!(p.server.allocation_count(), 1);
    let refreshed = p
        .take_client_events()
        .iter()
        .filter(|e| matches!(e, ClientEvent::Refreshed { .. }))
        .count();
    assert!(refreshed >= 3, "{refreshed} automatic refreshes");
    assert!(!p
        .take_server_events()
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationExpired { .. })));
}

#[test]
fn delete_frees_the_allocation_and_its_relay() {
    let mut p = Pair::new();
    let relayed = p.allocate();
    p.client.delete(p.now).unwrap();
    p.expect_client("Deleted", |e| (*e == ClientEvent::Deleted).then_some(()));
    assert_eq!(p.client.state(), ClientState::Idle);
    assert_eq!(p.server.allocation_count(), 0);
    let events = p.take_server_events();
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::AllocationDeleted { .. })));
    assert!(events.contains(&ServerEvent::RelayReleased(relayed)));
}

#[test]
fn create_permission_installs_it_on_both_sides_and_policy_refusals_are_403() {
    let mut p = Pair::new();
    p.allocate();
    let peer = addr(PEER);
    p.client.create_permission(p.now, &[peer.ip()]).unwrap();
    let peers = p.expect_client("PermissionCreated", |e| match e {
        ClientEvent::PermissionCreated { peers } => Some(peers.clone()),
        _ => None,
    });
    assert_eq!(peers, [peer.ip()]);
    assert!(p.client.has_permission(p.now, peer.ip()));
    assert!(p
        .take_server_events()
        .iter()
        .any(|e| matches!(e, ServerEvent::PermissionCreated { peer: ip, .. } if *ip == peer.ip())));

    // RFC 8656 §21.3: a private peer (and its IPv4-mapped form) is refused.
    for denied in ["10.0.0.1", "::ffff:10.0.0.1"] {
        let ip: IpAddr = denied.parse().unwrap();
        if p.client.create_permission(p.now, &[ip]).is_err() {
            continue; // no relayed address of that family: refused locally
        }
        let code = p.expect_client("Error", |e| match e {
            ClientEvent::Error {
                request: Method::CREATE_PERMISSION,
                code,
                ..
            } => Some(*code),
            _ => None,
        });
        assert_eq!(code, Some(403), "{denied}");
        assert!(!p.client.has_permission(p.now, ip));
    }
}

/// Binds a channel to `peer` and returns its number.
fn bind(p: &mut Pair, peer: SocketAddr) -> u16 {
    let number = p.client.channel_bind(p.now, peer).unwrap();
    let (bound, channel) = p.expect_client("ChannelBound", |e| match e {
        ClientEvent::ChannelBound { peer, channel } => Some((*peer, *channel)),
        _ => None,
    });
    assert_eq!((bound, channel), (peer, number));
    number
}

#[test]
fn channel_data_flows_both_ways() {
    let mut p = Pair::new();
    let relay = p.allocate();
    let peer = addr(PEER);
    assert_eq!(bind(&mut p, peer), 0x4000);
    assert!(p.take_server_events().iter().any(|e| matches!(
        e,
        ServerEvent::ChannelBound {
            channel: 0x4000,
            ..
        }
    )));
    // RFC 8656 §12.3: the binding installed the permission too.
    assert!(p.client.has_permission(p.now, peer.ip()));

    p.client.send_to(p.now, peer, b"ping").unwrap();
    p.run_for(secs(1));
    let last_up = p
        .log
        .iter()
        .rev()
        .find(|d| d.direction == Direction::ToServer)
        .unwrap();
    assert_eq!(last_up.payload[..2], [0x40, 0x00], "sent as ChannelData");
    assert_eq!(p.peer_inbox, [(relay, peer, "ping".into())]);

    p.peer_sends(peer, relay, b"pong");
    let (from, data) = p.expect_client("Data", |e| match e {
        ClientEvent::Data { peer, data } => Some((*peer, data.clone())),
        _ => None,
    });
    assert_eq!((from, &data[..]), (peer, &b"pong"[..]));
    let last_down = p.log.last().unwrap();
    assert_eq!(last_down.direction, Direction::ToClient);
    assert_eq!(
        last_down.payload[..2],
        [0x40, 0x00],
        "received as ChannelData"
    );
}

#[test]
fn send_and_data_indications_flow_both_ways() {
    let mut p = Pair::new();
    let relay = p.allocate();
    let peer = addr(PEER);
    p.client.create_permission(p.now, &[peer.ip()]).unwrap();
    p.expect_client("PermissionCreated", |e| {
        matches!(e, ClientEvent::PermissionCreated { .. }).then_some(())
    });

    p.client.send_to(p.now, peer, b"hello").unwrap();
    p.run_for(secs(1));
    let send = p.stun_log(Direction::ToServer).pop().unwrap();
    assert_eq!(
        (send.method(), send.class()),
        (Method::SEND, Class::Indication)
    );
    assert_eq!(p.peer_inbox, [(relay, peer, "hello".into())]);

    p.peer_sends(peer, relay, b"world");
    let (from, data) = p.expect_client("Data", |e| match e {
        ClientEvent::Data { peer, data } => Some((*peer, data.clone())),
        _ => None,
    });
    assert_eq!((from, &data[..]), (peer, &b"world"[..]));
    let indication = p.stun_log(Direction::ToClient).pop().unwrap();
    assert_eq!(
        (indication.method(), indication.class()),
        (Method::DATA, Class::Indication)
    );

    // RFC 8656 §10.3: a peer without a permission is not heard.
    p.peer_sends(addr("192.0.2.8:5000"), relay, b"intruder");
    p.run_for(secs(1));
    assert!(!p
        .take_client_events()
        .iter()
        .any(|e| matches!(e, ClientEvent::Data { .. })));
}

#[test]
fn a_stale_nonce_is_renewed_and_the_request_retried() {
    let mut p = Pair::with(|_| {}, |s| s.nonce_lifetime = secs(30));
    p.allocate();
    // Quiet for longer than the nonce lives (the allocation lives 600 s).
    p.run_for(secs(45));
    let peer = addr(PEER);
    p.client.create_permission(p.now, &[peer.ip()]).unwrap();
    p.expect_client("PermissionCreated", |e| {
        matches!(e, ClientEvent::PermissionCreated { .. }).then_some(())
    });
    // RFC 8489 §9.2.5: the server answered 438 once; the client took the new nonce and
    // sent the request again.
    let answers: Vec<(Method, Option<u16>)> = p
        .stun_log(Direction::ToClient)
        .iter()
        .filter(|m| m.method() == Method::CREATE_PERMISSION)
        .map(|m| (m.method(), error_code(m)))
        .collect();
    assert_eq!(
        answers,
        [
            (Method::CREATE_PERMISSION, Some(438)),
            (Method::CREATE_PERMISSION, None)
        ]
    );
    assert!(!p
        .take_client_events()
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { .. })));
}

#[test]
fn channel_data_is_padded_over_tcp_both_ways() {
    let mut p = Pair::with(|c| c.transport = Transport::Tcp, |_| {});
    let relay = p.allocate();
    let peer = addr(PEER);
    bind(&mut p, peer);

    // RFC 8656 §12.5: over TCP, ChannelData is padded to a multiple of 4 bytes.
    p.client.send_to(p.now, peer, b"abcde").unwrap();
    p.run_for(secs(1));
    let up = p
        .log
        .iter()
        .rev()
        .find(|d| d.direction == Direction::ToServer)
        .unwrap();
    assert_eq!(up.payload.len(), 12, "4-byte header, 5 bytes, 3 of padding");
    assert_eq!(p.peer_inbox, [(relay, peer, "abcde".into())]);

    p.peer_sends(peer, relay, b"xyz");
    let (_, data) = p.expect_client("Data", |e| match e {
        ClientEvent::Data { peer, data } => Some((*peer, data.clone())),
        _ => None,
    });
    assert_eq!(&data[..], b"xyz");
    assert_eq!(p.log.last().unwrap().payload.len(), 8, "padded to 8 bytes");
}
