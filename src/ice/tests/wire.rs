//! One floe agent against hand-written STUN: validation of received checks
//! (RFC 8445 §7.3), responses, and a scripted peer that nominates like aioice 0.13
//! (USE-CANDIDATE on every check).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ice::check::{encode_check, encode_success, CheckRequest};
use crate::ice::*;
use crate::stun::attribute::{
    ErrorCode, IceControlled, IceControlling, Priority, UnknownAttributes, UseCandidate, Username,
    XorMappedAddress,
};
use crate::stun::{AttributeType, Class, Message, MessageEncoder, Method, TransactionId};
use crate::Transmit;

const LOCAL: &str = "10.0.0.1:5000";
const PEER: &str = "10.0.0.9:7000";
const PEER_UFRAG: &str = "aioi";
const PEER_PWD: &str = "0123456789abcdefABCDEF";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Scripted {
    agent: Agent,
    now: Instant,
    ufrag: String,
    pwd: String,
}

impl Scripted {
    fn new(config: IceConfig) -> Self {
        let mut agent = Agent::new(config, StdRng::seed_from_u64(42));
        agent
            .add_local_candidate(Candidate::host(addr(LOCAL)))
            .unwrap();
        agent.set_remote_credentials(PEER_UFRAG, PEER_PWD);
        let (ufrag, pwd) = agent.local_credentials();
        let (ufrag, pwd) = (ufrag.to_owned(), pwd.to_owned());
        Scripted {
            agent,
            now: Instant::now(),
            ufrag,
            pwd,
        }
    }

    fn input(&mut self, payload: Bytes) -> Vec<Transmit> {
        let out = self
            .agent
            .handle_input(self.now, addr(PEER), addr(LOCAL), payload);
        assert!(out.is_none());
        self.drain()
    }

    fn drain(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.agent.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<IceEvent> {
        std::iter::from_fn(|| self.agent.poll_event()).collect()
    }

    /// A check from the peer as aioice builds it.
    fn check(&self, tid: u8, use_candidate: bool) -> Bytes {
        encode_check(
            TransactionId([tid; 12]),
            &CheckRequest {
                username: &format!("{}:{PEER_UFRAG}", self.ufrag),
                priority: candidate_priority(CandidateKind::PeerReflexive, 65535, 1),
                role: IceRole::Controlling,
                tie_breaker: 7,
                use_candidate,
                nomination: None,
                key: self.pwd.as_bytes(),
            },
        )
    }

    /// Only one response in `out`, decoded and checked against the local password.
    fn response(&self, out: &[Transmit]) -> Message {
        let responses: Vec<Message> = out
            .iter()
            .map(|t| Message::decode(t.payload.clone()).unwrap())
            .filter(|m| matches!(m.class(), Class::Success | Class::Error))
            .collect();
        assert_eq!(responses.len(), 1, "{responses:?}");
        let t = out
            .iter()
            .find(|t| Message::decode(t.payload.clone()).unwrap().class() != Class::Request)
            .unwrap();
        assert_eq!(t.source, addr(LOCAL));
        assert_eq!(t.destination, addr(PEER));
        responses.into_iter().next().unwrap()
    }
}

fn error_code(m: &Message) -> u16 {
    assert_eq!(m.class(), Class::Error);
    m.get::<ErrorCode>().unwrap().unwrap().code
}

/// A request with chosen attributes.
fn request(attrs: impl FnOnce(&mut MessageEncoder<'_>)) -> Bytes {
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.request(), TransactionId([3; 12]));
    attrs(&mut enc);
    enc.finish().unwrap();
    buf.freeze()
}

#[test]
fn a_valid_check_gets_a_signed_success_with_the_mapped_address() {
    let mut s = Scripted::new(IceConfig::new(IceRole::Controlled));
    let out = s.input(s.check(1, false));
    let r = s.response(&out);
    assert_eq!(r.class(), Class::Success);
    assert_eq!(r.transaction_id(), TransactionId([1; 12]));
    assert_eq!(r.get::<XorMappedAddress>().unwrap().unwrap().0, addr(PEER));
    r.verify_integrity(s.pwd.as_bytes()).unwrap();
    assert!(r.has_fingerprint());
}

#[test]
fn bad_checks_get_400_401_and_420() {
    let mut s = Scripted::new(IceConfig::new(IceRole::Controlled));
    let user = format!("{}:{PEER_UFRAG}", s.ufrag);
    let pwd = s.pwd.clone();
    let full = |user: &str, key: &[u8]| {
        let (user, key) = (user.to_owned(), key.to_vec());
        request(move |e| {
            e.add(&Username::new(user))
                .add(&Priority(1))
                .add(&IceControlling(1))
                .message_integrity(&key)
                .fingerprint();
        })
    };
    let cases: Vec<(&str, Bytes, u16)> = vec![
        (
            "no FINGERPRINT",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&Priority(1))
                    .add(&IceControlling(1))
                    .message_integrity(pwd.as_bytes());
            }),
            400,
        ),
        (
            "no MESSAGE-INTEGRITY",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&Priority(1))
                    .add(&IceControlling(1))
                    .fingerprint();
            }),
            400,
        ),
        (
            "no USERNAME",
            request(|e| {
                e.add(&Priority(1))
                    .add(&IceControlling(1))
                    .message_integrity(pwd.as_bytes())
                    .fingerprint();
            }),
            400,
        ),
        (
            "other ufrag",
            full(&format!("nope:{PEER_UFRAG}"), pwd.as_bytes()),
            401,
        ),
        ("no colon", full(&s.ufrag.clone(), pwd.as_bytes()), 401),
        (
            "wrong password",
            full(&user, b"not the password at all"),
            401,
        ),
        (
            "no PRIORITY",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&IceControlling(1))
                    .message_integrity(pwd.as_bytes())
                    .fingerprint();
            }),
            400,
        ),
        (
            "no role",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&Priority(1))
                    .message_integrity(pwd.as_bytes())
                    .fingerprint();
            }),
            400,
        ),
        (
            "both roles",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&Priority(1))
                    .add(&IceControlling(1))
                    .add(&IceControlled(2))
                    .message_integrity(pwd.as_bytes())
                    .fingerprint();
            }),
            400,
        ),
        (
            "bad USE-CANDIDATE",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&Priority(1))
                    .add(&IceControlling(1))
                    .add_raw(UseCandidate::TYPE, b"x")
                    .message_integrity(pwd.as_bytes())
                    .fingerprint();
            }),
            400,
        ),
        (
            "unknown attribute",
            request(|e| {
                e.add(&Username::new(user.clone()))
                    .add(&Priority(1))
                    .add(&IceControlling(1))
                    .add_raw(AttributeType(0x0050), b"????")
                    .message_integrity(pwd.as_bytes())
                    .fingerprint();
            }),
            420,
        ),
    ];
    use crate::stun::AttributeCodec;
    for (what, payload, code) in cases {
        let out = s.input(payload);
        let r = s.response(&out);
        assert_eq!(error_code(&r), code, "{what}");
        assert!(r.has_fingerprint(), "{what}");
        // 400 and 401 are not signed (RFC 8489 §9.1.3); 420 is.
        assert_eq!(r.has_integrity(), code == 420, "{what}");
        if code == 420 {
            let unknown = r.get::<UnknownAttributes>().unwrap().unwrap();
            assert_eq!(unknown.0, [AttributeType(0x0050)]);
        }
    }
    // No pair, no candidate was learnt from any of them.
    assert!(s.agent.checklist().remote_candidates().is_empty());
    // Garbage and non-STUN from strangers are dropped quietly.
    assert!(s.input(Bytes::from_static(&[0; 20])).is_empty());
    let now = s.now;
    assert!(s
        .agent
        .handle_input(now, addr(PEER), addr(LOCAL), Bytes::from_static(b"hello"))
        .is_none());
}

#[test]
fn aggressive_nomination_like_aioice() {
    // aioice's controlling agent puts USE-CANDIDATE on its first check.
    let mut s = Scripted::new(IceConfig::new(IceRole::Controlled));
    s.agent.start(s.now);
    assert!(s.drain().is_empty(), "no remote candidates yet");
    let out = s.input(s.check(1, true));
    assert_eq!(s.response(&out).class(), Class::Success);
    // The triggered check goes at once (the pacer slot is free).
    let checks: Vec<(Transmit, Message)> = out
        .iter()
        .map(|t| (t.clone(), Message::decode(t.payload.clone()).unwrap()))
        .filter(|(_, m)| m.class() == Class::Request)
        .collect();
    assert_eq!(checks.len(), 1);
    let (t, check) = &checks[0];
    assert_eq!(t.destination, addr(PEER));
    assert_eq!(
        check.get::<Username>().unwrap().unwrap().as_str(),
        format!("{PEER_UFRAG}:{}", s.ufrag)
    );
    check.verify_integrity(PEER_PWD.as_bytes()).unwrap();
    assert!(check.get::<IceControlled>().is_some());
    assert!(!check.contains(<UseCandidate as crate::stun::AttributeCodec>::TYPE));
    let events = s.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, IceEvent::PeerReflexive { local: false, .. })));
    assert!(!events
        .iter()
        .any(|e| matches!(e, IceEvent::PairNominated { .. })));
    // aioice answers; the pair succeeds and, nominated already, is selected.
    s.now += Duration::from_millis(1);
    s.input(encode_success(
        check.transaction_id(),
        addr(LOCAL),
        PEER_PWD.as_bytes(),
    ));
    let events = s.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, IceEvent::PairNominated { .. })),
        "{events:?}"
    );
    assert!(events.contains(&IceEvent::Connected));
    assert_eq!(s.agent.selected_pair().unwrap().1.addr(), addr(PEER));
    // A later USE-CANDIDATE check on the same pair changes nothing.
    s.input(s.check(2, true));
    assert!(!s
        .events()
        .iter()
        .any(|e| matches!(e, IceEvent::PairNominated { .. })));
}

#[test]
fn use_candidate_on_a_pair_that_already_succeeded_nominates_at_once() {
    let mut s = Scripted::new(IceConfig::new(IceRole::Controlled));
    s.agent.add_remote_candidate(
        format!("1 1 udp 2130706431 {} 7000 typ host", addr(PEER).ip())
            .parse()
            .unwrap(),
    );
    s.agent.start(s.now);
    let out = s.drain();
    let check = Message::decode(out[0].payload.clone()).unwrap();
    s.input(encode_success(
        check.transaction_id(),
        addr(LOCAL),
        PEER_PWD.as_bytes(),
    ));
    assert!(!s
        .events()
        .iter()
        .any(|e| matches!(e, IceEvent::PairNominated { .. })));
    s.input(s.check(5, true));
    let events = s.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, IceEvent::PairNominated { .. })));
    assert!(events.contains(&IceEvent::Connected));
}

#[test]
fn unauthenticated_responses_are_ignored() {
    let mut s = Scripted::new(IceConfig::new(IceRole::Controlled));
    s.agent.add_remote_candidate(
        format!("1 1 udp 2130706431 {} 7000 typ host", addr(PEER).ip())
            .parse()
            .unwrap(),
    );
    s.agent.start(s.now);
    let out = s.drain();
    let check = Message::decode(out[0].payload.clone()).unwrap();
    // Signed with the wrong key: dropped, the check retransmits.
    s.input(encode_success(
        check.transaction_id(),
        addr(LOCAL),
        b"wrong password here!!!",
    ));
    assert_eq!(
        s.agent.checklist().pairs()[0].state(),
        PairState::InProgress
    );
    s.now += Duration::from_millis(500);
    let now = s.now;
    s.agent.handle_timeout(now);
    let again = s.drain();
    assert_eq!(again.len(), 1);
    assert_eq!(
        Message::decode(again[0].payload.clone())
            .unwrap()
            .transaction_id(),
        check.transaction_id()
    );
    // An unsigned 401 fails the pair (RFC 8489 §9.1.3 sends it unsigned).
    let mut buf = BytesMut::new();
    let mut enc = MessageEncoder::new(&mut buf, Method::BINDING.error(), check.transaction_id());
    enc.add(&ErrorCode::new(401)).fingerprint();
    enc.finish().unwrap();
    s.input(buf.freeze());
    assert_eq!(s.agent.checklist().pairs()[0].state(), PairState::Failed);
}

#[test]
fn a_controlling_peer_with_a_larger_tie_breaker_makes_us_controlled() {
    let mut s = Scripted::new(IceConfig::new(IceRole::Controlling));
    let tb = s.agent.tie_breaker();
    let user = format!("{}:{PEER_UFRAG}", s.ufrag);
    let pwd = s.pwd.clone();
    let conflict = |tie: u64| {
        let (user, pwd) = (user.clone(), pwd.clone());
        request(move |e| {
            e.add(&Username::new(user))
                .add(&Priority(1))
                .add(&IceControlling(tie))
                .message_integrity(pwd.as_bytes())
                .fingerprint();
        })
    };
    if tb > 0 {
        // Smaller or equal tie-breaker: 487, signed, and we stay controlling.
        let out = s.input(conflict(tb - 1));
        let r = s.response(&out);
        assert_eq!(error_code(&r), 487);
        r.verify_integrity(s.pwd.as_bytes()).unwrap();
        assert_eq!(s.agent.role(), IceRole::Controlling);
    }
    if tb < u64::MAX {
        let out = s.input(conflict(tb + 1));
        assert_eq!(s.response(&out).class(), Class::Success);
        assert_eq!(s.agent.role(), IceRole::Controlled);
        assert!(s
            .events()
            .contains(&IceEvent::RoleChanged(IceRole::Controlled)));
    }
}
