//! Two agents on the fake network: pacing, the frozen algorithm, nomination, role
//! conflicts, failure and retransmission.

use std::time::Duration;

use bytes::Bytes;

use crate::pairs::agents::{AgentPair, Side};
use crate::{addr, assert_same_pair, controlled, controlling, is_nominated, simple, MS};
use floe::ice::*;
use floe::stun::attribute::{ErrorCode, IceControlling, UseCandidate, Username};
use floe::stun::{AttributeCodec, Class, Message};

#[test]
fn controlling_nominates_and_both_report_the_same_pair() {
    let mut h = simple(1);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    assert_same_pair(&h);
    let a = h.a.nominated();
    let b = h.b.nominated();
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(a[0].0.addr(), b[0].1.addr());
    assert_eq!(a[0].1.addr(), b[0].0.addr());
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    assert_eq!(h.b.agent.state(), IceConnectionState::Connected);
    assert_eq!(h.a.agent.checklist().state(), ChecklistState::Completed);

    // Regular nomination: only the controlling agent sends USE-CANDIDATE, on one check
    // sent after that pair had already succeeded.
    let a_nominations: Vec<_> =
        h.a.new_checks()
            .into_iter()
            .filter(|(_, m, _)| m.contains(UseCandidate::TYPE))
            .collect();
    assert_eq!(a_nominations.len(), 1);
    assert!(h
        .b
        .requests()
        .iter()
        .all(|(_, _, m, _)| !m.contains(UseCandidate::TYPE)));
    let first_success = h.a.sent.first().map(|(t, _)| *t).unwrap();
    assert!(a_nominations[0].0 > first_success);

    // Data both ways over the selected pair.
    h.a.agent.send(Bytes::from_static(b"ping")).unwrap();
    h.b.agent.send(Bytes::from_static(b"pong")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(h.b.received.last().unwrap().1, Bytes::from_static(b"ping"));
    assert_eq!(h.a.received.last().unwrap().1, Bytes::from_static(b"pong"));
    let sent =
        h.a.sent
            .iter()
            .rev()
            .find(|(_, t)| t.payload[..] == b"ping"[..])
            .unwrap();
    assert_eq!(sent.1.source, addr("10.0.0.1:5000"));
    assert_eq!(sent.1.destination, addr("10.0.0.2:6000"));
}

#[test]
fn time_to_nominated_with_default_ta() {
    let mut times = Vec::new();
    for seed in 0..20 {
        let mut h = simple(100 + seed);
        h.net.latency = Duration::from_micros(100); // loopback-like
        h.start();
        assert!(h.run_until(Duration::from_secs(5), |h| {
            h.a.first(is_nominated).is_some() && h.b.first(is_nominated).is_some()
        }));
        let t =
            h.a.first(is_nominated)
                .unwrap()
                .max(h.b.first(is_nominated).unwrap());
        times.push(t);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "time from start to PairNominated on both sides (host candidates, Ta = 50 ms, 0.1 ms one-way): median {median:?}, min {:?}, max {:?}",
        times[0],
        times[times.len() - 1]
    );
    assert!(median < Duration::from_millis(100), "{median:?}");
}

#[test]
fn checks_are_paced_by_ta_and_never_faster_than_5_ms() {
    for (ta, expect) in [
        (50 * MS, 50 * MS),
        (20 * MS, 20 * MS),
        (MS, 5 * MS),
        (Duration::ZERO, 5 * MS),
    ] {
        let mut ca = controlling();
        ca.ta = ta;
        let mut h = AgentPair::new(ca, controlled(), 7);
        h.a.hosts(&["10.0.0.1:5000", "10.0.1.1:5000", "10.0.2.1:5000"]);
        h.b.hosts(&[
            "10.0.0.2:6000",
            "10.0.1.2:6000",
            "10.0.2.2:6000",
            "10.0.3.2:6000",
        ]);
        h.signal();
        // B never answers: every check is a new transaction on another pair.
        h.drop = Some(Box::new(|_, side, _| side == Side::B));
        h.a.agent.start(h.now);
        h.run_for(Duration::from_secs(3));
        let checks = h.a.new_checks();
        assert_eq!(checks.len(), 12, "one check per pair");
        for w in checks.windows(2) {
            let gap = w[1].0 - w[0].0;
            assert!(gap >= expect, "Ta {ta:?}: checks {gap:?} apart");
        }
        assert_eq!(checks[1].0 - checks[0].0, expect);
        assert_eq!(checks[0].0, Duration::ZERO, "the first check goes at once");
    }
}

#[test]
fn triggered_checks_are_paced_by_ta_and_nomination_checks_by_the_5_ms_floor() {
    let mut h = AgentPair::new(controlling(), controlled(), 8);
    h.net.latency = Duration::from_micros(100);
    h.a.hosts(&["10.0.0.1:5000", "10.0.1.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000", "10.0.1.2:6000"]);
    h.signal();
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    h.run_for(Duration::from_secs(1));
    for p in [&h.a, &h.b] {
        let checks: Vec<_> = p
            .new_checks()
            .into_iter()
            .filter(|(t, _, _)| *t < Duration::from_secs(1))
            .collect();
        for w in checks.windows(2) {
            let gap = w[1].0 - w[0].0;
            if w[1].1.get::<UseCandidate>().is_some() {
                assert!(gap >= 5 * MS, "nomination check {gap:?} after the previous");
            } else {
                assert!(gap >= 50 * MS, "{gap:?}");
            }
        }
    }
    // A's first check succeeded within 0.2 ms: its nomination went at the floor.
    let checks = h.a.new_checks();
    let n = checks
        .iter()
        .position(|(_, m, _)| m.get::<UseCandidate>().is_some())
        .expect("a nomination check");
    assert_eq!(n, 1, "the nomination is A's second check");
    assert_eq!(checks[1].0 - checks[0].0, 5 * MS);
    let nominated = h.a.first(is_nominated).unwrap();
    assert!(nominated < 6 * MS, "{nominated:?}");
    assert_same_pair(&h);
}

fn aggressive() -> IceConfig {
    let mut c = controlling();
    c.nomination = Nomination::Aggressive;
    c
}

#[test]
fn aggressive_nomination_selects_on_the_first_check() {
    for b in [controlled(), aggressive()] {
        // The controlled side's own nomination setting does not matter.
        let mut b = b;
        b.role = IceRole::Controlled;
        let mut h = AgentPair::new(aggressive(), b, 30);
        h.net.latency = Duration::from_micros(100);
        h.a.hosts(&["10.0.0.1:5000"]);
        h.b.hosts(&["10.0.0.2:6000"]);
        h.signal();
        h.start();
        assert!(h.connect(Duration::from_secs(5)));
        let checks = h.a.new_checks();
        assert!(checks
            .iter()
            .all(|(_, m, _)| m.get::<UseCandidate>().is_some()));
        assert_eq!(h.a.first(is_nominated), Some(Duration::from_micros(200)));
        assert!(h.b.first(is_nominated).unwrap() <= Duration::from_micros(200));
        assert_same_pair(&h);
        h.run_for(Duration::from_secs(1));
        assert_eq!(
            h.a.new_checks().len(),
            1,
            "no second check for the nomination"
        );
    }
}

#[test]
fn aggressive_nomination_moves_to_a_higher_priority_pair_that_succeeds_later() {
    let mut h = AgentPair::new(aggressive(), controlled(), 31);
    h.net.latency = Duration::from_micros(100);
    h.a.hosts(&["10.0.0.1:5000", "10.0.1.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000", "10.0.1.2:6000"]);
    h.signal();
    // The best path (first interface) loses everything for its first 300 ms.
    h.drop = Some(Box::new(|t, _, tx| {
        t < 300 * MS && tx.destination.ip().to_string().starts_with("10.0.0.")
    }));
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    let (local, _) = h.a.agent.selected_pair().unwrap();
    assert_eq!(
        local.addr(),
        addr("10.0.1.1:5000"),
        "first selected: the path that works"
    );
    h.run_for(Duration::from_secs(3));
    let (local, _) = h.a.agent.selected_pair().unwrap();
    assert_eq!(
        local.addr(),
        addr("10.0.0.1:5000"),
        "then the higher-priority path"
    );
    assert_same_pair(&h);
    for p in [&h.a, &h.b] {
        let changes = p.count(|e| matches!(e, IceEvent::SelectedPairChanged { .. }));
        assert_eq!(changes, 2);
    }
}

#[test]
fn frozen_algorithm_unfreezes_by_foundation() {
    let mut h = AgentPair::new(controlling(), controlled(), 9);
    h.a.hosts(&["10.0.0.1:5000"]);
    // Three candidates on one IP share a foundation; the fourth has its own.
    h.b.hosts(&[
        "10.0.0.2:6000",
        "10.0.0.2:6001",
        "10.0.0.2:6002",
        "10.0.9.2:6000",
    ]);
    h.signal();
    let foundations = |h: &AgentPair| -> Vec<((String, String), PairState)> {
        h.a.agent
            .checklist()
            .pairs()
            .iter()
            .map(|p| {
                let (l, r) = p.foundation();
                ((l.to_owned(), r.to_owned()), p.state())
            })
            .collect()
    };
    assert!(foundations(&h).iter().all(|(_, s)| *s == PairState::Frozen));
    h.a.agent.start(h.now);
    // The first check went out at once on the highest-priority pair.
    let pairs = foundations(&h);
    assert_eq!(pairs.len(), 4);
    let shared = pairs
        .iter()
        .filter(|(f, _)| pairs.iter().filter(|(g, _)| g == f).count() == 3)
        .map(|(_, s)| *s)
        .collect::<Vec<_>>();
    let single = pairs
        .iter()
        .find(|(f, _)| pairs.iter().filter(|(g, _)| g == f).count() == 1)
        .unwrap()
        .1;
    // Per foundation exactly one pair left Frozen (one In-Progress or Waiting).
    assert_eq!(
        shared.iter().filter(|s| **s == PairState::Frozen).count(),
        2
    );
    assert_ne!(single, PairState::Frozen);

    // Once a pair of the shared foundation succeeds, its Frozen siblings are unfrozen.
    h.b.agent.start(h.now);
    h.run_until(Duration::from_secs(2), |h| {
        h.a.agent
            .checklist()
            .pairs()
            .iter()
            .any(|p| p.state() == PairState::Succeeded)
    });
    let succeeded: Vec<_> =
        h.a.agent
            .checklist()
            .pairs()
            .iter()
            .filter(|p| p.state() == PairState::Succeeded)
            .map(|p| p.foundation().1.to_owned())
            .collect();
    assert!(!succeeded.is_empty());
    for p in h.a.agent.checklist().pairs() {
        if succeeded.contains(&p.foundation().1.to_owned()) {
            assert_ne!(
                p.state(),
                PairState::Frozen,
                "{:?} still frozen",
                p.remote_addr()
            );
        }
    }
}

#[test]
fn frozen_pairs_are_checked_when_nothing_is_waiting() {
    // Every pair shares one foundation and nobody answers: the pairs are checked one
    // after another as each earlier one fails (RFC 8445 §6.1.4.2).
    let mut ca = controlling();
    ca.check_transaction.rc = 1;
    ca.check_transaction.rm = 1;
    let mut h = AgentPair::new(ca, controlled(), 10);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000", "10.0.0.2:6001", "10.0.0.2:6002"]);
    h.signal();
    h.drop = Some(Box::new(|_, _, _| true));
    h.a.agent.start(h.now);
    h.run_for(Duration::from_secs(5));
    let checks = h.a.new_checks();
    assert_eq!(checks.len(), 3);
    // Each next check waits for the previous pair to fail (500 ms), not just Ta.
    assert!(checks[1].0 - checks[0].0 >= 500 * MS);
    assert!(h.a.first(|e| *e == IceEvent::Failed).is_some());
}

fn role_conflict(role: IceRole, seeds: std::ops::Range<u64>) -> (usize, usize) {
    let (mut saw_487, mut switched_on_request) = (0, 0);
    for seed in seeds {
        let config = IceConfig::new(role);
        let mut h = AgentPair::new(config.clone(), config, seed);
        h.a.hosts(&["10.0.0.1:5000"]);
        h.b.hosts(&["10.0.0.2:6000"]);
        h.signal();
        // A checks first, so that B's answer to A's first check resolves the conflict.
        h.a.agent.start(h.now);
        h.run_for(Duration::from_millis(100));
        let now = h.now;
        h.b.agent.start(now);
        assert!(
            h.connect(Duration::from_secs(5) - h.elapsed()),
            "seed {seed}"
        );
        assert_same_pair(&h);
        let (ta, tb) = (h.a.agent.tie_breaker(), h.b.agent.tie_breaker());
        // RFC 8445 §7.3.1.1: the larger tie-breaker ends up controlling.
        let (winner, loser) = if ta > tb { (&h.a, &h.b) } else { (&h.b, &h.a) };
        assert_eq!(winner.agent.role(), IceRole::Controlling, "seed {seed}");
        assert_eq!(loser.agent.role(), IceRole::Controlled, "seed {seed}");
        let role_changes = h.a.count(|e| matches!(e, IceEvent::RoleChanged(_)))
            + h.b.count(|e| matches!(e, IceEvent::RoleChanged(_)));
        assert_eq!(role_changes, 1, "seed {seed}: exactly one agent switches");
        let errors_487 = [&h.a, &h.b]
            .iter()
            .flat_map(|p| p.sent.iter())
            .filter_map(|(_, t)| Message::decode(t.payload.clone()).ok())
            .filter(|m| m.class() == Class::Error)
            .filter(|m| m.get::<ErrorCode>().unwrap().unwrap().code == 487)
            .count();
        if errors_487 > 0 {
            saw_487 += 1;
        } else {
            switched_on_request += 1;
        }
        assert_eq!(h.a.nominated().len(), 1);
        assert_eq!(h.b.nominated().len(), 1);
    }
    (saw_487, switched_on_request)
}

#[test]
fn role_conflict_both_controlling_is_resolved() {
    let (by_487, by_switch) = role_conflict(IceRole::Controlling, 0..16);
    // Both ways of RFC 8445 §7.3.1.1 happen: the receiver answers 487 (and the sender
    // switches, §7.2.5.1), or the receiver switches itself.
    assert!(by_487 > 0 && by_switch > 0, "{by_487} {by_switch}");
}

#[test]
fn role_conflict_both_controlled_is_resolved() {
    let (by_487, by_switch) = role_conflict(IceRole::Controlled, 0..16);
    assert!(by_487 > 0 && by_switch > 0, "{by_487} {by_switch}");
}

#[test]
fn unreachable_remote_fails_after_retransmissions() {
    let mut h = simple(11);
    h.drop = Some(Box::new(|_, _, _| true));
    h.a.agent.start(h.now);
    h.run_for(Duration::from_secs(20));
    let sends: Vec<Duration> = h.a.requests().iter().map(|(t, _, _, _)| *t).collect();
    // Rc = 5 sends at 0, 0.5, 1.5, 3.5, 7.5 s; the pair fails 8 RTOs later, at 11.5 s.
    let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [0, 500, 1500, 3500, 7500]);
    let failed_pair =
        h.a.first(|e| matches!(e, IceEvent::PairFailed { .. }))
            .unwrap();
    assert_eq!(failed_pair, Duration::from_millis(11_500));
    assert_eq!(
        h.a.first(|e| *e == IceEvent::Failed),
        Some(Duration::from_millis(11_500))
    );
    assert_eq!(h.a.agent.state(), IceConnectionState::Failed);
    assert_eq!(
        h.a.agent.send(Bytes::from_static(b"x")),
        Err(IceError::NotConnected)
    );
    // Nothing more is sent after failure.
    assert_eq!(h.a.requests().len(), 5);
}

#[test]
fn without_end_of_candidates_the_connect_timeout_fails_it() {
    let mut h = AgentPair::new(controlling(), controlled(), 12);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.give_credentials(Side::B, Side::A);
    h.give_candidates(Side::B, Side::A); // trickle: more may come, no end-of-candidates
    h.drop = Some(Box::new(|_, _, _| true));
    h.a.agent.start(h.now);
    h.run_for(Duration::from_secs(40));
    assert!(
        h.a.first(|e| matches!(e, IceEvent::PairFailed { .. }))
            .unwrap()
            < Duration::from_secs(12)
    );
    assert_eq!(
        h.a.first(|e| *e == IceEvent::Failed),
        Some(Duration::from_secs(30))
    );
}

#[test]
fn asymmetric_response_fails_the_pair() {
    let mut h = simple(22);
    // B's responses come back from another port (RFC 8445 §7.2.5.2.1).
    h.rewrite = Some(Box::new(|side, t| {
        if side == Side::B
            && Message::decode(t.payload.clone()).is_ok_and(|m| m.class() == Class::Success)
        {
            t.source = addr("10.0.0.2:6001");
        }
    }));
    h.a.agent.start(h.now);
    h.run_for(Duration::from_secs(1));
    assert!(h
        .a
        .first(|e| matches!(e, IceEvent::PairFailed { .. }))
        .is_some());
    // Failure is immediate, with both end-of-candidates.
    assert_eq!(
        h.a.first(|e| *e == IceEvent::Failed),
        h.a.first(|e| matches!(e, IceEvent::PairFailed { .. }))
    );
}

#[test]
fn lost_checks_are_retransmitted_and_still_connect() {
    let mut h = simple(23);
    // Drop everything in the first 1.2 s.
    h.drop = Some(Box::new(|t, _, _| t < Duration::from_millis(1200)));
    h.start();
    assert!(h.connect(Duration::from_secs(10)));
    assert_same_pair(&h);
    let t = h.a.first(is_nominated).unwrap();
    assert!(
        t >= Duration::from_millis(1200) && t < Duration::from_secs(3),
        "{t:?}"
    );
}

#[test]
fn latency_and_loss_with_several_interfaces() {
    use rand::{Rng, SeedableRng};
    for seed in 0..10 {
        let mut h = AgentPair::new(controlling(), controlled(), 200 + seed);
        h.a.hosts(&["10.0.0.1:5000", "10.0.1.1:5000", "[fd00::1]:5000"]);
        h.b.hosts(&["10.0.0.2:6000", "[fd00::2]:6000"]);
        h.signal();
        h.net.latency = 30 * MS;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        h.drop = Some(Box::new(move |_, _, _| rng.gen_bool(0.2)));
        h.start();
        assert!(h.connect(Duration::from_secs(20)), "seed {seed}");
        assert_same_pair(&h);
        // IPv4 and IPv6 candidates never pair with each other.
        for p in h.a.agent.checklist().pairs() {
            assert_eq!(p.local_addr().is_ipv4(), p.remote_addr().is_ipv4());
        }
    }
}

#[test]
fn pair_count_is_limited() {
    let mut config = controlling();
    config.max_pairs = 100;
    let mut h = AgentPair::new(config, controlled(), 24);
    let a: Vec<String> = (0..11).map(|i| format!("10.0.{i}.1:5000")).collect();
    let b: Vec<String> = (0..11).map(|i| format!("10.1.{i}.2:6000")).collect();
    h.a.hosts(&a.iter().map(String::as_str).collect::<Vec<_>>());
    h.b.hosts(&b.iter().map(String::as_str).collect::<Vec<_>>());
    h.signal();
    let pairs = h.a.agent.checklist().pairs();
    assert_eq!(pairs.len(), 100);
    assert!(pairs.windows(2).all(|w| w[0].priority() >= w[1].priority()));
}

#[test]
fn checks_carry_what_aioice_expects() {
    let mut h = simple(25);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    let (a_ufrag, _) = h.a.agent.local_credentials();
    let (b_ufrag, _) = h.b.agent.local_credentials();
    for (_, _, m, _) in h.a.requests() {
        // aioice checks USERNAME as "its ufrag:our ufrag" and needs MESSAGE-INTEGRITY.
        assert_eq!(
            m.get::<Username>().unwrap().unwrap().as_str(),
            format!("{b_ufrag}:{a_ufrag}")
        );
        assert!(m.has_integrity() && m.has_fingerprint());
        assert!(m.get::<floe::stun::attribute::Priority>().is_some());
        assert!(m.get::<IceControlling>().is_some());
    }
    for (_, t) in &h.b.sent {
        let m = Message::decode(t.payload.clone()).unwrap();
        if m.class() == Class::Success {
            assert!(m.has_integrity() && m.has_fingerprint());
            assert!(m.get::<floe::stun::attribute::XorMappedAddress>().is_some());
        }
    }
}
