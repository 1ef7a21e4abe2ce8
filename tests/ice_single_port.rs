//! Single-port mode: one `IceUdpMux` on 127.0.0.1:P shared by three controlled floe
//! agents, each connecting with a controlling floe agent of its own (host sockets of its
//! own) over loopback. Each pair nominates a pair on P and receives only its own peer's
//! data; junk and checks for unknown ufrags sent to P are dropped and counted while the
//! sessions carry on; a stopped agent's entries leave the mux's table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use floe::ice::{IceEvent as CoreEvent, IceRole};
use floe::stun::attribute::{Priority, Username};
use floe::stun::{Class, MessageEncoder, MessageType, Method, TransactionId};
use floe_actors::ice::{
    AgentConfig, GatherConfig, IceAgent, IceAgentHandle, IceEvent, IceUdpMux, IceUdpMuxConfig,
    IceUdpMuxHandle, MuxStats,
};
use tokio::sync::mpsc;

/// Bounds a hang; never a speed assertion.
const LIMIT: Duration = Duration::from_secs(30);
const PAIRS: usize = 3;
const CONTROLLING: usize = 0;
const CONTROLLED: usize = 1;

fn config(role: IceRole, shared: Option<&IceUdpMuxHandle>) -> AgentConfig {
    let mut c = AgentConfig::new(role);
    c.gather = GatherConfig::loopback_only();
    c.shared_socket = shared.cloned();
    c
}

#[derive(Default)]
struct Side {
    agent: Option<IceAgentHandle>,
    ufrag: String,
    candidates: Vec<SocketAddr>,
    connected: bool,
    nominated: Vec<(SocketAddr, SocketAddr)>,
    received: Vec<String>,
    failed: bool,
}

impl Side {
    fn agent(&self) -> &IceAgentHandle {
        self.agent.as_ref().expect("spawned")
    }
}

/// Three pairs, their events merged into one queue.
struct Lab {
    mux: IceUdpMuxHandle,
    pairs: Vec<[Side; 2]>,
    events: mpsc::UnboundedReceiver<(usize, usize, IceEvent)>,
}

impl Lab {
    async fn new(n: usize) -> Lab {
        if let Ok(filter) = std::env::var("FLOE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let mux = IceUdpMux::bind("127.0.0.1:0".parse().unwrap(), IceUdpMuxConfig::default())
            .expect("binds the shared socket");
        let (tx, events) = mpsc::unbounded_channel();
        let mut pairs = Vec::new();
        for p in 0..n {
            let mut sides: [Side; 2] = Default::default();
            for (s, side) in sides.iter_mut().enumerate() {
                let c = match s {
                    CONTROLLING => config(IceRole::Controlling, None),
                    _ => config(IceRole::Controlled, Some(&mux)),
                };
                let agent = IceAgent::spawn(c);
                let mut stream = agent.events();
                let tx = tx.clone();
                actix_rt::spawn(async move {
                    while let Some(e) = stream.recv().await {
                        if tx.send((p, s, e)).is_err() {
                            break;
                        }
                    }
                });
                agent.gather();
                side.ufrag = agent.local_description().await.credentials.ufrag;
                side.agent = Some(agent);
            }
            let (a, b) = (sides[0].agent(), sides[1].agent());
            let (da, db) = (a.local_description().await, b.local_description().await);
            a.set_remote(db.credentials.ufrag, db.credentials.pwd, Vec::new());
            b.set_remote(da.credentials.ufrag, da.credentials.pwd, Vec::new());
            a.start();
            b.start();
            pairs.push(sides);
        }
        Lab { mux, pairs, events }
    }

    fn on_event(&mut self, p: usize, s: usize, e: IceEvent) {
        let other = self.pairs[p][1 - s].agent.clone();
        let me = &mut self.pairs[p][s];
        match e {
            IceEvent::Candidate { candidate, .. } => {
                me.candidates.push(candidate.addr());
                if let Some(o) = other {
                    o.add_remote_candidate(candidate);
                }
            }
            IceEvent::GatheringComplete => {
                if let Some(o) = other {
                    o.end_of_remote_candidates();
                }
            }
            IceEvent::Core { event, .. } => match event {
                CoreEvent::Connected => me.connected = true,
                CoreEvent::PairNominated { local, remote } => {
                    me.nominated.push((local.addr(), remote.addr()))
                }
                CoreEvent::Failed => me.failed = true,
                _ => {}
            },
            IceEvent::Data { data, .. } => me
                .received
                .push(String::from_utf8_lossy(&data).into_owned()),
            _ => {}
        }
    }

    /// Handles events until `done` holds; panics with the state after [`LIMIT`].
    async fn until(&mut self, what: &str, done: impl Fn(&Lab) -> bool) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while !done(self) {
            tokio::select! {
                Some((p, s, e)) = self.events.recv() => self.on_event(p, s, e),
                _ = tokio::time::sleep_until(deadline) => panic!("{what}: not within {LIMIT:?}\n{}", self.report()),
            }
        }
    }

    /// Each side of each pair in `pairs` sends `p{pair}-{side}-{round}` (again every
    /// 200 ms) until its peer has received it.
    async fn exchange(&mut self, pairs: &[usize], round: &str) {
        let text = |p: usize, s: usize| format!("p{p}-{s}-{round}");
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let mut missing = 0;
            for &p in pairs {
                for s in [CONTROLLING, CONTROLLED] {
                    if !self.pairs[p][1 - s].received.contains(&text(p, s)) {
                        missing += 1;
                        let _ = self.pairs[p][s].agent().send(text(p, s)).await;
                    }
                }
            }
            if missing == 0 {
                return;
            }
            let pause = tokio::time::Instant::now() + Duration::from_millis(200);
            loop {
                tokio::select! {
                    Some((p, s, e)) = self.events.recv() => self.on_event(p, s, e),
                    _ = tokio::time::sleep_until(pause) => break,
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: data not through within {LIMIT:?}\n{}",
                self.report()
            );
        }
    }

    /// Waits until the mux's counters satisfy `done`.
    async fn stats_until(&mut self, what: &str, done: impl Fn(&MuxStats) -> bool) -> MuxStats {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let stats = self.mux.stats().await;
            if done(&stats) {
                return stats;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {LIMIT:?}: {stats:#?}"
            );
            let pause = tokio::time::Instant::now() + Duration::from_millis(50);
            loop {
                tokio::select! {
                    Some((p, s, e)) = self.events.recv() => self.on_event(p, s, e),
                    _ = tokio::time::sleep_until(pause) => break,
                }
            }
        }
    }

    fn report(&self) -> String {
        let mut r = String::new();
        for (p, sides) in self.pairs.iter().enumerate() {
            for (s, side) in sides.iter().enumerate() {
                r += &format!(
                    "pair {p} side {s}: candidates {:?} connected {} nominated {:?} received {:?} failed {}\n",
                    side.candidates, side.connected, side.nominated, side.received, side.failed
                );
            }
        }
        r
    }
}

/// A connectivity check (RFC 8445 §7.2.2) with USERNAME `username`, signed with a
/// password nobody has.
fn forged_check(username: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    let typ = MessageType::new(Method::BINDING, Class::Request);
    let mut m = MessageEncoder::new(&mut out, typ, TransactionId([3; 12]));
    m.add(&Username::new(username))
        .add(&Priority(1))
        .message_integrity(b"not-the-password-of-anyone")
        .fingerprint();
    m.finish().unwrap();
    out.to_vec()
}

/// Junk of every kind: random bytes, RTP-like data, truncated and corrupted STUN,
/// checks without a colon or for a ufrag nobody has, an empty datagram.
fn junk(i: u32, seed: &mut u64) -> Vec<u8> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    match i % 7 {
        0 => (0..next() % 1200).map(|_| next() as u8).collect(),
        1 => [&[0x80, 0x60][..], b"rtp from nowhere"].concat(),
        2 => forged_check("zzzz:abcd"),
        3 => forged_check("no-colon-here"),
        4 => forged_check("zzzz:abcd")[..24].to_vec(),
        5 => {
            let mut c = forged_check("yyyy:abcd");
            let at = 20 + (next() as usize % (c.len() - 20));
            c[at] ^= 0x41;
            c
        }
        _ => Vec::new(),
    }
}

#[actix_rt::test]
async fn three_agents_share_one_port_each_with_its_own_peer() {
    let mut lab = Lab::new(PAIRS).await;
    let port = lab.mux.local_addr();

    // Every pair nominates, the controlled side on the shared port.
    lab.until("three pairs connected", |lab| {
        lab.pairs
            .iter()
            .all(|p| p[0].connected && p[1].connected && !p[1].nominated.is_empty())
    })
    .await;
    for (p, sides) in lab.pairs.iter().enumerate() {
        let report = lab.report();
        let on_port = &sides[CONTROLLED];
        assert_eq!(
            on_port.candidates,
            [port],
            "pair {p}: one host candidate, on P\n{report}"
        );
        assert!(
            on_port.nominated.iter().all(|(local, _)| *local == port),
            "pair {p}\n{report}"
        );
        let peer = &sides[CONTROLLING];
        assert!(
            !peer.candidates.contains(&port),
            "pair {p}: the peer has its own sockets\n{report}"
        );
        assert!(on_port
            .nominated
            .iter()
            .all(|(_, remote)| peer.candidates.contains(remote)));
    }
    let stats = lab.mux.stats().await;
    assert_eq!(stats.demux.agents, PAIRS, "{stats:#?}");
    // Checks came by ufrag, or from an address an agent had sent a check to first.
    assert!(stats.delivered > 0, "{stats:#?}");

    lab.exchange(&[0, 1, 2], "first").await;

    // Junk to P from an address no agent knows: dropped and counted.
    let junk_socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..700u32 {
        let _ = junk_socket.send_to(&junk(i, &mut seed), port).await;
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // A check naming agent 0's ufrag with a wrong password: the mux hands it to agent 0
    // (and gives the sender's address to it), which rejects it; the data that follows
    // from that address reaches agent 0 and is not application data.
    let forger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ufrag0 = lab.pairs[0][CONTROLLED].ufrag.clone();
    forger
        .send_to(&forged_check(&format!("{ufrag0}:evil")), port)
        .await
        .unwrap();
    let before = lab
        .stats_until("the junk counted", |s| {
            s.demux.dropped_malformed > 0
                && s.demux.dropped_unknown_ufrag > 0
                && s.demux.routed_by_ufrag > stats.demux.routed_by_ufrag
        })
        .await;
    forger.send_to(b"\x80\x60forged data", port).await.unwrap();
    assert!(before.demux.dropped_malformed + before.demux.dropped_unknown_ufrag <= 700);
    assert_eq!(before.demux.agents, PAIRS);

    // The sessions carry on; nobody got the junk or another pair's data.
    lab.exchange(&[0, 1, 2], "after-junk").await;
    for (p, sides) in lab.pairs.iter().enumerate() {
        for (s, side) in sides.iter().enumerate() {
            let from_peer = format!("p{p}-{}-", 1 - s);
            assert!(
                side.received.iter().all(|t| t.starts_with(&from_peer)),
                "pair {p} side {s} received {:?}",
                side.received
            );
            assert!(!side.failed, "pair {p} side {s} failed\n{}", lab.report());
        }
    }

    // Agent 0 stops: its ufrag and addresses leave the table; the others carry on.
    lab.pairs[0][CONTROLLED].agent().stop();
    lab.pairs[0][CONTROLLING].agent().stop();
    let after = lab
        .stats_until("agent 0 unregistered", |s| s.demux.agents == PAIRS - 1)
        .await;
    assert!(
        after.demux.addresses < before.demux.addresses,
        "before {before:#?}\nafter {after:#?}"
    );
    forger
        .send_to(&forged_check(&format!("{ufrag0}:evil")), port)
        .await
        .unwrap();
    lab.stats_until("a check for the stopped agent's ufrag dropped", |s| {
        s.demux.dropped_unknown_ufrag > after.demux.dropped_unknown_ufrag
    })
    .await;
    lab.exchange(&[1, 2], "after-stop").await;

    let mut received: HashMap<usize, usize> = HashMap::new();
    for (p, sides) in lab.pairs.iter().enumerate() {
        received.insert(p, sides[CONTROLLED].received.len());
    }
    for s in lab.pairs.iter().flatten() {
        if let Some(a) = &s.agent {
            a.stop();
        }
    }
    lab.mux.stop();
    eprintln!("mux: {after:#?}\nreceived on P per pair: {received:?}");
}

#[actix_rt::test]
async fn an_ice_restart_moves_the_agent_to_its_new_ufrag() {
    let mut lab = Lab::new(1).await;
    let port = lab.mux.local_addr();
    lab.until("connected", |lab| lab.pairs[0].iter().all(|s| s.connected))
        .await;
    lab.exchange(&[0], "before").await;

    // RFC 8445 §9: both sides restart; the mux routes the new ufrag, not the old.
    let old = lab.pairs[0][CONTROLLED].ufrag.clone();
    let (a, b) = (
        lab.pairs[0][CONTROLLING].agent().clone(),
        lab.pairs[0][CONTROLLED].agent().clone(),
    );
    let (ra, rb) = (a.restart().await, b.restart().await);
    let new = rb.credentials.ufrag.clone();
    assert_ne!(old, new);
    for side in &mut lab.pairs[0] {
        side.connected = false;
    }
    let forger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s0 = lab.mux.stats().await;
    forger
        .send_to(&forged_check(&format!("{old}:evil")), port)
        .await
        .unwrap();
    let s1 = lab
        .stats_until("the old ufrag no longer routes", |s| {
            s.demux.dropped_unknown_ufrag > s0.demux.dropped_unknown_ufrag
        })
        .await;
    forger
        .send_to(&forged_check(&format!("{new}:evil")), port)
        .await
        .unwrap();
    lab.stats_until("the new ufrag routes", |s| {
        s.demux.routed_by_ufrag > s1.demux.routed_by_ufrag
    })
    .await;

    a.set_remote(rb.credentials.ufrag, rb.credentials.pwd, rb.candidates);
    b.set_remote(ra.credentials.ufrag, ra.credentials.pwd, ra.candidates);
    a.end_of_remote_candidates();
    b.end_of_remote_candidates();
    lab.until("connected after the restart", |lab| {
        lab.pairs[0].iter().all(|s| s.connected)
    })
    .await;
    lab.exchange(&[0], "after").await;
    assert!(!lab.pairs[0].iter().any(|s| s.failed), "{}", lab.report());
    a.stop();
    b.stop();
    lab.stats_until("the agent unregistered", |s| s.demux.agents == 0)
        .await;
    lab.mux.stop();
}
