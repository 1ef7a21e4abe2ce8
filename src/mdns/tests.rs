use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn drain(m: &mut Mdns) -> Vec<MdnsTransmit> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

/// Delivers everything `from` sends (its socket on `from_addr`) to `to`.
fn deliver(from: &mut Mdns, from_addr: SocketAddr, to: &mut Mdns, now: Instant) {
    for t in drain(from) {
        assert_eq!(t.destination, MDNS_V4);
        to.handle_input(now, from_addr, &t.payload).unwrap();
    }
}

#[test]
fn names_are_version_4_uuids_under_local_one_per_address() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut m = Mdns::new();
    let a = m.register(ip("192.0.2.1"), &mut rng);
    assert_eq!(m.register(ip("192.0.2.1"), &mut rng), a);
    let b = m.register(ip("192.0.2.2"), &mut rng);
    assert_ne!(a, b);
    let uuid = a.strip_suffix(".local").unwrap();
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12]);
    assert_eq!(&uuid[14..15], "4", "version 4");
    assert!("89ab".contains(&uuid[19..20]), "RFC 4122 variant");
    assert!(is_mdns_name(&a));
    assert_eq!(m.own_address(&a.to_uppercase()), Some(ip("192.0.2.1")));
}

#[test]
fn a_resolver_learns_a_responders_name_and_fails_on_silence() {
    let mut rng = StdRng::seed_from_u64(2);
    let (mut responder, mut resolver) = (Mdns::new(), Mdns::new());
    let name = responder.register(ip("192.0.2.9"), &mut rng);
    drain(&mut responder); // the announcement
    let now = Instant::now();
    let from = SocketAddr::from(([192, 0, 2, 1], 5353));
    resolver.resolve(now, &name.to_uppercase()).unwrap();
    deliver(&mut resolver, from, &mut responder, now);
    deliver(&mut responder, from, &mut resolver, now);
    assert_eq!(
        resolver.poll_event(),
        Some(MdnsEvent::Resolved {
            name: name.clone(),
            ip: ip("192.0.2.9")
        })
    );
    // A second resolve is answered from the cache, with no query.
    resolver.resolve(now, &name).unwrap();
    assert!(drain(&mut resolver).is_empty());
    assert!(matches!(
        resolver.poll_event(),
        Some(MdnsEvent::Resolved { .. })
    ));

    // Nobody answers: three queries (RFC 6762 §5.2 spacing), then Failed.
    let missing = "00000000-0000-4000-8000-000000000000.local";
    resolver.resolve(now, missing).unwrap();
    let mut t = now;
    let mut queries = drain(&mut resolver).len();
    while let Some(next) = resolver.poll_timeout() {
        assert!(next > t);
        t = next;
        resolver.handle_timeout(t);
        queries += drain(&mut resolver).len();
    }
    assert_eq!(queries, 3);
    assert!(t - now >= Duration::from_secs(5));
    assert_eq!(
        resolver.poll_event(),
        Some(MdnsEvent::Failed {
            name: missing.into()
        })
    );
}

#[test]
fn legacy_unicast_queriers_get_their_id_back_and_others_are_ignored() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut m = Mdns::new();
    let name = m.register(ip("192.0.2.3"), &mut rng);
    drain(&mut m);
    let query = DnsMessage {
        id: 0x1234,
        questions: vec![Question {
            name: name.clone(),
            qtype: TYPE_A,
            unicast_response: false,
        }],
        ..DnsMessage::default()
    };
    let querier = SocketAddr::from(([192, 0, 2, 50], 40000));
    m.handle_input(Instant::now(), querier, &query.encode().unwrap())
        .unwrap();
    let t = drain(&mut m);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].destination, querier);
    let reply = DnsMessage::decode(&t[0].payload).unwrap();
    assert_eq!((reply.id, reply.response), (0x1234, true));
    assert_eq!(reply.answers[0].ip, ip("192.0.2.3"));

    // An AAAA question for an IPv4 name, and a name we do not have: no answer.
    for (n, qtype) in [(name.as_str(), TYPE_AAAA), ("other.local", TYPE_A)] {
        let q = DnsMessage {
            questions: vec![Question {
                name: n.into(),
                qtype,
                unicast_response: false,
            }],
            ..DnsMessage::default()
        };
        m.handle_input(Instant::now(), querier, &q.encode().unwrap())
            .unwrap();
        assert!(drain(&mut m).is_empty());
    }
}

#[test]
fn compressed_names_and_other_record_types_are_read() {
    // A response as Avahi writes it: a TXT record first, then an A record whose name is
    // a pointer to the first name.
    let mut b = vec![0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
    b.extend_from_slice(b"\x04host\x05local\x00");
    b.extend_from_slice(&[0, 16, 0x80, 1, 0, 0, 0, 120, 0, 1, 0]);
    b.extend_from_slice(&[0xC0, 12, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 10, 1, 2, 3]);
    let m = DnsMessage::decode(&b).unwrap();
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].name, "host.local");
    assert_eq!(m.answers[0].ip, ip("10.1.2.3"));
}

#[test]
fn malformed_messages_are_errors() {
    let looped = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1];
    assert!(DnsMessage::decode(&looped).is_err(), "a pointer to itself");
    assert!(DnsMessage::decode(&[0; 11]).is_err(), "short header");
    let bad_len = [
        0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3,
    ];
    assert!(
        DnsMessage::decode(&bad_len).is_err(),
        "an A record of 3 bytes"
    );
    assert!(Mdns::new().resolve(Instant::now(), "example.com").is_err());
}

#[test]
fn pending_names_are_bounded() {
    let mut m = Mdns::new();
    let now = Instant::now();
    for i in 0..MAX_PENDING {
        m.resolve(now, &format!("n{i}.local")).unwrap();
    }
    assert_eq!(
        m.resolve(now, "one-more.local"),
        Err(MdnsError::TooManyPending)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any datagram: an error or a message, never a panic; and the responder answers
    /// only with messages that decode.
    #[test]
    fn any_datagram_is_safe(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = DnsMessage::decode(&data);
        let mut m = Mdns::new();
        let mut rng = StdRng::seed_from_u64(4);
        m.register(ip("192.0.2.1"), &mut rng);
        let _ = m.handle_input(Instant::now(), SocketAddr::from(([192, 0, 2, 2], 5353)), &data);
        while let Some(t) = m.poll_transmit() {
            prop_assert!(DnsMessage::decode(&t.payload).is_ok());
        }
    }

    /// What is encoded decodes to the same message.
    #[test]
    fn encode_decode_round_trip(
        id in any::<u16>(),
        labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..4),
        v4 in any::<[u8; 4]>(),
        ttl in any::<u32>(),
    ) {
        let name = format!("{}.local", labels.join("."));
        let m = DnsMessage {
            id,
            response: true,
            questions: vec![Question { name: name.clone(), qtype: TYPE_A, unicast_response: true }],
            answers: vec![Answer { name, ip: IpAddr::from(v4), ttl }],
        };
        prop_assert_eq!(DnsMessage::decode(&m.encode().unwrap()).unwrap(), m);
    }
}
