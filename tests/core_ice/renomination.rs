//! Renomination (draft-thatcher-ice-renomination-01) and removed local candidates
//! (continual gathering), two agents on the fake network.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::pairs::agents::{AgentPair, Side};
use crate::{addr, controlled, controlling, MS};
use floe::ice::*;
use floe::stun::attribute::{Nomination, UseCandidate};
use floe::stun::Message;

const A1: &str = "10.0.0.1:5000";
const A2: &str = "10.0.1.1:5000";
const B1: &str = "10.0.0.2:6000";

/// A controlling with two host addresses (A1 preferred), B controlled with one;
/// `negotiated`: both offer renomination and signal it.
fn pair(seed: u64, offer: bool, negotiated: bool) -> AgentPair {
    let (mut a, mut b) = (controlling(), controlled());
    a.renomination = offer;
    b.renomination = offer;
    let mut h = AgentPair::new(a, b, seed);
    h.a.hosts(&[A1, A2]);
    h.b.hosts(&[B1]);
    h.signal();
    if negotiated {
        h.a.agent.set_remote_renomination(true);
        h.b.agent.set_remote_renomination(true);
    }
    h
}

fn selected(h: &AgentPair, side: Side) -> Option<(SocketAddr, SocketAddr)> {
    let p = match side {
        Side::A => &h.a,
        Side::B => &h.b,
    };
    p.agent
        .selected_pair()
        .map(|(l, r)| (l.base().unwrap_or(l.addr()), r.addr()))
}

fn selections(h: &AgentPair, side: Side) -> usize {
    let p = match side {
        Side::A => &h.a,
        Side::B => &h.b,
    };
    p.count(|e| matches!(e, IceEvent::SelectedPairChanged { .. }))
}

/// A1 is unreachable for the first 2 s: the A2 pair is nominated first.
fn a1_late(h: &mut AgentPair) {
    let a1 = addr(A1);
    h.drop = Some(Box::new(move |at, _, t| {
        at < Duration::from_secs(2) && (t.source == a1 || t.destination == a1)
    }));
}

fn data_flows(h: &mut AgentPair, text: &'static [u8]) {
    h.a.agent.send(Bytes::from_static(text)).unwrap();
    h.b.agent.send(Bytes::from_static(text)).unwrap();
    h.run_for(10 * MS);
    assert_eq!(h.a.received.last().unwrap().1, Bytes::from_static(text));
    assert_eq!(h.b.received.last().unwrap().1, Bytes::from_static(text));
}

fn nominations_sent(h: &AgentPair) -> Vec<u32> {
    h.a.requests()
        .iter()
        .filter_map(|(_, _, m, _)| m.get::<Nomination>().map(|n| n.unwrap().0))
        .collect()
}

fn use_candidates_sent(h: &AgentPair) -> usize {
    h.a.requests()
        .iter()
        .filter(|(_, _, m, _): &&(_, _, Message, _)| m.get::<UseCandidate>().is_some())
        .count()
}

#[test]
fn a_better_pair_valid_later_is_renominated_and_the_controlled_side_follows() {
    let mut h = pair(40, true, true);
    a1_late(&mut h);
    h.start();
    assert!(h.connect(Duration::from_secs(2)));
    assert_eq!(selected(&h, Side::A), Some((addr(A2), addr(B1))));
    assert_eq!(selected(&h, Side::B), Some((addr(B1), addr(A2))));
    // A1 comes back: its pair succeeds and, having the higher priority, is nominated
    // again; B follows.
    let moved = h.run_until(Duration::from_secs(20), |h| {
        selected(h, Side::B) == Some((addr(B1), addr(A1)))
            && selected(h, Side::A) == Some((addr(A1), addr(B1)))
    });
    assert!(moved, "B never moved to A1");
    assert_eq!(selected(&h, Side::A), Some((addr(A1), addr(B1))));
    assert_eq!(selections(&h, Side::A), 2);
    assert_eq!(selections(&h, Side::B), 2);
    let sent = nominations_sent(&h);
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    assert_eq!(sent.first(), Some(&1));
    assert!(sent.contains(&2), "{sent:?}");
    assert_eq!(
        use_candidates_sent(&h),
        0,
        "NOMINATION replaces USE-CANDIDATE"
    );
    assert_eq!(h.a.count(|e| *e == IceEvent::Connected), 1);
    data_flows(&mut h, b"on the better pair");
    h.run_for(Duration::from_secs(40));
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    assert_eq!(h.b.agent.state(), IceConnectionState::Connected);
}

#[test]
fn without_negotiation_nomination_is_rfc_8445s_and_unchanged() {
    // Offering without the peer's option changes nothing: the same run, event for
    // event and datagram for datagram, as with renomination off.
    let run = |offer: bool| {
        let mut h = pair(41, offer, false);
        a1_late(&mut h);
        h.start();
        assert!(h.connect(Duration::from_secs(2)));
        h.run_for(Duration::from_secs(20));
        h
    };
    let (on, off) = (run(true), run(false));
    assert_eq!(on.a.events, off.a.events);
    assert_eq!(on.b.events, off.b.events);
    let payloads = |h: &AgentPair, side: Side| -> Vec<Bytes> {
        let p = match side {
            Side::A => &h.a,
            Side::B => &h.b,
        };
        p.sent.iter().map(|(_, t)| t.payload.clone()).collect()
    };
    assert_eq!(payloads(&on, Side::A), payloads(&off, Side::A));
    assert_eq!(payloads(&on, Side::B), payloads(&off, Side::B));
    // RFC 8445 §8.1.1: one nomination, USE-CANDIDATE, and the first pair stays.
    assert!(nominations_sent(&on).is_empty());
    assert!(use_candidates_sent(&on) >= 1);
    assert_eq!(selected(&on, Side::A), Some((addr(A2), addr(B1))));
    assert_eq!(selections(&on, Side::B), 1);
}

#[test]
fn the_application_renominates_a_lower_priority_pair() {
    let mut h = pair(42, true, true);
    h.start();
    assert!(h.connect(Duration::from_secs(2)));
    assert_eq!(selected(&h, Side::B), Some((addr(B1), addr(A1))));
    // Checks go on after completion, so the A2 pair becomes valid too.
    let valid = h.run_until(Duration::from_secs(5), |h| {
        h.a.agent
            .checklist()
            .pairs()
            .iter()
            .all(|p| p.state() == PairState::Succeeded)
    });
    assert!(valid);
    h.a.agent.renominate(0, 1, addr(A2), addr(B1)).unwrap();
    let moved = h.run_until(Duration::from_secs(5), |h| {
        selected(h, Side::B) == Some((addr(B1), addr(A2)))
            && selected(h, Side::A) == Some((addr(A2), addr(B1)))
    });
    assert!(moved, "B never followed the renomination");
    assert_eq!(selected(&h, Side::A), Some((addr(A2), addr(B1))));
    data_flows(&mut h, b"on the chosen pair");
    // It stays: no better pair becomes valid later.
    h.run_for(Duration::from_secs(10));
    assert_eq!(selected(&h, Side::B), Some((addr(B1), addr(A2))));
    // Errors: the controlled side cannot, nor can anyone on an unknown pair.
    assert!(matches!(
        h.b.agent.renominate(0, 1, addr(B1), addr(A1)),
        Err(IceError::CannotRenominate(_))
    ));
    assert!(h
        .a
        .agent
        .renominate(0, 1, addr(A2), addr("10.9.9.9:1"))
        .is_err());
}

#[test]
fn renominate_is_refused_without_negotiation() {
    let mut h = pair(43, true, false);
    h.start();
    assert!(h.connect(Duration::from_secs(2)));
    assert!(matches!(
        h.a.agent.renominate(0, 1, addr(A2), addr(B1)),
        Err(IceError::CannotRenominate(_))
    ));
}

#[test]
fn a_removed_address_takes_its_pairs_and_renomination_moves_the_selection() {
    let mut h = pair(44, true, true);
    h.start();
    assert!(h.connect(Duration::from_secs(2)));
    assert_eq!(selected(&h, Side::A), Some((addr(A1), addr(B1))));
    h.run_for(Duration::from_secs(2));
    // A1 goes away.
    let now = h.now;
    assert_eq!(h.a.agent.remove_local_candidates(now, addr(A1)), 1);
    h.a.addrs.retain(|a| *a != addr(A1));
    h.collect();
    assert!(h
        .a
        .agent
        .local_candidates()
        .iter()
        .all(|c| c.addr() != addr(A1)));
    assert!(h
        .a
        .agent
        .checklist()
        .pairs()
        .iter()
        .all(|p| p.local_addr() != addr(A1)));
    assert!(h.a.agent.selected_pair().is_none());
    let moved = h.run_until(Duration::from_secs(5), |h| {
        selected(h, Side::A) == Some((addr(A2), addr(B1)))
            && selected(h, Side::B) == Some((addr(B1), addr(A2)))
    });
    assert!(moved, "the selection did not move to A2");
    data_flows(&mut h, b"after the move");
    h.run_for(Duration::from_secs(60));
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    assert_eq!(h.b.agent.state(), IceConnectionState::Connected);
    data_flows(&mut h, b"still");
}

#[test]
fn without_renomination_removing_the_selected_pairs_address_fails() {
    let mut h = pair(45, false, false);
    h.start();
    assert!(h.connect(Duration::from_secs(2)));
    let now = h.now;
    // An unused address goes: its pairs go, nothing else happens.
    assert_eq!(h.a.agent.remove_local_candidates(now, addr(A2)), 1);
    h.collect();
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    assert!(h
        .a
        .agent
        .checklist()
        .pairs()
        .iter()
        .all(|p| p.local_addr() != addr(A2)));
    // RFC 8445 §8.1.1: no second nomination: the selected pair's address going fails.
    assert_eq!(h.a.agent.remove_local_candidates(now, addr(A1)), 1);
    h.collect();
    assert_eq!(h.a.agent.state(), IceConnectionState::Failed);
    assert_eq!(h.a.count(|e| *e == IceEvent::Failed), 1);
    assert_eq!(
        h.a.agent.send(Bytes::from_static(b"x")),
        Err(IceError::NotConnected)
    );
}
