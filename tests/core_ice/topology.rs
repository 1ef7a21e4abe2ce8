//! Two agents over the in-memory network with candidates beyond one host each: trickle,
//! peer-reflexive candidates and NAT, ice-lite, several components, relayed and
//! server-reflexive candidates.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::pairs::agents::{AgentPair, Side};
use crate::{addr, assert_same_pair, controlled, controlling, is_nominated, MS};
use floe::ice::*;

#[test]
fn trickled_candidates_after_start_still_connect() {
    let mut h = AgentPair::new(controlling(), controlled(), 17);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.give_credentials(Side::A, Side::B);
    h.give_credentials(Side::B, Side::A);
    h.start();
    h.run_for(Duration::from_millis(300));
    assert!(h.a.sent.is_empty() && h.b.sent.is_empty(), "no pairs yet");
    // A gathers one more candidate late; both trickle.
    h.a.hosts(&["10.0.1.1:5000"]);
    h.give_candidates(Side::B, Side::A);
    h.run_for(Duration::from_millis(20));
    h.give_candidates(Side::A, Side::B);
    h.a.agent.end_of_local_candidates();
    h.b.agent.end_of_remote_candidates();
    assert!(h.connect(Duration::from_secs(5) - h.elapsed()));
    assert_same_pair(&h);
    assert!(h.a.first(is_nominated).unwrap() < Duration::from_millis(500));
}

#[test]
fn remote_peer_reflexive_candidate_from_a_check() {
    let mut h = AgentPair::new(controlling(), controlled(), 18);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    // B learns everything; A only B's credentials: B's address comes with its check.
    h.give_credentials(Side::A, Side::B);
    h.give_candidates(Side::A, Side::B);
    h.give_credentials(Side::B, Side::A);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    let prflx =
        h.a.events
            .iter()
            .find_map(|(_, e)| match e {
                IceEvent::PeerReflexive {
                    candidate,
                    local: false,
                } => Some(candidate.clone()),
                _ => None,
            })
            .expect("A learnt B as peer-reflexive");
    assert_eq!(prflx.addr(), addr("10.0.0.2:6000"));
    assert_eq!(prflx.kind(), CandidateKind::PeerReflexive);
    // RFC 8445 §7.1.1: its priority is the PRIORITY B's check carried.
    assert_eq!(
        prflx.priority(),
        candidate_priority(CandidateKind::PeerReflexive, 65535, 1)
    );
    let (_, remote) = h.a.agent.selected_pair().unwrap();
    assert_eq!(remote.kind(), CandidateKind::PeerReflexive);
    assert_same_pair(&h);

    // Signalled later, the candidate is updated in place (RFC 8838 §11).
    h.give_candidates(Side::B, Side::A);
    let known = h.a.agent.checklist().remote_candidates();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].kind(), CandidateKind::Host);
}

#[test]
fn local_peer_reflexive_candidate_behind_a_nat() {
    let mut h = AgentPair::new(controlling(), controlled(), 19);
    h.a.hosts(&["192.0.2.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.nat_b = vec![(addr("10.0.0.2:6000"), addr("203.0.113.7:40000"))];
    h.signal();
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    // A saw B's checks from the NAT's address; B learnt that address from A's response.
    let b_local =
        h.b.events
            .iter()
            .find_map(|(_, e)| match e {
                IceEvent::PeerReflexive {
                    candidate,
                    local: true,
                } => Some(candidate.clone()),
                _ => None,
            })
            .expect("B learnt a local peer-reflexive candidate");
    assert_eq!(b_local.addr(), addr("203.0.113.7:40000"));
    assert_eq!(b_local.base(), Some(addr("10.0.0.2:6000")));
    let (al, ar) = h.a.agent.selected_pair().unwrap();
    let (bl, br) = h.b.agent.selected_pair().unwrap();
    assert_eq!(ar.addr(), addr("203.0.113.7:40000"));
    assert_eq!(bl.addr(), addr("203.0.113.7:40000"));
    assert_eq!(bl.kind(), CandidateKind::PeerReflexive);
    assert_eq!(al.addr(), br.addr());
    // The nominated pairs agree too.
    assert_eq!(h.b.nominated()[0].0.addr(), h.a.nominated()[0].1.addr());
    // Data from B leaves from its base, and arrives at A through the NAT.
    h.b.agent
        .send(Bytes::from_static(b"through the nat"))
        .unwrap();
    h.run_for(10 * MS);
    assert_eq!(
        h.a.received.last().unwrap().1,
        Bytes::from_static(b"through the nat")
    );
}

#[test]
fn full_agent_against_a_lite_peer() {
    // A is configured controlled, but a lite peer makes it controlling.
    let mut h = AgentPair::new(controlled(), IceConfig::lite(), 20);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.signal();
    h.a.agent.set_remote_lite(true);
    assert_eq!(h.a.agent.role(), IceRole::Controlling);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    assert_same_pair(&h);
    assert!(h.b.requests().is_empty(), "a lite agent sends no checks");
    assert_eq!(h.b.nominated().len(), 1);
    h.run_for(Duration::from_secs(60));
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    assert_eq!(h.b.agent.state(), IceConnectionState::Connected);
    h.b.agent.send(Bytes::from_static(b"lite")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(h.a.received.last().unwrap().1, Bytes::from_static(b"lite"));
}

#[test]
fn lite_agent_refuses_to_control() {
    // A full agent that believes itself controlled meets a lite agent without knowing
    // it: the lite agent answers 487 and the full agent takes control (§7.2.5.1).
    let mut h = AgentPair::new(controlled(), IceConfig::lite(), 21);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.signal();
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    assert_eq!(h.a.agent.role(), IceRole::Controlling);
    assert_eq!(h.b.agent.role(), IceRole::Controlled);
}

#[test]
fn two_components_pair_separately_and_both_must_be_nominated() {
    let mut h = AgentPair::new(controlling(), controlled(), 26);
    for (p, ip) in [(&mut h.a, "10.0.0.1"), (&mut h.b, "10.0.0.2")] {
        for component in [1u16, 2] {
            let a: SocketAddr = format!("{ip}:{}", 5000 + component).parse().unwrap();
            p.addrs.push(a);
            p.agent
                .add_local_candidate(Candidate::host(a).with_component(component))
                .unwrap();
        }
    }
    h.signal();
    assert_eq!(h.a.agent.checklist().pairs().len(), 2);
    for p in h.a.agent.checklist().pairs() {
        assert_eq!(p.local_addr().port() - 5000, p.component());
        assert_eq!(p.remote_addr().port() - 5000, p.component());
    }
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    for p in [&h.a, &h.b] {
        let nominated = p.nominated();
        assert_eq!(nominated.len(), 2);
        let connected = p.first(|e| *e == IceEvent::Connected).unwrap();
        let last_nomination = p
            .events
            .iter()
            .filter(|(_, e)| is_nominated(e))
            .map(|(t, _)| *t)
            .max()
            .unwrap();
        assert!(connected >= last_nomination);
    }
    h.a.agent
        .send_component(2, Bytes::from_static(b"rtcp"))
        .unwrap();
    h.run_for(10 * MS);
    let (_, t) =
        h.a.sent
            .iter()
            .find(|(_, t)| t.payload[..] == b"rtcp"[..])
            .unwrap();
    assert_eq!((t.source.port(), t.destination.port()), (5002, 5002));
    assert_eq!(h.b.received.last().unwrap().1, Bytes::from_static(b"rtcp"));
}

#[test]
fn relayed_candidates_check_and_send_from_the_relayed_address() {
    let mut h = AgentPair::new(controlling(), controlled(), 27);
    let relayed = addr("192.0.2.100:49152");
    h.a.addrs.push(relayed);
    let relay =
        h.a.agent
            .add_local_candidate(Candidate::relayed(
                relayed,
                addr("198.51.100.1:6000"),
                addr("192.0.2.100:3478"),
            ))
            .unwrap();
    h.b.hosts(&["10.0.0.2:6000"]);
    h.signal();
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    assert_same_pair(&h);
    let (local, _) = h.a.agent.selected_pair().unwrap();
    assert_eq!(local.kind(), CandidateKind::Relayed);
    assert_eq!(local.addr(), relay.addr());
    assert!(h.a.sent.iter().all(|(_, t)| t.source == relayed));
    h.a.agent.send(Bytes::from_static(b"relayed")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(
        h.b.received.last().unwrap().1,
        Bytes::from_static(b"relayed")
    );
    let (_, t) = h.a.sent.last().unwrap();
    assert_eq!(t.source, relayed);
}

#[test]
fn server_reflexive_candidates_are_pruned_to_their_base() {
    let mut h = AgentPair::new(controlling(), controlled(), 28);
    h.a.hosts(&["10.0.0.1:5000"]);
    let srflx =
        h.a.agent
            .add_local_candidate(Candidate::server_reflexive(
                addr("198.51.100.1:6000"),
                addr("10.0.0.1:5000"),
                addr("192.0.2.100:3478"),
            ))
            .unwrap();
    assert_eq!(srflx.kind(), CandidateKind::ServerReflexive);
    h.b.hosts(&["10.0.0.2:6000", "10.0.1.2:6000"]);
    h.signal();
    // RFC 8445 §6.1.2.4: the srflx candidate is replaced by its base, whose pairs exist.
    let pairs = h.a.agent.checklist().pairs();
    assert_eq!(pairs.len(), 2);
    assert!(pairs
        .iter()
        .all(|p| p.local_addr() == addr("10.0.0.1:5000")));
    // B pairs A's srflx candidate like any remote candidate.
    assert_eq!(h.b.agent.checklist().pairs().len(), 4);
}
