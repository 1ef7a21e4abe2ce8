//! A controlled floe agent against a scripted controlling peer that sends NOMINATION
//! (draft-thatcher-ice-renomination-01 §3): higher values select, lower or equal ones
//! do not, and without negotiation the attribute is ignored.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ice::check::{encode_check, encode_success, CheckRequest};
use crate::ice::*;
use crate::stun::attribute::{Nomination as NominationAttr, UseCandidate};
use crate::stun::{Class, Message, TransactionId};

const LOCAL: &str = "10.0.0.1:5000";
const PEER: &str = "10.0.0.9:7000";
const PEER2: &str = "10.0.0.9:7001";
const PEER_UFRAG: &str = "renm";
const PEER_PWD: &str = "0123456789abcdefABCDEF";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Peer {
    agent: Agent,
    now: Instant,
    ufrag: String,
    pwd: String,
    events: Vec<IceEvent>,
    tid: u8,
}

impl Peer {
    /// A controlled agent that knows both peer addresses and has validated both pairs.
    fn connected(negotiated: bool) -> Self {
        let mut config = IceConfig::new(IceRole::Controlled);
        config.renomination = true;
        let mut agent = Agent::new(config, StdRng::seed_from_u64(7));
        agent.add_local_candidate(Candidate::host(addr(LOCAL)));
        agent.set_remote_credentials(PEER_UFRAG, PEER_PWD);
        agent.set_remote_renomination(negotiated);
        for (i, a) in [PEER, PEER2].iter().enumerate() {
            let line = format!(
                "{i} 1 udp {} {} {} typ host",
                2130706431 - i,
                addr(a).ip(),
                addr(a).port()
            );
            agent.add_remote_candidate(line.parse().unwrap());
        }
        let (ufrag, pwd) = agent.local_credentials();
        let (ufrag, pwd) = (ufrag.to_owned(), pwd.to_owned());
        let mut p = Peer {
            agent,
            now: Instant::now(),
            ufrag,
            pwd,
            events: Vec::new(),
            tid: 0,
        };
        p.agent.start(p.now);
        // Answer every check of the agent until both pairs are valid.
        for _ in 0..40 {
            p.answer_checks();
            p.now += Duration::from_millis(50);
            let now = p.now;
            p.agent.handle_timeout(now);
        }
        p.answer_checks();
        assert!(p
            .agent
            .checklist()
            .pairs()
            .iter()
            .all(|x| x.state() == PairState::Succeeded));
        p
    }

    fn answer_checks(&mut self) {
        while let Some(t) = self.agent.poll_transmit() {
            let m = Message::decode(t.payload.clone()).unwrap();
            if m.class() == Class::Request {
                let ok = encode_success(m.transaction_id(), t.source, PEER_PWD.as_bytes());
                let out = self
                    .agent
                    .handle_input(self.now, t.destination, t.source, ok);
                assert!(out.is_none());
            }
        }
        self.events
            .extend(std::iter::from_fn(|| self.agent.poll_event()));
    }

    /// A check from `from` with NOMINATION `n`; the selected remote address after it.
    fn nominate(&mut self, from: &str, n: u32) -> Option<SocketAddr> {
        self.tid += 1;
        let check = encode_check(
            TransactionId([self.tid; 12]),
            &CheckRequest {
                username: &format!("{}:{PEER_UFRAG}", self.ufrag),
                priority: 1,
                role: IceRole::Controlling,
                tie_breaker: 7,
                use_candidate: false,
                nomination: Some(n),
                key: self.pwd.as_bytes(),
            },
        );
        let m = Message::decode(check.clone()).unwrap();
        assert_eq!(
            m.get::<NominationAttr>().unwrap().unwrap(),
            NominationAttr(n)
        );
        assert!(m.get::<UseCandidate>().is_none());
        self.agent
            .handle_input(self.now, addr(from), addr(LOCAL), check);
        self.answer_checks();
        self.agent.selected_pair().map(|(_, r)| r.addr())
    }

    fn selections(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, IceEvent::SelectedPairChanged { .. }))
            .count()
    }
}

#[test]
fn a_higher_nomination_selects_and_a_lower_or_equal_one_is_ignored() {
    let mut p = Peer::connected(true);
    assert_eq!(p.nominate(PEER, 5), Some(addr(PEER)));
    assert_eq!(p.selections(), 1);
    assert_eq!(p.nominate(PEER2, 3), Some(addr(PEER)), "lower: ignored");
    assert_eq!(p.nominate(PEER2, 5), Some(addr(PEER)), "equal: ignored");
    assert_eq!(p.selections(), 1);
    // Higher: selected, though PEER2's pair has the lower priority.
    assert_eq!(p.nominate(PEER2, 6), Some(addr(PEER2)));
    assert_eq!(p.nominate(PEER, 7), Some(addr(PEER)));
    assert_eq!(p.selections(), 3);
    assert_eq!(
        p.events
            .iter()
            .filter(|e| **e == IceEvent::Connected)
            .count(),
        1
    );
}

#[test]
fn without_negotiation_nomination_is_ignored() {
    let mut p = Peer::connected(false);
    assert_eq!(p.nominate(PEER, 5), None);
    assert_eq!(p.selections(), 0);
}
