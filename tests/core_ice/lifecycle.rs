//! Two agents over the in-memory network once connected: consent freshness (RFC 7675),
//! keepalives (RFC 8445 §11) and ICE restart (RFC 8445 §9).

use std::time::Duration;

use bytes::Bytes;

use crate::pairs::agents::{AgentPair, Side};
use crate::{addr, assert_same_pair, controlled, controlling, simple, MS};
use floe::ice::*;
use floe::stun::attribute::Username;
use floe::stun::{Class, Message};

#[test]
fn consent_is_lost_30_s_after_the_last_response() {
    let mut h = simple(13);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    h.run_for(Duration::from_secs(12));
    let cut = h.elapsed();
    // Consent checks were answered until now.
    let last_answer =
        h.a.sent
            .iter()
            .chain(h.b.sent.iter())
            .filter_map(|(t, tx)| Message::decode(tx.payload.clone()).ok().map(|m| (*t, m)))
            .filter(|(_, m)| m.class() == Class::Success)
            .map(|(t, _)| t)
            .max()
            .unwrap();
    h.drop = Some(Box::new(|_, _, _| true));
    h.run_for(Duration::from_secs(40));
    for p in [&h.a, &h.b] {
        let disconnected = p.first(|e| *e == IceEvent::Disconnected).unwrap();
        let lost = p
            .first(|e| matches!(e, IceEvent::ConsentLost { .. }))
            .unwrap();
        let failed = p.first(|e| *e == IceEvent::Failed).unwrap();
        assert!(
            disconnected > cut && disconnected < lost,
            "{disconnected:?} {lost:?}"
        );
        // RFC 7675 §5.1: 30 s after the last authenticated response.
        assert!(lost >= cut + Duration::from_secs(24), "{lost:?}");
        assert!(
            lost <= last_answer + Duration::from_secs(30) + 2 * MS,
            "{lost:?} {last_answer:?}"
        );
        assert_eq!(failed, lost);
    }
    assert_eq!(
        h.a.agent.send(Bytes::from_static(b"x")),
        Err(IceError::ConsentLost)
    );
    assert_eq!(h.a.agent.state(), IceConnectionState::Failed);
}

#[test]
fn consent_checks_keep_the_pair_alive_every_5_s_with_jitter() {
    let mut h = simple(14);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    let connected = h.elapsed();
    h.run_for(Duration::from_secs(120));
    assert_eq!(h.a.count(|e| *e == IceEvent::Disconnected), 0);
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    let consent: Vec<Duration> =
        h.a.new_checks()
            .into_iter()
            .map(|(t, _, _)| t)
            .filter(|t| *t > connected)
            .collect();
    assert!(consent.len() >= 20, "{}", consent.len());
    let gaps: Vec<Duration> = consent.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps
        .iter()
        .all(|g| *g >= 4 * Duration::from_secs(1) && *g <= 6 * Duration::from_secs(1)));
    assert!(gaps.iter().any(|g| *g != gaps[0]), "jittered");
    // Consent checks count as keepalives: no Binding indications.
    let indications =
        h.a.sent
            .iter()
            .filter_map(|(_, t)| Message::decode(t.payload.clone()).ok())
            .filter(|m| m.class() == Class::Indication)
            .count();
    assert_eq!(indications, 0);
}

#[test]
fn keepalives_without_consent_checks() {
    let mut ca = controlling();
    ca.consent_interval = None;
    let mut h = AgentPair::new(ca, controlled(), 15);
    h.a.hosts(&["10.0.0.1:5000"]);
    h.b.hosts(&["10.0.0.2:6000"]);
    h.signal();
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    h.run_for(Duration::from_secs(61));
    let indications: Vec<Duration> =
        h.a.sent
            .iter()
            .filter(|(_, t)| {
                Message::decode(t.payload.clone()).is_ok_and(|m| m.class() == Class::Indication)
            })
            .map(|(t, _)| *t)
            .collect();
    assert_eq!(indications.len(), 4, "{indications:?}");
    assert!(h
        .a
        .sent
        .iter()
        .all(|(_, t)| t.destination == addr("10.0.0.2:6000")));
}

#[test]
fn restart_keeps_data_on_the_old_pair_until_a_new_one_is_selected() {
    let mut h = simple(16);
    h.start();
    assert!(h.connect(Duration::from_secs(5)));
    let old_a = h.a.agent.local_credentials().0.to_owned();
    let old_b = h.b.agent.local_credentials().0.to_owned();
    let connected_events = h.a.count(|e| *e == IceEvent::Connected);

    let now = h.now;
    let new_a = h.a.agent.restart(now);
    let new_b = h.b.agent.restart(now);
    assert_ne!(new_a.ufrag, old_a);
    assert_ne!(new_b.ufrag, old_b);
    // restart() returns the credentials the agent now signals and checks with.
    assert_eq!(h.a.agent.local_credentials(), (&*new_a.ufrag, &*new_a.pwd));
    assert_eq!(h.b.agent.local_credentials(), (&*new_b.ufrag, &*new_b.pwd));
    // Only the credentials are signalled for now: the new checklists cannot select.
    h.give_credentials(Side::A, Side::B);
    h.give_credentials(Side::B, Side::A);
    h.run_for(Duration::from_secs(1));
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
    h.a.agent
        .send(Bytes::from_static(b"during restart"))
        .unwrap();
    h.b.agent.send(Bytes::from_static(b"back")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(
        h.b.received.last().unwrap().1,
        Bytes::from_static(b"during restart")
    );
    assert_eq!(h.a.received.last().unwrap().1, Bytes::from_static(b"back"));

    // Consent on the old pair goes on meanwhile.
    h.run_for(Duration::from_secs(20));
    assert_eq!(h.a.count(|e| *e == IceEvent::Disconnected), 0);
    h.a.agent.send(Bytes::from_static(b"still old")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(
        h.b.received.last().unwrap().1,
        Bytes::from_static(b"still old")
    );

    // Now the candidates: the new checklist selects, and data follows it.
    h.give_candidates(Side::A, Side::B);
    h.give_candidates(Side::B, Side::A);
    assert!(h.run_until(Duration::from_secs(30) - h.elapsed(), |h| {
        h.a.count(|e| *e == IceEvent::Connected) > connected_events
            && h.b.count(|e| *e == IceEvent::Connected) > connected_events
    }));
    assert_same_pair(&h);
    assert_eq!(
        h.a.count(|e| matches!(e, IceEvent::SelectedPairChanged { .. })),
        2
    );
    // The new checks use the new credentials.
    let last_check = h.a.requests().last().unwrap().2.clone();
    let username = last_check.get::<Username>().unwrap().unwrap();
    assert!(username.as_str().ends_with(h.a.agent.local_credentials().0));
    h.a.agent.send(Bytes::from_static(b"new pair")).unwrap();
    h.run_for(10 * MS);
    assert_eq!(
        h.b.received.last().unwrap().1,
        Bytes::from_static(b"new pair")
    );
    h.run_for(Duration::from_secs(40));
    assert_eq!(h.a.agent.state(), IceConnectionState::Connected);
}
