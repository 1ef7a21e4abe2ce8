//! Several data streams with several components in one agent (RFC 8445 §6.1.2.6: a
//! checklist per stream, one pacer, the frozen algorithm across the checklists), on the
//! in-memory network.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::pairs::agents::AgentPair;
use crate::{addr, controlled, controlling, MS};
use floe::ice::*;
use floe::stun::attribute::Username;
use floe::stun::Class;

/// Two agents with `streams` streams of two components (RTP and RTCP): A's stream `s`
/// component `c` on 10.0.0.1:(5000 + 10s + c), B's on 10.0.0.2:(6000 + 10s + c); with
/// `other_ip`, A's streams after the first are on 10.0.0.3 (another foundation).
fn streams(streams: usize, other_ip: bool, seed: u64) -> AgentPair {
    let mut h = AgentPair::new(controlling(), controlled(), seed);
    h.net.latency = 20 * MS;
    for s in 0..streams {
        if s > 0 {
            assert_eq!(h.a.agent.add_stream(), s);
            assert_eq!(h.b.agent.add_stream(), s);
        }
        for c in 1..=2u16 {
            let port = 10 * s as u16 + c;
            let ip = if s > 0 && other_ip {
                "10.0.0.3"
            } else {
                "10.0.0.1"
            };
            h.a.hosts_in(s, c, &[&format!("{ip}:{}", 5000 + port)]);
            h.b.hosts_in(s, c, &[&format!("10.0.0.2:{}", 6000 + port)]);
        }
    }
    h.signal();
    h
}

/// B's addresses of stream `s`.
fn b_addrs(s: usize) -> [SocketAddr; 2] {
    let p = 6000 + 10 * s as u16;
    [
        addr(&format!("10.0.0.2:{}", p + 1)),
        addr(&format!("10.0.0.2:{}", p + 2)),
    ]
}

/// When A first sent a new check to `to`.
fn first_check_to(h: &AgentPair, to: &[SocketAddr]) -> Option<Duration> {
    h.a.new_checks()
        .into_iter()
        .find(|(_, _, t)| to.contains(&t.destination))
        .map(|(at, _, _)| at)
}

#[test]
fn each_stream_has_its_own_credentials_and_checks_use_them() {
    let mut h = streams(2, false, 1);
    assert_ne!(
        h.a.agent.local_credentials_of(0),
        h.a.agent.local_credentials_of(1)
    );
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    for s in 0..2 {
        let (b_ufrag, _) = h.b.agent.local_credentials_of(s);
        let (a_ufrag, _) = h.a.agent.local_credentials_of(s);
        let want = format!("{b_ufrag}:{a_ufrag}");
        let checks: Vec<_> =
            h.a.new_checks()
                .into_iter()
                .filter(|(_, _, t)| b_addrs(s).contains(&t.destination))
                .collect();
        assert!(!checks.is_empty(), "stream {s} was checked");
        for (_, m, _) in checks {
            let u = m.get::<Username>().unwrap().unwrap();
            assert_eq!(u.as_str(), want, "stream {s}");
        }
    }
}

#[test]
fn only_the_first_checklist_starts_unfrozen() {
    let mut h = streams(2, false, 2);
    // Slow enough that several Ta slots pass before the first response: stream 1 waits
    // because its foundation is In-Progress in stream 0 (RFC 8445 §6.1.4.2).
    h.net.latency = 200 * MS;
    h.start();
    // Every candidate shares one foundation: stream 0 has one pair Waiting (the
    // lowest component), stream 1 none.
    let s0 = h.a.agent.checklist_of(0).pairs();
    let active: Vec<_> = s0
        .iter()
        .filter(|p| p.state() != PairState::Frozen)
        .collect();
    assert_eq!(active.len(), 1, "{s0:?}");
    assert_eq!(active[0].component(), 1);
    assert!(h
        .a
        .agent
        .checklist_of(1)
        .pairs()
        .iter()
        .all(|p| p.state() == PairState::Frozen));
    assert!(h.connect(Duration::from_secs(5)));
    // Stream 1 was unfrozen by stream 0's first success (RFC 8445 §7.2.5.3.3): its
    // first check left after the first success response reached A.
    let first_success =
        h.b.sent
            .iter()
            .find(|(_, t)| {
                floe::stun::Message::decode(t.payload.clone())
                    .is_ok_and(|m| m.class() == Class::Success)
            })
            .map(|(at, _)| *at)
            .unwrap();
    let s1 = first_check_to(&h, &b_addrs(1)).expect("stream 1 checked");
    assert!(
        s1 >= first_success + h.net.latency,
        "stream 1 at {s1:?}, first success at {first_success:?}"
    );
}

#[test]
fn a_frozen_foundation_no_checklist_is_checking_starts_without_waiting() {
    // Stream 1's candidates have a foundation of their own: nothing of it is Waiting
    // or In-Progress anywhere, so a Ta slot unfreezes it (RFC 8445 §6.1.4.2) before
    // any response came back.
    let mut h = streams(2, true, 3);
    h.net.latency = 200 * MS;
    h.start();
    assert!(h
        .a
        .agent
        .checklist_of(1)
        .pairs()
        .iter()
        .all(|p| p.state() == PairState::Frozen));
    assert!(h.connect(Duration::from_secs(5)));
    let s1 = first_check_to(&h, &b_addrs(1)).expect("stream 1 checked");
    assert!(s1 < h.net.latency * 2, "stream 1 first checked at {s1:?}");
}

#[test]
fn every_stream_and_component_is_nominated_and_carries_its_data() {
    let mut h = streams(2, false, 4);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    assert!(h.run_until(Duration::from_secs(5) - h.elapsed(), |h| {
        h.a.agent.state() == IceConnectionState::Connected
            && h.b.agent.state() == IceConnectionState::Connected
    }));
    for peer in [&h.a, &h.b] {
        for s in 0..2 {
            for c in 1..=2u16 {
                assert!(
                    peer.stream_events.iter().any(|(_, stream, e)| *stream == s
                        && matches!(e, IceEvent::PairNominated { local, .. } if local.component() == c)),
                    "stream {s} component {c} nominated"
                );
                assert!(peer.agent.selected_pair_of(s, c).is_some());
            }
            assert!(peer
                .stream_events
                .iter()
                .any(|(_, stream, e)| *stream == s && *e == IceEvent::Connected));
        }
    }
    for s in 0..2 {
        for c in 1..=2u16 {
            let data = Bytes::from(format!("stream {s} component {c}"));
            h.a.agent.send_on(s, c, data.clone()).unwrap();
        }
    }
    h.run_for(100 * MS);
    for s in 0..2 {
        for c in 1..=2u16 {
            let data = Bytes::from(format!("stream {s} component {c}"));
            assert!(
                h.b.received_on.contains(&(s, c, data)),
                "{:?}",
                h.b.received_on
            );
        }
    }
}

#[test]
fn one_pacer_paces_the_checks_of_every_stream() {
    let mut h = streams(3, true, 5);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    let ta = h.a.agent.config().effective_ta();
    let checks = h.a.new_checks();
    // Ordinary checks (not nominations, which wait only for the 5 ms floor) of all
    // streams together go no faster than one per Ta.
    let ordinary: Vec<Duration> = checks
        .iter()
        .filter(|(_, m, _)| m.get::<floe::stun::attribute::UseCandidate>().is_none())
        .map(|(at, _, _)| *at)
        .collect();
    for w in ordinary.windows(2) {
        assert!(w[1] - w[0] >= ta, "{ordinary:?}");
    }
}
