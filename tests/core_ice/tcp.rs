//! ICE-TCP (RFC 6544) between two agents on the fake network: active and passive
//! candidates in both roles, connections asked for and reported back, RFC 4571 framing,
//! UDP preferred over TCP, failed and closed connections, no retransmissions over TCP.

use std::time::Duration;

use bytes::Bytes;

use crate::pairs::agents::{AgentPair, Side};
use crate::pairs::tcp_net::tcp_payloads;
use crate::{addr, assert_same_pair, controlled, controlling, is_nominated, MS};
use floe::ice::*;
use floe::stun::{Class, Message};
use floe::Transport;

const S: Duration = Duration::from_secs(1);

fn tcp_pair(seed: u64, a: TcpType, b: TcpType) -> AgentPair {
    let mut h = AgentPair::new(controlling(), controlled(), seed);
    h.tcp_hosts(Side::A, &["10.0.0.1:5000"], a);
    h.tcp_hosts(Side::B, &["10.0.0.2:6000"], b);
    h.signal();
    h
}

/// Connected over TCP; data both ways; every packet went framed over a connection.
fn connects_and_carries_data(h: &mut AgentPair) {
    h.start();
    assert!(h.connect(5 * S), "both sides connected");
    assert_same_pair(h);
    for side in [Side::A, Side::B] {
        let (l, r) = h.peer(side).agent.selected_pair().unwrap();
        assert_eq!(l.transport(), CandidateTransport::Tcp, "{l}");
        assert_eq!(r.transport(), CandidateTransport::Tcp, "{r}");
        assert!(
            l.tcp_type().is_some() && r.tcp_type().is_some(),
            "{l} / {r}"
        );
    }
    h.a.agent.send(Bytes::from_static(b"ping")).unwrap();
    h.b.agent.send(Bytes::from_static(b"pong")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(h.b.received.last().unwrap().1, Bytes::from_static(b"ping"));
    assert_eq!(h.a.received.last().unwrap().1, Bytes::from_static(b"pong"));
    for p in [&h.a, &h.b] {
        assert!(p.sent.iter().all(|(_, t)| t.transport == Transport::Tcp));
    }
    assert_eq!(h.tcp.unconnected, 0, "nothing sent without a connection");
    assert!(h.tcp.framed > 4);
    assert_eq!(
        h.tcp.conns.len(),
        1,
        "one connection, opened by the active side"
    );
}

#[test]
fn active_controlling_connects_to_passive_controlled() {
    let mut h = tcp_pair(1, TcpType::Active, TcpType::Passive);
    // RFC 6544 §4.5: the active candidate is signalled with port 9.
    assert_eq!(h.a.agent.local_candidates()[0].addr(), addr("10.0.0.1:9"));
    connects_and_carries_data(&mut h);
    assert_eq!(h.tcp.requests.len(), 1);
    let (side, c) = h.tcp.requests[0];
    assert_eq!(side, Side::A);
    assert_eq!(
        (c.local, c.remote),
        (addr("10.0.0.1:9"), addr("10.0.0.2:6000"))
    );
    // RFC 6544 §7.2: B learns A's end (an ephemeral port) as a peer-reflexive active
    // candidate; A learns its own mapped address as peer-reflexive too.
    let (bl, br) = h.b.agent.selected_pair().unwrap();
    assert_eq!(bl.addr(), addr("10.0.0.2:6000"));
    assert_eq!(br.kind(), CandidateKind::PeerReflexive);
    assert_eq!(br.tcp_type(), Some(TcpType::Active));
    assert_eq!(br.addr(), h.tcp.conns[0].active_addr);
    let (al, _) = h.a.agent.selected_pair().unwrap();
    assert_eq!(al.addr(), h.tcp.conns[0].active_addr);
    assert_eq!(al.kind(), CandidateKind::PeerReflexive);
}

#[test]
fn passive_controlling_is_connected_to_by_active_controlled() {
    let mut h = tcp_pair(2, TcpType::Passive, TcpType::Active);
    connects_and_carries_data(&mut h);
    assert!(h.tcp.requests.iter().all(|(side, _)| *side == Side::B));
    // A nominated a pair it learnt from B's check on the connection B opened.
    let (al, ar) = h.a.agent.selected_pair().unwrap();
    assert_eq!(al.tcp_type(), Some(TcpType::Passive));
    assert_eq!(ar.kind(), CandidateKind::PeerReflexive);
}

#[test]
fn both_sides_active_and_passive_both_roles() {
    for (seed, roles) in [
        (3, (controlling(), controlled())),
        (4, (controlled(), controlling())),
    ] {
        let mut h = AgentPair::new(roles.0, roles.1, seed);
        h.tcp_hosts(Side::A, &["10.0.0.1:5001"], TcpType::Passive);
        h.tcp_hosts(Side::A, &["10.0.0.1:0"], TcpType::Active);
        h.tcp_hosts(Side::B, &["10.0.0.2:6001"], TcpType::Passive);
        h.tcp_hosts(Side::B, &["10.0.0.2:0"], TcpType::Active);
        h.signal();
        // RFC 6544 §6.2: each side checks only active → passive; passive pairs are pruned.
        for p in [&h.a, &h.b] {
            let pairs = p.agent.checklist().pairs();
            assert_eq!(pairs.len(), 1, "{pairs:?}");
            assert_eq!(pairs[0].local_addr().port(), 9);
        }
        h.start();
        assert!(h.connect(5 * S), "seed {seed}");
        assert_same_pair(&h);
        h.a.agent.send(Bytes::from_static(b"x")).unwrap();
        h.run_for(10 * MS);
        assert_eq!(h.b.received.last().unwrap().1, Bytes::from_static(b"x"));
        assert_eq!(h.tcp.unconnected, 0);
        let (a_reqs, b_reqs) = (
            h.tcp.requests.iter().filter(|(s, _)| *s == Side::A).count(),
            h.tcp.requests.iter().filter(|(s, _)| *s == Side::B).count(),
        );
        assert_eq!((a_reqs, b_reqs), (1, 1), "each active side connects once");
    }
}

#[test]
fn udp_wins_over_tcp_when_both_are_present() {
    let mut h = AgentPair::new(controlling(), controlled(), 5);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.tcp_hosts(Side::A, &["10.0.0.1:0"], TcpType::Active);
    h.tcp_hosts(Side::A, &["10.0.0.1:5001"], TcpType::Passive);
    h.tcp_hosts(Side::B, &["10.0.0.2:0"], TcpType::Active);
    h.tcp_hosts(Side::B, &["10.0.0.2:6001"], TcpType::Passive);
    h.signal();
    let pairs = h.a.agent.checklist().pairs();
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0].local_addr(), addr("10.0.0.1:5000"), "UDP first");
    h.start();
    assert!(h.connect(5 * S));
    assert_same_pair(&h);
    for p in [&h.a, &h.b] {
        let (l, r) = p.agent.selected_pair().unwrap();
        assert_eq!(l.transport(), CandidateTransport::Udp, "{l}");
        assert_eq!(r.transport(), CandidateTransport::Udp, "{r}");
        assert_eq!(p.nominated().len(), 1);
    }
    h.a.agent.send(Bytes::from_static(b"u")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(h.b.received.last().unwrap().1, Bytes::from_static(b"u"));
}

#[test]
fn tcp_only_on_one_side_is_never_paired_with_udp() {
    let mut h = AgentPair::new(controlling(), controlled(), 6);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.tcp_hosts(Side::B, &["10.0.0.2:6001"], TcpType::Passive);
    h.tcp_hosts(Side::B, &["10.0.0.2:0"], TcpType::Active);
    h.signal();
    assert!(h.a.agent.checklist().pairs().is_empty());
    assert!(h.b.agent.checklist().pairs().is_empty());
    h.start();
    h.run_for(2 * S);
    assert!(h.tcp.requests.is_empty());
    assert!(h.a.sent.is_empty() && h.b.sent.is_empty());
}

#[test]
fn a_refused_connection_fails_the_pair_and_then_the_agent() {
    let mut h = tcp_pair(7, TcpType::Active, TcpType::Passive);
    h.tcp.refuse = true;
    h.start();
    assert!(h.run_until(5 * S, |h| h.a.first(|e| *e == IceEvent::Failed).is_some()));
    assert_eq!(h.a.count(|e| matches!(e, IceEvent::PairFailed { .. })), 1);
    assert!(h.a.sent.is_empty(), "no check without a connection");
    assert!(h.a.first(|e| *e == IceEvent::Failed).unwrap() < 100 * MS);
}

#[test]
fn checks_over_tcp_are_sent_once_and_time_out_after_39_5_s() {
    let mut config = controlling();
    config.connect_timeout = Duration::from_secs(60);
    let mut h = AgentPair::new(config, controlled(), 8);
    h.tcp_hosts(Side::A, &["10.0.0.1:0"], TcpType::Active);
    h.tcp_hosts(Side::B, &["10.0.0.2:6000"], TcpType::Passive);
    h.signal();
    // B never answers on the connection.
    h.drop = Some(Box::new(|_, side, _| side == Side::B));
    h.start();
    let failed = |h: &AgentPair| h.a.first(|e| matches!(e, IceEvent::PairFailed { .. }));
    assert!(h.run_until(60 * S, |h| failed(h).is_some()));
    let requests: Vec<_> = tcp_payloads(&h.a.sent)
        .into_iter()
        .filter(|p| Message::decode(p.clone()).is_ok_and(|m| m.class() == Class::Request))
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "RFC 6544 §7.1: no retransmission over TCP"
    );
    let at = failed(&h).unwrap();
    assert!(
        at >= Duration::from_millis(39_500) && at < Duration::from_secs(40),
        "{at:?}"
    );
}

#[test]
fn a_closed_connection_loses_consent_on_the_selected_pair() {
    let mut h = tcp_pair(9, TcpType::Active, TcpType::Passive);
    h.start();
    assert!(h.connect(5 * S));
    h.close_tcp(0);
    h.run_for(10 * MS);
    for p in [&h.a, &h.b] {
        assert!(p
            .first(|e| matches!(e, IceEvent::ConsentLost { .. }))
            .is_some());
        assert_eq!(p.agent.state(), IceConnectionState::Failed);
    }
    assert!(h.a.agent.send(Bytes::from_static(b"late")).is_err());
}

#[test]
fn time_to_nominated_over_tcp() {
    let mut h = tcp_pair(10, TcpType::Active, TcpType::Passive);
    h.start();
    assert!(h.run_until(5 * S, |h| {
        h.a.first(is_nominated).is_some() && h.b.first(is_nominated).is_some()
    }));
    // Connect (1 RTT), check and triggered check (1 RTT), nomination (1 RTT); 1 ms
    // one-way, no Ta wait on one pair.
    let t =
        h.a.first(is_nominated)
            .unwrap()
            .max(h.b.first(is_nominated).unwrap());
    assert!(t < 20 * MS, "{t:?}");
}
