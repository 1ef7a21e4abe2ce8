//! The routing rules of [`Demux`]: USERNAME parsing, the tables, their bounds and
//! eviction; and a proptest of random operations and datagrams.

use std::collections::HashSet;
use std::net::SocketAddr;

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::stun::attribute::{Priority, Username};
use crate::stun::{Class, MessageEncoder, MessageType, Method, TransactionId};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A connectivity check as RFC 8445 §7.2.2 builds it: USERNAME `to:from`, PRIORITY,
/// MESSAGE-INTEGRITY, FINGERPRINT.
fn check(username: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    let typ = MessageType::new(Method::BINDING, Class::Request);
    let mut m = MessageEncoder::new(&mut out, typ, TransactionId([9; 12]));
    m.add(&Username::new(username))
        .add(&Priority(1))
        .message_integrity(b"0123456789abcdefABCDEF")
        .fingerprint();
    m.finish().unwrap();
    out.to_vec()
}

fn binding(class: Class) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut m = MessageEncoder::new(
        &mut out,
        MessageType::new(Method::BINDING, class),
        TransactionId([1; 12]),
    );
    m.add(&Username::new("abcd:efgh")).fingerprint();
    m.finish().unwrap();
    out.to_vec()
}

#[test]
fn the_recipient_ufrag_is_before_the_colon() {
    assert_eq!(binding_request_ufrag(&check("abcd:wxyz")), Ok("abcd"));
    assert_eq!(binding_request_ufrag(&check("8hhY+/x9:a")), Ok("8hhY+/x9"));
    // A colon in the sender's part is the sender's business.
    assert_eq!(binding_request_ufrag(&check("abcd:e:f")), Ok("abcd"));
}

#[test]
fn malformed_usernames_are_rejected() {
    for u in [
        "abcd",
        ":abcd",
        "abc:defg",
        "ab-d:efgh",
        "ab d:efgh",
        "abcdé:x",
    ] {
        assert_eq!(
            binding_request_ufrag(&check(u)),
            Err(Malformed::BadUsername),
            "{u}"
        );
    }
    let long = format!("{}:x", "a".repeat(257));
    assert_eq!(
        binding_request_ufrag(&check(&long)),
        Err(Malformed::BadUsername)
    );
}

#[test]
fn only_well_formed_binding_requests_are_read() {
    assert_eq!(binding_request_ufrag(b""), Err(Malformed::NotStun));
    assert_eq!(binding_request_ufrag(&[0u8; 19]), Err(Malformed::NotStun));
    assert_eq!(
        binding_request_ufrag(b"\x80hello rtp"),
        Err(Malformed::NotStun)
    );
    assert_eq!(
        binding_request_ufrag(&binding(Class::Success)),
        Err(Malformed::NotBindingRequest)
    );
    assert_eq!(
        binding_request_ufrag(&binding(Class::Indication)),
        Err(Malformed::NotBindingRequest)
    );
    assert_eq!(binding_request_ufrag(&binding(Class::Request)), Ok("abcd"));

    let good = check("abcd:efgh");
    // Trailing bytes, a truncated datagram.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 4]);
    assert_eq!(
        binding_request_ufrag(&longer),
        Err(Malformed::LengthMismatch)
    );
    assert_eq!(
        binding_request_ufrag(&good[..good.len() - 4]),
        Err(Malformed::LengthMismatch)
    );
    // An attribute that claims more than the message holds.
    let mut overrun = good.clone();
    overrun[22..24].copy_from_slice(&400u16.to_be_bytes());
    assert_eq!(
        binding_request_ufrag(&overrun),
        Err(Malformed::AttributeOverrun)
    );
    // A flipped bit breaks FINGERPRINT.
    let mut flipped = good.clone();
    flipped[25] ^= 1;
    assert_eq!(
        binding_request_ufrag(&flipped),
        Err(Malformed::BadFingerprint)
    );
    // No USERNAME.
    let mut out = BytesMut::new();
    let mut m = MessageEncoder::new(
        &mut out,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([1; 12]),
    );
    m.add(&Priority(1)).fingerprint();
    m.finish().unwrap();
    assert_eq!(binding_request_ufrag(&out), Err(Malformed::NoUsername));
}

#[test]
fn checks_route_by_ufrag_then_by_address() {
    let mut d = Demux::new(DemuxConfig::default());
    d.register(1, &["aaaa"]).unwrap();
    d.register(2, &["bbbb", "bbb2"]).unwrap();
    let (p1, p2) = (addr("127.0.0.1:4001"), addr("127.0.0.1:4002"));
    // Data from an unknown address is dropped.
    assert_eq!(
        d.route(p1, b"\x80data"),
        Err(Dropped::Malformed(Malformed::NotStun))
    );
    assert_eq!(d.route(p1, &check("aaaa:zzzz")), Ok((1, RouteBy::Ufrag)));
    assert_eq!(d.route(p2, &check("bbb2:zzzz")), Ok((2, RouteBy::Ufrag)));
    // The addresses are learnt: data follows them.
    assert_eq!(d.route(p1, b"\x80data"), Ok((1, RouteBy::Address)));
    assert_eq!(d.route(p2, b"\x80data"), Ok((2, RouteBy::Address)));
    // An address stays with its agent, whatever ufrag a later check names.
    assert_eq!(d.route(p1, &check("bbbb:zzzz")), Ok((1, RouteBy::Address)));
    assert_eq!(
        d.route(addr("127.0.0.1:4003"), &check("cccc:zzzz")),
        Err(Dropped::UnknownUfrag)
    );
    let s = d.stats();
    assert_eq!((s.agents, s.addresses), (2, 2));
    assert_eq!((s.routed_by_ufrag, s.routed_by_address), (2, 3));
    assert_eq!((s.dropped_malformed, s.dropped_unknown_ufrag), (1, 1));
}

#[test]
fn responses_follow_the_address_an_agent_sent_to() {
    let mut d = Demux::new(DemuxConfig::default());
    d.register(7, &["aaaa"]).unwrap();
    let server = addr("[::1]:3478");
    assert!(d.route(server, &binding(Class::Success)).is_err());
    assert!(d.learn(7, server));
    assert_eq!(
        d.route(server, &binding(Class::Success)),
        Ok((7, RouteBy::Address))
    );
    // An unregistered agent learns nothing; a taken address stays taken.
    assert!(!d.learn(8, addr("[::1]:1")));
    d.register(8, &["bbbb"]).unwrap();
    assert!(!d.learn(8, server));
    assert_eq!(d.agent_of_address(server), Some(7));
}

#[test]
fn unregister_forgets_the_agents_ufrags_and_addresses() {
    let mut d = Demux::new(DemuxConfig::default());
    d.register(1, &["aaaa"]).unwrap();
    d.register(2, &["bbbb"]).unwrap();
    d.learn(1, addr("127.0.0.1:1"));
    d.learn(1, addr("127.0.0.1:2"));
    d.learn(2, addr("127.0.0.1:3"));
    assert!(d.unregister(1));
    assert!(!d.unregister(1));
    assert_eq!(d.agent_of_ufrag("aaaa"), None);
    assert_eq!(d.agent_of_address(addr("127.0.0.1:1")), None);
    assert!(d.addresses_of(1).is_empty());
    assert_eq!(d.stats().addresses, 1);
    assert_eq!(
        d.route(addr("127.0.0.1:1"), &check("aaaa:x1x1")),
        Err(Dropped::UnknownUfrag)
    );
    // The ufrag is free again.
    d.register(3, &["aaaa"]).unwrap();
}

#[test]
fn a_restart_replaces_the_ufrags_and_keeps_the_addresses() {
    let mut d = Demux::new(DemuxConfig::default());
    d.register(1, &["old1"]).unwrap();
    let peer = addr("127.0.0.1:9");
    assert!(d.route(peer, &check("old1:peer")).is_ok());
    d.set_ufrags(1, &["new1"]).unwrap();
    assert_eq!(d.agent_of_ufrag("old1"), None);
    assert_eq!(d.agent_of_ufrag("new1"), Some(1));
    assert_eq!(d.ufrags_of(1).collect::<Vec<_>>(), ["new1"]);
    // The old selected pair keeps carrying data (RFC 8445 §9).
    assert_eq!(d.route(peer, b"\x80rtp"), Ok((1, RouteBy::Address)));
    assert_eq!(
        d.route(addr("127.0.0.1:10"), &check("old1:peer")),
        Err(Dropped::UnknownUfrag)
    );
    assert_eq!(d.set_ufrags(2, &["x2x2"]), Err(DemuxError::NotRegistered));
}

#[test]
fn registration_is_bounded_and_checked() {
    let config = DemuxConfig {
        max_agents: 2,
        max_ufrags_per_agent: 2,
        max_addresses_per_agent: 2,
    };
    let mut d = Demux::new(config);
    d.register(1, &["aaaa"]).unwrap();
    assert_eq!(d.register(1, &["a2a2"]), Err(DemuxError::AlreadyRegistered));
    assert_eq!(
        d.register(2, &["aaaa"]),
        Err(DemuxError::UfragInUse("aaaa".into()))
    );
    assert_eq!(
        d.register(2, &["b:bb"]),
        Err(DemuxError::BadUfrag("b:bb".into()))
    );
    assert_eq!(
        d.register(2, &["bbbb", "b2b2", "b3b3"]),
        Err(DemuxError::TooManyUfrags(2))
    );
    d.register(2, &["bbbb", "b2b2"]).unwrap();
    assert_eq!(d.register(3, &["cccc"]), Err(DemuxError::TooManyAgents(2)));
    assert_eq!(
        d.set_ufrags(1, &["bbbb"]),
        Err(DemuxError::UfragInUse("bbbb".into()))
    );
    // A failed call changes nothing.
    assert_eq!(d.agent_of_ufrag("aaaa"), Some(1));
    assert_eq!(d.stats().agents, 2);
}

#[test]
fn the_least_recently_used_address_makes_room() {
    let config = DemuxConfig {
        max_addresses_per_agent: 2,
        ..DemuxConfig::default()
    };
    let mut d = Demux::new(config);
    d.register(1, &["aaaa"]).unwrap();
    let (a, b, c) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"), addr("10.0.0.3:1"));
    d.route(a, &check("aaaa:x1x1")).unwrap();
    d.route(b, &check("aaaa:x1x1")).unwrap();
    // `a` carries data, so `b` is the least recently used.
    d.route(a, b"\x80rtp").unwrap();
    d.route(c, &check("aaaa:x1x1")).unwrap();
    assert_eq!(d.agent_of_address(a), Some(1));
    assert_eq!(d.agent_of_address(b), None);
    assert_eq!(d.agent_of_address(c), Some(1));
    assert_eq!(d.stats().evicted_addresses, 1);
    assert_eq!(d.addresses_of(1).len(), 2);
}

#[derive(Debug, Clone)]
enum Op {
    Register(u8, Vec<u8>),
    SetUfrags(u8, Vec<u8>),
    Unregister(u8),
    Learn(u8, u8),
    Check(u8, u8),
    Junk(u8, Vec<u8>),
    Mutated(u8, u8, usize, u8),
}

fn ufrag(n: u8) -> String {
    format!("uf{:02}", n % 12)
}

fn remote(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1000 + u16::from(n % 40)))
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..8;
    prop_oneof![
        (id.clone(), proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(a, u)| Op::Register(a, u)),
        (id.clone(), proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(a, u)| Op::SetUfrags(a, u)),
        id.clone().prop_map(Op::Unregister),
        (id.clone(), any::<u8>()).prop_map(|(a, r)| Op::Learn(a, r)),
        (any::<u8>(), any::<u8>()).prop_map(|(u, r)| Op::Check(u, r)),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(r, b)| Op::Junk(r, b)),
        (any::<u8>(), any::<u8>(), any::<usize>(), any::<u8>())
            .prop_map(|(u, r, i, b)| Op::Mutated(u, r, i, b)),
    ]
}

/// The tables agree with each other and stay within their bounds.
fn assert_consistent(d: &Demux<u8>) {
    let c = d.config();
    let s = d.stats();
    assert!(s.agents <= c.max_agents);
    assert!(s.addresses <= c.max_agents * c.max_addresses_per_agent);
    let mut total = 0;
    for (agent, entry) in &d.agents {
        assert!(entry.ufrags.len() <= c.max_ufrags_per_agent);
        assert!(entry.addresses.len() <= c.max_addresses_per_agent);
        for u in &entry.ufrags {
            assert_eq!(d.by_ufrag.get(u), Some(agent));
        }
        for a in &entry.addresses {
            assert_eq!(d.by_address.get(a).map(|e| e.0), Some(*agent));
        }
        total += entry.addresses.len();
    }
    assert_eq!(total, d.by_address.len());
    for owner in d.by_ufrag.values() {
        assert!(d.agents.contains_key(owner));
    }
}

proptest! {
    #[test]
    fn the_tables_stay_bounded_and_consistent(ops in proptest::collection::vec(op(), 1..120)) {
        let config = DemuxConfig { max_agents: 5, max_ufrags_per_agent: 2, max_addresses_per_agent: 3 };
        let mut d: Demux<u8> = Demux::new(config);
        for op in ops {
            match op {
                Op::Register(a, us) => {
                    let us: Vec<String> = us.into_iter().map(ufrag).collect();
                    let refs: Vec<&str> = us.iter().map(String::as_str).collect();
                    let unique = refs.iter().collect::<HashSet<_>>().len() == refs.len();
                    let ok = d.register(a, &refs).is_ok();
                    if ok && unique {
                        for u in &refs {
                            prop_assert_eq!(d.agent_of_ufrag(u), Some(a));
                        }
                    }
                }
                Op::SetUfrags(a, us) => {
                    let us: Vec<String> = us.into_iter().map(ufrag).collect();
                    let refs: Vec<&str> = us.iter().map(String::as_str).collect();
                    let before = d.addresses_of(a).to_vec();
                    if d.set_ufrags(a, &refs).is_ok() {
                        prop_assert_eq!(d.addresses_of(a), &before[..]);
                    }
                }
                Op::Unregister(a) => {
                    d.unregister(a);
                    prop_assert!(!d.is_registered(a));
                    prop_assert!(d.addresses_of(a).is_empty());
                    prop_assert!(!d.by_address.values().any(|e| e.0 == a));
                }
                Op::Learn(a, r) => {
                    let learnt = d.learn(a, remote(r));
                    prop_assert_eq!(learnt, d.agent_of_address(remote(r)) == Some(a));
                }
                Op::Check(u, r) => {
                    let owner = d.agent_of_address(remote(r)).or(d.agent_of_ufrag(&ufrag(u)));
                    let routed = d.route(remote(r), &check(&format!("{}:peer", ufrag(u))));
                    prop_assert_eq!(routed.ok().map(|x| x.0), owner);
                }
                Op::Junk(r, bytes) => {
                    let owner = d.agent_of_address(remote(r));
                    let routed = d.route(remote(r), &bytes);
                    prop_assert_eq!(routed.ok().map(|x| x.0), owner);
                }
                Op::Mutated(u, r, i, b) => {
                    let mut p = check(&format!("{}:peer", ufrag(u)));
                    let i = i % p.len();
                    p[i] ^= b;
                    let _ = d.route(remote(r), &p);
                    let _ = binding_request_ufrag(&p[..i]);
                }
            }
            assert_consistent(&d);
        }
    }
}
